"""The hindsight bound: the least total latency of a realized episode, every round known in advance.

With migration charged, the cut of one round changes what the next costs, so the best sequence of
decisions is not the sequence of per-round optima. Given the realized rounds (true gains, device
rates, presence; the same for every method when nothing the scheduler controls moves the world),
the best sequence with a common cut is a shortest path over cuts:

    V_0(j) = c_0(none, j),    V_t(j) = min_p V_{t-1}(p) + c_t(p, j),    bound = min_j V_{T-1}(j)

with c_t(p, j) the least latency of round t at cut j after cut p (subchannels and powers chosen for
that round; migration from p priced by the latency model). The inner minimum is

- exact by enumeration (``OracleDecisionMaker.cut_optima``) where the oracle runs: the result is a
  **bound** on every common-cut method;
- else the epsl-bcd inner solver (``FixedCutSolver``, greedy and proportional starts), tightened by
  every method's realized (previous cut, cut, latency) of that round: the result is a **reference**,
  at most the total of every common-cut method on the same rounds but not provably the optimum.

Per-device cuts (EdgeSplit) are not searched: their hindsight figure is the common-cut sequence
(a reference, which a per-device method may beat). Absent clients (churn) take no part in any
round's minimum; they follow the common cut, as ``Observation.present_subproblem`` has them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from psl_env.resources.context import FixedCutSolver
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Observation, RoundState

from .oracle import DEFAULT_MAX_CANDIDATES, OracleDecisionMaker


def realized_observation(state: RoundState) -> Observation:
    """The round as hindsight knows it: the true gains in place of the observed ones (arrays copied,
    so the simulator may reuse its buffers)."""
    obs = state.observation()
    obs = replace(obs, gains=state.gains, broadcast_rate=None)
    return replace(obs, **{f.name: getattr(obs, f.name).copy() for f in fields(obs)
                           if isinstance(getattr(obs, f.name), np.ndarray)})


def best_cut_sequence(costs: np.ndarray) -> tuple[float, np.ndarray]:
    """Shortest path over cuts. ``costs`` [T, C+1, C]: ``costs[t, 0, j]`` round t at cut j+1 without a
    previous round, ``costs[t, p, j]`` after cut p (p = 1..C). Returns (least total, s; cuts [T], 1..C)."""
    t_len, _, c = costs.shape
    value = costs[0, 0].copy()
    back = np.zeros((t_len, c), dtype=np.int64)
    for t in range(1, t_len):
        total = value[:, None] + costs[t, 1:]  # [previous, next]
        back[t] = np.argmin(total, axis=0)
        value = total[back[t], np.arange(c)]
    cuts = np.zeros(t_len, dtype=np.int64)
    cuts[-1] = int(np.argmin(value))
    for t in range(t_len - 1, 0, -1):
        cuts[t - 1] = back[t, cuts[t]]
    return float(value[cuts[-1]]), cuts + 1


@dataclass
class HindsightResult:
    """The best common-cut sequence of each episode.

    Attributes:
        kind: ``"bound"`` (exact inner minimum) or ``"reference"`` (see the module docstring).
        inner: ``"oracle"`` or ``"epsl-bcd solver"``.
        episode_total_s: [E] least total latency of each episode, s.
        cuts: [E][T] the cut sequence reaching it.
    """

    kind: str
    inner: str
    episode_total_s: list[float]
    cuts: list[list[int]]

    @property
    def mean_latency_s(self) -> float:
        """The mean round latency of the best sequences, s (comparable with a method's mean)."""
        rounds = sum(len(c) for c in self.cuts)
        return float(sum(self.episode_total_s) / rounds)


class HindsightBound:
    """Per-round costs of every (previous cut, cut) of a realized episode and the best path through them.

    Args:
        model: the scenario's latency model.
        inner: ``"auto"`` (the oracle where it runs, else the solver), ``"oracle"`` or ``"solver"``.
        max_candidates: the oracle's enumeration limit.
    """

    def __init__(self, model: LatencyModel, inner: str = "auto", max_candidates: int = DEFAULT_MAX_CANDIDATES) -> None:
        if inner not in ("auto", "oracle", "solver"):
            raise ValueError(f"hindsight inner: {inner!r} is not allowed; allowed: ['auto', 'oracle', 'solver']")
        self.model = model
        self.num_cuts = model.num_blocks - 1
        self.oracle = None
        if inner != "solver":
            try:
                self.oracle = OracleDecisionMaker(model, max_candidates=max_candidates)
            except ValueError:
                if inner == "oracle":
                    raise
        if self.oracle is not None and self.oracle.per_device:
            self.oracle = None  # per-device cut vectors: the common-cut path only (a reference)
        self.solver = FixedCutSolver(model) if self.oracle is None else None

    @property
    def exact(self) -> bool:
        """Whether the result is a bound (exact inner minimum over common cuts, common-cut scheme)."""
        return self.oracle is not None and self.model.common_cut

    @property
    def inner(self) -> str:
        return "oracle" if self.oracle is not None else "epsl-bcd solver"

    def round_costs(self, obs: Observation) -> np.ndarray:
        """[C+1, C] least latency of the round at each cut j (column j-1) after each previous cut p
        (row p; row 0: no previous round, or the first round of the episode), s."""
        c = self.num_cuts
        sub, _ = obs.present_subproblem()
        out = np.empty((c + 1, c))
        n = sub.num_clients
        out[0] = self._cut_costs(replace(sub, has_prev=False))
        if not obs.has_prev:
            out[1:] = np.inf  # the first round has no previous cut
            return out
        migration = self.model.tables.migration
        for p in range(1, c + 1):
            out[p] = out[0] if not migration else self._cut_costs(
                replace(sub, has_prev=True, prev_cut=np.full(n, p, dtype=np.int64)), skip=p - 1, same=out[0])
        return out

    def _cut_costs(self, obs: Observation, skip: int | None = None, same: np.ndarray | None = None) -> np.ndarray:
        """[C] least latency at each common cut; column ``skip`` (the previous cut: nothing moves)
        is taken from ``same``."""
        if self.oracle is not None:
            return self.oracle.cut_optima(obs)[0]
        ctx = self.solver.context(obs)
        out = np.empty(self.num_cuts)
        for j in range(self.num_cuts):
            if j == skip:
                out[j] = same[j]
                continue
            out[j] = self.solver.solve(obs, j + 1, starts=("greedy", "proportional"), context=ctx)[1]
        return out

    def episode_costs(self, rounds: list[Observation]) -> np.ndarray:
        """[T, C+1, C] ``round_costs`` of an episode's realized rounds (``realized_observation``)."""
        return np.stack([self.round_costs(replace(obs, has_prev=t > 0)) for t, obs in enumerate(rounds)])

    @staticmethod
    def tighten(costs: np.ndarray, t: int, prev_cut: np.ndarray | None, cut: np.ndarray, latency_s: float) -> None:
        """Lower ``costs[t]`` to a method's realized latency of round t where it did better than the
        inner minimum (common cuts only: other decisions are not on the path)."""
        cut = np.asarray(cut)
        if not np.all(cut == cut[0]):
            return
        p = 0
        if prev_cut is not None:
            prev_cut = np.asarray(prev_cut)
            if not np.all(prev_cut == prev_cut[0]):
                return
            p = int(prev_cut[0])
        j = int(cut[0]) - 1
        costs[t, p, j] = min(costs[t, p, j], float(latency_s))

    def result(self, costs: list[np.ndarray]) -> HindsightResult:
        """The best path of each episode's (tightened) costs."""
        totals, cuts = [], []
        for c in costs:
            total, seq = best_cut_sequence(c)
            totals.append(total)
            cuts.append(seq.tolist())
        return HindsightResult("bound" if self.exact else "reference", self.inner, totals, cuts)


__all__ = ["HindsightBound", "HindsightResult", "best_cut_sequence", "realized_observation"]
