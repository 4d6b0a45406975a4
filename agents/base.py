"""The one interface of every decision maker: optimizers, heuristics, the oracle and trained policies."""

from __future__ import annotations

from abc import ABC, abstractmethod

from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation


class DecisionMaker(ABC):
    """Decides one round's allocation from what the scheduler observes.

    ``decide`` receives an ``Observation`` (``RoundState.observation()``): the observed gains (stale
    under delayed CSI), devices, previous cut and latency, round; never the true gains, on which the
    round is priced afterwards. A decision maker may keep state across rounds (``reset`` starts an
    episode).

    Args:
        model: the scenario's latency model (profile, scheme, radio constants).
    """

    name: str = "decision-maker"

    def __init__(self, model: LatencyModel) -> None:
        self.model = model

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (reseed any randomness)."""

    @abstractmethod
    def decide(self, obs: Observation) -> Allocation:
        """A feasible allocation for the observed round (cuts, subchannel owners, powers)."""
