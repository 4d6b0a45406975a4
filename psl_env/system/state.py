"""The nouns that flow from the simulator to decision makers and the latency model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    """One round as the scheduler sees it, plus the true gains it is evaluated on.

    Attributes:
        round: round index within the episode (0-based).
        episode: episode index.
        client_flops: [N] compute rate f_i, FLOP/s.
        power_budget_w: [N] uplink power budget P_i, W.
        memory_bytes: [N] client memory caps, bytes.
        gains: [N, M] true linear uplink gains g_{i,m} of this round (the latency uses these).
        observed_gains: [N, M] the gains the decision sees (equal to ``gains`` under perfect CSI,
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
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_clients(self) -> int:
        return int(self.gains.shape[0])

    @property
    def num_subchannels(self) -> int:
        return int(self.gains.shape[1])

    def observed(self) -> "RoundState":
        """The same round with the observed gains in place of the true ones (what a decision sees)."""
        if self.observed_gains is self.gains:
            return self
        return RoundState(self.round, self.episode, self.client_flops, self.power_budget_w, self.memory_bytes,
                          self.observed_gains, self.observed_gains, self.prev_cut, self.prev_latency_s,
                          self.sync, self.distance_m)


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


def check_allocation(alloc: Allocation, state: RoundState, num_blocks: int, common_cut: bool,
                     rtol: float = 1e-9) -> None:
    """Raise ``InfeasibleAllocation`` unless ``alloc`` satisfies every constraint of SPEC 4."""
    n, m = state.num_clients, state.num_subchannels
    cut, owner, power = alloc.cut, alloc.owner, alloc.power_w
    if cut.shape != (n,) or owner.shape != (m,) or power.shape != (m,):
        raise InfeasibleAllocation(f"shapes: cut {cut.shape} owner {owner.shape} power {power.shape}; "
                                   f"expected ({n},), ({m},), ({m},)")
    if np.any(cut < 1) or np.any(cut > num_blocks - 1):
        raise InfeasibleAllocation(f"cut {cut.tolist()} outside 1..{num_blocks - 1}")
    if common_cut and np.any(cut != cut[0]):
        raise InfeasibleAllocation(f"cut {cut.tolist()} is not common but the scheme needs one cut")
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
