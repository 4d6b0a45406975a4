"""Agent configs (RL Baselines3 Zoo format) and the vectorized environments SB3 trains on.

An agent config is a YAML file keyed by environment id, as in the Zoo's ``hyperparams/ppo.yml``.
The env id's entry holds what the Zoo reads (every key it does not pop goes to the algorithm's
constructor); ``psl train``'s own settings sit beside it under ``psl:``, which the Zoo never reads,
so the same file trains with ``python -m rl_zoo3.train -conf FILE`` too::

    psl_env/PSL-v0:
      policy: MlpPolicy
      n_envs: 64
      n_timesteps: !!float 1e6
      env_kwargs:                   # PSLEnv config (docs/environment.md): the codec and the reward
        action_type: assisted
        reward: log-relative
      normalize: {norm_obs: true, norm_reward: false}   # VecNormalize options, or true / false
      env_wrapper: []               # gymnasium wrappers "module.Class" or {"module.Class": {kwargs}}
      learning_rate: lin_3e-4       # "lin_X": linear decay from X to 0 (also clip_range, clip_range_vf)
      policy_kwargs: {net_arch: [256, 256]}
    psl:
      algo: ppo                     # ppo | sac | a2c | td3 | maskable-ppo (default: file name prefix)
      vec_env: batched              # batched (numpy vector env) | subproc | dummy
      eval_freq: 50000              # steps between evaluations (gap to the optimizers), 0 = never
      eval_episodes: 3
      eval_rounds: 50
      checkpoint_freq: 100000       # steps between checkpoints, 0 = only the final model

The ``psl`` keys are also accepted inside the env id's entry (older files), but such a file no
longer loads in the Zoo. Files are read with ``yaml.safe_load``; unlike the Zoo, nothing is
``eval``-ed: ``policy_kwargs`` is a mapping and ``activation_fn`` a name (which the Zoo cannot
read: leave it out to keep a file Zoo-compatible). Stable-Baselines3 is imported only when a model
is built.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from agents.algorithms import ALGORITHMS
from psl_env.config_files import brief, clip, locate, read_yaml, shipped

ENV_ID = "psl_env/PSL-v0"
TRAIN_ENV_ID = "psl_env/PSLTrain-v0"
# env id -> its default scenario (the training-mode env needs a scenario it can train for real)
ENV_IDS = {ENV_ID: "epsl-resnet18", TRAIN_ENV_ID: "digits-train"}
SECTION = "psl"  # the file's own settings, beside the env id entries

# algo -> (module, class, action types it can drive)
ALGOS = ALGORITHMS
# the names rl_zoo3 gives the algorithms (``--algo``); MaskablePPO is sb3-contrib's ``ppo_mask``
ZOO_ALGOS = {"ppo": "ppo", "a2c": "a2c", "sac": "sac", "td3": "td3", "maskable-ppo": "ppo_mask"}
ALGO_ALIASES = {zoo: ours for ours, zoo in ZOO_ALGOS.items() if zoo != ours}
OFF_POLICY = ("sac", "td3")
VEC_ENVS = ("batched", "subproc", "dummy")
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
NORMALIZE_KEYS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")
# keys of the env id's entry that the Zoo pops before the constructor (with their defaults)
ZOO_KEYS = {"policy": "MlpPolicy", "n_envs": 16, "n_timesteps": 100_000, "env_kwargs": {}, "normalize": False,
            "env_wrapper": [], "noise_type": None, "noise_std": 0.1}
# psl train's own keys (under ``psl:``)
OWN_KEYS = {"algo": None, "vec_env": "batched", "eval_freq": 0, "eval_episodes": 3, "eval_rounds": 50,
            "checkpoint_freq": 0}
# keys of an agent config that are not constructor arguments of the algorithm
RESERVED = {**ZOO_KEYS, **OWN_KEYS}
_ENV_ID_LIKE = re.compile(r"^[\w.:/-]+-v\d+$")


class AgentConfigError(ValueError):
    """An agent config value is invalid; the message names the key and what is allowed."""


@dataclass
class AgentConfig:
    """A validated agent config: the algorithm, its hyperparameters, the env and the run settings."""

    algo: str
    env_id: str = ENV_ID
    policy: str = "MlpPolicy"
    n_envs: int = 16
    n_timesteps: int = 100_000
    vec_env: str = "batched"
    env_kwargs: dict = field(default_factory=dict)
    normalize: dict | None = None
    env_wrapper: list = field(default_factory=list)
    eval_freq: int = 0
    eval_episodes: int = 3
    eval_rounds: int = 50
    checkpoint_freq: int = 0
    noise_type: str | None = None
    noise_std: float = 0.1
    hyperparams: dict = field(default_factory=dict)  # constructor keyword arguments, as written

    @property
    def action_type(self) -> str:
        return self.env_kwargs.get("action_type", "box")

    @property
    def default_scenario(self) -> str:
        """The scenario when neither ``--scenario`` nor ``env_kwargs.scenario`` names one."""
        return ENV_IDS[self.env_id]

    def to_dict(self) -> dict:
        """The config in the file format (what ``config.yaml`` of a run holds): the Zoo entry and ``psl:``."""
        entry = {"policy": self.policy, "n_envs": self.n_envs, "n_timesteps": self.n_timesteps,
                 "env_kwargs": copy.deepcopy(self.env_kwargs),
                 "normalize": copy.deepcopy(self.normalize) if self.normalize else False}
        if self.env_wrapper:
            entry["env_wrapper"] = copy.deepcopy(self.env_wrapper)
        if self.noise_type:
            entry["noise_type"], entry["noise_std"] = self.noise_type, self.noise_std
        entry.update(copy.deepcopy(self.hyperparams))
        own = {"algo": self.algo, "vec_env": self.vec_env, "eval_freq": self.eval_freq,
               "eval_episodes": self.eval_episodes, "eval_rounds": self.eval_rounds,
               "checkpoint_freq": self.checkpoint_freq}
        return {self.env_id: entry, SECTION: own}


# ---------------------------------------------------------------------------------------------------
# reading and validating configs

def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: an integer in [{low}, {high}]")
    return int(value)


def _number(value: Any, key: str, low: float, high: float, low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(value) or not low <= value <= high or (low_open and value == low):
        raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: a number in "
                               f"{'(' if low_open else '['}{low:g}, {high:g}]")
    return float(value)


def parse_value(raw: str) -> Any:
    """A ``key=value`` right-hand side as a YAML scalar (``1e-3`` and ``2e6`` read as numbers)."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def apply_overrides(entry: dict, items: list[str]) -> dict:
    """``["n_envs=8", "env_kwargs.action_type=box"]`` applied to a config entry (dotted keys nest)."""
    entry = copy.deepcopy(entry)
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AgentConfigError(f"--hyperparams {brief(item)}: expected key=value")
        parts = key.split(".")
        node = entry
        for part in parts[:-1]:
            child = node.get(part)
            if child is None or child is False:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise AgentConfigError(f"--hyperparams {brief(item)}: {brief(part)} is not a mapping")
            node = child
        node[parts[-1]] = parse_value(raw)
    return entry


