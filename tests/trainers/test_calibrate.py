"""``psl calibrate``: a device profile measured on this machine, and scenarios that take their compute from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psl_env.models import load_profile
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.training.calibrate import apply_device_profile, load_device_profile, measure_device, profile_rate
from trainers.cli import main

FAST = ["--repeats", "1", "--warmup", "0"]


@pytest.fixture(scope="module")
def profile() -> dict:
    return measure_device("small-cnn", batch_size=8, repeats=1, warmup=0, name="test-box")


def test_calibrate_writes_a_profile_and_a_scenario_that_uses_it(tmp_path, capsys):
    out, scen = tmp_path / "device.json", tmp_path / "calibrated.yaml"
    code = main(["calibrate", "--out", str(out), "--scenario", "digits-train", "--set", "num_clients=3",
                 "--scenario-out", str(scen), *FAST])
    assert code == 0
    data = load_device_profile(out)
    assert data["model"] == "small-cnn" and data["batch_size"] == 32 and data["machine"]["threads"] == 1
    names = [b["name"] for b in data["blocks"]]
    assert names == list(load_profile("small-cnn").block_names)
    for blk in data["blocks"]:
        assert blk["fwd_s"] > 0 and blk["bwd_s"] > 0
        assert blk["fwd_flops_per_s"] == pytest.approx(32 * blk["fwd_flops_per_sample"] / blk["fwd_s"])
    by_cut = data["compute_flops_by_cut"]
    assert by_cut[0] is None and len(by_cut) == len(names) + 1 and by_cut[-1] == data["compute_flops"] > 1e6
    assert "GFLOP/s" in capsys.readouterr().out
    # the scenario computes at the measured rate: simulated client time = measured time of the model
    s = load_scenario(scen)
    assert s.num_clients == 3 and s.devices.compute_flops == [data["compute_flops"]] * 2
    sim = NetworkSimulator(s)
    state = sim.reset(0)
    assert np.allclose(state.client_flops, data["compute_flops"], rtol=1e-12)
    prof = load_profile("small-cnn")
    whole = 32 * (prof.fwd_flops[-1] + prof.bwd_flops[-1]) / state.client_flops
    measured = sum(b["fwd_s"] + b["bwd_s"] for b in data["blocks"])
    assert np.allclose(whole, measured, rtol=1e-9)


def test_device_profile_for_classes_for_a_cut_and_for_the_server(profile):
    classes = apply_device_profile(load_scenario("vgg16-memory"), profile, cut=2)
    rate = profile_rate(profile, 2)
    assert [c["compute_flops"] for c in classes.devices.classes] == [rate, rate]
    assert [c["memory_bytes"] for c in classes.devices.classes] == [8e9, 2.56e8]  # the rest stays
    server = apply_device_profile(load_scenario("digits-train"), profile, role="server")
    assert server.server.compute_flops == profile["compute_flops"]
    assert server.devices == load_scenario("digits-train").devices
    with pytest.raises(ValueError, match="cut: 9 is not allowed"):
        profile_rate(profile, 9)


@pytest.mark.parametrize("args,message", [
    (["--model", "lenet"], "--model: no trainable model 'lenet'"),
    (["--batch-size", "0"], "--batch-size: 0 is out of range"),
    (["--scenario-out", "{tmp}/s.yaml"], "--scenario-out: needs --scenario"),
    (["--scenario", "digits-train", "--scenario-out", "{tmp}/missing/s.yaml"], "--scenario-out: folder"),
    (["--scenario", "digits-train", "--set", "phi=2"], "phi"),
    (["--cut", "5"], "--cut: 5 is out of range; allowed: 1..4"),
])
def test_calibrate_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "device.json"
    code = main(["calibrate", "--out", str(out), *FAST, *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_calibrate_refuses_a_missing_output_folder(tmp_path, capsys):
    assert main(["calibrate", "--out", str(tmp_path / "no" / "device.json"), *FAST]) == 2
    assert "--out: folder" in capsys.readouterr().err


def test_load_device_profile_names_what_is_wrong(tmp_path, profile):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_device_profile(bad)
    bad.write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(ValueError, match="is not a device profile"):
        load_device_profile(bad)
    bad.write_text(json.dumps({**profile, "compute_flops": -1}))
    with pytest.raises(ValueError, match="no positive compute_flops"):
        load_device_profile(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_device_profile(tmp_path / "absent.json")
