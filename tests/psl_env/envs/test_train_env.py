"""PSLTrain-v0: PSL-v0 plus real split training per step (checkers, spaces, termination, info, seeding)."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.train_env import LOSS_CLIP, TRAIN_SCENARIO, PSLTrainEnv
from psl_env.training.engine import SplitTrainingEngine
from psl_env.training.time_to_accuracy import step_time_s

from .helpers import assert_same

TRAIN_KEYS = {"accuracy", "loss", "test_loss", "sim_time_s", "train_seed"}
STEP_KEYS = TRAIN_KEYS | {"evaluated", "step_time_s"}
FAST = {"training.eval_every": 2}


def rollout(env, seed: int, steps: int, action_seed: int = 0) -> list:
    out = [env.reset(seed=seed)]
    env.action_space.seed(action_seed)
    for _ in range(steps):
        out.append(env.step(env.action_space.sample()))
    return out


def test_make_without_arguments_trains_the_digits_cnn_offline():
    env = gym.make("psl_env/PSLTrain-v0")
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, PSLTrainEnv) and unwrapped.scenario.name == TRAIN_SCENARIO
    assert unwrapped.scenario.model == "small-cnn" and unwrapped.scenario.training.dataset == "digits"
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and TRAIN_KEYS <= set(info)
    assert info["sim_time_s"] == 0.0 and 0.0 < info["accuracy"] < 0.3  # the untrained model: about chance
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and STEP_KEYS <= set(info)
    assert reward == -min(info["latency_ratio"], 100.0) and not terminated and not truncated
    assert info["sim_time_s"] == info["step_time_s"] == info["latency_s"] > 0
    assert isinstance(unwrapped.engine, SplitTrainingEngine) and unwrapped.engine.round == 1
    env.close()
    assert isinstance(gym.make("psl_env:PSLTrain-v0").unwrapped, PSLTrainEnv)
    assert PSLTrainEnv.default_config()["scenario"] == TRAIN_SCENARIO


@pytest.mark.parametrize("action_type", ["box", "assisted"])
def test_gymnasium_check_env(action_type):
    env = gym.make("psl_env/PSLTrain-v0", action_type=action_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("action_type", ["box", "multidiscrete"])
def test_sb3_check_env(action_type):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("psl_env/PSLTrain-v0", action_type=action_type)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped, warn=True)
    assert not [str(w.message) for w in caught]
    env.close()


def test_same_spaces_channel_and_reward_as_psl_v0():
    """The action space is PSL-v0's; the observation is PSL-v0's plus [accuracy, loss]; the rounds
    are priced and rewarded exactly as PSL-v0 prices them."""
    kwargs = {"scenario": TRAIN_SCENARIO, "action_type": "multidiscrete", "overrides": FAST}
    train, plain = PSLTrainEnv(**kwargs), PSLEnv(**kwargs)
    assert train.action_space == plain.action_space
    base = plain.observation_space
    assert train.observation_space.shape == (base.shape[0] + 2,)
    assert np.array_equal(train.observation_space.low[:-2], base.low)
    assert np.array_equal(train.observation_space.high[-2:], [1.0, LOSS_CLIP])
    a, b = rollout(train, 4, 5), rollout(plain, 4, 5)
    assert np.array_equal(a[0][0][:-2], b[0][0])
    for (obs_t, rew_t, _, _, info_t), (obs_p, rew_p, _, _, info_p) in zip(a[1:], b[1:]):
        assert np.array_equal(obs_t[:-2], obs_p) and rew_t == rew_p
        assert_same({k: info_t[k] for k in info_p}, info_p)
        assert obs_t[-2] == pytest.approx(info_t["accuracy"])
        assert obs_t[-1] == pytest.approx(info_t["loss"] / math.log(10))


def test_first_step_builds_the_engine_at_the_first_cut_and_sim_time_adds_up():
    env = PSLTrainEnv(action_type="assisted", overrides=FAST)
    env.reset(seed=1)
    assert env.engine is None
    total = 0.0
    for cut_index in (0, 0, 2, 2):  # assisted: cut = index + 1
        _, _, _, _, info = env.step(cut_index)
        total += info["step_time_s"]
        if env.engine.round == 1:
            assert env.engine.cut.tolist() == [1] * 5 and not env.last_result.migration_bits.any()
            assert info["migration_s"] == 0.0
    assert env.engine.cut.tolist() == [3] * 5 and env.last_result.round == 4
    assert info["sim_time_s"] == pytest.approx(total)
    assert env.last_result.migration_bits.sum() == 0 and info["migration_s"] == 0.0  # no move in round 4
    assert info["evaluated"] and info["accuracy"] == env.last_result.accuracy


def test_terminates_at_the_target_accuracy():
    env = PSLTrainEnv(action_type="assisted", overrides={**FAST, "training.target_accuracy": 0.4})
    env.reset(seed=0)
    for step in range(1, 201):
        _, _, terminated, truncated, info = env.step(1)
        if terminated:
            break
        assert not truncated and info["accuracy"] < 0.4
    assert terminated and not truncated and info["evaluated"] and info["accuracy"] >= 0.4
    assert step % 2 == 0 and step < 200
    with pytest.raises(gym.error.ResetNeeded):  # the episode is over: no step before reset
        env.step(1)


def test_truncates_at_the_round_limit():
    env = PSLTrainEnv(overrides={"rounds": 3})
    flags = [step[2:4] for step in rollout(env, 0, 3)[1:]]
    assert flags == [(False, False), (False, False), (False, True)]


def test_local_iterations_run_and_are_timed():
    env = PSLTrainEnv(action_type="assisted", overrides={"training.local_iterations": 3})
    env.reset(seed=2)
    _, _, _, _, info = env.step(1)
    phases = info["uplink_phase_s"] + info["server_compute_s"] + info["downlink_phase_s"]
    assert info["step_time_s"] == pytest.approx(info["latency_s"] + 2 * phases)
    assert env.engine.round == 1 and env.engine._sampler.cursors[0] == 3 * env.scenario.batch_size


def test_step_time_helper():
    class Lat:
        total, uplink_phase, server_compute, downlink_phase = 1.5, 0.5, 0.25, 0.5

    assert step_time_s(Lat(), 1) == 1.5 and step_time_s(Lat(), 3) == 1.5 + 2 * 1.25


def test_deterministic_under_seed_and_seedless_resets():
    kwargs = {"action_type": "box", "overrides": FAST}
    a = rollout(PSLTrainEnv(**kwargs), seed=7, steps=4)
    b = rollout(PSLTrainEnv(**kwargs), seed=7, steps=4)
    assert_same(a, b)
    c = rollout(PSLTrainEnv(**kwargs), seed=8, steps=4)
    assert c[0][1]["train_seed"] == 8 and a[0][1]["train_seed"] == 7
    assert not np.array_equal(a[-1][0], c[-1][0])
    seeds = []
    for _ in range(2):
        env = PSLTrainEnv(**kwargs)
        env.reset(seed=7)
        seeds.append([env.reset()[1]["train_seed"] for _ in range(2)])
    assert seeds[0] == seeds[1] and len(set(seeds[0]) | {7}) == 3


def test_same_training_as_the_engine_alone():
    """Stepping the env at a fixed cut trains exactly like the engine on the seeded scenario."""
    env = PSLTrainEnv(action_type="assisted", overrides=FAST)
    env.reset(seed=3)
    engine = SplitTrainingEngine(env.scenario.replace(seed=3), initial_cut=2)
    for _ in range(4):
        _, _, _, _, info = env.step(1)
        res = engine.step(2)
        assert info["loss"] == res.loss and (not res.evaluated or info["accuracy"] == res.accuracy)


def test_untrainable_scenario_fails_at_construction():
    with pytest.raises(ValueError, match="32x32"):
        PSLTrainEnv(scenario="small-exact")  # ResNet-18 at 32x32 on the 8x8 digits


def test_render_ansi():
    env = PSLTrainEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert "accuracy" in env.render() and "simulated time" in env.render()


def test_psl_v0_does_not_import_torch():
    code = ("import sys, psl_env, gymnasium as gym;"
            "gym.make('psl_env/PSL-v0', scenario='small-exact').reset(seed=0);"
            "assert 'psl_env/PSLTrain-v0' in gym.registry;"
            "bad = [m for m in ('stable_baselines3', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
