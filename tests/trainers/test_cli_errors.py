"""File, path and resource errors of every command: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.cli import main


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder path that cannot be created: under a read-only folder, or (as root, whom folder
    permissions do not stop) under a pseudo file system that refuses new folders."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        (locked / "probe").mkdir()
    except OSError:
        yield locked / "out"
        locked.chmod(0o700)
        return
    (locked / "probe").rmdir()
    locked.chmod(0o700)
    for base in (Path("/sys"), Path("/proc")):
        try:
            (base / "psl-gym-test").mkdir()
        except OSError:
            yield base / "psl-gym-test" / "out"
            return
        (base / "psl-gym-test").rmdir()  # pragma: no cover
    pytest.skip("no location on this machine refuses new folders")  # pragma: no cover


def _run(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"psl {argv[0]}: error:"), err
    return err


BENCH = ["bench", "--scenario", "small-exact", "--methods", "fixed", "--rounds", "2", "--episodes", "1",
         "--no-progress"]


@pytest.mark.parametrize("command", ["bench", "latency", "demo", "train"])
def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    argv = {"bench": BENCH, "latency": ["latency", "--scenario", "small-exact", "--rounds", "1"],
            "demo": ["demo", "--timesteps", "64", "--no-progress"],
            "train": ["train", "--config", "ppo", "--scenario", "small-exact", "--no-progress"]}[command]
    err = _run(capsys, *argv, "--out", str(a_file))
    assert "exists and is not a folder" in err or "exists and is not empty" in err
    err = _run(capsys, *argv, "--out", str(a_file / "sub"))
    assert "which is a file" in err
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize("command", ["bench", "latency", "train"])
def test_out_that_cannot_be_written(capsys, unwritable, command):
    argv = {"bench": BENCH, "latency": ["latency", "--scenario", "small-exact", "--rounds", "1"],
            "train": ["train", "--config", "ppo", "--scenario", "small-exact", "--no-progress"]}[command]
    err = _run(capsys, *argv, "--out", str(unwritable))
    assert "--out:" in err and ("cannot be written" in err or "cannot create" in err)
    assert not unwritable.exists()


def test_profile_out_must_be_a_file_path(tmp_path, capsys):
    assert "is a folder; allowed: a file path" in _run(capsys, "profile", "small-cnn", "--out", str(tmp_path))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "which is a file" in _run(capsys, "profile", "small-cnn", "--out", str(a_file / "p.json"))


def test_profile_input_too_large_is_refused_before_building_anything(capsys):
    err = _run(capsys, "profile", "resnet18", "--input", "1x100000x100000")
    assert "too large; allowed: C <= 64, H and W <= 1024" in err


@pytest.mark.parametrize("content, fragment", [
    (b"name: x\x00\x01", "not a text file"),
    (None, "is a folder, not a YAML file"),
    (b"", "the file is empty"),
])
def test_scenario_file_faults(tmp_path, capsys, content, fragment):
    path = tmp_path / "s.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    out = tmp_path / "bench"
    assert fragment in _run(capsys, "bench", "--scenario", str(path), "--methods", "fixed", "--out", str(out))
    assert fragment in _run(capsys, "scenario", "--scenario", str(path))
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--rounds", "100000000000"], "--rounds: 100000000000 is not allowed; allowed: an integer in [1, 1000000]"),
    (["--episodes", "100000"], "--episodes: 100000 is not allowed"),
    (["--rounds", "1000", "--episodes", "5000"], "--rounds x --episodes: 1000 x 5000 is not allowed"),
])
def test_bench_bounds(tmp_path, capsys, argv, fragment):
    out = tmp_path / "bench"
    assert fragment in _run(capsys, "bench", "--scenario", "small-exact", "--methods", "fixed", "--out", str(out),
                            *argv)
    assert not out.exists()


def test_argument_type_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--rounds", "many"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err == "psl bench: error: argument --rounds: invalid int value: 'many'"


def test_latency_rounds_upper_bound(tmp_path, capsys):
    out = tmp_path / "lat"
    assert "--rounds: 1000000000 is out of range" in _run(capsys, "latency", "--rounds", "1000000000", "--out", str(out))
    assert not out.exists()


@pytest.mark.parametrize("damage", ["binary", "not-a-mapping"])
def test_corrupt_run_config_in_bench_and_resume(tmp_path, capsys, damage):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.zip").write_bytes(b"PK")
    (run / "config.yaml").write_bytes(b"\x00\x01garbage" if damage == "binary" else b"- 1\n- 2\n")
    out = tmp_path / "bench"
    err = _run(capsys, "bench", "--scenario", "small-exact", "--methods", f"ppo:{run}", "--out", str(out))
    assert "config.yaml" in err and not out.exists()
    err = _run(capsys, "train", "--resume", str(run))
    assert "config.yaml" in err
