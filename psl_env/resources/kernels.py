"""Compiled (numba) resource allocation; the numpy code of ``psl_env.resources`` is the reference.

- ``local_search_kernel`` / ``local_search``: the BCD refinement (``local_search.local_search``): the
  same targets, the same candidates in the same order (moves (target, subchannel), then swaps
  (target, give, take), row-major), the same latency of each candidate (``CutTerms.total`` on the
  candidate's rates), the same first-minimum choice and acceptance rule. Instead of re-water-filling a full
  [2C, M] matrix per iteration, it keeps every client's held subchannels sorted by inverse SNR, so
  a candidate's two rates cost O(subchannels held) and the other clients' maxima come from each
  term's top three.
- ``greedy_kernel`` / ``greedy``: ``greedy.bottleneck_greedy`` (preference lists, water-filled rate of
  the held set per pick, first maximum on ties, the downlink part), with the reference's scalar
  arithmetic (its rate is summed by Python's ``sum``: compensated from Python 3.12 on).
- ``proportional_kernel`` / ``proportional``: the argmax and ``repair_owner`` of
  ``greedy.proportional_start`` (the scores stay with numpy).
- ``water_fill_owner`` / ``powers``: ``ResourceContext.powers``, exactly (sort, running sum, compare).
- ``water_filled_rates`` / ``rates``: the water-filled uplink rates of many sets (the
  ``waterfill.rate_from_inverse_snr`` rows of ``ResourceContext.rates``).
- ``greedy_decode`` / ``CompiledGreedy``: the ``box`` / ``multidiscrete`` decode
  (``greedy.TabulatedGreedy.owner`` followed by ``waterfill.water_fill_owned``) in one call.

What "the same" means. Integer decisions (owners) follow the reference's rules exactly, and every
quantity is computed with the reference's operations in the reference's order, except where numpy's own result depends on more than the inputs:

- ``log2`` of the water level is libm's here and numpy's SIMD one there; they differ in the last
  bit for about 1 argument in 10^4. The logarithms of the inverse SNRs are numpy's (a table made
  once per round), so only the level's logarithm is affected.

A candidate's latency can therefore differ from the reference's by a few units in the last place,
which changes a choice only between two candidates within that distance of each other (a near-tie;
the tests count them). By default the local search's wrapper prices its start and its result with
the numpy code, so the returned latency of a given assignment is bitwise the reference's
(``pricing="kernel"`` trades that for speed).

The kernels release the GIL and take plain arrays; the wrappers take the solver's objects
(``ResourceContext``, ``CutTerms``) and have the signatures of the functions they mirror.
numba is optional (``pip install 'psl-gym[fast]'``): import this module on demand.
"""

from __future__ import annotations

import functools
import math
import sys
import weakref
from typing import TYPE_CHECKING, NamedTuple

import numba
import numpy as np

from .greedy import TabulatedGreedy

if TYPE_CHECKING:  # the wrappers only read these objects' arrays
    from psl_env.resources.context import ResourceContext
    from psl_env.system.latency import CutTerms

# The reference's stand-in for an unavailable subchannel's inverse SNR (``waterfill._BIG``; a test
# checks they agree): it decides where such subchannels sort and what their logarithm adds.
BIG = 1e300

# Python's ``sum`` of floats is compensated (Neumaier) from 3.12 on; the greedy reference sums the
# per-subchannel rates with it.
COMPENSATED_SUM = sys.version_info >= (3, 12)

_TERM_UP, _TERM_DOWN, _TERM_SYNC_UP, _TERM_SYNC_DOWN, _TERM_MIGRATION = 0, 1, 2, 3, 4


# ---------------------------------------------------------------------------------------------------
# water-filled rates

@numba.njit(cache=True, error_model="numpy")
def _capped_solve(sv, sl, h, budget, k_cap, lev, lps):  # pragma: no cover - compiled
    """Capped water-filling of the ascending list ``sv[:h]`` (logs ``sl``), as ``waterfill._capped_levels``:
    saturate the prefix with (K + 1) a <= mu, take its power off the budget, fill the rest again.
    Returns (level mu, active unsaturated count n, saturated count s, saturation level: a
    subchannel is saturated iff (K + 1) a <= it); ``lps[n - 1]`` is then the sum of the active
    entries' logs (from position s)."""
    s = 0
    sat = 0.0
    mu_sat = 0.0
    while True:
        left = budget - k_cap * sat
        csum = 0.0
        lsum = 0.0
        n = 0
        for j in range(h - s):
            v = sv[s + j]
            csum += v
            lev[j] = (left + csum) / (j + 1)
            lsum += sl[s + j]
            lps[j] = lsum
            if lev[j] > v:
                n += 1
        mu = lev[n - 1] if n > 0 else 0.0
        new = 0
        for j in range(h - s):
            if sv[s + j] * (k_cap + 1.0) <= mu:
                new += 1
        if new == 0:
            return mu, n, s, mu_sat
        mu_sat = mu
        t = 0.0
        for j in range(new):
            t += sv[s + j]
        sat = sat + t
        s += new


