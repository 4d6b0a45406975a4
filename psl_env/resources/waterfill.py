"""Water-filling: the exact max-sum-rate power of one client over its subchannels.

Maximize sum_k W log2(1 + p_k / a_k) subject to sum_k p_k <= P, p_k >= 0, with a_k = N0 W Gamma /
g_k the inverse unit-power SNR (noise, noise figure and SNR gap included): p_k = max(0, mu - a_k)
and the water level mu spends the budget. Sorting a ascending, mu is the level (P + a_1 + .. +
a_n) / n of the longest prefix whose level exceeds its last a_n.

Capped water-filling (``Link.cap``: the highest spectral efficiency C of any modulation and coding
scheme): a subchannel never carries more than C, so power above K a_k, K = 2^C - 1, is wasted.
The optimum is p_k = min(max(0, mu - a_k), K a_k): subchannels with (K + 1) a_k <= mu sit at the
cap (the best ones: a prefix of the ascending a), the others fill to mu. Found by saturating that
prefix, taking its power off the budget and water-filling the rest again, until nothing new
saturates (the level only rises, so every saturated subchannel stays saturated). The rate is then
W (n log2 mu - sum of log2 a_k over the n active unsaturated subchannels + C x saturated).

Two ways to run it, the same optimum:

- by sorting (``water_level``, ``water_fill``, ``water_filled_rate``): vectorized over any number
  of candidate sets at once (the optimizers price many assignments in one call);
- by owner (``water_fill_owned``): every client of K allocations over the subchannels it owns,
  by active-set iteration (drop the subchannels with a >= mu, recompute mu) with sums in
  subchannel order, so a round gives bitwise the same powers alone or in any batch (the codecs).

Why water-filling is optimal for fixed cuts and subchannels: clients do not interfere (OFDMA), the
uplink power of client i changes only its uplink rate R_i, and every latency term is
non-increasing in R_i, so maximizing each R_i under the client's own budget minimizes the round.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf, log2
from typing import Callable

import numpy as np

# Stand-in for an unavailable subchannel (inverse SNR = inf) that keeps prefix sums finite.
_BIG = 1e300


@dataclass(frozen=True)
class Link:
    """How a subchannel's spectral efficiency (bit/s/Hz) follows its SNR x = p / a, for water-filling.

    Attributes:
        cap: C, the highest spectral efficiency (inf: uncapped Shannon). Power above (2^C - 1) a is
            wasted, so water-filling caps every subchannel's power there.
        se: the spectral efficiency of SNRs (vectorized) when it is not min(log2(1 + x), cap), e.g.
            the ergodic rate of a round averaged over fast fading; rates are then summed from it
            (power is water-filled without a cap: every extra watt still helps). None: closed form.
    """

    cap: float = inf
    se: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def capped(self) -> bool:
        return self.cap < inf and self.se is None

    @property
    def cap_factor(self) -> float:
        """K = 2^C - 1 (inf when uncapped)."""
        return 2.0 ** self.cap - 1.0 if self.capped else inf


SHANNON = Link()


def inverse_snr(gains: np.ndarray, noise_w: float) -> np.ndarray:
    """a = N0 W / g, elementwise (inf where g <= 0: a subchannel the client does not hold)."""
    g = np.asarray(gains, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(g > 0, noise_w / np.where(g > 0, g, 1.0), np.inf)


def _prefix_sums(x: np.ndarray) -> np.ndarray:
    # sequential sums from the left (a compiled loop gives the very same numbers); not a product
    # with a triangular matrix, which hands small products to a multithreaded BLAS
    return np.add.accumulate(x, axis=-1)


def _levels(a_sorted: np.ndarray, budget_w: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(water level mu [...], active count [...], flat index of the last active entry [...]) for
    ascending inverse SNRs [..., K] (``_BIG`` for unavailable)."""
    k_max = a_sorted.shape[-1]
    level = (np.asarray(budget_w, dtype=np.float64)[..., None] + _prefix_sums(a_sorted)) / np.arange(1, k_max + 1)
    n_active = np.count_nonzero(level > a_sorted, axis=-1)
    flat = np.maximum(n_active - 1, 0).ravel() + np.arange(n_active.size) * k_max
    mu = level.reshape(-1)[flat].reshape(n_active.shape)
    return np.where(n_active > 0, mu, 0.0), n_active, flat


