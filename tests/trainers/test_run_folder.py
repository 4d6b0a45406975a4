"""Run folders under faults: two writers at once, killed runs with a missing or truncated newest
checkpoint, Ctrl-C (SIGINT) in a real process, and tables and TensorBoard that continue on resume."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from trainers.cli import main
from trainers.errors import UsageError
from trainers.run_folder import LOCK_FILE, MANIFEST, RunLock, usable_checkpoints

from .test_train import TINY, _events, tiny_config


def train(*argv: str) -> int:
    return main(["train", "--no-progress", *argv])


def _progress_steps(run: Path) -> list[int]:
    with open(run / "tb" / "progress.csv", newline="") as fh:
        return [int(float(r["time/total_timesteps"])) for r in csv.DictReader(fh) if r["time/total_timesteps"]]


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _start_train(tmp_path: Path, out: Path, *extra: str, **config) -> subprocess.Popen:
    cfg = tiny_config(tmp_path, "ppo", "box", learning_rate=1e-3, **config)
    argv = [sys.executable, "-m", "trainers.cli", "train", "--no-progress", "--config", str(cfg), "--out", str(out),
            *TINY, *extra]
    # a session of its own: Ctrl-C in a terminal signals the whole process group, as os.killpg does here
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)


# -- the lock ---------------------------------------------------------------------------------------

def test_a_second_lock_on_a_folder_names_the_holder(tmp_path):
    with RunLock(tmp_path / "run", "psl train --seed 1"):
        with pytest.raises(UsageError, match=r"is in use by pid \d+ on .* \(psl train --seed 1\)"):
            with RunLock(tmp_path / "run", "psl train --seed 2"):
                pass
    with RunLock(tmp_path / "run", "psl train --seed 3"):  # released: free again
        pass


def test_a_failed_first_write_leaves_no_folder_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with RunLock(tmp_path / "new", "x"):
            raise RuntimeError("fails before writing")
    assert not (tmp_path / "new").exists()


def test_two_trainings_into_one_folder_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    first = _start_train(tmp_path, out, "--seed", "1", "--timesteps", "100000")
    try:
        _wait_for(lambda: (out / "config.yaml").is_file(), "the first run to write its config", first)
        cfg = tiny_config(tmp_path, "ppo", "box", learning_rate=1e-3)
        assert train("--config", str(cfg), "--out", str(out), "--seed", "2", *TINY) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"is in use by pid {first.pid}" in err or "exists and is not empty" in err
        assert train("--resume", str(out)) == 2  # resuming a folder someone writes is refused too
        assert f"is in use by pid {first.pid}" in capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    run = yaml.safe_load((out / "config.yaml").read_text())
    assert run["seed"] == 1
    steps = _progress_steps(out)
    assert steps == sorted(set(steps))  # one writer: no interleaved rows
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


# -- Ctrl-C -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("vec_env", ["batched", "subproc"])
def test_sigint_saves_a_checkpoint_and_prints_a_resume_command_that_runs(tmp_path, capsys, vec_env):
    out = tmp_path / "run"
    proc = _start_train(tmp_path, out, "--timesteps", "1000000", "--seed", "5", vec_env=vec_env, n_envs=4)
    _wait_for(lambda: (out / "tb" / "progress.csv").is_file() and len(_progress_steps(out)) >= 2,
              "two logged rollouts", proc)
    os.killpg(proc.pid, signal.SIGINT)  # the whole process group, as Ctrl-C in a terminal
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("psl train: interrupted at ") and "Traceback" not in stderr
    steps = int(last.split("interrupted at ")[1].split()[0])
    assert f"checkpoint saved: {out / 'checkpoints' / f'ckpt_{steps}_steps.zip'}" in last
    usable, skipped = usable_checkpoints(out / "checkpoints")
    assert usable[0].steps == steps and not skipped
    resume = shlex.split(last.split("resume with: ")[1])
    assert resume[:3] == ["psl", "train", "--resume"]
    assert main([*resume[1:], "--no-progress", "--timesteps", str(steps + 64)]) == 0
    assert f"from the checkpoint at {steps} steps" in capsys.readouterr().out
    from stable_baselines3 import PPO

    assert PPO.load(out / "model.zip").num_timesteps >= steps + 64
    progress = _progress_steps(out)
    assert progress == sorted(set(progress)) and progress[-1] >= steps + 64


# -- killed runs: missing or truncated newest checkpoint --------------------------------------------

@pytest.fixture
def three_checkpoints(tmp_path) -> Path:
    out = tmp_path / "run"
    cfg = tiny_config(tmp_path, "ppo", "box", learning_rate=1e-3)
    assert train("--config", str(cfg), "--out", str(out), "--timesteps", "96", "--checkpoint-freq", "32", *TINY) == 0
    assert [c.steps for c in usable_checkpoints(out / "checkpoints")[0]] == [96, 64, 32]
    return out


@pytest.mark.parametrize("damage", ["state file missing", "state file truncated", "model zip truncated",
                                    "vecnormalize truncated"])
def test_resume_takes_the_newest_complete_checkpoint_and_says_which(three_checkpoints, capsys, monkeypatch, damage):
    out, ckpts = three_checkpoints, three_checkpoints / "checkpoints"
    # TensorBoard reads event files in name order, and names start with the second they were opened:
    # the resumed run comes later than the run it continues, as it would outside a test
    later = time.time() + 10
    monkeypatch.setattr(time, "time", lambda: later)
    if damage == "state file missing":
        (ckpts / "ckpt_96_state.pkl").unlink()
    else:
        victim = ckpts / {"state": "ckpt_96_state.pkl", "model": "ckpt_96_steps.zip",
                          "vecnormalize": "ckpt_96_vecnormalize.pkl"}[damage.split()[0]]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    (ckpts / "ckpt_128_steps.zip.tmp-4242").write_bytes(b"half a file from a killed writer")
    capsys.readouterr()
    assert train("--resume", str(out), "--timesteps", "128") == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.out and "from the checkpoint at 64 steps (ckpt_64_steps.zip)" in captured.out
    assert "skipped newer checkpoint(s): ckpt 96: ckpt_96_" in captured.err
    assert not list(ckpts.glob("*.tmp-*"))
    usable, skipped = usable_checkpoints(ckpts)
    assert [c.steps for c in usable] == [128, 96, 64, 32] and not skipped  # 96 taken again by the resumed run
    assert _progress_steps(out) == [32, 64, 96, 128]  # the table continues from 64, no row twice
    acc = _events(out / "tb")
    steps = [e.step for e in acc.Scalars("psl/latency_s")]
    assert steps == sorted(set(steps)) and steps[-1] == 128  # TensorBoard continues, nothing doubled back


def test_resume_without_any_complete_checkpoint_is_one_line(three_checkpoints, capsys):
    for state in (three_checkpoints / "checkpoints").glob("*_state.pkl"):
        state.unlink()
    capsys.readouterr()
    assert train("--resume", str(three_checkpoints)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no complete checkpoint" in err and "ckpt_96_state.pkl is missing" in err


def test_a_damaged_manifest_or_config_is_one_line(three_checkpoints, capsys):
    (three_checkpoints / "config.yaml").write_text("algo: ppo\nalgo: sac\n")
    capsys.readouterr()
    assert train("--resume", str(three_checkpoints)) == 2
    assert "key 'algo' is given twice" in capsys.readouterr().err


def test_manifest_records_sizes_checksums_and_table_lengths(three_checkpoints):
    manifest = json.loads((three_checkpoints / "checkpoints" / MANIFEST).read_text())
    entry = manifest["checkpoints"][1]
    assert entry["steps"] == 64 and set(entry["files"]) == {"model", "state", "vecnormalize"}
    assert entry["files"]["model"]["bytes"] == (three_checkpoints / "checkpoints" / "ckpt_64_steps.zip").stat().st_size
    assert len(entry["files"]["state"]["sha256"]) == 64
    assert entry["rows"]["progress"] == 2  # rows logged at 32 and 64 when the checkpoint at 64 was taken
    assert (three_checkpoints / LOCK_FILE).is_file()


def test_an_older_run_folder_without_a_manifest(three_checkpoints, capsys):
    ckpts = three_checkpoints / "checkpoints"
    (ckpts / MANIFEST).unlink()
    (ckpts / "ckpt_96_state.pkl").unlink()
    capsys.readouterr()
    assert train("--resume", str(three_checkpoints), "--timesteps", "128") == 0  # checkpoints found by file name
    assert "from the checkpoint at 64 steps" in capsys.readouterr().out
    (ckpts / MANIFEST).unlink()
    state = ckpts / "ckpt_128_state.pkl"
    state.write_bytes(state.read_bytes()[:100])  # damaged, and no manifest to tell
    assert train("--resume", str(three_checkpoints), "--timesteps", "160") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume: the checkpoint at 128 steps cannot be loaded" in err
    assert "--config" not in err
