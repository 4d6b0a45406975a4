"""Regime map of sequential scheduling: where the per-round optimizer falls short of the hindsight figure.

On ``dynamic-edge`` (docs/scenario.md) varied along four axes:

- the radio: 1 MHz subchannels as shipped (the devices' compute pins the best cut at 1, the
  shallowest), or 200 kHz, where with large batches activations cost enough against compute that
  the best cut is interior, so load and channel changes can move it;
- migration cost relative to a round: the batch size (16 as shipped, or 256: larger batches make
  rounds longer while a migration moves the same blocks);
- compute volatility: no background load, or the shipped load levels 100/50/10% with stay
  probability 0.9 (shipped) or 0.7;
- churn: leave probability 0 or 0.1 per round (shipped: 0.02; rejoin 0.2).

At each point ``psl bench`` runs, on the same seeded episodes, the shipped ``epsl-bcd`` (the
one-step migration-aware optimum), the migration-blind per-round optimum
(``epsl-bcd:migration_aware=false``), ``hysteresis``, ``mpc`` and the best fixed common cut (chosen
on training seeds 2000.., evaluated on seeds 0..), with ``--hindsight on``: every method's gap to
the best common-cut sequence of each realized episode (a reference: the inner minimum is the
epsl-bcd solver's, tightened by every method's rounds; agents/hindsight.py). Prints one table
row per point and writes ``OUT/regime_map.json``, ``OUT/regime_map.md`` and ``OUT/regime_map.png``.

    python benchmarks/bench_regime_map.py                 # smoke (make bench): 2 points, short episodes
    python benchmarks/bench_regime_map.py --full --out runs/regime-map   # docs/results.md (24 points)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from trainers.bench import run_benchmark  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from bench_best_cut import best_common_cut  # noqa: E402

SCENARIO = "dynamic-edge"
RADIO = {"1 MHz": [], "200 kHz": ["channel.subchannel_bw_hz=2e5"]}
BATCHES = (16, 256)
VOLATILITY = {"none": ["dynamics.load_levels=[1.0]"], "stay 0.9": ["dynamics.load_stay=0.9"],
              "stay 0.7": ["dynamics.load_stay=0.7"]}
CHURN = (0.0, 0.1)
METHODS = ("epsl-bcd", "epsl-bcd:migration_aware=false", "hysteresis", "mpc")
SELECT_SEED = 2000


def run_point(overrides: list[str], rounds: int, episodes: int, select_episodes: int) -> dict:
    cut, _ = best_common_cut(SCENARIO, overrides, rounds, select_episodes, SELECT_SEED)
    methods = [*METHODS, f"epsl-bcd:cut={cut}"]
    res = run_benchmark(SCENARIO, methods, rounds, episodes, seed=0, overrides=overrides, num_resamples=200,
                        hindsight="on")
    out = {"best_fixed_cut": cut, "hindsight_latency_s": res.get("hindsight_latency_s"),
           "hindsight_kind": res["hindsight"].get("kind"), "methods": {}}
    for name in methods:
        m = res["methods"][name]
        key = "best fixed cut" if name == f"epsl-bcd:cut={cut}" else name
        out["methods"][key] = {"mean_latency_s": m["mean_latency_s"], "gap_to_hindsight": m["gap_to_hindsight"]["mean"],
                               "decision_ms": m["decision_ms_mean"],
                               "migration_share": m["phases_mean_s"]["migration"] / m["mean_latency_s"]}
    return out


def markdown(points: list[dict]) -> str:
    names = list(points[0]["methods"])
    head = ("| radio | batch | load | churn | hindsight s | " + " | ".join(f"{n} gap" for n in names)
            + " | epsl-bcd migration share |")
    rows = [head, "|" + "---|" * (len(names) + 6)]
    for p in points:
        gaps = " | ".join(f"{100 * p['methods'][n]['gap_to_hindsight']:+.2f}%" for n in names)
        rows.append(f"| {p['radio']} | {p['batch']} | {p['load']} | {p['churn']} | {p['hindsight_latency_s']:.4g} | {gaps} | "
                    f"{100 * p['methods']['epsl-bcd']['migration_share']:.2f}% |")
    return "\n".join(rows) + "\n"


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    churns = sorted({p["churn"] for p in points})
    loads = list(dict.fromkeys(p["load"] for p in points))
    batches = list(dict.fromkeys((p["radio"], p["batch"]) for p in points))
    fig, axes = plt.subplots(1, len(churns), figsize=(4.2 * len(churns), 3.6), squeeze=False)
    vmax = max(100 * p["methods"]["epsl-bcd"]["gap_to_hindsight"] for p in points) or 1.0
    for ax, churn in zip(axes[0], churns):
        grid = np.full((len(batches), len(loads)), np.nan)
        for p in points:
            if p["churn"] == churn:
                grid[batches.index((p["radio"], p["batch"])), loads.index(p["load"])] = 100 * p["methods"]["epsl-bcd"]["gap_to_hindsight"]
        im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}%", ha="center", va="center", color="w" if v < 0.6 * vmax else "k", fontsize=8)
        ax.set_xticks(range(len(loads)), loads, fontsize=8)
        first = ax is axes[0][0]
        ax.set_yticks(range(len(batches)), [f"{r}, b={b}" for r, b in batches] if first else [], fontsize=7)
        ax.set_title(f"churn leave {churn}")
        ax.set_xlabel("background load")
    fig.colorbar(im, ax=axes[0].tolist(), label="epsl-bcd gap to hindsight, %")
    fig.suptitle(f"{SCENARIO}: myopic epsl-bcd above the best cut sequence in hindsight", y=1.04)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the docs grid: 24 points, 2 episodes x 60 rounds")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--episodes", type=int, default=None, help="evaluation episodes per point")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per episode")
    args = ap.parse_args(argv)
    if args.full:
        grid = list(itertools.product(RADIO, BATCHES, VOLATILITY, CHURN))
        episodes, rounds, select = args.episodes or 2, args.rounds or 60, 2
    else:
        grid = [("1 MHz", 16, "stay 0.9", 0.02), ("200 kHz", 256, "stay 0.7", 0.1)]
        episodes, rounds, select = args.episodes or 1, args.rounds or 8, 1
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="regime-map-"))
    out.mkdir(parents=True, exist_ok=True)
    # points already in OUT (same episodes and rounds) are kept: an interrupted run continues
    done_file = out / "regime_map.json"
    done = {}
    if done_file.exists():
        old = json.loads(done_file.read_text())
        if (old.get("episodes"), old.get("rounds")) == (episodes, rounds):
            done = {(p["radio"], p["batch"], p["load"], p["churn"]): p for p in old["points"]}
    points = []
    t0 = time.perf_counter()
    for radio, batch, load, churn in grid:
        if (radio, batch, load, churn) in done:
            points.append(done[(radio, batch, load, churn)])
            continue
        overrides = [*RADIO[radio], f"batch_size={batch}", *VOLATILITY[load], f"dynamics.churn_leave={churn}"]
        point = {"radio": radio, "batch": batch, "load": load, "churn": churn, "overrides": overrides,
                 **run_point(overrides, rounds, episodes, select)}
        points.append(point)
        m = point["methods"]
        print(f"{radio:<21} b={batch:>3} load={load:<9} churn={churn:<4}  hindsight {point['hindsight_latency_s']:.4g} s  "
              + "  ".join(f"{n}: {100 * v['gap_to_hindsight']:+.2f}%" for n, v in m.items()), flush=True)
        partial = {"episodes": episodes, "rounds": rounds, "points": points}
        done_file.write_text(json.dumps(partial, indent=1) + "\n")
    summary = {"scenario": SCENARIO, "episodes": episodes, "rounds": rounds, "evaluation_seeds": list(range(episodes)),
               "selection_seeds": list(range(SELECT_SEED, SELECT_SEED + select)), "points": points,
               "wall_s": time.perf_counter() - t0}
    (out / "regime_map.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "regime_map.md").write_text(markdown(points))
    plot(points, out / "regime_map.png")
    print(markdown(points))
    print(f"wrote {out}/regime_map.json, regime_map.md, regime_map.png ({summary['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
