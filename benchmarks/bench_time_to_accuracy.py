"""Time to 95% held-out accuracy of PSL and EPSL (phi = 0.5) with real training on the offline digits.

For each scheme, ``psl bench --train`` on ``digits-train`` (small CNN, N=5, b=32; recipe in
docs/training.md) with every decision maker driving its own engine: episodes seeded 0, 1, 2 (the
same devices, channel, data split, partition and initial weights for every method), up to 1,500
rounds, accuracy every 10 rounds. Prints rounds and simulated seconds to the target per method and
seed, and the final accuracy; each scheme's full outputs (results.md, accuracy_vs_time.png, ...)
go to ``--out/<scheme>``.

Usage: python benchmarks/bench_time_to_accuracy.py [--seeds 0 1 2] [--max-rounds 1500]
       [--methods fixed,epsl-bcd] [--target 0.95] [--out runs/time-to-accuracy]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.registry import split_specs
from trainers.bench import run_benchmark

SCENARIO = "digits-train"
SCHEMES = {"psl": ["scheme=psl", "phi=0.0"], "epsl phi=0.5": ["scheme=epsl", "phi=0.5"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="consecutive episode seeds")
    ap.add_argument("--max-rounds", type=int, default=1500)
    ap.add_argument("--methods", default="fixed,epsl-bcd")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", default="runs/time-to-accuracy")
    args = ap.parse_args()
    seeds = sorted(args.seeds)
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        ap.error("--seeds: give consecutive seeds (episodes are seeded SEED, SEED+1, ...)")
    methods = split_specs(args.methods)

    print(f"# time to {args.target:.0%} held-out accuracy: {SCENARIO}, at most {args.max_rounds} rounds, "
          f"seeds {seeds}")
    print("simulated s: sum of the priced round latencies of each method's own decisions\n")
    print("| scheme | method | seed | rounds to target | simulated s to target | final accuracy | mean round s |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for label, over in SCHEMES.items():
        t0 = time.perf_counter()
        out = Path(args.out) / over[0].split("=")[1]
        res = run_benchmark(SCENARIO, methods, args.max_rounds, len(seeds), seeds[0], out,
                            overrides=[*over, f"training.target_accuracy={args.target}"], train=True)
        wall = time.perf_counter() - t0
        for name in methods:
            m, pr = res["methods"][name], res["per_round"][name]
            for ep, (seed, rounds, sim_s, acc, total) in enumerate(zip(
                    seeds, m["rounds_to_target_by_episode"], m["sim_time_to_target_s_by_episode"],
                    m["final_accuracy_by_episode"], m["sim_time_s_by_episode"])):
                shown = str(rounds) if rounds is not None else f"not reached ({args.max_rounds})"
                sim = f"{sim_s:.2f}" if sim_s is not None else f"> {total:.2f}"
                mean_s = float(pr["latency_s"][pr["episode"] == ep].mean())
                print(f"| {label} | {name} | {seed} | {shown} | {sim} | {acc:.4f} | {mean_s:.4g} |")
            summary.append((label, name, m["episodes_reached"], m["rounds_to_target"], m["sim_time_to_target_s"]))
        print(f"| {label} | (wall {wall:.0f} s for {len(methods)} methods x {len(seeds)} seeds) | | | | | |")

    print("\n| scheme | method | seeds reaching target | mean rounds | mean simulated s |")
    print("|---|---|---|---|---|")
    for label, name, reached, rounds, sim_s in summary:
        r = f"{rounds:.0f}" if rounds is not None else "-"
        t = f"{sim_s:.2f}" if sim_s is not None else "-"
        print(f"| {label} | {name} | {reached}/{len(seeds)} | {r} | {t} |")


if __name__ == "__main__":
    main()
