"""Hand-computed latency cases for each scheme and downlink mode, and properties of the model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psl_env.system.allocation import equal_power, fixed_allocation, make_allocation, round_robin_owner
from psl_env.system.latency import PHASES, cut_terms, rates, round_latency
from psl_env.system.scheme import aggregated_rows
from tests.agents.strategies import models, rounds

from .helpers import OWNER, POWER, tiny_model, tiny_state



def alloc(cut):
    return make_allocation(cut, OWNER, POWER, 2)


# Rates: client 0 holds 2 subchannels (4e6 bit/s), client 1 holds 1 (2e6 bit/s), up and down.
# Client FP: b rho_1 / f = 2e6/1e8 = 0.02 and 0.01; uplink b psi_1 / R = 1.6e4/4e6 = 0.004 and 0.008.

def test_epsl_broadcast_hand_computed():
    lat = round_latency(tiny_state(), alloc(1), tiny_model(scheme="epsl", phi=0.5, downlink="broadcast"))
    assert lat.uplink_phase == pytest.approx(0.024)
    # m = round(0.5 b) = 1 aggregated row per client. TsF = 2 clients x b(rho_L - rho_1)/fs = 2*2*5e6/1e9
    # plus the averaged row's own forward pass, m (rho_L - rho_1)/fs; TsB = (m + 2 (b - m)) x 10e6 / 1e9.
    assert lat.server_compute == pytest.approx(0.02 + 0.005 + 0.03)
    # R_bc = 3 subchannels x 2e6 = 6e6: tD_0 = 0.5*1.6e4/6e6 + 0.5*1.6e4/4e6; tB_0 = 4e6/1e8 = 0.04.
    assert lat.downlink_phase == pytest.approx(0.5 * 1.6e4 / 6e6 + 0.5 * 1.6e4 / 4e6 + 0.04)
    assert lat.total == pytest.approx(0.024 + 0.055 + 0.04 + 8e3 / 6e6 + 2e-3)
    assert lat.sync == 0 and lat.migration == 0


def test_psl_unicast_hand_computed():
    lat = round_latency(tiny_state(), alloc(1), tiny_model(scheme="psl", phi=0.0, downlink="unicast"))
    assert lat.server_compute == pytest.approx(0.02 + 0.04)
    assert lat.downlink_phase == pytest.approx(max(0.004 + 0.04, 0.008 + 0.02))
    assert lat.total == pytest.approx(0.128)


def test_epsl_unicast_and_ignore_downlink():
    uni = round_latency(tiny_state(), alloc(1), tiny_model(scheme="epsl", phi=0.5, downlink="unicast"))
    assert uni.downlink_phase == pytest.approx(0.044)
    ign = round_latency(tiny_state(), alloc(1), tiny_model(scheme="epsl", phi=0.5, downlink="ignore"))
    assert ign.downlink_phase == pytest.approx(0.04)
    np.testing.assert_allclose(ign.downlink_s, 0.0)


def test_edgesplit_per_device_cuts_hand_computed():
    lat = round_latency(tiny_state(), make_allocation([1, 2], OWNER, POWER, 2),
                        tiny_model(scheme="edgesplit", phi=0.0, downlink="unicast"))
    assert lat.uplink_phase == pytest.approx(max(0.02 + 0.004, 0.03 + 0.004))
    assert lat.server_compute == pytest.approx((2 * 5e6 + 2 * 3e6 + 2 * 10e6 + 2 * 6e6) / 1e9)
    assert lat.downlink_phase == pytest.approx(max(0.004 + 0.04, 0.004 + 0.06))
    assert lat.total == pytest.approx(0.146)


def test_sfl_sync_round_hand_computed():
    model = tiny_model(scheme="sfl", phi=0.0, downlink="unicast")
    lat = round_latency(tiny_state(sync=True), alloc(1), model)
    # delta_1 = 1e5 bits: max(1e5/4e6, 1e5/2e6) up + the same down.
    assert lat.sync == pytest.approx(0.1)
    assert lat.total == pytest.approx(0.128 + 0.1)


def test_migration_up_and_down():
    model = tiny_model(scheme="psl", phi=0.0, downlink="unicast")
    lat = round_latency(tiny_state(prev_cut=np.array([2, 2])), alloc(1), model)
    assert lat.migration == pytest.approx(2e5 / 2e6)
    same = round_latency(tiny_state(prev_cut=np.array([1, 1])), alloc(1), model)
    assert same.migration == 0.0
    off = round_latency(tiny_state(prev_cut=np.array([2, 2])), alloc(1), tiny_model(scheme="psl", phi=0.0, migration=False))
    assert off.migration == 0.0


def test_phases_sum_to_total():
    lat = round_latency(tiny_state(prev_cut=np.array([2, 2]), sync=True), alloc(1),
                        tiny_model(scheme="epsl", phi=0.3, sync_period=2))
    assert sum(lat.phases()[k] for k in ("uplink_phase", "server_compute", "downlink_phase", "sync", "migration")) \
        == pytest.approx(lat.total)


def test_client_without_subchannel_is_infinite():
    lat = round_latency(tiny_state(), make_allocation(1, np.array([0, 0, 0]), np.array([0.5, 0.5, 0.5]), 2),
                        tiny_model(scheme="psl", phi=0.0))
    assert np.isinf(lat.total)


def test_batched_equals_single():
    model = tiny_model(scheme="epsl", phi=0.4)
    rng = np.random.default_rng(1)
    gains = rng.exponential(1e-13, (64, 2, 3))
    owner = rng.integers(-1, 2, (64, 3))
    owner[:, 0], owner[:, 1] = 0, 1
    power = rng.uniform(0, 0.3, (64, 3)) * (owner >= 0)
    cut = np.repeat(rng.integers(1, 3, (64, 1)), 2, axis=1)
    prev = np.repeat(rng.integers(1, 3, (64, 1)), 2, axis=1)
    flops = rng.uniform(1e8, 1e9, (64, 2))
    batch = model.price(gains, flops, cut, owner, power, prev, True)
    for k in range(64):
        one = model.price(gains[k], flops[k], cut[k], owner[k], power[k], prev[k], True)
        assert float(one.total) == pytest.approx(batch.total[k], rel=1e-12)
        np.testing.assert_allclose(one.uplink_s, batch.uplink_s[k], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_cut_terms_total_equals_the_breakdown(data):
    """The optimizers' ``CutTerms.total`` (candidate rates) and the priced breakdown are one formula."""
    model = data.draw(models())
    state = data.draw(rounds(model))
    n, m = model.num_clients, model.num_subchannels
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    cut = np.broadcast_to(rng.integers(1, model.num_blocks, size=1 if model.common_cut else n), (n,))
    owner = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    power = equal_power(owner, state.power_budget_w)
    lat = model.evaluate(state, make_allocation(cut, owner, power, n))
    up, down = rates(model.radio, state.gains, owner, power)
    terms = cut_terms(model.tables, cut, state.client_flops, model.broadcast_rate(state.gains), state.prev_cut,
                      state.sync)
    assert float(terms.total(up, down)) == lat.total
    candidates = np.stack([up, up * 2, up / 3])  # a batch of candidate rates broadcasts against the cut
    np.testing.assert_array_equal(terms.total(candidates, down[None]), [terms.total(c, down) for c in candidates])
    parts = sum(lat.phases()[k] for k in PHASES)
    assert parts == pytest.approx(lat.total, rel=1e-12)


