"""EdgeSplit's alternating optimizer of per-device cuts and bandwidth shares.

Reconstructed from the description of EdgeSplit (Zhang, Cao, Sahni, Chen, Jiang, ICNC 2024, arXiv
2403.15815; no code is public): the model is cut at a different depth per device and every device
gets its own share of the bandwidth; an alternating algorithm fixes one and optimizes the other to
minimize the training time. The paper's system has a divisible bandwidth and no OFDMA subchannels,
so the mapping onto this simulator is ours; every choice it leaves open is a constructor option:

1. Shares given cuts (``bisection``): a continuous relaxation in which client i holds k_i >= 1
   "subchannels' worth" of a flat channel at its mean gain (``share_gain="mean"``, or the mean of
   its best M/N gains with ``"best"``) with its power spread evenly: R_i(k) = k W log2(1 + P_i g_i /
   (k N0 W)), RD_i(k) = k W log2(1 + Ps g_i / (N0 W)). Each device's finish time t_i(k) = tF_i +
   b psi / R_i(k) + tD_i(k) + tB_i (its own compute and transfers); a bisection on the common
   finish time tau finds the smallest tau with sum_i k_i(tau) <= M, k_i(tau) the least share that
   meets tau (found on a grid of ``grid`` points).
2. Rounding: shares are rounded to whole subchannels by largest remainder, every client >= 1.
3. Mapping: clients take their best free subchannels in turns, the longest finish time first,
   until each holds its count.
4. Power: water-filling over each client's subchannels (``power="waterfill"``, our default, exact
   for the mapped subchannels) or the budget split evenly (``power="equal"``, the flat-channel
   model of the relaxation).
5. Cuts given shares: on the rates of the mapped allocation, the best common cut, then
   steepest-descent changes of one device's cut at a time on the round latency (with a
   common-cut scheme only the common cut is chosen).

The two steps alternate from equal shares until the rounded shares repeat (at most ``max_iter``
rounds); the best allocation met is returned. Decisions use the observed gains.
"""

from __future__ import annotations

import numpy as np

from psl_env.resources.context import FixedCutSolver, ResourceContext
from psl_env.resources.greedy import deal_by_counts
from psl_env.system.allocation import equal_power
from psl_env.system.latency import CutTerms, LatencyModel, rates
from psl_env.system.state import Allocation, Observation

from .base import DecisionMaker

POWER_MODES = ("waterfill", "equal")
SHARE_GAINS = ("mean", "best")


def round_shares(shares: np.ndarray, total: int) -> np.ndarray:
    """Whole subchannel counts >= 1 summing to ``total``: floors plus largest remainders."""
    shares = np.maximum(np.asarray(shares, dtype=np.float64), 1.0)
    shares = shares * (total / shares.sum()) if shares.sum() > total else shares
    counts = np.maximum(np.floor(shares).astype(np.int64), 1)
    while counts.sum() > total:  # only when the floors of shares near 1 overshoot
        counts[np.argmax(np.where(counts > 1, counts - shares, -np.inf))] -= 1
    remainder = shares - counts
    order = np.lexsort((np.arange(shares.size), -remainder))
    extra = total - int(counts.sum())
    counts += extra // shares.size
    counts[order[: extra % shares.size]] += 1
    return counts


