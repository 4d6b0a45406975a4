"""Energy a round costs each device (docs/system-model.md): compute and radio.

Compute: a processor at compute rate f spends kappa f^2 joules per FLOP (the dynamic-power model
P = kappa f^3 of DVFS), on the client's forward and backward FLOPs. Radio: the transmit power of
the client's subchannels while it uploads its activations, its client-side model on a sync round,
and the blocks it hands to the server when its cut moves towards the input. Reception is not
charged. Absent clients spend nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .latency import Latency
from .scheme import SchemeTables


@dataclass
class Energy:
    """Joules per client [..., N]: ``compute`` and ``transmit`` (uplink of activations, sync
    upload, migration upload)."""

    compute: np.ndarray
    transmit: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.compute + self.transmit


def round_energy(tables: SchemeTables, kappa: float, client_flops: np.ndarray, cut: np.ndarray, owner: np.ndarray,
                 power_w: np.ndarray, latency: Latency, prev_cut: np.ndarray | None = None, sync: np.ndarray | bool = False,
                 present: np.ndarray | None = None) -> Energy:
    """The energy of allocations [..., N] / [..., M] priced as ``latency``.

    Args:
        tables: the scenario's per-cut tables; kappa: J per FLOP per (FLOP/s)^2.
        client_flops: [..., N] compute rates, FLOP/s; cut, prev_cut: [..., N]; owner, power_w: [..., M].
        latency: the priced round (per-client upload times and uplink rates).
        sync: whether the round syncs; present: [..., N] the clients taking part.
    """
    cut = np.asarray(cut)
    n = cut.shape[-1]
    flops = tables.client_fwd_flops[cut] + tables.client_bwd_flops[cut]
    compute = kappa * np.square(client_flops) * flops
    one_hot = np.asarray(owner)[..., None, :] == np.arange(n)[:, None]  # [..., N, M]
    radiated = (one_hot * np.asarray(power_w)[..., None, :]).sum(axis=-1)  # W each client transmits
    rate = latency.uplink_rate_bps
    air = np.asarray(latency.uplink_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = tables.param_bits[cut]
        air = air + np.where(np.asarray(sync)[..., None], delta / rate, 0.0)
        if prev_cut is not None and tables.migration:
            moved = np.abs(delta - tables.param_bits[np.asarray(prev_cut)])
            air = air + np.where((cut < np.asarray(prev_cut)) & (moved > 0), moved / rate, 0.0)
    # a client without subchannels radiates nothing (its air time is infinite or undefined)
    transmit = np.where(radiated > 0, radiated * np.where(radiated > 0, air, 0.0), 0.0)
    if present is not None:
        compute = np.where(present, compute, 0.0)
        transmit = np.where(present, transmit, 0.0)
    return Energy(compute, transmit)


__all__ = ["Energy", "round_energy"]
