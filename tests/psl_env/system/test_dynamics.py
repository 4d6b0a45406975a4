"""Dynamics: background load, churn, energy and batteries (scenario section ``dynamics``)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.registry import make_decision_maker
from psl_env.models.profile import load_profile
from psl_env.system.allocation import fixed_allocation
from psl_env.system.latency import LatencyModel
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import Allocation

CHURN = ["dynamics.churn_leave=0.4", "dynamics.churn_rejoin=0.3", "num_clients=4", "num_subchannels=6",
         "migration=true", "scheme=psl", "phi=0"]


def test_paper_scenarios_have_no_dynamics_and_dynamic_edge_has_them():
    for name in ("epsl-resnet18", "edgesplit-vgg16", "small-exact", "digits-train"):
        assert not load_scenario(name).has_dynamics, name
    scen = load_scenario("dynamic-edge")
    assert scen.has_dynamics and scen.num_clients == 8 and scen.num_subchannels == 16
    assert scen.dynamics.load_levels == [1.0, 0.5, 0.1] and scen.dynamics.load_stay == 0.9
    assert scen.dynamics.churn_leave == 0.02 and scen.dynamics.churn_rejoin == 0.2
    assert scen.dynamics.battery_j is None and scen.dynamics.energy_weight == 0.0
    assert scen.channel.correlation == 0.9 and scen.channel.mobility_step_s == 1.0


def test_load_is_a_markov_chain_over_the_levels_scaling_each_devices_rate():
    sim = NetworkSimulator(load_scenario("small-exact", ["dynamics.load_levels=[1.0, 0.5, 0.1]",
                                                         "dynamics.load_stay=0.8"]))
    state = sim.reset(1)
    base = state.client_flops / state.availability
    seen, stays, moves = [], 0, 0
    for _ in range(400):
        a = fixed_allocation(sim.profile.num_blocks, state.power_budget_w, state.num_subchannels)
        _, nxt = sim.step(a)
        np.testing.assert_allclose(nxt.client_flops, base * nxt.availability)
        assert set(np.round(nxt.availability, 9).tolist()) <= {1.0, 0.5, 0.1}
        same = nxt.availability == state.availability
        stays, moves = stays + int(same.sum()), moves + int((~same).sum())
        seen.append(nxt.availability)
        state = nxt
    assert stays / (stays + moves) == pytest.approx(0.8, abs=0.04)
    assert set(np.concatenate(seen).round(9).tolist()) == {1.0, 0.5, 0.1}


def _rounds_with_absent(sim, decision_maker, rounds=40, seed=2):
    state = sim.reset(seed)
    out = []
    for _ in range(rounds):
        alloc = decision_maker.decide(state.observation())
        lat, nxt = sim.step(alloc)
        out.append((state, alloc, lat))
        state = nxt
    return out


@pytest.mark.parametrize("method", ["epsl-bcd", "greedy", "fixed", "random", "oracle", "hysteresis", "mpc",
                                    "edgesplit-alt"])
def test_absent_devices_get_no_subchannel_and_are_not_waited_for(method):
    overrides = CHURN + (["scheme=edgesplit"] if method == "edgesplit-alt" else [])
    scen = load_scenario("small-exact", overrides)
    sim = NetworkSimulator(scen)
    model = LatencyModel(scen, load_profile(scen.model))
    dm = make_decision_maker(method, model, seed=0)
    dm.reset(2)
    absent_rounds = 0
    for state, alloc, lat in _rounds_with_absent(sim, dm):
        present = state.present
        assert present.any()
        owners = set(alloc.owner[alloc.owner >= 0].tolist())
        assert owners == set(np.flatnonzero(present).tolist())  # every present client served, no absent one
        if present.all():
            continue
        absent_rounds += 1
        # not waited for: the same round with the absent devices crippled costs the same
        slow = state.client_flops.copy()
        slow[~present] = 1.0  # one FLOP/s: they would dominate every maximum
        again = model.price(state.gains, slow, alloc.cut, alloc.owner, alloc.power_w, state.prev_cut,
                            state.sync, memory_bytes=state.memory_bytes, present=present)
        assert float(again.total) == pytest.approx(float(lat.total), rel=1e-12)
        assert np.isfinite(lat.total)
    assert absent_rounds > 5


def test_energy_of_a_round_by_hand():
    scen = load_scenario("small-exact", ["dynamics.kappa=1e-27", "dynamics.load_levels=[1.0, 0.5]",
                                         "dynamics.load_stay=0.5", "sync_period=1", "scheme=sfl", "phi=0",
                                         "migration=true"])
    sim = NetworkSimulator(scen)
    state = sim.reset(4)
    tables = sim.latency_model.tables
    n, m = state.num_clients, state.num_subchannels
    owner = np.arange(m) % n
    power = np.full(m, 0.01)
    alloc = Allocation(np.full(n, 3), owner, power)
    lat, state2 = sim.step(alloc)
    e = sim.last_energy
    for i in range(n):
        f = state.client_flops[i]
        flops = tables.client_fwd_flops[3] + tables.client_bwd_flops[3]
        assert e.compute[i] == pytest.approx(1e-27 * f * f * flops, rel=1e-12)
        watts = power[owner == i].sum()
        rate = lat.uplink_rate_bps[i]
        seconds = lat.uplink_s[i] + tables.param_bits[3] / rate  # activations, then the sync upload
        assert e.transmit[i] == pytest.approx(watts * seconds, rel=1e-12)
    # the next round moves the cut toward the input: the blocks handed to the server are transmitted too
    alloc2 = Allocation(np.full(n, 1), owner, power)
    lat2, _ = sim.step(alloc2)
    moved = tables.param_bits[3] - tables.param_bits[1]
    for i in range(n):
        watts = power[owner == i].sum()
        seconds = lat2.uplink_s[i] + (tables.param_bits[1] + moved) / lat2.uplink_rate_bps[i]
        assert sim.last_energy.transmit[i] == pytest.approx(watts * seconds, rel=1e-12)


def test_an_empty_battery_drops_the_device_for_good():
    scen = load_scenario("small-exact", ["dynamics.battery_j=5", "num_clients=3"])
    sim = NetworkSimulator(scen)
    state = sim.reset(0)
    batteries, alive_counts = [], []
    for _ in range(200):
        a = fixed_allocation(sim.profile.num_blocks, state.power_budget_w, state.num_subchannels)
        present = state.present
        keep = Allocation(a.cut, np.where(present[np.maximum(a.owner, 0)], a.owner, -1), a.power_w)
        if not present.all():  # give the absent devices' subchannels to a present one
            first = int(np.flatnonzero(present)[0]) if present.any() else 0
            keep = Allocation(a.cut, np.where(keep.owner < 0, first, keep.owner), a.power_w)
        if not present.any():
            break
        _, state = sim.step(keep)
        batteries.append(state.battery_j.copy())
        alive_counts.append(int(state.present.sum()))
    assert min(alive_counts) < 3  # some device ran dry
    gone = batteries[-1] <= 0
    assert gone.any() and not state.present[gone].any()
    assert np.all(np.diff(np.asarray(batteries), axis=0) <= 1e-12)  # batteries only drain


def test_the_assisted_codec_solves_for_the_present_devices_only():
    import gymnasium as gym

    import psl_env  # noqa: F401
    from psl_env.resources.context import FixedCutSolver

    env = gym.make("psl_env/PSL-v0", scenario="small-exact", overrides=CHURN, action_type="assisted")
    core = env.unwrapped
    solver = FixedCutSolver(core.latency_model)
    env.reset(seed=5)
    checked = 0
    for _ in range(30):
        obs = core.state.observation()
        _, _, _, truncated, info = env.step(np.int64(2))  # cut 3
        if obs.present is not None and not obs.present.all():
            sub, expand = obs.present_subproblem()
            want = expand(solver.solve(sub, 3)[0])
            np.testing.assert_array_equal(info["allocation"]["owner"], want.owner)
            checked += 1
        if truncated:
            env.reset()
    assert checked > 3
