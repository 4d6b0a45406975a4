"""Environment speed: steps per second of PSLEnv (single) and PSLVectorEnv (batched).

Default setting: N = 10 clients, M = 20 subchannels, ResNet-18 at 3x64x64 (profile resnet18-64,
scenario epsl-resnet18), ``box`` actions drawn uniformly in advance (the policy is not timed),
episode resets included. Each measurement is repeated; the best and the median repeat are shown
(the best is the least disturbed by other load on the machine).

Speed differs between machines, so the script also prints ratios measured in the same run:

- to a plain-numpy yardstick of one round's physics on the same shapes (fresh CN(0, 1) fading
  draws for K x N x M subchannels, their gains, log2 rates summed per client and the per-env
  bottleneck time), K = 1 and K = num_envs;
- with ``--compare DIR``, to another checkout of the package (e.g. an older commit in a git
  worktree): both are timed by this script, in subprocesses taking turns, in one run.

    python benchmarks/bench_env.py                    # single env and K = 1024
    python benchmarks/bench_env.py --compare ../old-checkout --rounds 3
    python benchmarks/bench_env.py --num-envs 256 --action-type multidiscrete --repeats 5
    python benchmarks/bench_env.py --backend numpy    # without the compiled kernels
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def random_actions(space, count: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(count)]


def time_single(env, steps: int, repeats: int, seed: int) -> list[float]:
    actions = random_actions(env.action_space, min(steps, 4096), seed)
    env.reset(seed=seed)
    for a in actions[:50]:  # warm-up
        env.step(a)
    rates = []
    for _ in range(repeats):
        env.reset(seed=seed)
        t0 = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - t0))
    return rates


def time_vector(env, steps: int, repeats: int, seed: int) -> list[float]:
    actions = random_actions(env.action_space, 16, seed)
    env.reset(seed=seed)
    for a in actions[:3]:  # warm-up
        env.step(a)
    rates = []
    for _ in range(repeats):
        env.reset(seed=seed)
        t0 = time.perf_counter()
        for i in range(steps):
            env.step(actions[i % len(actions)])
        rates.append(steps * env.num_envs / (time.perf_counter() - t0))
    return rates


def yardstick(k: int, n: int, m: int, steps: int, repeats: int) -> list[float]:
    """env-steps/s of the round's bare physics in plain numpy (see the module docstring)."""
    rng = np.random.default_rng(0)
    large = 10.0 ** rng.uniform(-12, -9, (k, n, 1))
    power = np.full((k, n, m), 0.2 / m)
    bits = rng.uniform(1e5, 1e7, (k, n))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            h = rng.standard_normal((2, k, n, m))
            gains = (h[0] * h[0] + h[1] * h[1]) * large
            rate = 1e6 * np.log2(1.0 + power * gains * 2.5e11).sum(axis=2)
            (bits / rate).max(axis=1)
        rates.append(steps * k / (time.perf_counter() - t0))
    return rates


