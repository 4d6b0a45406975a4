"""Summary statistics and tables (markdown, CSV, JSON) of per-round latencies, reusable by any command.

``summarize_rounds`` turns per-round samples into the figures every table shows (mean, IQM, bootstrap
CI, median, p95, decision time, phase means); ``gap_summary`` states a method against a reference
(the oracle); ``markdown_table`` / ``csv_table`` render rows with a column spec;
``write_results`` writes the results.json / results.md / results.csv triple of a run.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from psl_env.system.latency import PHASES


# ---------------------------------------------------------------------------------------------------
# statistics

def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the samples (25% trimmed each side)."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        return float("nan")
    cut = int(np.floor(0.25 * x.size))
    middle = x[cut: x.size - cut]
    return float(middle.mean()) if middle.size else float(x.mean())


def bootstrap_ci(values: np.ndarray, strata: np.ndarray | None = None, seed: int = 0, num_resamples: int = 2000,
                 level: float = 0.95, statistic: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (or ``statistic`` applied along axis 1), seeded.

    With ``strata`` (e.g. episode ids) the samples are resampled within each stratum, so every
    resample keeps the episodes' weights. Rounds inside an episode are correlated (fading
    correlation, migration), which this ignores: read the interval as a lower bound on the uncertainty.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    strata = np.zeros(x.size, dtype=np.int64) if strata is None else np.asarray(strata).ravel()
    idx = np.empty((num_resamples, x.size), dtype=np.int64)
    col = 0
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        idx[:, col: col + members.size] = members[rng.integers(0, members.size, (num_resamples, members.size))]
        col += members.size
    samples = x[idx]
    stats = samples.mean(axis=1) if statistic is None else statistic(samples)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize_rounds(latency_s: np.ndarray, episode: np.ndarray | None = None, decision_ms: np.ndarray | None = None,
                     phases: dict[str, np.ndarray] | None = None, cut: np.ndarray | None = None,
                     seed: int = 0, num_resamples: int = 2000) -> dict[str, Any]:
    """The per-method figures of a benchmark table from per-round samples.

    Args:
        latency_s: [R] round latencies, s.
        episode: [R] episode id of each round (bootstrap strata).
        decision_ms: [R] decision time per round, ms.
        phases: phase name -> [R] seconds (means reported).
        cut: [R] or [R, N] cuts (mean reported).
        seed: bootstrap seed.
    """
    lat = np.asarray(latency_s, dtype=np.float64)
    out: dict[str, Any] = {
        "rounds": int(lat.size),
        "mean_latency_s": float(lat.mean()),
        "iqm_latency_s": iqm(lat),
        "ci95_latency_s": list(bootstrap_ci(lat, episode, seed, num_resamples)),
        "median_latency_s": float(np.median(lat)),
        "p95_latency_s": float(np.percentile(lat, 95)),
        "std_latency_s": float(lat.std()),
    }
    if decision_ms is not None:
        d = np.asarray(decision_ms, dtype=np.float64)
        out["decision_ms_mean"] = float(d.mean())
        out["decision_ms_p95"] = float(np.percentile(d, 95))
    if phases is not None:
        out["phases_mean_s"] = {k: float(np.mean(v)) for k, v in phases.items()}
    if cut is not None:
        out["mean_cut"] = float(np.mean(cut))
    return out


def gap_summary(latency_s: np.ndarray, reference_s: np.ndarray, tol: float = 1e-9) -> dict[str, float]:
    """Relative gap latency / reference - 1 per round: mean, median, p95, max and how many rounds
    came in below the reference (by more than ``tol``)."""
    gap = np.asarray(latency_s, dtype=np.float64) / np.asarray(reference_s, dtype=np.float64) - 1.0
    return {"mean": float(gap.mean()), "median": float(np.median(gap)), "p95": float(np.percentile(gap, 95)),
            "max": float(gap.max()), "rounds_below": int(np.count_nonzero(gap < -tol))}


# ---------------------------------------------------------------------------------------------------
# tables

@dataclass(frozen=True)
class Column:
    """One table column: ``key`` reads a row (dotted keys reach nested dicts), ``fmt`` renders it."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = "{}"

    def value(self, row: dict) -> Any:
        node: Any = row
        for part in self.key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def render(self, row: dict) -> str:
        v = self.value(row)
        if v is None:
            return ""
        return self.fmt(v) if callable(self.fmt) else self.fmt.format(v)


