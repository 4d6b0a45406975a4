"""Registration, construction through gymnasium, and the config / kwargs scheme."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest

import psl_env
from psl_env.envs import registration
from psl_env.envs.config import EnvConfigError
from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.vector import PSLVectorEnv
from psl_env.system.scenario import ScenarioError, load_scenario

from .helpers import IDS


def test_ids_registered_once():
    for env_id in IDS:
        assert env_id in gym.registry
    assert registration.register_envs() == []  # idempotent: nothing registered twice
    assert psl_env.__version__


@pytest.mark.parametrize("env_id", ["psl_env:PSL-v0", "psl_env/PSL-v0"])
def test_make(env_id):
    env = gym.make(env_id, scenario="small-exact", action_type="box", overrides={"phi": 0.3})
    assert isinstance(env.unwrapped, PSLEnv)
    assert env.unwrapped.scenario.phi == 0.3
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_make_vec_entry_point():
    envs = gym.make_vec("psl_env/PSL-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        scenario="small-exact", action_type="multidiscrete")
    assert isinstance(envs, PSLVectorEnv)
    assert envs.num_envs == 3 and envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, *envs.single_observation_space.shape)
    envs.close()


def test_config_and_kwargs():
    defaults = PSLEnv.default_config()
    assert defaults["scenario"] == "epsl-resnet18" and defaults["action_type"] == "box"
    env = PSLEnv(config={"scenario": "small-exact", "action_type": "dict"}, action_type="multidiscrete",
                 overrides=["phi=0.25", "channel.correlation=0.5"])
    assert env.codec.name == "multidiscrete"  # keyword arguments win over config
    assert env.scenario.phi == 0.25 and env.scenario.channel.correlation == 0.5
    scenario = load_scenario("small-exact", {"rounds": 7})
    assert PSLEnv(scenario=scenario).scenario.rounds == 7
    assert PSLEnv(scenario={"num_clients": 2, "num_subchannels": 4}).scenario.num_clients == 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"action_type": "discrete"}, EnvConfigError, "action_type"),
    ({"colour": "red"}, EnvConfigError, "unknown"),
    ({"reward": "seconds"}, EnvConfigError, "reward"),
    ({"action": {"levels": 1}, "action_type": "multidiscrete"}, ValueError, "levels"),
    ({"action": {"bogus": 1}}, ValueError, "bogus"),
    ({"scenario": "no-such-scenario"}, ScenarioError, "shipped"),
    ({"overrides": {"phi": 2.0}}, ScenarioError, "phi"),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        PSLEnv(**kwargs)


def test_vector_rejects_trace_and_bad_args(tmp_path):
    with pytest.raises(EnvConfigError, match="trace_path"):
        PSLVectorEnv(2, scenario="small-exact", trace_path=str(tmp_path / "t.jsonl"))
    with pytest.raises(ValueError, match="autoreset_mode"):
        PSLVectorEnv(2, scenario="small-exact", autoreset_mode="Sometimes")
    with pytest.raises(ValueError, match="num_envs"):
        PSLVectorEnv(0, scenario="small-exact")


def test_import_stays_light():
    code = ("import sys, psl_env, psl_env.envs.psl_env, psl_env.envs.vector, gymnasium as gym;"
            "gym.make('psl_env/PSL-v0', scenario='small-exact').reset(seed=0);"
            "bad = [m for m in ('stable_baselines3', 'torch', 'sb3_contrib') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
