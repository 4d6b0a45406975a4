"""``BatchedVecEnv``: a gymnasium ``VectorEnv`` (the batched PSL env) seen as an SB3 ``VecEnv``.

SB3 expects, when a copy's episode ends, the first observation of the next episode in the same step
and the last one in ``info["terminal_observation"]``; gymnasium vector envs either do the same
(``AutoresetMode.SAME_STEP``, last observation in ``info["final_obs"]``) or reset on the next call
(``NEXT_STEP``), which is turned into a same-step reset of the finished copies here. Gymnasium's
dict-of-arrays infos become SB3's list of per-copy dicts (every key whose mask is set).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

try:
    from gymnasium.vector import AutoresetMode
except ImportError:  # pragma: no cover - older gymnasium
    AutoresetMode = None


def split_infos(info: dict, num_envs: int) -> list[dict]:
    """Gymnasium's vector info (``key``: array [K], ``_key``: mask [K]) -> K dicts."""
    out: list[dict] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get("_" + key)
        if isinstance(value, dict):
            for i, sub in enumerate(split_infos(value, num_envs)):
                if sub and (mask is None or mask[i]):
                    out[i][key] = sub
            continue
        for i in range(num_envs):
            if mask is None or mask[i]:
                item = value[i]
                out[i][key] = item.item() if isinstance(item, np.generic) else item
    return out


class BatchedVecEnv(VecEnv):
    """SB3 view of a gymnasium vector env; picklable when the wrapped env is (exact resume).

    Args:
        venv: a ``gymnasium.vector.VectorEnv`` (e.g. ``gym.make_vec("psl_env/PSL-v0", num_envs=K,
            vectorization_mode="vector_entry_point")``).
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.venv = venv
        self.render_mode = getattr(venv, "render_mode", None)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        mode = venv.metadata.get("autoreset_mode")
        if AutoresetMode is not None and isinstance(mode, AutoresetMode):
            mode = mode.value
        self.autoreset_mode = mode or "NextStep"
        self._actions: np.ndarray | None = None
        self.last_info: dict = {}

    # -- SB3 VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else [s for s in self._seeds]
        options = self._options[0] if self._options and self._options[0] else None
        obs, info = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = split_infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        self.last_info = info
        dones = np.logical_or(terminated, truncated)
        infos = split_infos(info, self.num_envs)
        if dones.any():
            done_idx = np.flatnonzero(dones)
            if self.autoreset_mode == "SameStep":
                final = info.get("final_obs")
                final_info = info.get("final_info")
                finals = split_infos(final_info, self.num_envs) if isinstance(final_info, dict) else None
                for i in done_idx:
                    infos[i].pop("final_obs", None)
                    infos[i].pop("final_info", None)
                    if finals is not None:
                        infos[i].update(finals[i])
                    infos[i]["terminal_observation"] = final[i]
            else:
                terminal = obs[done_idx].copy()
                if dones.all():
                    new_obs, reset_info = self.venv.reset()
                else:
                    new_obs, reset_info = self.venv.reset(options={"reset_mask": dones})
                obs = np.where(dones.reshape(-1, *([1] * (obs.ndim - 1))), new_obs, obs)
                resets = split_infos(reset_info, self.num_envs)
                for j, i in enumerate(done_idx):
                    infos[i]["terminal_observation"] = terminal[j]
                    self.reset_infos[i] = resets[i]
            for i in done_idx:
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self._seeds = [seed + i for i in range(self.num_envs)]
        return self._seeds

    # -- attributes and methods ----------------------------------------------------------------------
    def _targets(self, indices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":
            return [self.render_mode for _ in self._targets(indices)]
        value = getattr(self.venv, attr_name)
        return [value for _ in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        targets = self._targets(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in targets]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in targets]

    def env_is_wrapped(self, wrapper_class: type, indices=None) -> list[bool]:
        return [False for _ in self._targets(indices)]

    def action_masks(self) -> np.ndarray:
        """[K, sum(nvec)] masks of the discrete action dimensions (MaskablePPO)."""
        base = self.venv.unwrapped if hasattr(self.venv, "unwrapped") else self.venv
        fn = getattr(base, "action_masks", None)
        if fn is None:
            raise AttributeError("the vector env offers no action masks")
        return np.asarray(fn())

    def get_images(self):  # pragma: no cover - no rendering of images
        return [None] * self.num_envs


__all__ = ["BatchedVecEnv", "split_infos"]