def _capped_levels(a_sorted: np.ndarray, budget_w: np.ndarray | float, link: Link) -> tuple:
    """Capped water-filling of ascending inverse SNRs [R, K] (``_BIG``: unavailable) and budgets:
    (level mu [R], active unsaturated count [R], the ascending rest [R, K] after the saturated
    prefix, saturated count [R], saturation level [R]: a subchannel is saturated iff (K + 1) a <=
    it, 0 if none is). Every sum runs in index order (the compiled kernels repeat it)."""
    k_cap = link.cap_factor
    rows, width = a_sorted.shape
    budget = np.broadcast_to(np.asarray(budget_w, dtype=np.float64), (rows,))
    idx = np.arange(width)
    r = np.arange(rows)
    divisors = np.arange(1, width + 1)
    rest = a_sorted
    n_sat = np.zeros(rows, dtype=np.int64)
    sat_sum = np.zeros(rows)
    mu_sat = np.zeros(rows)
    while True:
        valid = rest < _BIG
        csum = _prefix_sums(rest)
        level = ((budget - k_cap * sat_sum)[:, None] + csum) / divisors
        n_active = np.count_nonzero((level > rest) & valid, axis=-1)
        mu = np.where(n_active > 0, level[r, np.maximum(n_active - 1, 0)], 0.0)
        new = np.count_nonzero((rest * (k_cap + 1.0) <= mu[:, None]) & valid, axis=-1)
        if not new.any():
            return mu, n_active, rest, n_sat, mu_sat
        mu_sat = np.where(new > 0, mu, mu_sat)
        sat_sum = sat_sum + np.where(new > 0, csum[r, np.maximum(new - 1, 0)], 0.0)
        n_sat = n_sat + new
        shifted = idx[None, :] + new[:, None]
        rest = np.where(shifted < width, np.take_along_axis(rest, np.minimum(shifted, width - 1), axis=-1), _BIG)


def water_level(inv_snr: np.ndarray, budget_w: np.ndarray | float) -> np.ndarray:
    """Water level mu [...] for inverse SNRs [..., K] (inf = unavailable) and budgets [...]."""
    return _levels(np.sort(np.minimum(inv_snr, _BIG), axis=-1), budget_w)[0]


def water_fill(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float, link: Link = SHANNON) -> np.ndarray:
    """Water-filled powers, W.

    Args:
        gains: [..., K] linear gains of the client's subchannels; entries <= 0 mark subchannels the
            client does not hold (they get no power). Leading axes are independent problems.
        budget_w: power budget P, W; a scalar or an array broadcastable to ``gains.shape[:-1]``.
        noise_w: effective noise power of one subchannel, N0 W (x noise figure x SNR gap), W.
        link: the spectral-efficiency cap (``Link``).

    Returns:
        [..., K] powers; they sum to the budget (up to rounding) wherever some gain is > 0, unless
        every subchannel sits at the cap.
    """
    a = inverse_snr(gains, noise_w)
    if not link.capped:
        return np.maximum(water_level(a, budget_w)[..., None] - a, 0.0)
    lead, width = a.shape[:-1], a.shape[-1]
    rows = np.sort(np.minimum(a, _BIG), axis=-1).reshape(-1, width)
    mu, _, _, _, mu_sat = _capped_levels(rows, np.broadcast_to(budget_w, lead).reshape(-1), link)
    mu, mu_sat = mu.reshape(lead)[..., None], mu_sat.reshape(lead)[..., None]
    k_cap = link.cap_factor
    return np.where(a * (k_cap + 1.0) <= mu_sat, k_cap * a, np.maximum(mu - a, 0.0))


