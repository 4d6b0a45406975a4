"""The link model: noise figures, the spectral-efficiency cap and SNR gap, capped water-filling
(against a numeric optimizer), the ergodic mode, and one round hand-computed at the defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from psl_env.models.profile import load_profile
from psl_env.resources.waterfill import Link, water_fill, water_fill_owned, water_filled_rate
from psl_env.system.allocation import make_allocation
from psl_env.system.fading import ergodic_se, ergodic_se_exact
from psl_env.system.latency import LatencyModel, round_latency
from psl_env.system.radio import Radio, dbm_to_w
from psl_env.system.scenario import build_scenario, load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import RoundState

from .helpers import TINY_PROFILE

CAP = 8 * 948 / 1024  # 3GPP NR 256-QAM at code rate 948/1024


def test_defaults_are_the_documented_3gpp_values():
    radio = Radio.of(load_scenario("epsl-resnet18"))
    thermal = dbm_to_w(-174.0) * 1e6
    assert radio.noise_w == pytest.approx(thermal * 10 ** 0.5)  # 5 dB at the server
    assert radio.down_noise_w == pytest.approx(thermal * 10 ** 0.9)  # 9 dB at a client
    assert radio.se_cap == CAP == 7.40625 and radio.gap == 1.0 and not radio.averaged


def test_cap_gap_and_noise_figures_in_the_spectral_efficiency():
    radio = Radio(1e6, 1e-20, 1e-14, 2e-14, 1.0, gap=2.0, se_cap=5.0)
    # uplink SNR = p g / (N0 W F_s Gamma): 1 W x 4e-14 / (1e-14 x 2) = 2
    assert radio.uplink_se(np.array([4e-14]), 1.0)[0] == pytest.approx(math.log2(3.0))
    # downlink at Ps = 1 W with the client's noise: 4e-14 / (2e-14 x 2) = 1
    assert radio.downlink_se(np.array([4e-14]))[0] == pytest.approx(1.0)
    assert radio.uplink_se(np.array([1e-6]), 1.0)[0] == 5.0  # capped
    uncapped = Radio(1e6, 1e-20, 1e-14, 1e-14, 1.0)
    assert uncapped.uplink_se(np.array([1e-6]), 1.0)[0] > 20


def test_a_round_hand_computed_at_the_new_defaults():
    """TINY_PROFILE, 2 clients, 3 subchannels, PSL, unicast: with noise figures 5 / 9 dB and the cap."""
    scenario = build_scenario({"num_clients": 2, "num_subchannels": 3, "batch_size": 2, "model": "tiny",
                               "scheme": "psl", "phi": 0.0, "downlink": "unicast",
                               "server": {"compute_flops": 1e9, "power_per_subchannel_w": 1.0}})
    model = LatencyModel(scenario, TINY_PROFILE)
    n0w = dbm_to_w(-174.0) * 1e6
    g = np.array([[30.0, 3.0, 1e6], [3.0, 1e6, 30.0]]) * n0w  # SNR per watt before the noise figures
    state = RoundState(0, 0, np.array([1e8, 2e8]), np.array([1.0, 1.0]), np.full(2, 1e9), g, g)
    alloc = make_allocation(1, np.array([0, 0, 1]), np.array([0.5, 0.5, 1.0]), 2)
    lat = round_latency(state, alloc, model)
    fs, fc = 10 ** 0.5, 10 ** 0.9
    up0 = 1e6 * (math.log2(1 + 0.5 * 30 / fs) + math.log2(1 + 0.5 * 3 / fs))
    up1 = 1e6 * min(math.log2(1 + 1.0 * 30 / fs), CAP)
    dn0 = 1e6 * (math.log2(1 + 30 / fc) + math.log2(1 + 3 / fc))
    dn1 = 1e6 * math.log2(1 + 30 / fc)
    np.testing.assert_allclose(lat.uplink_rate_bps, [up0, up1], rtol=1e-12)
    np.testing.assert_allclose(lat.downlink_rate_bps, [dn0, dn1], rtol=1e-12)
    t_up = np.array([2e6 / 1e8 + 1.6e4 / up0, 2e6 / 2e8 + 1.6e4 / up1])  # b psi_1 = 2 x 8e3 bits
    t_dn = np.array([1.6e4 / dn0 + 4e6 / 1e8, 1.6e4 / dn1 + 4e6 / 2e8])
    server = (2 * 2 * 5e6 + 2 * 2 * 10e6) / 1e9
    assert lat.total == pytest.approx(t_up.max() + server + t_dn.max(), rel=1e-12)
    # a subchannel at 1e6 x SNR would exceed the cap: the cap holds it at 7.40625 bit/s/Hz
    capped = round_latency(state, make_allocation(1, np.array([0, 1, 0]), np.array([0.5, 1.0, 0.5]), 2), model)
    assert capped.uplink_rate_bps[1] == pytest.approx(1e6 * CAP)


# -- capped water-filling ---------------------------------------------------------------------------

def numeric_best_rate(g: np.ndarray, budget: float, noise: float, cap: float) -> float:
    """max sum min(log2(1 + p g / noise), cap) over p >= 0, sum p <= budget, by SLSQP from several starts."""
    def neg(p):  # the smooth objective: power past the cap is capped away explicitly
        a = noise / g
        return -np.sum(np.log2(1 + np.minimum(p, (2 ** cap - 1) * a) / a))

    best = -np.inf
    k = g.size
    for start in (np.full(k, budget / k), budget * np.eye(k)[0], budget * np.eye(k)[-1]):
        res = minimize(neg, start, method="SLSQP", bounds=[(0, budget)] * k,
                       constraints=[{"type": "ineq", "fun": lambda p: budget - p.sum()}], options={"ftol": 1e-12})
        p = np.clip(res.x, 0.0, None)
        p *= min(1.0, budget / p.sum()) if p.sum() > 0 else 1.0  # SLSQP may overstep the budget slightly
        best = max(best, -neg(p))
    return best


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 6), spread=st.floats(0.0, 4.0), budget=st.floats(0.01, 2.0))
def test_capped_water_filling_is_optimal(seed, k, spread, budget):
    rng = np.random.default_rng(seed)
    noise = 1e-14
    g = noise * 10.0 ** rng.uniform(0.0, spread, k) * 20.0
    link = Link(cap=CAP)
    p = water_fill(g, budget, noise, link)
    a = noise / g
    assert np.all(p >= 0) and p.sum() <= budget * (1 + 1e-12)
    assert np.all(p <= (2 ** CAP - 1) * a * (1 + 1e-12))
    rate = water_filled_rate(g, budget, noise, 1.0, link)
    assert rate == pytest.approx(np.minimum(np.log2(1 + p / a), CAP).sum(), rel=1e-12)
    assert rate >= numeric_best_rate(g, budget, noise, CAP) - 1e-6
    if not np.isclose(p.sum(), budget, rtol=1e-9):  # power left over only when every subchannel is at the cap
        np.testing.assert_allclose(p, (2 ** CAP - 1) * a, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 4), n=st.integers(1, 3), extra=st.integers(0, 6))
def test_capped_water_filling_by_owner_equals_by_sorting(seed, k, n, extra):
    rng = np.random.default_rng(seed)
    m = n + extra
    owner = rng.integers(-1, n, (k, m))
    inv = 10.0 ** rng.uniform(-4, 0, (k, m))
    budget = rng.uniform(0.05, 2.0, (k, n))
    link = Link(cap=CAP)
    power = water_fill_owned(owner, inv, budget, link)
    for r in range(k):
        for i in range(n):
            mine = owner[r] == i
            if mine.any():
                ref = water_fill(np.where(mine, 1.0 / inv[r], 0.0), budget[r, i], 1.0, link)
                np.testing.assert_allclose(power[r][mine], ref[mine], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(water_fill_owned(owner[-1:], inv[-1:], budget[-1:], link), power[-1:])


# -- the ergodic mode ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cap", [math.inf, CAP])
def test_ergodic_spectral_efficiency(cap):
    x = 10.0 ** np.linspace(-5, 9, 301)
    np.testing.assert_allclose(ergodic_se(x, cap), ergodic_se_exact(x, cap), rtol=1e-6)
    rng = np.random.default_rng(0)
    h = rng.exponential(size=400_000)
    for snr in (0.05, 3.0, 300.0):
        mc = np.minimum(np.log2(1 + snr * h), cap).mean()
        assert ergodic_se(np.array([snr]), cap)[0] == pytest.approx(mc, rel=5e-3)
    assert np.all(np.diff(ergodic_se(x, cap)) >= 0) and np.all(ergodic_se(x, cap) <= cap)
    # Jensen: fading costs rate at the same mean SNR
    assert np.all(ergodic_se(x, cap) <= np.minimum(np.log2(1 + x), cap) + 1e-12)


def test_averaged_rounds_are_deterministic_large_scale_gains():
    sim = NetworkSimulator(load_scenario("epsl-resnet18", ["channel.small_scale=averaged"]))
    s0 = sim.reset(3)
    assert np.all(s0.gains == s0.gains[:, :1])  # one large-scale gain per client, every subchannel
    model = sim.latency_model
    alloc = make_allocation(3, np.arange(10) % 5, np.full(10, 0.1), 5)
    s1 = sim.step(alloc)[1]
    np.testing.assert_array_equal(s1.gains, s0.gains)  # no fading, no mobility: the same round again
    lat = model.evaluate(s1, alloc)
    x = 0.1 * s1.gains[0, 0] * model.radio.inv_noise
    assert lat.uplink_rate_bps[0] == pytest.approx(2 * 1e6 * ergodic_se(np.array([x]), CAP)[0], rel=1e-12)
    # an optimizer decides on the same gains with the same rate function
    from agents.registry import make_decision_maker

    best = make_decision_maker("epsl-bcd", model).decide(s1.observation())
    assert model.evaluate(s1, best).total <= lat.total


def test_trace_lines_carry_the_link_constants(tmp_path):
    from psl_env.system.trace import latency_from_record, trace_record

    scenario = load_scenario("small-exact", ["channel.snr_gap_db=3", "bits_per_element=16",
                                             "channel.noise_figure_server_db=7", "channel.small_scale=averaged"])
    sim = NetworkSimulator(scenario)
    state = sim.reset(0)
    alloc = make_allocation(2, np.arange(6) % 3, np.full(6, 0.1), 3)
    lat = sim.latency_model.evaluate(state, alloc)
    rec = trace_record(sim.latency_model, state, alloc, lat, "test")
    for key, value in (("snr_gap_db", 3.0), ("bits_per_element", 16), ("noise_figure_server_db", 7.0),
                       ("noise_figure_client_db", 9.0), ("se_cap_bps_per_hz", CAP), ("small_scale", "averaged")):
        assert rec[key] == value
    assert latency_from_record(rec).total == pytest.approx(lat.total, rel=1e-12)


def test_profiles_measured_at_32_bits():
    assert load_profile("resnet18-64").bits_per_element == 32
