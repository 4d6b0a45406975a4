"""Learned schedulers against the optimizers: train every agent over several seeds, benchmark them all
on the same held-out episodes, print the table of ``docs/results.md``.

    python benchmarks/bench_agents.py                 # a smoke run (make bench): 2 seeds, few steps and rounds
    python benchmarks/bench_agents.py --full          # the docs/results.md table (about an hour on 2 cores)
    python benchmarks/bench_agents.py --full --settings perfect --agents ppo

For each setting (``perfect``: ``epsl-resnet18`` as shipped; ``delayed``: the same with
``csi=delayed``, the decisions see last round's gains, migration charged as everywhere) and agent
(``configs/agents/*.yaml``), ``psl train`` runs once per training seed into
``OUT/SETTING/AGENT-sSEED`` (skipped when ``model.zip`` is already there). Then ``psl bench``
runs every trained policy and the optimizers on the same held-out episodes (seeds 1000..) into
``OUT/SETTING/bench``. Per agent, each training seed's mean latency is one sample: the table gives
the IQM over seeds and a 95% bootstrap CI over seeds, and the gap to ``epsl-bcd`` per seed (mean
latency ratio - 1), also as IQM with CI. Optimizers are deterministic: their row is their mean over
the benchmark rounds with the rounds' bootstrap CI. ``OUT/summary.json`` and ``OUT/summary.md``
hold the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIO = "epsl-resnet18"
SETTINGS = {"perfect": [], "delayed": ["csi=delayed"]}
AGENTS = {  # name -> (config, timesteps, algo)
    "ppo": ("configs/agents/ppo.yaml", 100_000, "ppo"),
    "ppo-box": ("configs/agents/ppo-box.yaml", 200_000, "ppo"),
    "sac": ("configs/agents/sac.yaml", 100_000, "sac"),
}
BASELINES = ("epsl-bcd", "edgesplit-alt", "greedy", "fixed", "random")
BENCH_SEED = 1000


def iqm(x: np.ndarray) -> float:
    x = np.sort(np.asarray(x, dtype=float))
    cut = int(np.floor(0.25 * x.size))
    mid = x[cut: x.size - cut]
    return float(mid.mean() if mid.size else x.mean())


def bootstrap_iqm_ci(x: np.ndarray, seed: int = 0, n: int = 5000) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    stats = [iqm(x[rng.integers(0, x.size, x.size)]) for _ in range(n)]
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)


def train_run(config: Path, scenario: str, overrides: list[str], seed: int, timesteps: int, run_dir: Path,
              log: Path) -> tuple[str, float]:
    """One ``psl train`` in a subprocess (one BLAS thread), skipped when ``run_dir/model.zip`` exists.
    Returns (run folder, or "" when it failed; seconds)."""
    if (run_dir / "model.zip").is_file():
        return str(run_dir), 0.0
    cmd = [sys.executable, "-m", "trainers.cli", "train", "--config", str(config), "--scenario", scenario,
           "--seed", str(seed), "--timesteps", str(timesteps), "--out", str(run_dir), "--no-progress"]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code != 0 or not (run_dir / "model.zip").is_file():
        return "", time.perf_counter() - t0  # failed: reported, left out of the table
    return str(run_dir), time.perf_counter() - t0


def train_one(setting: str, agent: str, seed: int, out: Path, timesteps: int | None) -> tuple[str, float]:
    cfg, default_steps, _ = AGENTS[agent]
    return train_run(ROOT / cfg, SCENARIO, SETTINGS[setting], seed, timesteps or default_steps,
                     out / setting / f"{agent}-s{seed}", out / setting / f"{agent}-s{seed}.log")


def perfect_csi_bound(overrides: list[str], rounds: int, episodes: int) -> dict:
    """``epsl-bcd`` deciding on the true gains of delayed-CSI rounds (not causal: a bound on what
    knowing the current gains is worth) next to ``epsl-bcd`` on the stale gains, same episodes."""
    from agents.registry import make_decision_maker
    from psl_env.system.scenario import load_scenario
    from psl_env.system.simulator import NetworkSimulator
    import dataclasses

    scen = load_scenario(SCENARIO, overrides)
    out = {}
    for label, true_gains in (("stale", False), ("true", True)):
        sim = NetworkSimulator(scen)
        dm = make_decision_maker("epsl-bcd", sim.latency_model)
        lat = []
        for ep in range(episodes):
            state = sim.reset(BENCH_SEED + ep)
            for _ in range(rounds):
                seen = state.observation()
                if true_gains:  # an oracle of the CSI: the decision sees this round's true gains
                    seen = dataclasses.replace(seen, gains=state.gains)
                latency, state = sim.step(dm.decide(seen))
                lat.append(latency.total)
        out[label] = float(np.mean(lat))
    out["true_vs_stale"] = out["true"] / out["stale"] - 1.0
    return out


def summarize(res: dict, runs: dict[str, list[str]]) -> dict:
    methods = res["methods"]
    per_round = res["per_round"]
    bcd = per_round["epsl-bcd"]["latency_s"]
    rows = {}
    for agent, specs in runs.items():
        means = np.array([per_round[s]["latency_s"].mean() for s in specs])
        gaps = np.array([per_round[s]["latency_s"].mean() / bcd.mean() - 1.0 for s in specs])
        dec = np.array([methods[s]["decision_ms_mean"] for s in specs])
        rows[agent] = {"kind": "agent", "seeds": len(specs), "per_seed_mean_s": means.tolist(),
                       "iqm_s": iqm(means), "ci95_s": bootstrap_iqm_ci(means), "mean_s": float(means.mean()),
                       "gap_to_epsl-bcd_iqm": iqm(gaps), "gap_to_epsl-bcd_ci95": bootstrap_iqm_ci(gaps),
                       "per_seed_gap": gaps.tolist(), "decision_ms": float(dec.mean())}
    for name in BASELINES:
        m = methods[name]
        rows[name] = {"kind": "optimizer" if name in ("epsl-bcd", "edgesplit-alt", "greedy") else "reference",
                      "mean_s": m["mean_latency_s"], "iqm_s": m["iqm_latency_s"], "ci95_s": m["ci95_latency_s"],
                      "gap_to_epsl-bcd_iqm": m["mean_latency_s"] / float(bcd.mean()) - 1.0,
                      "decision_ms": m["decision_ms_mean"]}
    return rows


def markdown(setting: str, rows: dict, bench: dict) -> str:
    lines = [f"### {setting} CSI ({bench['episodes']} held-out episodes x {bench['rounds']} rounds, seeds "
             f"{BENCH_SEED}..{BENCH_SEED + bench['episodes'] - 1})", "",
             "| method | seeds | mean latency s | IQM s | 95% CI s | gap to epsl-bcd (IQM) | gap 95% CI | decision ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lo, hi = r["ci95_s"]
        gap_ci = r.get("gap_to_epsl-bcd_ci95")
        gap_ci_text = f"[{gap_ci[0]:+.1%}, {gap_ci[1]:+.1%}]" if gap_ci else "-"
        lines.append(f"| {name} | {r.get('seeds', '-')} | {r['mean_s']:.3f} | {r['iqm_s']:.3f} | [{lo:.3f}, {hi:.3f}] "
                     f"| {r['gap_to_epsl-bcd_iqm']:+.1%} | {gap_ci_text} | {r['decision_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/agents")
    p.add_argument("--settings", default="perfect,delayed")
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--seeds", default=None, help="training seeds (default 0,1,2,3,4 with --full, else 0,1)")
    p.add_argument("--timesteps", type=int, default=None, help="override every agent's training steps")
    p.add_argument("--episodes", type=int, default=None, help="benchmark episodes (default 10 with --full, else 2)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per episode (default 100 with --full, else 10)")
    p.add_argument("--jobs", type=int, default=2, help="training runs in parallel")
    p.add_argument("--full", action="store_true", help="the full protocol of docs/results.md")
    args = p.parse_args(argv)
    full = args.full
    args.seeds = args.seeds or ("0,1,2,3,4" if full else "0,1")
    args.episodes = args.episodes or (10 if full else 2)
    args.rounds = args.rounds or (100 if full else 10)
    if not full:
        args.timesteps = args.timesteps or 4096
        if args.out == "runs/agents":
            args.out = "runs/agents-smoke"
    out = Path(args.out)
    settings = [s for s in args.settings.split(",") if s]
    agents = [a for a in args.agents.split(",") if a]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for s in settings:
        if s not in SETTINGS:
            p.error(f"--settings: {s!r} is not allowed; allowed: {list(SETTINGS)}")
    for a in agents:
        if a not in AGENTS:
            p.error(f"--agents: {a!r} is not allowed; allowed: {list(AGENTS)}")

    jobs = [(s, a, seed) for s in settings for a in agents for seed in seeds]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        done = list(pool.map(lambda j: (j, train_one(j[0], j[1], j[2], out, args.timesteps)), jobs))
    failed = set()
    for (s, a, seed), (run_dir, secs) in done:
        if not run_dir:
            failed.add((s, a, seed))
            print(f"FAILED {s}/{a} seed {seed}: see {out / s / f'{a}-s{seed}.log'}")
            continue
        print(f"trained {s}/{a} seed {seed}: {run_dir}" + (f" ({secs:.0f} s)" if secs else " (cached)"))
    print(f"training: {time.perf_counter() - t0:.0f} s")

    from trainers.bench import run_benchmark

    summary = {}
    md = ["# Learned schedulers against the optimizers", ""]
    if not full:
        md += [f"Smoke run ({args.timesteps} training steps per agent): checks the pipeline, not the agents; "
               "`--full` gives the figures of docs/results.md.", ""]
    for s in settings:
        runs = {a: [f"{AGENTS[a][2]}:{out / s / f'{a}-s{seed}'}" for seed in seeds if (s, a, seed) not in failed]
                for a in agents}
        runs = {a: specs for a, specs in runs.items() if specs}
        methods = [spec for specs in runs.values() for spec in specs] + list(BASELINES)
        t1 = time.perf_counter()
        res = run_benchmark(SCENARIO, methods, args.rounds, args.episodes, BENCH_SEED, out / s / "bench",
                            overrides=SETTINGS[s])
        rows = summarize(res, runs)
        summary[s] = {"scenario": SCENARIO, "overrides": SETTINGS[s], "rows": rows, "command": res["command"],
                      "rounds": args.rounds, "episodes": args.episodes}
        md.append(markdown(s, rows, res))
        if "csi=delayed" in SETTINGS[s]:
            bound = perfect_csi_bound(SETTINGS[s], args.rounds, args.episodes)
            summary[s]["perfect_csi_bound"] = bound
            md.append(f"epsl-bcd on the stale gains: {bound['stale']:.3f} s; the same optimizer told the true "
                      f"gains (not causal): {bound['true']:.3f} s ({bound['true_vs_stale']:+.1%}).\n")
        print(f"benchmark {s}: {time.perf_counter() - t1:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
