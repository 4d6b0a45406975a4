"""Learned sequential schedulers against the hindsight figure and the causal baselines.

For each setting (``dynamic-edge`` as shipped; ``narrow-band``: the same with 200 kHz subchannels, the
region of the regime map, benchmarks/bench_regime_map.py, where the per-round optimizer falls
furthest short of the hindsight figure: it keeps round 0's cut while the load moves the best one), PPO
(``configs/agents/ppo-dynamic.yaml``) is trained once per training seed into ``OUT/SETTING/ppo-dynamic-sSEED``
(skipped when ``model.zip`` is there). The best fixed common cut is chosen on training seeds 2000...
Then ``psl bench --hindsight on`` runs the trained policies and the causal baselines (``epsl-bcd``,
``epsl-bcd:migration_aware=false``, ``hysteresis``, ``mpc``, ``epsl-bcd:cut=J``) on held-out
episodes (seeds 1000..), every method on the same realized episodes. Per agent, each training seed's
mean latency and gap to the hindsight figure is one sample: IQM over seeds with a 95% bootstrap CI.
"Closed" is the share of epsl-bcd's gap to the hindsight figure the agent removes,
(gap_epsl-bcd - gap_agent) / gap_epsl-bcd. ``OUT/summary.json`` and ``OUT/summary.md`` hold the tables.

    python benchmarks/bench_sequential.py               # smoke (make bench): 1 seed, 2048 steps, short episodes
    python benchmarks/bench_sequential.py --full --out runs/sequential   # docs/results.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_agents import bootstrap_iqm_ci, iqm, train_run  # noqa: E402
from bench_best_cut import best_common_cut  # noqa: E402

SCENARIO = "dynamic-edge"
SETTINGS = {"dynamic-edge": [], "narrow-band": ["channel.subchannel_bw_hz=2e5"]}
AGENT = ("ppo-dynamic", ROOT / "configs" / "agents" / "ppo-dynamic.yaml", 100_000)
BASELINES = ("epsl-bcd", "epsl-bcd:migration_aware=false", "hysteresis", "mpc")
BENCH_SEED = 1000
SELECT_SEED = 2000


def summarize(res: dict, specs: list[str], baselines: list[str]) -> dict:
    methods = res["methods"]
    bcd_gap = methods["epsl-bcd"]["gap_to_hindsight"]["mean"]
    rows = {}
    if specs:
        means = np.array([methods[s]["mean_latency_s"] for s in specs])
        gaps = np.array([methods[s]["gap_to_hindsight"]["mean"] for s in specs])
        to_bcd = means / methods["epsl-bcd"]["mean_latency_s"] - 1.0
        rows[AGENT[0]] = {"seeds": len(specs), "per_seed_mean_s": means.tolist(), "mean_s": float(means.mean()),
                          "iqm_s": iqm(means),
                          "ci95_s": bootstrap_iqm_ci(means), "per_seed_gap_to_hindsight": gaps.tolist(),
                          "gap_to_hindsight_iqm": iqm(gaps), "gap_to_hindsight_ci95": bootstrap_iqm_ci(gaps),
                          "gap_to_epsl-bcd_iqm": iqm(to_bcd), "gap_to_epsl-bcd_ci95": bootstrap_iqm_ci(to_bcd),
                          "closed": (bcd_gap - iqm(gaps)) / bcd_gap if bcd_gap > 0 else None,
                          "decision_ms": float(np.mean([methods[s]["decision_ms_mean"] for s in specs]))}
    for name in baselines:
        m = methods[name]
        gap = m["gap_to_hindsight"]["mean"]
        rows[name] = {"mean_s": m["mean_latency_s"], "iqm_s": m["iqm_latency_s"], "ci95_s": m["ci95_latency_s"],
                      "gap_to_hindsight_iqm": gap,
                      "gap_to_epsl-bcd_iqm": m["mean_latency_s"] / methods["epsl-bcd"]["mean_latency_s"] - 1.0,
                      "closed": (bcd_gap - gap) / bcd_gap if bcd_gap > 0 else None,
                      "decision_ms": m["decision_ms_mean"]}
    return rows


def markdown(setting: str, rows: dict, res: dict) -> str:
    hind = res["hindsight"]
    lines = [f"### {setting} ({res['episodes']} held-out episodes x {res['rounds']} rounds, seeds "
             f"{BENCH_SEED}..{BENCH_SEED + res['episodes'] - 1}; hindsight {res['hindsight_latency_s']:.4g} s per "
             f"round, a {hind['kind']})", "",
             "| method | seeds | mean latency s | IQM s | 95% CI s | gap to hindsight (IQM) | gap CI | vs epsl-bcd | "
             "share of epsl-bcd's gap closed | decision ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lo, hi = r["ci95_s"]
        ci = r.get("gap_to_hindsight_ci95")
        closed = "-" if r["closed"] is None else f"{r['closed']:+.0%}"
        lines.append(f"| {name} | {r.get('seeds', '-')} | {r['mean_s']:.4f} | {r['iqm_s']:.4f} | [{lo:.4f}, {hi:.4f}] | "
                     f"{r['gap_to_hindsight_iqm']:+.2%} | {'-' if ci is None else f'[{ci[0]:+.2%}, {ci[1]:+.2%}]'} | "
                     f"{r['gap_to_epsl-bcd_iqm']:+.2%} | {closed} | {r['decision_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--seeds", default=None, help="training seeds (default 0..4 with --full, else 0)")
    p.add_argument("--timesteps", type=int, default=None)
    p.add_argument("--episodes", type=int, default=None, help="held-out episodes (default 10 with --full, else 1)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per episode (default 60 with --full, else 6)")
    p.add_argument("--full", action="store_true")
    args = p.parse_args(argv)
    full = args.full
    seeds = [int(s) for s in (args.seeds or ("0,1,2,3,4" if full else "0")).split(",") if s]
    episodes = args.episodes or (10 if full else 1)
    rounds = args.rounds or (60 if full else 6)
    timesteps = args.timesteps or (AGENT[2] if full else 2048)
    out = Path(args.out or ("runs/sequential" if full else "runs/sequential-smoke"))
    settings = [s for s in args.settings.split(",") if s]
    for s in settings:
        if s not in SETTINGS:
            p.error(f"--settings: {s!r} is not allowed; allowed: {list(SETTINGS)}")
    from trainers.bench import run_benchmark

    summary, md = {}, ["# Sequential scheduling: learned against hindsight", ""]
    for s in settings:
        t0 = time.perf_counter()
        specs = []
        for seed in seeds:
            run_dir, secs = train_run(AGENT[1], SCENARIO, SETTINGS[s], seed, timesteps,
                                      out / s / f"{AGENT[0]}-s{seed}", out / s / f"{AGENT[0]}-s{seed}.log")
            print(f"{s} seed {seed}: " + (f"{run_dir} ({secs:.0f} s)" if run_dir else "FAILED (see the log)"),
                  flush=True)
            if run_dir:
                specs.append(f"ppo:{run_dir}")
        cut, _ = best_common_cut(SCENARIO, SETTINGS[s], rounds, 2, SELECT_SEED)
        baselines = [*BASELINES, f"epsl-bcd:cut={cut}"]
        res = run_benchmark(SCENARIO, specs + baselines, rounds, episodes, BENCH_SEED, out / s / "bench",
                            overrides=SETTINGS[s], hindsight="on")
        rows = summarize(res, specs, baselines)
        summary[s] = {"overrides": SETTINGS[s], "best_fixed_cut": cut, "rows": rows, "command": res["command"],
                      "hindsight": res["hindsight"], "hindsight_latency_s": res["hindsight_latency_s"],
                      "timesteps": timesteps, "wall_s": time.perf_counter() - t0}
        md.append(markdown(s, rows, res))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"wrote {out}/summary.json, summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
