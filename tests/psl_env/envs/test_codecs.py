"""Codecs: every action decodes to a feasible allocation; invalid actions raise; encode/decode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psl_env.envs.batch_alloc import anchor_candidates, priority_owner, water_fill_owned
from psl_env.envs.codecs import InvalidAction
from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.vector import PSLVectorEnv
from psl_env.system.allocation import fixed_allocation
from psl_env.system.solvers import water_fill
from psl_env.system.state import Allocation, check_allocation

SCENARIOS = ("small-exact", "edgesplit-vgg16")
_ENVS: dict = {}


def env_for(action_type: str, scenario: str) -> PSLEnv:
    key = (action_type, scenario)
    if key not in _ENVS:
        _ENVS[key] = PSLEnv(scenario=scenario, action_type=action_type, overrides={"rounds": 1000})
    return _ENVS[key]


def random_state(env: PSLEnv, seed: int, steps: int):
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(steps):
        env.step(env.action_space.sample())
    return env.state


unit = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@st.composite
def action_for(draw, env: PSLEnv):
    codec = env.codec
    c, n, m, cuts = codec.cut_dims, codec.n, codec.m, codec.num_cuts
    if codec.name == "box":
        return np.array(draw(st.lists(unit, min_size=c + n, max_size=c + n)), dtype=np.float32)
    if codec.name == "multidiscrete":
        return np.array([draw(st.integers(0, cuts - 1)) for _ in range(c)]
                        + [draw(st.integers(0, codec.levels - 1)) for _ in range(n)])
    if codec.name == "assisted":
        return draw(st.integers(0, cuts - 1)) if c == 1 else np.array([draw(st.integers(0, cuts - 1)) for _ in range(n)])
    return {"cut": np.array([draw(st.integers(1, cuts)) for _ in range(c)]),
            "owner": np.array([draw(st.integers(-1, n - 1)) for _ in range(m)]),
            "power_fraction": np.array(draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=m, max_size=m)),
                                       dtype=np.float32)}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("action_type", ["dict", "box", "multidiscrete"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 2**16), steps=st.integers(0, 3))
def test_every_action_decodes_feasibly(action_type, scenario, data, seed, steps):
    env = env_for(action_type, scenario)
    state = random_state(env, seed, steps)
    action = data.draw(action_for(env))
    alloc, repairs = env.codec.decode(action, state)
    check_allocation(alloc, state, env.latency_model.num_blocks, env.latency_model.common_cut)
    if action_type != "dict":
        assert repairs == 0
        assert np.all(alloc.owner >= 0)  # every subchannel used
        spent = np.bincount(alloc.owner, weights=alloc.power_w, minlength=state.num_clients)
        np.testing.assert_allclose(spent, state.power_budget_w, rtol=1e-9)
    # the env decodes the same allocation and prices it finitely
    _, reward, _, _, info = env.step(action)
    np.testing.assert_array_equal(info["allocation"]["owner"], alloc.owner)
    np.testing.assert_array_equal(info["allocation"]["power_w"], alloc.power_w)
    assert np.isfinite(reward) and info["latency_s"] > 0


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("solver", ["bcd", "greedy"])
def test_assisted_decodes_feasibly(scenario, solver):
    env = PSLEnv(scenario=scenario, action_type="assisted", action={"solver": solver})
    for seed in range(3):
        state = random_state(env, seed, 1)
        env.action_space.seed(seed)
        alloc, repairs = env.codec.decode(env.action_space.sample(), state)
        check_allocation(alloc, state, env.latency_model.num_blocks, env.latency_model.common_cut)
        assert repairs == 0


def test_dict_repairs_are_counted():
    env = env_for("dict", "small-exact")
    state = random_state(env, 0, 0)
    n, m = env.codec.n, env.codec.m
    action = {"cut": np.array([3]), "owner": np.zeros(m, dtype=np.int64), "power_fraction": np.ones(m, np.float32)}
    alloc, repairs = env.codec.decode(action, state)  # client 0 holds everything: the others are repaired
    assert repairs == n - 1
    check_allocation(alloc, state, env.latency_model.num_blocks, True)
    _, _, _, _, info = env.step(action)
    assert info["repairs"] == n - 1 and info["power_repairs"] == 0
    idle = {"cut": np.array([3]), "owner": np.arange(m) % n, "power_fraction": np.zeros(m, np.float32)}
    _, _, _, _, info = env.step(idle)  # no power anywhere: every client spreads its budget
    assert info["power_repairs"] == n and info["repairs"] == 0


@pytest.mark.parametrize("action_type", ["dict", "assisted"])
def test_exact_encodings_round_trip(action_type):
    env = env_for(action_type, "small-exact")
    state = random_state(env, 1, 2)
    env.action_space.seed(1)
    alloc, _ = env.codec.decode(env.action_space.sample(), state)
    again, _ = env.codec.decode(env.codec.encode(alloc, state), state)
    np.testing.assert_array_equal(again.cut, alloc.cut)
    np.testing.assert_array_equal(again.owner, alloc.owner)
    np.testing.assert_allclose(again.power_w, alloc.power_w, rtol=1e-6)


@pytest.mark.parametrize("action_type", ["box", "multidiscrete"])
def test_low_dimensional_encodings_keep_the_cut(action_type):
    env = env_for(action_type, "edgesplit-vgg16")
    state = random_state(env, 2, 1)
    base = fixed_allocation(env.codec.num_blocks, state.power_budget_w, env.codec.m)
    for cut in range(1, env.codec.num_blocks):
        action = env.codec.encode(Allocation(np.full(env.codec.n, cut), base.owner, base.power_w), state)
        assert env.action_space.contains(action)
        alloc, _ = env.codec.decode(action, state)
        assert np.all(alloc.cut == cut)


BAD_ACTIONS = {
    "box": [np.full(4, np.nan, np.float32), np.full(4, 1.5, np.float32), np.zeros(3, np.float32),
            np.array([0, 0, 0, np.inf], np.float32), "abc"],
    "multidiscrete": [np.array([9, 0, 0, 0]), np.array([0, 5, 0, 0]), np.array([0.5, 0, 0, 0]),
                      np.array([np.nan, 0, 0, 0]), np.array([-1, 0, 0, 0])],
    "assisted": [9, -1, np.nan, 2.5, np.array([1, 2])],
    "dict": [{"cut": np.array([3]), "owner": np.zeros(6, int)},
             {"cut": np.array([0]), "owner": np.zeros(6, int), "power_fraction": np.zeros(6, np.float32)},
             {"cut": np.array([3]), "owner": np.full(6, 3), "power_fraction": np.zeros(6, np.float32)},
             {"cut": np.array([3]), "owner": np.zeros(6, int), "power_fraction": np.full(6, np.nan, np.float32)},
             {"cut": np.array([3]), "owner": np.zeros(6, int), "power_fraction": np.full(6, 2.0, np.float32)},
             [1, 2, 3]],
}


@pytest.mark.parametrize("action_type", list(BAD_ACTIONS))
def test_invalid_actions_raise(action_type):
    env = env_for(action_type, "small-exact")
    env.reset(seed=0)
    for action in BAD_ACTIONS[action_type]:
        with pytest.raises(InvalidAction):
            env.step(action)


def test_nan_message_and_vector_validation():
    env = env_for("box", "small-exact")
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match="NaN"):
        env.step(np.array([0, np.nan, 0, 0], np.float32))
    vec = PSLVectorEnv(3, scenario="small-exact")
    vec.reset(seed=0)
    actions = np.zeros((3, 4), np.float32)
    actions[2, 1] = np.nan
    with pytest.raises(InvalidAction, match="NaN"):
        vec.step(actions)
    with pytest.raises(InvalidAction, match="shape"):
        vec.step(np.zeros((2, 4), np.float32))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 5), n=st.integers(1, 4), extra=st.integers(0, 6),
       spread=st.floats(0.0, 6.0))
def test_water_fill_owned_matches_per_client_water_filling(seed, k, n, extra, spread):
    rng = np.random.default_rng(seed)
    m = n + extra
    owner = rng.integers(-1, n, (k, m))
    inv = rng.exponential(1e-3, (k, m)) * 10.0 ** rng.uniform(-spread, spread, (k, m))
    inv[rng.random((k, m)) < 0.1] = np.inf  # unusable subchannels
    budget = rng.uniform(0.05, 1.0, (k, n))
    power = water_fill_owned(owner, inv, budget)
    assert np.all(np.isfinite(power)) and np.all(power >= 0)
    for r in range(k):
        assert np.all(power[r][owner[r] < 0] == 0)
        for i in range(n):
            mine = owner[r] == i
            if mine.any():
                ref = water_fill(np.where(mine, 1.0 / inv[r], 0.0), budget[r, i], 1.0)
                np.testing.assert_allclose(power[r][mine], ref[mine], rtol=1e-9, atol=1e-15)
    # one round alone or in a batch: bitwise the same
    np.testing.assert_array_equal(water_fill_owned(owner[-1:], inv[-1:], budget[-1:]), power[-1:])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.sampled_from([1, 3, 400]), n=st.integers(1, 6), extra=st.integers(0, 9))
def test_priority_owner_serves_everyone(seed, k, n, extra):
    rng = np.random.default_rng(seed)
    m = n + extra
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-3, 3, (k, n, 1))
    weights = np.exp(rng.uniform(-3, 3, (k, n)))
    owner = priority_owner(gains, weights, anchor_candidates(n, m))
    assert owner.shape == (k, m) and owner.min() >= 0 and owner.max() < n
    counts = np.stack([np.bincount(row, minlength=n) for row in owner])
    assert np.all(counts >= 1)
    # the small-batch and the large-batch code paths agree
    np.testing.assert_array_equal(priority_owner(gains[:1], weights[:1], anchor_candidates(n, m)), owner[:1])


@pytest.mark.parametrize("scenario", ["epsl-resnet18", "edgesplit-vgg16"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_bottleneck_greedy_alone_equals_batched(scenario, seed):
    """The batched path (K > 1) and the one-round path (K = 1) deal the same subchannels."""
    env = env_for("box", scenario)
    greedy = env.codec.greedy
    rng = np.random.default_rng(seed)
    k, n, m = 300, env.codec.n, env.codec.m
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-13, -9, (k, n, 1))
    budget = rng.uniform(0.1, 0.3, (k, n))
    flops = 10.0 ** rng.uniform(9.5, 11.5, (k, n))
    cut = rng.integers(1, env.codec.num_blocks, (k, n))
    if env.latency_model.common_cut:
        cut[:] = cut[:, :1]
    urgency = np.exp(rng.uniform(-2, 2, (k, n)))
    batched = greedy.owner(gains, budget, flops, cut, urgency)
    assert np.all(np.stack([np.bincount(row, minlength=n) for row in batched]) >= 1)
    for r in range(0, k, 37):
        alone = greedy.owner(gains[r:r + 1], budget[r:r + 1], flops[r:r + 1], cut[r:r + 1], urgency[r:r + 1])
        np.testing.assert_array_equal(alone, batched[r:r + 1])
