"""Trained policies as decision makers: the adapter sees what the env shows, decodes as the env does,
and ``psl bench --methods ppo:DIR`` puts it in the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.registry import make_decision_maker
from agents.sb3_policy import SB3Policy
from psl_env.envs.psl_env import PSLEnv
from psl_env.models.profile import load_profile
from psl_env.system.latency import LatencyModel
from psl_env.system.scenario import load_scenario


class ScriptedPolicy:
    """A stand-in for an SB3 model: returns actions from a seeded generator, records observations."""

    def __init__(self, space, seed=0):
        self.action_space = space
        self.observation_space = None
        space.seed(seed)
        self.seen = []
        self.actions = []

    def predict(self, obs, deterministic=True, **kwargs):
        self.seen.append(np.array(obs))
        action = self.action_space.sample()
        self.actions.append(action)
        return action, None


@pytest.mark.parametrize("csi", ["perfect", "delayed"])
@pytest.mark.parametrize("action_type", ["box", "assisted", "multidiscrete"])
def test_adapter_observes_and_decodes_like_the_env(csi, action_type):
    overrides = [f"csi={csi}", "rounds=12"]
    env = PSLEnv(scenario="small-exact", overrides=overrides, action_type=action_type)
    scen = env.scenario
    model = LatencyModel(scen, load_profile(scen.model))
    policy = ScriptedPolicy(env.action_space, seed=5)
    dm = SB3Policy(model, policy, {"action_type": action_type})
    obs, _ = env.reset(seed=11)
    dm.reset(11)
    for _ in range(12):
        state = env.state
        alloc = dm.decide(state.observation())  # what psl bench passes
        np.testing.assert_allclose(policy.seen[-1], obs, rtol=1e-5, atol=1e-5)
        obs, _, _, truncated, info = env.step(policy.actions[-1])
        np.testing.assert_array_equal(alloc.cut, info["allocation"]["cut"])
        np.testing.assert_array_equal(alloc.owner, info["allocation"]["owner"])
        np.testing.assert_allclose(alloc.power_w, info["allocation"]["power_w"])
    assert truncated


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from trainers.cli import main

    root = tmp_path_factory.mktemp("sb3policy")
    cfg = root / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"psl_env/PSL-v0": {
        "algo": "ppo", "n_envs": 4, "env_kwargs": {"action_type": "box"}, "normalize": {"norm_obs": True,
                                                                                           "norm_reward": False},
        "n_steps": 8, "batch_size": 16, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}}}))
    out = root / "run"
    assert main(["train", "--no-progress", "--config", str(cfg), "--scenario", "small-exact", "--set", "rounds=8",
                 "--timesteps", "32", "--out", str(out)]) == 0
    return out


def test_bench_puts_a_trained_policy_in_the_table(trained_run, tmp_path):
    from trainers.bench import run_benchmark

    spec = f"ppo:{trained_run}"
    out = tmp_path / "bench"
    res = run_benchmark("small-exact", [spec, "epsl-bcd", "fixed"], rounds=4, episodes=2, seed=3, out_dir=out)
    stats = res["methods"][spec]
    assert stats["rounds"] == 8 and stats["decision_ms_mean"] > 0
    saved = json.loads((out / "results.json").read_text())
    assert any(name.startswith("ppo") for name in saved["methods"])
    # the same decisions again: deterministic policy
    again = run_benchmark("small-exact", [spec], rounds=4, episodes=2, seed=3)
    np.testing.assert_array_equal(again["per_round"][spec]["latency_s"], res["per_round"][spec]["latency_s"])


def test_load_errors_are_clear(trained_run, tmp_path):
    scen = load_scenario("small-exact")
    model = LatencyModel(scen, load_profile(scen.model))
    with pytest.raises(ValueError, match="ppo policy, not sac"):
        make_decision_maker(f"sac:{trained_run}", model)
    with pytest.raises(ValueError, match="model.zip"):
        make_decision_maker(f"ppo:{tmp_path}", model)
    with pytest.raises(ValueError, match="run folder"):
        make_decision_maker("ppo", model)
    big = load_scenario("epsl-resnet18")
    with pytest.raises(ValueError, match="shape"):
        make_decision_maker(f"ppo:{trained_run}", LatencyModel(big, load_profile(big.model)))
    # a checkpoint inside the run folder loads too
    ckpt = sorted(Path(trained_run, "checkpoints").glob("ckpt_*_steps.zip"))[-1]
    assert isinstance(SB3Policy.load(ckpt, model), SB3Policy)
