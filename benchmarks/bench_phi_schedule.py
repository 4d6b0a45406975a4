"""Time to 95% digits accuracy when EPSL's phi (and the cut) are decided per round with the real training in the loop.

Every method plays whole episodes of ``PSLTrain-v0`` with ``phi_action=True`` on ``digits-train``
under ``scheme: epsl`` (small CNN, N = 5, b = 32) until the held-out accuracy reaches the target or
the round budget ends (an episode that ends at the budget is scored with the budget's simulated
time and counted as not reaching the target). Episodes are seeded 100, 101, ... (held out from the
agents' training, which starts from seeds 0 and 1): every method meets the same data partitions,
initial weights, devices and channel draws on a seed.

Methods (one interface, ``PhiMethod.act``):

- ``epsl-bcd@phi=p``: EPSL-BCD's allocation (cut, subchannels, power) at a fixed phi p, for every p of the grid;
- ``epsl-bcd@schedule``: EPSL-BCD under a simple phi schedule, high early, low late (``--schedule``);
- ``ppo-phi``: a trained policy choosing the cut and phi (``configs/agents/ppo-phi.yaml``; ``--ppo``);
- ``ppo-phi-bcd-cut``: the ablation, the same agent choosing phi only, the cut EPSL-BCD's (``--ablation``);
- ``fixed cut j@phi=0`` (``--fixed-cuts``): context, a fixed cut at phi = 0 (resources by the EPSL-BCD inner solver);
- ``cut schedule S@phi=0`` (``--cut-schedule 2:150,4``): context, a non-learned cut schedule at phi = 0.

Prints per-seed times, each method's IQM with a 95% bootstrap CI over seeds, the best fixed phi per
seed in hindsight and the single phi best across seeds, and the learned methods' time relative to
the best fixed phi of each seed.

Usage: python benchmarks/bench_phi_schedule.py [--seeds 100 101 102 103 104] [--max-rounds 1500]
       [--ppo RUN_DIR] [--ablation RUN_DIR] [--schedule 1.0:60,0.75:60,0.5:60,0.25:60,0.0]
       [--fixed-cuts 1 2 3] [--cut-schedule 2:150,4 ...] [--cache FILE] [--only METHOD,...]

``--cache FILE`` keeps every finished episode (JSON, by method, seed and settings) and reuses it, so
the baselines can run once while agents train.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agents.epsl_bcd import EPSLBCDOptimizer
from psl_env.envs.phi_action import PHI_GRID
from trainers.report import bootstrap_ci, iqm
from trainers.sb3_env import TRAIN_ENV_ID, make_single_env

SCENARIO = "digits-train"
OVERRIDES = {"scheme": "epsl", "phi": 0.0}
DEFAULT_SCHEDULE = "1.0:60,0.75:60,0.5:60,0.25:60,0.0"


class PhiMethod:
    """A decision maker of phi-action episodes: ``act`` returns the env action of the current round.

    Attributes:
        name: the table's label; env_config, wrappers: the env it plays (``make_single_env``).
    """

    name = "method"
    env_config: dict = {}
    wrappers: list = []

    def reset(self, env: Any, seed: int) -> None:
        """Start an episode of ``env`` (already reset with ``seed``)."""

    def act(self, env: Any, obs: np.ndarray) -> Any:
        raise NotImplementedError


class OptimizerAtPhi(PhiMethod):
    """EPSL-BCD's allocation at the phi ``phi_of(round)``: a ``DecisionMaker`` per grid phi (its
    per-cut tables), deciding on the round's ``Observation``; the allocation is played exactly
    (``dict`` codec) with that phi."""

    env_config = {"action_type": "dict"}

    def __init__(self, name: str, phi_of: Callable[[int], float]) -> None:
        self.name = name
        self.phi_of = phi_of
        self._makers: list | None = None
        self._round = 0

    def reset(self, env: Any, seed: int) -> None:
        base = env.unwrapped
        if self._makers is None:
            self._makers = [EPSLBCDOptimizer(model) for model in base.phi_models]
        for maker in self._makers:
            maker.reset(seed)
        self._round = 0

    def act(self, env: Any, obs: np.ndarray) -> Any:
        base = env.unwrapped
        idx = base.phi_choice.index_of(self.phi_of(self._round))
        seen = base.observation()
        alloc = self._makers[idx].decide(seen)
        self._round += 1
        return base.phi_choice.join(base.codec.encode(alloc, seen), idx)


class CutPlanAtPhi(PhiMethod):
    """Context for the cut: a common cut that follows ``cut_of(round)`` (one fixed cut, or a schedule)
    at a fixed phi, subchannels and power by the EPSL-BCD inner solver at that cut (the ``assisted``
    codec, which prices the migration when the cut changes)."""

    env_config = {"action_type": "assisted"}

    def __init__(self, name: str, cut_of: Callable[[int], int], phi: float) -> None:
        self.name = name
        self.cut_of = cut_of
        self.phi = float(phi)
        self._round = 0

    def reset(self, env: Any, seed: int) -> None:
        self._round = 0

    def act(self, env: Any, obs: np.ndarray) -> Any:
        choice = env.unwrapped.phi_choice
        cut = self.cut_of(self._round)
        self._round += 1
        return choice.join(np.int64(cut - 1), choice.index_of(self.phi))


class TrainedPhiPolicy(PhiMethod):
    """A policy of a ``psl train`` run on PSLTrain-v0 with ``phi_action`` (its env config and wrappers),
    deterministic, on observations normalized with the run's saved statistics."""

    def __init__(self, name: str, run_dir: str) -> None:
        import yaml  # noqa: PLC0415
        from stable_baselines3 import PPO  # noqa: PLC0415
        from stable_baselines3.common.save_util import load_from_pkl  # noqa: PLC0415

        run = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        self.name = name
        zip_path = Path(run_dir) / "model.zip"
        norm = Path(run_dir) / "vecnormalize.pkl"
        if not zip_path.is_file():  # an interrupted run: its newest checkpoint
            ckpts = sorted((Path(run_dir) / "checkpoints").glob("ckpt_*_steps.zip"),
                           key=lambda p: int(p.stem.split("_")[1]))
            zip_path = ckpts[-1]
            norm = zip_path.with_name(zip_path.stem[: -len("_steps")] + "_vecnormalize.pkl")
        self.model = PPO.load(str(zip_path), device="cpu")
        self.normalizer = load_from_pkl(str(norm)) if norm.is_file() else None
        self.steps = int(self.model.num_timesteps)
        self.env_config = {k: v for k, v in run["env_config"].items() if k not in ("scenario", "overrides")}
        entry = run["agent"][TRAIN_ENV_ID]
        self.wrappers = entry.get("env_wrapper") or []

    def act(self, env: Any, obs: np.ndarray) -> Any:
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs[None]).astype(np.float32)[0]
        action, _ = self.model.predict(obs, deterministic=True)
        return action


