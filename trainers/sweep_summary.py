"""The summary of a sweep: per configuration, the IQM and bootstrap CI over seeds of the evaluation
gap to ``epsl-bcd``; results.md / results.json / results.csv, gap.png, and the best configuration
written back as a Zoo-style agent config (``best.yaml``).

Scoring: a trial's score is its last evaluation during training (``psl train``'s evaluation
episodes, seeded 10000..; the gap is the policy's mean latency over those rounds / ``epsl-bcd``'s
- 1). A configuration is ranked only if every seed finished its budget (``done``); trials stopped
early, failed or not run are listed with their status and error, never averaged in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .report import Column, _json_default, bootstrap_ci, csv_table, iqm, markdown_table
from .sweep_spec import SweepSpec, override_items
from .sweep_trial import final_eval

NUM_RESAMPLES = 5000


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each bootstrap resample (rows)."""
    return np.apply_along_axis(iqm, 1, samples)


def _pct(value: float) -> str:
    return f"{100.0 * value:+.2f}%"


def _ci_pct(value: list) -> str:
    return f"[{100.0 * value[0]:+.2f}%, {100.0 * value[1]:+.2f}%]"


def _params(value: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items()) or "(base config)"


COLUMNS = [
    Column("config_id", "config"),
    Column("params", "parameters", _params),
    Column("seeds_done", "seeds done", "{}"),
    Column("gap_iqm", "gap to epsl-bcd (IQM)", _pct),
    Column("gap_ci95", "gap 95% CI", _ci_pct),
    Column("latency_iqm_s", "IQM latency s", "{:#.4g}"),
    Column("epsl_bcd_latency_s", "epsl-bcd s", "{:#.4g}"),
    Column("status", "status"),
]


def config_rows(spec: SweepSpec, statuses: dict[str, dict | None]) -> list[dict]:
    """One row per configuration (ranked first, by IQM gap; then the incomplete ones)."""
    rows = []
    for config in spec.configs:
        trials = {s: statuses.get(f"{config['config_id']}-s{s}") for s in spec.seeds}
        done = {s: st for s, st in trials.items() if st and st["status"] == "done" and final_eval(st)}
        counts: dict[str, int] = {}
        for st in trials.values():
            key = st["status"] if st else "pending"
            counts[key] = counts.get(key, 0) + 1
        row: dict[str, Any] = {"config_id": config["config_id"], "params": config["params"],
                               "seeds_done": len(done), "status": ", ".join(f"{n} {k}" for k, n in counts.items())}
        if done:
            gaps = np.array([final_eval(st)["gap_to_epsl-bcd"] for st in done.values()])
            lat = np.array([final_eval(st)["latency_s"] for st in done.values()])
            row.update(per_seed_gap={str(s): float(g) for s, g in zip(done, gaps)}, gap_iqm=iqm(gaps),
                       gap_ci95=list(bootstrap_ci(gaps, num_resamples=NUM_RESAMPLES, statistic=_iqm_rows)),
                       latency_iqm_s=iqm(lat),
                       latency_ci95_s=list(bootstrap_ci(lat, num_resamples=NUM_RESAMPLES, statistic=_iqm_rows)),
                       epsl_bcd_latency_s=float(np.mean([final_eval(st)["epsl-bcd_latency_s"]
                                                         for st in done.values()])))
        row["complete"] = len(done) == len(spec.seeds)
        rows.append(row)
    return sorted(rows, key=lambda r: (not r["complete"], r.get("gap_iqm", np.inf)))


def best_config(spec: SweepSpec, row: dict) -> dict:
    """The Zoo-style agent config of a configuration: the base config with the sweep's fixed and
    searched values applied, ``n_timesteps`` = the sweep's budget."""
    from .sb3_env import ALGOS, apply_overrides, build_agent_config, read_config_file  # noqa: PLC0415

    entry, algo = read_config_file(spec.agent)
    items = override_items(spec.hyperparams) + override_items(row["params"])
    if spec.timesteps:
        items.append(f"n_timesteps={spec.timesteps}")
    cfg = build_agent_config(apply_overrides(entry, items), algo if algo in ALGOS else None)
    return cfg.to_dict()


