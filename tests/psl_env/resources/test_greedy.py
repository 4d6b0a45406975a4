"""Greedy assignments: proportional fair with anchors, and the tabulated greedy alone or batched."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from psl_env.envs.psl_env import PSLEnv
from psl_env.resources.greedy import anchor_candidates, priority_owner


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.sampled_from([1, 3, 400]), n=st.integers(1, 6), extra=st.integers(0, 9))
def test_priority_owner_serves_everyone(seed, k, n, extra):
    rng = np.random.default_rng(seed)
    m = n + extra
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-3, 3, (k, n, 1))
    weights = np.exp(rng.uniform(-3, 3, (k, n)))
    owner = priority_owner(gains, weights, anchor_candidates(n, m))
    assert owner.shape == (k, m) and owner.min() >= 0 and owner.max() < n
    counts = np.stack([np.bincount(row, minlength=n) for row in owner])
    assert np.all(counts >= 1)
    # the small-batch and the large-batch code paths agree
    np.testing.assert_array_equal(priority_owner(gains[:1], weights[:1], anchor_candidates(n, m)), owner[:1])


@pytest.mark.parametrize("scenario", ["epsl-resnet18", "edgesplit-vgg16"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_tabulated_greedy_alone_equals_batched(scenario, seed):
    """The batched path (K > 1) and the one-round path (K = 1) deal the same subchannels."""
    env = PSLEnv(scenario=scenario, action_type="box")
    greedy = env.codec.greedy
    rng = np.random.default_rng(seed)
    k, n, m = 300, env.codec.n, env.codec.m
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-13, -9, (k, n, 1))
    budget = rng.uniform(0.1, 0.3, (k, n))
    flops = 10.0 ** rng.uniform(9.5, 11.5, (k, n))
    cut = rng.integers(1, env.codec.num_blocks, (k, n))
    if env.latency_model.common_cut:
        cut[:] = cut[:, :1]
    urgency = np.exp(rng.uniform(-2, 2, (k, n)))
    batched = greedy.owner(gains, budget, flops, cut, urgency)
    assert np.all(np.stack([np.bincount(row, minlength=n) for row in batched]) >= 1)
    for r in range(0, k, 37):
        alone = greedy.owner(gains[r:r + 1], budget[r:r + 1], flops[r:r + 1], cut[r:r + 1], urgency[r:r + 1])
        np.testing.assert_array_equal(alone, batched[r:r + 1])
