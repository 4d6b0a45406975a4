"""Simple reference decision makers: fixed ("no optimization"), random and greedy."""

from __future__ import annotations

import numpy as np

from psl_env.resources.context import FixedCutSolver
from psl_env.system.allocation import reference_allocation
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation

from .base import DecisionMaker


class FixedDecisionMaker(DecisionMaker):
    """The "no optimization" counterpart: middle cut, round-robin subchannels, equal power.

    The same allocation every round (``psl_env.system.allocation.reference_allocation``, the
    environments' reference); with a per-device-cut scheme every device gets the same cut (PSL with a
    fixed common cut and equal bandwidth). Where memory caps exclude the cut, the deepest cut every
    client holds instead.

    Args:
        model: the scenario's latency model.
        cut: the common cut, 1..L-1 (default: the middle cut L // 2).
    """

    name = "fixed"

    def __init__(self, model: LatencyModel, cut: int | None = None) -> None:
        super().__init__(model)
        if cut is not None and (isinstance(cut, bool) or not isinstance(cut, (int, np.integer))
                                or not 1 <= cut <= model.num_blocks - 1):
            raise ValueError(f"cut: {cut!r} is not allowed; allowed: an integer in 1..{model.num_blocks - 1}")
        self.cut = cut

    def decide(self, obs: Observation) -> Allocation:
        return reference_allocation(self.model.tables, obs.power_budget_w, obs.memory_bytes, obs.num_subchannels,
                                    self.cut)


class RandomDecisionMaker(DecisionMaker):
    """A uniformly random feasible allocation, seeded.

    The cut is uniform over the cuts the memory caps allow (one per device with a per-device-cut
    scheme); every client gets
    one subchannel of a random permutation and the rest go to uniformly random clients; each client
    splits its budget over its subchannels with Dirichlet(1) fractions.

    Args:
        model: the scenario's latency model.
        seed: seed of the generator (``reset(seed)`` reseeds it).
    """

    name = "random"

    def __init__(self, model: LatencyModel, seed: int = 0) -> None:
        super().__init__(model)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def decide(self, obs: Observation) -> Allocation:
        n, m = obs.num_clients, obs.num_subchannels
        rng = self.rng
        deepest = self.model.tables.deepest_cut(obs.memory_bytes)  # the cuts each client's memory holds
        if self.model.common_cut:
            cut = np.full(n, rng.integers(1, deepest.min() + 1), dtype=np.int64)
        else:
            cut = rng.integers(1, deepest + 1).astype(np.int64)
        perm = rng.permutation(m)
        owner = np.empty(m, dtype=np.int64)
        owner[perm[:n]] = rng.permutation(n)
        owner[perm[n:]] = rng.integers(0, n, size=m - n)
        weights = rng.exponential(size=m)  # normalized per client: Dirichlet(1) fractions
        per_client = np.bincount(owner, weights=weights, minlength=n)
        power = weights / per_client[owner] * obs.power_budget_w[owner]
        return Allocation(cut, owner, power)


class GreedyDecisionMaker(DecisionMaker):
    """Best common cut with the bottleneck-greedy assignment and water-filled power, no refinement.

    For every cut: each client takes its best subchannel, then the client with the longest modeled
    time takes its best free subchannel until none is left (``bottleneck_greedy``), with
    water-filling power; the cut with the lowest modeled latency wins. EPSL-BCD without its BCD.
    """

    name = "greedy"

    def __init__(self, model: LatencyModel) -> None:
        super().__init__(model)
        self.solver = FixedCutSolver(model, refine=False)

    def decide(self, obs: Observation) -> Allocation:
        ctx = self.solver.context(obs)
        best, best_alloc = np.inf, None
        for cut in range(1, self.model.num_blocks):
            alloc, latency = self.solver.solve(obs, cut, context=ctx)
            if latency < best:
                best, best_alloc = latency, alloc
        return best_alloc
