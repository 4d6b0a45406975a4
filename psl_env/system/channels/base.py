"""The channel protocol: uplink gains of K independent episodes, advanced round by round.

A channel model is one class with this interface, registered under the name the scenario's
``channel.kind`` uses (``channels/__init__.py``). It owns its state as [K, ...] arrays; the
``World`` owns the per-env random generators (``rngs``, shared with the channel), the devices, the
CSI and the round bookkeeping. A single environment or ``NetworkSimulator`` is K = 1.

Each env's generator is used in a fixed order (devices, then the channel's reset draws, then one
step's draws per round), so env k of a batch equals a lone env seeded the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..scenario import Scenario
from ..state import Devices


class Channel(ABC):
    """Uplink gains g[k, i, m] (linear) of K episodes.

    Args:
        scenario: the validated scenario.
        num_envs: K.
        rngs: the per-env generators (the World's list; entry k is set before ``reset_env(k)``).
        backend: compiled kernels or numpy (``psl_env.backend``), for channels that have kernels.

    Class attributes:
        name: the ``channel.kind`` it is registered under.
        latency_independent: True when the next gains do not depend on the round's latency, so the
            World may compute them before the round is priced (overlapping the work).
        uses_rng: False for channels that draw nothing per round (no ``draw`` needed).
    """

    name = ""
    latency_independent = False
    uses_rng = True

    def __init__(self, scenario: Scenario, num_envs: int, rngs: list, backend: str = "auto") -> None:
        self.scenario = scenario
        self.k = int(num_envs)
        self.n = scenario.num_clients
        self.m = scenario.num_subchannels
        self.rngs = rngs

    @abstractmethod
    def reset_env(self, i: int, devices: Devices) -> tuple[np.ndarray, np.ndarray]:
        """Start env i's episode with ``self.rngs[i]``; returns the gains [N, M] of the round before
        the first (what delayed CSI shows in round 0) and of round 0."""

    def draw(self, start: int, stop: int, active: np.ndarray | None) -> None:
        """Make the random draws of the next step of envs start..stop-1 (those in ``active``, or all).

        Separate from ``advance`` so that the World can draw in a worker thread while the round is
        decoded and priced. The default draws nothing."""

    @abstractmethod
    def advance(self, latency_s: np.ndarray, active: np.ndarray | None, out: np.ndarray,
                start: int = 0, stop: int | None = None) -> None:
        """Write the next round's gains of envs start..stop-1 into ``out`` [K, N, M], after rounds
        that lasted ``latency_s`` [K] seconds (``draw`` was called for them). Envs outside
        ``active`` are reset afterwards: their rows are free to hold anything."""

    def distance_m(self, i: int) -> np.ndarray | None:
        """Current distances [N] of env i's clients, m (None: the devices' own)."""
        return None

    def device_rates(self, active: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-round device figures the channel replaces (trace replay): (client FLOP/s [K, N] or
        None, power budgets [K, N] or None) of the current round."""
        return None, None

    def close(self) -> None:
        """Release what the channel holds (e.g. compiled generator lists)."""


__all__ = ["Channel"]