@numba.njit(cache=True, error_model="numpy")
def _capped_rate(sv, sl, h, budget, bw, k_cap, cap, lev, lps):  # pragma: no cover - compiled
    """Rate, bit/s, of capped water-filling over ``sv[:h]`` (``waterfill.rate_from_inverse_snr``)."""
    mu, n, s, _ = _capped_solve(sv, sl, h, budget, k_cap, lev, lps)
    rate = n * math.log2(mu) - lps[n - 1] if n > 0 else 0.0
    return bw * (rate + s * cap)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _held_rate(vals, logs, h, skip, add_v, add_l, budget, bw, m, log_big, lev, lps, k_cap, cap, tv,
               tl):  # pragma: no cover - compiled
    """Water-filled rate, bit/s, of the ascending list ``vals[:h]`` (clamped inverse SNRs, logs
    ``logs``) without position ``skip`` (-1: none) and with ``add_v`` inserted (NaN: none).

    The reference's row of that set is M long, the missing subchannels standing in as ``BIG``; its
    level at position k is (P + a_1 + .. + a_k) / k and the number of active subchannels is the
    count of positions with level > a -- over all positions, as ``np.count_nonzero`` does, not
    only the leading run (they agree unless rounding makes the test non-monotone).
    ``lev``, ``lps``, ``tv``, ``tl``: [M] scratch. ``k_cap`` < inf: capped water-filling
    (``_capped_rate`` of the merged list).
    """
    if k_cap < np.inf:
        hm = 0
        j = 0
        pending = add_v == add_v
        while True:
            if j == skip:
                j += 1
            if pending and (j >= h or add_v <= vals[j]):
                tv[hm] = add_v
                tl[hm] = add_l
                pending = False
            elif j < h:
                tv[hm] = vals[j]
                tl[hm] = logs[j]
                j += 1
            else:
                break
            hm += 1
        return _capped_rate(tv, tl, hm, budget, bw, k_cap, cap, lev, lps)
    k = 0
    s = 0.0
    sl = 0.0
    cnt = 0
    j = 0
    pending = add_v == add_v
    last = 0.0
    while True:
        if j == skip:
            j += 1
        if pending and (j >= h or add_v <= vals[j]):
            v = add_v
            lg = add_l
            pending = False
        elif j < h:
            v = vals[j]
            lg = logs[j]
            j += 1
        else:
            break
        s += v
        level = (budget + s) / (k + 1)
        sl += lg
        lev[k] = level
        lps[k] = sl
        if level > v:
            cnt += 1
        last = v
        k += 1
    # A tail level averages values <= BIG, one of them (the largest held) <= BIG / 2: far below
    # BIG, rounding included, so the tail only counts for an empty or near-BIG set, where the
    # reference's tail is spelled out.
    if k == 0 or last > 0.5 * BIG:
        while k < m:
            s += BIG
            level = (budget + s) / (k + 1)
            sl += log_big
            lev[k] = level
            lps[k] = sl
            if level > BIG:
                cnt += 1
            k += 1
    if cnt == 0:
        return bw * 0.0
    return bw * (cnt * math.log2(lev[cnt - 1]) - lps[cnt - 1])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def water_filled_rates(vals, logs, budget, bw, log_big, k_cap, cap, out):  # pragma: no cover - compiled
    """out[r] <- water-filled rate, bit/s, of row r (``_rate_from_inv_snr``).

    Args:
        vals: [R, M] inverse unit-power SNRs N0W/g clamped to ``BIG`` (``BIG`` = not held).
        logs: [R, M] their base-2 logarithms (numpy's, so that they are the reference's).
        budget: [R] power budgets, W.
        bw: subchannel bandwidth, Hz. log_big: log2(BIG) as numpy computes it.
        k_cap, cap: 2^C - 1 and C (inf: uncapped).
        out: [R] result.
    """
    r_count, m = vals.shape
    sv = np.empty(m)
    sl = np.empty(m)
    lev = np.empty(m)
    lps = np.empty(m)
    tv = np.empty(m)
    tl = np.empty(m)
    for r in range(r_count):
        order = np.argsort(vals[r])
        h = 0
        for q in range(m):
            c = order[q]
            if vals[r, c] < BIG:
                sv[h] = vals[r, c]
                sl[h] = logs[r, c]
                h += 1
        out[r] = _held_rate(sv, sl, h, -1, np.nan, 0.0, budget[r], bw, m, log_big, lev, lps, k_cap, cap, tv, tl)


# ---------------------------------------------------------------------------------------------------
# local search

@numba.njit(cache=True, inline="always", error_model="numpy")
def _term(kind, i, up, dn, up_off, up_bits, dn_off, dn_bits, sync_bits, mig_bits,
          mig_up):  # pragma: no cover - compiled
    """Client i's value of one latency term (``CutCost.uplink_times`` ... ``extra_terms``) at rates up, dn."""
    if kind == _TERM_UP:
        return up_off[i] + up_bits[i] / up
    if kind == _TERM_DOWN:
        return dn_off[i] + dn_bits[i] / dn
    if kind == _TERM_SYNC_UP:
        return sync_bits[i] / up
    if kind == _TERM_SYNC_DOWN:
        return sync_bits[i] / dn
    return mig_bits[i] / (up if mig_up[i] else dn)


