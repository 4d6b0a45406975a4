"""PNG plots of per-method latencies and accuracy curves (matplotlib, Agg canvas; no pyplot state),
reusable by any command."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PHASE_LABELS = {
    "uplink_phase": "uplink phase (client FP + upload)",
    "server_compute": "server compute",
    "downlink_phase": "downlink phase (download + client BP)",
    "sync": "sync",
    "migration": "migration",
}


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_latency_bars(names: Sequence[str], means: Sequence[float], ci: Sequence[Sequence[float]] | None,
                      path: str | Path, ylabel: str = "round latency (s)", title: str = "") -> Path:
    """Bars of the mean per method with asymmetric CI error bars (``ci``: [lo, hi] per method)."""
    fig = _figure(max(4.0, 1.1 * len(names) + 2.0))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    means = np.asarray(means, dtype=np.float64)
    yerr = None
    if ci is not None:
        lo_hi = np.asarray(ci, dtype=np.float64)
        yerr = np.stack([np.maximum(means - lo_hi[:, 0], 0.0), np.maximum(lo_hi[:, 1] - means, 0.0)])
    ax.bar(x, means, yerr=yerr, capsize=4, color="#4c72b0")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_phases(names: Sequence[str], phase_means: Sequence[Mapping[str, float]], path: str | Path,
                ylabel: str = "mean time per round (s)", title: str = "") -> Path:
    """Stacked bars of the mean latency phases per method."""
    fig = _figure(max(4.0, 1.1 * len(names) + 3.5))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    keys = [k for k in PHASE_LABELS if any(pm.get(k, 0.0) > 0 for pm in phase_means)]
    for key in keys:
        vals = np.array([pm.get(key, 0.0) for pm in phase_means])
        ax.bar(x, vals, bottom=bottom, label=PHASE_LABELS[key])
        bottom += vals
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_cdf(samples: Mapping[str, np.ndarray], path: str | Path, xlabel: str = "round latency (s)",
             title: str = "", log_x: bool = False) -> Path:
    """Empirical CDF of each method's per-round samples."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, vals in samples.items():
        v = np.sort(np.asarray(vals, dtype=np.float64))
        if v.size:
            ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of rounds")
    if log_x:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_accuracy_vs_time(curves: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], path: str | Path,
                          target: float | None = None, title: str = "", xlabel: str = "simulated time (s)") -> Path:
    """Held-out accuracy against simulated time: one colour per method, one line per episode
    (``curves[name]``: dicts with ``sim_time_s`` and ``accuracy``), the target as a dashed line."""
    fig = _figure()
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for colour, (name, episodes) in zip(colours, curves.items()):
        for k, c in enumerate(episodes):
            ax.plot(c["sim_time_s"], c["accuracy"], color=colour, lw=1.2, alpha=0.85 if k == 0 else 0.45,
                    label=name if k == 0 else None)
    if target is not None:
        ax.axhline(target, color="0.3", ls="--", lw=1.0, label=f"target {target:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0.0, 1.0)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_benchmark(results: dict, per_round: Mapping[str, Mapping[str, np.ndarray]], out_dir: str | Path) -> list[Path]:
    """The three plots of a benchmark run: latency.png, phases.png and latency_cdf.png."""
    out = Path(out_dir)
    names = list(results["methods"])
    stats = [results["methods"][n] for n in names]
    title = results.get("scenario", {}).get("name", "")
    paths = [
        plot_latency_bars(names, [s["mean_latency_s"] for s in stats], [s["ci95_latency_s"] for s in stats],
                          out / "latency.png", title=title),
        plot_phases(names, [s.get("phases_mean_s", {}) for s in stats], out / "phases.png", title=title),
    ]
    lat = {n: per_round[n]["latency_s"] for n in names}
    spread = max(np.max(v) for v in lat.values()) / max(min(np.min(v) for v in lat.values()), 1e-12)
    paths.append(plot_cdf(lat, out / "latency_cdf.png", title=title, log_x=spread > 20))
    return paths
