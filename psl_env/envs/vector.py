"""PSLVectorEnv: K PSL environments stepped together on [K, ...] numpy arrays.

Registered as the ``vector_entry_point`` of ``psl_env/PSL-v0``::

    envs = gym.make_vec("psl_env/PSL-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                        action_type="box", scenario="epsl-resnet18")

It takes the same keyword arguments as ``PSLEnv`` (plus ``autoreset_mode`` and
``max_episode_steps``) and behaves like ``gymnasium.vector.SyncVectorEnv`` over K ``PSLEnv``\\ s:
``reset(seed=s)`` seeds env i with s + i, and observations, rewards, flags and infos (with their
``_key`` masks) equal those of the synchronous vector env with the same autoreset mode, bitwise.
Each env keeps its own random generator; only the random draws loop over the envs.

Autoreset (gymnasium 1.x, ``metadata["autoreset_mode"]``):

- ``NEXT_STEP`` (default): the step after an env truncates resets it instead of stepping it (its
  action is ignored, its reward is 0, its flags are False, and the step's infos are masked out).
- ``SAME_STEP``: the env resets within the step that truncates it; ``info["final_obs"]`` and
  ``info["final_info"]`` (masked by ``info["_final_obs"]``) hold the last observation and info.
- ``DISABLED``: truncated envs must be reset with ``reset(options={"reset_mask": mask})``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..system.scenario import Scenario, load_scenario
from ..system.latency import PER_CLIENT, PHASE_KEYS
from .codecs import Codec
from .config import EnvConfigError, build_config, default_config
from .core import PSLCore, StepOutcome


class PSLVectorEnv(VectorEnv):
    """K independent ``PSLEnv`` episodes stepped at once.

    Args:
        num_envs: K.
        config: overrides of ``PSLEnv.default_config()`` (``trace_path`` is not supported here).
        autoreset_mode: an ``AutoresetMode`` or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``).
        max_episode_steps: optional cap on the episode length (below ``scenario.rounds``).
        threads: draw the fading innovations in a worker thread, overlapping decoding and pricing
            (``"auto"``: when num_envs >= 64). Results are identical either way.
        render_mode: must be None.
        **kwargs: the same keys as ``config`` (e.g. ``scenario``, ``overrides``, ``action_type``).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: dict | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 max_episode_steps: int | None = None, threads: bool | str = "auto",
                 render_mode: str | None = None, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: {num_envs!r} is not allowed; allowed: an integer >= 1")
        if render_mode is not None:
            raise ValueError("render_mode: PSLVectorEnv does not render; allowed: None")
        self.config = build_config(config, **kwargs)
        if self.config["trace_path"] is not None:
            raise EnvConfigError("trace_path: round traces are written by the single PSLEnv only")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode: {autoreset_mode!r} is not allowed; allowed: "
                             f"{[m.value for m in AutoresetMode]}") from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        cfg = self.config
        self.num_envs = int(num_envs)
        self.scenario: Scenario = load_scenario(cfg["scenario"], cfg["overrides"])
        self.core = PSLCore(self.scenario, self.num_envs, cfg["action_type"], cfg["action"], cfg["reward"],
                            cfg["max_latency_ratio"], cfg["backend"])
        if threads not in ("auto", True, False):
            raise ValueError(f"threads: {threads!r} is not allowed; allowed: 'auto', True, False")
        self.core.use_thread(self.num_envs >= 64 if threads == "auto" else bool(threads))
        self.codec: Codec = self.core.codec
        self.latency_model = self.core.model
        self.single_action_space = self.codec.space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = self.core.encoder.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        rounds = self.scenario.rounds
        if max_episode_steps is not None:
            if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer)) \
                    or max_episode_steps < 1:
                raise ValueError(f"max_episode_steps: {max_episode_steps!r}; allowed: an integer >= 1")
            rounds = min(rounds, int(max_episode_steps))
        self._rounds = rounds
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return default_config()

    # -- gymnasium vector API ------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset every env (or those in ``options["reset_mask"]``); int seed s seeds env i with s + i."""
        super().reset(seed=seed if isinstance(seed, int) else None)
        k = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * k
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(k)]
        else:
            seeds = list(seed)
            if len(seeds) != k:
                raise ValueError(f"seed: a list of seeds must have length num_envs={k}, got {len(seeds)}")
        mask = np.ones(k, dtype=bool)
        if options and "reset_mask" in options:
            mask = options["reset_mask"]
            if not isinstance(mask, np.ndarray) or mask.shape != (k,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask']: expected a bool array of shape ({k},) with at least "
                                 f"one True, got {mask!r}")
        elif not self._started and not mask.all():
            raise RuntimeError("PSLVectorEnv: the first reset must reset every env")
        for i in np.flatnonzero(mask):
            rng, _ = seeding.np_random(seeds[i])
            self.core.reset_env(int(i), rng)
        self._autoreset[mask] = False
        self._started = True
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.core.observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._started:
            raise RuntimeError("PSLVectorEnv: call reset() before step()")
        core, k = self.core, self.num_envs
        batch = self.codec.validate_batch(actions, k)
        mode = self.autoreset_mode
        resetting = self._autoreset
        if mode == AutoresetMode.DISABLED and resetting.any():
            raise RuntimeError(f"PSLVectorEnv: envs {np.flatnonzero(resetting).tolist()} are done; with "
                               "autoreset_mode=Disabled reset them with reset(options={'reset_mask': ...})")
        next_step = mode == AutoresetMode.NEXT_STEP and resetting.any()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = core.play(batch, ~resetting if next_step else None)  # also resets the others
            stepped = ~resetting if next_step else np.ones(k, dtype=bool)
            reward = np.where(stepped, out.reward, 0.0)
            terminated = np.zeros(k, dtype=bool)
            truncated = (core.round >= self._rounds) & stepped
            obs = core.observe()
            infos = _infos(out, stepped)
            if mode == AutoresetMode.SAME_STEP and truncated.any():
                done = truncated
                final_obs = np.full(k, None, dtype=object)
                for i in np.flatnonzero(done):
                    final_obs[i] = obs[i].copy()
                final_info = _infos(out, done)
                for i in np.flatnonzero(done):
                    core.reset_env(int(i), core.rngs[i])
                obs[done] = core.observe()[done]
                top = _infos(out, stepped & ~done)
                infos = {"final_obs": final_obs, "_final_obs": done.copy(), "final_info": final_info,
                         "_final_info": done.copy(), **top}
        self._autoreset = truncated | terminated
        return obs, reward, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()
        self._started = False

    # -- helpers -------------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """[K, sum(nvec)] boolean masks of the discrete action dimensions (see ``PSLEnv.action_masks``)."""
        if not self.codec.has_action_masks:
            raise NotImplementedError(f"action_type={self.codec.name!r} has no discrete action masks")
        return self.codec.action_masks(self.core.observation())

    def states(self) -> list:
        """The current ``RoundState`` of every env (copies, true and observed gains)."""
        return [self.core.state(i) for i in range(self.num_envs)]


