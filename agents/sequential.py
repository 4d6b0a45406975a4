"""Causal schedulers that look past the current round: a hysteresis rule and model-predictive control.

Both choose a common cut and leave subchannels and powers to the epsl-bcd inner solver
(``FixedCutSolver``, greedy and proportional starts) at that cut, with this round's migration priced.
They differ from ``epsl-bcd`` (the one-step migration-aware optimum) in how they weigh the rounds to
come; ``agents/hindsight.py`` gives the best any sequence could do.

- ``hysteresis``: keep the cut until moving to this round's best cut would pay for its migration
  within ``window`` rounds at today's saving (ours; the rule of thumb of the prototype that motivated
  this module: switch when three rounds of the saving exceed the migration cost).
- ``mpc``: over ``horizon`` rounds, the cut sequence of least forecast latency (a shortest path over
  cuts), of which the first cut is played. Forecasts (ours): the background load by the scenario's
  Markov chain from each device's current state (the expected share of its rate k rounds ahead);
  the gains by the Gauss-Markov conditional mean, E|h_{t+k}|^2 = a^{2k} |h_t|^2 + (1 - a^{2k}) g_i,
  with g_i the client's mean gain over its subchannels standing in for its large-scale gain (a = the
  scenario's fixed fading correlation; persistence under Doppler or traces); presence persists.
  Migration between forecast rounds is priced with the forecast round's allocation at the new cut.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from psl_env.resources.context import FixedCutSolver
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation

from .base import DecisionMaker
from .hindsight import best_cut_sequence


def _at_least_one(owner: str, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {key}={value!r} is not allowed; allowed: an integer >= 1")
    return int(value)


class _CutScheduler(DecisionMaker):
    """Shared: the inner solver and the per-cut costs of an observed round."""

    def __init__(self, model: LatencyModel, backend: str = "auto") -> None:
        super().__init__(model)
        self.solver = FixedCutSolver(model, backend=backend)
        self.num_cuts = model.num_blocks - 1

    def _solve_all(self, obs: Observation) -> tuple[np.ndarray, list[Allocation]]:
        """(latency [C], s; allocation of each) of the round at every common cut, migration from
        ``obs.prev_cut`` priced when ``obs.has_prev``."""
        ctx = self.solver.context(obs)
        out, allocs = np.empty(self.num_cuts), []
        for j in range(self.num_cuts):
            alloc, out[j] = self.solver.solve(obs, j + 1, starts=("greedy", "proportional"), context=ctx)
            allocs.append(alloc)
        return out, allocs


class HysteresisScheduler(_CutScheduler):
    """Move the common cut only when the saving would repay the migration within ``window`` rounds.

    Args:
        model: the scenario's latency model.
        window: rounds over which today's saving must exceed the migration time (>= 1).
        backend: compiled kernels or numpy for the inner solver.
    """

    name = "hysteresis"

    def __init__(self, model: LatencyModel, window: int = 3, backend: str = "auto") -> None:
        super().__init__(model, backend)
        self.window = _at_least_one("hysteresis", "window", window)

    def decide(self, obs: Observation) -> Allocation:
        free, free_allocs = self._solve_all(replace(obs, has_prev=False))  # without migration
        best = int(np.argmin(free))
        if not obs.has_prev or not np.isfinite(free[best]):
            return free_allocs[best]
        current = int(obs.prev_cut[0]) - 1
        if best == current:
            return free_allocs[best]
        moved, moved_s = self.solver.solve(obs, best + 1, starts=("greedy", "proportional"))
        migration_s = moved_s - free[best]
        if self.window * (free[current] - free[best]) > migration_s:
            return moved
        return free_allocs[current]


class MPCScheduler(_CutScheduler):
    """Model-predictive control of the common cut over a short horizon with forecast rounds.

    Args:
        model: the scenario's latency model.
        horizon: rounds looked ahead, this one included (>= 1; 1 is the one-step optimum).
        backend: compiled kernels or numpy for the inner solver.
    """

    name = "mpc"

    def __init__(self, model: LatencyModel, horizon: int = 3, backend: str = "auto") -> None:
        super().__init__(model, backend)
        self.horizon = _at_least_one("mpc", "horizon", horizon)
        scen = model.scenario
        corr = scen.channel.correlation
        self.fading_corr = float(corr) if scen.channel.kind == "gauss-markov" and not isinstance(corr, str) else 1.0
        if scen.channel.small_scale == "averaged":
            self.fading_corr = 1.0  # no fast fading to regress
        dyn = scen.dynamics
        self.levels = np.asarray(dyn.load_levels, dtype=np.float64)
        n_lv = self.levels.size
        jump = (1.0 - dyn.load_stay) / (n_lv - 1) if n_lv > 1 else 0.0
        self.transition = np.full((n_lv, n_lv), jump) + np.eye(n_lv) * (dyn.load_stay - jump)

    def forecast(self, obs: Observation, k: int) -> Observation:
        """The round k ahead as this scheduler expects it (see the module docstring)."""
        a2k = self.fading_corr ** (2 * k)
        mean_gain = obs.gains.mean(axis=1, keepdims=True)
        gains = a2k * obs.gains + (1.0 - a2k) * mean_gain
        flops = obs.client_flops
        if obs.availability is not None and self.levels.size > 1:
            state = np.argmin(np.abs(obs.availability[:, None] - self.levels[None, :]), axis=1)
            expected = np.linalg.matrix_power(self.transition, k)[state] @ self.levels
            flops = flops / np.maximum(obs.availability, 1e-12) * expected
        return replace(obs, gains=gains, client_flops=flops, broadcast_rate=None, has_prev=False,
                       round=obs.round + k, sync=False)

    def decide(self, obs: Observation) -> Allocation:
        c, n = self.num_cuts, obs.num_clients
        now, now_allocs = self._solve_all(obs)
        costs = np.full((self.horizon, c + 1, c), np.inf)
        costs[0, 0] = now
        cuts = np.repeat(np.arange(1, c + 1)[:, None], n, axis=1)
        for k in range(1, self.horizon):
            ahead = self.forecast(obs, k)
            free, allocs = self._solve_all(ahead)
            # migration p -> j priced with the forecast round's allocation at j
            owner = np.stack([a.owner for a in allocs])
            power = np.stack([a.power_w for a in allocs])
            pairs_j = np.tile(np.arange(c), c)
            prev = np.repeat(cuts, c, axis=0)  # [C*C, N]: row p*C + j moves p+1 -> j+1
            lat = self.model.price(ahead.gains, ahead.client_flops, cuts[pairs_j], owner[pairs_j], power[pairs_j],
                                   prev, False, memory_bytes=ahead.memory_bytes)
            moved = np.asarray(lat.total).reshape(c, c)
            costs[k, 1:] = np.where(np.isfinite(free)[None, :], np.maximum(moved, free[None, :]), np.inf)
        _, seq = best_cut_sequence(costs)
        return now_allocs[int(seq[0]) - 1]


__all__ = ["HysteresisScheduler", "MPCScheduler"]
