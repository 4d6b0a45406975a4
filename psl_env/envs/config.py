"""The environment config: defaults, merging of ``config=`` and keyword arguments, validation.

HighwayEnv style: ``PSLEnv.default_config()`` returns the full default mapping; ``gym.make(id,
config={...}, **kwargs)`` overrides it (keyword arguments win over ``config``). The scenario itself
is a separate, validated object (``system.scenario``): ``scenario`` names it (shipped name, YAML
path, mapping or ``Scenario``) and ``overrides`` adjusts it (``{"phi": 0.3}`` or ``["phi=0.3"]``).
"""

from __future__ import annotations

import copy
from typing import Any

from ..backend import BACKENDS

REWARDS = ("relative", "log-relative")

DEFAULT_CONFIG: dict[str, Any] = {
    # the scenario: a shipped name, a YAML path, a mapping, or a Scenario (None: this default)
    "scenario": "epsl-resnet18",
    # scenario overrides: {"dotted.key": value} or ["dotted.key=value", ...]
    "overrides": None,
    # action codec: a registered codec name (dict | box | multidiscrete | assisted, see codecs.CODECS)
    "action_type": "box",
    # codec options: box/multidiscrete {"priority_range": 2.0, "assignment": "greedy"},
    # multidiscrete {"levels": 5}, assisted {"refine": True, "solver": "bcd"}
    "action": {},
    # compiled hot paths: "auto" (numba when installed), "numba" (required) or "numpy" (never);
    # the same results either way
    "backend": "auto",
    # reward: "relative" = -T / T_ref, "log-relative" = -log(T / T_ref); T_ref = the fixed reference
    "reward": "relative",
    # T / T_ref is capped here so that rewards stay finite and bounded (e.g. in a very deep fade)
    "max_latency_ratio": 100.0,
    # write one round-trace record (docs/round-trace.md) per step to this JSONL file
    "trace_path": None,
    # the ``method`` field of trace records
    "trace_method": "policy",
}


class EnvConfigError(ValueError):
    """An environment config value is invalid; the message names the key and what is allowed."""


def default_config() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_CONFIG)


def build_config(config: dict | None = None, **kwargs: Any) -> dict[str, Any]:
    """Defaults <- ``config`` <- ``kwargs``, validated."""
    cfg = default_config()
    for source, what in ((config or {}, "config"), (kwargs, "keyword argument")):
        if not isinstance(source, dict):
            raise EnvConfigError(f"config: expected a mapping, got {type(source).__name__}")
        for key, value in source.items():
            if key not in cfg:
                raise EnvConfigError(f"{what} {key!r} is unknown; allowed: {sorted(cfg)}")
            cfg[key] = copy.deepcopy(value) if key != "scenario" else value
    if cfg["scenario"] is None:
        cfg["scenario"] = DEFAULT_CONFIG["scenario"]
    from .codecs import CODECS  # noqa: PLC0415 - the registry may grow after import

    if cfg["action_type"] not in CODECS:
        raise EnvConfigError(f"action_type: {cfg['action_type']!r} is not allowed; allowed: {sorted(CODECS)}")
    if cfg["backend"] not in BACKENDS:
        raise EnvConfigError(f"backend: {cfg['backend']!r} is not allowed; allowed: {list(BACKENDS)}")
    if cfg["reward"] not in REWARDS:
        raise EnvConfigError(f"reward: {cfg['reward']!r} is not allowed; allowed: {list(REWARDS)}")
    if not isinstance(cfg["action"], dict):
        raise EnvConfigError(f"action: expected a mapping of codec options, got {cfg['action']!r}")
    ratio = cfg["max_latency_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1.0 <= ratio <= 1e9:
        raise EnvConfigError(f"max_latency_ratio: {ratio!r} is not allowed; allowed: a number in [1, 1e9]")
    cfg["max_latency_ratio"] = float(ratio)
    return cfg
