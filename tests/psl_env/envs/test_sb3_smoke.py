"""Stable-Baselines3 trains on the environment: PPO on every SB3-compatible codec, SAC on box,
MaskablePPO on the discrete codecs (256 steps each, no logs written)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import psl_env  # noqa: F401 - registers the environment ids

STEPS = 256


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(action_type: str):
    return gym.make("psl_env/PSL-v0", scenario="small-exact", action_type=action_type, overrides={"rounds": 50})


@pytest.mark.parametrize("action_type", ["box", "multidiscrete", "assisted"])
def test_ppo(action_type):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", make(action_type), n_steps=64, batch_size=64, n_epochs=2, seed=0, verbose=0,
                tensorboard_log=None, device="cpu")
    model.learn(total_timesteps=STEPS)
    env = make(action_type)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    _, reward, _, _, info = env.step(action)
    assert model.num_timesteps >= STEPS
    assert reward == pytest.approx(-min(info["latency_ratio"], env.unwrapped.config["max_latency_ratio"]))


def test_ppo_rejects_the_dict_codec():
    from stable_baselines3 import PPO

    with pytest.raises(AssertionError):  # SB3 has no Dict action spaces: use box / multidiscrete / assisted
        PPO("MlpPolicy", make("dict"), device="cpu")


def test_sac_box():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", make("box"), learning_starts=64, batch_size=32, train_freq=4, gradient_steps=1,
                seed=0, verbose=0, tensorboard_log=None, device="cpu")
    model.learn(total_timesteps=STEPS)
    assert model.num_timesteps == STEPS and model.replay_buffer.size() == STEPS
    assert model._n_updates > 0  # gradient steps ran after learning_starts
    action, _ = model.predict(model.env.reset(), deterministic=True)
    assert model.action_space.contains(action[0])


@pytest.mark.parametrize("action_type", ["multidiscrete", "assisted"])
def test_maskable_ppo(action_type):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = make(action_type)
    model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, verbose=0,
                        tensorboard_log=None, device="cpu")
    model.learn(total_timesteps=STEPS)
    masks = get_action_masks(model.get_env())
    assert masks.shape[0] == 1 and masks.all()
