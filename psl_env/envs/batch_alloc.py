"""Allocation building blocks on batches of rounds: [K, ...] arrays, no Python loop over K.

- ``water_fill_owned``: exact per-client water-filling over the subchannels each client owns
  (the power step of every low-dimensional codec; same optimum as ``system.solvers.water_fill``).
- ``priority_owner``: the weighted proportional-fair subchannel assignment with one guaranteed
  ("anchor") subchannel per client, used by the ``box`` and ``multidiscrete`` codecs.
- ``uplink_need``: a client's bits to move divided by its typical per-subchannel rate (the prior
  that makes the neutral action balance the clients' air time).
"""

from __future__ import annotations

import numpy as np

from ..system.latency import LatencyModel


class Scratch:
    """Persistent work arrays, reused across calls (large fresh temporaries cost page faults)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = self._arrays[name] = np.empty(shape, dtype=dtype)
        return arr


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
    """[K, N] air time of each client on one subchannel: uplink bits / rate + downlink bits / rate.

    Rates are those of a subchannel of mean gain, with the client's budget spread over M/N
    subchannels (uplink) or the server's per-subchannel power (downlink). Proportional to the
    share of the band that balances the clients' transfer times.
    """
    n, m = model.num_clients, model.num_subchannels
    snr_up = budget_w * mean_gain * (n / (m * model.noise_w))
    need = model.act_batch_bits[cut] / np.log2(1.0 + snr_up)
    if model.downlink != "ignore":
        snr_dn = mean_gain * (model.server_power_w / model.noise_w)
        need = need + downlink_bits(model, cut) / np.log2(1.0 + snr_dn)
    return need


def gather_owned(gains: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """gains[k, owner[k, m], m] as [K, M]; unused subchannels (owner -1) read client 0's gain."""
    k, n, m = gains.shape
    flat = (np.arange(k)[:, None] * (n * m) + np.arange(m)[None, :]) + np.maximum(owner, 0) * m
    return gains.reshape(-1).take(flat)
