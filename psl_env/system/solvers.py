"""Inner resource solvers for given cuts: water-filling power and subchannel assignment (SPEC 4, 7).

Shared by the optimizers in ``agents/`` and by the environment's solver-assisted codec, so the API
below is kept stable:

- ``water_fill(gains, budget_w, noise_w, bw_hz=None) -> power``: exact max-sum-rate power of one
  client over its subchannels, vectorized over leading axes.
- ``water_filled_rate(gains, budget_w, noise_w, bw_hz) -> rate``: the rate that power achieves.
- ``greedy_assignment(state, weights, ...) -> owner``: deterministic greedy subchannel assignment
  driven by per-client weights; every client gets at least one subchannel.
- ``solve_resources(model, state, cut, priority=None) -> Allocation``: for fixed cuts, subchannel
  assignment + water-filled power by block-coordinate descent (the EPSL-BCD inner loop).
- ``solve_fixed_cut(...) -> (Allocation, latency_s)``: the same, also returning the modeled latency.
- ``CutCost``: the round latency of SPEC 4 as a function of the per-client uplink/downlink rates
  for fixed cuts, vectorized over candidate rates and over candidate cuts.

Everything here decides on ``state.observed_gains`` (what a scheduler may see); pricing on the true
gains is the caller's business (``LatencyModel.evaluate``).

Why water-filling is optimal for fixed cuts and subchannels: clients do not interfere (OFDMA), the
uplink power of client i changes only its uplink rate R_i, and every latency term (uplink phase,
sync upload, migration upload) is non-increasing in R_i. Maximizing each R_i under the client's own
budget -- water-filling over its subchannels -- therefore minimizes the round latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf, log2

import numpy as np

from .allocation import repair_owner
from .latency import LatencyModel, dbm_to_w
from .state import Allocation, RoundState

# Noise power N0 W of one 1 MHz subchannel at -174 dBm/Hz (the SPEC 3 defaults): the default of
# ``greedy_assignment`` when it is called without a latency model's noise.
DEFAULT_NOISE_W = dbm_to_w(-174.0) * 1e6

# Starting assignments of the BCD (``solve_fixed_cut(starts=...)``).
STARTS = ("greedy", "proportional")

__all__ = ["DEFAULT_NOISE_W", "STARTS", "CutCost", "ResourceContext", "greedy_assignment", "local_search",
           "solve_fixed_cut", "solve_resources", "water_fill", "water_filled_rate"]


# ---------------------------------------------------------------------------------------------------
# water-filling

def _water_level(inv_snr: np.ndarray, budget_w: np.ndarray | float) -> np.ndarray:
    """Water level mu [...] for inverse unit-power SNRs a = N0W/g [..., K] (inf = unavailable)."""
    a = np.sort(inv_snr, axis=-1)
    k = np.arange(1, a.shape[-1] + 1)
    # level_k = (P + a_1 + .. + a_k) / k; the active set is the longest prefix with level_k > a_k.
    level = (np.asarray(budget_w, dtype=np.float64)[..., None] + np.cumsum(a, axis=-1)) / k
    n_active = np.count_nonzero(level > a, axis=-1)
    mu = np.take_along_axis(level, np.maximum(n_active - 1, 0)[..., None], axis=-1)[..., 0]
    return np.where(n_active > 0, mu, 0.0)


def _inv_snr(gains: np.ndarray, noise_w: float) -> np.ndarray:
    g = np.asarray(gains, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(g > 0, noise_w / np.where(g > 0, g, 1.0), np.inf)


def water_fill(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float,
               bw_hz: float | None = None) -> np.ndarray:
    """Exact max-sum-rate power of one client over its subchannels (vectorized).

    Maximizes sum_k W log2(1 + p_k g_k / (N0 W)) subject to sum_k p_k <= P, p_k >= 0:
    p_k = max(0, mu - N0W / g_k) with the water level mu set so that the budget is spent exactly.

    Args:
        gains: [..., K] linear gains of the client's subchannels; entries <= 0 mark subchannels the
            client does not hold (they get no power). Leading axes are independent problems.
        budget_w: power budget P, W; a scalar or an array broadcastable to ``gains.shape[:-1]``.
        noise_w: noise power of one subchannel, N0 W, in W.
        bw_hz: subchannel bandwidth W. Accepted for symmetry with ``water_filled_rate``; the optimal
            powers do not depend on it once ``noise_w`` is given.

    Returns:
        [..., K] powers, W; they sum to the budget (up to rounding) wherever some gain is > 0.
    """
    a = _inv_snr(gains, noise_w)
    mu = _water_level(a, budget_w)
    return np.maximum(mu[..., None] - a, 0.0)


def water_filled_rate(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float,
                      bw_hz: float) -> np.ndarray:
    """The uplink rate, bit/s, of ``water_fill`` power: shape ``gains.shape[:-1]``."""
    return _rate_from_inv_snr(_inv_snr(gains, noise_w), budget_w, bw_hz)


# Stand-in for an unavailable subchannel (inverse SNR = inf) that keeps prefix sums finite, so that
# they can be taken as a product with a triangular matrix (much faster than cumsum on short rows).
_BIG = 1e300
_TRIU: dict[int, np.ndarray] = {}


def _prefix_sums(x: np.ndarray) -> np.ndarray:
    k = x.shape[-1]
    tri = _TRIU.get(k)
    if tri is None:
        tri = _TRIU[k] = np.triu(np.ones((k, k)))
    return x @ tri


def _rate_from_inv_snr(a: np.ndarray, budget_w: np.ndarray | float, bw_hz: float) -> np.ndarray:
    # With p_k = mu - a_k on the active set, 1 + p_k / a_k = mu / a_k, so the rate is
    # W (n log2 mu - sum of log2 a_k over the n active subchannels).
    a = np.sort(np.minimum(a, _BIG), axis=-1)
    k_max = a.shape[-1]
    level = (np.asarray(budget_w, dtype=np.float64)[..., None] + _prefix_sums(a)) / np.arange(1, k_max + 1)
    n_active = np.count_nonzero(level > a, axis=-1)
    flat = np.maximum(n_active - 1, 0).ravel() + np.arange(n_active.size) * k_max
    mu = level.reshape(-1)[flat].reshape(n_active.shape)
    log_a = _prefix_sums(np.log2(a)).reshape(-1)[flat].reshape(n_active.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = n_active * np.log2(mu) - log_a
    return bw_hz * np.where(n_active > 0, rate, 0.0)


def _wf_rate_sorted(a_sorted: list[float], budget_w: float, bw_hz: float) -> float:
    """Water-filled rate for an ascending list of inverse SNRs (scalar fast path, tiny lists)."""
    total = 0.0
    mu = 0.0
    k = 0
    for idx, a in enumerate(a_sorted):
        level = (budget_w + total + a) / (idx + 1)
        if level <= a:
            break
        total += a
        mu = level
        k = idx + 1
    return bw_hz * sum(log2(mu / a) for a in a_sorted[:k])


# ---------------------------------------------------------------------------------------------------
# the latency as a function of rates, for fixed cuts

@dataclass
class CutCost:
    """SPEC 4 round latency for fixed cuts, as a function of the per-client rates.

    With cuts fixed, T = max_i (up_off_i + up_bits_i / R_i) + const + max_i (dn_off_i + dn_bits_i /
    RD_i) [+ sync] [+ migration]. Arrays have shape [..., N]; ``...`` indexes candidate cuts (built
    from a cut array [..., N]) and broadcasts against candidate rates.

    Attributes:
        up_off: client forward time tF_i, s.
        up_bits: uplink bits b psi_{j_i}.
        dn_off: client backward time tB_i plus the broadcast part of the downlink (EPSL), s.
        dn_bits: unicast downlink bits ((1-phi) b chi_j, b chi_j, or 0 when the downlink is ignored).
        const: server compute TsF + TsB, s.
        sync_bits: delta_{j_i} on a sync round, else None.
        mig_bits: |delta_{j_i} - delta_{prev_i}| when migration is charged and some cut moves, else None.
        mig_up: True where the blocks are uploaded (the cut moved towards the input).
    """

    up_off: np.ndarray
    up_bits: np.ndarray
    dn_off: np.ndarray
    dn_bits: np.ndarray
    const: np.ndarray
    sync_bits: np.ndarray | None = None
    mig_bits: np.ndarray | None = None
    mig_up: np.ndarray | None = None

    @classmethod
    def build(cls, model: LatencyModel, state: RoundState, cut: np.ndarray,
              broadcast_rate: float | None = None) -> "CutCost":
        """The cost of cuts ``cut`` [..., N] on ``state`` (mirrors ``LatencyModel.latency_arrays``)."""
        cut = np.asarray(cut, dtype=np.int64)
        flops = state.client_flops
        up_off = model.fwd_batch[cut] / flops
        up_bits = model.act_batch_bits[cut]
        tb = model.bwd_batch[cut] / flops
        phi = model.phi
        server_fwd = model.server_fwd_batch[cut].sum(axis=-1)
        server_bwd = (1.0 - phi) * model.server_bwd_batch[cut].sum(axis=-1)
        if phi > 0.0:
            server_bwd = server_bwd + phi * model.server_bwd_batch[cut[..., 0]]
        const = (server_fwd + server_bwd) / model.server_flops
        grad = model.grad_batch_bits[cut]
        if model.downlink == "ignore":
            dn_off, dn_bits = tb, np.zeros_like(tb)
        elif model.downlink == "unicast" or phi == 0.0:
            dn_off, dn_bits = tb, grad
        else:
            r_bc = model.broadcast_rate(state.observed_gains) if broadcast_rate is None else broadcast_rate
            dn_off = tb + (phi * grad[..., 0] / r_bc)[..., None]
            dn_bits = (1.0 - phi) * grad
        delta = model.param_bits[cut]
        sync_bits = delta if state.sync else None
        mig_bits = mig_up = None
        if state.prev_cut is not None and model.migration_enabled:
            prev = np.asarray(state.prev_cut, dtype=np.int64)
            moved = np.abs(delta - model.param_bits[prev])
            if np.any(moved > 0):
                mig_bits, mig_up = moved, np.broadcast_to(cut < prev, moved.shape)
        return cls(up_off, up_bits, dn_off, dn_bits, np.asarray(const), sync_bits, mig_bits, mig_up)

    def uplink_times(self, rate_up: np.ndarray) -> np.ndarray:
        """tF_i + tU_i, [..., N]."""
        return self.up_off + self.up_bits / rate_up

    def downlink_times(self, rate_down: np.ndarray) -> np.ndarray:
        """tD_i + tB_i, [..., N]."""
        return self.dn_off + self.dn_bits / rate_down

    def extra_terms(self, rate_up: np.ndarray, rate_down: np.ndarray) -> list[np.ndarray]:
        """Per-client sync and migration times [..., N] (each enters the total through its max)."""
        out = []
        if self.sync_bits is not None:
            out += [self.sync_bits / rate_up, self.sync_bits / rate_down]
        if self.mig_bits is not None:
            out.append(self.mig_bits / np.where(self.mig_up, rate_up, rate_down))
        return out

    def total(self, rate_up: np.ndarray, rate_down: np.ndarray) -> np.ndarray:
        """Round latency, s: broadcast of the cut axes against the rate axes, minus the client axis."""
        t = (self.uplink_times(rate_up).max(axis=-1) + self.const
             + self.downlink_times(rate_down).max(axis=-1))
        for term in self.extra_terms(rate_up, rate_down):
            t = t + term.max(axis=-1)
        return t


# ---------------------------------------------------------------------------------------------------
# per-state precomputation

class ResourceContext:
    """What every solver call on one round state shares: inverse SNRs, downlink rates, orders.

    Built once per (model, state) and cached in ``state.cache``; uses ``state.observed_gains``.
    """

    def __init__(self, model: LatencyModel, state: RoundState) -> None:
        g = np.asarray(state.observed_gains, dtype=np.float64)
        self.model = model
        self.n, self.m = g.shape
        self.gains = g
        self.budget = np.asarray(state.power_budget_w, dtype=np.float64)
        self.bw = model.subchannel_bw_hz
        self.inv_snr = _inv_snr(g, model.noise_w)  # [N, M]
        self.rate_down_sc = model.subchannel_rates(g, model.server_power_w)  # [N, M]
        self.broadcast_rate = float(model.broadcast_rate(g)) if model.downlink == "broadcast" else None
        # Subchannels of each client from best to worst gain (ties by index).
        self.preference = np.argsort(-g, axis=1, kind="stable")
        self._pref_lists = self.preference.tolist()
        self._inv_lists = self.inv_snr.tolist()
        # Upper bounds on the rates: the whole band to one client (for lower bounds on the latency).
        self.rate_up_max = _rate_from_inv_snr(self.inv_snr, self.budget, self.bw)
        self.rate_down_max = self.rate_down_sc.sum(axis=1)

    @classmethod
    def of(cls, model: LatencyModel, state: RoundState) -> "ResourceContext":
        key = ("solvers.context", id(model))
        ctx = state.cache.get(key)
        if ctx is None or ctx.model is not model:
            ctx = state.cache[key] = cls(model, state)
        return ctx

    def cost(self, state: RoundState, cut: np.ndarray) -> CutCost:
        return CutCost.build(self.model, state, cut, self.broadcast_rate)

    def lower_bound(self, cost: CutCost) -> np.ndarray:
        """A lower bound on the latency of ``cost``'s cuts over every assignment and power."""
        return cost.total(self.rate_up_max, self.rate_down_max)

    def rates(self, mask: np.ndarray, clients: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Water-filled uplink and downlink rates of ownership masks.

        ``mask`` [..., N, M] gives every client's subchannels; or, with ``clients`` [...] naming a
        client per row, ``mask`` [..., M] gives that client's subchannels. Returns arrays [..., N]
        (or [...]).
        """
        if clients is None:
            inv, budget, rd = self.inv_snr, self.budget, self.rate_down_sc
        else:
            inv, budget, rd = self.inv_snr[clients], self.budget[clients], self.rate_down_sc[clients]
        up = _rate_from_inv_snr(np.where(mask, inv, np.inf), budget, self.bw)
        down = (rd * mask).sum(axis=-1)
        return up, down

    def powers(self, owner: np.ndarray) -> np.ndarray:
        """[M] water-filled power of each subchannel for an assignment ``owner`` [M]."""
        mask = owner[None, :] == np.arange(self.n)[:, None]
        p = water_fill(np.where(mask, self.gains, 0.0), self.budget, self.model.noise_w)
        out = np.zeros(self.m)
        used = owner >= 0
        out[used] = p[owner[used], np.flatnonzero(used)]
        return out

    # -- greedy -----------------------------------------------------------------------------------
    def greedy(self, up_off: np.ndarray, up_w: np.ndarray, dn_off: np.ndarray | None = None,
               dn_w: np.ndarray | None = None) -> np.ndarray:
        """Bottleneck greedy: every client first takes one subchannel (most loaded first), then the
        client with the largest time ``up_off + up_w / R + dn_off + dn_w / RD`` takes its best free
        subchannel, until none is left. R is water-filled on the client's subchannels."""
        n, m, bw = self.n, self.m, self.bw
        up_off = [float(x) for x in np.broadcast_to(up_off, (n,))]
        up_w = [float(x) for x in np.broadcast_to(up_w, (n,))]
        use_dn = dn_w is not None and np.any(np.asarray(dn_w) > 0)
        dn_off_l = [float(x) for x in np.broadcast_to(0.0 if dn_off is None else dn_off, (n,))]
        dn_w_l = [float(x) for x in np.broadcast_to(0.0 if dn_w is None else dn_w, (n,))]
        budget = self.budget.tolist()
        rd_sc = self.rate_down_sc.tolist() if use_dn else None
        pref, inv = self._pref_lists, self._inv_lists
        owner = [-1] * m
        pointer = [0] * n
        held: list[list[float]] = [[] for _ in range(n)]
        rate_dn = [0.0] * n
        times = [0.0] * n

        def take(i: int) -> None:
            row = pref[i]
            p = pointer[i]
            while owner[row[p]] >= 0:
                p += 1
            ch = row[p]
            pointer[i] = p + 1
            owner[ch] = i
            held[i].append(inv[i][ch])  # ascending: each pick is the best still free
            r = _wf_rate_sorted(held[i], budget[i], bw)
            t = up_off[i] + (0.0 if up_w[i] == 0 else up_w[i] / r if r > 0 else inf)
            if use_dn:
                rate_dn[i] += rd_sc[i][ch]
                t += dn_off_l[i] + (0.0 if dn_w_l[i] == 0 else dn_w_l[i] / rate_dn[i] if rate_dn[i] > 0 else inf)
            times[i] = t

        up_max = self.rate_up_max.tolist()
        first = sorted(range(n), key=lambda i: (-(up_off[i] + up_w[i] / up_max[i]), i))
        for i in first:
            take(i)
        for _ in range(m - n):
            take(times.index(max(times)))  # the first client with the largest time
        return np.asarray(owner, dtype=np.int64)


    def proportional(self, cost: CutCost) -> np.ndarray:
        """Weighted proportional-fair start: subchannel m goes to the client maximizing
        (g_im / mean_m' g_im') x (its time with the whole band to itself), then every client left
        without a subchannel takes one (``repair_owner``). A second starting point for the BCD."""
        load = cost.uplink_times(self.rate_up_max) + cost.downlink_times(self.rate_down_max)
        rel = self.gains / self.gains.mean(axis=1, keepdims=True)
        owner = np.argmax(rel * load[:, None], axis=0)
        return repair_owner(owner, self.gains)[0]

# ---------------------------------------------------------------------------------------------------
# public solvers

def greedy_assignment(state: RoundState, weights: np.ndarray, *, noise_w: float = DEFAULT_NOISE_W,
                      bw_hz: float = 1e6, offset_s: np.ndarray | None = None) -> np.ndarray:
    """Deterministic greedy subchannel assignment driven by per-client weights.

    Each client first takes its best subchannel (clients with the largest ``offset_s + weights /
    R_full`` choose first, R_full being the client's water-filled rate over the whole band); then,
    until no subchannel is left, the client with the largest ``offset_s_i + weights_i / R_i`` takes
    its best free subchannel, R_i being the water-filled rate of what it holds. With ``weights`` =
    bits to upload and ``offset_s`` = compute time, this is min-max of the uplink-phase times; with
    equal weights it balances rates. Uses ``state.observed_gains``.

    Args:
        state: the round (observed gains, power budgets).
        weights: [N] non-negative per-client weights (e.g. bits to send, or priorities).
        noise_w: noise power N0 W of one subchannel, W (default: -174 dBm/Hz over 1 MHz; pass
            ``model.noise_w`` for a scenario's value).
        bw_hz: subchannel bandwidth W (scales all rates alike; only matters with ``offset_s``).
        offset_s: [N] optional per-client time added to the weighted rate term, s.

    Returns:
        owner [M]: every subchannel assigned, every client holding at least one.
    """
    g = np.asarray(state.observed_gains, dtype=np.float64)
    n, m = g.shape
    if m < n:
        raise ValueError(f"greedy_assignment: M={m} subchannels cannot serve N={n} clients")
    weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), (n,))
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("greedy_assignment: weights must be finite and >= 0")
    ctx = _StandaloneContext(state, noise_w, bw_hz)
    return ctx.greedy(np.zeros(n) if offset_s is None else offset_s, weights)


