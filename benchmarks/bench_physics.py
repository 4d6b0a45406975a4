"""Radio and phase figures of a ``psl bench --trace`` run: per-subchannel SNR, spectral efficiency,
the share of subchannels at the spectral-efficiency cap, and per-phase latency shares.

From ``DIR/trace.jsonl`` (every constant is read from the trace lines, docs/round-trace.md), for each
method and each used subchannel m of every round (owner i = owner[m]):

- uplink SNR = power_w[m] gains[i][m] / (N0 W F_s Gamma), with F_s the server's noise figure and
  Gamma the SNR gap; uplink spectral efficiency min(log2(1 + SNR), C) (``small_scale: per-round``)
  or the ergodic E[min(log2(1 + SNR |h|^2), C)] at the large-scale SNR (``averaged``);
- downlink SNR on the same subchannel = Ps gains[i][m] / (N0 W F_c Gamma) (F_c: the client's noise
  figure) and its spectral efficiency;
- "unpowered": used subchannels that water-filling leaves at zero power (their SE is 0; the SNR
  percentiles are over the powered ones, the SE percentiles over all);
- "at cap": log2(1 + SNR) >= C (to a relative 1e-9): the share of subchannels whose per-round (or,
  in ``averaged`` mode, large-scale) SNR reaches the cap's 2^C - 1 (the ergodic rate stays below C).

The phase shares come from ``DIR/results.json``: each phase's mean over the run's rounds as a
share of the mean round latency (uplink, server, downlink, sync, migration; they add up to 100%).
With ``round_structure: phases``, every trace line is also recomputed (``latency_from_record``) to
split the two client phases at their bottleneck client into client compute and transfer time
(``--no-split`` skips it). ``--check K`` recomputes the latency of K trace lines per method from
the line alone and prints the largest relative difference to the recorded total.

    psl bench --scenario epsl-resnet18 --methods epsl-bcd,fixed --episodes 5 --out runs/x --trace
    python benchmarks/bench_physics.py runs/x

Without a run folder it first benches ``--scenario`` (default ``epsl-resnet18``, with ``--set``
overrides) with epsl-bcd and fixed over 5 x 100 rounds from seed 0 in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from psl_env.system.fading import ergodic_se  # noqa: E402
from psl_env.system.latency import PHASES  # noqa: E402
from psl_env.system.trace import latency_from_record  # noqa: E402
from trainers.bench import run_benchmark  # noqa: E402

CAP_TOL = 1e-9  # capped water-filling sets a subchannel's power to reach the cap, to rounding
PHASE_LABELS = {"uplink_phase": "uplink", "server_compute": "server", "downlink_phase": "downlink",
                "sync": "sync", "migration": "migration"}


def _se(snr: np.ndarray, cap: float, averaged: bool) -> np.ndarray:
    if averaged:
        return ergodic_se(snr, cap)
    return np.minimum(np.log2(1.0 + snr), cap)


def link_samples(records: list[dict]) -> dict[str, np.ndarray]:
    """Per used subchannel of every record: uplink and downlink SNR (linear) and spectral efficiency."""
    out = defaultdict(list)
    for rec in records:
        gains = np.asarray(rec["gains"], dtype=np.float64)
        owner = np.asarray(rec["owner"], dtype=np.int64)
        power = np.asarray(rec["power_w"], dtype=np.float64)
        used = np.flatnonzero(owner >= 0)
        g = gains[owner[used], used]
        thermal = rec["noise_psd_w_per_hz"] * rec["subchannel_bw_hz"]
        gap = 10.0 ** (rec.get("snr_gap_db", 0.0) / 10.0)
        up_noise = thermal * 10.0 ** (rec.get("noise_figure_server_db", 0.0) / 10.0) * gap
        dn_noise = thermal * 10.0 ** (rec.get("noise_figure_client_db", 0.0) / 10.0) * gap
        cap = rec.get("se_cap_bps_per_hz")
        cap = np.inf if cap is None else float(cap)
        averaged = rec.get("small_scale", "per-round") == "averaged"
        up = power[used] * g / up_noise
        dn = rec["server_power_per_subchannel_w"] * g / dn_noise
        out["up_snr"].append(up)
        out["dn_snr"].append(dn)
        out["up_se"].append(_se(up, cap, averaged))
        out["dn_se"].append(_se(dn, cap, averaged))
        out["up_at_cap"].append(np.log2(1.0 + up) >= cap * (1.0 - CAP_TOL))
        out["dn_at_cap"].append(np.log2(1.0 + dn) >= cap * (1.0 - CAP_TOL))
    return {k: np.concatenate(v) for k, v in out.items()}


def _pct(x: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.percentile(x, [10, 50, 90]))


def _fmt(values: tuple[float, ...], digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default=None,
                    help="a psl bench output folder written with --trace (default: bench --scenario first)")
    ap.add_argument("--scenario", default="epsl-resnet18",
                    help="without RUN: bench this scenario (epsl-bcd and fixed, 5 x 100 rounds, seed 0) first")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario overrides of that bench (without RUN)")
    ap.add_argument("--methods", default=None, help="comma-separated methods (default: every method in the trace)")
    ap.add_argument("--no-split", dest="split", action="store_false",
                    help="skip the compute / transfer split (it recomputes every trace line, ~2 ms each)")
    ap.add_argument("--check", type=int, default=10, help="trace lines per method recomputed from the line alone")
    args = ap.parse_args(argv)
    if args.run is None:
        with tempfile.TemporaryDirectory() as tmp:
            run_benchmark(args.scenario, ["epsl-bcd", "fixed"], 100, 5, 0, tmp, trace=True, overrides=args.overrides)
            return report(Path(tmp), args)
    return report(Path(args.run), args)


def report(run: Path, args: argparse.Namespace) -> int:
    """Print the figures of the bench run in ``run``."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    with (run / "trace.jsonl").open() as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                by_method[rec["method"]].append(rec)
    methods = args.methods.split(",") if args.methods else list(by_method)
    results = json.loads((run / "results.json").read_text())
    first = by_method[methods[0]][0]
    print(f"run {run}: {results.get('command', '')}")
    cap = first.get("se_cap_bps_per_hz")
    print(f"radio: W {first['subchannel_bw_hz'] / 1e6:g} MHz, N0 {10 * np.log10(first['noise_psd_w_per_hz']) + 30:.1f} "
          f"dBm/Hz, NF server {first.get('noise_figure_server_db', 0.0):g} dB / client "
          f"{first.get('noise_figure_client_db', 0.0):g} dB, SNR gap {first.get('snr_gap_db', 0.0):g} dB, cap "
          f"{'none' if cap is None else f'{cap:g} bit/s/Hz'}, small_scale {first.get('small_scale', 'per-round')}, "
          f"{first.get('bits_per_element', 32)} bits per element")

    print("\nper used subchannel (p10 / median / p90)")
    print("| method | subchannels | unpowered | uplink SNR dB | uplink SE bit/s/Hz | uplink at cap | downlink SNR dB "
          "| downlink SE bit/s/Hz | downlink at cap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in methods:
        s = link_samples(by_method[name])
        powered = s["up_snr"] > 0
        up_db = _pct(10.0 * np.log10(s["up_snr"][powered]))
        dn_db = _pct(10.0 * np.log10(s["dn_snr"]))
        cells = [str(s["up_snr"].size), f"{100 * (1 - powered.mean()):.1f}%", _fmt(up_db, 1), _fmt(_pct(s["up_se"]), 2),
                 f"{100 * s['up_at_cap'].mean():.1f}%", _fmt(dn_db, 1), _fmt(_pct(s["dn_se"]), 2),
                 f"{100 * s['dn_at_cap'].mean():.1f}%"]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nphase shares of the mean round latency")
    print("| method | mean s | " + " | ".join(PHASE_LABELS[p] for p in PHASES) + " |")
    print("|---|---|" + "---|" * len(PHASES))
    for name in methods:
        st = results["methods"][name]
        total = st["mean_latency_s"]
        shares = [100.0 * st["phases_mean_s"][p] / total for p in PHASES]
        print(f"| {name} | {total:.4g} | " + " | ".join(f"{v:.1f}%" for v in shares) + " |")

    if first.get("round_structure", "phases") == "phases" and args.split:
        print("\nthe two client phases split at their bottleneck client (recomputed from every trace line): "
              "share of the mean round latency")
        print("| method | client compute (fwd + bwd) | transfer (up + down) | server | sync + migration |")
        print("|---|---|---|---|---|")
        for name in methods:
            acc = np.zeros(4)
            for rec in by_method[name]:
                lat = latency_from_record(rec)
                i_up = int(np.argmax(lat.client_fwd_s + lat.uplink_s))
                i_dn = int(np.argmax(lat.downlink_s + lat.client_bwd_s))
                acc += (lat.client_fwd_s[i_up] + lat.client_bwd_s[i_dn], lat.uplink_s[i_up] + lat.downlink_s[i_dn],
                        lat.server_compute, lat.sync + lat.migration)
            print(f"| {name} | " + " | ".join(f"{100 * v / acc.sum():.1f}%" for v in acc) + " |")

    if args.check > 0:
        worst = 0.0
        for name in methods:
            for rec in by_method[name][: args.check]:
                lat = latency_from_record(rec)
                worst = max(worst, abs(lat.total / rec["latency_s"]["total"] - 1.0))
        print(f"\nrecomputed {args.check} trace lines per method from the line alone: largest relative "
              f"difference {worst:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
