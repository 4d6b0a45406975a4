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
from .scenario import Scenario, ScenarioError


def aggregated_rows(phi: float, batch_size: int) -> int:
    """m, the rows of each client's batch EPSL aggregates: round(phi b), halves to even (the one
    rounding rule of the latency model and the training engine)."""
    return int(round(phi * batch_size))


def optimizer_slots(optimizer: str) -> int:
    """Optimizer tensors kept per parameter: 1 for SGD with momentum, 2 for Adam (memory caps)."""
    return 2 if optimizer == "adam" else 1


@dataclass(frozen=True)
class SchemeTables:
    """Per-cut tables of one scenario; every array has length L + 1 and is indexed by the cut j.

    Attributes:
        num_blocks: L.
        common_cut: one cut for every client (all schemes but EdgeSplit).
        aggregated_rows: m = round(phi b), the rows of each client's batch EPSL aggregates.
        client_fwd_flops, client_bwd_flops: b rho_j and b varpi_j, FLOPs a client spends per round.
        up_bits: b psi_j, bits a client uploads (its activations at ``bits_per_element``).
        dn_unicast_bits: bits a client receives on its own subchannels: b chi_j (plain), (b - m) chi_j
            (EPSL with a broadcast downlink), 0 (downlink ignored).
        dn_broadcast_bits: m chi_j broadcast once to every client over the whole band (EPSL with a
            broadcast downlink), else None.
        server_fwd_flops, server_bwd_flops: b (rho_L - rho_j) and b (varpi_L - varpi_j), the server's
            FLOPs per client.
        server_bwd_scale: 1 - m / b, the share of each client's rows back-propagated per client.
        server_shared_fwd_flops: m (rho_L - rho_j), the forward pass of the m averaged activations
            (EPSL, common cut), else None.
        server_shared_bwd_flops: m (varpi_L - varpi_j), the aggregated rows back-propagated once
            (EPSL, common cut), else None.
        server_flops: f_s, FLOP/s.
        param_bits: delta_j, bits of the client-side model (sync and migration).
        migration: whether a cut change is charged (blocks move).
        client_memory_bytes: mem_j, a client's memory to train blocks 1..j on its batch (a cut whose
            memory exceeds a client's cap is infeasible: that client never finishes).
        per_device_chain: the round ends with the slowest device's own chain (``round_structure:
            per-device``) instead of phase by phase.
    """

    num_blocks: int
    common_cut: bool
    aggregated_rows: int
    client_fwd_flops: np.ndarray
    client_bwd_flops: np.ndarray
    up_bits: np.ndarray
    dn_unicast_bits: np.ndarray
    dn_broadcast_bits: np.ndarray | None
    server_fwd_flops: np.ndarray
    server_bwd_flops: np.ndarray
    server_bwd_scale: float
    server_shared_fwd_flops: np.ndarray | None
    server_shared_bwd_flops: np.ndarray | None
    server_flops: float
    param_bits: np.ndarray
    migration: bool
    client_memory_bytes: np.ndarray
    per_device_chain: bool

    @classmethod
    def build(cls, scenario: Scenario, profile: ModelProfile) -> "SchemeTables":
        b = float(scenario.batch_size)
        m = aggregated_rows(scenario.phi, scenario.batch_size) if scenario.scheme == "epsl" else 0
        phi = m / b  # the share of rows aggregated, as the engine computes it
        # activations and gradients cross the air at the scenario's width, the profile measured them at its own
        width = scenario.bits_per_element / profile.bits_per_element
        act = profile.act_bits * width if width != 1.0 else profile.act_bits
        grad = b * (profile.grad_bits * width if width != 1.0 else profile.grad_bits)
        broadcast = scenario.downlink == "broadcast" and m > 0
        if scenario.downlink == "ignore":
            unicast = np.zeros_like(grad)
        elif broadcast:
            unicast = (1.0 - phi) * grad
        else:
            unicast = grad
        server_fwd = b * (profile.fwd_flops[-1] - profile.fwd_flops)
        server_bwd = b * (profile.bwd_flops[-1] - profile.bwd_flops)
        memory = profile.client_memory_bytes(np.arange(profile.num_blocks + 1), scenario.batch_size,
                                             optimizer_slots(scenario.training.optimizer))
        return cls(
            num_blocks=profile.num_blocks,
            common_cut=not scenario.per_device_cuts,
            aggregated_rows=m,
            client_fwd_flops=b * profile.fwd_flops,
            client_bwd_flops=b * profile.bwd_flops,
            up_bits=b * act,
            dn_unicast_bits=unicast,
            dn_broadcast_bits=phi * grad if broadcast else None,
            server_fwd_flops=server_fwd,
            server_bwd_flops=server_bwd,
            server_bwd_scale=1.0 - phi,
            server_shared_fwd_flops=phi * server_fwd if m > 0 else None,
            server_shared_bwd_flops=phi * server_bwd if m > 0 else None,
            server_flops=float(scenario.server.compute_flops),
            param_bits=np.asarray(profile.param_bits, dtype=np.float64),
            migration=bool(scenario.migration),
            client_memory_bytes=np.asarray(memory, dtype=np.float64),
            per_device_chain=scenario.round_structure == "per-device",
        )

    @property
    def min_memory_bytes(self) -> float:
        """The memory of the shallowest cut: a device with less fits no cut."""
        return float(self.client_memory_bytes[1])

    def deepest_cut(self, memory_bytes: np.ndarray) -> np.ndarray:
        """[..., N] the deepest cut each client's memory cap [..., N] holds (0: none). The memory of a
        cut only grows with its depth, so the cuts a client can train are exactly 1..deepest."""
        return np.searchsorted(self.client_memory_bytes[1:-1], memory_bytes, side="right")

    def fit_cut(self, cut: np.ndarray, memory_bytes: np.ndarray) -> np.ndarray:
        """``cut`` [..., N] moved to the nearest cut the caps allow (shallower): per client, or for a
        common cut the one every client holds."""
        deepest = self.deepest_cut(memory_bytes)
        if self.common_cut:
            deepest = deepest.min(axis=-1, keepdims=True)
        return np.minimum(cut, np.maximum(deepest, 1))

    def check_caps(self, memory_bytes: np.ndarray, what: str, names: list[str] | None = None) -> None:
        """``ScenarioError`` naming the first device (or class) whose cap fits no cut."""
        caps = np.atleast_1d(np.asarray(memory_bytes, dtype=np.float64))
        short = caps < self.min_memory_bytes
        if short.any():
            i = int(np.flatnonzero(short)[0])
            who = f" of {names[i]!r}" if names else ""
            raise ScenarioError(f"{what}: memory cap {caps[i]:.4g} bytes{who} fits no cut; allowed: at least "
                                f"{self.min_memory_bytes:.4g} bytes (the shallowest cut of this model and batch)")

    @property
    def uses_broadcast(self) -> bool:
        """Whether the downlink has a broadcast part (needs R_bc)."""
        return self.dn_broadcast_bits is not None

    @property
    def has_downlink(self) -> bool:
        """Whether the downlink carries anything (False when it is ignored)."""
        return self.uses_broadcast or bool(np.any(self.dn_unicast_bits > 0))


__all__ = ["SchemeTables"]
