"""The exact per-round optimum on small instances, by enumeration.

Enumerates every cut (one common cut, or with per-device cuts every cut vector) and every
assignment of the M subchannels that serves all N clients, gives each client its water-filled
power, and prices all candidates at once with ``LatencyModel.price``. Exact because:

- power: for a fixed cut and assignment, water-filling maximizes each client's uplink rate, and
  every latency term is non-increasing in each client's rate (clients do not interfere);
- unused subchannels: giving a subchannel to a client never lowers its uplink or downlink rate,
  and the broadcast rate does not depend on the assignment, so assignments that use every
  subchannel contain an optimum.

The optimum is that of the round as the decision sees it (its ``Observation``): under delayed CSI
a method can beat the oracle on the true gains, and with migration the per-round optimum depends on
the previous cut, so trajectories of different methods are not comparable round by round.
"""

from __future__ import annotations

from math import comb

import numpy as np

from psl_env.resources.waterfill import water_fill
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation

from .base import DecisionMaker

DEFAULT_MAX_CANDIDATES = 2_000_000


def count_surjections(n: int, m: int) -> int:
    """Assignments of m subchannels to n clients that serve every client (inclusion-exclusion)."""
    return sum((-1) ** k * comb(n, k) * (n - k) ** m for k in range(n + 1))


def surjective_assignments(n: int, m: int) -> np.ndarray:
    """[A, m] every owner vector in 0..n-1 that uses each client at least once, in lexicographic order."""
    if n ** m > 50_000_000:
        raise ValueError(f"oracle: {n}^{m} assignments are too many to enumerate")
    codes = np.arange(n ** m, dtype=np.int64)
    digits = (codes[:, None] // (n ** np.arange(m - 1, -1, -1, dtype=np.int64))) % n
    served = np.zeros((digits.shape[0], n), dtype=bool)
    served[np.arange(digits.shape[0])[:, None], digits] = True
    return digits[served.all(axis=1)]


class OracleDecisionMaker(DecisionMaker):
    """Exact optimum by enumeration of cuts x assignments (with water-filled power).

    Args:
        model: the scenario's latency model. Per-device cuts are enumerated when the scheme has
            them (EdgeSplit), else one common cut.
        max_candidates: refuse (``ValueError`` naming N, M and the limit) when the number of
            (cut, assignment) candidates exceeds this.
        chunk: candidates priced per call of the latency formula (memory bound).
    """

    name = "oracle"

    def __init__(self, model: LatencyModel, max_candidates: int = DEFAULT_MAX_CANDIDATES,
                 chunk: int = 20_000) -> None:
        super().__init__(model)
        n, m = model.num_clients, model.num_subchannels
        num_cuts = model.num_blocks - 1
        self.per_device = not model.common_cut
        cut_vectors = num_cuts ** n if self.per_device else num_cuts
        assignments = count_surjections(n, m)
        self.num_candidates = cut_vectors * assignments
        if self.num_candidates > max_candidates:
            kind = "per-device cut vectors" if self.per_device else "cuts"
            raise ValueError(
                f"oracle: N={n} clients, M={m} subchannels give {cut_vectors} {kind} x {assignments} "
                f"assignments = {self.num_candidates:.3g} candidates, above the limit {max_candidates:.3g}; "
                "use a smaller scenario (e.g. small-exact) or raise max_candidates")
        self.chunk = int(chunk)
        self.assignments = surjective_assignments(n, m)  # [A, M]
        cuts = np.arange(1, model.num_blocks)
        if self.per_device:
            grid = np.stack(np.meshgrid(*([cuts] * n), indexing="ij"), axis=-1)
            self.cuts = grid.reshape(-1, n)
        else:
            self.cuts = np.repeat(cuts[:, None], n, axis=1)  # [C, N]
        self._masks = self.assignments[:, None, :] == np.arange(n)[None, :, None]  # [A, N, M]

    def decide(self, obs: Observation) -> Allocation:
        model = self.model
        gains = obs.gains
        n, m = gains.shape
        # Water-filled power of every assignment: [A, M].
        p_nm = water_fill(np.where(self._masks, gains, 0.0), obs.power_budget_w, model.radio.wf_noise_w,
                          model.radio.link)
        power = np.take_along_axis(p_nm, self.assignments[:, None, :], axis=1)[:, 0, :]
        r_bc = obs.broadcast_rate if obs.broadcast_rate is not None else model.broadcast_rate(gains)
        prev = obs.prev_cut if obs.has_prev else None
        num_a, num_c = self.assignments.shape[0], self.cuts.shape[0]
        total = num_a * num_c
        best_val, best_idx = np.inf, -1
        for start in range(0, total, self.chunk):
            idx = np.arange(start, min(start + self.chunk, total))
            ci, ai = idx // num_a, idx % num_a
            lat = model.price(gains, obs.client_flops, self.cuts[ci], self.assignments[ai], power[ai], prev,
                              obs.sync, r_bc, memory_bytes=obs.memory_bytes)
            k = int(np.argmin(lat.total))
            if lat.total[k] < best_val:
                best_val, best_idx = float(lat.total[k]), int(idx[k])
        ci, ai = best_idx // num_a, best_idx % num_a
        return Allocation(self.cuts[ci].copy(), self.assignments[ai].copy(), power[ai].copy())
