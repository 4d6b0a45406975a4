"""The oracle is the exact optimum: checked against brute force, including unused subchannels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.oracle import OracleDecisionMaker, count_surjections, surjective_assignments
from psl_env.system.scenario import load_scenario
from psl_env.system.latency import LatencyModel
from psl_env.models.profile import load_profile
from psl_env.resources.waterfill import water_fill
from psl_env.system.state import Allocation, check_allocation

from .strategies import model_for, models, rounds


def test_surjections():
    for n, m in [(1, 3), (2, 3), (3, 6), (4, 5)]:
        a = surjective_assignments(n, m)
        assert a.shape == (count_surjections(n, m), m)
        assert all(set(row) == set(range(n)) for row in a.tolist())
        assert len({tuple(r) for r in a.tolist()}) == a.shape[0]


def brute_force(model, state):
    """Every cut (vector) x every owner vector in {-1..N-1}^M serving all clients, water-filled power."""
    n, m = model.num_clients, model.num_subchannels
    g = state.observed_gains
    cuts = range(1, model.num_blocks)
    cut_vectors = itertools.product(cuts, repeat=n) if not model.common_cut else ((c,) * n for c in cuts)
    cut_vectors = list(cut_vectors)
    best = np.inf
    for owner in itertools.product(range(-1, n), repeat=m):
        owner = np.array(owner)
        if len(set(owner[owner >= 0].tolist())) < n:
            continue
        mask = owner[None, :] == np.arange(n)[:, None]
        p = (water_fill(np.where(mask, g, 0.0), state.power_budget_w, model.radio.wf_noise_w, model.radio.link)
             * mask).sum(0)
        for cut in cut_vectors:
            best = min(best, model.expected(state.observation(), Allocation(np.array(cut), owner, p)).total)
    return best


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_oracle_matches_brute_force(data):
    model = data.draw(models(max_n=2, max_m=4))
    state = data.draw(rounds(model))
    alloc = OracleDecisionMaker(model).decide(state.observation())
    check_allocation(alloc, state, model.tables)
    assert model.expected(state.observation(), alloc).total == pytest.approx(brute_force(model, state), rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_no_power_perturbation_beats_the_oracle(data):
    model = data.draw(models(max_n=3, max_m=5))
    state = data.draw(rounds(model))
    alloc = OracleDecisionMaker(model).decide(state.observation())
    best = model.expected(state.observation(), alloc).total
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    n = model.num_clients
    for _ in range(10):
        w = rng.exponential(size=alloc.owner.size)
        share = w / np.bincount(alloc.owner, weights=w, minlength=n)[alloc.owner]
        other = Allocation(alloc.cut, alloc.owner, share * state.power_budget_w[alloc.owner])
        assert model.expected(state.observation(), other).total >= best * (1 - 1e-9)


def test_oracle_refuses_large_instances_with_a_clear_message():
    scenario = load_scenario("edgesplit-vgg16")
    model = LatencyModel(scenario, load_profile(scenario.model))
    with pytest.raises(ValueError, match=r"N=6 clients, M=12 subchannels.*above the limit"):
        OracleDecisionMaker(model)
    with pytest.raises(ValueError, match="N=3 clients, M=6 subchannels"):
        OracleDecisionMaker(model_for(3, 6, "epsl", 0.5, "broadcast", "resnet18-32"), max_candidates=100)


def test_oracle_per_device_cuts():
    model = model_for(2, 3, "edgesplit", 0.0, "unicast")
    oracle = OracleDecisionMaker(model)
    assert oracle.per_device and oracle.cuts.shape == ((model.num_blocks - 1) ** 2, 2)
