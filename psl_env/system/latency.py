"""Round latency of parallel split learning (SPEC section 4), vectorized over leading batch axes.

Every function here accepts arrays with any number of leading batch dimensions ``...``: one round
uses shapes [N], [M], [N, M]; a batch of B rounds uses [B, N], [B, M], [B, N, M].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..models.profile import ModelProfile
from .scenario import Scenario
from .state import Allocation, RoundState

PHASES = ("uplink_phase", "server_compute", "downlink_phase", "sync", "migration")
PER_CLIENT = ("client_fwd_s", "uplink_s", "downlink_s", "client_bwd_s", "uplink_rate_bps", "downlink_rate_bps")


def dbm_to_w(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


@dataclass
class Latency:
    """The latency of a round (floats) or of a batch of rounds (arrays [B]); seconds.

    ``uplink_phase + server_compute + downlink_phase + sync + migration == total``. Per-client
    arrays have shape [..., N].
    """

    total: np.ndarray | float
    uplink_phase: np.ndarray | float
    server_compute: np.ndarray | float
    downlink_phase: np.ndarray | float
    sync: np.ndarray | float
    migration: np.ndarray | float
    client_fwd_s: np.ndarray
    uplink_s: np.ndarray
    downlink_s: np.ndarray
    client_bwd_s: np.ndarray
    uplink_rate_bps: np.ndarray
    downlink_rate_bps: np.ndarray

    def rows(self, sl: slice) -> "Latency":
        """The rounds ``sl`` of a batch (views)."""
        return Latency(*(getattr(self, f.name)[sl] for f in dataclasses.fields(self)))

    def phases(self) -> dict[str, float]:
        """The scalar phases and total, for info dicts, traces and tables."""
        return {"total": float(self.total), **{k: float(getattr(self, k)) for k in PHASES}}


class LatencyModel:
    """The scenario's constants and model profile, ready to price allocations.

    Args:
        scenario: the validated scenario (scheme, phi, batch, downlink mode, radio constants).
        profile: the model profile (per-cut FLOPs and bits).
    """

    def __init__(self, scenario: Scenario, profile: ModelProfile) -> None:
        self.scenario = scenario
        self.profile = profile
        self.num_clients = scenario.num_clients
        self.num_subchannels = scenario.num_subchannels
        self.num_blocks = profile.num_blocks
        self.batch_size = scenario.batch_size
        self.phi = float(scenario.phi)
        self.scheme = scenario.scheme
        self.downlink = scenario.downlink
        self.common_cut = not scenario.per_device_cuts
        self.migration_enabled = scenario.migration
        self.subchannel_bw_hz = float(scenario.channel.subchannel_bw_hz)
        self.noise_psd_w_per_hz = dbm_to_w(scenario.channel.noise_psd_dbm_per_hz)
        self.noise_w = self.noise_psd_w_per_hz * self.subchannel_bw_hz
        self.server_flops = float(scenario.server.compute_flops)
        self.server_power_w = float(scenario.server.power_per_subchannel_w)
        b = float(self.batch_size)
        # Per-batch figures per cut, so the hot path only indexes.
        self.fwd_batch = b * profile.fwd_flops
        self.bwd_batch = b * profile.bwd_flops
        self.act_batch_bits = b * profile.act_bits
        self.grad_batch_bits = b * profile.grad_bits
        self.param_bits = profile.param_bits
        self.server_fwd_batch = b * (profile.fwd_flops[-1] - profile.fwd_flops)
        self.server_bwd_batch = b * (profile.bwd_flops[-1] - profile.bwd_flops)
        self._subchannels = np.arange(self.num_subchannels)

    # -- rates ---------------------------------------------------------------------------------
    def subchannel_rates(self, gains: np.ndarray, power_w: np.ndarray) -> np.ndarray:
        """Shannon rate W log2(1 + p g / (N0 W)), bit/s, elementwise."""
        return self.subchannel_bw_hz * np.log2(1.0 + power_w * gains / self.noise_w)

    def broadcast_rate(self, gains: np.ndarray) -> np.ndarray:
        """R_bc: whole-band downlink rate of the worst client, bit/s; gains [..., N, M] -> [...]."""
        full = self.subchannel_rates(gains, self.server_power_w).sum(axis=-1)
        return full.min(axis=-1)

    def client_rates(self, gains: np.ndarray, owner: np.ndarray, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uplink R_i and downlink RD_i per client, bit/s, shape [..., N]."""
        n, m = gains.shape[-2:]
        if owner.ndim == 1:  # one round: the hot path of single environments and optimizers
            used = owner >= 0
            g_sel = gains[owner, self._subchannels]
            bins = np.where(used, owner, n)
            up_sc = self.subchannel_rates(g_sel, power_w)
            down_sc = self.subchannel_rates(g_sel, self.server_power_w)
            # Unused subchannels (owner -1 read the last client's gain) land in bin n, dropped.
            return (np.bincount(bins, up_sc, minlength=n + 1)[:n],
                    np.bincount(bins, down_sc, minlength=n + 1)[:n])
        batch = owner.shape[:-1]
        k = int(np.prod(batch)) if batch else 1
        owner2 = owner.reshape(k, m)
        used = owner2 >= 0
        rows = np.arange(k)[:, None]
        # owner -1 reads the last client's gain; the ``used`` mask zeroes it below.
        g_sel = gains.reshape(k, n, m)[rows, owner2, self._subchannels]
        up_sc = self.subchannel_rates(g_sel, power_w.reshape(k, m)) * used
        down_sc = self.subchannel_rates(g_sel, self.server_power_w) * used
        # Unused subchannels land in an extra bin k*n that is dropped.
        bins = np.where(used, owner2 + rows * n, k * n).ravel()
        uplink = np.bincount(bins, up_sc.ravel(), minlength=k * n + 1)[:-1].reshape(*batch, n)
        downlink = np.bincount(bins, down_sc.ravel(), minlength=k * n + 1)[:-1].reshape(*batch, n)
        return uplink, downlink

    # -- latency -------------------------------------------------------------------------------
    def latency_arrays(self, gains: np.ndarray, client_flops: np.ndarray, cut: np.ndarray, owner: np.ndarray,
                       power_w: np.ndarray, prev_cut: np.ndarray | None = None,
                       sync: np.ndarray | bool = False, broadcast_rate: np.ndarray | None = None) -> Latency:
        """SPEC 4 on arrays: gains [..., N, M], client_flops/cut/prev_cut [..., N], owner/power [..., M]."""
        cut = np.asarray(cut)
        rate_up, rate_down = self.client_rates(gains, owner, power_w)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_up = 1.0 / rate_up  # inf for a client without a subchannel
            inv_down = 1.0 / rate_down
            t_fwd = self.fwd_batch[cut] / client_flops
            t_bwd = self.bwd_batch[cut] / client_flops
            t_up = self.act_batch_bits[cut] * inv_up
            uplink_phase = (t_fwd + t_up).max(axis=-1)

            phi = self.phi
            server_fwd = self.server_fwd_batch[cut].sum(axis=-1)
            server_bwd = (1.0 - phi) * self.server_bwd_batch[cut].sum(axis=-1)
            grad_bits = self.grad_batch_bits[cut]
            if phi > 0.0:
                # EPSL: phi*b rows back-propagated once at the common cut (cut[..., 0]).
                server_bwd = server_bwd + phi * self.server_bwd_batch[cut[..., 0]]
            server_compute = (server_fwd + server_bwd) / self.server_flops

            if self.downlink == "ignore":
                t_down = np.zeros_like(t_bwd)
            elif self.downlink == "unicast" or phi == 0.0:
                t_down = grad_bits * inv_down
            else:
                r_bc = self.broadcast_rate(gains) if broadcast_rate is None else broadcast_rate
                t_down = (phi * grad_bits[..., 0] / r_bc)[..., None] + (1.0 - phi) * grad_bits * inv_down
            downlink_phase = (t_down + t_bwd).max(axis=-1)

            delta = self.param_bits[cut]
            sync_s = (delta * inv_up).max(axis=-1) + (delta * inv_down).max(axis=-1)
            sync_s = np.where(sync, sync_s, 0.0)

            if prev_cut is None or not self.migration_enabled:
                migration = np.zeros_like(uplink_phase)
            else:
                moved = np.abs(delta - self.param_bits[prev_cut])
                # Blocks go up (client uploads) when the cut moves towards the input, else down.
                inv_rate = np.where(cut < prev_cut, inv_up, inv_down)
                migration = np.where(moved > 0, moved * inv_rate, 0.0).max(axis=-1)

        total = uplink_phase + server_compute + downlink_phase + sync_s + migration
        return Latency(total, uplink_phase, server_compute, downlink_phase, sync_s, migration,
                       t_fwd, t_up, t_down, t_bwd, rate_up, rate_down)

    def evaluate(self, state: RoundState, alloc: Allocation, observed: bool = False) -> Latency:
        """The latency of one round: on the true gains, or on the observed ones (what a decision expects)."""
        gains = state.observed_gains if observed else state.gains
        key = ("r_bc", observed)
        r_bc = None
        if self.downlink == "broadcast" and self.phi > 0.0:
            r_bc = state.cache.get(key)
            if r_bc is None:
                r_bc = state.cache[key] = self.broadcast_rate(gains)
        lat = self.latency_arrays(gains, state.client_flops, alloc.cut, alloc.owner, alloc.power_w,
                                  state.prev_cut, state.sync, r_bc)
        lat.total = float(lat.total)
        for name in PHASES:
            setattr(lat, name, float(getattr(lat, name)))
        return lat


def round_latency(state: RoundState, alloc: Allocation, model: LatencyModel) -> Latency:
    """The round latency of ``alloc`` on ``state``'s true gains (SPEC 4)."""
    return model.evaluate(state, alloc)
