"""The phi-only ablation wrapper: the agent picks phi, EPSL-BCD the cut at that phi."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from agents.epsl_bcd import EPSLBCDOptimizer
from psl_env.envs.phi_action import PHI_GRID
from psl_env.envs.train_env import PSLTrainEnv
from psl_env.system.latency import LatencyModel
from psl_env.models.profile import load_profile
from trainers.phi_cut import EPSLBCDCut

EPSL = {"scheme": "epsl", "phi": 0.0, "training.eval_every": 5}


def test_plays_epsl_bcds_cut_at_the_chosen_phi():
    env = EPSLBCDCut(PSLTrainEnv(action_type="assisted", phi_action=True, overrides=EPSL))
    assert env.action_space == spaces.Discrete(len(PHI_GRID))
    env.reset(seed=0)
    base = env.unwrapped
    for idx in (0, 4, 2):
        at_phi = base.scenario.replace(phi=PHI_GRID[idx])
        expected = EPSLBCDOptimizer(LatencyModel(at_phi, load_profile(at_phi.model))).decide(base.observation())
        info = env.step(np.int64(idx))[4]
        assert info["phi"] == PHI_GRID[idx]
        assert np.array_equal(info["allocation"]["cut"], expected.cut)
    with pytest.raises(ValueError, match=r"out of range; allowed 0..4"):
        env.step(7)


def test_needs_the_phi_action_on_the_assisted_codec():
    with pytest.raises(ValueError, match="needs PSLTrain-v0 with phi_action=True"):
        EPSLBCDCut(PSLTrainEnv(action_type="assisted", overrides=EPSL))
