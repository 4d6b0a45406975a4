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
        self._tables: dict[int, tuple] = {}
        self.assignments, self.cuts, self._masks = self._enumeration(n, m)

    def _enumeration(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(assignments [A, M], cut vectors [C, n], ownership masks [A, n, M]) for n clients (fewer
        than the scenario's when some are absent), made once per n."""
        if n not in self._tables:
            assignments = surjective_assignments(n, m)
            cuts = np.arange(1, self.model.num_blocks)
            if self.per_device:
                grid = np.stack(np.meshgrid(*([cuts] * n), indexing="ij"), axis=-1)
                cut_vectors = grid.reshape(-1, n)
            else:
                cut_vectors = np.repeat(cuts[:, None], n, axis=1)
            self._tables[n] = (assignments, cut_vectors, assignments[:, None, :] == np.arange(n)[None, :, None])
        return self._tables[n]

    def decide(self, obs: Observation) -> Allocation:
        best, alloc = self.cut_optima(obs)
        return alloc[int(np.argmin(best))]

    def cut_optima(self, obs: Observation) -> tuple[np.ndarray, list[Allocation]]:
        """The exact optimum of the observed round at each cut vector the oracle enumerates
        (``self.cuts_of(n)``): (latency [C], s; the optimal allocation of each). Cuts over a
        client's memory cap are infinite. ``decide`` takes the first minimum."""
        model = self.model
        gains = obs.gains
        n, m = gains.shape
        assignments, cuts, masks = self._enumeration(n, m)
        # Water-filled power of every assignment: [A, M].
        p_nm = water_fill(np.where(masks, gains, 0.0), obs.power_budget_w, model.radio.wf_noise_w,
                          model.radio.link)
        power = np.take_along_axis(p_nm, assignments[:, None, :], axis=1)[:, 0, :]
        r_bc = obs.broadcast_rate if obs.broadcast_rate is not None else model.broadcast_rate(gains)
        prev = obs.prev_cut if obs.has_prev else None
        num_a, num_c = assignments.shape[0], cuts.shape[0]
        best_val = np.full(num_c, np.inf)
        best_a = np.zeros(num_c, dtype=np.int64)
        for start in range(0, num_a * num_c, self.chunk):
            idx = np.arange(start, min(start + self.chunk, num_a * num_c))
            ci, ai = idx // num_a, idx % num_a
            lat = model.price(gains, obs.client_flops, cuts[ci], assignments[ai], power[ai], prev,
                              obs.sync, r_bc, memory_bytes=obs.memory_bytes)
            # candidates are cut-major: a chunk holds a run of each cut; keep each cut's first minimum
            for c in np.unique(ci).tolist():
                sel = np.flatnonzero(ci == c)
                k = int(np.argmin(lat.total[sel]))
                if lat.total[sel[k]] < best_val[c]:
                    best_val[c], best_a[c] = float(lat.total[sel[k]]), int(ai[sel[k]])
        allocs = [Allocation(cuts[c].copy(), assignments[best_a[c]].copy(), power[best_a[c]].copy())
                  for c in range(num_c)]
        return best_val, allocs

    def cuts_of(self, n: int) -> np.ndarray:
        """[C, n] the cut vectors enumerated for n clients (one row per common cut without per-device cuts)."""
        return self._enumeration(n, self.model.num_subchannels)[1]
