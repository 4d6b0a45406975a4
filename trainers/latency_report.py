"""``psl latency``: the round latency of reference allocations on a scenario, phase by phase.

The reference allocations need no optimizer: every common cut with round-robin subchannels and
equal power, the middle one being the ``fixed`` "no optimization" reference. Writes
``report.json``, ``report.md`` and ``latency_by_cut.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from psl_env.system.allocation import equal_power, make_allocation, middle_cut, round_robin_owner
from psl_env.system.latency import PHASES
from psl_env.system.scenario import Scenario, load_scenario
from psl_env.system.simulator import NetworkSimulator

from .cli import UsageError, add_scenario_arguments
from .paths import check_out_dir, make_out_dir

MAX_ROUNDS = 10**5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scenario_arguments(parser)
    parser.add_argument("--rounds", type=int, default=50, help="rounds to average over (default 50)")
    parser.add_argument("--out", default="runs/latency", help="output folder (default runs/latency)")


def reference_latencies(scenario: Scenario, rounds: int) -> dict:
    """Mean phases per common cut with round-robin subchannels and equal power, over ``rounds`` rounds.

    Each cut is priced on the same rounds (one channel realisation, advanced as the middle-cut
    reference would advance it), in steady state: the cut is kept, so no migration is charged.
    """
    sim = NetworkSimulator(scenario)
    model = sim.latency_model
    cuts = sim.profile.cut_candidates
    state = sim.reset(scenario.seed)
    owner = round_robin_owner(scenario.num_clients, scenario.num_subchannels)
    phases = {int(c): {k: [] for k in ("total", *PHASES)} for c in cuts}
    mid = middle_cut(sim.profile.num_blocks)
    for _ in range(rounds):
        power = equal_power(owner, state.power_budget_w)
        mid_total = None
        for c in cuts:
            # Steady state: the cut is kept from round to round, so no migration is charged.
            steady = dataclasses.replace(state, prev_cut=np.full(scenario.num_clients, int(c)))
            lat = model.evaluate(steady, make_allocation(int(c), owner, power, scenario.num_clients))
            for k, v in lat.phases().items():
                phases[int(c)][k].append(v)
            if c == mid:
                mid_total = lat.total
        state = sim.advance(np.full(scenario.num_clients, mid), mid_total)
    return {c: {k: float(np.mean(v)) for k, v in ph.items()} for c, ph in phases.items()}


def _markdown(scenario: Scenario, table: dict, mid: int, best: int) -> str:
    lines = [f"# Reference latency: scenario `{scenario.name}`", "",
             f"model `{scenario.model}`, scheme `{scenario.scheme}` (phi={scenario.phi:g}), N={scenario.num_clients}, "
             f"M={scenario.num_subchannels}, batch {scenario.batch_size}, CSI {scenario.csi}.",
             "Round-robin subchannels, equal power; mean over rounds, seconds.", "",
             "| cut | total | uplink_phase | server_compute | downlink_phase | sync | migration | note |",
             "|---|---|---|---|---|---|---|---|"]
    for c, ph in table.items():
        note = " ".join(n for n, hit in (("fixed (middle cut)", c == mid), ("best common cut", c == best)) if hit)
        lines.append(f"| {c} | {ph['total']:.4f} | " + " | ".join(f"{ph[k]:.4f}" for k in PHASES) + f" | {note} |")
    return "\n".join(lines) + "\n"


def _plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = list(table)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bottom = np.zeros(len(cuts))
    for k in PHASES:
        vals = np.array([table[c][k] for c in cuts])
        ax.bar([str(c) for c in cuts], vals, bottom=bottom, label=k)
        bottom += vals
    ax.set_xlabel("common cut (blocks on the client)")
    ax.set_ylabel("round latency (s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.rounds <= MAX_ROUNDS:
        raise UsageError(f"--rounds: {args.rounds} is out of range; allowed: an integer in [1, {MAX_ROUNDS}]")
    scenario = load_scenario(args.scenario, args.overrides)
    check_out_dir(args.out)
    table = reference_latencies(scenario, args.rounds)
    mid = middle_cut(max(table) + 1)
    best = min(table, key=lambda c: table[c]["total"])
    out = make_out_dir(args.out)
    report = {"scenario": scenario.to_dict(), "rounds": args.rounds, "by_cut": table, "fixed_cut": mid,
              "best_common_cut": best}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    md = _markdown(scenario, table, mid, best)
    (out / "report.md").write_text(md)
    _plot(table, out / "latency_by_cut.png")
    print(md)
    print(f"report: {out / 'report.md'} (JSON: {out / 'report.json'}, plot: {out / 'latency_by_cut.png'})")
    return 0
