"""EPSL's joint cut / subchannel / power optimizer, rebuilt as block-coordinate descent.

Reconstructed from the description of EPSL (Lin et al., arXiv 2303.15991; no code is public): the
paper minimizes the per-round latency over a common cut layer, subchannel allocation and power
control with a BCD algorithm. What is ours (and a constructor option where it is a choice):

- the cut is found by exhaustive search over the L-1 candidates (visited by increasing lower bound
  and pruned when the bound cannot beat the best latency found: exact, it skips only cuts that
  cannot win; ``prune``);
- for each cut, subchannels and power alternate (``psl_env.resources.context.FixedCutSolver``): a
  greedy start, then reassignment of subchannels toward the bottleneck client (moves and swaps,
  ``moves``) with per-client water-filling of the affected clients, until no change lowers the
  latency (``max_iter`` caps the accepted changes); at the best cut a second start
  (proportional-fair) is refined too and the better kept (``restart``);
- power is water-filling per client, exact for a fixed assignment (the paper's power subproblem is
  convex for the same reason).

The sync and migration terms enter only through the latency being minimized (this round's); the
optimizer is myopic about future migrations (``migration_aware=False`` also ignores this round's,
the migration-blind per-round optimum). ``cut=J`` restricts it to one common cut (the fixed-cut
baselines). Decisions use the observed gains.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from psl_env.resources.context import FixedCutSolver
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation

from .base import DecisionMaker


class EPSLBCDOptimizer(DecisionMaker):
    """Best common cut with BCD over subchannels and water-filled power.

    Args:
        model: the scenario's latency model.
        max_iter: cap on accepted subchannel reassignments per cut.
        moves: ``"bottleneck"`` (reassign toward the bottleneck client, as in EPSL's BCD) or ``"all"``
            (steepest descent over reassignments to any client; slower).
        prune: skip cuts whose lower bound (every client alone on the whole band) cannot beat the best
            latency found so far. Never changes the result.
        restart: at the best cut, also refine from a second start (weighted proportional-fair
            assignment) and keep the better (ours; about halves the rounds where BCD is suboptimal).
        backend: compiled kernels or numpy for the inner solver (``psl_env.backend``); the same
            decisions either way.
        cut: only this common cut (1..L-1; None: search every cut).
        migration_aware: price this round's migration from the previous cut into the decision
            (False: decide as if there were no previous round; the round is still charged for it).
    """

    name = "epsl-bcd"

    def __init__(self, model: LatencyModel, max_iter: int = 200, moves: str = "bottleneck",
                 prune: bool = True, restart: bool = True, backend: str = "auto", cut: int | None = None,
                 migration_aware: bool = True) -> None:
        super().__init__(model)
        self.solver = FixedCutSolver(model, max_iter=max_iter, moves=moves, backend=backend)
        self.prune = bool(prune)
        self.restart = bool(restart)
        self.migration_aware = bool(migration_aware)
        if cut is None:
            self.cuts = np.arange(1, model.num_blocks)
        else:
            if isinstance(cut, bool) or not isinstance(cut, (int, np.integer)) or not 1 <= cut <= model.num_blocks - 1:
                raise ValueError(f"epsl-bcd: cut={cut!r} is not allowed; allowed: an integer in "
                                 f"[1, {model.num_blocks - 1}]")
            self.cuts = np.array([int(cut)])

    def decide(self, obs: Observation) -> Allocation:
        if not self.migration_aware and obs.has_prev:
            obs = replace(obs, has_prev=False)
        n = obs.num_clients
        solver = self.solver
        ctx = solver.context(obs)
        bounds = ctx.lower_bound(ctx.terms(np.repeat(self.cuts[:, None], n, axis=1)))
        best, best_alloc = np.inf, None
        for j in np.argsort(bounds, kind="stable"):
            if self.prune and bounds[j] >= best:
                break
            alloc, latency = solver.solve(obs, int(self.cuts[j]), context=ctx)
            if latency < best:
                best, best_alloc = latency, alloc
        if best_alloc is None:  # scenarios are checked at load: every client holds some cut
            raise ValueError("epsl-bcd: no cut fits every client's memory cap")
        if self.restart:
            # A second starting point at the best cut escapes most local optima of the greedy start.
            alloc, latency = solver.solve(obs, best_alloc.cut, starts=("proportional",), context=ctx)
            if latency < best:
                best_alloc = alloc
        return best_alloc
