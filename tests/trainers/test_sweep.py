"""psl sweep: the sweep file's validation and expansion, the summary, and real sweeps on a local Ray
(merged results, resume, a failed trial that loses no other trial's results)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainers.cli import main
from trainers.report import iqm
from trainers.sb3_env import read_config_file
from trainers.sweep_spec import parse_spec, read_spec
from trainers.sweep_summary import write_summary

ROOT = Path(__file__).resolve().parents[2]

# a tiny PPO on the small scenario: a trial takes seconds once numba's cache is warm
TINY = {"agent": "ppo-box", "scenario": "small-exact", "timesteps": 128, "seeds": [0, 1],
        "hyperparams": {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "eval_freq": 64,
                        "eval_episodes": 1, "eval_rounds": 5, "policy_kwargs.net_arch": [16]}}


def _sweep_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


# ---------------------------------------------------------------------------------------------------
# the sweep file

def test_sweep_expansion_is_grid_times_seeded_draws():
    data = {**TINY, "samples": 3, "search_seed": 7,
            "search": {"n_epochs": {"grid": [1, 2]}, "learning_rate": {"loguniform": [1e-4, 1e-3]},
                       "gamma": {"choice": [0.5, 0.9]}}}
    data["hyperparams"] = {k: v for k, v in TINY["hyperparams"].items() if k != "n_epochs"}
    spec = parse_spec(data, "t")
    assert len(spec.configs) == 6 and len(spec.trials()) == 12
    assert [c["params"]["n_epochs"] for c in spec.configs] == [1, 1, 1, 2, 2, 2]
    rates = [c["params"]["learning_rate"] for c in spec.configs]
    assert all(1e-4 <= r <= 1e-3 for r in rates) and len(set(rates)) == 6
    assert {c["params"]["gamma"] for c in spec.configs} <= {0.5, 0.9}
    assert parse_spec(data, "t").configs == spec.configs  # seeded: a re-run finds the same trials
    assert parse_spec({**data, "search_seed": 8}, "t").configs != spec.configs
    assert [t.trial_id for t in spec.trials()][:3] == ["c000-s0", "c000-s1", "c001-s0"]


def test_shipped_sweeps_are_valid():
    for path in sorted((ROOT / "configs" / "sweeps").glob("*.yaml")):
        spec = read_spec(str(path))
        assert spec.seeds and spec.configs, path
        assert not any(k.split(".")[0] in ("seed", "env_kwargs") for k in spec.search), path


@pytest.mark.parametrize("change, named", [
    ({"search": {"seed": {"grid": [0, 1]}}}, "search.seed: not allowed"),
    ({"search": {"env_kwargs.action.priority_range": {"grid": [0, 0.5]}}}, "search.env_kwargs.action.priority_range"),
    ({"search": {"learning_rate": {"loguniform": [1e-3, 1e-4]}}}, "search.learning_rate.loguniform"),
    ({"search": {"learning_rate": {"uniform": [0, 1]}}}, "search.learning_rate"),
    ({"search": {"learning_rate": {"grid": [-1.0]}}}, "learning_rate: -1.0 is not allowed"),
    ({"seeds": [0, 0]}, "seeds:"),
    ({"seeds": [-1]}, "seeds: -1 is not allowed"),
    ({"timesteps": 0}, "timesteps: 0 is not allowed"),
    ({"samples": 2}, "samples: 2 is not allowed"),
    ({"asha": {"grace_period": 0}}, "asha.grace_period: 0 is not allowed"),
    ({"asha": {"brackets": 2}}, "asha.brackets: unknown key"),
    ({"agent": "no-such-agent"}, "agent: 'no-such-agent' is neither a file nor a shipped config"),
    ({"colour": "red"}, "colour: unknown sweep key"),
    ({"hyperparams": {"eval_freq": 0}}, "eval_freq: 0 is not allowed in a sweep"),
    ({"hyperparams": {"eval_freq": 50}}, "eval_freq: 50 does not divide"),
])
def test_sweep_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, change, named):
    out = tmp_path / "out"
    code = main(["sweep", str(_sweep_file(tmp_path, **change)), "--out", str(out), "--sequential"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("psl sweep: error:"), err
    assert named in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, named", [
    (["--num-cpus", "0"], "--num-cpus: 0 is not allowed"),
    (["--max-concurrent", "2000"], "--max-concurrent: 2000 is not allowed"),
    (["--time-budget", "-1"], "--time-budget: -1 is not allowed"),
    (["--address", "a b"], "--address: 'a b' is not allowed"),
    (["--address", "auto", "--num-cpus", "2"], "--num-cpus: not allowed with --address"),
    (["--sequential", "--num-cpus", "2"], "--sequential: not allowed"),
])
def test_sweep_bad_flags_are_one_line_exit_2(tmp_path, capsys, argv, named):
    out = tmp_path / "out"
    assert main(["sweep", str(_sweep_file(tmp_path)), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not out.exists()


def test_sweep_folder_of_another_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"name": "other"}))
    assert main(["sweep", str(_sweep_file(tmp_path)), "--out", str(out), "--summary-only"]) == 2
    assert "holds another sweep" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# the summary (from status files as trials write them)

def _status(trial: str, gap: float, latency: float, status: str = "done", error: str | None = None) -> dict:
    config_id, seed = trial.rsplit("-s", 1)
    evals = [{"timesteps": 128, "latency_s": latency, "epsl-bcd_latency_s": 10.0, "gap_to_epsl-bcd": gap}]
    return {"trial_id": trial, "config_id": config_id, "seed": int(seed), "params": {}, "status": status,
            "evals": evals if status != "error" else [], **({"error": error} if error else {})}


def test_sweep_summary_ranks_by_iqm_over_seeds_and_lists_failures(tmp_path):
    data = {**TINY, "seeds": [0, 1, 2, 3], "search": {"learning_rate": {"grid": [1e-4, 1e-3, 3e-3]}}}
    spec = parse_spec(data, "t")
    gaps = {"c000": [0.10, 0.20, 0.30, 0.90], "c001": [0.05, 0.06, 0.07, 0.50]}
    statuses = {f"{c}-s{s}": _status(f"{c}-s{s}", g, 10.0 * (1 + g)) for c, gs in gaps.items()
                for s, g in enumerate(gs)}
    statuses["c002-s0"] = _status("c002-s0", -0.5, 5.0)
    statuses["c002-s1"] = _status("c002-s1", 0.0, 0.0, status="error", error="UsageError: boom")
    results = write_summary(spec, statuses, tmp_path, "psl sweep t")
    rows = {r["config_id"]: r for r in results["configs"]}
    assert results["best"] == "c001"  # c002 has the lowest gap but not every seed done: not ranked
    assert [r["config_id"] for r in results["configs"]] == ["c001", "c000", "c002"]
    assert rows["c000"]["gap_iqm"] == pytest.approx(iqm(np.array(gaps["c000"]))) == pytest.approx(0.25)
    lo, hi = rows["c000"]["gap_ci95"]
    assert 0.1 <= lo <= 0.25 <= hi <= 0.9
    assert rows["c002"]["seeds_done"] == 1 and not rows["c002"]["complete"]
    failed = {f["trial_id"]: f for f in results["not_done"]}
    assert failed["c002-s1"]["error"] == "UsageError: boom" and failed["c002-s2"]["status"] == "pending"
    md = (tmp_path / "results.md").read_text()
    assert "| c002-s1 | error | UsageError: boom |" in md
    assert (tmp_path / "gap.png").stat().st_size > 1000
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 4
    entry, _ = read_config_file(str(tmp_path / "best.yaml"))  # loads as an agent config
    assert entry["learning_rate"] == 1e-3 and entry["n_timesteps"] == 128 and entry["n_envs"] == 2


# ---------------------------------------------------------------------------------------------------
# real sweeps on a local Ray (each trial is a psl train run in a Ray worker process)

def _psl_sweep(*argv: str, sb3: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(SB3_LOGDIR=str(sb3), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "trainers.cli", "sweep", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.json"))}


@pytest.mark.slow
def test_sweep_2x2_on_local_ray_merges_results_keeps_them_through_a_failed_trial_and_resumes(tmp_path):
    """2 configurations x 2 seeds on a local Ray with 2 cores; one trial fails (another process holds
    its run folder), the other three finish and are merged; re-running runs only that trial."""
    from trainers.run_folder import RunLock

    sweep = _sweep_file(tmp_path, search={"learning_rate": {"grid": [1e-4, 1e-3]}})
    out, cache = tmp_path / "out", tmp_path / "numba-cache"
    argv = [str(sweep), "--out", str(out), "--num-cpus", "2", "--numba-cache", str(cache)]
    with RunLock(out / "trials" / "c001-s1", "psl train --resume (another process)"):
        run = _psl_sweep(*argv, sb3=tmp_path / "sb3")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "trial c001-s1 failed: UsageError: --out:" in run.stderr and "is in use by" in run.stderr
    results = json.loads((out / "results.json").read_text())
    assert [(f["trial_id"], f["status"]) for f in results["not_done"]] == [("c001-s1", "error")]
    assert "in use" in results["not_done"][0]["error"] and "c001-s1 | error" in (out / "results.md").read_text()
    rows = {r["config_id"]: r for r in results["configs"]}
    assert rows["c000"]["seeds_done"] == 2 and rows["c001"]["seeds_done"] == 1
    assert results["best"] == "c000"  # the only configuration with every seed done
    for trial in ("c000-s0", "c000-s1", "c001-s0"):
        folder = out / "trials" / trial
        assert (folder / "model.zip").is_file() and list((folder / "tb").glob("events.out.tfevents.*")), trial
        status = json.loads((out / "status" / f"{trial}.json").read_text())
        assert status["status"] == "done" and status["evals"][-1]["timesteps"] >= 128
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["seed"] == status["seed"] and f"--out {folder}" in config["command"]
        assert config["agent"]["psl_env/PSL-v0"]["learning_rate"] == status["params"]["learning_rate"]
        # every trial process compiled into, or loaded from, the numba cache it was given
        assert status["numba_cache"] == str(cache)
    assert any(cache.rglob("*.nbi"))
    # the merged row is the IQM over the trials' own last evaluations (here: the mean of two)
    gaps = [json.loads((out / "status" / f"c000-s{s}.json").read_text())["evals"][-1]["gap_to_epsl-bcd"]
            for s in (0, 1)]
    assert rows["c000"]["gap_iqm"] == pytest.approx(float(np.mean(gaps)))
    assert read_config_file(str(out / "best.yaml"))[0]["learning_rate"] == 1e-4
    assert (out / "gap.png").is_file()
    done_before = _mtimes(out / "status")

    # the folder is free again: the same command runs only the failed trial and keeps the others
    rerun = _psl_sweep(*argv, sb3=tmp_path / "sb3")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 trial(s) to run, 3 finished (skipped)" in rerun.stdout
    after = _mtimes(out / "status")
    assert {k: v for k, v in after.items() if k != "c001-s1.json"} == \
        {k: v for k, v in done_before.items() if k != "c001-s1.json"}
    results = json.loads((out / "results.json").read_text())
    assert results["not_done"] == [] and [r["seeds_done"] for r in results["configs"]] == [2, 2]

    # and once more: every trial is finished, nothing runs (no Ray), the results stay
    again = _psl_sweep(*argv, sb3=tmp_path / "sb3")
    assert again.returncode == 0 and "all 4 trial(s) finished" in again.stdout
    assert _mtimes(out / "status") == after
    assert json.loads((out / "results.json").read_text())["configs"] == results["configs"]


@pytest.mark.slow
def test_sweep_with_asha_on_local_ray_stops_only_at_rungs_and_a_rerun_runs_nothing(tmp_path):
    """ASHA on a real local Ray: 3 configurations one after another; every trial ends done, or stopped
    by ASHA at a rung (grace period x reduction factor^k) before the budget, and stopped trials are
    final (the same command runs nothing again)."""
    sweep = _sweep_file(tmp_path, timesteps=256, seeds=[0], asha={"grace_period": 64, "reduction_factor": 2},
                        search={"learning_rate": {"grid": [1e-4, 0.3, 1.0]}})
    out = tmp_path / "out"
    argv = [str(sweep), "--out", str(out), "--num-cpus", "2", "--max-concurrent", "1"]
    run = _psl_sweep(*argv, sb3=tmp_path / "sb3")
    assert run.returncode == 0, run.stderr[-3000:]
    statuses = {p.stem: json.loads(p.read_text()) for p in sorted((out / "status").glob("*.json"))}
    assert sorted(statuses) == ["c000-s0", "c001-s0", "c002-s0"]
    for trial, status in statuses.items():
        steps = [e["timesteps"] for e in status["evals"]]
        assert steps == list(range(64, steps[-1] + 1, 64)), trial
        if status["status"] == "done":
            assert steps[-1] == 256 and (out / "trials" / trial / "model.zip").is_file()
        else:
            assert status["status"] == "stopped", (trial, status)
            assert steps[-1] in (64, 128), trial  # the rungs below the budget
    # learning rates of 0.3 and 1 throw the policy far off after one update: ASHA stops at least one
    assert any(s["status"] == "stopped" for s in statuses.values()), statuses
    results = json.loads((out / "results.json").read_text())
    assert {t["trial_id"] for t in results["not_done"]} == {t for t, s in statuses.items() if s["status"] != "done"}
    again = _psl_sweep(*argv, sb3=tmp_path / "sb3")
    assert again.returncode == 0 and "all 3 trial(s) finished" in again.stdout
    assert {p.stem: json.loads(p.read_text()) for p in sorted((out / "status").glob("*.json"))} == statuses


# ---------------------------------------------------------------------------------------------------
# one trial in this process (the code a Ray worker runs), with a stand-in for the scheduler

def _job(tmp_path: Path, timesteps: int = 256) -> dict:
    from trainers.sweep import _job as make_job

    spec = parse_spec({**TINY, "timesteps": timesteps, "seeds": [3]}, "t")
    return make_job(spec, spec.trials()[0], tmp_path / "sweep")


def test_sweep_trial_is_psl_train_and_reports_all_but_the_final_evaluation(tmp_path):
    from trainers.sweep_trial import run_trial

    job = _job(tmp_path)
    reported: list[dict] = []
    status = run_trial(job, report=reported.append)
    assert status["status"] == "done" and [e["timesteps"] for e in status["evals"]] == [64, 128, 192, 256]
    # the scheduler saw every evaluation but the one at the end of the budget (it could stop the
    # trial there, before the final policy is saved)
    assert [r["timesteps"] for r in reported] == [64, 128, 192]
    assert reported[0]["gap"] == status["evals"][0]["gap_to_epsl-bcd"]
    folder = Path(job["out"])
    assert (folder / "model.zip").is_file() and "--seed 3" in status["command"]
    assert json.loads(Path(job["status"]).read_text())["status"] == "done"


def test_sweep_trial_stopped_by_the_scheduler_is_stopped_not_failed(tmp_path):
    from trainers.sweep_trial import run_trial

    job = _job(tmp_path)

    def stop_at_128(metrics: dict) -> None:
        if metrics["timesteps"] >= 128:
            sys.exit(0)  # what Ray Tune does in the trial's thread when its scheduler stops it

    with pytest.raises(SystemExit):
        run_trial(job, report=stop_at_128)
    status = json.loads(Path(job["status"]).read_text())
    assert status["status"] == "stopped" and [e["timesteps"] for e in status["evals"]] == [64, 128]


def test_sweep_rerun_skips_stopped_trials_only_under_early_stopping(tmp_path, capsys):
    """A trial ASHA stopped is final; one stopped by --time-budget alone (no asha:) runs again."""
    from trainers.sweep_trial import write_status

    out = tmp_path / "out"
    done = _status("c000-s0", 0.1, 1.1)
    stopped = {**_status("c000-s1", 0.2, 1.2), "status": "stopped"}
    write_status(out / "status" / "c000-s0.json", done)
    write_status(out / "status" / "c000-s1.json", stopped)
    with_asha = _sweep_file(tmp_path, asha={"grace_period": 64})
    assert main(["sweep", str(with_asha), "--out", str(out), "--sequential"]) == 0
    assert "all 2 trial(s) finished" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["not_done"][0]["status"] == "stopped"

    other = tmp_path / "out2"
    (other / "status").mkdir(parents=True)
    for name in ("c000-s0.json", "c000-s1.json"):
        (other / "status" / name).write_bytes((out / "status" / name).read_bytes())
    assert main(["sweep", str(_sweep_file(tmp_path)), "--out", str(other), "--sequential"]) == 0
    assert "1 trial(s) to run, 1 finished (skipped)" in capsys.readouterr().out
    results = json.loads((other / "results.json").read_text())
    assert results["not_done"] == [] and results["trials"]["c000-s1"]["status"] == "done"
    assert (other / "trials" / "c000-s1" / "model.zip").is_file() and not (other / "trials" / "c000-s0").exists()
