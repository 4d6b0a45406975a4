"""Devices, channel and simulator: determinism, CSI, Doppler, mobility, traces."""

from __future__ import annotations

import numpy as np
import pytest

from psl_env.system.allocation import fixed_allocation
from psl_env.system.channels.gauss_markov import doppler_correlation, pathloss_gain
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.trace import RoundTraceWriter, latency_from_record, read_trace, trace_record


def run(sim, rounds=5, seed=3):
    state = sim.reset(seed)
    out = []
    for _ in range(rounds):
        a = fixed_allocation(sim.profile.num_blocks, state.power_budget_w, state.num_subchannels)
        lat, nxt = sim.step(a)
        out.append((state, a, lat))
        state = nxt
    return out


def test_same_seed_same_rounds():
    a = run(NetworkSimulator("epsl-resnet18"))
    b = run(NetworkSimulator("epsl-resnet18"))
    for (sa, _, la), (sb, _, lb) in zip(a, b):
        np.testing.assert_array_equal(sa.gains, sb.gains)
        np.testing.assert_array_equal(sa.client_flops, sb.client_flops)
        assert la.total == lb.total
    c = run(NetworkSimulator("epsl-resnet18"), seed=4)
    assert not np.array_equal(a[0][0].gains, c[0][0].gains)


def test_heterogeneous_devices_span_the_range():
    sim = NetworkSimulator(load_scenario("epsl-resnet18", ["num_clients=200", "num_subchannels=200"]))
    f = sim.reset(0).client_flops
    assert f.min() >= 5e9 and f.max() <= 2e11 and f.max() / f.min() > 20


def test_device_classes_are_laid_out_in_order():
    sim = NetworkSimulator("edgesplit-vgg16")
    state = sim.reset(0)
    assert state.client_flops.tolist() == [1e12, 1e12, 1e11, 1e11, 1e10, 1e10]


def test_delayed_csi_observes_last_rounds_gains():
    sim = NetworkSimulator(load_scenario("small-exact", ["csi=delayed"]))
    rounds = run(sim, rounds=4)
    for (prev, _, _), (cur, _, _) in zip(rounds, rounds[1:]):
        np.testing.assert_array_equal(cur.observed_gains, prev.gains)
        assert not np.array_equal(cur.observed_gains, cur.gains)
    perfect = run(NetworkSimulator("small-exact"), rounds=2)
    assert perfect[1][0].observed_gains is perfect[1][0].gains


def test_fixed_correlation_one_freezes_fading():
    rounds = run(NetworkSimulator(load_scenario("small-exact", ["channel.correlation=1"])), rounds=3)
    np.testing.assert_allclose(rounds[0][0].gains, rounds[2][0].gains)


def test_doppler_correlation_decays_with_round_length():
    a = doppler_correlation(np.array([1.0, 3.0]), 3.5e9, 1e-3)
    b = doppler_correlation(np.array([1.0, 3.0]), 3.5e9, 1.0)
    assert np.all(a > 0.9) and np.all(b < a)
    assert doppler_correlation(np.array([0.0]), 3.5e9, 10.0)[0] == 1.0


def test_pathloss_matches_formula():
    assert pathloss_gain(np.array([1000.0]))[0] == pytest.approx(10 ** (-12.81))
    assert pathloss_gain(np.array([100.0]))[0] == pytest.approx(10 ** (-(128.1 - 37.6) / 10))


def test_mobility_keeps_clients_in_range():
    sim = NetworkSimulator(load_scenario("small-exact", ["channel.mobility=true", "channel.speed_mps=[20, 30]"]))
    rounds = run(sim, rounds=30)
    d0, d_last = rounds[0][0].distance_m, rounds[-1][0].distance_m
    assert not np.allclose(d0, d_last)
    for state, _, _ in rounds:
        assert np.all(state.distance_m >= 50 - 1e-6) and np.all(state.distance_m <= 300 + 1e-6)


def test_sync_rounds_follow_the_period():
    sim = NetworkSimulator(load_scenario("small-exact", ["scheme=sfl", "phi=0", "sync_period=3"]))
    flags = [s.sync for s, _, _ in run(sim, rounds=6)]
    assert flags == [False, False, True, False, False, True]


def test_trace_roundtrip_recomputes_latency(tmp_path):
    sim = NetworkSimulator(load_scenario("small-exact", ["csi=delayed", "sync_period=2"]))
    path = tmp_path / "trace.jsonl"
    with RoundTraceWriter(path) as w:
        for state, a, lat in run(sim, rounds=4):
            w.write(trace_record(sim.latency_model, state, a, lat, "fixed"))
    recs = read_trace(path)
    assert len(recs) == 4 and recs[0]["prev_cut"] is None and recs[1]["prev_cut"] is not None
    for rec in recs:
        again = latency_from_record(rec)
        assert again.total == pytest.approx(rec["latency_s"]["total"], rel=1e-9)
        assert float(again.sync) == pytest.approx(rec["latency_s"]["sync"], rel=1e-9)
    for key in ("round", "episode", "method", "scheme", "phi", "batch_size", "subchannel_bw_hz", "noise_psd_w_per_hz",
                "server_flops", "server_power_per_subchannel_w", "downlink", "client_flops", "client_power_budget_w",
                "gains", "observed_gains", "profile", "cut", "prev_cut", "owner", "power_w", "sync", "latency_s"):
        assert key in recs[0]


def test_trace_channel_replays_gains(tmp_path):
    gains = np.random.default_rng(0).exponential(1e-11, (4, 3, 6))
    np.savez(tmp_path / "g.npz", gains=gains)
    sim = NetworkSimulator(load_scenario("small-exact", ["channel.kind=trace", f"channel.trace_file={tmp_path / 'g.npz'}",
                                                         "csi=delayed"]))
    rounds = run(sim, rounds=5)
    for t, (state, _, _) in enumerate(rounds):
        np.testing.assert_array_equal(state.gains, gains[t % 4])
        np.testing.assert_array_equal(state.observed_gains, gains[(t - 1) % 4])


def test_trace_channel_rejects_wrong_shape(tmp_path):
    np.savez(tmp_path / "g.npz", gains=np.ones((2, 5, 6)))
    with pytest.raises(ValueError, match=r"expected \[T, 3, 6\]"):
        NetworkSimulator(load_scenario("small-exact", ["channel.kind=trace", f"channel.trace_file={tmp_path / 'g.npz'}"]))


@pytest.mark.parametrize("arrays, fragment", [
    ({"gains": -np.ones((4, 3, 6))}, "gains must be finite and > 0"),
    ({"gains": np.ones((4, 3, 6)), "client_flops": np.ones((2, 3))}, r"client_flops has shape \(2, 3\); expected \[4, 3\]"),
    ({"gains": np.ones((4, 3, 6)), "client_flops": np.zeros((4, 3))}, "client_flops must be finite and > 0"),
])
def test_trace_channel_validates_values(tmp_path, arrays, fragment):
    np.savez(tmp_path / "g.npz", **arrays)
    with pytest.raises(ValueError, match=fragment):
        NetworkSimulator(load_scenario("small-exact", ["channel.kind=trace", f"channel.trace_file={tmp_path / 'g.npz'}"]))
