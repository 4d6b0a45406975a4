"""The sweep file of ``psl sweep``: read, validate and expand into trials (no Ray, no training here).

A sweep file (YAML, read with ``yaml.safe_load``)::

    agent: ppo-box                  # shipped agent config name or a Zoo-style YAML path
    scenario: epsl-resnet18         # shipped scenario name or YAML path (default: the config's)
    set: [csi=delayed]              # scenario overrides, as psl train --set (optional)
    hyperparams: {n_envs: 32}       # fixed agent-config overrides, as psl train --hyperparams (optional)
    timesteps: 200000               # training steps per trial (default: the config's n_timesteps)
    seeds: [0, 1]                   # repeats of every configuration (never searched)
    search:                         # agent-config keys; dotted keys reach policy_kwargs, normalize, psl keys
      learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
      n_epochs: {grid: [5, 10]}
      gamma: {choice: [0.5, 0.9]}
    samples: 2                      # draws of the choice / loguniform keys per grid point (default 1)
    search_seed: 0                  # seed of those draws (default 0)
    asha: {grace_period: 50000, reduction_factor: 2}   # optional early stopping on the evaluation gap

A configuration is one grid point with one draw of the random keys; a trial is a configuration
with one seed. The expansion is deterministic (the draws are seeded), so re-running the same sweep
finds the same trials and skips the finished ones. The environment and its codec are not searched
(``env_kwargs`` stays as the agent config ships it), nor is the seed.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psl_env.config_files import brief, clip, locate, read_yaml

from .errors import UsageError

TOP_KEYS = ("agent", "scenario", "set", "hyperparams", "timesteps", "seeds", "search", "samples", "search_seed",
            "asha")
SPACES = ("grid", "choice", "loguniform")
ASHA_KEYS = {"grace_period": None, "reduction_factor": 2}
# agent-config keys a sweep may not set: the seed is a repeat, the budget is ``timesteps``, the env
# and its codec stay as shipped (a search over them would compare different problems)
FIXED_PREFIXES = ("seed", "n_timesteps", "algo", "env_kwargs", "env_wrapper", "policy")
MAX_TRIALS = 10_000
MAX_SEEDS = 1_000
MAX_TIMESTEPS = 10**10


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a configuration (``params``) and a seed."""

    config_id: str
    seed: int
    params: dict  # searched key -> value

    @property
    def trial_id(self) -> str:
        return f"{self.config_id}-s{self.seed}"


@dataclass
class SweepSpec:
    """A validated sweep file."""

    name: str
    agent: str  # shipped name or absolute path
    scenario: str | None
    overrides: list[str]
    hyperparams: dict
    timesteps: int | None
    seeds: list[int]
    search: dict  # key -> {space: values}
    samples: int = 1
    search_seed: int = 0
    asha: dict | None = None
    configs: list[dict] = field(default_factory=list)  # [{"config_id", "params"}], filled by expand

    def to_dict(self) -> dict:
        """Plain data: what ``sweep.json`` holds, and what a re-run is compared with."""
        return {"name": self.name, "agent": self.agent, "scenario": self.scenario, "set": list(self.overrides),
                "hyperparams": dict(self.hyperparams), "timesteps": self.timesteps, "seeds": list(self.seeds),
                "search": self.search, "samples": self.samples, "search_seed": self.search_seed, "asha": self.asha,
                "configs": self.configs}

    def trials(self) -> list[Trial]:
        """Every trial, configuration by configuration, seed by seed."""
        return [Trial(c["config_id"], s, dict(c["params"])) for c in self.configs for s in self.seeds]


def override_items(mapping: dict) -> list[str]:
    """``{"a.b": 1}`` as ``["a.b=1"]`` for ``apply_overrides`` (JSON is a YAML subset: values read back as written)."""
    return [f"{k}={json.dumps(v)}" for k, v in mapping.items()]


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{key}: {brief(value)} is not allowed; allowed: an integer in [{low}, {high}]")
    return value


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
        raise UsageError(f"{where}: key {brief(key)} is not allowed; allowed: an agent-config key such as "
                         "learning_rate or policy_kwargs.net_arch")
    head = key.split(".")[0]
    if head in FIXED_PREFIXES:
        why = {"seed": "seeds are repeats: list them under seeds:",
               "n_timesteps": "the budget is timesteps:"}.get(head, "the environment, its codec and the algorithm "
                                                                     "stay as the agent config ships them")
        raise UsageError(f"{where}.{clip(key)}: not allowed in a sweep ({why}); allowed: the algorithm's "
                         "hyperparameters, policy_kwargs, normalize and the psl: keys")
    return key


