"""Time-varying uplink channels: Gauss-Markov Rayleigh fading, path loss, shadowing, traces.

The pure functions work on arrays with leading batch axes, so batched environments reuse them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .scenario import Scenario

SPEED_OF_LIGHT_MPS = 299_792_458.0


def pathloss_gain(distance_m: np.ndarray, intercept_db: float = 128.1, slope_db: float = 37.6) -> np.ndarray:
    """Linear large-scale gain 10^(-PL/10) with PL_dB = A + B log10(d / 1 km)."""
    pl_db = intercept_db + slope_db * np.log10(np.maximum(distance_m, 1e-3) / 1000.0)
    return 10.0 ** (-pl_db / 10.0)


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """CN(0, 1) samples."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.sqrt(0.5)


def gauss_markov_step(h: np.ndarray, corr: np.ndarray | float, innovation: np.ndarray) -> np.ndarray:
    """h_t = a h_{t-1} + sqrt(1 - a^2) e_t; ``corr`` broadcasts against h (e.g. [N, 1] per client)."""
    corr = np.asarray(corr)
    return corr * h + np.sqrt(np.maximum(1.0 - corr * corr, 0.0)) * innovation


def doppler_correlation(speed_mps: np.ndarray, carrier_hz: float, interval_s: float) -> np.ndarray:
    """Jakes correlation a = J0(2 pi f_D tau), f_D = v f_c / c, for a round of ``interval_s``.

    Negative lobes of J0 are clipped to 0 (our choice): a long round is treated as fully
    decorrelated rather than anti-correlated; the gains only see |h|^2 either way.
    """
    from scipy.special import j0

    doppler_hz = np.asarray(speed_mps) * carrier_hz / SPEED_OF_LIGHT_MPS
    if not np.isfinite(interval_s):
        return np.zeros_like(doppler_hz)
    return np.clip(j0(2.0 * np.pi * doppler_hz * interval_s), 0.0, 1.0)


