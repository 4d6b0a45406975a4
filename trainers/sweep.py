"""``psl sweep``: hyperparameter sweeps of an agent config on Ray Tune (``pip install 'psl-gym[ray]'``).

::

    psl sweep SWEEP [--out DIR] [--num-cpus N | --address ADDR] [--max-concurrent N]
              [--time-budget S] [--sequential] [--summary-only]

``SWEEP`` is a sweep file (``trainers.sweep_spec`` describes it) or a shipped one
(``configs/sweeps/``). Every trial is ``psl train``'s own code path (``trainers.sweep_trial``)
with one torch thread, in its run folder ``DIR/trials/TRIAL`` (TensorBoard in its ``tb/``), and a
numba cache shared by all trials (``--numba-cache``). Ray runs locally on ``--num-cpus`` cores
(one trial per core, bound to 127.0.0.1, no dashboard) or joins a running cluster with
``--address`` (the sweep folder must then be on a file system every node sees at the same path).

A failed trial is reported with its error and the others go on; re-running the same command skips
the finished trials (``DIR/status/``) and runs the rest. The summary (``trainers.sweep_summary``)
is rewritten at the end of every run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from pathlib import Path

from psl_env.config_files import brief, clip

from .errors import UsageError
from .paths import check_out_dir
from .sweep_spec import SweepSpec, Trial, override_items, read_spec
from .sweep_trial import FINISHED, read_status, write_status

MAX_CPUS = 1024
MAX_BUDGET_S = 10**7
CONNECT_TIMEOUT_S = 10  # joining a cluster: give up rather than hang


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="sweep file (YAML) or shipped sweep name (ppo-box, sac)")
    parser.add_argument("--out", default=None, help="sweep folder (default runs/sweep/NAME); re-running the same "
                                                    "command there resumes")
    parser.add_argument("--num-cpus", type=int, default=None, help="cores Ray may use on this machine (default: "
                                                                   "all); one trial per core")
    parser.add_argument("--address", default=None, help="address of a running Ray cluster (host:port, or auto) "
                                                        "instead of a local Ray")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: as many as "
                                                                         "cores)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="stop the trials still running after S seconds (they are listed as stopped)")
    parser.add_argument("--sequential", action="store_true", help="run the trials one after another in this "
                                                                  "process, without Ray (no early stopping)")
    parser.add_argument("--numba-cache", default=None, metavar="DIR",
                        help="numba cache shared by the trials (default: $NUMBA_CACHE_DIR if set, else numba's "
                             "own, beside the installed package); on a cluster, a folder every node sees")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite the summary from the finished "
                                                                    "trials")


# ---------------------------------------------------------------------------------------------------
# validation (everything before anything is written)

def _check_args(args: argparse.Namespace) -> None:
    for flag, value in (("--num-cpus", args.num_cpus), ("--max-concurrent", args.max_concurrent)):
        if value is not None and not 1 <= value <= MAX_CPUS:
            raise UsageError(f"{flag}: {value} is not allowed; allowed: an integer in [1, {MAX_CPUS}]")
    if args.time_budget is not None and not 0 < args.time_budget <= MAX_BUDGET_S:
        raise UsageError(f"--time-budget: {args.time_budget:g} is not allowed; allowed: seconds in (0, {MAX_BUDGET_S}]")
    if args.address is not None:
        if not args.address.strip() or any(c.isspace() for c in args.address):
            raise UsageError(f"--address: {brief(args.address)} is not allowed; allowed: host:port, ray://host:port "
                             "or auto")
        if args.num_cpus is not None:
            raise UsageError("--num-cpus: not allowed with --address (the cluster has its own cores)")
    if args.numba_cache is not None:
        check_out_dir(args.numba_cache, "--numba-cache")
    if args.sequential and (args.address is not None or args.num_cpus is not None or args.max_concurrent):
        raise UsageError("--sequential: not allowed with --address, --num-cpus or --max-concurrent (it runs one "
                         "trial at a time in this process)")
    needs_ray = not (args.sequential or args.summary_only)
    if needs_ray and importlib.util.find_spec("ray") is None:
        raise UsageError("psl sweep needs Ray Tune: pip install 'psl-gym[ray]' (or run the trials one after "
                         "another with --sequential)")


def _job(spec: SweepSpec, trial: Trial, out: Path) -> dict:
    """A trial's plain-data description (absolute paths: the worker may start anywhere)."""
    return {"trial_id": trial.trial_id, "config_id": trial.config_id, "seed": trial.seed, "params": trial.params,
            "agent": spec.agent, "scenario": spec.scenario, "set": list(spec.overrides),
            "hyperparams": override_items(spec.hyperparams) + override_items(trial.params),
            "timesteps": spec.timesteps, "out": str(out / "trials" / trial.trial_id),
            "status": str(out / "status" / f"{trial.trial_id}.json")}