def _algo_name(name: Any) -> Any:
    return ALGO_ALIASES.get(name, name) if isinstance(name, str) else name


def parse_config(data: Any, what: str, env_id: str | None = None) -> tuple[dict, str]:
    """The entry of one env id of a config file's content, with the ``psl:`` keys merged in.

    Args:
        data: the file's mapping (env id -> entry, and ``psl:``), or a bare entry.
        what: how the file is named in messages (``--config 'x.yaml'``).
        env_id: the env id to read; default: ``psl_env/PSL-v0`` if present, else the training-mode env's.

    Returns:
        ``(entry, env_id)``: the flat entry (Zoo keys, hyperparameters and ``psl`` keys).
    """
    if not isinstance(data, dict) or not data:
        raise AgentConfigError(f"{what}: expected a mapping of env id -> hyperparameters, with psl: beside it")
    own = data.get(SECTION) or {}
    if not isinstance(own, dict):
        raise AgentConfigError(f"{what}: {SECTION}: expected a mapping of {sorted(OWN_KEYS)}, got {brief(own)}")
    unknown = sorted(str(k) for k in own if k not in OWN_KEYS)
    if unknown:
        raise AgentConfigError(f"{SECTION}.{clip(unknown[0])}: unknown key; allowed: {sorted(OWN_KEYS)} (the "
                               f"algorithm's hyperparameters go in the env id's entry)")
    rest = {k: v for k, v in data.items() if k != SECTION}
    ids = [k for k in rest if isinstance(k, str) and _ENV_ID_LIKE.match(k)]
    if env_id is None:
        env_id = next((i for i in ENV_IDS if i in rest), None)
    if env_id is not None and env_id in rest:
        entry = rest[env_id]
    elif ids or env_id is not None:
        raise AgentConfigError(f"{what}: no entry for {' or '.join(repr(i) for i in ENV_IDS)}; found "
                               f"{[clip(i) for i in ids[:5]]}")
    else:
        entry, env_id = rest, ENV_ID  # a bare entry without the env id key
    if not isinstance(entry, dict):
        raise AgentConfigError(f"{what}: the {env_id!r} entry must be a mapping, got {brief(entry)}")
    both = sorted(set(entry) & set(own))
    if both:
        raise AgentConfigError(f"{both[0]}: given both in the {env_id!r} entry and under {SECTION}:; keep it "
                               f"under {SECTION}: (rl_zoo3 passes the entry's keys to the algorithm)")
    return {**entry, **own}, env_id