class GaussMarkovChannel:
    """Rayleigh fading independent across subchannels, correlated across rounds (SPEC 3).

    gain = path loss(d_i) x shadowing_i x |h|^2. Shadowing is drawn once per episode. With
    ``correlation: doppler`` the correlation of each client follows its speed and the previous
    round's latency; otherwise it is the fixed number. With ``mobility`` clients walk on the plane
    around the server (heading drifting randomly) and stay within the scenario's distance range.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.cfg = scenario.channel
        self.n = scenario.num_clients
        self.m = scenario.num_subchannels
        self.distance_range_m = scenario.devices.distance_m

    def reset(self, rng: np.random.Generator, distance_m: np.ndarray, speed_mps: np.ndarray,
              initial_interval_s: float = 1.0) -> np.ndarray:
        """Start an episode; returns the gains of the round *before* the first (stale CSI for round 0)."""
        self.rng = rng
        self.speed_mps = np.asarray(speed_mps, dtype=np.float64)
        self.shadowing = 10.0 ** (rng.normal(0.0, self.cfg.shadowing_db, self.n) / 10.0) if self.cfg.shadowing_db else np.ones(self.n)
        angle = rng.uniform(0.0, 2.0 * np.pi, self.n)
        self.position_m = np.stack([distance_m * np.cos(angle), distance_m * np.sin(angle)], axis=1)
        self.heading = rng.uniform(0.0, 2.0 * np.pi, self.n)
        self.h = complex_normal(rng, (self.n, self.m))
        self._interval_s = initial_interval_s
        return self.gains()

    @property
    def distance_m(self) -> np.ndarray:
        return np.hypot(self.position_m[:, 0], self.position_m[:, 1])

    def correlation(self, interval_s: float) -> np.ndarray:
        """[N, 1] fading correlation for a round lasting ``interval_s``."""
        if self.cfg.correlation == "doppler":
            return doppler_correlation(self.speed_mps, self.cfg.carrier_hz, interval_s)[:, None]
        return np.full((self.n, 1), float(self.cfg.correlation))

    def gains(self) -> np.ndarray:
        """[N, M] linear gains of the current fading state."""
        large = pathloss_gain(self.distance_m, self.cfg.pathloss_intercept_db, self.cfg.pathloss_slope_db)
        return (large * self.shadowing)[:, None] * (self.h.real ** 2 + self.h.imag ** 2)

    def step(self, interval_s: float) -> np.ndarray:
        """Advance by one round that lasted ``interval_s`` seconds; returns the new [N, M] gains."""
        self.h = gauss_markov_step(self.h, self.correlation(interval_s), complex_normal(self.rng, (self.n, self.m)))
        if self.cfg.mobility and np.isfinite(interval_s):
            self._move(interval_s)
        return self.gains()

    def _move(self, interval_s: float) -> None:
        self.heading = self.heading + self.rng.normal(0.0, 0.3, self.n)
        step = (self.speed_mps * interval_s)[:, None] * np.stack([np.cos(self.heading), np.sin(self.heading)], axis=1)
        pos = self.position_m + step
        radius = np.hypot(pos[:, 0], pos[:, 1])
        lo, hi = self.distance_range_m
        clipped = np.clip(radius, lo, hi)
        bounced = clipped != radius
        # Reflect off the range boundary: keep the direction of the position, turn the walker around.
        pos = pos * (clipped / np.maximum(radius, 1e-9))[:, None]
        self.heading = np.where(bounced, self.heading + np.pi, self.heading)
        self.position_m = pos


def load_gain_trace(path: str | Path) -> dict[str, np.ndarray]:
    """A gains trace: ``.npz`` with ``gains`` [T, N, M] (optional ``client_flops`` [T, N],
    ``client_power_budget_w`` [T, N]) or a round-trace ``.jsonl`` (one entry per round kept)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"channel.trace_file: {str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as data:
            if "gains" not in data:
                raise ValueError(f"channel.trace_file: {path.name} has no 'gains' array [T, N, M]")
            return {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    if path.suffix == ".jsonl":
        rows: dict[tuple[int, int], dict] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rows.setdefault((rec.get("episode", 0), rec["round"]), rec)
        recs = [rows[k] for k in sorted(rows)]
        out = {"gains": np.array([r["gains"] for r in recs], dtype=np.float64)}
        if all("client_flops" in r for r in recs):
            out["client_flops"] = np.array([r["client_flops"] for r in recs], dtype=np.float64)
        if all("client_power_budget_w" in r for r in recs):
            out["client_power_budget_w"] = np.array([r["client_power_budget_w"] for r in recs], dtype=np.float64)
        return out
    raise ValueError(f"channel.trace_file: {path.name} must be .npz or .jsonl")


class TraceChannel:
    """Gains (and optionally device rates) replayed from a file: round t of every episode uses entry
    t mod T (episodes all start at entry 0, whatever their seed)."""

    def __init__(self, scenario: Scenario) -> None:
        self.trace = load_gain_trace(scenario.channel.trace_file)
        gains = self.trace["gains"]
        n, m = scenario.num_clients, scenario.num_subchannels
        if gains.ndim != 3 or gains.shape[1:] != (n, m) or gains.shape[0] == 0:
            raise ValueError(f"channel.trace_file: gains have shape {gains.shape}; expected "
                             f"[T, {n}, {m}] for this scenario")
        # Fail before any round runs (and before any output is written) rather than price NaN rounds.
        if not np.all(np.isfinite(gains)) or np.any(gains <= 0):
            raise ValueError("channel.trace_file: gains must be finite and > 0 (linear power gains)")
        for key in ("client_flops", "client_power_budget_w"):
            arr = self.trace.get(key)
            if arr is None:
                continue
            if arr.shape != (gains.shape[0], n):
                raise ValueError(f"channel.trace_file: {key} has shape {arr.shape}; expected "
                                 f"[{gains.shape[0]}, {n}] (one row per gains entry)")
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"channel.trace_file: {key} must be finite and > 0")
        self.length = gains.shape[0]
        self.t = 0

    def reset(self, rng: np.random.Generator, distance_m: np.ndarray, speed_mps: np.ndarray,
              initial_interval_s: float = 1.0) -> np.ndarray:
        self.t = -1
        return self.gains()

    @property
    def distance_m(self) -> np.ndarray | None:
        return None

    def gains(self) -> np.ndarray:
        return self.trace["gains"][self.t % self.length]

    def device_override(self, key: str) -> np.ndarray | None:
        arr = self.trace.get(key)
        return None if arr is None else arr[self.t % self.length]

    def step(self, interval_s: float) -> np.ndarray:
        self.t += 1
        return self.gains()


def make_channel(scenario: Scenario) -> GaussMarkovChannel | TraceChannel:
    """The channel component named by ``channel.kind``."""
    return TraceChannel(scenario) if scenario.channel.kind == "trace" else GaussMarkovChannel(scenario)