# -- properties -------------------------------------------------------------------------------------

gain_arrays = st.lists(st.floats(1e-16, 1e-9), min_size=6, max_size=6).map(lambda v: np.array(v).reshape(2, 3))


@settings(max_examples=60, deadline=None)
@given(gains=gain_arrays, scale=st.floats(1.0, 10.0), cut=st.integers(1, 2), phi=st.floats(0.0, 1.0))
def test_more_power_never_increases_latency(gains, scale, cut, phi):
    model = tiny_model(scheme="epsl", phi=phi)
    state = tiny_state()
    state.gains = state.observed_gains = gains
    low = round_latency(state, make_allocation(cut, OWNER, POWER * 0.1, 2), model).total
    high = round_latency(state, make_allocation(cut, OWNER, POWER * 0.1 * scale, 2), model).total
    assert high <= low * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(gains=gain_arrays, who=st.integers(0, 1), cut=st.integers(1, 2))
def test_one_more_subchannel_never_increases_latency(gains, who, cut):
    model = tiny_model(scheme="psl", phi=0.0)
    state = tiny_state()
    state.gains = state.observed_gains = gains
    base = round_latency(state, make_allocation(cut, np.array([0, 1, -1]), np.array([0.1, 0.1, 0.0]), 2), model).total
    more = round_latency(state, make_allocation(cut, np.array([0, 1, who]), np.array([0.1, 0.1, 0.1]), 2), model).total
    assert more <= base * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(gains=gain_arrays, cut=st.integers(1, 2), mode=st.sampled_from(["broadcast", "unicast", "ignore"]))
def test_phi_zero_equals_psl(gains, cut, mode):
    state = tiny_state(prev_cut=np.array([2, 2]))
    state.gains = state.observed_gains = gains
    a = alloc(cut)
    epsl = round_latency(state, a, tiny_model(scheme="epsl", phi=0.0, downlink=mode))
    psl = round_latency(state, a, tiny_model(scheme="psl", phi=0.0, downlink=mode))
    assert epsl.phases() == psl.phases()


@settings(max_examples=40, deadline=None)
@given(phi=st.floats(0.0, 1.0), cut=st.integers(1, 2))
def test_server_backprop_ratio(phi, cut):
    state = tiny_state()
    n = 2
    epsl = tiny_model(scheme="epsl", phi=phi)
    psl = tiny_model(scheme="psl", phi=0.0)
    # server_compute - TsF isolates TsB; EPSL's TsF adds the m averaged rows' forward pass.
    a = alloc(cut)
    b, m = 2, aggregated_rows(phi, 2)
    per_row = (6e6 - [0, 1e6, 3e6][cut]) / 1e9
    tsf, tsf_epsl = n * b * per_row, (n * b + m) * per_row
    ratio = (round_latency(state, a, epsl).server_compute - tsf_epsl) / (round_latency(state, a, psl).server_compute - tsf)
    phi_rows = m / b  # the share the engine aggregates: round(phi b) rows
    assert ratio == pytest.approx((phi_rows + n * (1 - phi_rows)) / n)


def test_fixed_allocation_is_equal_split():
    owner = round_robin_owner(3, 7)
    assert np.bincount(owner).tolist() == [3, 2, 2]
    power = equal_power(owner, np.array([0.3, 0.2, 0.2]))
    assert np.bincount(owner, power).tolist() == pytest.approx([0.3, 0.2, 0.2])
    a = fixed_allocation(5, np.array([0.3, 0.2, 0.2]), 7)
    assert a.cut.tolist() == [2, 2, 2]
