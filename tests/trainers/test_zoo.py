"""The shipped agent configs load unchanged in RL Baselines3 Zoo (``-conf FILE``) and train there
(each on its own env id: PSL-v0, or PSLTrain-v0 with real training in the loop).

Every config runs through the Zoo's own command line entry point (``rl_zoo3.train``) for a few
steps, in a process of its own (importing rl_zoo3 patches gymnasium's ``TimeLimit``, which must
not leak into the other tests). The policy the Zoo saves must act in the action space of the
environment ``psl train`` builds from the same config (the codec the config asks for); the Zoo
would not even build the algorithm had it been passed one of the project's own keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import gymnasium as gym

from trainers.sb3_env import (TRAIN_ENV_ID, ZOO_ALGOS, algo_class, build_agent_config, make_single_env,
                              read_config_file, shipped_configs)

SPACES = {"box": gym.spaces.Box, "multidiscrete": gym.spaces.MultiDiscrete, "assisted": gym.spaces.Discrete}

# Runs the Zoo's `python -m rl_zoo3.train ARGV` once per argument list, in one process.
LAUNCHER = """
import json, sys, traceback
from rl_zoo3 import utils
from rl_zoo3.train import train
from sb3_contrib import MaskablePPO

utils.ALGOS["ppo_mask"] = MaskablePPO  # rl_zoo3 2.9 has no MaskablePPO entry; sb3-contrib's name
outcome = {}
for name, argv in json.loads(sys.argv[1]).items():
    sys.argv = ["rl_zoo3.train", *argv]
    try:
        train()
        outcome[name] = "ok"
    except BaseException:
        outcome[name] = traceback.format_exc(limit=3)[-1500:]
print(json.dumps(outcome))
"""


def test_every_shipped_config_trains_in_rl_zoo3(tmp_path):
    configs = {name: build_agent_config(*read_config_file(name)) for name in shipped_configs()}
    runs = {}
    with resources.as_file(resources.files("psl_env.configs") / "agents") as folder:
        for name, cfg in configs.items():
            argv = ["--algo", ZOO_ALGOS[cfg.algo], "--env", cfg.env_id, "--gym-packages", "psl_env",
                    "-conf", str(folder / f"{name}.yaml"), "-n", "64", "--eval-freq", "-1", "--seed", "0",
                    "--device", "cpu", "--num-threads", "1", "-f", str(tmp_path / "logs" / name), "--verbose", "0"]
            if cfg.algo in ("sac", "td3"):
                argv += ["-params", "learning_starts:16"]  # a few gradient steps within the 64
            if cfg.env_id == TRAIN_ENV_ID:  # real training in the loop: one short rollout
                argv += ["-params", "n_steps:32", "batch_size:32"]
            runs[name] = argv
        done = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(runs)], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {name: result for name, result in outcome.items() if result != "ok"}
    assert not failed, failed
    for name, cfg in configs.items():
        zoo_algo = ZOO_ALGOS[cfg.algo]
        saved = sorted((tmp_path / "logs" / name).glob(f"{zoo_algo}/*/*.zip"))
        assert len(saved) == 1, name
        model = algo_class(cfg.algo).load(saved[0], device="cpu")
        env = make_single_env(cfg.env_id, dict(cfg.env_kwargs), cfg.env_wrapper)
        assert model.num_timesteps >= 64, name
        if not cfg.env_kwargs.get("phi_action"):  # with phi the codec's space gains a phi component
            assert isinstance(model.action_space, SPACES[cfg.action_type]), name
        assert model.action_space == env.action_space, name
        assert model.observation_space.shape == env.observation_space.shape, name
        env.close()
