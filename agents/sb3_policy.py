"""Trained Stable-Baselines3 policies as decision makers (``psl bench --methods ppo:DIR``).

``SB3Policy`` answers ``decide(state) -> Allocation`` like every optimizer: it builds the
observation of the round exactly as the environment does (``PSLEnv.observation_of``, the same
encoder), normalizes it with the run's saved ``VecNormalize`` statistics, asks the policy for its
deterministic action and decodes it with the environment's codec (``Codec.decode``). The previous
round's latency ratio in the observation (latency over the fixed reference latency of that round)
is recomputed from what the scheduler saw: the previous round's gains (perfect CSI) or this round's
observed gains, which are last round's true gains (delayed CSI).

A run folder (``psl train --out DIR``) holds ``config.yaml`` (algorithm, env config, scenario),
``model.zip`` (SB3's format, ``PPO.load``) and ``vecnormalize.pkl`` when the run normalized
observations. Stable-Baselines3 is imported only when a policy is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from psl_env.config_files import brief, read_yaml
from psl_env.system.allocation import reference_allocation
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation

from .algorithms import ALGORITHMS
from .base import DecisionMaker

# algo name -> (module, class)
ALGO_CLASSES = {name: (module, cls) for name, (module, cls, _) in ALGORITHMS.items()}
# env config keys that shape what the policy sees and does (the scenario comes from the benchmark)
POLICY_ENV_KEYS = ("action_type", "action", "reward", "max_latency_ratio")


def _env_class():
    from psl_env.envs.psl_env import PSLEnv  # noqa: PLC0415

    return PSLEnv


class SB3Policy(DecisionMaker):
    """A trained SB3 policy deciding PSL rounds.

    Args:
        model: the latency model of the scenario to decide on.
        policy: anything with SB3's ``predict(obs, deterministic=...)`` (a loaded model).
        env_config: the run's environment config (action type, codec options, reward).
        normalizer: a ``VecNormalize`` whose ``normalize_obs`` the policy was trained with, or None.
        masked: pass the codec's action masks to ``predict`` (MaskablePPO).
        deterministic: use the mode of the action distribution.

    Raises:
        ValueError: the policy's spaces do not match the scenario's (other N, M or model depth).
    """

    name = "sb3"
    sees_absent = True  # the policy sees every client's slot; its codec keeps absent ones off the air

    def __init__(self, model: LatencyModel, policy: Any, env_config: dict | None = None, normalizer: Any = None,
                 masked: bool = False, deterministic: bool = True) -> None:
        super().__init__(model)
        cfg = {k: v for k, v in (env_config or {}).items() if k in POLICY_ENV_KEYS}
        self.env = _env_class()(config={**cfg, "scenario": model.scenario})
        self.codec = self.env.codec
        self.policy = policy
        self.normalizer = normalizer
        self.masked = masked
        self.deterministic = deterministic
        obs_space = getattr(policy, "observation_space", None)
        if obs_space is not None and obs_space.shape != self.env.observation_space.shape:
            raise ValueError(f"policy observations have shape {obs_space.shape} but scenario "
                             f"{model.scenario.name!r} gives {self.env.observation_space.shape} (other number of "
                             f"clients, subchannels or cut candidates)")
        act_space = getattr(policy, "action_space", None)
        if act_space is not None and act_space != self.env.action_space:
            raise ValueError(f"policy actions {act_space} do not fit scenario {model.scenario.name!r} "
                             f"({self.env.action_space} with action_type={self.codec.name!r})")
        self._max_ratio = float(self.env.config["max_latency_ratio"])
        self._delayed = model.scenario.csi == "delayed"
        self._prev: Observation | None = None
        self.repairs = 0

    # -- the decision-maker interface ------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        self._prev = None
        self.repairs = 0

    def observation(self, obs: Observation) -> np.ndarray:
        """The raw (unnormalized) observation vector of ``obs``, as the environment would give it."""
        return self.env.observation_of(obs, self._prev_ratio(obs))

    def decide(self, obs: Observation) -> Allocation:
        seen = obs
        obs = self.observation(seen)
        if self.normalizer is not None:
            obs = np.asarray(self.normalizer.normalize_obs(obs[None]), dtype=np.float32)[0]
        kwargs = {}
        if self.masked:
            kwargs["action_masks"] = self.codec.action_masks(seen.stacked())[0]
        action, _ = self.policy.predict(obs, deterministic=self.deterministic, **kwargs)
        space = self.env.action_space
        if hasattr(space, "low") and hasattr(space, "high"):
            action = np.clip(action, space.low, space.high)
        alloc, repairs = self.codec.decode(action, seen)
        self.repairs += repairs
        self._prev = seen
        return alloc

    # -- helpers ---------------------------------------------------------------------------------------
    def _prev_ratio(self, obs: Observation) -> float:
        """Previous round's latency over its fixed reference latency (0 on round 0), capped as the env does."""
        prev = self._prev
        if not obs.has_prev or obs.round == 0 or prev is None or prev.round != obs.round - 1:
            return 0.0
        gains = obs.gains if self._delayed else prev.gains
        # the fixed reference of the previous round (no previous cut: the reference never migrates)
        last = Observation(gains, prev.client_flops, prev.power_budget_w, prev.memory_bytes, prev.prev_cut, False,
                           0.0, prev.round, bool(prev.sync), prev.episode)
        ref = self.model.expected(last, self._reference(prev)).total
        if not ref > 0:
            return self._max_ratio
        ratio = obs.prev_latency_s / ref
        return float(min(ratio, self._max_ratio)) if ratio == ratio else self._max_ratio

    def _reference(self, obs: Observation) -> Allocation:
        return reference_allocation(self.model.tables, obs.power_budget_w, obs.memory_bytes, obs.num_subchannels)

    # -- loading ---------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, model: LatencyModel, algo: str | None = None, device: str = "cpu") -> "SB3Policy":
        """The policy of a training run folder (or of one ``.zip`` inside it, e.g. a checkpoint).

        Args:
            path: a run folder (``model.zip``, ``config.yaml``, ``vecnormalize.pkl``) or a model
                ``.zip`` in such a folder (``best_model.zip``, ``checkpoints/ckpt_1000_steps.zip``);
                the matching ``*vecnormalize.pkl`` next to it is used when present.
            model: the latency model of the scenario to decide on.
            algo: expected algorithm (``ppo``, ``sac``, ...); checked against the run's config.
        """
        run_dir, zip_path = run_folder_of(path)
        if not zip_path.is_file():
            raise ValueError(f"{brief(str(path))}: no {zip_path.name} (train one with `psl train --out DIR`)")
        run = read_run_config(run_dir)
        run_algo = run.get("algo")
        if run_algo not in ALGO_CLASSES:
            raise ValueError(f"{brief(str(run_dir / 'config.yaml'))}: algo {brief(run_algo)} is unknown; allowed: "
                             f"{sorted(ALGO_CLASSES)}")
        if algo is not None and algo != run_algo:
            raise ValueError(f"{brief(str(path))} holds a {run_algo} policy, not {algo}; use {run_algo}:{path}")
        import importlib  # noqa: PLC0415

        module, name = ALGO_CLASSES[run_algo]
        algo_cls = getattr(importlib.import_module(module), name)
        try:
            sb3_model = algo_cls.load(str(zip_path), device=device)
        except Exception as err:  # noqa: BLE001 - SB3 raises many kinds on a damaged zip
            raise ValueError(f"{brief(str(zip_path))}: not a loadable {run_algo} model "
                             f"({type(err).__name__})") from None
        normalizer = None
        stem = zip_path.stem
        candidates = [zip_path.with_name(stem.replace("_steps", "") + "_vecnormalize.pkl"),
                      zip_path.with_name(stem.replace("model", "vecnormalize") + ".pkl"),
                      zip_path.with_name("vecnormalize.pkl")]
        if stem.endswith("_steps"):
            candidates.insert(0, zip_path.with_name(stem[: -len("_steps")] + "_vecnormalize.pkl"))
        norm_path = next((c for c in candidates if c.is_file()), None)
        if run.get("normalize") and norm_path is None:
            raise ValueError(f"{brief(str(path))}: the run normalized observations but no vecnormalize.pkl is there")
        if norm_path is not None:
            from stable_baselines3.common.save_util import load_from_pkl  # noqa: PLC0415
            from stable_baselines3.common.vec_env import VecNormalize  # noqa: PLC0415

            try:
                normalizer = load_from_pkl(str(norm_path))
            except Exception as err:  # noqa: BLE001 - a damaged pickle raises many kinds
                raise ValueError(f"{brief(str(norm_path))}: not a readable VecNormalize file "
                                 f"({type(err).__name__})") from None
            if not isinstance(normalizer, VecNormalize):
                raise ValueError(f"{brief(str(norm_path))}: holds a {type(normalizer).__name__}, not VecNormalize")
            normalizer.training = False
            normalizer.norm_reward = False
        policy = cls(model, sb3_model, run.get("env_config") or {}, normalizer, masked=run_algo == "maskable-ppo")
        policy.name = run_algo
        return policy


