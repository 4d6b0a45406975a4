"""Environment speed: steps per second of PSLEnv (single) and PSLVectorEnv (batched).

Default setting: N = 10 clients, M = 20 subchannels, ResNet-18 at 3x64x64 (profile resnet18-64,
scenario epsl-resnet18), ``box`` actions drawn uniformly in advance (the policy is not timed),
episode resets included. Each measurement is repeated; the best and the median repeat are shown
(the best is the least disturbed by other load on the machine).

    python benchmarks/bench_env.py                    # single env and K = 1024
    python benchmarks/bench_env.py --num-envs 256 --action-type multidiscrete --repeats 5
    python benchmarks/bench_env.py --backend numpy    # without the compiled kernels
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import gymnasium as gym  # noqa: E402

import psl_env  # noqa: E402, F401 - registers the ids
from psl_env.envs.psl_env import PSLEnv  # noqa: E402
from psl_env.envs.vector import PSLVectorEnv  # noqa: E402


def random_actions(space: gym.Space, count: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(count)]


def time_single(env: gym.Env, steps: int, repeats: int, seed: int) -> list[float]:
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


def time_vector(env: PSLVectorEnv, steps: int, repeats: int, seed: int) -> list[float]:
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
    args = ap.parse_args(argv)

    kwargs = {"scenario": args.scenario, "action_type": args.action_type, "backend": args.backend,
              "overrides": {"num_clients": args.clients, "num_subchannels": args.subchannels, "model": args.model}}
    if args.assignment:
        kwargs["action"] = {"assignment": args.assignment}
    threads = {"auto": "auto", "on": True, "off": False}[args.threads]
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    single = PSLEnv(**kwargs)
    compiled = "numba" if single.codec.compiled is not None else "numpy"
    print(f"scenario {args.scenario}, model {args.model}, N={args.clients}, M={args.subchannels}, "
          f"action_type={args.action_type}, assignment={args.assignment or 'greedy'}, backend={compiled}; "
          f"{os.cpu_count()} CPUs{load}")
    rows = []
    rows.append(("PSLEnv (unwrapped)", 1, time_single(single, args.single_steps, args.repeats, args.seed)))
    made = gym.make("psl_env/PSL-v0", **kwargs)
    rows.append(('gym.make("psl_env/PSL-v0")', 1, time_single(made, args.single_steps, args.repeats, args.seed)))
    if args.num_envs > 0:
        vec = gym.make_vec("psl_env/PSL-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                           threads=threads, **kwargs)
        rows.append(("PSLVectorEnv", args.num_envs, time_vector(vec, args.vector_steps, args.repeats, args.seed)))
        vec.close()

    print(f"\n| environment | envs | env-steps/s (best) | env-steps/s (median of {args.repeats}) |")
    print("|---|---:|---:|---:|")
    for name, k, rates in rows:
        print(f"| {name} | {k} | {max(rates):,.0f} | {statistics.median(rates):,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