@numba.njit(cache=True, inline="always")
def _insert(hv, hl, hc, hn, pos, i, ch, v, lg):  # pragma: no cover - compiled
    """Put subchannel ch (value v, log lg) into client i's ascending held list."""
    q = hn[i]
    while q > 0 and hv[i, q - 1] > v:
        hv[i, q] = hv[i, q - 1]
        hl[i, q] = hl[i, q - 1]
        hc[i, q] = hc[i, q - 1]
        pos[hc[i, q]] = q
        q -= 1
    hv[i, q] = v
    hl[i, q] = lg
    hc[i, q] = ch
    pos[ch] = q
    hn[i] += 1


@numba.njit(cache=True, inline="always")
def _remove(hv, hl, hc, hn, pos, i, ch):  # pragma: no cover - compiled
    """Take subchannel ch out of client i's held list."""
    for q in range(pos[ch], hn[i] - 1):
        hv[i, q] = hv[i, q + 1]
        hl[i, q] = hl[i, q + 1]
        hc[i, q] = hc[i, q + 1]
        pos[hc[i, q]] = q
    hn[i] -= 1


@numba.njit(cache=True, inline="always", error_model="numpy")
def _candidate_total(cur, nnan, top, kinds, const, r, d, up_r, dn_r, up_d, dn_d, up_off, up_bits, dn_off,
                     dn_bits, sync_bits, mig_bits, mig_up):  # pragma: no cover - compiled
    """``CutCost.total`` with clients r and d at new rates and the others at the current ones.

    A term's maximum over the others is the first of its top three that is neither r nor d (max is
    exact, so this is the reference's value); any NaN makes it NaN, as ``np.max`` does.
    """
    tot = 0.0
    for k in range(kinds.shape[0]):
        kind = kinds[k]
        vr = _term(kind, r, up_r, dn_r, up_off, up_bits, dn_off, dn_bits, sync_bits, mig_bits, mig_up)
        vd = _term(kind, d, up_d, dn_d, up_off, up_bits, dn_off, dn_bits, sync_bits, mig_bits, mig_up)
        others_nan = nnan[k]
        if cur[k, r] != cur[k, r]:
            others_nan -= 1
        if cur[k, d] != cur[k, d]:
            others_nan -= 1
        if others_nan > 0 or vr != vr or vd != vd:
            mx = np.nan
        else:
            mx = -np.inf
            for q in range(3):
                i = top[k, q]
                if i >= 0 and i != r and i != d:
                    mx = cur[k, i]
                    break
            if vr > mx:
                mx = vr
            if vd > mx:
                mx = vd
        # (max_up + const) + max_down + each extra max, in CutCost.total's order
        tot = mx + const if k == 0 else tot + mx
    return tot


