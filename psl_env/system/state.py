"""The nouns that flow from the simulator to decision makers and the latency model: devices, the
round (true state), the observation (what a scheduler may see) and the allocation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .scheme import SchemeTables


@dataclass
class Devices:
    """The clients of one episode. Arrays have shape [N]."""

    client_flops: np.ndarray  # f_i, FLOP/s
    power_budget_w: np.ndarray  # P_i, W
    memory_bytes: np.ndarray  # memory cap, bytes
    distance_m: np.ndarray  # d_i, m
    speed_mps: np.ndarray  # m/s (Doppler, mobility)
    dataset_size: np.ndarray  # samples
    names: tuple[str, ...] = ()

    @property
    def num_clients(self) -> int:
        return int(self.client_flops.shape[0])


@dataclass
class RoundState:
    """One round as it really is: what the scheduler may see, plus the true gains it is priced on.

    Attributes:
        round: round index within the episode (0-based).
        episode: episode index.
        client_flops: [N] compute rate f_i, FLOP/s.
        power_budget_w: [N] uplink power budget P_i, W.
        memory_bytes: [N] client memory caps, bytes.
        gains: [N, M] true linear uplink gains g_{i,m} of this round (the latency uses these).
        observed_gains: [N, M] the gains a decision sees (equal to ``gains`` under perfect CSI,
            last round's gains under delayed CSI).
        prev_cut: [N] the previous round's cut per client, or None on the first round.
        prev_latency_s: the previous round's latency, s (0 on the first round).
        sync: whether this round ends with a FedAvg sync of client-side models.
        distance_m: [N] current distances, m.
    """

    round: int
    episode: int
    client_flops: np.ndarray
    power_budget_w: np.ndarray
    memory_bytes: np.ndarray
    gains: np.ndarray
    observed_gains: np.ndarray
    prev_cut: np.ndarray | None = None
    prev_latency_s: float = 0.0
    sync: bool = False
    distance_m: np.ndarray | None = None

    @property
    def num_clients(self) -> int:
        return int(self.gains.shape[0])

    @property
    def num_subchannels(self) -> int:
        return int(self.gains.shape[1])

    def observation(self) -> "Observation":
        """What a scheduler may see of this round (the observed gains, never the true ones)."""
        n = self.num_clients
        has_prev = self.prev_cut is not None
        prev = np.asarray(self.prev_cut, dtype=np.int64) if has_prev else np.zeros(n, dtype=np.int64)
        return Observation(self.observed_gains, self.client_flops, self.power_budget_w, self.memory_bytes, prev,
                           has_prev, float(self.prev_latency_s), int(self.round), bool(self.sync), int(self.episode))


@dataclass
class Observation:
    """What a scheduler may see: of one round, or of K rounds with a leading axis K on every field.

    Every decision maker and codec decides on this; the true gains never reach them.

    Attributes:
        gains: [..., N, M] observed uplink gains (this round's under perfect CSI, last round's under
            delayed CSI).
        client_flops: [..., N] compute rates, FLOP/s.
        power_budget_w: [..., N] uplink power budgets, W.
        memory_bytes: [..., N] client memory caps, bytes.
        prev_cut: [..., N] the previous round's cuts (0 where there was no previous round).
        has_prev: [...] whether a previous round exists (its cut is charged as migration).
        prev_latency_s: [...] the previous round's latency, s (0 on the first round).
        round: [...] round index within the episode.
        sync: [...] whether the round ends with a FedAvg sync of client-side models.
        episode: [...] episode index.
        broadcast_rate: [...] R_bc of the observed gains, bit/s, when the producer already has it
            (else None: consumers compute it).
    """

    gains: np.ndarray
    client_flops: np.ndarray
    power_budget_w: np.ndarray
    memory_bytes: np.ndarray
    prev_cut: np.ndarray
    has_prev: np.ndarray | bool
    prev_latency_s: np.ndarray | float
    round: np.ndarray | int
    sync: np.ndarray | bool
    episode: np.ndarray | int = 0
    broadcast_rate: np.ndarray | float | None = None

    @property
    def num_clients(self) -> int:
        return int(self.gains.shape[-2])

    @property
    def num_subchannels(self) -> int:
        return int(self.gains.shape[-1])

    @property
    def batched(self) -> bool:
        return self.gains.ndim == 3

    @property
    def num_envs(self) -> int:
        """K for a batch (1 for one round)."""
        return int(self.gains.shape[0]) if self.batched else 1

    def __getitem__(self, k: int) -> "Observation":
        """Round k of a batch, as a one-round observation (views)."""
        if not self.batched:
            raise IndexError("a one-round observation has no batch axis")
        r_bc = None if self.broadcast_rate is None else float(self.broadcast_rate[k])
        return Observation(self.gains[k], self.client_flops[k], self.power_budget_w[k], self.memory_bytes[k],
                           self.prev_cut[k], bool(self.has_prev[k]), float(self.prev_latency_s[k]),
                           int(self.round[k]), bool(self.sync[k]), int(self.episode[k]), r_bc)

    def stacked(self) -> "Observation":
        """This one-round observation as a batch of one (K = 1)."""
        if self.batched:
            return self
        r_bc = None if self.broadcast_rate is None else np.array([self.broadcast_rate], dtype=np.float64)
        return Observation(self.gains[None], self.client_flops[None], self.power_budget_w[None],
                           self.memory_bytes[None], np.asarray(self.prev_cut)[None], np.array([self.has_prev]),
                           np.array([float(self.prev_latency_s)]), np.array([int(self.round)]),
                           np.array([bool(self.sync)]), np.array([int(self.episode)]), r_bc)


@dataclass(frozen=True)
class Allocation:
    """One round's decision. Feasible when built by ``make_allocation`` or a codec.

    Attributes:
        cut: [N] int, the cut of each client (1..L-1; all equal for a common cut).
        owner: [M] int, the client that owns each subchannel, -1 for unused.
        power_w: [M] float, transmit power on each subchannel, W (0 where unused).
    """

    cut: np.ndarray
    owner: np.ndarray
    power_w: np.ndarray

    def to_dict(self) -> dict:
        return {"cut": self.cut.tolist(), "owner": self.owner.tolist(), "power_w": self.power_w.tolist()}


class InfeasibleAllocation(ValueError):
    """An allocation breaks a constraint; the message says which."""


def check_allocation(alloc: Allocation, state: RoundState | Observation, tables: "SchemeTables",
                     rtol: float = 1e-9) -> None:
    """Raise ``InfeasibleAllocation`` unless ``alloc`` satisfies every constraint of the round
    (docs/system-model.md): cut range, common cut, memory caps, one owner per subchannel, power
    budgets, every client served. ``tables``: the scenario's ``SchemeTables``."""
    num_blocks, common_cut = tables.num_blocks, tables.common_cut
    n, m = state.num_clients, state.num_subchannels
    cut, owner, power = alloc.cut, alloc.owner, alloc.power_w
    if cut.shape != (n,) or owner.shape != (m,) or power.shape != (m,):
        raise InfeasibleAllocation(f"shapes: cut {cut.shape} owner {owner.shape} power {power.shape}; "
                                   f"expected ({n},), ({m},), ({m},)")
    if np.any(cut < 1) or np.any(cut > num_blocks - 1):
        raise InfeasibleAllocation(f"cut {cut.tolist()} outside 1..{num_blocks - 1}")
    if common_cut and np.any(cut != cut[0]):
        raise InfeasibleAllocation(f"cut {cut.tolist()} is not common but the scheme needs one cut")
    over = tables.client_memory_bytes[cut] > state.memory_bytes
    if np.any(over):
        raise InfeasibleAllocation(f"cut {cut.tolist()} needs more memory than clients "
                                   f"{np.flatnonzero(over).tolist()} have")
    if np.any(owner < -1) or np.any(owner >= n):
        raise InfeasibleAllocation(f"owner {owner.tolist()} outside -1..{n - 1}")
    if not np.all(np.isfinite(power)) or np.any(power < 0):
        raise InfeasibleAllocation("power must be finite and >= 0")
    if np.any(power[owner < 0] > 0):
        raise InfeasibleAllocation("power on an unused subchannel")
    spent = np.bincount(owner[owner >= 0], weights=power[owner >= 0], minlength=n)
    if np.any(spent > state.power_budget_w * (1 + rtol) + 1e-15):
        raise InfeasibleAllocation(f"power budget exceeded: spent {spent.tolist()} budget "
                                   f"{state.power_budget_w.tolist()}")
    served = np.bincount(owner[owner >= 0], minlength=n)
    if np.any(served == 0):
        raise InfeasibleAllocation(f"clients {np.flatnonzero(served == 0).tolist()} have no subchannel")
