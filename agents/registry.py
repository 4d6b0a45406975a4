"""Decision makers by name: ``make_decision_maker("epsl-bcd", model)``.

A *spec* is ``NAME`` or ``NAME:ARG``; the part before the first ``:`` selects a registered factory,
the rest is handed to it. The built-in optimizers read ``ARG`` as constructor options
``key=value[,key=value...]`` (e.g. ``edgesplit-alt:power=equal``); other factories interpret it as
they like (``ppo:runs/ppo-1`` for a trained policy). New kinds of decision makers are added with
``register`` and need no change to the benchmark::

    register("my-opt", builtin(MyOptimizer), help="my optimizer")   # a DecisionMaker subclass
    register("ppo", lambda model, arg, seed: SB3Policy.load(arg, model, algo="ppo"), help="ppo:RUN_DIR")

A module of the ``agents`` package that makes that call at import time is found on its own: the
first lookup of an unregistered name imports the package's modules (``discover``).
"""

from __future__ import annotations

import inspect
from typing import Callable

import yaml

from psl_env.system.latency import LatencyModel

from .algorithms import ALGORITHMS
from .base import DecisionMaker
from .edgesplit_alt import EdgeSplitAltOptimizer
from .epsl_bcd import EPSLBCDOptimizer
from .oracle import OracleDecisionMaker
from .references import FixedDecisionMaker, GreedyDecisionMaker, RandomDecisionMaker
from .sequential import HysteresisScheduler, MPCScheduler

# factory(model, arg, seed) -> DecisionMaker; ``arg`` is the text after ':' or None.
Factory = Callable[[LatencyModel, "str | None", int], DecisionMaker]

_FACTORIES: dict[str, tuple[Factory, str]] = {}


def register(name: str, factory: Factory, help: str = "", replace: bool = False) -> None:
    """Make ``name`` (and ``name:ARG``) available to ``make_decision_maker`` and ``psl bench``.

    Idempotent for the same factory; a different factory under a taken name needs ``replace=True``.
    """
    if not name or ":" in name or "," in name:
        raise ValueError(f"decision maker name {name!r}: must be non-empty without ':' or ','")
    old = _FACTORIES.get(name)
    if old is not None and old[0] is not factory and not replace:
        raise ValueError(f"decision maker {name!r} is already registered; pass replace=True to override")
    _FACTORIES[name] = (factory, help)


def available_decision_makers() -> list[str]:
    """The registered names, sorted."""
    return sorted(_FACTORIES)


def parse_options(text: str | None) -> dict:
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r}: expected key=value")
        value = yaml.safe_load(raw) if raw.strip() else ""
        out[key.strip()] = value
    return out


def builtin(cls: type[DecisionMaker]) -> Factory:
    """A factory for a class whose keyword arguments are its options (and ``seed`` if it takes one)."""
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "model", "seed")]

    def factory(model: LatencyModel, arg: str | None, seed: int) -> DecisionMaker:
        options = parse_options(arg)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"{cls.name}: unknown option(s) {unknown}; allowed: {allowed or 'none'}")
        if "seed" in params:
            options["seed"] = seed
        return cls(model, **options)

    return factory


def split_specs(text: str) -> list[str]:
    """Split a ``--methods`` list on commas, keeping ``name:k=v,k=v`` options together.

    A comma-separated piece that holds ``=`` but no ``:`` continues the previous spec's options:
    ``"epsl-bcd,edgesplit-alt:power=equal,max_iter=3,fixed"`` -> ``["epsl-bcd",
    "edgesplit-alt:power=equal,max_iter=3", "fixed"]``.
    """
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" in piece and ":" not in piece and specs and ":" in specs[-1]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


_DISCOVERED = False


def discover() -> list[str]:
    """Import every module of the ``agents`` package once, so that modules which call ``register``
    at import time (e.g. trained-policy adapters) are found without being imported by hand.

    Called when a name is not registered yet; modules that fail to import (a missing optional
    dependency) are skipped and returned.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return []
    _DISCOVERED = True
    import importlib
    import pkgutil

    package = __name__.rpartition(".")[0]
    failed = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package}.{info.name}")
        except ImportError:
            failed.append(info.name)
    return failed


def make_decision_maker(spec: str, model: LatencyModel, seed: int = 0) -> DecisionMaker:
    """The decision maker named by ``spec`` (``NAME`` or ``NAME:ARG``) for ``model``.

    Raises:
        ValueError: unknown name (the message lists the allowed names), bad options, or a decision
            maker that cannot handle the scenario (e.g. the oracle on a large instance).
    """
    name, _, arg = spec.partition(":")
    name = name.strip()
    if name not in _FACTORIES:
        discover()
    if name not in _FACTORIES:
        raise ValueError(f"unknown decision maker {name!r}; allowed: {available_decision_makers()}")
    dm = _FACTORIES[name][0](model, arg or None, seed)
    dm.name = spec
    return dm


register("epsl-bcd", builtin(EPSLBCDOptimizer), "EPSL: best common cut, BCD over subchannels and water-filled power")
register("edgesplit-alt", builtin(EdgeSplitAltOptimizer),
         "EdgeSplit: per-device cuts and bandwidth shares by alternation")
register("oracle", builtin(OracleDecisionMaker), "exact optimum by enumeration (small instances)")
register("fixed", builtin(FixedDecisionMaker), "middle cut, round-robin subchannels, equal power")
register("random", builtin(RandomDecisionMaker), "random feasible allocation (seeded)")
register("greedy", builtin(GreedyDecisionMaker), "best common cut, greedy assignment, water-filled power")
register("hysteresis", builtin(HysteresisScheduler),
         "keep the common cut until a move repays its migration within `window` rounds")
register("mpc", builtin(MPCScheduler), "common cut by model-predictive control over `horizon` forecast rounds")


# Trained Stable-Baselines3 policies (``ppo:RUN_DIR``): the factory imports SB3 only when called.
def _sb3_factory(algo: str) -> Factory:
    def factory(model: LatencyModel, arg: str | None, seed: int) -> DecisionMaker:
        from .sb3_policy import factory as sb3_factory  # noqa: PLC0415 - SB3 is slow to import

        return sb3_factory(algo)(model, arg, seed)

    return factory


for _algo in ALGORITHMS:
    register(_algo, _sb3_factory(_algo), f"trained {_algo} policy: {_algo}:RUN_DIR (from `psl train`)")