def parse_schedule(text: str, flag: str = "--schedule", kind: Callable = float,
                   valid: Callable[[Any], bool] = lambda v: v in PHI_GRID,
                   what: str = f"phi in {list(PHI_GRID)}") -> Callable[[int], Any]:
    """``"1.0:60,0.5:60,0.0"``: 1.0 for 60 rounds, then 0.5 for 60, then 0.0 for the rest (phis; with
    ``kind=int`` and its own ``valid``, cuts)."""
    steps = []
    try:
        for part in text.split(","):
            value, _, rounds = part.partition(":")
            steps.append((kind(value), int(rounds) if rounds else None))
    except ValueError:
        steps = []
    if (not steps or steps[-1][1] is not None or any(r is None or r < 1 for _, r in steps[:-1])
            or not all(valid(v) for v, _ in steps)):
        raise ValueError(f"{flag}: {text!r} is not allowed; allowed: VALUE:ROUNDS,...,VALUE with {what}")
    bounds = np.cumsum([r for _, r in steps[:-1]])

    def value_of(rnd: int) -> Any:
        return steps[int(np.searchsorted(bounds, rnd, side="right"))][0]

    return value_of


def parse_cut_schedule(text: str) -> Callable[[int], int]:
    """``"2:150,4"``: cut 2 for 150 rounds, then cut 4 for the rest."""
    return parse_schedule(text, "--cut-schedule", int, lambda v: v >= 1, "VALUE a cut >= 1")