def read_config_file(path: str | Path, env_id: str | None = None) -> tuple[dict, str]:
    """The entry of a config file (a path, or the name of a shipped config, e.g. ``ppo``) with the
    ``psl:`` keys merged in and ``env_id`` set, and the algo the file name suggests."""
    source, stem = locate(path, "agents", "--config", AgentConfigError)
    what = f"--config {brief(str(path))}"
    entry, env_id = parse_config(read_yaml(source, what, AgentConfigError), what, env_id)
    prefix = _algo_name(stem.split("-")[0] if stem.split("-")[0] in ALGOS else stem)
    return {**entry, "env_id": env_id}, prefix


def shipped_configs() -> dict[str, Any]:
    """The shipped agent configs: name (``ppo``, ``sac``, ...) -> resource (``configs/agents/NAME.yaml``)."""
    return shipped("agents")


def _schedule_or_number(high: float) -> Callable[[Any, str, str], None]:
    def check(value: Any, algo: str, key: str) -> None:
        if isinstance(value, str):
            parse_schedule(value, key, high)
        else:
            _number(value, key, 0.0, high, low_open=True)
    return check


def _int_check(low: int, high: int) -> Callable[[Any, str, str], None]:
    return lambda value, algo, key: _int(value, key, low, high)


def _num_check(low: float, high: float, low_open: bool = False) -> Callable[[Any, str, str], None]:
    return lambda value, algo, key: _number(value, key, low, high, low_open)


def _check_ent_coef(value: Any, algo: str, key: str) -> None:
    if algo == "sac" and isinstance(value, str):
        if value == "auto" or re.fullmatch(r"auto_\d*\.?\d+(e-?\d+)?", value):
            return
        raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: a number in [0, 10], 'auto' or "
                               "'auto_<initial value>'")
    _number(value, key, 0.0, 10.0)


def _check_train_freq(value: Any, algo: str, key: str) -> None:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: an integer, or [n, 'step'] / "
                                   "[n, 'episode']")
        value = value[0]
    _int(value, key, 1, 10**6)


