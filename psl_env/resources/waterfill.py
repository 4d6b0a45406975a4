"""Water-filling: the exact max-sum-rate power of one client over its subchannels.

Maximize sum_k W log2(1 + p_k g_k / (N0 W)) subject to sum_k p_k <= P, p_k >= 0: with inverse
unit-power SNRs a_k = N0 W / g_k, p_k = max(0, mu - a_k) and the water level mu spends the budget.
Sorting a ascending, mu is the level (P + a_1 + .. + a_n) / n of the longest prefix whose level
exceeds its last a_n. Two ways to run it, the same optimum:

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

from math import log2

import numpy as np

# Stand-in for an unavailable subchannel (inverse SNR = inf) that keeps prefix sums finite.
_BIG = 1e300


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


def water_level(inv_snr: np.ndarray, budget_w: np.ndarray | float) -> np.ndarray:
    """Water level mu [...] for inverse SNRs [..., K] (inf = unavailable) and budgets [...]."""
    return _levels(np.sort(np.minimum(inv_snr, _BIG), axis=-1), budget_w)[0]


def water_fill(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float) -> np.ndarray:
    """Water-filled powers, W.

    Args:
        gains: [..., K] linear gains of the client's subchannels; entries <= 0 mark subchannels the
            client does not hold (they get no power). Leading axes are independent problems.
        budget_w: power budget P, W; a scalar or an array broadcastable to ``gains.shape[:-1]``.
        noise_w: noise power of one subchannel, N0 W, W.

    Returns:
        [..., K] powers; they sum to the budget (up to rounding) wherever some gain is > 0.
    """
    a = inverse_snr(gains, noise_w)
    return np.maximum(water_level(a, budget_w)[..., None] - a, 0.0)


def rate_from_inverse_snr(inv_snr: np.ndarray, budget_w: np.ndarray | float, bw_hz: float) -> np.ndarray:
    """The water-filled rate, bit/s, of inverse SNRs [..., K] (inf = unavailable): shape [...].

    With p_k = mu - a_k on the active set, 1 + p_k / a_k = mu / a_k, so the rate is
    W (n log2 mu - sum of log2 a_k over the n active subchannels).
    """
    a = np.sort(np.minimum(inv_snr, _BIG), axis=-1)
    mu, n_active, flat = _levels(a, budget_w)
    log_a = _prefix_sums(np.log2(a)).reshape(-1)[flat].reshape(n_active.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = n_active * np.log2(mu) - log_a
    return bw_hz * np.where(n_active > 0, rate, 0.0)


def water_filled_rate(gains: np.ndarray, budget_w: np.ndarray | float, noise_w: float, bw_hz: float) -> np.ndarray:
    """The uplink rate, bit/s, of ``water_fill`` power: shape ``gains.shape[:-1]``."""
    return rate_from_inverse_snr(inverse_snr(gains, noise_w), budget_w, bw_hz)


def rate_of_sorted(a_sorted: list[float], budget_w: float, bw_hz: float) -> float:
    """Water-filled rate of an ascending list of inverse SNRs (scalar fast path for short lists)."""
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


def water_fill_owned(owner: np.ndarray, inv_snr: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
    """Water-filled power of every client over its own subchannels, for K allocations at once.

    Active-set iteration: start from every subchannel with a finite a, set mu = (P + sum of active
    a) / (number active) per client, drop the subchannels with a >= mu, repeat. Dropped subchannels
    have a >= mu >= the final level, so none is re-admitted and the iteration ends at the exact
    solution (at most M steps; typically 1-3).

    Args:
        owner: [K, M] client of each subchannel, -1 for unused.
        inv_snr: [K, M] inverse unit-power SNR of the owner on each subchannel (inf: never powered).
        budget_w: [K, N] power budgets.

    Returns:
        [K, M] powers, summing to each served client's budget (up to rounding), 0 where unused.
    """
    k, m = owner.shape
    n = budget_w.shape[1]
    if k == 1:
        return _water_fill_owned_one(owner[0].tolist(), inv_snr[0].tolist(), budget_w[0].tolist(), n)
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


def _water_fill_owned_one(owner: list, a: list, budget: list, n: int) -> np.ndarray:
    """``water_fill_owned`` of one allocation with Python floats: the same iteration and the same
    sums in the same (subchannel) order as the ``bincount``s, hence bitwise the same powers."""
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


__all__ = ["inverse_snr", "rate_from_inverse_snr", "rate_of_sorted", "water_fill", "water_fill_owned",
           "water_filled_rate", "water_level"]