@numba.njit(cache=True, nogil=True, error_model="numpy")
def local_search_kernel(owner, vals, logs, inv, rd, budget, bw, log_big, r_up, r_dn, up_off, up_bits, dn_off, dn_bits,
                        const, sync_bits, mig_bits, mig_up, max_iter, all_moves, k_cap,
                        cap):  # pragma: no cover - compiled
    """``local_search`` on plain arrays; ``owner``, ``r_up``, ``r_dn`` are updated in place.

    Args:
        owner: [M] int64 starting assignment, every entry in 0..N-1.
        vals: [N, M] inverse SNRs N0W/g clamped to ``BIG``; logs: [N, M] their log2 (numpy's).
        inv: [N, M] the unclamped inverse SNRs (the swap filter compares them).
        rd: [N, M] downlink rate of each subchannel, bit/s. budget: [N] W. bw: Hz.
        log_big: log2(BIG). r_up, r_dn: [N] the start's rates, bit/s (as the reference computes them).
        up_off, up_bits, dn_off, dn_bits: [N] the ``CutCost`` arrays; const: its constant, s.
        sync_bits: [N], or [0] for no sync term. mig_bits: [N] and mig_up: [N] bool, or [0] for none.
        max_iter: cap on accepted changes. all_moves: every client is a target (``moves="all"``).
        k_cap, cap: 2^C - 1 and C of the spectral-efficiency cap (inf: uncapped).

    Returns:
        (number of accepted changes, latency in s of the final rates as carried).
    """
    n, m = vals.shape
    use_sync = sync_bits.shape[0] > 0
    use_mig = mig_bits.shape[0] > 0
    n_terms = 2 + (2 if use_sync else 0) + (1 if use_mig else 0)
    kinds = np.empty(n_terms, np.int64)
    kinds[0] = _TERM_UP
    kinds[1] = _TERM_DOWN
    q = 2
    if use_sync:
        kinds[2] = _TERM_SYNC_UP
        kinds[3] = _TERM_SYNC_DOWN
        q = 4
    if use_mig:
        kinds[q] = _TERM_MIGRATION

    # Every client's subchannels, ascending by inverse SNR (the order the reference sorts into).
    hv = np.empty((n, m))
    hl = np.empty((n, m))
    hc = np.empty((n, m), np.int64)
    hn = np.zeros(n, np.int64)
    pos = np.empty(m, np.int64)
    for ch in range(m):
        i = owner[ch]
        _insert(hv, hl, hc, hn, pos, i, ch, vals[i, ch], logs[i, ch])

    cur = np.empty((n_terms, n))
    top = np.empty((n_terms, 3), np.int64)
    nnan = np.empty(n_terms, np.int64)
    lev = np.empty(m)
    lps = np.empty(m)
    tv = np.empty(m)
    tl = np.empty(m)
    targets = np.empty(n, np.int64)
    is_target = np.zeros(n, np.bool_)
    rem = np.empty(m)  # a donor's rate without a subchannel: the same for every target
    rem_ok = np.zeros(m, np.bool_)
    gives = np.empty(m, np.int64)

    accepted = 0
    current = 0.0
    for it in range(max_iter + 1):
        # each term's values at the current rates, NaN count and top three (first index on ties)
        for k in range(n_terms):
            c = 0
            t0 = -1
            t1 = -1
            t2 = -1
            for i in range(n):
                v = _term(kinds[k], i, r_up[i], r_dn[i], up_off, up_bits, dn_off, dn_bits, sync_bits, mig_bits,
                          mig_up)
                cur[k, i] = v
                if v != v:
                    c += 1
                elif t0 < 0 or v > cur[k, t0]:
                    t2 = t1
                    t1 = t0
                    t0 = i
                elif t1 < 0 or v > cur[k, t1]:
                    t2 = t1
                    t1 = i
                elif t2 < 0 or v > cur[k, t2]:
                    t2 = i
            nnan[k] = c
            top[k, 0] = t0
            top[k, 1] = t1
            top[k, 2] = t2
        if it == 0:
            # the start's latency, CutCost.total's operations in its order
            for k in range(n_terms):
                mx = np.nan if nnan[k] > 0 else cur[k, top[k, 0]]
                current = mx + const if k == 0 else current + mx
        if it == max_iter:
            break

        # targets: the argmax of every term (first NaN, else first maximum), unique and sorted
        n_t = 0
        if all_moves:
            for i in range(n):
                targets[i] = i
            n_t = n
        else:
            is_target[:] = False
            for k in range(n_terms):
                a = top[k, 0]
                if nnan[k] > 0:
                    for i in range(n):
                        if cur[k, i] != cur[k, i]:
                            a = i
                            break
                is_target[a] = True
            for i in range(n):
                if is_target[i]:
                    targets[n_t] = i
                    n_t += 1

        best = -1
        best_tot = np.inf
        b_recv = b_donor = b_take = b_give = -1
        b_up_r = b_dn_r = b_up_d = b_dn_d = 0.0
        n_cand = 0
        has_nan = False
        rem_ok[:] = False
        # moves (target, subchannel): the donor keeps at least one subchannel
        for ti in range(n_t):
            t = targets[ti]
            for ch in range(m):
                d = owner[ch]
                if d == t or hn[d] < 2:
                    continue
                if not rem_ok[ch]:
                    rem[ch] = _held_rate(hv[d], hl[d], hn[d], pos[ch], np.nan, 0.0, budget[d], bw, m, log_big, lev,
                                         lps, k_cap, cap, tv, tl)
                    rem_ok[ch] = True
                up_r = _held_rate(hv[t], hl[t], hn[t], -1, vals[t, ch], logs[t, ch], budget[t], bw, m, log_big, lev,
                                  lps, k_cap, cap, tv, tl)
                up_d = rem[ch]
                dn_r = (r_dn[t] + rd[t, ch]) - 0.0
                dn_d = (r_dn[d] - rd[d, ch]) + 0.0
                tot = _candidate_total(cur, nnan, top, kinds, const, t, d, up_r, dn_r, up_d, dn_d, up_off, up_bits,
                                       dn_off, dn_bits, sync_bits, mig_bits, mig_up)
                n_cand += 1
                if tot != tot:
                    has_nan = True
                    break
                if tot < best_tot:
                    best, best_tot = n_cand, tot
                    b_recv, b_donor, b_take, b_give = t, d, ch, -1
                    b_up_r, b_dn_r, b_up_d, b_dn_d = up_r, dn_r, up_d, dn_d
            if has_nan:
                break
        # swaps (target, give, take): the target trades one of its subchannels for a better one
        if not has_nan:
            for ti in range(n_t):
                t = targets[ti]
                n_g = 0
                for q in range(hn[t]):
                    gives[n_g] = hc[t, q]
                    n_g += 1
                gs = np.sort(gives[:n_g])  # the reference enumerates give by subchannel index
                for gi in range(n_g):
                    give = gs[gi]
                    for take in range(m):
                        d = owner[take]
                        if d == t or not inv[t, take] < inv[t, give]:
                            continue
                        up_r = _held_rate(hv[t], hl[t], hn[t], pos[give], vals[t, take], logs[t, take], budget[t], bw,
                                          m, log_big, lev, lps, k_cap, cap, tv, tl)
                        up_d = _held_rate(hv[d], hl[d], hn[d], pos[take], vals[d, give], logs[d, give], budget[d], bw,
                                          m, log_big, lev, lps, k_cap, cap, tv, tl)
                        dn_r = (r_dn[t] + rd[t, take]) - rd[t, give]
                        dn_d = (r_dn[d] - rd[d, take]) + rd[d, give]
                        tot = _candidate_total(cur, nnan, top, kinds, const, t, d, up_r, dn_r, up_d, dn_d, up_off,
                                               up_bits, dn_off, dn_bits, sync_bits, mig_bits, mig_up)
                        n_cand += 1
                        if tot != tot:
                            has_nan = True
                            break
                        if tot < best_tot:
                            best, best_tot = n_cand, tot
                            b_recv, b_donor, b_take, b_give = t, d, take, give
                            b_up_r, b_dn_r, b_up_d, b_dn_d = up_r, dn_r, up_d, dn_d
                    if has_nan:
                        break
                if has_nan:
                    break
        if n_cand == 0:
            break
        # np.argmin picks a NaN if there is one, and NaN < x is False: the reference stops
        if has_nan or best < 0 or not best_tot < current * (1.0 - 1e-12):
            break
        current = best_tot
        t, d = b_recv, b_donor
        _remove(hv, hl, hc, hn, pos, d, b_take)
        _insert(hv, hl, hc, hn, pos, t, b_take, vals[t, b_take], logs[t, b_take])
        owner[b_take] = t
        if b_give >= 0:
            _remove(hv, hl, hc, hn, pos, t, b_give)
            _insert(hv, hl, hc, hn, pos, d, b_give, vals[d, b_give], logs[d, b_give])
            owner[b_give] = d
        r_up[t] = b_up_r
        r_up[d] = b_up_d
        r_dn[t] = b_dn_r
        r_dn[d] = b_dn_d
        accepted += 1
    return accepted, current


