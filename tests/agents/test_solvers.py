"""The inner resource solvers: water-filling, the rate-based latency, greedy assignment, BCD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from psl_env.system.allocation import equal_power
from psl_env.system.latency import dbm_to_w
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.solvers import (CutCost, ResourceContext, greedy_assignment, local_search, solve_fixed_cut,
                                    solve_resources, water_fill, water_filled_rate)
from psl_env.system.scenario import load_scenario
from psl_env.system.state import Allocation, RoundState, check_allocation

from .strategies import model_for, models, rounds

NOISE = dbm_to_w(-174.0) * 1e6
gains_rows = arrays(np.float64, st.integers(1, 12), elements=st.floats(1e-14, 1e-6))


@settings(max_examples=60, deadline=None)
@given(gains_rows, st.floats(1e-3, 5.0))
def test_water_fill_kkt(g, budget):
    p = water_fill(g, budget, NOISE, 1e6)
    assert p.shape == g.shape and np.all(p >= 0)
    assert p.sum() == pytest.approx(budget, rel=1e-9)
    a = NOISE / g
    level = (p + a)[p > 0]
    # active subchannels share one water level; inactive ones sit above it
    assert np.allclose(level, level[0], rtol=1e-9)
    assert np.all(a[p == 0] >= level[0] * (1 - 1e-9))


@settings(max_examples=40, deadline=None)
@given(gains_rows, st.floats(1e-3, 5.0), st.integers(0, 2**31 - 1))
def test_water_fill_beats_other_feasible_powers(g, budget, seed):
    rate = water_filled_rate(g, budget, NOISE, 1e6)
    direct = 1e6 * np.log2(1 + water_fill(g, budget, NOISE) * g / NOISE).sum()
    assert rate == pytest.approx(direct, rel=1e-9)
    rng = np.random.default_rng(seed)
    for p in [np.full(g.size, budget / g.size), *(rng.dirichlet(np.ones(g.size), 5) * budget)]:
        assert 1e6 * np.log2(1 + p * g / NOISE).sum() <= rate * (1 + 1e-9)


def test_water_fill_vectorized_and_masked():
    rng = np.random.default_rng(0)
    g = 10.0 ** rng.uniform(-13, -8, (4, 3, 6))
    g[0, 0, :3] = 0.0  # subchannels this client does not hold
    budget = rng.uniform(0.1, 1.0, (4, 3))
    p = water_fill(g, budget, NOISE)
    for idx in np.ndindex(4, 3):
        np.testing.assert_allclose(p[idx], water_fill(g[idx], budget[idx], NOISE), rtol=1e-12)
    assert np.all(p[0, 0, :3] == 0)
    np.testing.assert_allclose(p.sum(-1), budget, rtol=1e-9)
    assert np.all(water_fill(np.zeros(5), 1.0, NOISE) == 0)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_cut_cost_matches_latency_model(data):
    model = data.draw(models())
    state = data.draw(rounds(model))
    n, m = model.num_clients, model.num_subchannels
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    cut = rng.integers(1, model.num_blocks, size=1 if model.common_cut else n)
    cut = np.broadcast_to(cut, (n,)).astype(np.int64)
    owner = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    power = equal_power(owner, state.power_budget_w)
    lat = model.evaluate(state, Allocation(cut, owner, power), observed=True)
    r_up, r_dn = model.client_rates(state.observed_gains, owner, power)
    cost = CutCost.build(model, state, cut)
    assert float(cost.total(r_up, r_dn)) == pytest.approx(lat.total, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_solve_resources_feasible_and_priced_exactly(data):
    model = data.draw(models())
    state = data.draw(rounds(model))
    n = model.num_clients
    cut = data.draw(st.integers(1, model.num_blocks - 1))
    alloc, latency = solve_fixed_cut(model, state, cut)
    check_allocation(alloc, state, model.num_blocks, model.common_cut)
    assert np.all(alloc.owner >= 0)
    assert latency == pytest.approx(model.evaluate(state, alloc, observed=True).total, rel=1e-9)
    # the refinement never loses to its start
    _, start = solve_fixed_cut(model, state, cut, refine=False)
    assert latency <= start * (1 + 1e-12)
    # per-device cuts and priorities are accepted too
    cuts = np.arange(n) % (model.num_blocks - 1) + 1
    check_allocation(solve_resources(model, state, cuts, priority=np.arange(1, n + 1)), state, model.num_blocks,
                     False)


def test_solve_resources_decides_on_observed_gains():
    sim = NetworkSimulator(load_scenario("small-exact", ["csi=delayed"]))
    state = sim.reset(3)
    state = sim.step(solve_resources(sim.latency_model, state.observed(), 4))[1]
    assert not np.array_equal(state.gains, state.observed_gains)
    a = solve_resources(sim.latency_model, state, 4)
    b = solve_resources(sim.latency_model, state.observed(), 4)
    np.testing.assert_array_equal(a.owner, b.owner)
    np.testing.assert_allclose(a.power_w, b.power_w)


def test_priority_steers_the_greedy_start():
    model = model_for(3, 9, "psl", 0.0, "unicast")
    rng = np.random.default_rng(1)
    gains = np.full((3, 9), 1e-10) * rng.uniform(0.5, 2.0, (3, 9))
    state = RoundState(0, 0, np.full(3, 1e11), np.full(3, 0.2), np.full(3, 4e9), gains, gains)
    counts = [np.bincount(solve_resources(model, state, 2, priority=w, refine=False).owner, minlength=3)
              for w in ([1, 1, 1], [50, 1, 1])]
    assert counts[0].tolist() == [3, 3, 3]
    assert counts[1][0] > 3


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_greedy_assignment_serves_everyone_deterministically(data):
    model = data.draw(models(max_n=5, max_m=10))
    state = data.draw(rounds(model))
    w = data.draw(arrays(np.float64, model.num_clients, elements=st.floats(0.0, 1e6)))
    owner = greedy_assignment(state, w, noise_w=model.noise_w)
    assert owner.shape == (model.num_subchannels,)
    assert np.all(np.bincount(owner, minlength=model.num_clients) >= 1)
    np.testing.assert_array_equal(owner, greedy_assignment(state, w, noise_w=model.noise_w))


def test_greedy_assignment_rejects_bad_weights():
    model = model_for(2, 3, "psl", 0.0, "unicast")
    g = np.full((2, 3), 1e-10)
    state = RoundState(0, 0, np.ones(2), np.ones(2), np.ones(2), g, g)
    with pytest.raises(ValueError, match="weights"):
        greedy_assignment(state, [-1.0, 1.0])


def test_local_search_all_moves_is_no_worse_than_start():
    sim = NetworkSimulator("epsl-resnet18")
    state = sim.reset(0)
    model = sim.latency_model
    ctx = ResourceContext.of(model, state)
    cost = ctx.cost(state, np.full(state.num_clients, 3))
    start = ctx.greedy(cost.up_off, cost.up_bits)
    start_val = float(cost.total(*ctx.rates(start[None, :] == np.arange(state.num_clients)[:, None])))
    for moves in ("bottleneck", "all"):
        owner, val = local_search(ctx, cost, start, moves=moves)
        assert val <= start_val and np.all(np.bincount(owner, minlength=state.num_clients) >= 1)