class _StandaloneContext(ResourceContext):
    """A ResourceContext without a latency model (for ``greedy_assignment``)."""

    def __init__(self, state: RoundState, noise_w: float, bw_hz: float) -> None:
        g = np.asarray(state.observed_gains, dtype=np.float64)
        self.n, self.m = g.shape
        self.gains = g
        self.budget = np.asarray(state.power_budget_w, dtype=np.float64)
        self.bw = bw_hz
        self.inv_snr = _inv_snr(g, noise_w)
        self.preference = np.argsort(-g, axis=1, kind="stable")
        self._pref_lists = self.preference.tolist()
        self._inv_lists = self.inv_snr.tolist()
        self.rate_up_max = _rate_from_inv_snr(self.inv_snr, self.budget, self.bw)


def local_search(ctx: ResourceContext, cost: CutCost, owner: np.ndarray, max_iter: int = 200,
                 moves: str = "bottleneck") -> tuple[np.ndarray, float]:
    """Steepest-descent subchannel reassignment with water-filled power (the BCD refinement).

    Each iteration prices, with the power of both affected clients re-water-filled, every move (a
    subchannel from a client holding two or more to a target client) and every swap (one of the
    target's subchannels for one of another client's), where the targets are the bottleneck clients
    (the argmax of the uplink times, of the downlink times and of any sync/migration term) -- or every
    client with ``moves="all"`` -- and applies the best one; it stops when none lowers the latency.

    Args:
        ctx: the round's ``ResourceContext``.
        cost: the latency as a function of rates for the cuts at hand.
        owner: [M] starting assignment (every client served).
        max_iter: cap on the number of accepted changes.
        moves: ``"bottleneck"`` or ``"all"``.

    Returns:
        (owner [M], modeled latency in s).
    """
    n, m = ctx.n, ctx.m
    inv, rd = ctx.inv_snr, ctx.rate_down_sc
    owner = np.array(owner, dtype=np.int64)
    clients = np.arange(n)
    mask = owner[None, :] == clients[:, None]
    counts = mask.sum(axis=1)
    a_held = np.where(mask, inv, np.inf)  # [N, M] inverse SNRs of what each client holds
    r_up = _rate_from_inv_snr(a_held, ctx.budget, ctx.bw)
    r_dn = (rd * mask).sum(axis=1)
    current = float(cost.total(r_up, r_dn))
    all_targets = clients if moves == "all" else None
    for _ in range(max_iter):
        if all_targets is None:
            targets = [np.argmax(cost.uplink_times(r_up)), np.argmax(cost.downlink_times(r_dn))]
            targets += [np.argmax(t) for t in cost.extra_terms(r_up, r_dn)]
            targets = np.unique(targets)
        else:
            targets = all_targets
        other = owner[None, :] != targets[:, None]  # [T, M]
        # moves: (target, subchannel) with the donor keeping at least one subchannel
        ti_mv, take_mv = np.nonzero(other & (counts[owner] >= 2)[None, :])
        # swaps: (target, its subchannel ``give``, another's better subchannel ``take``). A swap that
        # hands the target a worse subchannel lowers both its rates; if it helped the other client,
        # that client would be a target itself and the swap is enumerated from its side.
        inv_t = inv[targets]
        ti_sw, give_sw, take_sw = np.nonzero(~other[:, :, None] & other[:, None, :]
                                             & (inv_t[:, None, :] < inv_t[:, :, None]))
        recv = targets[np.concatenate([ti_mv, ti_sw])]
        take = np.concatenate([take_mv, take_sw])
        if take.size == 0:
            break
        n_mv, c_all = take_mv.size, take.size
        give = np.concatenate([np.zeros(n_mv, dtype=np.int64), give_sw])
        swap = np.arange(c_all) >= n_mv
        donor = owner[take]
        rows = np.concatenate([a_held[recv], a_held[donor]])  # [2C, M]
        c = np.arange(c_all)
        rows[c, take] = inv[recv, take]
        rows[c_all + c, take] = np.inf
        cs = c[n_mv:]
        rows[cs, give_sw] = np.inf
        rows[c_all + cs, give_sw] = inv[donor[n_mv:], give_sw]
        up2 = _rate_from_inv_snr(rows, ctx.budget[np.concatenate([recv, donor])], ctx.bw)
        dn_recv = r_dn[recv] + rd[recv, take] - swap * rd[recv, give]
        dn_donor = r_dn[donor] - rd[donor, take] + swap * rd[donor, give]
        r_up_c = np.repeat(r_up[None, :], c_all, axis=0)
        r_dn_c = np.repeat(r_dn[None, :], c_all, axis=0)
        r_up_c[c, recv], r_up_c[c, donor] = up2[:c_all], up2[c_all:]
        r_dn_c[c, recv], r_dn_c[c, donor] = dn_recv, dn_donor
        totals = cost.total(r_up_c, r_dn_c)
        best = int(np.argmin(totals))
        if not totals[best] < current * (1.0 - 1e-12):
            break
        current = float(totals[best])
        t, rc, dn = int(take[best]), int(recv[best]), int(donor[best])
        owner[t] = rc
        a_held[rc, t], a_held[dn, t] = inv[rc, t], np.inf
        counts[rc] += 1
        counts[dn] -= 1
        if swap[best]:
            g = int(give[best])
            owner[g] = dn
            a_held[dn, g], a_held[rc, g] = inv[dn, g], np.inf
            counts[dn] += 1
            counts[rc] -= 1
        r_up, r_dn = r_up_c[best], r_dn_c[best]
    # Recompute the rates from scratch so that the returned latency carries no drift.
    mask = owner[None, :] == clients[:, None]
    return owner, float(cost.total(*ctx.rates(mask)))


