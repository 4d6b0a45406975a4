"""The network simulator: one episode of a scenario, round by round (the K = 1 ``World``)."""

from __future__ import annotations

import numpy as np

from ..models.profile import ModelProfile, load_profile
from .latency import Latency, LatencyModel
from .scenario import Scenario, load_scenario
from .state import Allocation, Devices, RoundState
from .world import World


class NetworkSimulator:
    """Devices and channel of one scenario, advanced round by round.

    ``reset(seed)`` draws the episode (devices, shadowing, positions, fading); ``step(alloc)``
    prices the allocation on the round's true gains and moves to the next round, letting the channel
    decorrelate by the round's duration (Doppler option) and remembering the cut for migration.
    Deterministic under the seed; the same rounds as ``PSLEnv`` and every env of ``PSLVectorEnv``
    seeded alike (they all step a ``World``).

    Attributes:
        scenario, profile, latency_model: the scenario, its model profile and latency model.
        world: the K = 1 ``World``.
        state: the current ``RoundState`` (None before ``reset``).
    """

    def __init__(self, scenario: Scenario | str | dict | None = None, profile: ModelProfile | None = None,
                 backend: str = "auto") -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.profile = profile or load_profile(self.scenario.model)
        self.latency_model = LatencyModel(self.scenario, self.profile, backend)
        model = self.latency_model
        self.world = World(self.scenario, 1, model.radio, model.uses_broadcast, backend, model.tables.min_memory_bytes)
        self.rng = np.random.default_rng(self.scenario.seed)
        self.state: RoundState | None = None

    @property
    def devices(self) -> Devices | None:
        return self.world.devices[0]

    @property
    def episode(self) -> int:
        return int(self.world.episode[0])

    def reset(self, seed: int | None = None) -> RoundState:
        """Start a new episode; a given seed reseeds the simulator's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.world.reset_env(0, self.rng)
        self.state = self.world.state(0)
        return self.state

    def advance(self, cut: np.ndarray, latency_s: float) -> RoundState:
        """The next round, after a round that used ``cut`` and lasted ``latency_s`` seconds."""
        if self.state is None:
            raise RuntimeError("call reset() before advance()")
        self.world.advance(np.asarray(cut, dtype=np.int64)[None], np.array([float(latency_s)]))
        self.state = self.world.state(0)
        return self.state

    def step(self, alloc: Allocation) -> tuple[Latency, RoundState]:
        """Price ``alloc`` on the current round's true gains, then advance; returns (latency, next state)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        lat = self.latency_model.evaluate(self.state, alloc)
        return lat, self.advance(alloc.cut, lat.total)


__all__ = ["NetworkSimulator"]