def _check_gradient_steps(value: Any, algo: str, key: str) -> None:
    if value != -1:
        _int(value, key, 1, 10**6)


def _check_optional(check: Callable) -> Callable:
    return lambda value, algo, key: None if value is None else check(value, algo, key)


def _check_net_arch(value: Any, key: str) -> None:
    def layers(v: Any, k: str) -> None:
        if not isinstance(v, list) or not all(not isinstance(x, bool) and isinstance(x, int) and 1 <= x <= 65536
                                               for x in v):
            raise AgentConfigError(f"{k}: {brief(v)} is not allowed; allowed: a list of layer widths in [1, 65536]")
    if isinstance(value, dict):
        for name, v in value.items():
            if name not in ("pi", "vf", "qf"):
                raise AgentConfigError(f"{key}.{clip(str(name))}: unknown key; allowed: ['pi', 'qf', 'vf']")
            layers(v, f"{key}.{name}")
    else:
        layers(value, key)


# Range checks of common hyperparameters (the algorithm's constructor checks the rest).
HYPERPARAM_CHECKS: dict[str, Callable[[Any, str, str], None]] = {
    "gamma": _num_check(0.0, 1.0),
    "gae_lambda": _num_check(0.0, 1.0),
    "learning_rate": _schedule_or_number(1.0),
    "clip_range": _schedule_or_number(10.0),
    "clip_range_vf": _check_optional(_schedule_or_number(10.0)),
    "ent_coef": _check_ent_coef,
    "vf_coef": _num_check(0.0, 100.0),
    "max_grad_norm": _num_check(0.0, 1e6, low_open=True),
    "target_kl": _check_optional(_num_check(0.0, 100.0, low_open=True)),
    "n_steps": _int_check(1, 10**6),
    "batch_size": _int_check(1, 10**7),
    "n_epochs": _int_check(1, 10**4),
    "buffer_size": _int_check(1, 10**8),
    "learning_starts": _int_check(0, 10**10),
    "tau": _num_check(0.0, 1.0, low_open=True),
    "train_freq": _check_train_freq,
    "gradient_steps": _check_gradient_steps,
    "policy_delay": _int_check(1, 10**4),
    "target_policy_noise": _num_check(0.0, 10.0),
    "target_noise_clip": _num_check(0.0, 10.0),
    "sde_sample_freq": lambda v, algo, key: _int(v, key, -1, 10**6),
    "stats_window_size": _int_check(1, 10**6),
}


