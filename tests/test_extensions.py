"""A channel model, an optimizer and a codec defined here, registered without editing the package,
run through ``psl bench`` and ``gym.make`` (the registration lines of docs/architecture.md)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import psl_env  # noqa: F401 - registers the environment ids
from agents.base import DecisionMaker
from agents.registry import builtin, register
from psl_env.envs.codecs import CODECS, Codec, Decoded, register_codec
from psl_env.system.allocation import fixed_allocation
from psl_env.system.channels import CHANNELS, Channel, register_channel
from psl_env.system.state import Allocation, Observation
from trainers.cli import main as psl


class FlatChannel(Channel):
    """Every subchannel of client i has gain (i + 1) x 1e-11 times a fresh exponential draw per round."""

    name = "toy-flat"
    latency_independent = True

    def __init__(self, scenario, num_envs, rngs, backend="auto"):
        super().__init__(scenario, num_envs, rngs, backend)
        self._draws = np.ones((self.k, self.n, self.m))

    def reset_env(self, i, devices):
        prev = self._gains(self.rngs[i])
        return prev, self._gains(self.rngs[i])

    def _gains(self, rng):
        return (np.arange(1, self.n + 1)[:, None] * 1e-11) * rng.exponential(size=(self.n, self.m))

    def draw(self, start, stop, active):
        for i in range(start, stop):
            if active is None or active[i]:
                self._draws[i] = self.rngs[i].exponential(size=(self.n, self.m))

    def advance(self, latency_s, active, out, start=0, stop=None):
        stop = self.k if stop is None else stop
        out[start:stop] = (np.arange(1, self.n + 1)[:, None] * 1e-11) * self._draws[start:stop]


class BestFixedCut(DecisionMaker):
    """The fixed allocation at the cut it expects to be fastest on the observed gains."""

    name = "toy-best-fixed-cut"

    def decide(self, obs: Observation) -> Allocation:
        base = fixed_allocation(self.model.num_blocks, obs.power_budget_w, obs.num_subchannels)
        options = [Allocation(np.full(obs.num_clients, j), base.owner, base.power_w)
                   for j in range(1, self.model.num_blocks)]
        return min(options, key=lambda a: self.model.expected(obs, a).total)


class CutOnlyCodec(Codec):
    """Discrete(L - 1): the cut; round-robin subchannels and equal power."""

    name = "toy-cut-only"

    def _space(self):
        return spaces.Discrete(self.num_cuts)

    def validate(self, action):
        return np.asarray(action, dtype=np.int64).reshape(())

    def validate_batch(self, actions, num_envs):
        return np.asarray(actions, dtype=np.int64).reshape(num_envs)

    def decode_batch(self, actions, obs):
        k = obs.num_envs
        cut = np.repeat(actions.reshape(k, 1) + 1, self.n, axis=1)
        allocs = [fixed_allocation(self.num_blocks, obs.power_budget_w[i], self.m) for i in range(k)]
        owner = np.stack([a.owner for a in allocs])
        power = np.stack([a.power_w for a in allocs])
        return Decoded(cut, owner, power, np.zeros(k, np.int64), np.zeros(k, np.int64), True)

    def encode(self, alloc, obs):
        return np.int64(alloc.cut[0] - 1)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register_channel(FlatChannel)
    register("toy-best-fixed-cut", builtin(BestFixedCut), "test optimizer")
    register_codec(CutOnlyCodec)
    yield
    CHANNELS.pop(FlatChannel.name)
    CODECS.pop(CutOnlyCodec.name)


def test_toy_components_run_through_psl_bench(tmp_path, capsys):
    out = tmp_path / "bench"
    code = psl(["bench", "--scenario", "small-exact", "--set", "channel.kind=toy-flat", "--methods",
                "toy-best-fixed-cut,fixed,epsl-bcd", "--rounds", "6", "--episodes", "2", "--out", str(out),
                "--no-progress"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["scenario"]["channel"]["kind"] == "toy-flat"
    lat = {name: stats["mean_latency_s"] for name, stats in results["methods"].items()}
    # the toy optimizer picks the best fixed cut: never slower than the middle one, never faster than BCD
    assert lat["epsl-bcd"] <= lat["toy-best-fixed-cut"] <= lat["fixed"]


def test_toy_components_run_through_gym_make():
    env = gym.make("psl_env/PSL-v0", scenario="small-exact", action_type="toy-cut-only",
                   overrides={"channel.kind": "toy-flat"})
    assert env.action_space == spaces.Discrete(env.unwrapped.latency_model.num_blocks - 1)
    obs, _ = env.reset(seed=0)
    gains = env.unwrapped.state.gains
    np.testing.assert_array_less(0.0, gains)
    _, _, _, _, info = env.step(2)
    assert info["allocation"]["cut"].tolist() == [3, 3, 3]
    assert not np.array_equal(env.unwrapped.state.gains, gains)  # the toy channel moved on
    vec = gym.make_vec("psl_env/PSL-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       scenario="small-exact", action_type="toy-cut-only", overrides={"channel.kind": "toy-flat"})
    vec.reset(seed=0)
    _, reward, *_ = vec.step(np.array([0, 1, 2]))
    assert reward.shape == (3,)
    vec.close()


def test_unregistered_names_are_refused():
    with pytest.raises(ValueError, match="channel.kind: 'nope' is not allowed"):
        gym.make("psl_env/PSL-v0", scenario="small-exact", overrides={"channel.kind": "nope"})
    with pytest.raises(ValueError, match="action_type: 'nope' is not allowed"):
        gym.make("psl_env/PSL-v0", scenario="small-exact", action_type="nope")
