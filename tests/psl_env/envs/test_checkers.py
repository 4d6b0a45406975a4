"""gymnasium's and Stable-Baselines3's environment checkers on every id and codec."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from .helpers import CODECS, IDS


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("action_type", CODECS)
def test_gymnasium_check_env(env_id, action_type):
    env = gym.make(env_id, action_type=action_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings are failures here
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("action_type", CODECS)
def test_sb3_check_env(env_id, action_type):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    # per-device cuts (EdgeSplit) for one codec, the default common-cut scenario for the others
    scenario = {"scenario": "edgesplit-vgg16"} if action_type == "box" else {}
    env = gym.make(env_id, action_type=action_type, **scenario)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped, warn=True)
    messages = [str(w.message) for w in caught]
    unexpected = [m for m in messages if "Dict or Tuple" not in m]
    if action_type == "dict":  # SB3 does not train on Dict actions: the only warning allowed
        assert any("Dict or Tuple" in m for m in messages)
    assert not unexpected, unexpected
    env.close()
