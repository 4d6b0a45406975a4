"""The observation: one flat, normalized float32 vector per round (batched over K rounds).

Layout (N clients, M subchannels, C = 1 cut or N per-device cuts), in this order:

=====================  ======  ===============================================================  ==========
feature                size    value                                                            bounds
=====================  ======  ===============================================================  ==========
``gain_db``            N x M   (10 log10(g / N0 W) - center_db) / 10, observed gains, row-major  [-6, 6]
                               by client; center_db = unit-power SNR at the scenario's typical
                               distance (path loss only)
``compute``            N       log10(f_i / f_ref), f_ref = geometric middle of the compute range  [-4, 4]
``power_budget``       N       P_i / P_ref, P_ref = the largest budget the scenario can draw      [0, 4]
``prev_cut``           C       (j - 1) / (L - 2) of the previous round's cut(s); -1 on round 0   [-1, 1]
``prev_latency``       1       previous round's latency / its reference latency (0 on round 0)  [0, 10]
``progress``           1       round / rounds                                                   [0, 1]
``sync``               1       1 if this round ends with a FedAvg sync, else 0                   [0, 1]
=====================  ======  ===============================================================  ==========

Values are clipped to the bounds. Everything is what a scheduler may see (observed gains; under
delayed CSI last round's gains).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..system.channels.gauss_markov import pathloss_gain
from ..system.latency import LatencyModel
from ..system.scenario import Scenario

GAIN_SCALE_DB = 10.0
GAIN_CLIP = 6.0
COMPUTE_CLIP = 4.0
BUDGET_CLIP = 4.0
RATIO_CLIP = 10.0


class ObservationEncoder:
    """Builds observations of K rounds from arrays (see the module docstring for the layout).

    Args:
        scenario: the validated scenario (for normalization constants).
        model: its latency model (N, M, number of blocks, noise).
    """

    def __init__(self, scenario: Scenario, model: LatencyModel) -> None:
        n, m = model.num_clients, model.num_subchannels
        self.n, self.m = n, m
        self.rounds = scenario.rounds
        self.cut_dims = 1 if model.common_cut else n
        self.cut_span = max(model.num_blocks - 2, 1)
        dev = scenario.devices
        if dev.kind == "classes":
            flops = [c["compute_flops"] for c in dev.classes]
            budgets = [c["power_budget_w"] for c in dev.classes]
            distances = [c["distance_m"] for c in dev.classes]
        else:
            flops, budgets, distances = dev.compute_flops, dev.power_budget_w, dev.distance_m
        self.log_flops_ref = 0.5 * (np.log10(min(flops)) + np.log10(max(flops)))
        self.budget_ref = float(max(budgets))
        d_ref = 0.5 * (min(distances) + max(distances))
        ch = scenario.channel
        ref_gain = float(pathloss_gain(np.array(d_ref), ch.pathloss_intercept_db, ch.pathloss_slope_db))
        self.center_db = 10.0 * np.log10(ref_gain / model.radio.noise_w)
        # obs = a * log10(g) + b
        self._a = np.float32(10.0 / GAIN_SCALE_DB)
        self._b = np.float32(-(10.0 * np.log10(model.radio.noise_w) + self.center_db) / GAIN_SCALE_DB)
        sizes = {"gain_db": n * m, "compute": n, "power_budget": n, "prev_cut": self.cut_dims,
                 "prev_latency": 1, "progress": 1, "sync": 1}
        bounds = {"gain_db": (-GAIN_CLIP, GAIN_CLIP), "compute": (-COMPUTE_CLIP, COMPUTE_CLIP),
                  "power_budget": (0.0, BUDGET_CLIP), "prev_cut": (-1.0, 1.0), "prev_latency": (0.0, RATIO_CLIP),
                  "progress": (0.0, 1.0), "sync": (0.0, 1.0)}
        self.slices: dict[str, slice] = {}
        start = 0
        for key, size in sizes.items():
            self.slices[key] = slice(start, start + size)
            start += size
        self.size = start
        # prev_cut feature by cut index; index 0 stands for "no previous round" (cuts are >= 1)
        self._cut_feature = np.concatenate([[-1.0], (np.arange(1, model.num_blocks + 1) - 1) / self.cut_span])
        self._cut_feature = self._cut_feature.astype(np.float32)
        low = np.concatenate([np.full(sizes[k], bounds[k][0]) for k in sizes]).astype(np.float32)
        high = np.concatenate([np.full(sizes[k], bounds[k][1]) for k in sizes]).astype(np.float32)
        self.low, self.high = low, high
        self.space = spaces.Box(low, high, (self.size,), dtype=np.float32)

    def static_features(self, client_flops: np.ndarray, power_budget_w: np.ndarray) -> np.ndarray:
        """[K, 2N] float32 ``compute`` and ``power_budget`` features (constant within an episode
        unless a trace overrides the device figures)."""
        k = client_flops.shape[0]
        out = np.empty((k, 2 * self.n), dtype=np.float32)
        comp, budget = out[:, : self.n], out[:, self.n:]
        np.subtract(np.log10(client_flops), self.log_flops_ref, out=comp, casting="same_kind")
        np.clip(comp, -COMPUTE_CLIP, COMPUTE_CLIP, out=comp)
        np.divide(power_budget_w, self.budget_ref, out=budget, casting="same_kind")
        np.clip(budget, 0.0, BUDGET_CLIP, out=budget)
        return out

    def gain_features(self, gains: np.ndarray, out: np.ndarray) -> None:
        """Write the ``gain_db`` features of gains [K, N, M] into out [K, size] (rows independent)."""
        k = gains.shape[0]
        g = out[:, self.slices["gain_db"]]
        np.copyto(g, gains.reshape(k, -1), casting="same_kind")  # float32 from here on
        np.log10(g, out=g)  # zero gains give -inf, clipped below
        g *= self._a
        g += self._b
        np.maximum(g, -GAIN_CLIP, out=g)
        np.minimum(g, GAIN_CLIP, out=g)

    def encode(self, gains: np.ndarray, client_flops: np.ndarray, power_budget_w: np.ndarray,
               prev_cut: np.ndarray, has_prev: np.ndarray, prev_ratio: np.ndarray, rounds: np.ndarray,
               sync: np.ndarray, static: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """[K, size] float32 observations.

        Args:
            gains: [K, N, M] observed gains; client_flops, power_budget_w, prev_cut: [K, N];
            has_prev, prev_ratio, rounds, sync: [K]; static: ``static_features`` if precomputed;
            out: an array whose ``gain_db`` features ``gain_features`` already wrote (filled in).
        """
        k = gains.shape[0]
        s = self.slices
        if out is None:
            out = np.empty((k, self.size), dtype=np.float32)
            self.gain_features(gains, out)
        out[:, s["compute"].start: s["power_budget"].stop] = (
            self.static_features(client_flops, power_budget_w) if static is None else static)
        tail = out[:, s["prev_cut"].start:]
        c = self.cut_dims
        if k == 1 and c == 1:  # one round: the same values from Python scalars, one store
            j = int(prev_cut[0, 0]) if has_prev[0] else 0
            tail[0] = [self._cut_feature[j], min(float(prev_ratio[0]), RATIO_CLIP),
                       min(int(rounds[0]) / self.rounds, 1.0), sync[0]]
            return out
        # prev_cut: (j - 1) / (L - 2), or -1 without a previous round
        tail[:, :c] = self._cut_feature[np.where(has_prev[:, None], prev_cut[:, :c], 0)
                                        if not has_prev.all() else prev_cut[:, :c]]
        tail[:, c] = np.minimum(prev_ratio, RATIO_CLIP)
        tail[:, c + 1] = np.minimum(rounds / self.rounds, 1.0)
        tail[:, c + 2] = sync
        return out


__all__ = ["ObservationEncoder"]
