"""Allocation building blocks on batches of rounds: [K, ...] arrays, no Python loop over K.

- ``water_fill_owned``: exact per-client water-filling over the subchannels each client owns
  (the power step of every low-dimensional codec; same optimum as ``system.solvers.water_fill``).
- ``BottleneckGreedy``: the solver's bottleneck greedy subchannel assignment, batched (the default
  assignment of the ``box`` and ``multidiscrete`` codecs).
- ``priority_owner`` with ``uplink_need``: a faster, coarser weighted proportional-fair
  assignment with one guaranteed ("anchor") subchannel per client.

Every function gives a round the same result alone or in a batch (bitwise).
"""

from __future__ import annotations

import numpy as np

from ..system.latency import LatencyModel


class Scratch:
    """Persistent work arrays, reused across calls (large fresh temporaries cost page faults)."""

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[tuple[int, ...], type, np.ndarray]] = {}
        self.fresh = False  # whether the last ``get`` allocated (its content is undefined)

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        entry = self._arrays.get(name)
        # the requested shape and dtype are kept as given: comparing them is cheaper than
        # comparing an array's dtype with a type
        self.fresh = entry is None or entry[0] != shape or (entry[1] is not dtype and entry[1] != dtype)
        if self.fresh:
            entry = self._arrays[name] = (shape, dtype, np.empty(shape, dtype=dtype))
        return entry[2]


