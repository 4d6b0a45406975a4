"""Figures of benchmarks/bench_physics.py, bench_best_cut.py's baseline and bench_phi_schedule.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from agents.registry import make_decision_maker
from psl_env.system.radio import Radio
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.trace import read_trace
from trainers.bench import run_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_physics_recomputes_the_radio_of_the_latency_model(tmp_path, capsys):
    physics = _script("bench_physics")
    overrides = ["channel.snr_gap_db=3"]
    run_benchmark("small-exact", ["epsl-bcd", "fixed"], rounds=3, episodes=1, out_dir=tmp_path, trace=True,
                  overrides=overrides, num_resamples=10)
    radio = Radio.of(load_scenario("small-exact", overrides))
    records = [r for r in read_trace(tmp_path / "trace.jsonl") if r["method"] == "epsl-bcd"]
    samples = physics.link_samples(records)
    want_se, want_snr = [], []
    for rec in records:
        owner, gains, power = np.asarray(rec["owner"]), np.asarray(rec["gains"]), np.asarray(rec["power_w"])
        m = np.flatnonzero(owner >= 0)
        want_se.append(radio.uplink_se(gains[owner[m], m], power[m]))
        want_snr.append(power[m] * gains[owner[m], m] * radio.inv_noise)
    np.testing.assert_allclose(samples["up_se"], np.concatenate(want_se), rtol=1e-12)
    np.testing.assert_allclose(samples["up_snr"], np.concatenate(want_snr), rtol=1e-12)
    assert np.array_equal(samples["up_at_cap"], samples["up_se"] >= radio.se_cap * (1 - 1e-9))

    assert physics.main([str(tmp_path), "--check", "3"]) == 0
    out = capsys.readouterr().out
    assert "| epsl-bcd | 18 |" in out  # 3 rounds x 6 subchannels
    assert float(out.split("largest relative difference")[-1].split()[0]) < 1e-9


def test_epsl_bcd_restricted_to_its_own_cut_decides_as_epsl_bcd():
    sim = NetworkSimulator(load_scenario("small-exact"))
    model = sim.latency_model
    bcd = make_decision_maker("epsl-bcd", model)
    state = sim.reset(3)
    for _ in range(5):
        obs = state.observation()
        alloc = bcd.decide(obs)
        fixed = make_decision_maker(f"epsl-bcd:cut={int(alloc.cut[0])}", model).decide(obs)
        assert np.array_equal(fixed.cut, alloc.cut)
        assert model.evaluate(state, fixed).total == model.evaluate(state, alloc).total
        state = sim.step(alloc)[1]


def test_the_regime_map_smoke_run_writes_its_table_and_plot(tmp_path):
    regime = _script("bench_regime_map")
    assert regime.main(["--out", str(tmp_path), "--rounds", "4"]) == 0
    text = (tmp_path / "regime_map.md").read_text()
    assert text.count("\n") == 4 and "best fixed cut gap" in text
    assert (tmp_path / "regime_map.png").stat().st_size > 0


def test_bench_phi_schedule_runs_its_methods_and_the_schedule_goes_high_to_low(capsys):
    bench = _script("bench_phi_schedule")
    phi_of = bench.parse_schedule("1.0:3,0.5:2,0.0")
    assert [phi_of(r) for r in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    assert bench.main(["--seeds", "100", "--max-rounds", "4", "--fixed", "0", "1", "--schedule", "1.0:2,0.0"]) == 0
    out = capsys.readouterr().out
    assert "| epsl-bcd@phi=1 | 100 |" in out and "| epsl-bcd@schedule | 100 |" in out
    rows = [line for line in out.splitlines() if line.startswith("| epsl-bcd@schedule | 100 |")]
    assert rows[0].split("|")[6].strip() == "0.50"  # mean phi: 1, 1, 0, 0


def test_bench_phi_schedule_plays_a_cut_schedule_and_rejects_a_bad_one(capsys):
    bench = _script("bench_phi_schedule")
    cut_of = bench.parse_cut_schedule("2:3,4")
    assert [cut_of(r) for r in range(5)] == [2, 2, 2, 4, 4]
    for bad in ("2:3", "0:3,4", "2:x,4", "2:0,4"):
        with pytest.raises(ValueError, match="--cut-schedule"):
            bench.parse_cut_schedule(bad)
    assert bench.main(["--seeds", "100", "--max-rounds", "4", "--fixed", "0", "--cut-schedule", "2:2,4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| cut schedule 2:2,4@phi=0 | 100 |")]
    assert rows[0].split("|")[7].strip() == "{2: 2, 4: 2}"  # cuts played, by cut


def test_bench_cut_choice_labels_every_cut_and_scores_the_yardsticks(tmp_path):
    bench = _script("bench_cut_choice")
    obs, lat = bench.constant_cut_latencies("small-exact", [], 7, 6, 2)
    assert obs.shape[0] == 6 and lat.shape[0] == 6 and np.all(lat > 0)
    best = lat.argmin(axis=1)
    assert bench.regret(lat, best) == 0.0
    assert all(bench.regret(lat, np.full(6, j)) >= 0.0 for j in range(lat.shape[1]))
    assert bench.main(["--scenario", "small-exact", "--train-episodes", "12", "--episodes", "6",
                       "--label-rounds", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "cut_choice.json").read_text())
    rows = result["rows"]
    assert len(result["switch_cost_s"]) == lat.shape[1] and result["mean_best_constant_latency_s"] > 0
    assert min(r["regret"] for r in rows if r["method"].startswith("cut ")) >= 0.0
    assert rows[-1]["regret"] == 0.0 and "hindsight" in rows[-1]["method"]


def test_bench_cut_choice_rejects_a_policy_that_is_not_a_run_folder(tmp_path, capsys):
    bench = _script("bench_cut_choice")
    with pytest.raises(SystemExit) as err:
        bench.main(["--policy", f"ppo={tmp_path}", "--out", str(tmp_path / "out")])
    assert err.value.code == 2 and "--policy" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bench_sweep_writes_a_valid_four_trial_sweep_and_checks_its_cores(tmp_path, capsys):
    from trainers.sweep_spec import read_spec

    bench = _script("bench_sweep")
    for full in (False, True):
        spec = read_spec(str(bench.sweep_file(tmp_path / f"sweep-{full}.yaml", full)))
        assert len(spec.trials()) == 4
    with pytest.raises(SystemExit) as err:
        bench.main(["--num-cpus", "0", "--out", str(tmp_path / "out")])
    assert err.value.code == 2 and "--num-cpus: 0 is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