def failures(spec: SweepSpec, statuses: dict[str, dict | None]) -> list[dict]:
    """Every trial that did not finish: id, status and (for a failed one) its error."""
    out = []
    for trial in spec.trials():
        st = statuses.get(trial.trial_id)
        if st is None or st["status"] not in ("done",):
            out.append({"trial_id": trial.trial_id, "status": st["status"] if st else "pending",
                        "error": (st or {}).get("error", "")})
    return out


def _markdown(spec: SweepSpec, rows: list[dict], failed: list[dict], best: dict | None, command: str) -> str:
    lines = [f"# Sweep `{spec.name}`", "",
             f"Agent config `{Path(spec.agent).name}`, scenario `{spec.scenario or '(the config default)'}`"
             + (f" with {', '.join(spec.overrides)}" if spec.overrides else "")
             + f", {spec.timesteps or 'the config n_timesteps'} steps per trial, seeds {spec.seeds}. "
             "Score: the last evaluation during training (evaluation episodes seeded 10000..), gap = policy mean "
             "latency / epsl-bcd mean latency - 1 per seed; IQM over seeds and 95% percentile bootstrap CI of the "
             f"IQM over seeds ({NUM_RESAMPLES} resamples). Ranked: configurations with every seed done.", "",
             "```", command, "```", "", markdown_table(rows, COLUMNS)]
    if best is not None:
        lines += [f"Best: `{best['config_id']}` ({_params(best['params'])}), gap {_pct(best['gap_iqm'])} "
                  f"(CI {_ci_pct(best['gap_ci95'])}); written to `best.yaml`.", ""]
    else:
        lines += ["Best: none (no configuration has every seed done).", ""]
    if failed:
        lines += ["## Trials not done", "", "| trial | status | error |", "|---|---|---|"]
        lines += [f"| {f['trial_id']} | {f['status']} | {f['error'].replace('|', '/')} |" for f in failed]
        lines.append("")
    return "\n".join(lines)


def write_summary(spec: SweepSpec, statuses: dict[str, dict | None], out: Path, command: str,
                  seconds: float | None = None) -> dict:
    """results.json / .md / .csv, gap.png and (if a configuration is complete) best.yaml in ``out``."""
    from .plots import plot_latency_bars  # noqa: PLC0415
    from .run_folder import write_atomic  # noqa: PLC0415

    rows = config_rows(spec, statuses)
    failed = failures(spec, statuses)
    ranked = [r for r in rows if r["complete"]]
    best = ranked[0] if ranked else None
    kept = ("status", "seed", "config_id", "evals", "seconds", "error", "numba_cache")
    results = {"sweep": spec.to_dict(), "command": command, "configs": rows, "not_done": failed,
               "best": best["config_id"] if best else None, "seconds": seconds,
               "trials": {k: {key: v[key] for key in kept if key in v} for k, v in statuses.items() if v}}
    texts = {"results.json": json.dumps(results, indent=1, default=_json_default) + "\n",
             "results.md": _markdown(spec, rows, failed, best, command),
             "results.csv": csv_table(rows, COLUMNS[:1] + [Column("params", "params", json.dumps)] + COLUMNS[2:])}
    if best is not None:
        header = (f"# The best configuration of sweep {spec.name} ({best['config_id']}: {_params(best['params'])}),\n"
                  f"# evaluation gap to epsl-bcd {_pct(best['gap_iqm'])} (IQM over {best['seeds_done']} seeds).\n"
                  "# psl train --config best.yaml; rl_zoo3 reads the env id's entry.\n")
        texts["best.yaml"] = header + yaml.safe_dump(best_config(spec, best), sort_keys=False)
    for name, text in texts.items():
        write_atomic(out / name, lambda tmp, t=text: tmp.write_text(t))
    if ranked:
        plot_latency_bars([r["config_id"] for r in ranked], [100.0 * r["gap_iqm"] for r in ranked],
                          [[100.0 * v for v in r["gap_ci95"]] for r in ranked], out / "gap.png",
                          ylabel="gap to epsl-bcd (%), IQM over seeds", title=f"sweep {spec.name}")
    return results


__all__ = ["best_config", "config_rows", "failures", "write_summary"]
