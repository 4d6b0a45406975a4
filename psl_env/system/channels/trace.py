"""Trace replay: gains (and optionally device rates) read from a file instead of sampled.

Round t of every episode uses entry t mod T of the trace (episodes all start at entry 0, whatever
their seed; the round before the first, shown by delayed CSI, is entry T - 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..scenario import Scenario
from ..state import Devices
from .base import Channel

DEVICE_KEYS = ("client_flops", "client_power_budget_w")


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


class TraceChannel(Channel):
    """``channel.kind: trace``: the gains of ``channel.trace_file`` (see the module docstring)."""

    name = "trace"
    latency_independent = True
    uses_rng = False

    def __init__(self, scenario: Scenario, num_envs: int, rngs: list, backend: str = "auto") -> None:
        super().__init__(scenario, num_envs, rngs, backend)
        self.trace = load_gain_trace(scenario.channel.trace_file)
        gains = self.trace["gains"]
        n, m = self.n, self.m
        if gains.ndim != 3 or gains.shape[1:] != (n, m) or gains.shape[0] == 0:
            raise ValueError(f"channel.trace_file: gains have shape {gains.shape}; expected "
                             f"[T, {n}, {m}] for this scenario")
        # Fail before any round runs (and before any output is written) rather than price NaN rounds.
        if not np.all(np.isfinite(gains)) or np.any(gains <= 0):
            raise ValueError("channel.trace_file: gains must be finite and > 0 (linear power gains)")
        for key in DEVICE_KEYS:
            arr = self.trace.get(key)
            if arr is None:
                continue
            if arr.shape != (gains.shape[0], n):
                raise ValueError(f"channel.trace_file: {key} has shape {arr.shape}; expected "
                                 f"[{gains.shape[0]}, {n}] (one row per gains entry)")
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"channel.trace_file: {key} must be finite and > 0")
        self.length = gains.shape[0]
        self.t = np.zeros(self.k, dtype=np.int64)

    def reset_env(self, i: int, devices: Devices) -> tuple[np.ndarray, np.ndarray]:
        gains = self.trace["gains"]
        self.t[i] = 0
        return gains[-1 % self.length], gains[0]

    def advance(self, latency_s: np.ndarray, active: np.ndarray | None, out: np.ndarray,
                start: int = 0, stop: int | None = None) -> None:
        self.t += 1 if active is None else active
        out[...] = self.trace["gains"][self.t % self.length]  # rows of envs not stepping are reset next

    def device_rates(self, active: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        t = self.t % self.length
        return tuple(None if self.trace.get(key) is None else self.trace[key][t] for key in DEVICE_KEYS)


__all__ = ["TraceChannel", "load_gain_trace"]