def run_folder_of(path: str | Path) -> tuple[Path, Path]:
    """``(run folder, model zip)`` of a ``psl bench --methods ALGO:PATH`` argument: a run folder (its
    ``model.zip``) or a ``.zip`` inside one (``best_model.zip``, ``checkpoints/ckpt_N_steps.zip``)."""
    p = Path(path)
    if p.is_dir():
        return p, p / "model.zip"
    if p.suffix == ".zip":
        return (p.parent.parent if p.parent.name == "checkpoints" else p.parent), p
    raise ValueError(f"{brief(str(path))}: expected a training run folder or a model .zip")


def read_run_config(run_dir: Path) -> dict:
    """A run folder's ``config.yaml`` (``ValueError`` naming it when it is missing or damaged)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ValueError(f"{brief(str(run_dir))}: no config.yaml; not a `psl train` run folder")
    run = read_yaml(cfg_path, brief(str(cfg_path)), ValueError)
    if not isinstance(run, dict):
        raise ValueError(f"{brief(str(cfg_path))}: not a run config (expected a mapping)")
    return run


def factory(algo: str):
    """A registry factory ``(model, arg, seed) -> SB3Policy`` for ``ALGO:PATH`` specs."""

    def make(model: LatencyModel, arg: str | None, seed: int) -> SB3Policy:
        if not arg:
            raise ValueError(f"{algo}: give the training run folder, e.g. {algo}:runs/train/{algo}-1")
        return SB3Policy.load(arg, model, algo=algo)

    return make


__all__ = ["ALGO_CLASSES", "SB3Policy", "factory", "read_run_config", "run_folder_of"]