def rate_from_inverse_snr(inv_snr: np.ndarray, budget_w: np.ndarray | float, bw_hz: float,
                          link: Link = SHANNON) -> np.ndarray:
    """The water-filled rate, bit/s, of inverse SNRs [..., K] (inf = unavailable): shape [...].

    With p_k = mu - a_k on the active set, 1 + p_k / a_k = mu / a_k, so the rate is
    W (n log2 mu - sum of log2 a_k over the n active subchannels) (+ W C per saturated subchannel).
    With ``link.se`` the rate is W sum_k se(p_k / a_k) of the water-filled powers.
    """
    if link.se is not None:
        a = np.asarray(inv_snr, dtype=np.float64)
        p = np.maximum(water_level(a, budget_w)[..., None] - a, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(a < inf, p / np.where(a < inf, a, 1.0), 0.0)
        return bw_hz * link.se(x).sum(axis=-1)
    a = np.sort(np.minimum(inv_snr, _BIG), axis=-1)
    if link.capped:
        lead = a.shape[:-1]
        width = a.shape[-1]
        mu, n_active, rest, n_sat, _ = _capped_levels(a.reshape(-1, width),
                                                      np.broadcast_to(budget_w, lead).reshape(-1), link)
        log_a = _prefix_sums(np.log2(rest))[np.arange(mu.size), np.maximum(n_active - 1, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(n_active > 0, n_active * np.log2(mu) - log_a, 0.0) + n_sat * link.cap
        return (bw_hz * rate).reshape(lead)
    mu, n_active, flat = _levels(a, budget_w)
    log_a = _prefix_sums(np.log2(a)).reshape(-1)[flat].reshape(n_active.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = n_active * np.log2(mu) - log_a
    return bw_hz * np.where(n_active > 0, rate, 0.0)


def water_filled_rate(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float, bw_hz: float,
                      link: Link = SHANNON) -> np.ndarray:
    """The uplink rate, bit/s, of ``water_fill`` power: shape ``gains.shape[:-1]``."""
    return rate_from_inverse_snr(inverse_snr(gains, noise_w), budget_w, bw_hz, link)


def rate_of_sorted(a_sorted: list[float], budget_w: float, bw_hz: float, link: Link = SHANNON) -> float:
    """Water-filled rate of an ascending list of inverse SNRs (scalar fast path for short lists;
    with a cap or another spectral efficiency, ``rate_from_inverse_snr`` of the list)."""
    if link.capped or link.se is not None:
        return float(rate_from_inverse_snr(np.array(a_sorted), budget_w, bw_hz, link))
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


def water_fill_owned(owner: np.ndarray, inv_snr: np.ndarray, budget_w: np.ndarray,
                     link: Link = SHANNON) -> np.ndarray:
    """Water-filled power of every client over its own subchannels, for K allocations at once.

    Active-set iteration: start from every subchannel with a finite a, set mu = (P + sum of active
    a) / (number active) per client, drop the subchannels with a >= mu, repeat. Dropped subchannels
    have a >= mu >= the final level, so none is re-admitted and the iteration ends at the exact
    solution (at most M steps; typically 1-3). With a cap, the subchannels with (K + 1) a <= mu are
    then fixed at K a, their power taken off the budget, and the rest filled again from scratch.

    Args:
        owner: [K, M] client of each subchannel, -1 for unused.
        inv_snr: [K, M] inverse unit-power SNR of the owner on each subchannel (inf: never powered).
        budget_w: [K, N] power budgets.
        link: the spectral-efficiency cap (``Link``).

    Returns:
        [K, M] powers, summing to each served client's budget (up to rounding, unless every
        subchannel of the client sits at the cap), 0 where unused.
    """
    k, m = owner.shape
    n = budget_w.shape[1]
    k_cap = link.cap_factor
    if k == 1:
        return _water_fill_owned_one(owner[0].tolist(), inv_snr[0].tolist(), budget_w[0].tolist(), n, k_cap)
    size = k * n + 1
    used = owner >= 0
    bins = owner + np.arange(0, k * n, n)[:, None]
    if not used.all():
        bins = np.where(used, bins, k * n)
    bins = bins.ravel()
    budget = np.append(budget_w.ravel(), 0.0)
    a = inv_snr.ravel()
    usable = used.ravel() & (a < np.inf)
    sat = np.zeros_like(usable)
    sat_sum = np.zeros(size)
    while True:
        active = usable & ~sat
        left = budget - k_cap * sat_sum if k_cap < inf else budget
        while True:
            count = np.maximum(np.bincount(bins, active, minlength=size), 1.0)
            total = np.bincount(bins, np.where(active, a, 0.0), minlength=size)
            mu = ((left + total) / count).take(bins)
            still = active & (a < mu)
            if np.array_equal(still, active):
                break
            active = still
        if k_cap == inf:
            return np.where(active, mu - a, 0.0).reshape(k, m)
        new = active & (a * (k_cap + 1.0) <= mu)
        if not new.any():
            return np.where(sat, k_cap * a, np.where(active, mu - a, 0.0)).reshape(k, m)
        sat_sum = sat_sum + np.bincount(bins, np.where(new, a, 0.0), minlength=size)
        sat = sat | new


def _water_fill_owned_one(owner: list, a: list, budget: list, n: int, k_cap: float) -> np.ndarray:
    """``water_fill_owned`` of one allocation with Python floats: the same iterations and the same
    sums in the same (subchannel) order as the ``bincount``s, hence bitwise the same powers."""
    usable = [o >= 0 and x < inf for o, x in zip(owner, a)]
    sat = [False] * len(a)
    sat_sum = [0.0] * n
    while True:
        active = [u and not s for u, s in zip(usable, sat)]
        left = [b - k_cap * s for b, s in zip(budget, sat_sum)] if k_cap < inf else budget
        while True:
            count = [0.0] * n
            total = [0.0] * n
            for o, x, on in zip(owner, a, active):
                if on:
                    count[o] += 1.0
                    total[o] += x
            mu = [(b + t) / (c if c > 1.0 else 1.0) for b, t, c in zip(left, total, count)]
            still = [on and x < mu[o] for o, x, on in zip(owner, a, active)]
            if still == active:
                break
            active = still
        if k_cap == inf:
            return np.array([[mu[o] - x if on else 0.0 for o, x, on in zip(owner, a, active)]])
        new = [on and x * (k_cap + 1.0) <= mu[o] for o, x, on in zip(owner, a, active)]
        if not any(new):
            return np.array([[k_cap * x if s else (mu[o] - x if on else 0.0)
                              for o, x, on, s in zip(owner, a, active, sat)]])
        added = [0.0] * n
        for o, x, nw in zip(owner, a, new):
            if nw:
                added[o] += x
        sat_sum = [s + d for s, d in zip(sat_sum, added)]
        sat = [s or nw for s, nw in zip(sat, new)]


__all__ = ["SHANNON", "Link", "inverse_snr", "rate_from_inverse_snr", "rate_of_sorted", "water_fill",
           "water_fill_owned", "water_filled_rate", "water_level"]