def _check_address(address: str) -> None:
    """Something answers at ``host:port`` within a bounded time (``ray.init`` would keep retrying);
    ``auto`` is left to Ray, which fails at once when no cluster runs here."""
    import socket  # noqa: PLC0415

    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address: {brief(address)} is not allowed; allowed: host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise UsageError(f"--address: nothing answers at {clip(target)} within {CONNECT_TIMEOUT_S} s "
                         f"({err.strerror or type(err).__name__}); start the cluster first (ray start --head)") from None


def _check_trial(job: dict) -> None:
    """``psl train``'s own validation of a trial (agent config, scenario, env); nothing is written."""
    from . import train  # noqa: PLC0415
    from .sweep_trial import GAP_KEY, train_arguments  # noqa: PLC0415

    try:
        plan = train.prepare(train_arguments({**job, "out": str(Path(job["out"]).parent / ".not-created")}))
    except UsageError as err:
        raise UsageError(f"trial {job['trial_id']} ({clip(', '.join(job['hyperparams']), 200) or 'base config'}): "
                         f"{err}") from None
    cfg = plan["cfg"]
    if cfg.eval_freq <= 0:
        raise UsageError(f"eval_freq: {cfg.eval_freq} is not allowed in a sweep (trials are scored on their "
                         f"evaluation's {GAP_KEY}); allowed: an integer in [1, timesteps]")
    if cfg.env_id != "psl_env/PSL-v0":
        raise UsageError(f"agent: env id {cfg.env_id!r} is not allowed in a sweep; allowed: 'psl_env/PSL-v0'")
    if plan["timesteps"] % cfg.eval_freq:
        raise UsageError(f"eval_freq: {cfg.eval_freq} does not divide the {plan['timesteps']} training steps (the "
                         "last evaluation scores the final policy); allowed: a divisor of timesteps")


def _check_same_sweep(spec: SweepSpec, out: Path) -> None:
    saved = out / "sweep.json"
    if not saved.is_file():
        return
    try:
        before = json.loads(saved.read_text())
    except (OSError, ValueError):
        raise UsageError(f"--out: {str(saved)!r} cannot be read; choose another folder") from None
    if before != json.loads(json.dumps(spec.to_dict())):
        raise UsageError(f"--out: {str(out)!r} holds another sweep (its sweep.json differs from this sweep file); "
                         "re-run that sweep's command, or choose another --out")


def _statuses(spec: SweepSpec, out: Path) -> dict[str, dict | None]:
    return {t.trial_id: read_status(out / "status" / f"{t.trial_id}.json") for t in spec.trials()}


# ---------------------------------------------------------------------------------------------------
# running

def _env_vars(args: argparse.Namespace) -> dict[str, str]:
    """What every trial process starts with: one thread per BLAS / OpenMP pool, and the numba cache
    (compiled by the first trials, loaded by the others). Without ``--numba-cache`` or
    ``$NUMBA_CACHE_DIR``, numba's own cache beside the installed package (or its user-wide cache
    when that is read-only) is already shared by every process on this machine, and stays warm from
    one sweep to the next."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    chosen = args.numba_cache or os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        env["NUMBA_CACHE_DIR"] = str(Path(chosen).resolve())
    return env


def _run_sequential(jobs: list[dict], out: Path, args: argparse.Namespace) -> None:
    from .sweep_trial import run_trial  # noqa: PLC0415

    for job in jobs:
        try:
            run_trial(job)
        except Exception:  # noqa: BLE001 - written to the trial's status; the next trial runs
            pass


def _ray_trial(config: dict) -> None:
    """Ray Tune's trainable: one trial, its evaluations reported to the scheduler."""
    from ray import tune  # noqa: PLC0415

    from .sweep_trial import run_trial  # noqa: PLC0415

    run_trial(config["job"], report=tune.report)


