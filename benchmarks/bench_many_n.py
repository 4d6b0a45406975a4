"""One policy for many client counts against policies trained on one N alone.

On ``epsl-resnet18`` with 16 subchannels, for each client count N of ``--ns``: the many-N policy
(``configs/agents/ppo-box-many-n.yaml``: PPO on the Box codec trained on N in 3..8 padded to 10, run
through ``trainers.padded_policy.PaddedPolicy``), the policy trained on that N alone
(``configs/agents/ppo-box.yaml`` with ``num_clients=N``), and EPSL-BCD for scale, every one a
``DecisionMaker`` deciding the same episodes (seeds 100, 101, ..., held out from training: the
same devices and channel draws for every method). A method's figure of an episode is its mean
round latency (s); the table gives the IQM over episodes with a 95% bootstrap CI, and the many-N
policy's latency over the specialist's, episode by episode.

Usage: python benchmarks/bench_many_n.py --many RUN --alone N=RUN [N=RUN ...] [--episodes 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.epsl_bcd import EPSLBCDOptimizer
from agents.sb3_policy import SB3Policy
from psl_env.envs.psl_env import PSLEnv
from trainers.padded_policy import PaddedPolicy
from trainers.report import bootstrap_ci, iqm

SCENARIO = "epsl-resnet18"
OVERRIDES = {"num_subchannels": 16}


def episode_latency(env: PSLEnv, maker, seed: int) -> float:
    """Mean round latency (s) of ``maker`` deciding a whole episode of ``env`` (``dict`` codec) seeded ``seed``."""
    env.reset(seed=seed)
    maker.reset(seed)
    lat = []
    while True:
        obs = env.observation()
        _, _, _, truncated, info = env.step(env.codec.encode(maker.decide(obs), obs))
        lat.append(info["latency_s"])
        if truncated:
            return float(np.mean(lat))


def iqm_ci(values: np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    lo, hi = bootstrap_ci(v, seed=0, statistic=lambda s: np.apply_along_axis(iqm, 1, s))
    return iqm(v), lo, hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--many", required=True, help="run folder of the many-N policy")
    ap.add_argument("--alone", nargs="+", required=True, metavar="N=RUN", help="run folder of a policy trained on N")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=100)
    args = ap.parse_args(argv)
    alone = {}
    for item in args.alone:
        n, _, run = item.partition("=")
        alone[int(n)] = run
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    print(f"# many-N policy vs one-N policies: {SCENARIO} with {OVERRIDES}, episodes seeded {seeds[0]}..{seeds[-1]}")
    print("figure: mean round latency of an episode (s); IQM over episodes [95% bootstrap CI]\n")
    print("| N | method | IQM latency s [95% CI] | many-N / this, IQM [95% CI] | wall s |")
    print("|---|---|---|---|---|")
    for n, run in sorted(alone.items()):
        env = PSLEnv(scenario=SCENARIO, action_type="dict", overrides={**OVERRIDES, "num_clients": n})
        model = env.latency_model
        makers = {"many-N (padded)": PaddedPolicy.load(args.many, model),
                  f"trained on N={n} alone": SB3Policy.load(run, model), "epsl-bcd": EPSLBCDOptimizer(model)}
        lat, wall = {}, {}
        for name, maker in makers.items():
            t0 = time.perf_counter()
            lat[name] = np.array([episode_latency(env, maker, s) for s in seeds])
            wall[name] = time.perf_counter() - t0
        many = lat["many-N (padded)"]
        for name, v in lat.items():
            m, lo, hi = iqm_ci(v)
            r, rlo, rhi = iqm_ci(many / v)
            print(f"| {n} | {name} | {m:.4f} [{lo:.4f}, {hi:.4f}] | {r:.4f} [{rlo:.4f}, {rhi:.4f}] | {wall[name]:.0f} |",
                  flush=True)
    print("\ntarget: many-N / trained on N alone <= 1.03 (IQM)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
