"""Agent configs (RL Baselines3 Zoo style) and the vectorized environments SB3 trains on.

An agent config is a YAML file keyed by environment id, as in the Zoo's ``hyperparams/ppo.yml``::

    psl_env/PSL-v0:
      algo: ppo                     # ppo | sac | a2c | td3 | maskable-ppo (default: file name prefix)
      policy: MlpPolicy
      n_envs: 64
      n_timesteps: !!float 1e6
      vec_env: batched              # batched (numpy vector env) | subproc | dummy
      env_kwargs:                   # PSLEnv config (docs/environment.md): the codec and the reward
        action_type: assisted
        reward: log-relative
      normalize: {norm_obs: true, norm_reward: false}   # VecNormalize options, or true / false
      env_wrapper: []               # gymnasium wrappers "module.Class" or {"module.Class": {kwargs}}
      learning_rate: lin_3e-4       # "lin_X": linear decay from X to 0 (also clip_range, clip_range_vf)
      policy_kwargs: {net_arch: [256, 256], activation_fn: tanh}
      eval_freq: 50000              # steps between evaluations (gap to the optimizers), 0 = never
      eval_episodes: 3
      eval_rounds: 50
      checkpoint_freq: 100000       # steps between checkpoints, 0 = only the final model

Every other key is a keyword argument of the algorithm's constructor. Files are read with
``yaml.safe_load``; unlike the Zoo, nothing is ``eval``-ed: ``policy_kwargs`` is a mapping and
``activation_fn`` a name. Stable-Baselines3 is imported only when a model is built.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from psl_env.config_files import brief, read_yaml, shipped

ENV_ID = "psl_env/PSL-v0"

# algo -> (module, class, action types it can drive)
ALGOS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ppo": ("stable_baselines3", "PPO", ("box", "multidiscrete", "assisted")),
    "a2c": ("stable_baselines3", "A2C", ("box", "multidiscrete", "assisted")),
    "sac": ("stable_baselines3", "SAC", ("box",)),
    "td3": ("stable_baselines3", "TD3", ("box",)),
    "maskable-ppo": ("sb3_contrib", "MaskablePPO", ("multidiscrete", "assisted")),
}
OFF_POLICY = ("sac", "td3")
VEC_ENVS = ("batched", "subproc", "dummy")
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
NORMALIZE_KEYS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")
# keys of an agent config that are not constructor arguments of the algorithm
RESERVED = {
    "algo": None, "policy": "MlpPolicy", "n_envs": 16, "n_timesteps": 100_000, "vec_env": "batched",
    "env_kwargs": {}, "normalize": False, "env_wrapper": [], "eval_freq": 0, "eval_episodes": 3,
    "eval_rounds": 50, "checkpoint_freq": 0, "noise_type": None, "noise_std": 0.1,
}


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

    def to_dict(self) -> dict:
        """The config as one Zoo-style entry (what ``config.yaml`` of a run holds)."""
        out = {"algo": self.algo, "policy": self.policy, "n_envs": self.n_envs, "n_timesteps": self.n_timesteps,
               "vec_env": self.vec_env, "env_kwargs": copy.deepcopy(self.env_kwargs),
               "normalize": copy.deepcopy(self.normalize) if self.normalize else False,
               "env_wrapper": copy.deepcopy(self.env_wrapper), "eval_freq": self.eval_freq,
               "eval_episodes": self.eval_episodes, "eval_rounds": self.eval_rounds,
               "checkpoint_freq": self.checkpoint_freq}
        if self.noise_type:
            out["noise_type"], out["noise_std"] = self.noise_type, self.noise_std
        out.update(copy.deepcopy(self.hyperparams))
        return {self.env_id: out}


# ---------------------------------------------------------------------------------------------------
# reading and validating configs

def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise AgentConfigError(f"{key}: {value!r} is not allowed; allowed: an integer in [{low}, {high}]")
    return int(value)


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
            raise AgentConfigError(f"--hyperparams {item!r}: expected key=value")
        parts = key.split(".")
        node = entry
        for part in parts[:-1]:
            child = node.get(part)
            if child is None or child is False:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise AgentConfigError(f"--hyperparams {item!r}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = parse_value(raw)
    return entry


def read_config_file(path: str | Path, env_id: str = ENV_ID) -> tuple[dict, str]:
    """The raw entry for ``env_id`` in a Zoo-style YAML file (a path, or the name of a shipped config,
    e.g. ``ppo``), and the algo named by the file."""
    found = shipped_configs()
    p = Path(path)
    if p.is_file() or str(path) not in found:
        if not p.exists():
            raise AgentConfigError(f"--config: {brief(str(path))} is neither a file nor a shipped config; "
                                   f"allowed: {list(found)} or a path to a .yaml file")
        source, stem = p, p.stem
    else:
        source, stem = found[str(path)], str(path)
    what = f"--config {brief(str(path))}"
    data = read_yaml(source, what, AgentConfigError)
    if not isinstance(data, dict) or not data:
        raise AgentConfigError(f"{what}: expected a mapping of env id -> hyperparameters")
    ids = [k for k, v in data.items() if isinstance(k, str) and "/" in k and isinstance(v, dict)]
    if env_id in data:
        entry = data[env_id]
    elif len(ids) == 1 and len(data) == 1:
        env_id = ids[0]  # the file's one env id (e.g. psl_env/PSLTrain-v0)
        entry = data[env_id]
    elif ids:
        raise AgentConfigError(f"{what}: no entry for {env_id!r}; found {sorted(ids)}")
    else:
        entry = data  # a bare entry without the env id key
    if not isinstance(entry, dict):
        raise AgentConfigError(f"{what}: the {env_id!r} entry must be a mapping")
    algo = stem.split("-")[0] if stem.split("-")[0] in ALGOS else stem
    return {**dict(entry), "env_id": env_id}, algo


def shipped_configs() -> dict[str, Any]:
    """The shipped agent configs: name (``ppo``, ``sac``, ...) -> resource (``configs/agents/NAME.yaml``)."""
    return shipped("agents")


def build_agent_config(entry: dict, default_algo: str | None = None, env_id: str = ENV_ID,
                       check_algo_kwargs: bool = True) -> AgentConfig:
    """Validate a raw Zoo-style entry (with overrides applied)."""
    entry = copy.deepcopy(entry)
    env_id = entry.pop("env_id", None) or env_id
    algo = entry.pop("algo", None) or default_algo
    if algo not in ALGOS:
        raise AgentConfigError(f"algo: {algo!r} is not allowed; allowed: {sorted(ALGOS)}")
    values = {k: entry.pop(k, copy.deepcopy(v)) for k, v in RESERVED.items() if k != "algo"}
    for key in ("frame_stack", "callback", "n_timesteps_eval"):
        if key in entry:
            raise AgentConfigError(f"{key}: the Zoo key is not supported here")
    cfg = AgentConfig(algo=algo, env_id=env_id)
    if not isinstance(values["policy"], str) or values["policy"] not in ("MlpPolicy",):
        raise AgentConfigError(f"policy: {values['policy']!r} is not allowed; allowed: ['MlpPolicy']")
    cfg.policy = values["policy"]
    cfg.n_envs = _int(values["n_envs"], "n_envs", 1, 4096)
    cfg.n_timesteps = _int(values["n_timesteps"], "n_timesteps", 1, 10**10)
    if values["vec_env"] not in VEC_ENVS:
        raise AgentConfigError(f"vec_env: {values['vec_env']!r} is not allowed; allowed: {list(VEC_ENVS)}")
    cfg.vec_env = values["vec_env"]
    env_kwargs = values["env_kwargs"] or {}
    if not isinstance(env_kwargs, dict):
        raise AgentConfigError(f"env_kwargs: expected a mapping, got {env_kwargs!r}")
    cfg.env_kwargs = env_kwargs
    action_type = cfg.action_type
    allowed_codecs = ALGOS[algo][2]
    if action_type not in allowed_codecs:
        raise AgentConfigError(f"env_kwargs.action_type: {action_type!r} does not fit {algo}; allowed: "
                               f"{list(allowed_codecs)}")
    norm = values["normalize"]
    if norm is True:
        norm = {"norm_obs": True, "norm_reward": True}
    if norm is False or norm is None:
        cfg.normalize = None
    elif isinstance(norm, dict):
        unknown = sorted(set(norm) - set(NORMALIZE_KEYS))
        if unknown:
            raise AgentConfigError(f"normalize: unknown key(s) {unknown}; allowed: {list(NORMALIZE_KEYS)}")
        cfg.normalize = dict(norm)
    else:
        raise AgentConfigError(f"normalize: {norm!r} is not allowed; allowed: true, false or a mapping of "
                               f"{list(NORMALIZE_KEYS)}")
    wrappers = values["env_wrapper"] or []
    if isinstance(wrappers, (str, dict)):
        wrappers = [wrappers]
    if not isinstance(wrappers, list):
        raise AgentConfigError(f"env_wrapper: expected a list of 'module.Class' or {{'module.Class': kwargs}}")
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
        raise AgentConfigError(f"noise_type: {values['noise_type']!r} is not allowed; allowed: [null, 'normal']")
    cfg.noise_type = values["noise_type"]
    std = values["noise_std"]
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 <= std <= 10:
        raise AgentConfigError(f"noise_std: {std!r} is not allowed; allowed: a number in [0, 10]")
    cfg.noise_std = float(std)
    if cfg.noise_type and algo not in OFF_POLICY:
        raise AgentConfigError(f"noise_type: action noise is for {list(OFF_POLICY)}, not {algo}")
    for key in SCHEDULE_KEYS:
        if isinstance(entry.get(key), str):
            parse_schedule(entry[key], key)
    if "policy_kwargs" in entry:
        policy_kwargs(entry["policy_kwargs"])
    cfg.hyperparams = entry
    if check_algo_kwargs:
        allowed = algo_arguments(algo)
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            raise AgentConfigError(f"{unknown[0]}: not a hyperparameter of {algo}; allowed: "
                                   f"{sorted(allowed) + sorted(RESERVED)}")
    return cfg


def parse_schedule(value: Any, key: str) -> Any:
    """``"lin_3e-4"`` -> a linear decay to 0 (Zoo); numbers stay constants."""
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise AgentConfigError(f"{key}: {value!r} is not allowed; allowed: a number or 'lin_<number>'")
        try:
            start = float(value[4:])
        except ValueError:
            raise AgentConfigError(f"{key}: {value!r} is not allowed; allowed: a number or 'lin_<number>'") from None
        if not start > 0:
            raise AgentConfigError(f"{key}: {value!r} must start above 0")
        from stable_baselines3.common.utils import LinearSchedule  # noqa: PLC0415 - heavy import

        return LinearSchedule(start, 0.0, 1.0)
    return value


def policy_kwargs(value: Any) -> dict:
    """``policy_kwargs`` with ``activation_fn`` names turned into torch modules."""
    if not isinstance(value, dict):
        raise AgentConfigError(f"policy_kwargs: expected a mapping (e.g. {{net_arch: [256, 256], activation_fn: "
                               f"tanh}}), got {value!r}; Python strings are not evaluated")
    out = dict(value)
    act = out.get("activation_fn")
    if act is not None:
        if act not in ACTIVATIONS:
            raise AgentConfigError(f"policy_kwargs.activation_fn: {act!r} is not allowed; allowed: {list(ACTIVATIONS)}")
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


def _resolve_wrapper(spec: Any) -> tuple[Callable, dict]:
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise AgentConfigError(f"env_wrapper: {spec!r}: expected one 'module.Class': kwargs pair")
        name, kwargs = next(iter(spec.items()))
        kwargs = kwargs or {}
    else:
        name, kwargs = spec, {}
    if not isinstance(name, str) or "." not in name or not isinstance(kwargs, dict):
        raise AgentConfigError(f"env_wrapper: {spec!r}: expected 'module.Class' or {{'module.Class': {{kwargs}}}}")
    module, _, cls = name.rpartition(".")
    try:
        target = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        raise AgentConfigError(f"env_wrapper: {name!r} cannot be imported") from None
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