def _space(key: str, spec: Any) -> dict:
    where = f"search.{clip(key)}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACES:
        raise UsageError(f"{where}: {brief(spec)} is not allowed; allowed: one of {{grid: [...]}}, {{choice: [...]}}, "
                         "{loguniform: [low, high]}")
    kind, values = next(iter(spec.items()))
    if kind == "loguniform":
        ok = (isinstance(values, list) and len(values) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values))
        if not ok or not 0 < values[0] < values[1] or not math.isfinite(values[1]):
            raise UsageError(f"{where}.loguniform: {brief(values)} is not allowed; allowed: [low, high] with "
                             "0 < low < high")
        return {kind: [float(values[0]), float(values[1])]}
    if not isinstance(values, list) or not values or len(values) > MAX_TRIALS:
        raise UsageError(f"{where}.{kind}: {brief(values)} is not allowed; allowed: a non-empty list of values")
    return {kind: list(values)}


def _asha(value: Any, timesteps: int | None) -> dict | None:
    if value is None or value is False:
        return None
    if not isinstance(value, dict):
        raise UsageError(f"asha: {brief(value)} is not allowed; allowed: a mapping of {sorted(ASHA_KEYS)} or null")
    unknown = sorted(str(k) for k in value if k not in ASHA_KEYS)
    if unknown:
        raise UsageError(f"asha.{clip(unknown[0])}: unknown key; allowed: {sorted(ASHA_KEYS)}")
    out = {**ASHA_KEYS, **value}
    high = timesteps or MAX_TIMESTEPS
    out["grace_period"] = _int(out["grace_period"], "asha.grace_period", 1, high)
    factor = out["reduction_factor"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 < factor <= 100:
        raise UsageError(f"asha.reduction_factor: {brief(factor)} is not allowed; allowed: a number in (1, 100]")
    return out


def _resolve_agent(agent: Any, base: Path | None) -> str:
    """A shipped name stays a name; a path becomes absolute (relative to the sweep file's folder first)."""
    if not isinstance(agent, str) or not agent:
        raise UsageError(f"agent: {brief(agent)} is not allowed; allowed: a shipped agent config name or a YAML path")
    for candidate in ([base / agent] if base is not None else []) + [Path(agent)]:
        if candidate.is_file():
            return str(candidate.resolve())
    locate(agent, "agents", "agent", UsageError)  # a shipped name, or one line naming what is allowed
    return agent


def _resolve_scenario(scenario: Any, base: Path | None) -> str | None:
    if scenario is None:
        return None
    if not isinstance(scenario, str) or not scenario:
        raise UsageError(f"scenario: {brief(scenario)} is not allowed; allowed: a shipped scenario name or a YAML path")
    if base is not None and (base / scenario).is_file():
        return str((base / scenario).resolve())
    return str(Path(scenario).resolve()) if Path(scenario).is_file() else scenario


def parse_spec(data: Any, name: str, base: Path | None = None) -> SweepSpec:
    """Validate a sweep file's mapping (``base``: its folder, for relative paths) and expand it."""
    if not isinstance(data, dict):
        raise UsageError(f"sweep {brief(name)}: expected a mapping with keys {list(TOP_KEYS)}")
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        raise UsageError(f"{clip(unknown[0])}: unknown sweep key; allowed: {list(TOP_KEYS)}")
    if "agent" not in data:
        raise UsageError("agent: required (a shipped agent config name such as ppo-box, or a YAML path)")
    overrides = data.get("set") or []
    if isinstance(overrides, str):
        overrides = [overrides]
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise UsageError(f"set: {brief(overrides)} is not allowed; allowed: a list of key=value scenario overrides")
    fixed = data.get("hyperparams") or {}
    if not isinstance(fixed, dict):
        raise UsageError(f"hyperparams: {brief(fixed)} is not allowed; allowed: a mapping of agent-config key -> value")
    for key in fixed:
        _check_key(key, "hyperparams")
    timesteps = data.get("timesteps")
    if timesteps is not None:
        if isinstance(timesteps, float) and timesteps.is_integer():
            timesteps = int(timesteps)
        timesteps = _int(timesteps, "timesteps", 1, MAX_TIMESTEPS)
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or len(seeds) > MAX_SEEDS:
        raise UsageError(f"seeds: {brief(seeds)} is not allowed; allowed: a non-empty list of at most {MAX_SEEDS} "
                         "integers in [0, 2147483647]")
    for s in seeds:
        _int(s, "seeds", 0, 2**31 - 1)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds: {brief(seeds)} repeats a seed; allowed: distinct integers")
    search = data.get("search") or {}
    if not isinstance(search, dict):
        raise UsageError(f"search: {brief(search)} is not allowed; allowed: a mapping of key -> {{grid|choice|"
                         "loguniform: ...}")
    search = {_check_key(k, "search"): _space(k, v) for k, v in search.items()}
    both = sorted(set(search) & set(fixed))
    if both:
        raise UsageError(f"search.{clip(both[0])}: also fixed under hyperparams:; allowed: one of the two")
    samples = _int(data.get("samples", 1), "samples", 1, MAX_TRIALS)
    random_keys = [k for k, v in search.items() if "grid" not in v]
    if samples > 1 and not random_keys:
        raise UsageError(f"samples: {samples} is not allowed without a choice or loguniform key (the grid points "
                         "would repeat); allowed: 1")
    spec = SweepSpec(name=name, agent=_resolve_agent(data["agent"], base),
                     scenario=_resolve_scenario(data.get("scenario"), base), overrides=list(overrides),
                     hyperparams=dict(fixed), timesteps=timesteps, seeds=list(seeds), search=search, samples=samples,
                     search_seed=_int(data.get("search_seed", 0), "search_seed", 0, 2**31 - 1),
                     asha=_asha(data.get("asha"), timesteps))
    spec.configs = expand(spec)
    if len(spec.configs) * len(spec.seeds) > MAX_TRIALS:
        raise UsageError(f"search: {len(spec.configs)} configurations x {len(spec.seeds)} seeds is too many; allowed: "
                         f"at most {MAX_TRIALS} trials")
    return spec


def _draw(space: dict, rng: np.random.Generator) -> Any:
    if "choice" in space:
        return space["choice"][int(rng.integers(len(space["choice"])))]
    low, high = space["loguniform"]
    # 4 significant digits: the value reads the same in the summary, the best config and the Zoo
    return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")


def expand(spec: SweepSpec) -> list[dict]:
    """The configurations: the grid's product (in file order), each with ``samples`` seeded draws of
    the choice / loguniform keys."""
    grid = {k: v["grid"] for k, v in spec.search.items() if "grid" in v}
    rand = {k: v for k, v in spec.search.items() if "grid" not in v}
    rng = np.random.default_rng(spec.search_seed)
    points = list(itertools.product(*grid.values())) if grid else [()]
    if len(points) * spec.samples > MAX_TRIALS:
        raise UsageError(f"search: {len(points)} grid points x {spec.samples} samples is too many; allowed: at most "
                         f"{MAX_TRIALS} configurations")
    configs = []
    for point in points:
        for _ in range(spec.samples):
            params = dict(zip(grid, point))
            params.update({k: _draw(v, rng) for k, v in rand.items()})
            ordered = {k: params[k] for k in spec.search}  # file order, grid and random keys alike
            configs.append({"config_id": f"c{len(configs):03d}", "params": ordered})
    return configs


def read_spec(source: str) -> SweepSpec:
    """A sweep file by path or shipped name (``configs/sweeps/NAME.yaml``), validated and expanded."""
    found, stem = locate(source, "sweeps", "sweep", UsageError)
    what = f"sweep {brief(str(source))}"
    data = read_yaml(found, what, UsageError)
    base = Path(source).resolve().parent if Path(source).is_file() else None
    return parse_spec(data, stem, base)


__all__ = ["SweepSpec", "Trial", "expand", "override_items", "parse_spec", "read_spec"]
