"""Local search over subchannel assignments with water-filled power: the BCD refinement of EPSL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .waterfill import rate_from_inverse_snr

if TYPE_CHECKING:
    from ..system.latency import CutTerms
    from .context import ResourceContext


def local_search(ctx: "ResourceContext", cost: "CutTerms", owner: np.ndarray, max_iter: int = 200,
                 moves: str = "bottleneck") -> tuple[np.ndarray, float]:
    """Steepest-descent subchannel reassignment with water-filled power (the BCD refinement).

    Each iteration prices, with the power of both affected clients re-water-filled, every move (a
    subchannel from a client holding two or more to a target client) and every swap (one of the
    target's subchannels for one of another client's), where the targets are the bottleneck clients
    (the argmax of the uplink times, of the downlink times and of any sync/migration term) -- or every
    client with ``moves="all"`` -- and applies the best one; it stops when none lowers the latency.

    Args:
        ctx: the round's ``ResourceContext``.
        cost: the latency as a function of rates for the cuts at hand (``ResourceContext.terms``).
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
    r_up = rate_from_inverse_snr(a_held, ctx.budget, ctx.bw, ctx.link)
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
        up2 = rate_from_inverse_snr(rows, ctx.budget[np.concatenate([recv, donor])], ctx.bw, ctx.link)
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


__all__ = ["local_search"]