def build_agent_config(entry: dict, default_algo: str | None = None, env_id: str = ENV_ID,
                       check_algo_kwargs: bool = True) -> AgentConfig:
    """Validate a flat entry (``parse_config``'s, with overrides applied)."""
    entry = copy.deepcopy(entry)
    env_id = entry.pop("env_id", None) or env_id
    if env_id not in ENV_IDS:
        raise AgentConfigError(f"env_id: {brief(env_id)} is not allowed; allowed: {list(ENV_IDS)}")
    algo = _algo_name(entry.pop("algo", None) or default_algo)
    if algo not in ALGOS:
        raise AgentConfigError(f"algo: {brief(algo)} is not allowed; allowed: {sorted(ALGOS)} (set it under "
                               f"{SECTION}: or name the file after the algorithm)")
    values = {k: entry.pop(k, copy.deepcopy(v)) for k, v in RESERVED.items() if k != "algo"}
    for key in ("frame_stack", "callback", "n_timesteps_eval", "vec_env_wrapper", "monitor_kwargs"):
        if key in entry:
            raise AgentConfigError(f"{key}: the Zoo key is not supported here")
    cfg = AgentConfig(algo=algo, env_id=env_id)
    if not isinstance(values["policy"], str) or values["policy"] not in ("MlpPolicy",):
        raise AgentConfigError(f"policy: {brief(values['policy'])} is not allowed; allowed: ['MlpPolicy']")
    cfg.policy = values["policy"]
    cfg.n_envs = _int(values["n_envs"], "n_envs", 1, 4096)
    cfg.n_timesteps = _int(values["n_timesteps"], "n_timesteps", 1, 10**10)
    if values["vec_env"] not in VEC_ENVS:
        raise AgentConfigError(f"vec_env: {brief(values['vec_env'])} is not allowed; allowed: {list(VEC_ENVS)}")
    cfg.vec_env = values["vec_env"]
    env_kwargs = values["env_kwargs"] or {}
    if not isinstance(env_kwargs, dict):
        raise AgentConfigError(f"env_kwargs: expected a mapping, got {brief(env_kwargs)}")
    cfg.env_kwargs = env_kwargs
    action_type = cfg.action_type
    allowed_codecs = ALGOS[algo][2]
    if action_type not in allowed_codecs:
        raise AgentConfigError(f"env_kwargs.action_type: {brief(action_type)} does not fit {algo}; allowed: "
                               f"{list(allowed_codecs)}")
    norm = values["normalize"]
    if norm is True:
        norm = {"norm_obs": True, "norm_reward": True}
    if norm is False or norm is None:
        cfg.normalize = None
    elif isinstance(norm, dict):
        unknown = sorted(str(k) for k in set(norm) - set(NORMALIZE_KEYS))
        if unknown:
            raise AgentConfigError(f"normalize: unknown key(s) {[clip(k) for k in unknown[:5]]}; allowed: "
                                   f"{list(NORMALIZE_KEYS)}")
        cfg.normalize = dict(norm)
    else:
        raise AgentConfigError(f"normalize: {brief(norm)} is not allowed; allowed: true, false or a mapping of "
                               f"{list(NORMALIZE_KEYS)}")
    wrappers = values["env_wrapper"] or []
    if isinstance(wrappers, (str, dict)):
        wrappers = [wrappers]
    if not isinstance(wrappers, list):
        raise AgentConfigError("env_wrapper: expected a list of 'module.Class' or {'module.Class': kwargs}")
    for w in wrappers:
        _resolve_wrapper(w)
    if wrappers and cfg.vec_env == "batched":
        raise AgentConfigError("env_wrapper: gymnasium wrappers need vec_env subproc or dummy (the batched "
                               "env steps all copies at once)")
    cfg.env_wrapper = wrappers
    cfg.eval_freq = _int(values["eval_freq"], "eval_freq", 0, 10**10)
    cfg.eval_episodes = _int(values["eval_episodes"], "eval_episodes", 1, 10_000)
    cfg.eval_rounds = _int(values["eval_rounds"], "eval_rounds", 1, 10**6)
    cfg.checkpoint_freq = _int(values["checkpoint_freq"], "checkpoint_freq", 0, 10**10)
    if values["noise_type"] not in (None, "normal"):
        raise AgentConfigError(f"noise_type: {brief(values['noise_type'])} is not allowed; allowed: [null, 'normal']")
    cfg.noise_type = values["noise_type"]
    cfg.noise_std = _number(values["noise_std"], "noise_std", 0.0, 10.0)
    if cfg.noise_type and algo not in OFF_POLICY:
        raise AgentConfigError(f"noise_type: action noise is for {list(OFF_POLICY)}, not {algo}")
    for key, check in HYPERPARAM_CHECKS.items():
        if key in entry:
            check(entry[key], algo, key)
    if "policy_kwargs" in entry:
        policy_kwargs(entry["policy_kwargs"])
    cfg.hyperparams = entry
    if check_algo_kwargs:
        allowed = algo_arguments(algo)
        unknown = sorted(str(k) for k in set(entry) - set(allowed))
        if unknown:
            raise AgentConfigError(f"{clip(unknown[0])}: not a hyperparameter of {algo}; allowed: "
                                   f"{sorted(allowed) + sorted(RESERVED)}")
    return cfg


