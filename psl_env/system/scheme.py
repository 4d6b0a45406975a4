"""What a training scheme charges per cut: the one place that branches on the scheme.

PSL, EPSL (last-layer gradient aggregation, ratio phi), SFL (FedAvg sync) and EdgeSplit (per-device
cuts) differ only in how many bits cross the air and how many FLOPs the server spends at a given
cut. ``SchemeTables.build`` turns the scenario and the model profile into per-cut tables once; the
latency formula (``latency.py``) then only indexes them, whatever the scheme (docs/system-model.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.profile import ModelProfile
from .scenario import Scenario


@dataclass(frozen=True)
class SchemeTables:
    """Per-cut tables of one scenario; every array has length L + 1 and is indexed by the cut j.

    Attributes:
        num_blocks: L.
        common_cut: one cut for every client (all schemes but EdgeSplit).
        client_fwd_flops, client_bwd_flops: b rho_j and b varpi_j, FLOPs a client spends per round.
        up_bits: b psi_j, bits a client uploads (its activations).
        dn_unicast_bits: bits a client receives on its own subchannels: b chi_j (plain), (1 - phi) b
            chi_j (EPSL with a broadcast downlink), 0 (downlink ignored).
        dn_broadcast_bits: phi b chi_j broadcast once to every client over the whole band (EPSL with a
            broadcast downlink), else None.
        server_fwd_flops, server_bwd_flops: b (rho_L - rho_j) and b (varpi_L - varpi_j), the server's
            FLOPs per client.
        server_bwd_scale: 1 - phi, the share of each client's rows back-propagated per client.
        server_shared_bwd_flops: phi b (varpi_L - varpi_j), the aggregated rows back-propagated once
            (EPSL, common cut), else None.
        server_flops: f_s, FLOP/s.
        param_bits: delta_j, bits of the client-side model (sync and migration).
        migration: whether a cut change is charged (blocks move).
    """

    num_blocks: int
    common_cut: bool
    client_fwd_flops: np.ndarray
    client_bwd_flops: np.ndarray
    up_bits: np.ndarray
    dn_unicast_bits: np.ndarray
    dn_broadcast_bits: np.ndarray | None
    server_fwd_flops: np.ndarray
    server_bwd_flops: np.ndarray
    server_bwd_scale: float
    server_shared_bwd_flops: np.ndarray | None
    server_flops: float
    param_bits: np.ndarray
    migration: bool

    @classmethod
    def build(cls, scenario: Scenario, profile: ModelProfile) -> "SchemeTables":
        b = float(scenario.batch_size)
        phi = float(scenario.phi)
        grad = b * profile.grad_bits
        broadcast = scenario.downlink == "broadcast" and phi > 0.0
        if scenario.downlink == "ignore":
            unicast = np.zeros_like(grad)
        elif broadcast:
            unicast = (1.0 - phi) * grad
        else:
            unicast = grad
        server_bwd = b * (profile.bwd_flops[-1] - profile.bwd_flops)
        return cls(
            num_blocks=profile.num_blocks,
            common_cut=not scenario.per_device_cuts,
            client_fwd_flops=b * profile.fwd_flops,
            client_bwd_flops=b * profile.bwd_flops,
            up_bits=b * profile.act_bits,
            dn_unicast_bits=unicast,
            dn_broadcast_bits=phi * grad if broadcast else None,
            server_fwd_flops=b * (profile.fwd_flops[-1] - profile.fwd_flops),
            server_bwd_flops=server_bwd,
            server_bwd_scale=1.0 - phi,
            server_shared_bwd_flops=phi * server_bwd if phi > 0.0 else None,
            server_flops=float(scenario.server.compute_flops),
            param_bits=np.asarray(profile.param_bits, dtype=np.float64),
            migration=bool(scenario.migration),
        )

    @property
    def uses_broadcast(self) -> bool:
        """Whether the downlink has a broadcast part (needs R_bc)."""
        return self.dn_broadcast_bits is not None

    @property
    def has_downlink(self) -> bool:
        """Whether the downlink carries anything (False when it is ignored)."""
        return self.uses_broadcast or bool(np.any(self.dn_unicast_bits > 0))


__all__ = ["SchemeTables"]
