"""Batched round latency for the environments: SPEC 4 on [K, ...] arrays, lean enough for the hot path.

``LatencyModel.latency_arrays`` is the reference implementation; ``BatchPricer`` computes the same
quantities (tests check equality to rounding) with fewer temporaries:

- the gains of an allocation are gathered with one flat index and per-client rates come from one
  ``bincount``;
- the policy's allocation and the fixed reference allocation of the same rounds are priced in one
  pass (rows 0..K-1 and K..2K-1 of one batch), sharing the broadcast rate;
- every row's arithmetic is independent of the batch, so a round is priced bitwise the same alone
  or among K.

Shapes: gains [K, N, M]; client_flops, cut, prev_cut [K, N]; owner, power [K, M]; sync, has_prev [K].
"""

from __future__ import annotations

import numpy as np

from ..system.allocation import middle_cut, round_robin_owner
from ..system.latency import PER_CLIENT, PHASES, Latency, LatencyModel
from .batch_alloc import Scratch, broadcast_rate


# ufunc reductions called directly (the ndarray methods add a Python wrapper per call)
_MAX, _ANY = np.maximum.reduce, np.logical_or.reduce

# The batched pricer returns the latency model's own result type.
PricedRounds = Latency


class BatchPricer:
    """Prices allocations of up to K rounds at once with the constants of one ``LatencyModel``.

    Args:
        model: the scenario's latency model (profile tables, radio constants, scheme).
        num_envs: K, the largest batch priced at once.
    """

    def __init__(self, model: LatencyModel, num_envs: int) -> None:
        self.model = model
        self.k = k = int(num_envs)
        self.n = n = model.num_clients
        self.m = m = model.num_subchannels
        self.bw = model.subchannel_bw_hz
        self.inv_noise = 1.0 / model.noise_w
        self.down_snr = model.server_power_w / model.noise_w
        self.phi = model.phi
        self.needs_broadcast = model.downlink == "broadcast" and model.phi > 0.0
        self.migration_enabled = model.migration_enabled
        self.common_cut = model.common_cut
        # per-cut tables (index j = cut)
        self.fwd = model.fwd_batch
        self.bwd = model.bwd_batch
        self.act = model.act_batch_bits
        self.param = model.param_bits
        phi = self.phi
        if model.downlink == "ignore":
            self.dn_unicast = np.zeros_like(model.grad_batch_bits)
        elif model.downlink == "unicast" or phi == 0.0:
            self.dn_unicast = model.grad_batch_bits
        else:
            self.dn_unicast = (1.0 - phi) * model.grad_batch_bits
        self.dn_broadcast = phi * model.grad_batch_bits if self.needs_broadcast else None
        sf, sb = model.server_fwd_batch, model.server_bwd_batch
        # server compute TsF + TsB of a common cut j (per-device cuts sum per client, phi = 0)
        self.server_common = (n * sf + (1.0 - phi) * n * sb + phi * sb) / model.server_flops
        self.server_fwd_s = sf / model.server_flops
        self.server_bwd_s = sb / model.server_flops
        self._bases: dict[tuple[int, int], np.ndarray] = {}
        self.row_index = np.arange(2 * k)[:, None]
        self.scratch = Scratch()
        # the fixed reference allocation (middle cut, round-robin subchannels, equal power)
        self.ref_cut = middle_cut(model.num_blocks)
        self.ref_owner = round_robin_owner(n, m).astype(np.int64)
        counts = np.bincount(self.ref_owner, minlength=n)
        self.ref_share = 1.0 / counts[self.ref_owner]

    def broadcast_rate(self, gains: np.ndarray) -> np.ndarray | None:
        """R_bc [K] (whole-band rate of the worst client at the server's power), when the scheme uses it."""
        if not self.needs_broadcast:
            return None
        return broadcast_rate(gains, self.down_snr, self.bw, self.scratch)

    def price(self, gains: np.ndarray, client_flops: np.ndarray, power_budget_w: np.ndarray, cut: np.ndarray,
              owner: np.ndarray, power: np.ndarray, prev_cut: np.ndarray, has_prev: np.ndarray,
              sync: np.ndarray, r_bc: np.ndarray | None = None,
              all_used: bool | None = None) -> PricedRounds:
        """SPEC 4 for K rounds and for the fixed reference allocation on the same rounds.

        The reference (middle cut, round-robin subchannels, equal power) never changes its cut, so
        it pays no migration. ``has_prev`` [K] marks rounds with a previous cut; ``r_bc`` is the
        broadcast rate of ``gains`` if known; ``all_used`` may say that every subchannel has an
        owner (checked when not given).

        Returns:
            ``PricedRounds`` of 2K rows: rows 0..K-1 price the allocations, rows K..2K-1 the
            reference (``priced.total[K:]`` is the reference latency).
        """
        k, n = cut.shape
        m = self.m
        if r_bc is None and self.needs_broadcast:
            r_bc = self.broadcast_rate(gains)
        # rows 0..K-1: the policy; rows K..2K-1: the reference (its owner and cut rows never change)
        owner2 = self.scratch.get("owner2", (2 * k, m), np.int64)
        fresh = self.scratch.fresh
        cut2 = self.scratch.get("cut2", (2 * k, n), np.int64)
        if fresh or self.scratch.fresh:
            owner2[k:] = self.ref_owner
            cut2[k:] = self.ref_cut
        owner2[:k] = owner
        cut2[:k] = cut
        power2 = self.scratch.get("power2", (2 * k, m))
        power2[:k] = power
        np.multiply(power_budget_w.take(self.ref_owner, axis=1), self.ref_share, out=power2[k:])
        flops2 = self.scratch.get("flops2", (2 * k, n))
        flops2[:k] = client_flops
        flops2[k:] = client_flops
        r_bc2 = None if r_bc is None else np.concatenate([r_bc, r_bc])
        all_used = all_used if all_used is not None else bool((owner >= 0).all())
        return self._price(gains, self._base(k, 2), flops2, cut2, owner2, power2, prev_cut, has_prev,
                           np.concatenate([sync, sync]), r_bc2, k, all_used)

    def price_reference(self, gains: np.ndarray, client_flops: np.ndarray, power_budget_w: np.ndarray,
                        sync: np.ndarray, r_bc: np.ndarray | None = None) -> PricedRounds:
        """The fixed reference allocation alone on K rounds (no migration)."""
        k = gains.shape[0]
        if r_bc is None and self.needs_broadcast:
            r_bc = self.broadcast_rate(gains)
        power = power_budget_w[:, self.ref_owner] * self.ref_share
        owner = np.broadcast_to(self.ref_owner, (k, self.m))
        cut = np.full((k, self.n), self.ref_cut, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._price(gains, self._base(k, 1), client_flops, cut, owner, power, None, None,
                               np.asarray(sync, dtype=bool), r_bc, 0, True)

    def _price(self, gains, base, flops, cut, owner, power, prev_cut, has_prev, sync, r_bc,
               n_policy, all_used) -> PricedRounds:
        """Rows r read the gains of ``base[r]``; the first ``n_policy`` rows may pay migration.

        Per-client quantities are computed client-major ([N, R]) so that the maxima over clients are
        elementwise; ``PricedRounds`` exposes them as [R, N] views. Divisions by zero rates give
        inf; callers silence the floating-point warnings.
        """
        rows, n = cut.shape
        m = self.m
        own = owner if all_used else np.maximum(owner, 0)
        g_sel = gains.reshape(-1).take(base + own * m)
        up = power * g_sel
        up *= self.inv_noise
        up += 1.0
        np.log2(up, out=up)
        down = g_sel * self.down_snr
        down += 1.0
        np.log2(down, out=down)
        bins = own * rows + self.row_index[:rows]
        if not all_used:
            bins = np.where(owner >= 0, bins, rows * n)
        bins = bins.ravel()
        size = rows * n + (0 if all_used else 1)
        rate_up = np.bincount(bins, up.ravel(), minlength=size)[: rows * n].reshape(n, rows)
        rate_up *= self.bw
        rate_down = np.bincount(bins, down.ravel(), minlength=size)[: rows * n].reshape(n, rows)
        rate_down *= self.bw

        cut_t = cut.T
        flops_t = np.ascontiguousarray(flops.T)
        t_fwd = self.fwd[cut_t] / flops_t
        t_bwd = self.bwd[cut_t] / flops_t
        t_up = self.act[cut_t] / rate_up
        uplink_phase = _MAX(t_fwd + t_up, axis=0)
        if self.common_cut:
            server_compute = self.server_common[cut[:, 0]]
        else:  # per-device cuts: phi = 0
            server_compute = (self.server_fwd_s[cut_t] + self.server_bwd_s[cut_t]).sum(axis=0)
        t_down = self.dn_unicast[cut_t] / rate_down
        if self.needs_broadcast:
            t_down += self.dn_broadcast[cut[:, 0]] / r_bc
        downlink_phase = _MAX(t_down + t_bwd, axis=0)
        total = uplink_phase + server_compute + downlink_phase

        if _ANY(sync):
            delta = self.param[cut_t]
            sync_s = np.where(sync, (delta / rate_up).max(axis=0) + (delta / rate_down).max(axis=0), 0.0)
            total += sync_s
        else:
            sync_s = np.zeros(rows)
        migration = np.zeros(rows)
        if n_policy and self.migration_enabled and _ANY(has_prev):
            k = n_policy
            c, prev = cut_t[:, :k], prev_cut.T
            moved = np.abs(self.param[c] - self.param[prev])
            moving = has_prev & (moved > 0)
            if _ANY(moving, axis=None):
                rate = np.where(c < prev, rate_up[:, :k], rate_down[:, :k])
                migration[:k] = np.where(moving, moved / rate, 0.0).max(axis=0)
                total += migration
        return PricedRounds(total, uplink_phase, server_compute, downlink_phase, sync_s, migration,
                            t_fwd.T, t_up.T, t_down.T, t_bwd.T, rate_up.T, rate_down.T)

    def _base(self, k: int, copies: int) -> np.ndarray:
        """[copies x K, M] flat offsets of gains[env, 0, m] for rows that repeat the K envs."""
        key = (k, copies)
        base = self._bases.get(key)
        if base is None:
            env = np.tile(np.arange(k), copies)
            base = self._bases[key] = env[:, None] * (self.n * self.m) + np.arange(self.m)[None, :]
        return base


__all__ = ["BatchPricer", "PricedRounds", "PER_CLIENT", "PHASES"]
