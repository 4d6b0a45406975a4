"""Shared by the engine tests: a scenario from a base dict with overrides."""

from __future__ import annotations

import copy

from psl_env.system.scenario import load_scenario


def scenario_from(base: dict, over: dict):
    """``base`` with ``over`` applied (the ``training`` section merged key by key)."""
    cfg = copy.deepcopy(base)
    for key, value in over.items():
        if key == "training":
            cfg["training"].update(value)
        else:
            cfg[key] = value
    return load_scenario(cfg)
