"""A method against two fixed-common-cut baselines: the middle cut with equal bandwidth, and the best
common cut with EPSL-BCD's subchannels and power (EdgeSplit's speedup, docs/reproduction.md).

1. Selection, on training seeds (``--select-seed``, ``--select-episodes``) disjoint from the
   evaluation seeds: every common cut j = 1..L-1 is run as ``epsl-bcd:cut=j`` (EPSL-BCD restricted
   to cut j, ``psl bench --methods epsl-bcd:cut=j``: subchannels and power for that cut from the
   greedy and the proportional start, the better kept, as ``epsl-bcd`` does at the cut it picks). The cut with
   the lowest mean round latency is the scenario's best fixed common cut.
2. Evaluation, with ``run_benchmark`` on the evaluation seeds: the ``--methods`` (default
   ``edgesplit-alt,fixed``) and ``epsl-bcd:cut=J`` at the chosen cut, all on the same seeded rounds;
   the bench outputs (results.md, rounds.csv, ``--trace``) go to ``--out``.

Prints the selection table (mean latency per cut), the chosen cut, the evaluation table and, for
every method, its mean latency over the reference method's (``--reference``, default the first of
``--methods``): the reference's speedup against it.

    python benchmarks/bench_best_cut.py --scenario edgesplit-vgg16 --out runs/repro/best-cut/edgesplit-vgg16
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from agents.registry import split_specs  # noqa: E402
from psl_env.models.profile import load_profile  # noqa: E402
from psl_env.system.scenario import load_scenario  # noqa: E402
from trainers.bench import run_benchmark  # noqa: E402


def best_common_cut(scenario: str, overrides: list[str], rounds: int, episodes: int, seed: int,
                    cuts: list[int] | None = None) -> tuple[int, dict[int, float]]:
    """(the cut with the lowest mean latency on the given seeds, {cut: mean latency s})."""
    scen = load_scenario(scenario, overrides or None)
    cuts = cuts or list(range(1, load_profile(scen.model).num_blocks))
    res = run_benchmark(scenario, [f"epsl-bcd:cut={j}" for j in cuts], rounds, episodes, seed, None,
                        overrides=overrides, num_resamples=10, hindsight="off")
    means = {j: res["methods"][f"epsl-bcd:cut={j}"]["mean_latency_s"] for j in cuts}
    return min(means, key=means.get), means


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="edgesplit-vgg16")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--methods", default="edgesplit-alt,fixed", help="psl bench specs evaluated with the baseline")
    ap.add_argument("--reference", default=None, help="method the ratios divide by (default: the first of --methods)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="first evaluation seed")
    ap.add_argument("--select-episodes", type=int, default=3)
    ap.add_argument("--select-seed", type=int, default=1000, help="first selection (training) seed")
    ap.add_argument("--out", default=None, help="bench output folder of the evaluation run")
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args(argv)
    if args.select_seed < args.seed + args.episodes and args.seed < args.select_seed + args.select_episodes:
        ap.error("--select-seed: selection and evaluation seeds overlap")

    best, means = best_common_cut(args.scenario, args.overrides, args.rounds, args.select_episodes,
                                  args.select_seed)
    print(f"scenario {args.scenario} {' '.join('--set ' + o for o in args.overrides)}".rstrip())
    print(f"selection: seeds {args.select_seed}..{args.select_seed + args.select_episodes - 1}, "
          f"{args.rounds} rounds each; mean latency per common cut (EPSL-BCD resources), s")
    for j, v in means.items():
        print(f"  cut {j:2d}: {v:10.4f}{'   <- best' if j == best else ''}")

    methods = split_specs(args.methods) + [f"epsl-bcd:cut={best}"]
    res = run_benchmark(args.scenario, methods, args.rounds, args.episodes, args.seed, args.out, args.trace,
                        overrides=args.overrides)
    ref = args.reference or methods[0]
    ref_mean = res["methods"][ref]["mean_latency_s"]
    print(f"\nevaluation: seeds {args.seed}..{args.seed + args.episodes - 1}, {args.rounds} rounds each"
          + (f"; bench outputs in {args.out}" if args.out else ""))
    print(f"| method | mean s | 95% CI s | p95 s | mean cut | sync s | {'mean / ' + ref} |")
    print("|---|---|---|---|---|---|---|")
    for name in methods:
        st = res["methods"][name]
        lo, hi = st["ci95_latency_s"]
        print(f"| {name} | {st['mean_latency_s']:.4g} | [{lo:.4g}, {hi:.4g}] | {st['p95_latency_s']:.4g} | "
              f"{st['mean_cut']:.2f} | {st['phases_mean_s']['sync']:.4g} | "
              f"{st['mean_latency_s'] / ref_mean:.3f}x |")
    if args.out:  # the reference's cut vectors and how many rounds used each
        import csv
        from collections import Counter

        with open(os.path.join(args.out, "rounds.csv")) as fh:
            counts = Counter(r["cut"] for r in csv.DictReader(fh) if r["method"] == ref)
        print(f"{ref} cuts (rounds): " + ", ".join(f"[{c}] {k}" for c, k in counts.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
