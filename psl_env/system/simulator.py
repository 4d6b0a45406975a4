"""The network simulator: scenario -> a sequence of RoundStates, one per PSL round."""

from __future__ import annotations

import numpy as np

from ..models.profile import ModelProfile, load_profile
from .channel import make_channel
from .devices import sample_devices
from .latency import LatencyModel
from .scenario import Scenario, load_scenario
from .state import Allocation, Devices, RoundState

# The fading step that produces round 0 from the stale round -1 assumes a round of this length.
INITIAL_INTERVAL_S = 1.0


class NetworkSimulator:
    """Devices and channel of one scenario, advanced round by round.

    ``reset(seed)`` draws the episode (devices, shadowing, positions, fading); ``advance(cut,
    latency_s)`` moves to the next round, letting the channel decorrelate by the round's duration
    (Doppler option) and remembering the cut for migration. Deterministic under the seed.
    """

    def __init__(self, scenario: Scenario | str | dict | None = None, profile: ModelProfile | None = None) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.profile = profile or load_profile(self.scenario.model)
        self.latency_model = LatencyModel(self.scenario, self.profile)
        self.channel = make_channel(self.scenario)
        self.rng = np.random.default_rng(self.scenario.seed)
        self.episode = -1
        self._fixed_devices: Devices | None = None
        self.state: RoundState | None = None

    def reset(self, seed: int | None = None) -> RoundState:
        """Start a new episode; a given seed reseeds the simulator's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.episode += 1
        s = self.scenario
        if s.devices.resample == "fixed":
            if self._fixed_devices is None:
                self._fixed_devices = sample_devices(s, np.random.default_rng(s.seed))
            self.devices = self._fixed_devices
        else:
            self.devices = sample_devices(s, self.rng)
        prev_gains = self.channel.reset(self.rng, self.devices.distance_m, self.devices.speed_mps, INITIAL_INTERVAL_S)
        gains = self.channel.step(INITIAL_INTERVAL_S)
        self.state = self._make_state(0, gains, prev_gains, None, 0.0)
        return self.state

    def _make_state(self, rnd: int, gains: np.ndarray, prev_gains: np.ndarray, prev_cut: np.ndarray | None,
                    prev_latency_s: float) -> RoundState:
        d = self.devices
        flops, budget = d.client_flops, d.power_budget_w
        override = getattr(self.channel, "device_override", None)
        if override is not None:
            flops = override("client_flops") if override("client_flops") is not None else flops
            budget = override("client_power_budget_w") if override("client_power_budget_w") is not None else budget
        observed = gains if self.scenario.csi == "perfect" else prev_gains
        period = self.scenario.effective_sync_period
        sync = period > 0 and (rnd + 1) % period == 0
        distance = self.channel.distance_m
        return RoundState(rnd, self.episode, flops, budget, d.memory_bytes, gains, observed,
                          prev_cut, prev_latency_s, sync, d.distance_m if distance is None else distance)

    def advance(self, cut: np.ndarray, latency_s: float) -> RoundState:
        """The next round, after a round that used ``cut`` and lasted ``latency_s`` seconds."""
        if self.state is None:
            raise RuntimeError("call reset() before advance()")
        prev_gains = self.state.gains
        gains = self.channel.step(float(latency_s))
        self.state = self._make_state(self.state.round + 1, gains, prev_gains, np.array(cut, dtype=np.int64),
                                      float(latency_s))
        return self.state

    def step(self, alloc: Allocation):
        """Price ``alloc`` on the current round's true gains, then advance; returns (latency, next state)."""
        lat = self.latency_model.evaluate(self.state, alloc)
        nxt = self.advance(alloc.cut, lat.total)
        return lat, nxt