def solve_fixed_cut(model: LatencyModel, state: RoundState, cut: np.ndarray | int,
                    priority: np.ndarray | None = None, *, refine: bool = True, max_iter: int = 200,
                    moves: str = "bottleneck", starts: tuple[str, ...] = ("greedy",),
                    context: ResourceContext | None = None) -> tuple[Allocation, float]:
    """``solve_resources`` that also returns the modeled latency (s, on the observed gains)."""
    n = state.num_clients
    cut_arr = np.broadcast_to(np.asarray(cut, dtype=np.int64), (n,)).copy()
    if np.any(cut_arr < 1) or np.any(cut_arr > model.num_blocks - 1):
        raise ValueError(f"cut {cut_arr.tolist()} outside 1..{model.num_blocks - 1}")
    if moves not in ("bottleneck", "all"):
        raise ValueError(f"moves: {moves!r} is not allowed; allowed: ['bottleneck', 'all']")
    ctx = context or ResourceContext.of(model, state)
    cost = ctx.cost(state, cut_arr)
    if priority is not None:
        priority = np.broadcast_to(np.asarray(priority, dtype=np.float64), (n,))
        if np.any(priority < 0) or not np.all(np.isfinite(priority)):
            raise ValueError("priority must be finite and >= 0")
    best_owner, best = None, np.inf
    for start in starts:
        if start == "greedy":
            if priority is None:
                owner = ctx.greedy(cost.up_off, cost.up_bits, cost.dn_off, cost.dn_bits)
            else:
                owner = ctx.greedy(cost.up_off, cost.up_bits * priority)
        elif start == "proportional":
            owner = ctx.proportional(cost)
        else:
            raise ValueError(f"starts: {start!r} is not allowed; allowed: {list(STARTS)}")
        if refine:
            owner, latency = local_search(ctx, cost, owner, max_iter, moves)
        else:
            mask = owner[None, :] == np.arange(n)[:, None]
            latency = float(cost.total(*ctx.rates(mask)))
        if latency < best:
            best_owner, best = owner, latency
    if best_owner is None:
        raise ValueError("starts: give at least one starting point")
    return Allocation(cut_arr, best_owner, ctx.powers(best_owner)), best


