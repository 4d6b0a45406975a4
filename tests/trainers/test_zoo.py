"""The shipped agent configs load unchanged in RL Baselines3 Zoo (``-conf FILE``) and train there.

Each config runs through the Zoo's own command line entry point (``rl_zoo3.train``) for a few
steps; the policy the Zoo saves must act in the action space of the environment ``psl train``
builds from the same config (the codec the config asks for), and the Zoo must not have passed any
of the project's own keys to the algorithm (it would fail to build).
"""

from __future__ import annotations

import sys
from importlib import resources

import gymnasium as gym
import pytest

from trainers.sb3_env import ENV_ID, ZOO_ALGOS, build_agent_config, make_single_env, read_config_file, \
    shipped_configs

SPACES = {"box": gym.spaces.Box, "multidiscrete": gym.spaces.MultiDiscrete, "assisted": gym.spaces.Discrete}


@pytest.mark.parametrize("name", list(shipped_configs()))
def test_shipped_config_trains_in_rl_zoo3(name, tmp_path, monkeypatch):
    from rl_zoo3 import utils as zoo_utils
    from rl_zoo3.train import train as zoo_train
    from sb3_contrib import MaskablePPO

    # rl_zoo3 2.9 ships no MaskablePPO entry; register it under sb3-contrib's name, as the docs say
    monkeypatch.setitem(zoo_utils.ALGOS, "ppo_mask", MaskablePPO)
    entry, algo = read_config_file(name)
    cfg = build_agent_config(entry, algo)
    zoo_algo = ZOO_ALGOS[cfg.algo]
    logs = tmp_path / "logs"
    with resources.as_file(shipped_configs()[name]) as conf:
        argv = ["rl_zoo3.train", "--algo", zoo_algo, "--env", ENV_ID, "--gym-packages", "psl_env",
                "-conf", str(conf), "-n", "64", "--eval-freq", "-1", "--seed", "0", "--device", "cpu",
                "--num-threads", "1", "-f", str(logs), "--verbose", "0"]
        if cfg.algo in ("sac", "td3"):
            argv += ["-params", "learning_starts:16"]  # a few gradient steps within the 64
        monkeypatch.setattr(sys, "argv", argv)
        zoo_train()
    saved = sorted(logs.glob(f"{zoo_algo}/*/*.zip"))
    assert len(saved) == 1
    model = zoo_utils.ALGOS[zoo_algo].load(saved[0], device="cpu")
    assert model.num_timesteps >= 64
    env = make_single_env(ENV_ID, dict(cfg.env_kwargs))
    assert isinstance(model.action_space, SPACES[cfg.action_type])
    assert model.action_space == env.action_space
    assert model.observation_space.shape == env.observation_space.shape
    env.close()