# ---------------------------------------------------------------------------------------------------
# starts

@numba.njit(cache=True, inline="always", error_model="numpy")
def _scalar_wf_rate(a, la, h, budget, bw, compensated, k_cap, cap, lev, lps):  # pragma: no cover - compiled
    """``waterfill.rate_of_sorted`` of a[:h] (logs ``la``): the leading run with level > a, then
    Python's ``sum`` of the per-subchannel log terms (0 + first, then in order; Neumaier-compensated
    if asked); with a cap (``k_cap`` < inf) ``_capped_rate``."""
    if k_cap < np.inf:
        return _capped_rate(a, la, h, budget, bw, k_cap, cap, lev, lps)
    total = 0.0
    mu = 0.0
    k = 0
    for idx in range(h):
        level = (budget + total + a[idx]) / (idx + 1)
        if level <= a[idx]:
            break
        total += a[idx]
        mu = level
        k = idx + 1
    if k == 0:
        return bw * 0.0
    s = 0.0 + math.log2(mu / a[0])
    c = 0.0
    for idx in range(1, k):
        x = math.log2(mu / a[idx])
        if compensated:
            t = s + x
            if abs(s) >= abs(x):
                c += (s - t) + x
            else:
                c += (x - t) + s
            s = t
        else:
            s += x
    if compensated and c != 0.0 and math.isfinite(c):
        s += c
    return bw * s


@numba.njit(cache=True, nogil=True, error_model="numpy")
def greedy_kernel(pref, inv, logs, budget, bw, up_max, up_off, up_w, use_dn, dn_off, dn_w, rd, compensated, k_cap,
                  cap, owner):  # pragma: no cover - compiled
    """``ResourceContext.greedy`` into ``owner`` [M] (int64).

    Args:
        pref: [N, M] int64 each client's subchannels from best to worst gain (``ctx.preference``).
        inv: [N, M] inverse SNRs (``ctx.inv_snr``); logs: [N, M] numpy's log2 of them (clamped to
            ``BIG``). budget: [N] W. bw: Hz. k_cap, cap: the spectral-efficiency cap (inf: none).
        up_max: [N] whole-band uplink rates (``ctx.rate_up_max``), bit/s: they order the first picks.
        up_off, up_w, dn_off, dn_w: [N] time = up_off + up_w / R (+ dn_off + dn_w / RD if use_dn).
        rd: [N, M] per-subchannel downlink rates (read only with use_dn).
        compensated: sum the rate as Python >= 3.12 does.
    """
    n, m = inv.shape
    owner[:] = -1
    pointer = np.zeros(n, np.int64)
    held = np.empty((n, m))
    held_l = np.empty((n, m))
    lev = np.empty(m)
    lps = np.empty(m)
    hn = np.zeros(n, np.int64)
    rate_dn = np.zeros(n)
    times = np.zeros(n)
    # first every client once, by descending time at its whole-band rate (stable: index on ties)
    key = np.empty(n)
    first = np.empty(n, np.int64)
    for i in range(n):
        key[i] = -(up_off[i] + up_w[i] / up_max[i])
        p = i
        while p > 0 and key[first[p - 1]] > key[i]:
            first[p] = first[p - 1]
            p -= 1
        first[p] = i
    for step in range(m):
        if step < n:
            i = first[step]
        else:  # the first client with the largest time
            i = 0
            top = times[0]
            for j in range(1, n):
                if times[j] > top:
                    top = times[j]
                    i = j
        p = pointer[i]
        while owner[pref[i, p]] >= 0:
            p += 1
        ch = pref[i, p]
        pointer[i] = p + 1
        owner[ch] = i
        held[i, hn[i]] = inv[i, ch]  # ascending: each pick is the best still free
        held_l[i, hn[i]] = logs[i, ch]
        hn[i] += 1
        r = _scalar_wf_rate(held[i], held_l[i], hn[i], budget[i], bw, compensated, k_cap, cap, lev, lps)
        t = up_off[i] + (0.0 if up_w[i] == 0 else (up_w[i] / r if r > 0 else np.inf))
        if use_dn:
            rate_dn[i] += rd[i, ch]
            t += dn_off[i] + (0.0 if dn_w[i] == 0 else (dn_w[i] / rate_dn[i] if rate_dn[i] > 0 else np.inf))
        times[i] = t


