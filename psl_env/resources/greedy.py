"""Greedy subchannel assignments: who gets which subchannel, before or instead of a local search.

Named variants of one role (each a documented, different algorithm):

- ``bottleneck_greedy``: the EPSL-BCD start. Every client takes its best subchannel (most loaded
  first); then the client with the largest modeled time (compute + transfers at its water-filled
  rate) takes its best free subchannel, until none is left. Exact water-filling after every pick.
- ``TabulatedGreedy``: the same pick rule without the per-pick arithmetic, batched over K rounds:
  each client's time as a function of how many of its best subchannels it holds is tabulated once
  (equal-power, high-SNR rates). The ``box`` / ``multidiscrete`` codecs decode priorities with it.
- ``priority_owner``: weighted proportional fair with one anchor subchannel per client (coarser,
  faster; the codecs' ``proportional-fair`` assignment).
- ``proportional_start``: weighted proportional fair + repair, the BCD's second starting point.
- ``deal_by_counts``: clients take their best free subchannels in turns up to given counts
  (EdgeSplit's mapping of bandwidth shares to subchannels).

Every function gives a round the same result alone or in a batch (bitwise).
"""

from __future__ import annotations

from math import inf
from typing import TYPE_CHECKING

import numpy as np

from ..scratch import Scratch
from ..system.allocation import repair_owner
from .waterfill import rate_of_sorted, water_fill_owned

if TYPE_CHECKING:
    from ..system.latency import CutTerms, LatencyModel
    from .context import ResourceContext


def bottleneck_greedy(ctx: "ResourceContext", up_off: np.ndarray, up_w: np.ndarray, dn_off: np.ndarray | None = None,
                      dn_w: np.ndarray | None = None) -> np.ndarray:
    """Bottleneck greedy on one round: every client first takes one subchannel (most loaded first),
    then the client with the largest time ``up_off + up_w / R + dn_off + dn_w / RD`` takes its best
    free subchannel, until none is left. R is water-filled on the client's subchannels; ties go to
    the lower client index and the lower subchannel index.

    Args:
        ctx: the round's ``ResourceContext`` (preference lists, inverse SNRs, budgets, rates).
        up_off, up_w: [N] uplink time offset (s) and weight (bits) per client.
        dn_off, dn_w: [N] the downlink counterparts (None: uplink only).

    Returns:
        owner [M]: every subchannel assigned, every client holding at least one.
    """
    n, m, bw = ctx.n, ctx.m, ctx.bw
    up_off = [float(x) for x in np.broadcast_to(up_off, (n,))]
    up_w = [float(x) for x in np.broadcast_to(up_w, (n,))]
    use_dn = dn_w is not None and np.any(np.asarray(dn_w) > 0)
    dn_off_l = [float(x) for x in np.broadcast_to(0.0 if dn_off is None else dn_off, (n,))]
    dn_w_l = [float(x) for x in np.broadcast_to(0.0 if dn_w is None else dn_w, (n,))]
    budget = ctx.budget.tolist()
    rd_sc = ctx.rate_down_sc.tolist() if use_dn else None
    pref, inv = ctx.preference_lists, ctx.inv_snr_lists
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
        r = rate_of_sorted(held[i], budget[i], bw, ctx.link)
        t = up_off[i] + (0.0 if up_w[i] == 0 else up_w[i] / r if r > 0 else inf)
        if use_dn:
            rate_dn[i] += rd_sc[i][ch]
            t += dn_off_l[i] + (0.0 if dn_w_l[i] == 0 else dn_w_l[i] / rate_dn[i] if rate_dn[i] > 0 else inf)
        times[i] = t

    up_max = ctx.rate_up_max.tolist()
    first = sorted(range(n), key=lambda i: (-(up_off[i] + up_w[i] / up_max[i]), i))
    for i in first:
        take(i)
    for _ in range(m - n):
        take(times.index(max(times)))  # the first client with the largest time
    return np.asarray(owner, dtype=np.int64)


