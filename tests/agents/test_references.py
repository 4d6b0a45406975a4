"""Fixed, random and greedy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.references import FixedDecisionMaker, GreedyDecisionMaker, RandomDecisionMaker
from psl_env.system.allocation import fixed_allocation
from psl_env.system.state import RoundState, check_allocation

from .strategies import models, rounds


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_feasible(data):
    model = data.draw(models(max_n=5, max_m=10))
    state = data.draw(rounds(model))
    for dm in (FixedDecisionMaker(model), RandomDecisionMaker(model, seed=3), GreedyDecisionMaker(model)):
        check_allocation(dm.decide(state.observation()), state, model.tables)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_fixed_is_the_no_optimization_allocation(data):
    model = data.draw(models())
    state = data.draw(rounds(model))
    a = FixedDecisionMaker(model).decide(state.observation())
    b = fixed_allocation(model.num_blocks, state.power_budget_w, model.num_subchannels)
    for x, y in ((a.cut, b.cut), (a.owner, b.owner), (a.power_w, b.power_w)):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_random_is_seeded(data):
    model = data.draw(models())
    state = data.draw(rounds(model))
    dm = RandomDecisionMaker(model, seed=5)
    first = [dm.decide(state.observation()) for _ in range(3)]
    dm.reset(5)
    again = [dm.decide(state.observation()) for _ in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.owner, b.owner)
        np.testing.assert_array_equal(a.cut, b.cut)
        np.testing.assert_array_equal(a.power_w, b.power_w)


def test_fixed_cut_option():
    from .strategies import model_for

    model = model_for(2, 4, "edgesplit", 0.0, "unicast")
    g = np.full((2, 4), 1e-10)
    state = RoundState(0, 0, np.full(2, 1e10), np.full(2, 0.2), np.full(2, 4e9), g, g)
    assert FixedDecisionMaker(model, cut=1).decide(state.observation()).cut.tolist() == [1, 1]
    with pytest.raises(ValueError, match="cut"):
        FixedDecisionMaker(model, cut=model.num_blocks)
