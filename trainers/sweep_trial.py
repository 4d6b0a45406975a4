"""One trial of ``psl sweep``: ``psl train``'s own code path (``train.prepare`` + ``train.train``) on one
configuration and seed, and the trial's status file.

The trial runs wherever the scheduler puts it (a Ray worker, or this process), so everything it
needs is in its plain-data description: absolute paths, the agent-config overrides as ``key=value``
strings (read back exactly as ``psl train --hyperparams`` reads them), the seed and the budget.

Status files (``SWEEP/status/TRIAL.json``, replaced atomically) say where each trial is:
``running`` (with the evaluations so far), ``done``, ``stopped`` (early stopping or the time
budget) or ``error`` (with the error). A re-run skips ``done`` trials, and ``stopped`` ones
when the sweep uses early stopping; any other trial starts again from an empty run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from psl_env.config_files import clip

FINISHED = ("done", "stopped")
GAP_KEY = "gap_to_epsl-bcd"  # the evaluation's gap column (trainers.callbacks.EVAL_BASELINES)


def read_status(path: Path) -> dict | None:
    """A trial's status, or None if it has none (or an unreadable one: the trial runs again)."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and "status" in status else None


def write_status(path: Path, status: dict) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    from .run_folder import write_atomic  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(status, indent=1) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def train_arguments(job: dict) -> argparse.Namespace:
    """The ``psl train`` command line of a trial, as the namespace its parser would give."""
    return argparse.Namespace(
        config=job["agent"], scenario=job["scenario"], overrides=list(job["set"]),
        hyperparams=list(job["hyperparams"]), timesteps=job["timesteps"], seed=job["seed"], out=job["out"],
        resume=None, eval_freq=None, checkpoint_freq=None, device="cpu", threads=1, progress=False, verbose=0)


def train_command(job: dict) -> str:
    """The equivalent ``psl train`` command (stored in the run folder's config.yaml)."""
    words = ["psl", "train", "--config", job["agent"]]
    if job["scenario"]:
        words += ["--scenario", job["scenario"]]
    for item in job["set"]:
        words += ["--set", item]
    for item in job["hyperparams"]:
        words += ["--hyperparams", item]
    if job["timesteps"]:
        words += ["--timesteps", str(job["timesteps"])]
    return shlex.join(words + ["--seed", str(job["seed"]), "--out", job["out"], "--threads", "1"])


def _fresh_run_folder(out: Path) -> None:
    """An unfinished trial's folder is emptied (a run folder must be empty to start), unless another
    process holds it: then this trial fails naming that process."""
    from .run_folder import check_not_in_use  # noqa: PLC0415

    if out.exists():
        check_not_in_use(out)
        shutil.rmtree(out)


def run_trial(job: dict, report: Callable[[dict], None] | None = None) -> dict:
    """Train one trial; returns its final status (also written to ``job["status"]``).

    Args:
        job: ``trial_id``, ``config_id``, ``seed``, ``params``, and the ``psl train`` inputs ``agent``,
            ``scenario``, ``set``, ``hyperparams`` (``key=value`` strings), ``timesteps``, ``out`` (the
            run folder) and ``status`` (the status file), paths absolute.
        report: called with ``{"timesteps", "gap", "latency_s"}`` after each evaluation (Ray Tune's
            ``tune.report`` in a sweep; the early-stopping scheduler reads it).

    Raises:
        Exception: whatever training raised, after the error was written to the status file.
    """
    import torch  # noqa: PLC0415

    from . import train  # noqa: PLC0415

    torch.set_num_threads(1)  # one core per trial: the scheduler runs as many trials as cores
    status_path, out = Path(job["status"]), Path(job["out"])
    base = {k: job[k] for k in ("trial_id", "config_id", "seed", "params")}
    base["command"] = train_command(job)
    evals: list[dict] = []
    budget = {"timesteps": None}
    t0 = time.perf_counter()

    def on_eval(row: dict) -> None:
        evals.append(row)
        write_status(status_path, {**base, "status": "running", "evals": evals,
                                   "seconds": time.perf_counter() - t0})
        # the evaluation at the end of the budget is not reported: a scheduler could stop the trial
        # there, before its final policy is saved; the summary reads it from the status file
        if report is not None and int(row["timesteps"]) < budget["timesteps"]:
            report({"timesteps": int(row["timesteps"]), "gap": float(row[GAP_KEY]),
                    "latency_s": float(row["latency_s"])})

    try:
        _fresh_run_folder(out)
        write_status(status_path, {**base, "status": "running", "evals": [], "seconds": 0.0})
        plan = train.prepare(train_arguments(job))
        budget["timesteps"] = plan["timesteps"]
        model = train.train(plan, progress=False, command=base["command"], on_eval=on_eval)
    except SystemExit as err:
        if err.code not in (0, None):
            raise
        # the scheduler stopped the trial early (Ray Tune ends its thread with sys.exit(0))
        write_status(status_path, {**base, "status": "stopped", "evals": evals, "seconds": time.perf_counter() - t0})
        raise
    except Exception as err:
        message = " ".join(f"{type(err).__name__}: {err}".split())
        status = {**base, "status": "error", "error": clip(message, 500), "evals": evals,
                  "traceback": traceback.format_exc()[-4000:], "seconds": time.perf_counter() - t0}
        write_status(status_path, status)
        raise
    status = {**base, "status": "done", "evals": evals, "steps": int(model.num_timesteps),
              "seconds": time.perf_counter() - t0, "numba_cache": os.environ.get("NUMBA_CACHE_DIR")}
    write_status(status_path, status)
    return status


def final_eval(status: dict[str, Any]) -> dict | None:
    """The last evaluation of a trial (the score of a finished one), or None."""
    evals = status.get("evals") or []
    return evals[-1] if evals else None


__all__ = ["FINISHED", "GAP_KEY", "final_eval", "read_status", "run_trial", "train_arguments", "train_command",
           "write_status"]
