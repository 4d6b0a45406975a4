"""On small-exact, no decision maker ever beats the oracle on the same round."""

from __future__ import annotations

from agents.registry import make_decision_maker
from psl_env.system.simulator import NetworkSimulator

METHODS = ["epsl-bcd", "edgesplit-alt", "greedy", "fixed", "random"]


def test_no_method_beats_the_oracle_on_small_exact():
    sim = NetworkSimulator("small-exact")
    model = sim.latency_model
    oracle = make_decision_maker("oracle", model)
    others = {name: make_decision_maker(name, model, seed=7) for name in METHODS}
    checked = 0
    for ep in range(3):
        state = sim.reset(200 + ep)
        for _ in range(15):
            observed = state.observation()
            best = model.evaluate(state, oracle.decide(observed)).total
            for name, dm in others.items():
                alloc = dm.decide(observed)
                assert model.evaluate(state, alloc).total >= best * (1 - 1e-9), name
                checked += 1
            state = sim.step(others["epsl-bcd"].decide(observed))[1]
    assert checked == 3 * 15 * len(METHODS)
