"""Decision makers by name, options, and the registration hook for trained policies."""

from __future__ import annotations

import pytest

from agents.base import DecisionMaker
from agents.edgesplit_alt import EdgeSplitAltOptimizer
from agents.registry import available_decision_makers, make_decision_maker, register, split_specs
from psl_env.system.allocation import fixed_allocation

from .strategies import model_for

BUILTIN = ["edgesplit-alt", "epsl-bcd", "fixed", "greedy", "oracle", "random"]


def test_builtin_names():
    model = model_for(2, 4, "epsl", 0.5, "broadcast")
    assert set(BUILTIN) <= set(available_decision_makers())
    for name in BUILTIN:
        dm = make_decision_maker(name, model, seed=1)
        assert isinstance(dm, DecisionMaker) and dm.name == name


def test_unknown_name_lists_the_allowed_ones():
    model = model_for(2, 4, "epsl", 0.5, "broadcast")
    with pytest.raises(ValueError, match=r"unknown decision maker 'nope'; allowed: \[.*'epsl-bcd'.*\]"):
        make_decision_maker("nope", model)


def test_options():
    model = model_for(2, 4, "edgesplit", 0.0, "unicast")
    dm = make_decision_maker("edgesplit-alt:power=equal,max_iter=3", model)
    assert isinstance(dm, EdgeSplitAltOptimizer) and dm.power == "equal" and dm.max_iter == 3
    with pytest.raises(ValueError, match="unknown option"):
        make_decision_maker("epsl-bcd:speed=11", model)
    with pytest.raises(ValueError, match="power"):
        make_decision_maker("edgesplit-alt:power=max", model)


def test_split_specs_keeps_options_together():
    assert split_specs("epsl-bcd, edgesplit-alt:power=equal,max_iter=3,fixed,ppo:runs/a") == [
        "epsl-bcd", "edgesplit-alt:power=equal,max_iter=3", "fixed", "ppo:runs/a"]


def test_register_a_prefixed_factory():
    class Constant(DecisionMaker):
        def __init__(self, model, path):
            super().__init__(model)
            self.path = path

        def decide(self, state):
            return fixed_allocation(self.model.num_blocks, state.power_budget_w, state.num_subchannels)

    def factory(model, arg, seed):
        return Constant(model, arg)

    register("test-policy", factory, help="a test")
    register("test-policy", factory)  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register("test-policy", lambda m, a, s: None)
    dm = make_decision_maker("test-policy:runs/x", model_for(2, 4, "epsl", 0.5, "broadcast"))
    assert isinstance(dm, Constant) and dm.path == "runs/x" and dm.name == "test-policy:runs/x"


def test_modules_that_register_on_import_are_discovered(tmp_path, monkeypatch):
    import sys

    import agents
    from agents import registry

    (tmp_path / "fake_policy_adapter.py").write_text(
        "from agents.references import FixedDecisionMaker\n"
        "from agents.registry import register\n"
        "register('fake-policy', lambda model, arg, seed: FixedDecisionMaker(model))\n")
    monkeypatch.setattr(agents, "__path__", [*agents.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.delitem(registry._FACTORIES, "fake-policy", raising=False)
    try:
        dm = make_decision_maker("fake-policy:some/dir", model_for(2, 4, "epsl", 0.5, "broadcast"))
        assert dm.name == "fake-policy:some/dir"
    finally:
        registry._FACTORIES.pop("fake-policy", None)
        sys.modules.pop("agents.fake_policy_adapter", None)
