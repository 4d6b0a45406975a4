"""Water-filling: KKT conditions, optimality, and the by-owner form against the by-sorting form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from psl_env.resources.waterfill import water_fill, water_fill_owned, water_filled_rate
from psl_env.system.radio import dbm_to_w

NOISE = dbm_to_w(-174.0) * 1e6
gains_rows = arrays(np.float64, st.integers(1, 12), elements=st.floats(1e-14, 1e-6))


@settings(max_examples=60, deadline=None)
@given(gains_rows, st.floats(1e-3, 5.0))
def test_water_fill_kkt(g, budget):
    p = water_fill(g, budget, NOISE)
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
@given(seed=st.integers(0, 2**31), k=st.integers(1, 5), n=st.integers(1, 4), extra=st.integers(0, 6),
       spread=st.floats(0.0, 6.0))
def test_water_fill_owned_matches_per_client_water_filling(seed, k, n, extra, spread):
    rng = np.random.default_rng(seed)
    m = n + extra
    owner = rng.integers(-1, n, (k, m))
    inv = rng.exponential(1e-3, (k, m)) * 10.0 ** rng.uniform(-spread, spread, (k, m))
    inv[rng.random((k, m)) < 0.1] = np.inf  # unusable subchannels
    budget = rng.uniform(0.05, 1.0, (k, n))
    power = water_fill_owned(owner, inv, budget)
    assert np.all(np.isfinite(power)) and np.all(power >= 0)
    for r in range(k):
        assert np.all(power[r][owner[r] < 0] == 0)
        for i in range(n):
            mine = owner[r] == i
            if mine.any():
                ref = water_fill(np.where(mine, 1.0 / inv[r], 0.0), budget[r, i], 1.0)
                np.testing.assert_allclose(power[r][mine], ref[mine], rtol=1e-9, atol=1e-15)
    # one round alone or in a batch: bitwise the same
    np.testing.assert_array_equal(water_fill_owned(owner[-1:], inv[-1:], budget[-1:]), power[-1:])
