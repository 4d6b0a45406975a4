"""PSLEnv: one PSL round per step on the analytic latency model (``psl_env/PSL-v0``).

A step decodes the action into a feasible ``Allocation`` (codec picked by ``action_type``), prices
it on the round's true gains (docs/system-model.md), prices the fixed reference allocation on the same round,
and advances the network simulator by the round's latency (with ``channel.correlation: doppler`` a
slow round decorrelates the channel more). Cuts are remembered, so a cut change is charged as
migration in the next round. The episode is truncated after ``scenario.rounds`` rounds; it never
terminates. See ``docs/environment.md``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from ..config_files import clip
from ..system.latency import PER_CLIENT, PHASE_KEYS, Latency
from ..system.scenario import Scenario, load_scenario
from ..system.state import Allocation, Observation, RoundState
from .codecs import Codec, Decoded
from .config import EnvConfigError, build_config, default_config
from .core import PSLCore, StepOutcome


def make_info(k: int, decoded: Decoded, priced: Latency, ref_total: np.ndarray, rnd: int,
              out: StepOutcome | None = None) -> dict[str, Any]:
    """The info dict of round k of a batch (fresh objects, plain Python scalars); with dynamics also
    who took part and the energy the devices spent."""
    total = float(priced.total[k])
    ref = float(ref_total[k])
    info: dict[str, Any] = {
        "round": int(rnd),
        "latency_s": total,
        **{key: float(getattr(priced, name)[k]) for name, key in PHASE_KEYS.items()},
        "reference_latency_s": ref,
        "latency_ratio": total / ref,
        "repairs": int(decoded.repairs[k]),
        "power_repairs": int(decoded.power_repairs[k]),
        "allocation": {"cut": decoded.cut[k].copy(), "owner": decoded.owner[k].copy(),
                       "power_w": decoded.power_w[k].copy()},
    }
    for name in PER_CLIENT:
        info[name] = getattr(priced, name)[k].copy()
    if out is not None and out.energy is not None:
        info["present"] = out.present[k].copy()
        info["energy_compute_j"] = float(out.energy.compute[k].sum())
        info["energy_transmit_j"] = float(out.energy.transmit[k].sum())
        info["energy_j"] = out.energy.total[k].copy()
    return info


class PSLEnv(gym.Env):
    """Parallel split learning over a wireless edge network, one training round per step.

    Args:
        config: overrides of ``default_config()`` (HighwayEnv style).
        render_mode: ``None``, ``"ansi"`` (a text summary of the last round) or ``"rgb_array"`` (a
            picture of it: subchannel owners, cuts and phases, see ``psl_env.envs.render``).
        **kwargs: the same keys as ``config`` (they win over it), e.g. ``scenario="small-exact"``,
            ``action_type="multidiscrete"``, ``overrides={"phi": 0.3}``, ``trace_path="r.jsonl"``.

    Attributes:
        scenario: the validated ``Scenario``.
        world: the K = 1 ``World`` (devices, channel); seeded from ``reset(seed=...)``.
        latency_model: the ``LatencyModel`` that prices rounds.
        codec: the action ``Codec``.
        state: the current ``RoundState`` (what the next action decides).
        last_allocation: the ``Allocation`` decoded by the last step.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    _spec = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """The full default config (see ``psl_env.envs.config.DEFAULT_CONFIG``)."""
        return default_config()

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        self.config = build_config(config, **kwargs)
        self._check_trace_path(self.config["trace_path"])
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r} is not allowed; allowed: {self.metadata['render_modes']}")
        self.render_mode = render_mode
        cfg = self.config
        self.scenario: Scenario = load_scenario(cfg["scenario"], cfg["overrides"])
        self.core = PSLCore(self.scenario, 1, cfg["action_type"], cfg["action"], cfg["reward"],
                            cfg["max_latency_ratio"], cfg["backend"])
        self.codec: Codec = self.core.codec
        self.world = self.core.world
        self.latency_model = self.core.model
        self.encoder = self.core.encoder
        self.action_space = self.codec.space
        self.observation_space = self.encoder.space
        self._rounds = self.scenario.rounds
        self._n = self.scenario.num_clients
        self._started = False
        self._state: RoundState | None = None
        self._last_decoded: Decoded | None = None
        self._last_info: dict[str, Any] | None = None
        self.last_latency: Latency | None = None  # the priced last round
        self._trace = None
        self._episode_over = False

    @property
    def spec(self) -> Any:
        """The ``EnvSpec`` from ``gym.make``; ``max_episode_steps`` is the scenario's rounds."""
        return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        # gym.make hands the env a spec without an episode length; the scenario knows it.
        if value is not None and value.max_episode_steps is None:
            value = dataclasses.replace(value, max_episode_steps=self._rounds)
        self._spec = value

    @property
    def last_allocation(self) -> Allocation | None:
        """The ``Allocation`` decoded by the last step (None before the first)."""
        return None if self._last_decoded is None else self._last_decoded.allocation(0)

    @property
    def state(self) -> RoundState | None:
        """The current round (true and observed gains): what the next action decides."""
        if not self._started:
            return None
        if self._state is None:
            self._state = self.core.state(0)
        return self._state

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # The environment's generator drives the world: reset(seed=s) draws the same devices and
        # channels as NetworkSimulator(scenario).reset(seed=s).
        self.core.reset_env(0, self.np_random)
        self._started = True
        self._state = None
        self._last_decoded = None
        self._last_info = None
        self._episode_over = False
        with np.errstate(divide="ignore"):
            return self.core.observe()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._started:
            raise RuntimeError("PSLEnv: call reset() before step()")
        if self._episode_over:
            raise ResetNeeded(f"PSLEnv: the episode ended (truncated after {self._rounds} rounds or terminated); "
                              "call reset() before step()")
        codec = self.codec
        batch = codec.one(codec.validate(action))
        traced = self.config["trace_path"] is not None
        before = self.state if traced else None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = self.core.play(batch)
            obs = self.core.observe()[0]
        self._state = None
        info = make_info(0, out.decoded, out.priced, out.reference_total, int(out.rounds[0]), out)
        reward = float(out.reward[0])
        self._last_decoded = out.decoded
        self.last_latency = out.priced.rows(0)
        if traced:
            self._write_trace(before, out.priced.rows(0), info, reward)
        self._last_info = info
        truncated = bool(self.core.round[0] >= self._rounds)
        self._episode_over = truncated
        return obs, reward, False, truncated, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            from .render import render_round  # noqa: PLC0415

            return render_round(self._last_info, self._n, self.scenario.num_subchannels,
                                self.latency_model.num_blocks)
        if self.render_mode != "ansi":
            return None
        if self._last_info is None:
            return "PSLEnv: no round played yet\n"
        info = self._last_info
        alloc = info["allocation"]
        counts = np.bincount(alloc["owner"][alloc["owner"] >= 0], minlength=self._n)
        return (f"round {info['round']}: cut {alloc['cut'].tolist()} subchannels/client {counts.tolist()} "
                f"latency {info['latency_s']:.4g} s (reference {info['reference_latency_s']:.4g} s, "
                f"ratio {info['latency_ratio']:.3f})\n")

    def close(self) -> None:
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        super().close()

    # -- helpers for agents, adapters and callbacks ----------------------------------------------------
    def observation(self) -> Observation:
        """What the next decision may see (one round)."""
        if not self._started:
            raise RuntimeError("PSLEnv: call reset() first")
        return self.core.observation()[0]

    def action_masks(self) -> np.ndarray:
        """Flat boolean masks of the discrete action dimensions (MaskablePPO).

        Cut candidates whose client-side training memory exceeds a client's cap are masked (with a
        common cut: any client's); priority levels are always allowed.
        """
        if not self.codec.has_action_masks:
            raise NotImplementedError(f"action_type={self.codec.name!r} has no discrete action masks")
        if not self._started:
            raise RuntimeError("PSLEnv: call reset() first")
        return self.codec.action_masks(self.core.observation())[0]

    def observation_of(self, obs: Observation, prev_latency_ratio: float = 0.0) -> np.ndarray:
        """The observation vector of any one-round ``Observation`` (e.g. for a policy deciding on
        simulator rounds); ``prev_latency_ratio`` is the previous round's latency over its reference
        latency."""
        b = obs.stacked()
        n = obs.num_clients
        devices = (np.ones((1, n), bool) if b.present is None else b.present,
                   np.ones((1, n)) if b.availability is None else b.availability,
                   np.full((1, n), np.inf) if b.battery_j is None else b.battery_j)
        return self.encoder.encode(b.gains, b.client_flops, b.power_budget_w, b.prev_cut, b.has_prev,
                                   np.array([float(prev_latency_ratio)]), b.round, b.sync, devices=devices)[0]

    @staticmethod
    def _check_trace_path(path: Any) -> None:
        """``trace_path``: None, or a file path in an existing folder (the trace is written at the first step)."""
        if path is None:
            return
        if not isinstance(path, (str, Path)) or not str(path):
            raise EnvConfigError(f"trace_path: expected a file path, got {type(path).__name__}")
        target = Path(path)
        if target.is_dir():
            raise EnvConfigError(f"trace_path: {clip(str(path))!r} is a folder; allowed: a file path (JSONL)")
        if not target.parent.is_dir():
            raise EnvConfigError(f"trace_path: folder {clip(str(target.parent))!r} does not exist")

    def _write_trace(self, state: RoundState, latency: Latency, info: dict, reward: float) -> None:
        from ..system.trace import RoundTraceWriter, trace_record  # noqa: PLC0415 - only when tracing

        if self._trace is None:
            self._trace = RoundTraceWriter(self.config["trace_path"])
        alloc = self.last_allocation
        extra = {"reward": reward, "reference_latency_s": info["reference_latency_s"],
                 "repairs": info["repairs"], "power_repairs": info["power_repairs"],
                 "action_type": self.codec.name}
        self._trace.write(trace_record(self.latency_model, state, alloc, latency, self.config["trace_method"], extra))


__all__ = ["PSLEnv", "make_info"]