def solve_resources(model: LatencyModel, state: RoundState, cut: np.ndarray | int,
                    priority: np.ndarray | None = None, *, refine: bool = True, max_iter: int = 200,
                    moves: str = "bottleneck", starts: tuple[str, ...] = ("greedy",),
                    context: ResourceContext | None = None) -> Allocation:
    """Subchannels and power for fixed cuts: the EPSL-BCD inner loop (SPEC 7).

    1. Greedy start (``ResourceContext.greedy``): each client takes its best subchannel, then the
       client with the largest modeled time (uplink compute + upload at the water-filled rate, plus
       the downlink side) takes its best free subchannel, until all M are used.
    2. Block-coordinate descent (``local_search``): alternate subchannel reassignment toward the
       bottleneck client (moves and swaps) with per-client water-filling of the affected clients,
       keeping a change only if the round latency drops, until no change does.
    3. Power: water-filling of every client over its subchannels (exact for the final assignment).

    Args:
        model: the scenario's latency model.
        state: the round; its ``observed_gains`` are used.
        cut: [N] cut per client, or one int for a common cut.
        priority: [N] optional non-negative weights multiplying each client's uplink load in the
            greedy start (1 = neutral, larger = served first and more). The refinement then
            minimizes the modeled latency; pass ``refine=False`` to keep the priority-driven
            assignment as it is.
        refine: run step 2 (default True).
        max_iter: cap on the number of accepted reassignments.
        moves: ``"bottleneck"`` (candidates hand a subchannel to a bottleneck client) or ``"all"``.
        starts: starting assignments, each refined, the best kept: ``"greedy"`` (step 1) and/or
            ``"proportional"`` (``ResourceContext.proportional``; ignores ``priority``).
        context: a precomputed ``ResourceContext`` for (model, state) (else built and cached).

    Returns:
        A feasible ``Allocation``: every subchannel used, every client served, budgets spent.
    """
    return solve_fixed_cut(model, state, cut, priority, refine=refine, max_iter=max_iter, moves=moves,
                           starts=starts, context=context)[0]