def water_fill_owned(owner: np.ndarray, inv_snr: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
    """Max-sum-rate power of every client over its own subchannels, for K rounds at once.

    Per client: p_m = max(0, mu - a_m) over its subchannels, with the water level mu spending the
    budget exactly. Solved by active-set iteration: start from every subchannel with a finite a,
    set mu = (P + sum of active a) / (number active), drop the subchannels with a >= mu, repeat.
    Dropped subchannels have a >= mu >= the final level, so none is ever re-admitted and the
    iteration ends at the exact solution (after at most M steps; typically 1-3). Sums run over
    subchannels in index order, so a round gives bitwise the same powers alone or in any batch.

    Args:
        owner: [K, M] client of each subchannel, -1 for unused.
        inv_snr: [K, M] inverse unit-power SNR a = N0 W / g of the owner on each subchannel (> 0,
            inf allowed: never powered).
        budget_w: [K, N] power budgets.

    Returns:
        [K, M] powers, summing to each served client's budget (up to rounding), 0 where unused.
    """
    k, m = owner.shape
    n = budget_w.shape[1]
    if k == 1:
        return _water_fill_one(owner[0].tolist(), inv_snr[0].tolist(), budget_w[0].tolist(), n)
    size = k * n + 1
    used = owner >= 0
    bins = owner + np.arange(0, k * n, n)[:, None]
    if not used.all():
        bins = np.where(used, bins, k * n)
    bins = bins.ravel()
    budget = np.append(budget_w.ravel(), 0.0)
    a = inv_snr.ravel()
    active = used.ravel() & (a < np.inf)
    while True:
        count = np.maximum(np.bincount(bins, active, minlength=size), 1.0)
        total = np.bincount(bins, np.where(active, a, 0.0), minlength=size)
        mu = ((budget + total) / count).take(bins)
        still = active & (a < mu)
        if np.array_equal(still, active):
            break
        active = still
    return np.where(active, mu - a, 0.0).reshape(k, m)


def _water_fill_one(owner: list, a: list, budget: list, n: int) -> np.ndarray:
    """``water_fill_owned`` of one round with Python floats: the same iteration and the same
    sums in the same (index) order as the ``bincount``s, hence bitwise the same powers."""
    inf = float("inf")
    active = [o >= 0 and x < inf for o, x in zip(owner, a)]
    while True:
        count = [0.0] * n
        total = [0.0] * n
        for o, x, on in zip(owner, a, active):
            if on:
                count[o] += 1.0
                total[o] += x
        mu = [(b + t) / (c if c > 1.0 else 1.0) for b, t, c in zip(budget, total, count)]
        still = [on and x < mu[o] for o, x, on in zip(owner, a, active)]
        if still == active:
            break
        active = still
    return np.array([[mu[o] - x if on else 0.0 for o, x, on in zip(owner, a, active)]])


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


def downlink_bits(model: LatencyModel, cut: np.ndarray) -> np.ndarray:
    """Bits each client receives on its own subchannels (the unicast part of the downlink), [..., N]."""
    if model.downlink == "ignore":
        return np.zeros(cut.shape)
    grad = model.grad_batch_bits[cut]
    if model.downlink == "broadcast" and model.phi > 0.0:
        return (1.0 - model.phi) * grad
    return grad


def uplink_need(model: LatencyModel, cut: np.ndarray, mean_gain: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
    """[K, N] air time (s) of each client on one subchannel: uplink bits / rate + downlink bits / rate.

    Rates are those of a subchannel of mean gain, with the client's budget spread over M/N
    subchannels (uplink) or the server's per-subchannel power (downlink). Proportional to the
    share of the band that balances the clients' transfer times.
    """
    n, m, bw = model.num_clients, model.num_subchannels, model.subchannel_bw_hz
    snr_up = budget_w * mean_gain * (n / (m * model.noise_w))
    need = (model.act_batch_bits[cut] / bw) / np.log2(1.0 + snr_up)
    if model.downlink != "ignore":
        snr_dn = mean_gain * (model.server_power_w / model.noise_w)
        need = need + (downlink_bits(model, cut) / bw) / np.log2(1.0 + snr_dn)
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


def broadcast_rate(gains: np.ndarray, down_snr: float, bw_hz: float, scratch: Scratch | None = None) -> np.ndarray:
    """R_bc [K]: the whole-band downlink rate of the worst client, W min_i sum_m log2(1 + Ps g / N0 W)."""
    snr = np.empty(gains.shape) if scratch is None else scratch.get("snr", gains.shape)
    np.multiply(gains, down_snr, out=snr)
    snr += 1.0
    np.log2(snr, out=snr)
    return np.minimum.reduce(np.add.reduce(snr, axis=2), axis=1) * bw_hz  # sum over m, min over i


def _cumsum1(x: np.ndarray) -> None:
    """In-place cumulative sum over axis 1 (sequential adds: the same bits for any batch size)."""
    if x[:, 0].size <= 512:
        np.add.accumulate(x, axis=1, out=x)  # = np.cumsum, without its Python wrapper
    else:  # numpy's cumsum over a leading axis is slow on wide rows: add row by row
        for j in range(1, x.shape[1]):
            x[:, j] += x[:, j - 1]


class BottleneckGreedy:
    """The bottleneck greedy subchannel assignment of the EPSL-BCD inner solver, without its per-pick
    arithmetic, for K rounds at once.

    The solver's greedy (``system.solvers``) repeatedly lets the client with the largest modeled
    round time take its best free subchannel. Here each client's time is first tabulated as a
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
        self.n, self.m = model.num_clients, model.num_subchannels
        m = self.m
        count = np.arange(1, m + 1, dtype=np.float64)
        self.count_log = (count * np.log2(count))[:, None, None]
        self.rate_floor = (1e-3 * count)[:, None, None]  # keeps the high-SNR rate form positive
        self.bw = model.subchannel_bw_hz
        self.inv_noise = 1.0 / model.noise_w
        self.down_snr = model.server_power_w / model.noise_w
        self.up_bits = model.act_batch_bits / self.bw  # bits / W, per cut
        self.use_downlink = model.downlink != "ignore"
        self.dn_bits = downlink_bits(model, np.arange(model.num_blocks + 1)) / self.bw
        self.compute = model.fwd_batch + model.bwd_batch  # client FLOPs per batch, forward + backward
        self.broadcast_bits = (model.phi * model.grad_batch_bits
                               if model.downlink == "broadcast" and model.phi > 0.0 else None)
        self.cut_tables = np.stack([self.up_bits, self.dn_bits, self.compute])  # [3, L + 1]
        self.scratch = Scratch()

    def rate_sums(self, gains: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
        """[P, C, K, N] sum over each client's c best subchannels of log2(1 + SNR), c = 1..C
        (index c - 1), C = M - N + 1 (the most a client can hold): P = 0 the uplink at the
        client's budget per subchannel, P = 1 (with a downlink) the downlink at the server's power.
        Client-major for fast cumulative sums; a work array, overwritten by the next call."""
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
        both += 1.0
        np.log2(both, out=both)
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
        # time = urgency x (compute + B / R + D / RD (+ broadcast)), R = W x up, RD = W x dn
        up_bits, dn_bits, compute = self.cut_tables.take(cut, axis=1)  # per-cut figures, [K, N] each
        off = compute / client_flops
        if self.use_downlink:
            if self.broadcast_bits is not None:  # the broadcast part, at R_bc of the observed gains
                if r_bc is None:
                    r_bc = broadcast_rate(gains, self.down_snr, self.bw, self.scratch)
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

