"""The one interface of every decision maker: optimizers, heuristics, the oracle and trained policies."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod

from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation


class DecisionMaker(ABC):
    """Decides one round's allocation from what the scheduler observes.

    ``decide`` receives an ``Observation`` (``RoundState.observation()``): the observed gains (stale
    under delayed CSI), devices, previous cut and latency, round; never the true gains, on which the
    round is priced afterwards. A decision maker may keep state across rounds (``reset`` starts an
    episode).

    Absent clients (churn): a subclass's ``decide`` only ever sees the clients taking part; the base
    class restricts the observation to them (``Observation.present_subproblem``) and maps the
    allocation back (absent clients own nothing). A subclass that handles the full observation
    itself sets ``sees_absent = True``.

    Args:
        model: the scenario's latency model (profile, scheme, radio constants).
    """

    name: str = "decision-maker"
    sees_absent = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        inner = cls.__dict__.get("decide")
        if inner is None or cls.__dict__.get("sees_absent", False) or getattr(inner, "_present_only", False):
            return

        @functools.wraps(inner)
        def decide(self, obs: Observation) -> Allocation:
            if obs.everyone_present:
                return inner(self, obs)
            sub, expand = obs.present_subproblem()
            return expand(inner(self, sub))

        decide._present_only = True
        cls.decide = decide

    def __init__(self, model: LatencyModel) -> None:
        self.model = model

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (reseed any randomness)."""

    @abstractmethod
    def decide(self, obs: Observation) -> Allocation:
        """A feasible allocation for the observed round (cuts, subchannel owners, powers)."""