def _infos(out: StepOutcome, mask: np.ndarray) -> dict[str, Any]:
    """The batched info dict of the envs in ``mask`` (others zero), as SyncVectorEnv builds it."""
    if not mask.any():
        return {}
    k = mask.shape[0]
    priced, dec = out.priced, out.decoded
    full = mask.all()

    def pick(arr: np.ndarray) -> np.ndarray:
        if full:
            return arr.copy()
        return np.where(mask.reshape((k,) + (1,) * (arr.ndim - 1)), arr, np.zeros((), dtype=arr.dtype))

    def masked(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pick(value), mask.copy()

    infos: dict[str, Any] = {}

    def put(key: str, value: np.ndarray) -> None:
        infos[key], infos[f"_{key}"] = masked(value)

    put("round", out.rounds.astype(np.int64))
    put("latency_s", priced.total)
    for name, key in PHASE_KEYS.items():
        put(key, getattr(priced, name).astype(np.float64))
    put("reference_latency_s", out.reference_total)
    put("latency_ratio", out.ratio)
    put("repairs", dec.repairs)
    put("power_repairs", dec.power_repairs)
    alloc = {}
    for key, value in (("cut", dec.cut), ("owner", dec.owner), ("power_w", dec.power_w)):
        alloc[key], alloc[f"_{key}"] = masked(value)
    infos["allocation"], infos["_allocation"] = alloc, mask.copy()
    for name in PER_CLIENT:
        put(name, getattr(priced, name))
    return infos


__all__ = ["PSLVectorEnv"]
