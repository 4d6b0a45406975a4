"""EPSL-BCD: feasible, close to the oracle, far better than no optimization."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.epsl_bcd import EPSLBCDOptimizer
from agents.oracle import OracleDecisionMaker
from agents.references import FixedDecisionMaker
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import check_allocation

from .strategies import models, rounds


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_feasible_common_cut(data):
    model = data.draw(models(max_n=5, max_m=10))
    state = data.draw(rounds(model))
    alloc = EPSLBCDOptimizer(model).decide(state.observation())
    check_allocation(alloc, state, model.tables)


def test_pruning_never_changes_the_result():
    sim = NetworkSimulator("epsl-resnet18")
    state = sim.reset(1)
    full = EPSLBCDOptimizer(sim.latency_model, prune=False)
    pruned = EPSLBCDOptimizer(sim.latency_model)
    for _ in range(5):
        a, b = full.decide(state.observation()), pruned.decide(state.observation())
        assert sim.latency_model.evaluate(state, b).total == pytest.approx(sim.latency_model.evaluate(state, a).total)
        state = sim.step(b)[1]


def test_small_gap_to_the_oracle_and_large_gain_over_fixed():
    sim = NetworkSimulator("small-exact")
    model = sim.latency_model
    bcd, oracle, fixed = EPSLBCDOptimizer(model), OracleDecisionMaker(model), FixedDecisionMaker(model)
    gaps, gains = [], []
    for ep in range(2):
        state = sim.reset(100 + ep)
        for _ in range(20):
            o = model.evaluate(state, oracle.decide(state.observation())).total
            alloc = bcd.decide(state.observation())
            b = model.evaluate(state, alloc).total
            gaps.append(b / o - 1)
            gains.append(model.evaluate(state, fixed.decide(state.observation())).total / b)
            state = sim.step(alloc)[1]
    gaps = np.array(gaps)
    assert gaps.min() >= -1e-9
    assert np.median(gaps) <= 0.01 and np.percentile(gaps, 95) <= 0.05
    assert np.median(gains) > 1.5


def test_rejects_bad_options():
    sim = NetworkSimulator("small-exact")
    with pytest.raises(ValueError, match="moves"):
        EPSLBCDOptimizer(sim.latency_model, moves="some")
