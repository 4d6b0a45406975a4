"""PSLTrain-v0 with ``phi_action=True``: phi chosen per round, time to accuracy as the return."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env

from psl_env.envs.codecs import InvalidAction
from psl_env.envs.config import EnvConfigError
from psl_env.envs.phi_action import PHI_GRID, PhiAction
from psl_env.envs.train_env import PSLTrainEnv
from psl_env.system.scheme import aggregated_rows
from psl_env.training.engine import SplitTrainingEngine

EPSL = {"scheme": "epsl", "phi": 0.0, "training.eval_every": 2}
COMPARED = ("latency_s", "step_time_s", "sim_time_s", "accuracy", "loss", "test_loss", "evaluated")


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize(("action_type", "phi"), [("assisted", 0.0), ("assisted", 0.5), ("box", 0.25),
                                                  ("multidiscrete", 1.0)])
def test_constant_phi_reproduces_the_fixed_phi_episode_exactly(action_type, phi):
    """Holding phi at p gives the episode of the scenario with phi = p: the same allocations, latencies,
    training losses, accuracies and simulated time, round by round."""
    learned = PSLTrainEnv(action_type=action_type, phi_action=True, overrides=EPSL)
    fixed = PSLTrainEnv(action_type=action_type, overrides={**EPSL, "phi": phi})
    idx = learned.phi_choice.index_of(phi)
    obs_l, _ = learned.reset(seed=4)
    obs_f, _ = fixed.reset(seed=4)
    assert np.array_equal(obs_l[:-1], obs_f) and obs_l[-1] == 0.0
    fixed.action_space.seed(2)
    for _ in range(10):
        act = fixed.action_space.sample()
        obs_l, rew_l, term_l, trunc_l, info_l = learned.step(learned.phi_choice.join(act, idx))
        obs_f, _, term_f, trunc_f, info_f = fixed.step(act)
        assert np.array_equal(obs_l[:-1], obs_f) and obs_l[-1] == np.float32(phi)
        for key in COMPARED:
            assert _same(info_l[key], info_f[key]), key
        for key in ("cut", "owner", "power_w"):
            assert np.array_equal(info_l["allocation"][key], info_f["allocation"][key])
        assert info_l["phi"] == phi and rew_l == -info_l["step_time_s"]
        assert (term_l, trunc_l) == (term_f, trunc_f)
    assert learned.engine.aggregated_rows == fixed.engine.aggregated_rows == aggregated_rows(phi, 32)
    for p_l, p_f in zip(learned.engine.composed_model(0).parameters(), fixed.engine.composed_model(0).parameters()):
        assert torch_equal(p_l, p_f)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_phi_changes_per_round_and_the_return_is_minus_the_simulated_time():
    env = gym.make("psl_env/PSLTrain-v0", action_type="assisted", phi_action=True,
                   overrides={**EPSL, "rounds": 6})
    assert env.action_space == spaces.MultiDiscrete([env.unwrapped.latency_model.num_blocks - 1, len(PHI_GRID)])
    env.reset(seed=0)
    total, rows = 0.0, []
    for t in range(6):
        _, reward, terminated, truncated, info = env.step(np.array([1, t % len(PHI_GRID)]))
        total += reward
        rows.append(env.unwrapped.engine.aggregated_rows)
        assert info["phi"] == PHI_GRID[t % len(PHI_GRID)]
    assert truncated and not terminated  # the round budget: scored with its simulated time
    assert total == pytest.approx(-info["sim_time_s"], rel=1e-12)
    assert rows == [aggregated_rows(PHI_GRID[t % len(PHI_GRID)], 32) for t in range(6)]
    # a larger phi aggregates more rows: the server computes less and the broadcast replaces unicast
    lat = {}
    for p in (0.0, 1.0):
        env.reset(seed=1)
        lat[p] = env.step(np.array([1, PHI_GRID.index(p)]))[4]["latency_s"]
    assert lat[1.0] != lat[0.0]


@pytest.mark.parametrize("scheme", ["psl", "sfl", "edgesplit"])
def test_refused_unless_epsl(scheme):
    with pytest.raises(EnvConfigError, match=r"^phi_action: needs scheme 'epsl'.*allowed: scheme 'epsl'$"):
        PSLTrainEnv(phi_action=True, overrides={"scheme": scheme, "phi": 0.0})


def test_bad_values_refused_in_one_line():
    with pytest.raises(EnvConfigError, match=r"^phi_action: 'yes' is not allowed; allowed: true or false$"):
        PSLTrainEnv(phi_action="yes")
    with pytest.raises(EnvConfigError, match=r"^phi_action: needs training.engine 'inprocess'"):
        PSLTrainEnv(phi_action=True, overrides={**EPSL, "training.engine": "distributed"})
    env = PSLTrainEnv(action_type="assisted", phi_action=True, overrides=EPSL)
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match=r"action phi entry: 5 is out of range; allowed 0..4"):
        env.step(np.array([1, 5]))
    with pytest.raises(ValueError, match="scheme is 'psl'"):
        SplitTrainingEngine("digits-train").set_phi(0.5)


def test_phi_action_space_split_and_join():
    box = PhiAction(spaces.Box(-1.0, 1.0, (3,), dtype=np.float32))
    assert box.space.shape == (4,)
    for i in range(len(PHI_GRID)):
        base, idx = box.split(box.join(np.zeros(3), i))
        assert idx == i and np.array_equal(base, np.zeros(3))
    assert box.split(np.array([0, 0, 0, 1.0], dtype=np.float32))[1] == len(PHI_GRID) - 1
    assert box.split(np.array([0, 0, 0, -1.0], dtype=np.float32))[1] == 0
    with pytest.raises(InvalidAction, match="phi score"):
        box.split(np.array([0, 0, 0, np.nan]))
    disc = PhiAction(spaces.Discrete(4))
    assert disc.space == spaces.MultiDiscrete([4, 5]) and disc.split(np.array([3, 2])) == (3, 2)
    with pytest.raises(ValueError, match=r"allowed: \[0.0, 0.25, 0.5, 0.75, 1.0\]"):
        disc.index_of(0.3)


def test_checkers_and_masks():
    made = gym.make("psl_env/PSLTrain-v0", action_type="multidiscrete", phi_action=True, overrides=EPSL)
    env = made.unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env)
    env.reset(seed=0)
    masks = env.action_masks()
    assert masks.shape == (int(np.sum(env.action_space.nvec)),) and masks[-len(PHI_GRID):].all()