def parse_schedule(value: Any, key: str, high: float = math.inf) -> Any:
    """``"lin_3e-4"`` -> a linear decay to 0 (Zoo); numbers stay constants."""
    if isinstance(value, str):
        allowed = "a number or 'lin_<number>'"
        if not value.startswith("lin_"):
            raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: {allowed}")
        try:
            start = float(value[4:])
        except ValueError:
            raise AgentConfigError(f"{key}: {brief(value)} is not allowed; allowed: {allowed}") from None
        if not 0 < start <= high:
            raise AgentConfigError(f"{key}: {brief(value)} must start in (0, {high:g}]")
        from stable_baselines3.common.utils import LinearSchedule  # noqa: PLC0415 - heavy import

        return LinearSchedule(start, 0.0, 1.0)
    return value


def policy_kwargs(value: Any) -> dict:
    """``policy_kwargs`` validated (a mapping; ``activation_fn`` a name, ``net_arch`` layer widths)."""
    if not isinstance(value, dict):
        raise AgentConfigError(f"policy_kwargs: expected a mapping (e.g. {{net_arch: [256, 256], activation_fn: "
                               f"tanh}}), got {brief(value)}; Python strings are not evaluated")
    out = dict(value)
    act = out.get("activation_fn")
    if act is not None:
        if act not in ACTIVATIONS:
            raise AgentConfigError(f"policy_kwargs.activation_fn: {brief(act)} is not allowed; allowed: "
                                   f"{list(ACTIVATIONS)}")
    if "net_arch" in out:
        _check_net_arch(out["net_arch"], "policy_kwargs.net_arch")
    return out


def resolve_policy_kwargs(value: dict) -> dict:
    import torch.nn as nn  # noqa: PLC0415

    out = dict(value)
    names = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
             "silu": nn.SiLU}
    if "activation_fn" in out:
        out["activation_fn"] = names[out["activation_fn"]]
    return out


def algo_class(algo: str) -> type:
    module, name, _ = ALGOS[algo]
    return getattr(importlib.import_module(module), name)


def algo_arguments(algo: str) -> list[str]:
    params = inspect.signature(algo_class(algo).__init__).parameters
    return [p for p in params if p not in ("self", "policy", "env", "seed", "tensorboard_log", "verbose",
                                           "_init_setup_model")]


def algo_kwargs(cfg: AgentConfig) -> dict:
    """Constructor keyword arguments: schedules, policy_kwargs and action noise resolved."""
    kwargs = copy.deepcopy(cfg.hyperparams)
    for key in SCHEDULE_KEYS:
        if key in kwargs:
            kwargs[key] = parse_schedule(kwargs[key], key)
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = resolve_policy_kwargs(kwargs["policy_kwargs"])
    return kwargs


def _resolve_wrapper(spec: Any) -> tuple[type, dict]:
    """A ``gymnasium.Wrapper`` subclass named ``module.Class`` (nothing else may be named) and its kwargs."""
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise AgentConfigError(f"env_wrapper: {brief(spec)}: expected one 'module.Class': kwargs pair")
        name, kwargs = next(iter(spec.items()))
        kwargs = kwargs or {}
    else:
        name, kwargs = spec, {}
    if not isinstance(name, str) or "." not in name or not isinstance(kwargs, dict):
        raise AgentConfigError(f"env_wrapper: {brief(spec)}: expected 'module.Class' or "
                               "{'module.Class': {kwargs}}")
    module, _, cls = name.rpartition(".")
    try:
        target = getattr(importlib.import_module(module), cls)
    except Exception as err:  # noqa: BLE001 - a user module may fail in any way while importing
        raise AgentConfigError(f"env_wrapper: {brief(name)} cannot be imported ({type(err).__name__})") from None
    import gymnasium as gym  # noqa: PLC0415

    if not (isinstance(target, type) and issubclass(target, gym.Wrapper)):
        raise AgentConfigError(f"env_wrapper: {brief(name)} is not allowed; allowed: gymnasium.Wrapper subclasses")
    return target, kwargs


