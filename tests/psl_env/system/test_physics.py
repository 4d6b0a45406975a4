"""What the scheme charges: bits per element, EPSL's aggregated rows, EdgeSplit's sync and round
structure, and client memory caps (enforced by the latency, every decision maker and the codecs)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.registry import make_decision_maker
from psl_env.envs.psl_env import PSLEnv
from psl_env.models.profile import load_profile
from psl_env.system.allocation import make_allocation
from psl_env.system.latency import LatencyModel, round_latency
from psl_env.system.scenario import ScenarioError, build_scenario, load_scenario
from psl_env.system.scheme import SchemeTables, aggregated_rows
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import check_allocation

from .helpers import OWNER, POWER, TINY_PROFILE, tiny_model, tiny_state


# -- bits per element --------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [16, 8])
def test_bits_per_element_scale_activations_and_gradients_only(bits):
    base = tiny_model(scheme="sfl", phi=0.0, downlink="unicast")
    small = tiny_model(scheme="sfl", phi=0.0, downlink="unicast", bits_per_element=bits)
    ratio = bits / 32
    np.testing.assert_allclose(small.tables.up_bits, base.tables.up_bits * ratio)
    np.testing.assert_allclose(small.tables.dn_unicast_bits, base.tables.dn_unicast_bits * ratio)
    np.testing.assert_array_equal(small.tables.param_bits, base.tables.param_bits)  # sync, migration
    state = tiny_state(prev_cut=np.array([2, 2]), sync=True)
    alloc = make_allocation(1, OWNER, POWER, 2)
    a, b = round_latency(state, alloc, base), round_latency(state, alloc, small)
    np.testing.assert_allclose(b.uplink_s, a.uplink_s * ratio)
    np.testing.assert_allclose(b.downlink_s, a.downlink_s * ratio)
    assert (b.sync, b.migration) == (a.sync, a.migration) and b.sync > 0 and b.migration > 0
    assert b.total < a.total


def test_bits_per_element_reach_the_shipped_scenario():
    totals = []
    for bits in (32, 16, 8):
        sim = NetworkSimulator(load_scenario("epsl-resnet18", [f"bits_per_element={bits}"]))
        state = sim.reset(0)
        alloc = make_decision_maker("fixed", sim.latency_model).decide(state.observation())
        totals.append(sim.latency_model.evaluate(state, alloc).total)
    assert totals[0] > totals[1] > totals[2]


# -- EPSL's aggregated rows ----------------------------------------------------------------------------

@pytest.mark.parametrize("phi,b,m", [(0.5, 16, 8), (0.3, 16, 5), (0.25, 2, 0), (0.75, 2, 2), (1.0, 7, 7)])
def test_aggregated_rows_follow_one_rounding_rule(phi, b, m):
    assert aggregated_rows(phi, b) == m  # round half to even, as the training engine rounds
    tables = tiny_model(scheme="epsl", phi=phi, batch_size=b).tables
    assert tables.aggregated_rows == m
    grad = b * TINY_PROFILE.grad_bits
    if m:
        np.testing.assert_allclose(tables.dn_broadcast_bits, m / b * grad)
        # the m averaged activations run forward once more on the server
        np.testing.assert_allclose(tables.server_shared_fwd_flops, m * (TINY_PROFILE.fwd_flops[-1]
                                                                        - TINY_PROFILE.fwd_flops))
    else:
        assert tables.dn_broadcast_bits is None and tables.server_shared_fwd_flops is None
    np.testing.assert_allclose(tables.dn_unicast_bits, (b - m) / b * grad)


# -- EdgeSplit -------------------------------------------------------------------------------------

def test_edgesplit_syncs_every_round_unless_told_otherwise():
    assert load_scenario("edgesplit-vgg16").effective_sync_period == 1
    assert load_scenario("edgesplit-vgg16", ["sync_period=0"]).effective_sync_period == 0
    assert load_scenario("edgesplit-vgg16", ["sync_period=4"]).effective_sync_period == 4
    assert load_scenario("epsl-resnet18").effective_sync_period == 0
    sim = NetworkSimulator("edgesplit-vgg16")
    state = sim.reset(0)
    assert state.sync
    lat = sim.latency_model.evaluate(state, make_decision_maker("fixed", sim.latency_model).decide(state.observation()))
    assert lat.sync > 0


def test_per_device_round_structure_is_the_slowest_chain():
    phases = tiny_model(scheme="edgesplit", phi=0.0, downlink="unicast")
    chain = tiny_model(scheme="edgesplit", phi=0.0, downlink="unicast", round_structure="per-device")
    alloc = make_allocation([1, 2], OWNER, POWER, 2)
    a, b = round_latency(tiny_state(), alloc, phases), round_latency(tiny_state(), alloc, chain)
    up = a.client_fwd_s + a.uplink_s
    down = a.downlink_s + a.client_bwd_s
    server = (np.array([2 * 5e6 + 2 * 10e6, 2 * 3e6 + 2 * 6e6])) / 1e9  # each client's rows alone
    own = up + server + down
    assert b.total == pytest.approx(own.max())
    assert b.total < a.total  # no barriers between the phases
    slowest = int(np.argmax(own))
    assert (b.uplink_phase, b.server_compute, b.downlink_phase) == pytest.approx(
        (up[slowest], server[slowest], down[slowest]))
    with pytest.raises(ScenarioError, match="round_structure: 'per-device' is not allowed with phi=0.5"):
        load_scenario("epsl-resnet18", ["round_structure=per-device"])


# -- memory caps ----------------------------------------------------------------------------------------

def caps_model(caps_mb: tuple[float, ...], scheme: str = "epsl") -> LatencyModel:
    phi = 0.5 if scheme == "epsl" else 0.0
    classes = [{"name": f"d{i}", "count": 1, "memory_bytes": c * 1e6, "compute_flops": 1e11 * (i + 1)}
               for i, c in enumerate(caps_mb)]
    scenario = build_scenario({"num_clients": len(caps_mb), "num_subchannels": 2 * len(caps_mb), "scheme": scheme,
                               "phi": phi, "model": "resnet18-64", "batch_size": 16,
                               "devices": {"kind": "classes", "classes": classes}})
    return LatencyModel(scenario, load_profile("resnet18-64"))


def test_memory_of_a_cut_grows_with_depth_and_the_deepest_cut_that_fits():
    tables = caps_model((4000.0,)).tables
    mem = tables.client_memory_bytes[1:-1]
    assert np.all(np.diff(mem) > 0)
    caps = np.array([mem[0], mem[3] + 1.0, mem[-1] * 2])
    np.testing.assert_array_equal(tables.deepest_cut(caps), [1, 4, len(mem)])


def test_a_cut_over_a_cap_never_finishes():
    model = caps_model((40.0, 4000.0))
    sim = NetworkSimulator(model.scenario, model.profile)
    state = sim.reset(0)
    deepest = int(model.tables.deepest_cut(np.array([40e6]))[0])
    fits = make_allocation(deepest, np.arange(4) % 2, np.full(4, 0.1), 2)
    over = make_allocation(deepest + 1, np.arange(4) % 2, np.full(4, 0.1), 2)
    assert np.isfinite(model.evaluate(state, fits).total)
    assert np.isinf(model.evaluate(state, over).total)
    check_allocation(fits, state, model.tables)
    with pytest.raises(Exception, match="needs more memory than clients \\[0\\]"):
        check_allocation(over, state, model.tables)


@pytest.mark.parametrize("scheme", ["epsl", "edgesplit"])
@pytest.mark.parametrize("method", ["epsl-bcd", "greedy", "edgesplit-alt", "fixed", "random"])
def test_no_decision_maker_picks_a_cut_over_a_cap(scheme, method):
    model = caps_model((25.0, 60.0, 4000.0), scheme)
    dm = make_decision_maker(method, model)
    sim = NetworkSimulator(model.scenario, model.profile)
    state = sim.reset(0)
    deepest = model.tables.deepest_cut(state.memory_bytes)
    for _ in range(5):
        alloc = dm.decide(state.observation())
        check_allocation(alloc, state, model.tables)
        assert np.all(alloc.cut <= deepest)
        state = sim.step(alloc)[1]


def test_the_oracle_respects_the_caps():
    model = caps_model((25.0, 4000.0))
    sim = NetworkSimulator(model.scenario.replace(num_subchannels=3), model.profile)
    state = sim.reset(1)
    alloc = make_decision_maker("oracle", sim.latency_model).decide(state.observation())
    check_allocation(alloc, state, sim.latency_model.tables)


@pytest.mark.parametrize("action_type", ["box", "multidiscrete", "assisted", "dict"])
def test_codecs_move_a_cut_over_a_cap_to_the_deepest_that_fits(action_type):
    classes = [{"name": "small", "count": 2, "memory_bytes": 40e6}, {"name": "big", "count": 1, "memory_bytes": 8e9}]
    env = PSLEnv(scenario="epsl-resnet18", action_type=action_type,
                 overrides={"num_clients": 3, "num_subchannels": 6, "devices.kind": "classes",
                            "devices.classes": classes})
    env.reset(seed=0)
    deepest = int(env.latency_model.tables.deepest_cut(np.array([40e6]))[0])
    last = env.latency_model.num_blocks - 1
    action = {"box": np.array([1.0, 0, 0, 0], np.float32), "multidiscrete": np.array([last - 1, 2, 2, 2]),
              "assisted": last - 1, "dict": {"cut": np.array([last]), "owner": np.arange(6) % 3,
                                             "power_fraction": np.full(6, 0.5, np.float32)}}[action_type]
    _, _, _, _, info = env.step(action)
    assert info["allocation"]["cut"].tolist() == [deepest] * 3
    assert info["repairs"] == 1 and np.isfinite(info["latency_s"])
    if env.codec.has_action_masks:
        mask = env.action_masks()[: last]
        assert mask[: deepest].all() and not mask[deepest:].any()


def test_caps_that_fit_no_cut_fail_at_load_with_one_line():
    with pytest.raises(ScenarioError, match=r"devices.classes.memory_bytes: memory cap 1e\+06 bytes of 'd0' fits no "
                                            r"cut; allowed: at least"):
        caps_model((1.0, 4000.0))
    with pytest.raises(ScenarioError, match="devices.memory_bytes: memory cap"):
        LatencyModel(load_scenario("epsl-resnet18", ["devices.memory_bytes=[1e6, 2e6]"]), load_profile("resnet18-64"))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), low=st.floats(1e6, 5e7))
def test_drawn_caps_always_fit_a_cut(seed, low):
    scenario = load_scenario("epsl-resnet18", [f"devices.memory_bytes=[{low}, 1e8]"])
    sim = NetworkSimulator(scenario)
    state = sim.reset(seed)
    assert np.all(state.memory_bytes >= sim.latency_model.tables.min_memory_bytes)
    assert np.all(sim.latency_model.tables.deepest_cut(state.memory_bytes) >= 1)


def test_scheme_tables_are_built_from_the_scenario_alone():
    tables = SchemeTables.build(load_scenario("small-exact"), load_profile("resnet18-32"))
    assert tables.common_cut and tables.aggregated_rows == 8 and not tables.per_device_chain


def test_the_shipped_memory_scenario_binds():
    """``vgg16-memory``: the cameras' cap excludes the cut epsl-bcd takes without it, in most rounds."""
    capped = NetworkSimulator("vgg16-memory")
    free = NetworkSimulator(load_scenario("vgg16-memory", ["devices.classes=[{name: jetson, count: 3, "
                                                           "compute_flops: 1.0e+12, distance_m: 100.0}, {name: camera, "
                                                           "count: 3, compute_flops: 2.0e+11, distance_m: 150.0}]"]))
    deepest = int(capped.latency_model.tables.deepest_cut(np.array([2.56e8]))[0])
    dm_c = make_decision_maker("epsl-bcd", capped.latency_model)
    dm_f = make_decision_maker("epsl-bcd", free.latency_model)
    sc, sf = capped.reset(0), free.reset(0)
    excluded = 0
    for _ in range(10):
        a, b = dm_c.decide(sc.observation()), dm_f.decide(sf.observation())
        assert a.cut[0] <= deepest
        excluded += b.cut[0] > deepest
        sc, sf = capped.step(a)[1], free.step(b)[1]
    assert excluded >= 6
