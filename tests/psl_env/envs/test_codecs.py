"""Codecs: every action decodes to a feasible allocation; invalid actions raise; encode/decode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psl_env.envs.codecs import InvalidAction
from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.vector import PSLVectorEnv
from psl_env.system.allocation import fixed_allocation
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
    return env.state  # the true round; codecs decide on its observation


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
    alloc, repairs = env.codec.decode(action, state.observation())
    check_allocation(alloc, state, env.latency_model.tables)
    if action_type != "dict":
        assert repairs == 0
        assert np.all(alloc.owner >= 0)  # every subchannel used
        spent = np.bincount(alloc.owner, weights=alloc.power_w, minlength=state.num_clients)
        # every budget is spent, but by a client whose every subchannel sits at the spectral-efficiency cap
        radio = env.latency_model.radio
        snr = alloc.power_w * state.observed_gains[alloc.owner, np.arange(alloc.owner.size)] * radio.inv_noise
        at_cap = np.log2(1.0 + snr) >= radio.se_cap * (1 - 1e-9)
        all_at_cap = np.bincount(alloc.owner, weights=~at_cap, minlength=state.num_clients) == 0
        assert np.all(spent <= state.power_budget_w * (1 + 1e-9))
        np.testing.assert_allclose(spent[~all_at_cap], state.power_budget_w[~all_at_cap], rtol=1e-9)
    # the env decodes the same allocation and prices it finitely
    _, reward, _, _, info = env.step(action)
    np.testing.assert_array_equal(info["allocation"]["owner"], alloc.owner)
    np.testing.assert_array_equal(info["allocation"]["power_w"], alloc.power_w)
    assert info["latency_s"] > 0
    assert reward == pytest.approx(-min(info["latency_ratio"], env.config["max_latency_ratio"]))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("solver", ["bcd", "greedy"])
def test_assisted_decodes_feasibly(scenario, solver):
    env = PSLEnv(scenario=scenario, action_type="assisted", action={"solver": solver})
    for seed in range(3):
        state = random_state(env, seed, 1)
        env.action_space.seed(seed)
        alloc, repairs = env.codec.decode(env.action_space.sample(), state.observation())
        check_allocation(alloc, state, env.latency_model.tables)
        assert repairs == 0


def test_dict_repairs_are_counted():
    env = env_for("dict", "small-exact")
    state = random_state(env, 0, 0)
    n, m = env.codec.n, env.codec.m
    action = {"cut": np.array([3]), "owner": np.zeros(m, dtype=np.int64), "power_fraction": np.ones(m, np.float32)}
    alloc, repairs = env.codec.decode(action, state.observation())  # client 0 holds everything: the others are repaired
    assert repairs == n - 1
    check_allocation(alloc, state, env.latency_model.tables)
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
    alloc, _ = env.codec.decode(env.action_space.sample(), state.observation())
    again, _ = env.codec.decode(env.codec.encode(alloc, state.observation()), state.observation())
    np.testing.assert_array_equal(again.cut, alloc.cut)
    np.testing.assert_array_equal(again.owner, alloc.owner)
    np.testing.assert_allclose(again.power_w, alloc.power_w, rtol=1e-6)


@pytest.mark.parametrize("action_type", ["box", "multidiscrete"])
def test_low_dimensional_encodings_keep_the_cut(action_type):
    env = env_for(action_type, "edgesplit-vgg16")
    state = random_state(env, 2, 1)
    base = fixed_allocation(env.codec.num_blocks, state.power_budget_w, env.codec.m)
    for cut in range(1, env.codec.num_blocks):
        action = env.codec.encode(Allocation(np.full(env.codec.n, cut), base.owner, base.power_w), state.observation())
        assert env.action_space.contains(action)
        alloc, _ = env.codec.decode(action, state.observation())
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