class EdgeSplitAltOptimizer(DecisionMaker):
    """Per-device cuts and bandwidth shares by alternating optimization (EdgeSplit, reconstructed).

    Args:
        model: the scenario's latency model (per-device cuts when its scheme has them).
        max_iter: cap on the alternations.
        power: ``"waterfill"`` or ``"equal"`` power on the mapped subchannels.
        share_gain: the flat-channel gain of the share relaxation, ``"mean"`` or ``"best"``.
        grid: points of the share grid of the bisection.
        polish: ours, not EdgeSplit's: re-solve subchannels and power for the final cuts with the
            EPSL-BCD inner solver (``FixedCutSolver``) and keep that if it is faster.
    """

    name = "edgesplit-alt"

    def __init__(self, model: LatencyModel, max_iter: int = 10, power: str = "waterfill",
                 share_gain: str = "mean", grid: int = 256, polish: bool = False) -> None:
        super().__init__(model)
        if power not in POWER_MODES:
            raise ValueError(f"power: {power!r} is not allowed; allowed: {list(POWER_MODES)}")
        if share_gain not in SHARE_GAINS:
            raise ValueError(f"share_gain: {share_gain!r} is not allowed; allowed: {list(SHARE_GAINS)}")
        if int(max_iter) < 1 or int(grid) < 2:
            raise ValueError("max_iter must be >= 1 and grid >= 2")
        self.max_iter = int(max_iter)
        self.power = power
        self.share_gain = share_gain
        self.grid = int(grid)
        self.polish = bool(polish)
        self.solver = FixedCutSolver(model) if self.polish else None
        self.cuts = np.arange(1, model.num_blocks)

    # -- the two blocks -----------------------------------------------------------------------------
    def _share_tables(self, gains: np.ndarray, budget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Share grid [G] and the relaxed uplink / downlink rates [N, G]."""
        n, m = gains.shape
        model = self.model
        if self.share_gain == "mean":
            g = gains.mean(axis=1)
        else:
            top = max(1, int(np.ceil(m / n)))
            g = -np.sort(-gains, axis=1)[:, :top].mean(axis=1)
        k = np.linspace(1.0, m - n + 1.0, self.grid) if m > n else np.ones(2)
        up = k * model.radio.subchannel_rate(g[:, None], budget[:, None] / k)
        down = k * model.radio.downlink_rate(g[:, None])
        return k, up, down

    def _shares(self, cost: CutTerms, tables: tuple[np.ndarray, np.ndarray, np.ndarray], m: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Continuous shares by bisection on the common finish time; also each finish time."""
        k, up, down = tables
        finish = (cost.up_off[:, None] + cost.up_bits[:, None] / up
                  + cost.dn_off[:, None] + cost.dn_bits[:, None] / down)  # [N, G], decreasing in k

        def need(tau: float) -> np.ndarray:
            above = np.count_nonzero(finish > tau, axis=1)  # grid points that miss tau
            i = np.clip(above, 1, k.size - 1)
            rows = np.arange(finish.shape[0])
            t0, t1 = finish[rows, i - 1], finish[rows, i]
            frac = np.where(t0 > t1, (t0 - tau) / np.where(t0 > t1, t0 - t1, 1.0), 1.0)
            share = k[i - 1] + np.clip(frac, 0.0, 1.0) * (k[i] - k[i - 1])
            share = np.where(above == 0, k[0], share)
            return np.where(above >= k.size, np.inf, share)

        lo, hi = finish[:, -1].max(), finish[:, 0].max()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if need(mid).sum() <= m:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-12 * hi:
                break
        shares = need(hi)
        finish_at = np.array([np.interp(s, k, f) for s, f in zip(shares, finish)])
        return shares, finish_at

    def _choose_cuts(self, ctx: ResourceContext, r_up: np.ndarray, r_dn: np.ndarray,
                     starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
        """Cuts given rates: the best of the best common cut and ``starts`` (the previous
        alternation's cuts, the previous round's), then single-device changes while the latency drops.

        Starting from the previous round's cuts matters with migration: from a common cut, one
        device's change at a time cannot leave a tie of identical devices in a maximum phase."""
        n = ctx.n
        common = np.repeat(self.cuts[:, None], n, axis=1)
        totals = ctx.terms(common).total(r_up, r_dn)
        j = int(np.argmin(totals))
        cur, cur_val = common[j].copy(), float(totals[j])
        if self.model.common_cut:
            return cur, cur_val
        for start in starts:
            val = float(ctx.terms(start).total(r_up, r_dn))
            if val < cur_val:
                cur, cur_val = start.copy(), val
        num_j = self.cuts.size
        rows = np.arange(n * num_j)
        for _ in range(n * num_j):
            cand = np.repeat(cur[None, :], n * num_j, axis=0)
            cand[rows, rows // num_j] = np.tile(self.cuts, n)
            totals = ctx.terms(cand).total(r_up, r_dn)
            b = int(np.argmin(totals))
            if not totals[b] < cur_val * (1.0 - 1e-12):
                break
            cur, cur_val = cand[b].copy(), float(totals[b])
        return cur, cur_val

    # -- the alternation ----------------------------------------------------------------------------
    def decide(self, obs: Observation) -> Allocation:
        model = self.model
        ctx = ResourceContext(model, obs)
        gains, budget = obs.gains, obs.power_budget_w
        n, m = gains.shape
        tables = self._share_tables(gains, budget)
        counts = round_shares(np.full(n, m / n), m)
        order = np.arange(n)
        cuts = None
        previous = [np.asarray(obs.prev_cut, dtype=np.int64)] if obs.has_prev else []
        best_val, best = np.inf, None
        seen: set[tuple[int, ...]] = set()
        for _ in range(self.max_iter):
            owner = deal_by_counts(ctx.preference_lists, counts, order)
            power = ctx.powers(owner) if self.power == "waterfill" else equal_power(owner, budget)
            r_up, r_dn = rates(model.radio, gains, owner, power)
            cuts, val = self._choose_cuts(ctx, r_up, r_dn, previous + ([] if cuts is None else [cuts]))
            if val < best_val:
                best_val, best = val, Allocation(cuts.copy(), owner, power)
            seen.add(tuple(counts.tolist()))
            shares, finish = self._shares(ctx.terms(cuts), tables, m)
            counts = round_shares(shares, m)
            order = np.lexsort((np.arange(n), -finish))
            if tuple(counts.tolist()) in seen:
                break
        if self.solver is not None:
            alloc, val = self.solver.solve(obs, best.cut, context=ctx)
            if val < best_val:
                best = alloc
        return best