def markdown_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.render(row) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """The same rows as CSV with raw (unformatted) values; column names are the keys."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        values = []
        for c in columns:
            v = c.value(row)
            values.append("" if v is None else v)
        writer.writerow(values)
    return buf.getvalue()


def _ci(v: list) -> str:
    return f"[{v[0]:#.4g}, {v[1]:#.4g}]"


def _pct(v: float) -> str:
    return f"{100.0 * v:.2f}%"


def results_columns(with_gap: bool, with_hindsight: bool = False) -> list[Column]:
    """The columns of a benchmark results table (``with_gap``: the oracle ran; ``with_hindsight``: the
    hindsight figure was computed)."""
    cols = [
        Column("method", "method"),
        Column("mean_latency_s", "mean s", "{:#.4g}"),
        Column("iqm_latency_s", "IQM s", "{:#.4g}"),
        Column("ci95_latency_s", "95% CI s", _ci),
        Column("median_latency_s", "median s", "{:#.4g}"),
        Column("p95_latency_s", "p95 s", "{:#.4g}"),
        Column("decision_ms_mean", "decision ms", "{:.3g}"),
        Column("mean_cut", "mean cut", "{:.2f}"),
    ]
    cols += [Column(f"phases_mean_s.{p}", f"{p} s", "{:#.4g}") for p in PHASES]
    if with_gap:
        cols += [Column("gap_to_oracle.mean", "gap mean", _pct), Column("gap_to_oracle.median", "gap median", _pct),
                 Column("gap_to_oracle.p95", "gap p95", _pct),
                 Column("gap_to_oracle.rounds_below", "rounds below oracle", "{}")]
    if with_hindsight:
        cols += [Column("gap_to_hindsight.mean", "gap to hindsight", _pct),
                 Column("gap_to_hindsight.max", "worst episode", _pct)]
    return cols


def _table_columns(rows: list[dict]) -> list[Column]:
    return results_columns(any("gap_to_oracle" in r for r in rows), any("gap_to_hindsight" in r for r in rows))


def results_rows(results: dict) -> list[dict]:
    """One row per method of a results dict (``{"methods": {name: stats}}``)."""
    return [{"method": name, **stats} for name, stats in results["methods"].items()]


def results_markdown(results: dict, title: str = "Benchmark") -> str:
    rows = results_rows(results)
    head = [f"# {title}", ""]
    if "scenario" in results:
        s = results["scenario"]
        head.append(f"Scenario `{s.get('name')}`: N={s.get('num_clients')}, M={s.get('num_subchannels')}, "
                    f"model `{s.get('model')}`, scheme `{s.get('scheme')}`, phi={s.get('phi')}, "
                    f"batch {s.get('batch_size')}, CSI {s.get('csi')}.")
    if "episodes" in results:
        head.append(f"{results['episodes']} episode(s) x {results['rounds']} round(s), seed {results['seed']}; "
                    "latency per round in seconds, 95% CI by stratified bootstrap of the mean.")
    hind = results.get("hindsight")
    if hind is not None and "skipped" in hind:
        head.append(f"No hindsight figure: {hind['skipped']}.")
    elif hind is not None:
        what = ("a bound (exact inner minimum)" if hind["kind"] == "bound" else
                "a reference (inner minimum by the epsl-bcd solver, tightened by every method's rounds; not "
                "provably optimal)")
        head.append(f"Hindsight: the best common-cut sequence of each realized episode averages "
                    f"{results['hindsight_latency_s']:#.4g} s per round, {what}; the gap is each episode's total "
                    "over it, minus 1.")
    if "command" in results:
        head += ["", "```", results["command"], "```"]
    return "\n".join(head) + "\n\n" + markdown_table(rows, _table_columns(rows))


def results_csv(results: dict) -> str:
    rows = results_rows(results)
    return csv_table(rows, _table_columns(rows))


def write_results(results: dict, out_dir: str | Path, title: str = "Benchmark") -> list[Path]:
    """results.json, results.md and results.csv in ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "results.csv"]
    paths[0].write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    paths[1].write_text(results_markdown(results, title))
    paths[2].write_text(results_csv(results))
    return paths


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
