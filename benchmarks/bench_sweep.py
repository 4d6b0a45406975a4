"""Wall time of a 4-trial sweep on a local Ray against the same trials one after another.

Writes one sweep file (2 learning rates x 2 seeds of a PPO config) and runs it twice with
``psl sweep``: on a local Ray with ``--num-cpus`` cores (one trial per core), and with
``--sequential`` (no Ray, one trial after another in one process), each into a fresh folder with a
fresh numba cache. Prints both wall times (start-up included), their ratio and each run's best
configuration (the same trials, so the same results; the times are what differs).

    python benchmarks/bench_sweep.py                        # smoke (make bench): small-exact, 256 steps a trial
    python benchmarks/bench_sweep.py --full --out runs/bench-sweep   # epsl-resnet18, 262144 steps a trial (docs/sweep.md)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweep_file(path: Path, full: bool) -> Path:
    """The 4-trial sweep: ``ppo-box`` at two learning rates x seeds 0 and 1."""
    spec = {"agent": "ppo-box", "scenario": "epsl-resnet18" if full else "small-exact",
            "timesteps": 262144 if full else 256, "seeds": [0, 1],
            "search": {"learning_rate": {"grid": [1e-4, 3e-4]}},
            "hyperparams": ({"n_envs": 16, "eval_freq": 131072} if full else
                            {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "eval_freq": 128,
                             "eval_episodes": 1, "eval_rounds": 5, "policy_kwargs.net_arch": [16]})}
    path.write_text(yaml.safe_dump(spec))
    return path


def run_sweep(spec: Path, out: Path, extra: list[str]) -> tuple[float, dict]:
    """One ``psl sweep`` into a fresh ``out``: (wall seconds, results.json)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "SB3_LOGDIR": str(out / "sb3"), "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "trainers.cli", "sweep", str(spec), "--out", str(out / "sweep"),
           "--numba-cache", str(out / "numba-cache"), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"psl sweep {' '.join(extra)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, json.loads((out / "sweep" / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="epsl-resnet18, 262144 steps a trial")
    ap.add_argument("--num-cpus", type=int, default=2, help="cores of the local Ray (default 2)")
    ap.add_argument("--out", default="runs/bench-sweep")
    args = ap.parse_args(argv)
    if not 1 <= args.num_cpus <= (os.cpu_count() or 1):
        ap.error(f"--num-cpus: {args.num_cpus} is not allowed; allowed: an integer in [1, {os.cpu_count()}]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = sweep_file(out / "sweep.yaml", args.full)
    ray_s, ray_res = run_sweep(spec, out / "ray", ["--num-cpus", str(args.num_cpus)])
    seq_s, seq_res = run_sweep(spec, out / "sequential", ["--sequential"])
    rows = [("local Ray", f"--num-cpus {args.num_cpus}", ray_s, ray_res), ("one after another", "--sequential",
                                                                            seq_s, seq_res)]
    lines = ["| run | flag | wall s | trials done | best configuration |", "|---|---|---|---|---|"]
    for name, flag, seconds, res in rows:
        done = sum(1 for t in res["trials"].values() if t["status"] == "done")
        lines.append(f"| {name} | `{flag}` | {seconds:.1f} | {done} | {res['best']} |")
    text = "\n".join(lines) + f"\n\nRay / sequential wall time: {ray_s / seq_s:.2f}\n"
    print(text)
    (out / "bench_sweep.md").write_text(text)
    (out / "bench_sweep.json").write_text(json.dumps({"full": args.full, "num_cpus": args.num_cpus, "ray_s": ray_s,
                                                      "sequential_s": seq_s, "ratio": ray_s / seq_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