@numba.njit(cache=True, inline="always")
def _before_argmax(v, top):  # pragma: no cover - compiled
    """v replaces the running np.argmax candidate top (first NaN wins, else a strictly larger value)."""
    return top == top and (v != v or v > top)


@numba.njit(cache=True, nogil=True)
def proportional_kernel(score, gains, owner):  # pragma: no cover - compiled
    """owner [M] <- np.argmax(score, axis=0), then ``repair_owner(owner, gains)``.

    Args:
        score: [N, M] relative gain x whole-band time (``ResourceContext.proportional``).
        gains: [N, M] gains the repair picks by.

    Returns:
        number of clients repaired.
    """
    n, m = score.shape
    counts = np.zeros(n, np.int64)
    for ch in range(m):
        best = 0
        for i in range(1, n):
            if _before_argmax(score[i, ch], score[best, ch]):
                best = i
        owner[ch] = best
        counts[best] += 1
    empty = np.empty(n, np.int64)
    n_empty = 0
    for i in range(n):
        if counts[i] == 0:
            empty[n_empty] = i
            n_empty += 1
    for e in range(n_empty):
        i = empty[e]
        any_free = False
        for ch in range(m):
            if owner[ch] < 0:
                any_free = True
                break
        best = -1
        for ch in range(m):
            ok = owner[ch] < 0 if any_free else counts[max(owner[ch], 0)] >= 2
            if ok and (best < 0 or _before_argmax(gains[i, ch], gains[i, best])):
                best = ch
        if best < 0:
            raise ValueError("fewer subchannels than clients: cannot serve every client")
        if owner[best] >= 0:
            counts[owner[best]] -= 1
        owner[best] = i
        counts[i] += 1
    return n_empty


@numba.njit(cache=True, nogil=True, error_model="numpy")
def water_fill_owner(owner, gains, budget, noise_w, k_cap, power):  # pragma: no cover - compiled
    """power [M] <- ``ResourceContext.powers(owner)``: each client's budget water-filled over its
    subchannels (``water_fill``: sort, running sum, level = (P + sum) / k, count level > a; with a
    cap, ``_capped_solve`` and p = min(max(mu - a, 0), K a))."""
    n, m = gains.shape
    chans = np.empty(m, np.int64)
    a = np.empty(m)
    lev = np.empty(m)
    lps = np.empty(m)
    zeros = np.zeros(m)
    power[:] = 0.0
    for i in range(n):
        h = 0
        for ch in range(m):
            if owner[ch] == i:
                chans[h] = ch
                g = gains[i, ch]
                a[h] = noise_w / g if g > 0 else np.inf
                h += 1
        if h == 0:
            continue
        sa = np.sort(a[:h])
        if k_cap < np.inf:
            mu, _, _, mu_sat = _capped_solve(np.minimum(sa, BIG), zeros, h, budget[i], k_cap, lev, lps)
            for q in range(h):
                if a[q] * (k_cap + 1.0) <= mu_sat:
                    power[chans[q]] = k_cap * a[q]
                else:
                    p = mu - a[q]
                    power[chans[q]] = p if (p >= 0.0 or p != p) else 0.0  # np.maximum(p, 0.0)
            continue
        s = 0.0
        cnt = 0
        for k in range(h):
            s += sa[k]
            lev[k] = (budget[i] + s) / (k + 1)
            if lev[k] > sa[k]:
                cnt += 1
        mu = lev[cnt - 1] if cnt > 0 else 0.0
        for q in range(h):
            p = mu - a[q]
            power[chans[q]] = p if (p >= 0.0 or p != p) else 0.0  # np.maximum(p, 0.0)


# ---------------------------------------------------------------------------------------------------
# wrappers taking the solver's objects

class ContextArrays(NamedTuple):
    """Per-round arrays the kernels read, made once per ``ResourceContext``."""

    vals: np.ndarray  # [N, M] inverse SNRs clamped to BIG
    logs: np.ndarray  # [N, M] numpy's log2 of vals
    inv: np.ndarray  # [N, M] inverse SNRs
    rd: np.ndarray  # [N, M] per-subchannel downlink rates, bit/s
    budget: np.ndarray  # [N] W
    log_big: float


_ARRAYS: "weakref.WeakKeyDictionary[ResourceContext, ContextArrays]" = weakref.WeakKeyDictionary()
_NONE_F = np.zeros(0)
_NONE_B = np.zeros(0, dtype=np.bool_)


def context_arrays(ctx: "ResourceContext") -> ContextArrays:
    """The kernels' view of ``ctx`` (cached while ctx lives)."""
    arrays = _ARRAYS.get(ctx)
    if arrays is None:
        inv = _plain(ctx.inv_snr)
        vals = np.minimum(inv, BIG)
        rd = getattr(ctx, "rate_down_sc", None)
        rd = np.zeros_like(inv) if rd is None else _plain(rd)
        arrays = _ARRAYS[ctx] = ContextArrays(vals, np.log2(vals), inv, rd, _plain(ctx.budget), float(np.log2(BIG)))
    return arrays


