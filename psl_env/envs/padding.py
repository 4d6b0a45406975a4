"""One policy for many client counts: a round of N clients seen as a round of the maximum N.

A policy trained on a scenario whose ``num_clients`` is the maximum N and whose
``dynamics.present_clients`` draws how many take part per episode (the others are absent padding
slots, see ``psl_env.system.world``) decides rounds of any N up to that maximum: ``pad_observation``
turns the N-client round into a max-N round whose clients N..max-1 are absent, the policy decides
there (its codec keeps absent clients off the air), and ``unpad_allocation`` takes the first N
clients' part back. The padding slots hold a typical device (``PaddingDevice``: the gain and compute
rate the observation encoder centres on, the largest power budget, no memory limit), so the
observation's features on the N real clients are those of the unpadded round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..system.state import Allocation, Observation
from .observation import ObservationEncoder


@dataclass(frozen=True)
class PaddingDevice:
    """What an absent padding slot shows: gain (linear), compute rate (FLOP/s), power budget (W)."""

    gain: float
    client_flops: float
    power_budget_w: float

    @classmethod
    def centred(cls, encoder: ObservationEncoder) -> "PaddingDevice":
        """The device at the centre of the encoder's normalization (every feature 0, budget 1)."""
        gain = 10.0 ** (-float(encoder._b) / float(encoder._a))  # gain_db feature 0
        return cls(gain, 10.0 ** encoder.log_flops_ref, encoder.budget_ref)


def pad_observation(obs: Observation, max_clients: int, device: PaddingDevice) -> Observation:
    """The one-round ``obs`` of N clients as a round of ``max_clients`` whose clients N.. are absent."""
    if obs.batched:
        raise ValueError("pad_observation: expected a one-round observation")
    n, m = obs.num_clients, obs.num_subchannels
    if not 1 <= n <= max_clients:
        raise ValueError(f"num_clients: {n} is not allowed; allowed: 1..{max_clients} (the policy's maximum N)")
    extra = max_clients - n

    def pad(a: np.ndarray | None, fill: float, default: float, dtype=np.float64) -> np.ndarray:
        a = np.full(n, default, dtype=dtype) if a is None else np.asarray(a, dtype=dtype)
        return np.concatenate([a, np.full(extra, fill, dtype=dtype)])

    gains = np.concatenate([obs.gains, np.full((extra, m), device.gain)], axis=0)
    memory = pad(obs.memory_bytes, float(np.max(obs.memory_bytes)), 0.0)  # never the binding cap
    prev = np.asarray(obs.prev_cut, dtype=np.int64)
    prev_cut = np.concatenate([prev, np.full(extra, prev[0] if n else 0, dtype=np.int64)])
    present = pad(obs.present, False, True, bool)
    return Observation(gains, pad(obs.client_flops, device.client_flops, 0.0),
                       pad(obs.power_budget_w, device.power_budget_w, 0.0), memory, prev_cut, obs.has_prev,
                       obs.prev_latency_s, obs.round, obs.sync, obs.episode, obs.broadcast_rate, present,
                       pad(obs.availability, 1.0, 1.0), pad(obs.battery_j, np.inf, np.inf))


def unpad_allocation(alloc: Allocation, num_clients: int) -> Allocation:
    """The first ``num_clients`` clients' part of a max-N allocation (padding slots own nothing)."""
    if np.any(alloc.owner >= num_clients):
        raise ValueError("unpad_allocation: a padding slot owns a subchannel")
    return Allocation(alloc.cut[:num_clients].copy(), alloc.owner.copy(), alloc.power_w.copy())


__all__ = ["PaddingDevice", "pad_observation", "unpad_allocation"]