def _run_ray(spec: SweepSpec, jobs: list[dict], out: Path, args: argparse.Namespace) -> None:
    """The pending trials on Ray Tune; afterwards, trials it stopped early get status ``stopped`` and
    trials that died without writing their error get the error Ray saw."""
    if args.address is None:
        # a single-node Ray: its node address is then the loopback one, and its servers bind there
        # only (read when ray is imported, and inherited by the processes it starts)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray  # noqa: PLC0415
    from ray import tune  # noqa: PLC0415

    env = _env_vars(args)
    init = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
            "runtime_env": {"env_vars": env}}
    if args.address is not None:
        init["address"] = args.address
    else:
        init.update(num_cpus=args.num_cpus or os.cpu_count() or 1)
    here = os.getcwd()
    # Ray puts the driver's current folder on its workers' import path: from the sweep folder (no
    # code in it), a checkout the command happens to run in cannot shadow the installed package
    os.chdir(out)
    try:
        ray.init(**init)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        raise UsageError(f"--address: cannot start or join Ray ({clip(' '.join(str(err).split()))})") from None
    finally:
        os.chdir(here)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        scheduler = None
        if spec.asha is not None:
            from ray.tune.schedulers import ASHAScheduler  # noqa: PLC0415

            scheduler = ASHAScheduler(time_attr="timesteps", max_t=max(spec.asha["grace_period"],
                                                                       _budget(jobs[0])),
                                      grace_period=spec.asha["grace_period"],
                                      reduction_factor=spec.asha["reduction_factor"])
        tune_config = tune.TuneConfig(scheduler=scheduler, metric="gap" if scheduler else None,
                                      mode="min" if scheduler else None,
                                      max_concurrent_trials=args.max_concurrent or cpus,
                                      time_budget_s=args.time_budget)
        run_config = tune.RunConfig(storage_path=str(out / "ray"), name=time.strftime("run-%Y%m%d-%H%M%S"),
                                    verbose=0, failure_config=tune.FailureConfig(max_failures=0, fail_fast=False))
        tuner = tune.Tuner(tune.with_resources(_ray_trial, {"cpu": 1}),
                           param_space={"job": tune.grid_search(jobs)}, tune_config=tune_config,
                           run_config=run_config)
        grid = tuner.fit()
        for result in grid:
            job = result.config["job"]
            status = read_status(Path(job["status"]))
            if status is not None and status["status"] in ("done", "error", "stopped"):
                continue
            base = {k: job[k] for k in ("trial_id", "config_id", "seed", "params")}
            evals = (status or {}).get("evals", [])
            if result.error is None:
                if status is None:  # never started (the time budget ran out first): runs on a re-run
                    continue
                write_status(Path(job["status"]), {**base, "status": "stopped", "evals": evals})
            else:
                lines = [ln for ln in str(result.error).splitlines() if ln.strip()]
                write_status(Path(job["status"]), {**base, "status": "error", "evals": evals,
                                                   "error": clip(" ".join((lines[-1] if lines else "").split()), 500)})
    finally:
        ray.shutdown()


def _budget(job: dict) -> int:
    """Training steps of a trial (the sweep's, else the agent config's)."""
    from . import train  # noqa: PLC0415
    from .sweep_trial import train_arguments  # noqa: PLC0415

    if job["timesteps"]:
        return int(job["timesteps"])
    return int(train.prepare(train_arguments({**job, "out": str(Path(job["out"]).parent / ".not-created")}))
               ["timesteps"])


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    spec = read_spec(args.sweep)
    out = check_out_dir(args.out or f"runs/sweep/{spec.name}").resolve()
    _check_same_sweep(spec, out)
    statuses = _statuses(spec, out)
    # a trial stopped by early stopping is final; one stopped only by --time-budget runs again
    finished = FINISHED if spec.asha else ("done",)
    pending = [_job(spec, t, out) for t in spec.trials()
               if not (statuses[t.trial_id] and statuses[t.trial_id]["status"] in finished)]
    if not args.summary_only:
        for job in pending:
            _check_trial(job)
    if args.address is not None and pending and not (args.summary_only or args.sequential):
        _check_address(args.address)
    command = shlex.join(["psl", *sys.argv[1:]]) if sys.argv[1:2] == ["sweep"] else f"psl sweep {args.sweep}"
    from .run_folder import RunLock, write_atomic  # noqa: PLC0415
    from .sweep_summary import write_summary  # noqa: PLC0415

    t0 = time.perf_counter()
    # after the checks (which compile nothing into the sweep folder); the trials' processes inherit it
    os.environ.update(_env_vars(args))
    with RunLock(out, command):
        text = json.dumps(spec.to_dict(), indent=1) + "\n"
        write_atomic(out / "sweep.json", lambda tmp: tmp.write_text(text))
        skipped = len(spec.trials()) - len(pending)
        if pending and not args.summary_only:
            print(f"psl sweep {spec.name}: {len(pending)} trial(s) to run" + (f", {skipped} finished (skipped)"
                                                                            if skipped else ""), flush=True)
            if args.sequential:
                _run_sequential(pending, out, args)
            else:
                _run_ray(spec, pending, out, args)
        elif not args.summary_only:
            print(f"psl sweep {spec.name}: all {skipped} trial(s) finished; summary only")
        seconds = time.perf_counter() - t0
        results = write_summary(spec, _statuses(spec, out), out, command, seconds)
    errors = [f for f in results["not_done"] if f["status"] == "error"]
    for f in errors:
        print(f"psl sweep: trial {f['trial_id']} failed: {f['error']}", file=sys.stderr)
    best = next((r for r in results["configs"] if r["config_id"] == results["best"]), None)
    done = sum(1 for s in results["trials"].values() if s["status"] == "done")
    print(f"{done} of {len(spec.trials())} trial(s) done in {seconds:.0f} s; summary: {out / 'results.md'}")
    if best is not None:
        print(f"best: {best['config_id']} gap to epsl-bcd {100 * best['gap_iqm']:+.2f}% (IQM over "
              f"{best['seeds_done']} seeds): {out / 'best.yaml'}")
    return 1 if errors else 0


__all__ = ["add_arguments", "run"]