def proportional_start(ctx: "ResourceContext", terms: "CutTerms") -> np.ndarray:
    """Weighted proportional-fair start: subchannel m goes to the client maximizing (g_im / mean_m'
    g_im') x (its time with the whole band to itself), then every client left without a subchannel
    takes one (``repair_owner``). A second starting point for the BCD."""
    load = terms.uplink_times(ctx.rate_up_max) + terms.downlink_times(ctx.rate_down_max)
    rel = ctx.gains / ctx.gains.mean(axis=1, keepdims=True)
    owner = np.argmax(rel * load[:, None], axis=0)
    return repair_owner(owner, ctx.gains)[0]


def deal_by_counts(preference: list[list[int]], counts: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Clients take their best free subchannels in turns (``order`` first) up to their ``counts``.

    Args:
        preference: each client's subchannels from best to worst.
        counts: [N] subchannels per client, >= 1, summing to M.
        order: the clients in the order they pick within a turn.
    """
    m = int(np.sum(counts))
    owner = [-1] * m
    pointer = [0] * len(preference)
    left = counts.tolist()
    active = [int(i) for i in order]
    while active:
        for i in active:
            row, p = preference[i], pointer[i]
            while owner[row[p]] >= 0:
                p += 1
            owner[row[p]] = i
            pointer[i] = p + 1
            left[i] -= 1
        active = [i for i in active if left[i] > 0]
    return np.asarray(owner, dtype=np.int64)


def anchor_candidates(num_clients: int, num_subchannels: int) -> np.ndarray:
    """[N, C] the subchannels m = i, i + N, i + 2N, ... reserved for client i's anchor (padded by repeats)."""
    n, m = num_clients, num_subchannels
    c = -(-m // n)
    cand = np.arange(n)[:, None] + n * np.arange(c)[None, :]
    return np.where(cand < m, cand, np.arange(n)[:, None])


def _first_argmax(columns: list[np.ndarray] | np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """Index of the first maximum across same-shaped arrays (``np.argmax`` semantics on axis 0).

    Counts the prefix maxima below the final maximum: with elementwise operations only, which are
    much faster than masked updates or reductions over a short strided axis.
    """
    shape = (len(columns),) + columns[0].shape
    prefix = np.empty(shape) if scratch is None else scratch.get("prefix", shape)
    prefix[0] = columns[0]
    for j in range(1, len(columns)):
        np.maximum(prefix[j - 1], columns[j], out=prefix[j])
    best = prefix[-1]
    count = np.zeros(best.shape, dtype=np.int8 if len(columns) < 127 else np.int64)
    for j in range(len(columns) - 1):
        np.add(count, prefix[j] < best, out=count, casting="unsafe")
    return count.astype(np.int64)


def priority_owner(gains: np.ndarray, weights: np.ndarray, candidates: np.ndarray,
                   mean_gain: np.ndarray | None = None, scratch: Scratch | None = None) -> np.ndarray:
    """Weighted proportional-fair assignment with one anchor subchannel per client.

    1. Every subchannel goes to the client with the largest ``weights_i * g_im / mean_m g_im``: its
       channel relative to its own average, scaled by its priority (with equal weights each client
       wins about M/N subchannels, on its relatively best ones; a larger weight wins more). Ties go
       to the lower client index.
    2. Anchors: client i then takes the best, for it, of the subchannels ``candidates[i]``
       (i, i + N, ...). The candidate sets are disjoint, so every client is served and no repair is
       ever needed.

    Args:
        gains: [K, N, M] observed gains.
        weights: [K, N] positive priorities.
        candidates: [N, C] from ``anchor_candidates``.
        mean_gain: [K, N] mean gain per client (computed when not given).
        scratch: work arrays to reuse across calls.

    Returns:
        owner [K, M], every subchannel used, every client holding at least one.
    """
    k, n, m = gains.shape
    if mean_gain is None:
        mean_gain = gains.mean(axis=2)
    scale = weights / mean_gain
    if k * m <= 4096:
        owner = (gains * scale[:, :, None]).argmax(axis=1)
    else:  # client-major scores: the loop over clients runs on contiguous [K, M] blocks
        score = np.empty((n, k, m)) if scratch is None else scratch.get("score", (n, k, m))
        np.multiply(gains.transpose(1, 0, 2), scale.T[:, :, None], out=score)
        owner = _first_argmax(score, scratch)
    clients = np.arange(n)
    cand_gain = gains.reshape(k, n * m)[:, clients[:, None] * m + candidates]  # [K, N, C]
    if k * m <= 4096:
        pick = cand_gain.argmax(axis=2)
    else:
        pick = _first_argmax([cand_gain[:, :, c] for c in range(candidates.shape[1])])
    anchor = candidates[clients[None, :], pick]  # [K, N]
    owner[np.arange(k)[:, None], anchor] = clients[None, :]
    return owner


def uplink_need(model: LatencyModel, cut: np.ndarray, mean_gain: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
    """[K, N] air time (s) of each client on one subchannel: uplink bits / rate + downlink bits / rate.

    Rates are those of a subchannel of mean gain, with the client's budget spread over M/N
    subchannels (uplink) or the server's per-subchannel power (downlink). Proportional to the
    share of the band that balances the clients' transfer times.
    """
    tables, radio = model.tables, model.radio
    n, m, bw = model.num_clients, model.num_subchannels, radio.bw_hz
    snr_up = budget_w * mean_gain * (n * radio.inv_noise / m)
    need = (tables.up_bits[cut] / bw) / radio.se(snr_up)
    if tables.has_downlink:
        need = need + (tables.dn_unicast_bits[cut] / bw) / radio.downlink_se(mean_gain)
    return need


_GATHER_BASE: dict[tuple[int, int, int], np.ndarray] = {}


def gather_owned(gains: np.ndarray, owner: np.ndarray, all_used: bool = False) -> np.ndarray:
    """gains[k, owner[k, m], m] as [K, M]; unused subchannels (owner -1) read client 0's gain."""
    shape = gains.shape
    base = _GATHER_BASE.get(shape)
    if base is None:
        k, n, m = shape
        base = _GATHER_BASE[shape] = np.arange(k)[:, None] * (n * m) + np.arange(m)[None, :]
    return gains.reshape(-1).take(base + (owner if all_used else np.maximum(owner, 0)) * shape[2])



def _cumsum1(x: np.ndarray) -> None:
    """In-place cumulative sum over axis 1 (sequential adds: the same bits for any batch size)."""
    if x[:, 0].size <= 512:
        np.add.accumulate(x, axis=1, out=x)  # = np.cumsum, without its Python wrapper
    else:  # numpy's cumsum over a leading axis is slow on wide rows: add row by row
        for j in range(1, x.shape[1]):
            x[:, j] += x[:, j - 1]


class TabulatedGreedy:
    """The bottleneck greedy subchannel assignment of the EPSL-BCD inner solver, without its per-pick
    arithmetic, for K rounds at once.

    ``bottleneck_greedy`` repeatedly lets the client with the largest modeled round time take its
    best free subchannel, re-water-filling after every pick. Here each client's time is first tabulated as a
    function of how many subchannels it holds, assuming it holds its own best ones (one vectorized
    pass): t_i(c) = u_i x (tF_i + B_i / R_i(c) + tB_i + tD_i^bc + D_i / RD_i(c)), with R_i(c) the
    uplink rate of its c best subchannels at equal power (high-SNR form, W (sum log2(1 + x) - c log2
    c)), RD_i(c) their downlink rate, B_i / D_i the uplink / unicast downlink bits and u_i a priority
    factor. The pick order follows the solver's: every client once, most urgent first, then M - N
    picks each going to the client with the largest t_i(c_i). The subchannels are then dealt in that
    order, each pick taking its client's best free subchannel (ties: the lower index).

    With u = 1 this lands within a few percent of the solver's assignment (see docs/environment.md);
    u > 1 makes a client more urgent (earlier and more picks).
    """

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        tables, radio = model.tables, model.radio
        self.n, self.m = model.num_clients, model.num_subchannels
        m = self.m
        count = np.arange(1, m + 1, dtype=np.float64)
        self.count_log = (count * np.log2(count))[:, None, None]
        self.rate_floor = (1e-3 * count)[:, None, None]  # keeps the high-SNR rate form positive
        self.bw = radio.bw_hz
        self.radio = radio
        self.link = radio.link
        self.noise_w = radio.wf_noise_w
        self.inv_noise = radio.inv_noise
        self.down_snr = radio.down_snr
        # at most C bit/s/Hz on each of c subchannels (inf: no cap)
        self.rate_cap = ((self.link.cap if self.link.capped else np.inf) * count)[:, None, None]
        self.up_bits = tables.up_bits / self.bw  # bits / W, per cut
        self.use_downlink = tables.has_downlink
        self.dn_bits = tables.dn_unicast_bits / self.bw
        self.compute = tables.client_fwd_flops + tables.client_bwd_flops  # client FLOPs per batch
        self.broadcast_bits = tables.dn_broadcast_bits
        self.cut_tables = np.stack([self.up_bits, self.dn_bits, self.compute])  # [3, L + 1]
        self.scratch = Scratch()

    def rate_sums(self, gains: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
        """[P, C, K, N] sum over each client's c best subchannels of log2(1 + SNR), c = 1..C
        (index c - 1), C = M - N + 1 (the most a client can hold): P = 0 the uplink at the
        client's budget per subchannel, P = 1 (with a downlink) the downlink at the server's power
        (its spectral efficiency, capped). With the ergodic spectral efficiency (``averaged``) that
        function replaces log2(1 + SNR). Client-major for fast cumulative sums; a work array,
        overwritten by the next call."""
        k, n, m = gains.shape
        rows = m - n + 1
        # the j-th best gain times the unit SNR factor, log2(1 + x), cumulated over j
        parts = 2 if self.use_downlink else 1
        scale = self.scratch.get("scale", (parts, 1, k, n))
        if parts == 2 and self.scratch.fresh:
            scale[1] = self.down_snr
        np.multiply(budget_w, self.inv_noise, out=scale[0, 0])
        both = self.scratch.get("rates", (parts, rows, k, n))
        np.multiply(np.sort(gains, axis=2)[:, :, ::-1][:, :, :rows].transpose(2, 0, 1), scale, out=both)
        if self.link.se is not None:
            both[...] = self.link.se(both)
        else:
            both += 1.0
            np.log2(both, out=both)
            if parts == 2 and self.link.capped:  # the downlink's power is fixed: each subchannel at most C
                np.minimum(both[1], self.link.cap, out=both[1])
        _cumsum1(both)
        return both

    def times(self, gains: np.ndarray, budget_w: np.ndarray, client_flops: np.ndarray, cut: np.ndarray,
              urgency: np.ndarray, r_bc: np.ndarray | None = None) -> np.ndarray:
        """[C, K, N] t_i(c) for c = 1..C (index c - 1; see ``rate_sums``). ``r_bc``: the broadcast
        rate of the observed gains (computed when needed and not given)."""
        k, n, m = gains.shape
        rows = m - n + 1
        both = self.rate_sums(gains, budget_w)
        up = both[0]
        up -= self.count_log[:rows]
        np.maximum(up, self.rate_floor[:rows], out=up)
        if self.link.capped:
            np.minimum(up, self.rate_cap[:rows], out=up)
        # time = urgency x (compute + B / R + D / RD (+ broadcast)), R = W x up, RD = W x dn
        up_bits, dn_bits, compute = self.cut_tables.take(cut, axis=1)  # per-cut figures, [K, N] each
        off = compute / client_flops
        if self.use_downlink:
            if self.broadcast_bits is not None:  # the broadcast part, at R_bc of the observed gains
                if r_bc is None:
                    r_bc = self.model.radio.broadcast_rate(gains)
                off += (self.broadcast_bits[cut[:, 0]] / r_bc)[:, None]
            dn = both[1]
            np.divide(dn_bits, dn, out=dn)
        t = self.scratch.get("times", (rows, k, n))
        np.divide(up_bits, up, out=t)
        if self.use_downlink:
            t += dn
        t += off
        t *= urgency
        return t

    def sequence(self, times: np.ndarray) -> np.ndarray:
        """[K, M] the client of each pick, from the time tables."""
        rows, k, n = times.shape
        m = rows + n - 1
        seq = np.empty((k, m), dtype=np.int64)
        seq[:, :n] = np.argsort(-times[0], axis=1, kind="stable")  # every client once, most urgent first
        if k == 1:  # the same choices with Python floats (first maximum on ties)
            table = times[:, 0, :].T.tolist()  # [N][C]
            held = [1] * n
            now = times[0, 0].tolist()  # each client's current time, table[i][held[i] - 1]
            picks = []
            for _ in range(n, m):
                # max() keeps the first of equal maxima (it replaces only on a strictly larger
                # value), and index() finds that very object: the first maximum
                pick = now.index(max(now))
                picks.append(pick)
                held[pick] += 1
                if held[pick] <= rows:
                    now[pick] = table[pick][held[pick] - 1]
            seq[0, n:] = picks
            return seq
        flat = times.reshape(-1)
        # at[k, i]: the flat index of t_i(held_i) in ``times`` (held_i = 1 first); a pick moves it
        # one table row (K N entries) on
        at = np.arange(k * n).reshape(k, n)
        at_flat = at.reshape(-1)
        first = np.arange(k) * n
        for p in range(n, m):
            i = flat.take(at).argmax(axis=1)
            seq[:, p] = i
            i += first
            at_flat[i] += k * n
        return seq

    def deal(self, gains: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """[K, M] owners: pick p takes client seq[:, p]'s best free subchannel (ties: lower index)."""
        k, n, m = gains.shape
        owner = np.empty((k, m), dtype=np.int64)
        if k == 1:  # preference lists (stable: ties keep the lower index first) and a Python loop
            pref = np.argsort(-gains[0], axis=1, kind="stable").tolist()
            taken = [False] * m
            nxt = [0] * n
            row_owner = owner[0]
            for i in seq[0].tolist():
                row, p = pref[i], nxt[i]
                while taken[row[p]]:
                    p += 1
                ch = row[p]
                taken[ch] = True
                nxt[i] = p + 1
                row_owner[ch] = i
            return owner
        # flat indices: rows of gains as [K N, M], entries of owner / taken as [K M]
        first_row = np.arange(k) * n
        row_start = np.arange(k) * m
        g2 = gains.reshape(k * n, m)
        owner = owner.reshape(-1)
        taken = np.zeros(k * m)  # 1e300 where taken: gains are >= 0, so taken subchannels never win
        taken2 = taken.reshape(k, m)
        row = np.empty((k, m))
        for p in range(m):
            i = seq[:, p]
            np.subtract(g2.take(first_row + i, axis=0), taken2, out=row)
            flat = row.argmax(axis=1)
            flat += row_start
            owner[flat] = i
            taken[flat] = 1e300
        return owner.reshape(k, m)

    def owner(self, gains: np.ndarray, budget_w: np.ndarray, client_flops: np.ndarray, cut: np.ndarray,
              urgency: np.ndarray, r_bc: np.ndarray | None = None) -> np.ndarray:
        """[K, M] assignment: every subchannel used, every client served (M >= N). ``r_bc``: the
        broadcast rate of ``gains`` if already known."""
        times = self.times(gains, budget_w, client_flops, cut, urgency, r_bc)
        return self.deal(gains, self.sequence(times))

    def decode(self, gains: np.ndarray, budget_w: np.ndarray, client_flops: np.ndarray, cut: np.ndarray,
               urgency: np.ndarray, r_bc: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(owner [K, M], water-filled power [K, M]) for K rounds (``owner`` then ``water_fill_owned``)."""
        owner = self.owner(gains, budget_w, client_flops, cut, urgency, r_bc)
        inv_snr = self.noise_w / gather_owned(gains, owner, all_used=True)
        return owner, water_fill_owned(owner, inv_snr, budget_w, self.link)


__all__ = ["TabulatedGreedy", "anchor_candidates", "bottleneck_greedy", "deal_by_counts", "gather_owned",
           "priority_owner", "proportional_start", "uplink_need"]
