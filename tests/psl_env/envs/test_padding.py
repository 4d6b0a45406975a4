"""One policy for many client counts: present_clients padding slots and padded observations."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from psl_env.envs.padding import PaddingDevice, pad_observation, unpad_allocation
from psl_env.envs.psl_env import PSLEnv
from psl_env.system.scenario import ScenarioError, load_scenario
from psl_env.system.state import Allocation

BASE = {"num_subchannels": 16}
PADDED = {**BASE, "num_clients": 10, "dynamics.present_clients": [3, 8]}
PER_CLIENT = ("compute", "power_budget")
TAIL = ("prev_cut", "prev_latency", "progress", "sync")


def test_each_episode_draws_how_many_clients_take_part_and_the_rest_stay_absent():
    env = PSLEnv(scenario="epsl-resnet18", overrides={**PADDED, "dynamics.churn_leave": 0.3,
                                                       "dynamics.churn_rejoin": 0.9})
    counts = set()
    for seed in range(12):
        env.reset(seed=seed)
        slots = env.world.slots[0].copy()
        n = int(slots.sum())
        counts.add(n)
        assert 3 <= n <= 8 and slots[:n].all() and not slots[n:].any()
        for _ in range(6):
            info = env.step(env.action_space.sample())[4]
            assert not info["present"][n:].any()  # churn brings back clients of the episode only
            owner = info["allocation"]["owner"]
            assert owner.max() < n and set(owner.tolist()) <= set(np.flatnonzero(info["present"]).tolist())
            assert info["latency_s"] > 0
    assert len(counts) >= 3


def test_padded_observation_equals_the_unpadded_one_on_the_present_clients():
    plain = PSLEnv(scenario="epsl-resnet18", overrides={**BASE, "num_clients": 5})
    padded = PSLEnv(scenario="epsl-resnet18", overrides=PADDED)
    device = PaddingDevice.centred(padded.encoder)
    plain.reset(seed=7)
    for t in range(4):
        obs = plain.observation()
        a = plain.observation_of(obs, 0.3 * t)
        b = padded.observation_of(pad_observation(obs, 10, device), 0.3 * t)
        pa, pb = plain.encoder.slices, padded.encoder.slices
        assert np.array_equal(a[pa["gain_db"]].reshape(5, 16), b[pb["gain_db"]].reshape(10, 16)[:5])
        for key in PER_CLIENT:
            assert np.array_equal(a[pa[key]], b[pb[key]][:5])
        assert np.array_equal(a[pa["prev_cut"].start: pa["sync"].stop], b[pb["prev_cut"].start: pb["sync"].stop])
        assert b[pb["present"]].tolist() == [1.0] * 5 + [0.0] * 5
        # padding slots show the centred device: every feature 0 (budget 1)
        assert np.allclose(b[pb["gain_db"]].reshape(10, 16)[5:], 0.0, atol=1e-5)
        assert np.allclose(b[pb["compute"]][5:], 0.0, atol=1e-6) and np.all(b[pb["power_budget"]][5:] == 1.0)
        plain.step(plain.action_space.sample())


@pytest.mark.parametrize("action_type", ["box", "multidiscrete"])
def test_a_padded_round_decodes_as_the_unpadded_one(action_type):
    """The padding slots take no pick of the codec's greedy: the same cut and priorities of the N real
    clients give the unpadded round's allocation exactly."""
    plain = PSLEnv(scenario="epsl-resnet18", action_type=action_type, overrides={**BASE, "num_clients": 4})
    padded = PSLEnv(scenario="epsl-resnet18", action_type=action_type, overrides=PADDED)
    device = PaddingDevice.centred(padded.encoder)
    plain.reset(seed=1)
    plain.action_space.seed(3)
    for _ in range(6):
        obs = plain.observation()
        action = plain.action_space.sample()
        fill = padded.action_space.sample()[5:]  # whatever the policy says for the padding slots
        small = unpad_allocation(padded.codec.decode(np.concatenate([action, fill]), pad_observation(obs, 10, device))[0], 4)
        want = plain.codec.decode(action, obs)[0]
        assert np.array_equal(small.cut, want.cut) and np.array_equal(small.owner, want.owner)
        np.testing.assert_allclose(small.power_w, want.power_w, rtol=1e-12)
        plain.step(action)

def test_unpad_and_pad_refuse_what_does_not_fit():
    padded = PSLEnv(scenario="epsl-resnet18", overrides=PADDED)
    with pytest.raises(ValueError, match="a padding slot owns a subchannel"):
        unpad_allocation(Allocation(np.ones(10, dtype=np.int64), np.full(16, 9), np.ones(16)), 4)
    with pytest.raises(ValueError, match=r"num_clients: 11 is not allowed; allowed: 1..10"):
        pad_observation(_observation(11), 10, PaddingDevice.centred(padded.encoder))


def _observation(n: int):
    env = PSLEnv(scenario="epsl-resnet18", overrides={**BASE, "num_clients": n})
    env.reset(seed=0)
    return env.observation()


@pytest.mark.parametrize("value", [[0, 3], [4, 3], [3, 11], [2.5, 4], "3..8", [3]])
def test_present_clients_validated_in_one_line(value):
    with pytest.raises(ScenarioError, match=r"^dynamics.present_clients: .* is not allowed; allowed: \[low, high\] "
                                            r"integers with 1 <= low <= high <= num_clients=10, or null$"):
        load_scenario("epsl-resnet18", {**PADDED, "dynamics.present_clients": value})


def test_a_pickled_padded_env_decodes_as_the_original():
    """Resuming a run unpickles the env: its compiled decoder must not depend on memory beyond its own
    tables when a round has fewer clients than slots (it once read past them: garbage after a copy)."""
    env = PSLEnv(scenario="epsl-resnet18", overrides=PADDED)
    env.reset(seed=5)
    copy = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    for _ in range(8):
        action = env.action_space.sample()
        a, b = env.step(action)[4]["allocation"], copy.step(action)[4]["allocation"]
        assert np.array_equal(a["owner"], b["owner"]) and np.array_equal(a["power_w"], b["power_w"])
