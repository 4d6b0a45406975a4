"""The inner resource solvers: water-filling, greedy assignment, BCD (decisions on an Observation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from psl_env.resources.context import ResourceContext, greedy_assignment, solve_fixed_cut, solve_resources
from psl_env.resources.greedy import bottleneck_greedy
from psl_env.resources.local_search import local_search
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import RoundState, check_allocation
from tests.agents.strategies import model_for, models, rounds

@settings(max_examples=60, deadline=None)
@given(st.data())
def test_solve_resources_feasible_and_priced_exactly(data):
    model = data.draw(models())
    state = data.draw(rounds(model))
    obs = state.observation()
    n = model.num_clients
    cut = data.draw(st.integers(1, model.num_blocks - 1))
    alloc, latency = solve_fixed_cut(model, obs, cut)
    check_allocation(alloc, state, model.tables)
    assert np.all(alloc.owner >= 0)
    assert latency == pytest.approx(model.expected(obs, alloc).total, rel=1e-9)
    # the refinement never loses to its start
    _, start = solve_fixed_cut(model, obs, cut, refine=False)
    assert latency <= start * (1 + 1e-12)
    # per-device cuts and priorities are accepted too
    cuts = np.arange(n) % (model.num_blocks - 1) + 1
    check_allocation(solve_resources(model, obs, cuts, priority=np.arange(1, n + 1)), state,
                     dataclasses.replace(model.tables, common_cut=False))


def test_priority_steers_the_greedy_start():
    model = model_for(3, 9, "psl", 0.0, "unicast")
    rng = np.random.default_rng(1)
    gains = np.full((3, 9), 1e-10) * rng.uniform(0.5, 2.0, (3, 9))
    state = RoundState(0, 0, np.full(3, 1e11), np.full(3, 0.2), np.full(3, 4e9), gains, gains)
    counts = [np.bincount(solve_resources(model, state.observation(), 2, priority=w, refine=False).owner, minlength=3)
              for w in ([1, 1, 1], [50, 1, 1])]
    assert counts[0].tolist() == [3, 3, 3]
    assert counts[1][0] > 3


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_greedy_assignment_serves_everyone_deterministically(data):
    model = data.draw(models(max_n=5, max_m=10))
    state = data.draw(rounds(model))
    w = data.draw(arrays(np.float64, model.num_clients, elements=st.floats(0.0, 1e6)))
    owner = greedy_assignment(state.observation(), w, noise_w=model.radio.noise_w)
    assert owner.shape == (model.num_subchannels,)
    assert np.all(np.bincount(owner, minlength=model.num_clients) >= 1)
    np.testing.assert_array_equal(owner, greedy_assignment(state.observation(), w, noise_w=model.radio.noise_w))


def test_greedy_assignment_rejects_bad_weights():
    model = model_for(2, 3, "psl", 0.0, "unicast")
    g = np.full((2, 3), 1e-10)
    state = RoundState(0, 0, np.ones(2), np.ones(2), np.ones(2), g, g)
    with pytest.raises(ValueError, match="weights"):
        greedy_assignment(state.observation(), [-1.0, 1.0])


def test_local_search_all_moves_is_no_worse_than_start():
    sim = NetworkSimulator("epsl-resnet18")
    state = sim.reset(0)
    model = sim.latency_model
    ctx = ResourceContext(model, state.observation())
    improved = False
    for cut in range(1, model.num_blocks):
        cost = ctx.terms(np.full(state.num_clients, cut))
        start = bottleneck_greedy(ctx, cost.up_off, cost.up_bits)
        start_val = float(cost.total(*ctx.rates(start[None, :] == np.arange(state.num_clients)[:, None])))
        for moves in ("bottleneck", "all"):
            owner, val = local_search(ctx, cost, start, moves=moves)
            assert val <= start_val and np.all(np.bincount(owner, minlength=state.num_clients) >= 1)
            improved |= val < start_val
    assert improved  # the search improves on some start (a search that never moves would fail)
