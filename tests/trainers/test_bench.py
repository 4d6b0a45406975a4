"""``psl bench``: same seeded rounds for every method, all outputs written, clean failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.references import FixedDecisionMaker
from psl_env.system.latency import LatencyModel
from psl_env.models.profile import load_profile
from psl_env.system.scenario import load_scenario
from psl_env.system.trace import latency_from_record, read_trace
from trainers.bench import run_benchmark
from trainers.cli import main

FILES = ["results.json", "results.md", "results.csv", "rounds.csv", "latency.png", "phases.png",
         "latency_cdf.png", "trace.jsonl"]


def test_cli_writes_every_file(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--scenario", "small-exact", "--set", "rounds=7", "--methods", "epsl-bcd,oracle,fixed",
                 "--episodes", "2", "--seed", "3", "--out", str(out), "--trace", "--no-progress"])
    assert code == 0
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "results.json").read_text())
    assert res["rounds"] == 7 and res["episodes"] == 2 and res["episode_seeds"] == [3, 4]
    assert res["scenario"]["name"] == "small-exact" and res["command"].startswith("psl bench --scenario small-exact")
    for name in ("epsl-bcd", "oracle", "fixed"):
        m = res["methods"][name]
        assert m["rounds"] == 14
        assert m["ci95_latency_s"][0] <= m["mean_latency_s"] <= m["ci95_latency_s"][1]
        assert set(m["phases_mean_s"]) == {"uplink_phase", "server_compute", "downlink_phase", "sync", "migration"}
        assert {"mean", "median", "p95"} <= set(m["gap_to_oracle"])
    assert res["methods"]["oracle"]["gap_to_oracle"]["mean"] == 0.0
    assert res["methods"]["fixed"]["gap_to_oracle"]["median"] > 0.2
    assert "| epsl-bcd |" in (out / "results.md").read_text()
    assert "| epsl-bcd |" in capsys.readouterr().out
    records = read_trace(out / "trace.jsonl")
    assert len(records) == 3 * 14
    rec = records[5]
    assert latency_from_record(rec).total == pytest.approx(rec["latency_s"]["total"], rel=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "epsl-bcd,nope"], "unknown decision maker 'nope'; allowed:"),
    (["--methods", "fixed,fixed"], "more than once"),
    (["--methods", "epsl-bcd:speed=3"], "unknown option"),
    (["--rounds", "0"], "--rounds"),
    (["--episodes", "0"], "--episodes"),
    (["--seed", "-1"], "--seed"),
    (["--set", "phi=2"], "phi"),
    (["--set", "nokey=1"], "nokey"),
    (["--scenario", "nowhere"], "nowhere"),
    (["--scenario", "edgesplit-vgg16", "--methods", "oracle"], "N=6 clients, M=12 subchannels"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "bench"
    base = ["bench", "--scenario", "small-exact", "--rounds", "2", "--episodes", "1", "--out", str(out), "--no-progress"]
    code = main(base + argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and err.startswith("psl bench: error:")
    assert not out.exists()


def test_same_rounds_for_every_method_and_api_decision_makers(tmp_path):
    scenario = load_scenario("small-exact", ["rounds=6"])
    model = LatencyModel(scenario, load_profile(scenario.model))
    res = run_benchmark(scenario, ["mine", "epsl-bcd", "random"], None, 2, 11, out_dir=tmp_path, trace=True,
                        decision_makers={"mine": FixedDecisionMaker(model)})
    assert res["methods"]["mine"]["mean_latency_s"] > res["methods"]["epsl-bcd"]["mean_latency_s"]
    assert res["per_round"]["mine"]["latency_s"].shape == (12,)
    gains: dict = {}
    for rec in read_trace(tmp_path / "trace.jsonl"):
        gains.setdefault((rec["episode"], rec["round"]), []).append(np.asarray(rec["gains"]))
    assert len(gains) == 12
    for draws in gains.values():  # fixed correlation: identical channel draws across methods
        assert len(draws) == 3 and all(np.array_equal(draws[0], g) for g in draws[1:])
    # seeded: the same call gives the same figures
    again = run_benchmark(scenario, ["mine", "epsl-bcd", "random"], None, 2, 11,
                          decision_makers={"mine": FixedDecisionMaker(model)})
    for name in ("mine", "random"):
        np.testing.assert_array_equal(again["per_round"][name]["latency_s"], res["per_round"][name]["latency_s"])
        assert again["methods"][name]["ci95_latency_s"] == res["methods"][name]["ci95_latency_s"]


# -- --train: time-to-accuracy ---------------------------------------------------------------------

TRAIN_SET = ["--set", "rounds=12", "--set", "training.eval_every=3", "--set", "training.target_accuracy=0.12"]


def test_train_writes_time_to_accuracy_and_the_accuracy_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--train", *TRAIN_SET, "--methods", "epsl-bcd,fixed", "--episodes", "2", "--seed", "4",
                 "--out", str(out), "--no-progress"])  # default scenario with --train: digits-train
    assert code == 0
    for name in FILES[:-1] + ["accuracy.csv", "accuracy_vs_time.png"]:
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "results.json").read_text())
    assert res["scenario"]["name"] == "digits-train" and res["command"].endswith("--train")
    assert res["train"] == {"dataset": "digits", "target_accuracy": 0.12, "eval_every": 3, "eval_model": "clients",
                            "local_iterations": 1}
    for name in ("epsl-bcd", "fixed"):
        m = res["methods"][name]
        assert len(m["rounds_to_target_by_episode"]) == len(m["final_accuracy_by_episode"]) == 2
        assert 0.0 < m["final_accuracy"] <= 1.0
        reached = [r is not None for r in m["rounds_to_target_by_episode"]]
        assert m["episodes_reached"] == sum(reached)
        if all(reached):
            assert m["rounds_to_target"] == np.mean(m["rounds_to_target_by_episode"])
            assert m["sim_time_to_target_s"] == pytest.approx(np.mean(m["sim_time_to_target_s_by_episode"]))
        else:
            assert m["rounds_to_target"] is None and m["sim_time_to_target_s"] is None
    md = (out / "results.md").read_text()
    assert "## Time to accuracy" in md and "| fixed |" in md.split("## Time to accuracy")[1]
    rows = (out / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "method,episode,round,sim_time_s,accuracy,test_loss"
    assert len(rows) == 1 + 2 * 2 * 5  # methods x episodes x (round 0 + 4 evaluations)
    assert "accuracy_vs_time.png" in capsys.readouterr().out


def test_train_curves_are_the_engine_at_the_methods_cuts_and_the_priced_time():
    from psl_env.training.engine import SplitTrainingEngine

    scenario = load_scenario("digits-train", ["rounds=8", "training.eval_every=2", "training.target_accuracy=0.0"])
    res = run_benchmark(scenario, ["fixed", "epsl-bcd"], episodes=2, seed=5, train=True)
    curves, per_round = res["accuracy_curves"], res["per_round"]
    for ep in range(2):
        firsts = {name: curves[name][ep]["accuracy"][0] for name in curves}
        assert len(set(firsts.values())) == 1  # the same initial model for every method
        engine = SplitTrainingEngine(scenario.replace(seed=5 + ep), initial_cut=2)  # fixed: the middle cut
        accs = [engine.evaluate().accuracy] + [r.accuracy for r in (engine.step(2) for _ in range(8)) if r.evaluated]
        assert curves["fixed"][ep]["accuracy"] == accs
        lat = per_round["fixed"]["latency_s"][per_round["fixed"]["episode"] == ep]
        assert curves["fixed"][ep]["sim_time_s"] == pytest.approx([0.0, *np.cumsum(lat)[1::2]], rel=1e-12)
    m = res["methods"]["fixed"]
    assert m["rounds_to_target"] == 0 and m["sim_time_to_target_s"] == 0.0  # target 0: the initial model


def test_train_on_an_untrainable_scenario_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--train", "--scenario", "small-exact", "--rounds", "2", "--episodes", "1",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("psl bench: error:") and "32x32" in err and len(err.splitlines()) == 1
    assert not out.exists()


# -- trained policies: their scenario, and the hint psl train prints ------------------------------

def test_a_trained_policy_is_benchmarked_on_its_training_scenario_and_the_hint_runs(tmp_path, capsys, monkeypatch):
    import shlex

    import yaml

    from .test_train import tiny_config

    monkeypatch.chdir(tmp_path)  # the hint writes to the default runs/bench
    scenario = tmp_path / "my net.yaml"
    scenario.write_text(yaml.safe_dump({"name": "my-net", "num_clients": 3, "num_subchannels": 6,
                                        "model": "resnet18-32", "rounds": 4}))
    run = tmp_path / "my run"
    assert main(["train", "--no-progress", "--config", str(tiny_config(tmp_path)), "--scenario", str(scenario),
                 "--set", "csi=delayed", "--timesteps", "32", "--out", str(run)]) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("benchmark it: "))
    argv = shlex.split(hint[len("benchmark it: "):])
    assert argv[:2] == ["psl", "bench"] and "--scenario" not in argv
    assert main(argv[1:]) == 0
    assert "warning" not in capsys.readouterr().err
    res = json.loads((tmp_path / "runs" / "bench" / "results.json").read_text())
    assert res["scenario"]["name"] == "my-net" and res["scenario"]["csi"] == "delayed" and res["rounds"] == 4
    assert "--scenario" not in res["command"]
    # another scenario on purpose: benchmarked there, with a warning naming what differs
    assert main(["bench", "--scenario", "small-exact", "--methods", f"ppo:{run}", "--rounds", "2", "--episodes", "1",
                 "--out", str(tmp_path / "other"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: ppo:{run} was trained on another scenario" in err and "csi 'delayed' -> 'perfect'" in err


# -- decision timing ---------------------------------------------------------------------------------

class _ColdStart(FixedDecisionMaker):
    """A decision maker whose first decision costs 1000 s of a fake clock, the others 1 ms."""

    def __init__(self, model, clock):
        super().__init__(model)
        self.clock, self.calls = clock, 0

    def decide(self, state):
        self.calls += 1
        self.clock[0] += 1000.0 if self.calls == 1 else 0.001
        return super().decide(state)


def test_decision_times_exclude_a_first_untimed_decision(monkeypatch):
    import trainers.bench as bench

    clock = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    scenario = load_scenario("small-exact", ["rounds=3"])
    dm = _ColdStart(LatencyModel(scenario, load_profile(scenario.model)), clock)
    res = run_benchmark(scenario, ["cold", "random"], episodes=2, seed=7, decision_makers={"cold": dm})
    assert dm.calls == 1 + 2 * 3
    assert res["per_round"]["cold"]["decision_ms"] == pytest.approx([1.0] * 6)


def test_the_untimed_decision_changes_no_result():
    from agents.registry import make_decision_maker
    from psl_env.system.simulator import NetworkSimulator

    scenario = load_scenario("small-exact", ["rounds=4"])
    res = run_benchmark(scenario, ["random"], episodes=2, seed=3)
    model = LatencyModel(scenario, load_profile(scenario.model))
    dm, sim, expected = make_decision_maker("random", model, 3), NetworkSimulator(scenario), []
    for seed in (3, 4):
        dm.reset(seed)
        state = sim.reset(seed)
        for _ in range(4):
            latency, state = sim.step(dm.decide(state.observation()))
            expected.append(latency.total)
    np.testing.assert_array_equal(res["per_round"]["random"]["latency_s"], expected)