def _plain(x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """x as a C-contiguous, writable array: numba compiles a separate version for read-only arrays
    (``np.broadcast_to`` views, for one), which would otherwise compile in the middle of a run."""
    a = np.ascontiguousarray(x, dtype=dtype)
    return a if a.flags.writeable else a.copy()


def _f64(x: np.ndarray | float, n: int) -> np.ndarray:
    return _plain(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)))


def local_search(ctx: "ResourceContext", cost: "CutTerms", owner: np.ndarray, max_iter: int = 200,
                 moves: str = "bottleneck", *, pricing: str = "numpy") -> tuple[np.ndarray, float]:
    """``local_search.local_search`` through ``local_search_kernel``: (owner [M], latency in s).

    ``cost`` is the cost of one cut vector (arrays [N], a scalar constant).

    ``pricing="numpy"``: the rates of the start and of the result come from the numpy code
    (``ctx.rates``), so the search starts from the reference's numbers and the latency of a given
    owner is bitwise the reference's. ``pricing="kernel"``: from ``rates``; the latency may then
    differ from the reference's in the last bits. Either way the result is priced
    afresh from its owner, not from the rates the search carried: the caller compares latencies
    of different starts and cuts, and two owners whose bottleneck clients hold the same
    subchannels must tie exactly, as they do in the reference.
    """
    if moves not in ("bottleneck", "all"):
        raise ValueError(f"moves: {moves!r} is not allowed; allowed: ['bottleneck', 'all']")
    if pricing not in ("numpy", "kernel"):
        raise ValueError(f"pricing: {pricing!r} is not allowed; allowed: ['numpy', 'kernel']")
    n, m = ctx.n, ctx.m
    owner = np.array(owner, dtype=np.int64)
    if owner.shape != (m,) or (m and (owner.min() < 0 or owner.max() >= n)):
        raise ValueError("owner: every subchannel must be assigned to a client 0..N-1")
    arr = context_arrays(ctx)
    clients = np.arange(n)
    price = ctx.rates if pricing == "numpy" else functools.partial(rates, ctx)
    r_up, r_dn = price(owner[None, :] == clients[:, None])
    r_up = np.array(r_up, dtype=np.float64)
    r_dn = np.array(r_dn, dtype=np.float64)
    sync = _NONE_F if cost.sync_bits is None else _f64(cost.sync_bits, n)
    if cost.mig_bits is None:
        mig, mig_up = _NONE_F, _NONE_B
    else:
        mig = _f64(cost.mig_bits, n)
        mig_up = _plain(np.broadcast_to(np.asarray(cost.mig_up, dtype=np.bool_), (n,)), np.bool_)
    local_search_kernel(owner, arr.vals, arr.logs, arr.inv, arr.rd, arr.budget, float(ctx.bw), arr.log_big, r_up,
                        r_dn, _f64(cost.up_off, n), _f64(cost.up_bits, n), _f64(cost.dn_off, n),
                        _f64(cost.dn_bits, n), float(np.asarray(cost.server_s)), sync, mig, mig_up, int(max_iter),
                        moves == "all", ctx.link.cap_factor, ctx.link.cap)
    return owner, float(cost.total(*price(owner[None, :] == clients[:, None])))


def greedy(ctx: "ResourceContext", up_off: np.ndarray, up_w: np.ndarray, dn_off: np.ndarray | None = None,
           dn_w: np.ndarray | None = None) -> np.ndarray:
    """``greedy.bottleneck_greedy`` through ``greedy_kernel``: owner [M] (int64)."""
    n, m = ctx.n, ctx.m
    if m < n:
        raise ValueError(f"greedy: M={m} subchannels cannot serve N={n} clients")
    use_dn = dn_w is not None and bool(np.any(np.asarray(dn_w) > 0))
    inv = _plain(ctx.inv_snr)
    rd = _plain(ctx.rate_down_sc) if use_dn else inv
    owner = np.empty(m, dtype=np.int64)
    greedy_kernel(_plain(ctx.preference, np.int64), inv, context_arrays(ctx).logs, _plain(ctx.budget), float(ctx.bw),
                  _plain(ctx.rate_up_max), _f64(up_off, n), _f64(up_w, n), use_dn,
                  _f64(0.0 if dn_off is None else dn_off, n), _f64(0.0 if dn_w is None else dn_w, n), rd,
                  COMPENSATED_SUM, ctx.link.cap_factor, ctx.link.cap, owner)
    return owner


def proportional(ctx: "ResourceContext", cost: "CutTerms") -> np.ndarray:
    """``greedy.proportional_start`` (scores by numpy, argmax and repair compiled): owner [M]."""
    load = cost.uplink_times(ctx.rate_up_max) + cost.downlink_times(ctx.rate_down_max)
    rel = ctx.gains / ctx.gains.mean(axis=1, keepdims=True)
    owner = np.empty(ctx.m, dtype=np.int64)
    proportional_kernel(_plain(rel * load[:, None]), _plain(ctx.gains), owner)
    return owner


def powers(ctx: "ResourceContext", owner: np.ndarray) -> np.ndarray:
    """``ResourceContext.powers`` through ``water_fill_owner``: [M] power per subchannel, W."""
    out = np.empty(ctx.m)
    water_fill_owner(_plain(owner, np.int64), _plain(ctx.gains), _plain(ctx.budget), float(ctx.noise_w),
                     ctx.link.cap_factor, out)
    return out


