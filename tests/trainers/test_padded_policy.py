"""One policy for many client counts: trained on N in {3..8} (padded to 10), it decides N = 10 and N = 4."""

from __future__ import annotations

import dataclasses

import numpy as np
import yaml

from psl_env.envs.psl_env import PSLEnv
from trainers.cli import main
from trainers.padded_policy import PaddedPolicy

TRAINED = {"num_subchannels": 16, "num_clients": 10, "dynamics.present_clients": [3, 8]}


def _train(tmp_path) -> str:
    cfg = yaml.safe_load(open(_shipped("ppo-box-many-n")))
    entry = cfg["psl_env/PSL-v0"]
    entry.update(n_envs=4, n_steps=16, batch_size=32, n_epochs=1)
    path = tmp_path / "many-n.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", "--no-progress", "--config", str(path), "--timesteps", "64", "--out", str(out)]) == 0
    return str(out)


def _shipped(name: str):
    from psl_env.config_files import shipped

    return shipped("agents")[name]


def test_a_policy_trained_on_3_to_8_clients_runs_on_10_and_on_4(tmp_path):
    run = _train(tmp_path)
    for n in (10, 4):
        env = PSLEnv(scenario="epsl-resnet18", action_type="dict", overrides={"num_subchannels": 16, "num_clients": n})
        policy = PaddedPolicy.load(run, env.latency_model)
        assert policy.max_clients == 10 and policy.inner.model.scenario.dynamics.present_clients == [3, 8]
        env.reset(seed=100)
        policy.reset(100)
        for _ in range(5):
            obs = env.observation()
            alloc = policy.decide(obs)
            assert alloc.cut.shape == (n,) and np.all(alloc.cut == alloc.cut[0])
            assert np.all(np.bincount(alloc.owner, minlength=n) >= 1) and alloc.owner.max() < n
            info = env.step(env.codec.encode(alloc, obs))[4]
            assert np.array_equal(info["allocation"]["cut"], alloc.cut) and np.isfinite(info["latency_s"])
        if n == 10:  # at the maximum N padding adds nothing: the trained policy's own decision
            env.reset(seed=101)
            policy.reset(101)
            obs = env.observation()
            whole = dataclasses.replace(obs, present=np.ones(n, dtype=bool))
            policy.inner.reset(101)
            alloc, own = policy.decide(obs), policy.inner.decide(whole)
            assert np.array_equal(alloc.owner, own.owner) and np.array_equal(alloc.cut, own.cut)