def measure(args: argparse.Namespace) -> dict:
    """The three environment measurements of the code importable here (this process's psl_env)."""
    import gymnasium as gym

    import psl_env  # noqa: F401 - registers the ids
    from psl_env.envs.psl_env import PSLEnv

    kwargs = {"scenario": args.scenario, "action_type": args.action_type, "backend": args.backend,
              "overrides": {"num_clients": args.clients, "num_subchannels": args.subchannels, "model": args.model}}
    if args.assignment:
        kwargs["action"] = {"assignment": args.assignment}
    threads = {"auto": "auto", "on": True, "off": False}[args.threads]
    single = PSLEnv(**kwargs)
    out = {"backend": "numba" if getattr(single.codec, "compiled", None) is not None else "numpy",
           "single": time_single(single, args.single_steps, args.repeats, args.seed)}
    made = gym.make("psl_env/PSL-v0", **kwargs)
    out["made"] = time_single(made, args.single_steps, args.repeats, args.seed)
    if args.num_envs > 0:
        vec = gym.make_vec("psl_env/PSL-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                           threads=threads, **kwargs)
        out["vector"] = time_vector(vec, args.vector_steps, args.repeats, args.seed)
        vec.close()
    return out


def _worker(tree: Path, argv: list[str]) -> dict:
    """``measure`` in a fresh process importing the package of ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(HERE / "bench_env.py"), "--worker", *argv], cwd=tree, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(name: str, k: int, rates: list[float], ref: list[float] | None, stick: list[float]) -> str:
    best = max(rates)
    cells = [name, str(k), f"{best:,.0f}", f"{statistics.median(rates):,.0f}"]
    if ref is not None:
        cells += [f"{max(ref):,.0f}", f"{best / max(ref):.2f}"]
    cells.append(f"{best / max(stick):.3f}")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="epsl-resnet18")
    ap.add_argument("--model", default="resnet18-64", help="profile (resnet18-32 or resnet18-64 for ResNet-18)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--subchannels", type=int, default=20)
    ap.add_argument("--action-type", default="box")
    ap.add_argument("--assignment", choices=("greedy", "proportional-fair"), default=None,
                    help="box / multidiscrete subchannel assignment (default: the codec's, greedy)")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--single-steps", type=int, default=5000)
    ap.add_argument("--vector-steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", choices=("auto", "on", "off"), default="auto",
                    help="worker thread for the vector env's random draws")
    ap.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto",
                    help="compiled kernels (numba, when installed) or the numpy code")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", type=Path, default=None, metavar="DIR",
                    help="another checkout of the package to time in the same run (ratio this / DIR)")
    ap.add_argument("--rounds", type=int, default=2, help="with --compare: turns each checkout takes")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return 0

    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    worker_argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    if "--compare" in worker_argv:  # the workers get every option but the comparison itself
        i = worker_argv.index("--compare")
        del worker_argv[i: i + 2]
    this_tree = HERE.parent
    runs: dict[str, dict[str, list[float]]] = {"this": {}, "other": {}}
    turns = [("this", this_tree)] + ([("other", args.compare.resolve())] if args.compare else [])
    backend = "?"
    for _ in range(args.rounds if args.compare else 1):
        for label, tree in turns:
            got = _worker(tree, worker_argv)
            backend = got.pop("backend") if label == "this" else backend
            got.pop("backend", None)
            for key, rates in got.items():
                runs[label].setdefault(key, []).extend(rates)
    n, m = args.clients, args.subchannels
    stick_one = yardstick(1, n, m, args.single_steps, args.repeats)
    stick_k = yardstick(args.num_envs, n, m, args.vector_steps, args.repeats) if args.num_envs > 0 else []
    print(f"scenario {args.scenario}, model {args.model}, N={n}, M={m}, action_type={args.action_type}, "
          f"assignment={args.assignment or 'greedy'}, backend={backend}; {os.cpu_count()} CPUs{load}")
    other = runs["other"] if args.compare else None
    head = "| environment | envs | env-steps/s (best) | median |"
    head += f" {args.compare} (best) | ratio |" if args.compare else ""
    print(f"\n{head} to yardstick |")
    print("|---|---:|---:|---:|" + ("---:|---:|" if args.compare else "") + "---:|")
    this = runs["this"]
    print(_row("PSLEnv (unwrapped)", 1, this["single"], other and other["single"], stick_one))
    print(_row('gym.make("psl_env/PSL-v0")', 1, this["made"], other and other["made"], stick_one))
    if args.num_envs > 0:
        print(_row("PSLVectorEnv", args.num_envs, this["vector"], other and other["vector"], stick_k))
    print(f"\nyardstick (plain numpy, the round's physics): K=1 {max(stick_one):,.0f} env-steps/s"
          + (f", K={args.num_envs} {max(stick_k):,.0f} env-steps/s" if stick_k else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