def rates(ctx: "ResourceContext", mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ResourceContext.rates(mask)`` for masks [..., N, M]: the uplink through
    ``water_filled_rates``, the downlink by numpy. Returns ([..., N], [..., N]) bit/s."""
    arr = context_arrays(ctx)
    mask = np.asarray(mask, dtype=np.bool_)
    vals = np.where(mask, arr.vals, BIG).reshape(-1, ctx.m)
    logs = np.where(mask, arr.logs, arr.log_big).reshape(-1, ctx.m)
    budget = np.broadcast_to(arr.budget, mask.shape[:-1]).reshape(-1)
    up = np.empty(vals.shape[0])
    water_filled_rates(_plain(vals), _plain(logs), _plain(budget), float(ctx.bw), arr.log_big, ctx.link.cap_factor,
                       ctx.link.cap, up)
    return up.reshape(mask.shape[:-1]), (arr.rd * mask).sum(axis=-1)


# ---------------------------------------------------------------------------------------------------
# the codecs' greedy decode

@numba.njit(cache=True, inline="always")
def _before(x, y):  # pragma: no cover - compiled
    """x sorts before y in a descending order with NaN last."""
    return x > y or (y != y and x == x)


@numba.njit(cache=True, nogil=True)
def greedy_decode(sums, gains, budget_w, client_flops, cut, urgency, r_bc, up_bits, dn_bits, compute,
                  broadcast_bits, use_downlink, use_broadcast, noise_w, count_log, rate_floor, rate_cap, k_cap,
                  owner, power):  # pragma: no cover - compiled
    """Decode K rounds into ``owner`` [K, M] (int64) and ``power`` [K, M] (W).

    Args:
        sums: [P, C, K, N] ``TabulatedGreedy.rate_sums`` of the gains.
        gains: [K, N, M] observed gains; budget_w, client_flops, urgency: [K, N]; cut: [K, N] int64.
        r_bc: [K] broadcast rate of ``gains`` (read only with ``use_broadcast``).
        up_bits, dn_bits, compute, broadcast_bits: per-cut tables [L + 1] of ``TabulatedGreedy``.
        count_log, rate_floor: [>= C] c log2 c and the rate floor for c = 1, 2, ... (read for c <= C).
        rate_cap: [>= C] c x the spectral-efficiency cap (inf: none); k_cap: 2^C - 1 for the power.
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
    usable = np.zeros(m, np.bool_)
    sat = np.zeros(m, np.bool_)
    sat_sum = np.empty(n)
    left = np.empty(n)
    added = np.empty(n)
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
                if up > rate_cap[c]:  # np.minimum: the cap (NaN stays)
                    up = rate_cap[c]
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
        # exact water-filling of each budget over the client's subchannels (water_fill_owned); with
        # a cap, saturate, take the saturated power off the budget and fill the rest again
        for ch in range(m):
            a[ch] = noise_w / gains[r, owner[r, ch], ch]
            usable[ch] = a[ch] < np.inf
            sat[ch] = False
        sat_sum[:] = 0.0
        while True:
            for ch in range(m):
                active[ch] = usable[ch] and not sat[ch]
            for i in range(n):
                left[i] = budget_w[r, i] - k_cap * sat_sum[i] if k_cap < np.inf else budget_w[r, i]
            while True:
                count[:] = 0.0
                total[:] = 0.0
                for ch in range(m):
                    if active[ch]:
                        count[owner[r, ch]] += 1.0
                        total[owner[r, ch]] += a[ch]
                for i in range(n):
                    mu[i] = (left[i] + total[i]) / (count[i] if count[i] > 1.0 else 1.0)
                changed = False
                for ch in range(m):
                    if active[ch] and not a[ch] < mu[owner[r, ch]]:
                        active[ch] = False
                        changed = True
                if not changed:
                    break
            if not k_cap < np.inf:
                break
            added[:] = 0.0
            new = False
            for ch in range(m):
                if active[ch] and a[ch] * (k_cap + 1.0) <= mu[owner[r, ch]]:
                    sat[ch] = True
                    added[owner[r, ch]] += a[ch]
                    new = True
            if not new:
                break
            for i in range(n):
                sat_sum[i] = sat_sum[i] + added[i]
        for ch in range(m):
            if sat[ch]:
                power[r, ch] = k_cap * a[ch]
            else:
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
        # for c = 1..M, not only 1..M - N + 1: a round decoded on its present clients alone has
        # fewer clients, so each may hold more subchannels (the kernel reads c < M - n + 1)
        self.count_log = np.ascontiguousarray(greedy.count_log[:, 0, 0])
        self.rate_floor = np.ascontiguousarray(greedy.rate_floor[:, 0, 0])
        self.rate_cap = np.ascontiguousarray(greedy.rate_cap[:, 0, 0])
        self.k_cap = float(greedy.link.cap_factor)
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
                      self.rate_floor, self.rate_cap, self.k_cap, owner, power)
        return owner, power


__all__ = ["BIG", "COMPENSATED_SUM", "CompiledGreedy", "greedy_decode", "ContextArrays", "context_arrays", "greedy", "greedy_kernel", "local_search",
           "local_search_kernel", "powers", "proportional", "proportional_kernel", "rates", "water_fill_owner",
           "water_filled_rates"]
