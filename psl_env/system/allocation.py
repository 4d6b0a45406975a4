"""Building feasible allocations: equal splits, equal power, repair of clients left without a subchannel."""

from __future__ import annotations

import numpy as np

from typing import TYPE_CHECKING

from .state import Allocation

if TYPE_CHECKING:
    from .scheme import SchemeTables


def make_allocation(cut: np.ndarray | int, owner: np.ndarray, power_w: np.ndarray, num_clients: int) -> Allocation:
    """An ``Allocation`` with normalized dtypes; a scalar cut is broadcast to every client."""
    cut_arr = np.broadcast_to(np.asarray(cut, dtype=np.int64), (num_clients,)).copy()
    return Allocation(cut_arr, np.asarray(owner, dtype=np.int64), np.asarray(power_w, dtype=np.float64))


def round_robin_owner(num_clients: int, num_subchannels: int) -> np.ndarray:
    """Subchannel m -> client m mod N: every client gets floor(M/N) or ceil(M/N) subchannels."""
    return np.arange(num_subchannels) % num_clients


def equal_power(owner: np.ndarray, power_budget_w: np.ndarray) -> np.ndarray:
    """Each client spreads its budget P_i evenly over its subchannels: owner [M], budgets [..., N]
    -> powers [..., M], W."""
    n = power_budget_w.shape[-1]
    used = owner >= 0
    counts = np.bincount(owner[used], minlength=n)
    share = np.where(counts > 0, power_budget_w / np.maximum(counts, 1), 0.0)
    return np.where(used, share[..., np.maximum(owner, 0)], 0.0)


def middle_cut(num_blocks: int) -> int:
    """The cut halfway through the model (the "no optimization" default)."""
    return max(1, min(num_blocks - 1, num_blocks // 2))


def fixed_allocation(num_blocks: int, power_budget_w: np.ndarray, num_subchannels: int) -> Allocation:
    """The "no optimization" reference: middle cut, round-robin subchannels, equal power."""
    n = power_budget_w.shape[0]
    owner = round_robin_owner(n, num_subchannels)
    return make_allocation(middle_cut(num_blocks), owner, equal_power(owner, power_budget_w), n)


def reference_allocation(tables: "SchemeTables", power_budget_w: np.ndarray, memory_bytes: np.ndarray,
                         num_subchannels: int, cut: int | None = None) -> Allocation:
    """The fixed reference of every comparison (rewards, ``fixed``): ``fixed_allocation`` at the middle
    cut (or ``cut``), moved shallower where the clients' memory caps demand it."""
    alloc = fixed_allocation(tables.num_blocks, power_budget_w, num_subchannels)
    want = alloc.cut if cut is None else np.full_like(alloc.cut, cut)
    return Allocation(tables.fit_cut(want, memory_bytes), alloc.owner, alloc.power_w)


def fixed_allocations(num_blocks: int, power_budget_w: np.ndarray, num_subchannels: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fixed_allocation`` of K rounds at once: budgets [K, N] -> (cut [K, N], owner [K, M], power [K, M])."""
    k, n = power_budget_w.shape
    owner = round_robin_owner(n, num_subchannels)
    cut = np.full((k, n), middle_cut(num_blocks), dtype=np.int64)
    return cut, np.broadcast_to(owner, (k, num_subchannels)), equal_power(owner, power_budget_w)


def repair_owner(owner: np.ndarray, gains: np.ndarray) -> tuple[np.ndarray, int]:
    """Give every client at least one subchannel; returns (owner [M], number of clients repaired).

    Deterministic: each client without a subchannel (in index order) takes, among unused
    subchannels first and otherwise among those of clients holding two or more, the one where its
    gain is highest.
    """
    owner = np.array(owner, dtype=np.int64)
    n = gains.shape[0]
    counts = np.bincount(owner[owner >= 0], minlength=n)
    repaired = 0
    for i in np.flatnonzero(counts == 0):
        free = np.flatnonzero(owner < 0)
        if free.size == 0:
            free = np.flatnonzero(counts[np.maximum(owner, 0)] >= 2)
        if free.size == 0:
            raise ValueError("fewer subchannels than clients: cannot serve every client")
        m = free[np.argmax(gains[i, free])]
        if owner[m] >= 0:
            counts[owner[m]] -= 1
        owner[m] = i
        counts[i] += 1
        repaired += 1
    return owner, repaired
