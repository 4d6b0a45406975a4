"""Round traces: one JSON object per (round, method), enough to recompute the latency from a line alone.

The format is documented in ``docs/round-trace.md``; ``latency_from_record`` recomputes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import numpy as np

from ..models.profile import ModelProfile
from .latency import Latency, LatencyModel
from .scenario import build_scenario
from .state import Allocation, RoundState

TRACE_VERSION = 2
# What a version-1 line (written before these keys existed) was priced with.
_V1_DEFAULTS = {"noise_figure_server_db": 0.0, "noise_figure_client_db": 0.0, "se_cap_bps_per_hz": None,
                "snr_gap_db": 0.0, "small_scale": "per-round", "bits_per_element": 32, "round_structure": "phases"}


def trace_record(model: LatencyModel, state: RoundState, alloc: Allocation, latency: Latency, method: str,
                 extra: dict | None = None) -> dict:
    """The trace object of one round priced for one method (units in ``docs/round-trace.md``)."""
    s, p = model.scenario, model.profile
    rec = {
        "version": TRACE_VERSION,
        "round": int(state.round),
        "episode": int(state.episode),
        "method": method,
        "scheme": s.scheme,
        "phi": float(s.phi),
        "batch_size": s.batch_size,
        "subchannel_bw_hz": model.radio.bw_hz,
        "noise_psd_w_per_hz": model.radio.noise_psd_w_per_hz,
        "server_flops": model.tables.server_flops,
        "server_power_per_subchannel_w": model.radio.server_power_w,
        "downlink": s.downlink,
        "migration_enabled": model.tables.migration,
        "round_structure": s.round_structure,
        "bits_per_element": s.bits_per_element,
        "noise_figure_server_db": s.channel.noise_figure_server_db,
        "noise_figure_client_db": s.channel.noise_figure_client_db,
        "se_cap_bps_per_hz": s.channel.se_cap_bps_per_hz,
        "snr_gap_db": s.channel.snr_gap_db,
        "small_scale": s.channel.small_scale,
        "optimizer": s.training.optimizer,
        "client_flops": state.client_flops.tolist(),
        "client_power_budget_w": state.power_budget_w.tolist(),
        "client_memory_bytes": state.memory_bytes.tolist(),
        "gains": state.gains.tolist(),
        "observed_gains": state.observed_gains.tolist(),
        "profile": {
            "name": p.name,
            "fwd_flops": p.fwd_flops.tolist(),
            "bwd_flops": p.bwd_flops.tolist(),
            "act_bits": p.act_bits.tolist(),
            "grad_bits": p.grad_bits.tolist(),
            "param_bits": p.param_bits.tolist(),
            "act_mem_bytes": p.act_mem_bytes.tolist(),
            "bits_per_element": p.bits_per_element,
        },
        "cut": alloc.cut.tolist(),
        "prev_cut": None if state.prev_cut is None else np.asarray(state.prev_cut).tolist(),
        "owner": alloc.owner.tolist(),
        "power_w": alloc.power_w.tolist(),
        "sync": bool(state.sync),
        "latency_s": latency.phases(),
    }
    if extra:
        rec.update(extra)
    return rec


class RoundTraceWriter:
    """Appends trace records to a JSONL file (one line per record)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("w")

    def write(self, record: dict) -> None:
        assert self._fh is not None, "writer is closed"
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "RoundTraceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_trace(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def latency_from_record(rec: dict) -> Latency:
    """Recompute a record's latency from the record alone (no scenario file, no torch)."""
    gains = np.asarray(rec["gains"], dtype=np.float64)
    n, m = gains.shape
    prof = rec["profile"]
    num_blocks = len(prof["fwd_flops"]) - 1
    profile = ModelProfile(prof.get("name", "trace"), (1,), tuple(f"b{i}" for i in range(num_blocks)),
                           prof["fwd_flops"], prof["bwd_flops"], prof["act_bits"], prof["grad_bits"],
                           prof["param_bits"], prof.get("act_mem_bytes", np.zeros(num_blocks + 1)),
                           bits_per_element=prof.get("bits_per_element", 32), source="trace")
    get = {**_V1_DEFAULTS, **rec}.get
    noise_dbm = 10.0 * np.log10(rec["noise_psd_w_per_hz"]) + 30.0
    memory = rec.get("client_memory_bytes")
    scenario = build_scenario({
        "num_clients": n, "num_subchannels": m, "model": profile.name, "scheme": rec["scheme"],
        "phi": rec["phi"], "batch_size": rec["batch_size"], "downlink": rec["downlink"],
        "migration": rec.get("migration_enabled", True), "round_structure": get("round_structure"),
        "bits_per_element": get("bits_per_element"),
        "server": {"compute_flops": rec["server_flops"],
                   "power_per_subchannel_w": rec["server_power_per_subchannel_w"]},
        "channel": {"subchannel_bw_hz": rec["subchannel_bw_hz"], "noise_psd_dbm_per_hz": float(noise_dbm),
                    "noise_figure_server_db": get("noise_figure_server_db"),
                    "noise_figure_client_db": get("noise_figure_client_db"),
                    "se_cap_bps_per_hz": get("se_cap_bps_per_hz"), "snr_gap_db": get("snr_gap_db"),
                    "small_scale": get("small_scale")},
        "training": {"optimizer": rec.get("optimizer", "sgd")},
    })
    model = LatencyModel(scenario, profile, check_caps=False)
    prev = None if rec["prev_cut"] is None else np.asarray(rec["prev_cut"], dtype=np.int64)
    return model.price(gains, np.asarray(rec["client_flops"]), np.asarray(rec["cut"], dtype=np.int64),
                       np.asarray(rec["owner"], dtype=np.int64), np.asarray(rec["power_w"]), prev,
                       bool(rec["sync"]), memory_bytes=None if memory is None else np.asarray(memory)).scalar()
