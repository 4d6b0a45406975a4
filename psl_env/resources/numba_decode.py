"""Compiled (numba) resource allocation; the numpy code of ``greedy``, ``waterfill`` is the reference.

- ``greedy_decode`` / ``CompiledGreedy``: the ``box`` / ``multidiscrete`` greedy decode
  (``TabulatedGreedy.owner`` followed by ``water_fill_owned``) in a single call: the time tables
  t_i(c), the pick sequence (every client once, most urgent first; then the largest time, first
  maximum on ties), the deal (each pick takes its client's best free subchannel, lower index on
  ties) and the exact water-filling, with the same operations in the same order. The logarithms
  stay with numpy (``TabulatedGreedy.rate_sums``: numpy's SIMD ``log2`` is several times faster
  than a compiled one and may differ from it in the last bit), so the results are bitwise those
  of the numpy code.

Rows (environments) are independent, so a round gives bitwise the same numbers alone or in any
batch. The kernels release the GIL, so the vector env's worker thread draws meanwhile. Loaded
through ``psl_env.backend.load_kernels``; numba is optional (``pip install 'psl-gym[fast]'``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .greedy import TabulatedGreedy


@numba.njit(cache=True, inline="always")
def _before(x, y):  # pragma: no cover - compiled
    """x sorts before y in a descending order with NaN last."""
    return x > y or (y != y and x == x)


@numba.njit(cache=True, nogil=True)
def greedy_decode(sums, gains, budget_w, client_flops, cut, urgency, r_bc, up_bits, dn_bits, compute,
                  broadcast_bits, use_downlink, use_broadcast, noise_w, count_log, rate_floor, owner,
                  power):  # pragma: no cover - compiled
    """Decode K rounds into ``owner`` [K, M] (int64) and ``power`` [K, M] (W).

    Args:
        sums: [P, C, K, N] ``TabulatedGreedy.rate_sums`` of the gains.
        gains: [K, N, M] observed gains; budget_w, client_flops, urgency: [K, N]; cut: [K, N] int64.
        r_bc: [K] broadcast rate of ``gains`` (read only with ``use_broadcast``).
        up_bits, dn_bits, compute, broadcast_bits: per-cut tables [L + 1] of ``TabulatedGreedy``.
        count_log, rate_floor: [C] c log2 c and the rate floor for c = 1..C.
    """
    k, n, m = gains.shape
    rows = m - n + 1
    times = np.empty((n, rows))
    seq = np.empty(m, np.int64)
    held = np.empty(n, np.int64)
    now = np.empty(n)
    penalty = np.zeros(m)
    a = np.empty(m)
    active = np.zeros(m, np.bool_)
    count = np.empty(n)
    total = np.empty(n)
    mu = np.empty(n)
    for r in range(k):
        # t_i(c): client i holding its c best subchannels (TabulatedGreedy.times)
        for i in range(n):
            j = cut[r, i]
            off = compute[j] / client_flops[r, i]
            if use_broadcast:
                off += broadcast_bits[cut[r, 0]] / r_bc[r]
            for c in range(rows):
                up = sums[0, c, r, i] - count_log[c]
                if not up >= rate_floor[c]:  # np.maximum: the floor, or NaN
                    up = rate_floor[c] if not math.isnan(up) else up
                t = up_bits[j] / up
                if use_downlink:
                    t += dn_bits[j] / sums[1, c, r, i]
                t += off
                times[i, c] = t * urgency[r, i]
        # the pick sequence (TabulatedGreedy.sequence). First every client once, most urgent
        # first: a stable descending insertion sort of t_i(1), NaN last.
        for i in range(n):
            v = times[i, 0]
            p = i
            while p > 0 and _before(v, times[seq[p - 1], 0]):
                seq[p] = seq[p - 1]
                p -= 1
            seq[p] = i
            held[i] = 1
            now[i] = v
        # then each pick to the largest current time (np.argmax: the first maximum, or the first NaN)
        for p in range(n, m):
            best = 0
            top = now[0]
            for i in range(1, n):
                v = now[i]
                take = (v > top) | ((v != v) & (top == top))
                best = i if take else best
                top = v if take else top
            seq[p] = best
            held[best] += 1
            if held[best] <= rows:
                now[best] = times[best, held[best] - 1]
        # the deal (TabulatedGreedy.deal): each pick takes its client's best free subchannel (the
        # first maximum of the gain minus 1e300 where taken)
        penalty[:] = 0.0
        for p in range(m):
            i = seq[p]
            best = 0
            top = gains[r, i, 0] - penalty[0]
            for ch in range(1, m):
                v = gains[r, i, ch] - penalty[ch]
                take = v > top
                best = ch if take else best
                top = v if take else top
            penalty[best] = 1e300
            owner[r, best] = i
        # exact water-filling of each budget over the client's subchannels (water_fill_owned)
        for ch in range(m):
            a[ch] = noise_w / gains[r, owner[r, ch], ch]
            active[ch] = a[ch] < np.inf
        while True:
            count[:] = 0.0
            total[:] = 0.0
            for ch in range(m):
                if active[ch]:
                    count[owner[r, ch]] += 1.0
                    total[owner[r, ch]] += a[ch]
            for i in range(n):
                mu[i] = (budget_w[r, i] + total[i]) / (count[i] if count[i] > 1.0 else 1.0)
            changed = False
            for ch in range(m):
                if active[ch] and not a[ch] < mu[owner[r, ch]]:
                    active[ch] = False
                    changed = True
            if not changed:
                break
        for ch in range(m):
            power[r, ch] = mu[owner[r, ch]] - a[ch] if active[ch] else 0.0


class CompiledGreedy:
    """``TabulatedGreedy.owner`` + ``water_fill_owned`` of one codec through ``greedy_decode``."""

    def __init__(self, greedy: TabulatedGreedy) -> None:
        model = greedy.model
        self.greedy = greedy
        self.m = greedy.m
        self.use_broadcast = bool(greedy.broadcast_bits is not None and greedy.use_downlink)
        broadcast_bits = greedy.broadcast_bits if self.use_broadcast else np.zeros(model.num_blocks + 1)
        self.tables = tuple(np.ascontiguousarray(t, dtype=np.float64)
                            for t in (greedy.up_bits, greedy.dn_bits, greedy.compute, broadcast_bits))
        rows = greedy.m - greedy.n + 1
        self.count_log = np.ascontiguousarray(greedy.count_log[:rows, 0, 0])
        self.rate_floor = np.ascontiguousarray(greedy.rate_floor[:rows, 0, 0])
        self.noise_w = float(greedy.noise_w)
        self.use_downlink = bool(greedy.use_downlink)
        self._no_rate = np.zeros(1)

    def decode(self, gains: np.ndarray, budget_w: np.ndarray, client_flops: np.ndarray, cut: np.ndarray,
               urgency: np.ndarray, r_bc: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(owner [K, M], power [K, M]) for K rounds; ``r_bc`` as in ``TabulatedGreedy.times``."""
        g = self.greedy
        k = gains.shape[0]
        if self.use_broadcast:
            if r_bc is None:
                r_bc = g.model.radio.broadcast_rate(gains)
            r_bc = np.ascontiguousarray(r_bc, dtype=np.float64)
        else:
            r_bc = self._no_rate
        owner = np.empty((k, self.m), dtype=np.int64)
        power = np.empty((k, self.m))
        f64 = np.float64
        gains = np.ascontiguousarray(gains, dtype=f64)
        budget_w = np.ascontiguousarray(budget_w, dtype=f64)
        greedy_decode(g.rate_sums(gains, budget_w), gains, budget_w, np.ascontiguousarray(client_flops, dtype=f64),
                      np.ascontiguousarray(cut, dtype=np.int64), np.ascontiguousarray(urgency, dtype=f64), r_bc,
                      *self.tables, self.use_downlink, self.use_broadcast, self.noise_w, self.count_log,
                      self.rate_floor, owner, power)
        return owner, power


__all__ = ["CompiledGreedy", "greedy_decode"]