def run_episode(env: Any, method: PhiMethod, seed: int) -> dict[str, Any]:
    """One episode to the target or the budget; its simulated time, rounds and the phis and cuts played."""
    obs, info = env.reset(seed=seed)
    method.reset(env, seed)
    phis, cuts = [], []
    t0 = time.perf_counter()
    while True:
        obs, _, terminated, truncated, info = env.step(method.act(env, obs))
        phis.append(info["phi"])
        cuts.append(int(info["allocation"]["cut"][0]))
        if terminated or truncated:
            break
    return {"sim_s": info["sim_time_s"], "reached": bool(terminated), "rounds": len(phis),
            "mean_phi": float(np.mean(phis)), "cuts": np.bincount(cuts).tolist(), "wall_s": time.perf_counter() - t0,
            "accuracy": info["accuracy"]}


def iqm_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """IQM and its 95% bootstrap CI over the values (seeds)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = bootstrap_ci(v, seed=seed, statistic=lambda s: np.apply_along_axis(iqm, 1, s))
    return iqm(v), lo, hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    ap.add_argument("--max-rounds", type=int, default=1500, help="round budget of an episode")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--ppo", default=None, help="run folder of ppo-phi (psl train)")
    ap.add_argument("--ablation", default=None, help="run folder of ppo-phi-bcd-cut (psl train)")
    ap.add_argument("--schedule", default=DEFAULT_SCHEDULE, help="PHI:ROUNDS,...,PHI (high early, low late)")
    ap.add_argument("--fixed", type=float, nargs="*", default=list(PHI_GRID), help="fixed phis of EPSL-BCD")
    ap.add_argument("--fixed-cuts", type=int, nargs="*", default=[], help="also fixed common cuts at phi = 0 "
                                                                          "(context: what the cut alone changes)")
    ap.add_argument("--cut-schedule", nargs="*", default=[], help="also cut schedules at phi = 0, CUT:ROUNDS,...,CUT "
                                                                   "(context: a non-learned cut schedule, e.g. 2:150,4)")
    ap.add_argument("--cache", default=None, help="JSON file of finished episodes to reuse and extend")
    ap.add_argument("--only", default=None, help="comma-separated method names: play only these (e.g. one "
                                                  "agent per process), print nothing but their episodes")
    args = ap.parse_args(argv)
    overrides = {**OVERRIDES, "rounds": args.max_rounds, "training.target_accuracy": args.target}
    methods: list[PhiMethod] = [OptimizerAtPhi(f"epsl-bcd@phi={p:g}", lambda r, p=p: p) for p in args.fixed]
    methods.append(OptimizerAtPhi("epsl-bcd@schedule", parse_schedule(args.schedule)))
    methods += [CutPlanAtPhi(f"fixed cut {cut}@phi=0", lambda r, cut=cut: cut, 0.0) for cut in args.fixed_cuts]
    methods += [CutPlanAtPhi(f"cut schedule {text}@phi=0", parse_cut_schedule(text), 0.0) for text in args.cut_schedule]
    for label, run in (("ppo-phi", args.ppo), ("ppo-phi-bcd-cut", args.ablation)):
        if run:
            methods.append(TrainedPhiPolicy(label, run))

    if args.only:
        keep = set(args.only.split(","))
        methods = [m for m in methods if m.name in keep]
    print(f"# time to {args.target:.0%} held-out accuracy, {SCENARIO} under EPSL with phi per round; "
          f"budget {args.max_rounds} rounds; seeds {args.seeds}")
    print(f"schedule: {args.schedule}; " + "; ".join(f"{m.name}: {m.steps} training steps"
                                                   for m in methods if isinstance(m, TrainedPhiPolicy)))
    print("\n| method | seed | simulated s | reached | rounds | mean phi | cuts used (count by cut) | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict[str, list[dict]] = {}
    cache_path = Path(args.cache) if args.cache else None
    cache = json.loads(cache_path.read_text()) if cache_path is not None and cache_path.is_file() else {}
    for method in methods:
        env = None
        results[method.name] = []
        for seed in args.seeds:
            key = f"{method.name}|{seed}|{args.max_rounds}|{args.target}|{args.schedule}|{getattr(method, 'steps', '')}"
            r = cache.get(key)
            if r is None:
                env = env or make_single_env(TRAIN_ENV_ID, {"scenario": SCENARIO, "overrides": overrides,
                                                            "phi_action": True, **method.env_config}, method.wrappers)
                r = run_episode(env, method, seed)
                if cache_path is not None:  # re-read: another process may have added episodes
                    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
                    cache[key] = r
                    cache_path.write_text(json.dumps(cache))
            results[method.name].append(r)
            cuts = {j: c for j, c in enumerate(r["cuts"]) if c}
            print(f"| {method.name} | {seed} | {r['sim_s']:.2f} | {'yes' if r['reached'] else 'no'} | {r['rounds']} "
                  f"| {r['mean_phi']:.2f} | {cuts} | {r['wall_s']:.0f} |", flush=True)
        if env is not None:
            env.close()

    if args.only:
        return 0
    times = {name: np.array([r["sim_s"] for r in rs]) for name, rs in results.items()}
    fixed = [m.name for m in methods if m.name.startswith("epsl-bcd@phi=")]
    best_per_seed = np.min(np.stack([times[n] for n in fixed]), axis=0)
    times["best fixed phi per seed (hindsight)"] = best_per_seed
    single = min(fixed, key=lambda n: (iqm(times[n]), float(np.mean(times[n]))))
    print("\n| method | IQM simulated s to target [95% CI] | mean s | reached |")
    print("|---|---|---|---|")
    for name, t in times.items():
        m, lo, hi = iqm_ci(t)
        reached = sum(r["reached"] for r in results[name]) if name in results else "-"
        mark = " (single best across seeds)" if name == single else ""
        print(f"| {name}{mark} | {m:.2f} [{lo:.2f}, {hi:.2f}] | {t.mean():.2f} | "
              f"{reached}/{len(args.seeds)} |" if name in results else f"| {name} | {m:.2f} [{lo:.2f}, {hi:.2f}] "
              f"| {t.mean():.2f} | - |")
    print(f"\nbest fixed phi per seed: {[fixed[i] for i in np.argmin(np.stack([times[n] for n in fixed]), axis=0)]}")
    print("\n| method | time / best fixed phi per seed, IQM [95% CI] | per seed | "
          "time / single best phi, IQM [95% CI] |")
    print("|---|---|---|---|")
    for name in [m.name for m in methods if m.name not in fixed]:
        ratio = times[name] / best_per_seed
        single_ratio = times[name] / times[single]
        m, lo, hi = iqm_ci(ratio)
        sm, slo, shi = iqm_ci(single_ratio)
        print(f"| {name} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {', '.join(f'{x:.3f}' for x in ratio)} | "
              f"{sm:.3f} [{slo:.3f}, {shi:.3f}] |")
    print("\ntarget: a learned schedule at <= 0.900 x the best fixed phi per seed (IQM)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