# ---------------------------------------------------------------------------------------------------
# environments


def env_config(cfg: AgentConfig, scenario: Any, overrides: list[str] | None) -> dict:
    """The PSLEnv config of a run: the agent config's ``env_kwargs`` with the scenario and overrides."""
    out = copy.deepcopy(cfg.env_kwargs)
    if scenario is not None:
        out["scenario"] = scenario
    if overrides:
        merged = list(out.get("overrides") or [])
        if isinstance(out.get("overrides"), dict):
            merged = [f"{k}={v}" for k, v in out["overrides"].items()]
        out["overrides"] = merged + list(overrides)
    return out


def _register() -> None:
    import psl_env  # noqa: F401, PLC0415 - registers psl_env/PSL-v0 (idempotent)


def make_single_env(env_id: str, config: dict, wrappers: list | None = None, seed: int | None = None) -> Any:
    """One gymnasium env (``gym.make``) with the config's wrappers."""
    import gymnasium as gym  # noqa: PLC0415

    _register()
    env = gym.make(env_id, config=copy.deepcopy(config))
    for spec in wrappers or []:
        target, kwargs = _resolve_wrapper(spec)
        env = target(env, **kwargs)
    if seed is not None:
        env.action_space.seed(seed)
    return env


class _EnvFactory:
    """A picklable ``() -> env`` for SubprocVecEnv children."""

    def __init__(self, env_id: str, config: dict, wrappers: list, seed: int) -> None:
        self.env_id, self.config, self.wrappers, self.seed = env_id, config, wrappers, seed

    def __call__(self) -> Any:
        import multiprocessing  # noqa: PLC0415

        if multiprocessing.parent_process() is not None:
            # a SubprocVecEnv worker: Ctrl-C in a terminal reaches the whole process group, and the
            # parent stops training cleanly; a worker dying first would break that last step
            import signal  # noqa: PLC0415

            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return make_single_env(self.env_id, self.config, self.wrappers, self.seed)


def make_vec_env(cfg: AgentConfig, config: dict, n_envs: int | None = None, seed: int = 0,
                 vec_env: str | None = None) -> Any:
    """The SB3 ``VecEnv`` of a run (monitored; not yet normalized): batched, subproc or dummy."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor  # noqa: PLC0415

    n = n_envs or cfg.n_envs
    kind = vec_env or cfg.vec_env
    _register()
    if kind == "batched":
        import gymnasium as gym  # noqa: PLC0415

        from .sb3_vec import BatchedVecEnv  # noqa: PLC0415

        venv = BatchedVecEnv(gym.make_vec(cfg.env_id, num_envs=n, vectorization_mode="vector_entry_point",
                                          autoreset_mode="SameStep", config=copy.deepcopy(config)))
    else:
        factories = [_EnvFactory(cfg.env_id, config, cfg.env_wrapper, seed + i) for i in range(n)]
        venv = SubprocVecEnv(factories) if kind == "subproc" and n > 1 else DummyVecEnv(factories)
    venv.seed(seed)
    return VecMonitor(venv)


def normalize_env(venv: Any, cfg: AgentConfig, gamma: float | None) -> Any:
    """Wrap in ``VecNormalize`` when the config asks for it (the discount defaults to the algo's)."""
    if not cfg.normalize:
        return venv
    from stable_baselines3.common.vec_env import VecNormalize  # noqa: PLC0415

    kwargs = dict(cfg.normalize)
    if gamma is not None:
        kwargs.setdefault("gamma", gamma)
    return VecNormalize(venv, **kwargs)


__all__ = ["ALGOS", "ENV_ID", "AgentConfig", "AgentConfigError", "algo_class", "algo_kwargs",
           "apply_overrides", "build_agent_config", "env_config", "make_single_env", "make_vec_env",
           "normalize_env", "read_config_file", "shipped_configs"]
