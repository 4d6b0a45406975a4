"""The hindsight bound: a shortest path over cuts, equal to brute force over cut sequences, and never
above any method's total on the same realized episodes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.hindsight import HindsightBound, best_cut_sequence, realized_observation
from agents.oracle import OracleDecisionMaker
from psl_env.models.profile import load_profile
from psl_env.system.latency import LatencyModel
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from trainers.bench import run_benchmark

# short rounds (batch 1) whose best cut moves with a volatile load: migration matters
TINY = ["num_clients=2", "num_subchannels=3", "batch_size=1", "migration=true", "scheme=psl", "phi=0",
        "dynamics.load_levels=[1.0, 0.2, 0.02]", "dynamics.load_stay=0.4"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_shortest_path_equals_enumeration_of_cut_sequences(rounds, cuts, seed):
    rng = np.random.default_rng(seed)
    costs = rng.uniform(0.0, 10.0, (rounds, cuts + 1, cuts))
    costs[rng.random(costs.shape) < 0.1] = np.inf  # cuts over a memory cap
    costs[0, 1:] = np.inf
    total, seq = best_cut_sequence(costs)
    best = np.inf
    for path in itertools.product(range(cuts), repeat=rounds):
        s = costs[0, 0, path[0]] + sum(costs[t, path[t - 1] + 1, path[t]] for t in range(1, rounds))
        best = min(best, s)
    assert total == pytest.approx(best) if np.isfinite(best) else total == np.inf
    if np.isfinite(best):
        again = costs[0, 0, seq[0] - 1] + sum(costs[t, seq[t - 1], seq[t] - 1] for t in range(1, rounds))
        assert again == pytest.approx(total)


def _sequence_total(scenario, seed, path, oracle_cache):
    """Play a cut sequence on the simulator, each round at the oracle's best allocation for that cut
    after the previous one; the rounds' priced latencies summed."""
    sim = NetworkSimulator(scenario)
    state = sim.reset(seed)
    oracle = oracle_cache["oracle"]
    total, prev = 0.0, None
    for t, cut in enumerate(path):
        key = (t, prev, cut)
        if key not in oracle_cache:
            oracle_cache[key] = oracle.cut_optima(realized_observation(state))[1][cut - 1]
        lat, state = sim.step(oracle_cache[key])
        total += float(lat.total)
        prev = cut
    return total


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10_000))
def test_bound_equals_brute_force_over_cut_sequences_played_on_the_simulator(seed):
    scenario = load_scenario("small-exact", TINY)
    model = LatencyModel(scenario, load_profile(scenario.model))
    bound = HindsightBound(model)
    assert bound.exact
    sim = NetworkSimulator(scenario)
    state, rounds = sim.reset(seed), []
    oracle = OracleDecisionMaker(model)
    for _ in range(3):  # the world does not depend on the decisions: any allocation walks the same rounds
        rounds.append(realized_observation(state))
        _, state = sim.step(oracle.decide(state.observation()))
    result = bound.result([bound.episode_costs(rounds)])
    cache = {"oracle": oracle}
    cuts = range(1, model.num_blocks)
    brute = min(_sequence_total(scenario, seed, path, cache) for path in itertools.product(cuts, repeat=3))
    assert result.episode_total_s[0] == pytest.approx(brute, rel=1e-9)
    assert _sequence_total(scenario, seed, result.cuts[0], cache) == pytest.approx(brute, rel=1e-9)


@pytest.mark.parametrize("extra", [[], ["dynamics.churn_leave=0.3", "dynamics.churn_rejoin=0.5", "num_clients=3",
                                        "num_subchannels=4"]])
@pytest.mark.parametrize("seed", [0, 7])
def test_the_bound_is_at_most_every_methods_total(extra, seed):
    methods = ["oracle", "epsl-bcd", "epsl-bcd:migration_aware=false", "greedy", "fixed", "random"]
    res = run_benchmark("small-exact", methods, rounds=12, episodes=2, seed=seed, overrides=TINY + extra,
                        num_resamples=10)
    hind = res["hindsight"]
    assert hind["kind"] == "bound" and hind["inner"] == "oracle"
    assert res["hindsight_latency_s"] > 0
    for name in methods:
        gap = res["methods"][name]["gap_to_hindsight"]
        assert min(gap["per_episode"]) >= -1e-9, name


def test_the_gap_shows_in_the_tables_and_the_myopic_optimum_is_above_it(tmp_path):
    res = run_benchmark("small-exact", ["oracle", "epsl-bcd", "fixed"], rounds=30, episodes=2, seed=3,
                        overrides=TINY, out_dir=tmp_path, num_resamples=10)
    text = (tmp_path / "results.md").read_text()
    assert "gap to hindsight" in text and "a bound" in text
    # with short rounds and a volatile load the myopic oracle migrates more than it should
    assert res["methods"]["oracle"]["gap_to_hindsight"]["mean"] > 1e-6


def test_no_hindsight_figure_when_the_methods_meet_different_rounds():
    res = run_benchmark("small-exact", ["oracle", "fixed"], rounds=5, episodes=1,
                        overrides=TINY + ["channel.correlation=doppler"], num_resamples=10)
    assert "skipped" in res["hindsight"] and "hindsight_latency_s" not in res


def test_a_reference_from_the_solver_is_labelled_as_one():
    res = run_benchmark("small-exact", ["epsl-bcd", "fixed"], rounds=6, episodes=1, overrides=TINY,
                        num_resamples=10, hindsight="on", decision_makers=None)
    assert res["hindsight"]["kind"] == "bound"  # the oracle runs here: exact
    model = LatencyModel(load_scenario("dynamic-edge"), load_profile("resnet18-64"))
    bound = HindsightBound(model)
    assert not bound.exact and bound.inner == "epsl-bcd solver"
    res = run_benchmark("small-exact", ["epsl-bcd", "fixed"], rounds=6, episodes=1, overrides=TINY,
                        num_resamples=10, hindsight="off")
    assert "hindsight" not in res and "gap_to_hindsight" not in res["methods"]["fixed"]
