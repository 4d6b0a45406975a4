"""``psl train``: train an SB3 scheduling agent from a Zoo-style config, with TensorBoard and checkpoints.

::

    psl train --config configs/agents/ppo.yaml [--scenario NAME] [--set key=value ...]
              [--hyperparams key=value ...] [--timesteps N] [--seed S] [--out DIR]
    psl train --resume DIR [--timesteps N]

The run folder holds ``config.yaml`` (the resolved agent config, env config, scenario, seed and
command), ``model.zip`` and ``vecnormalize.pkl`` (the final policy, loadable with SB3's ``load`` /
``VecNormalize.load``, or with ``psl bench --methods ALGO:DIR``), ``best_model.zip`` (best
evaluation), ``checkpoints/``, ``eval.csv``, ``progress.csv`` and the TensorBoard events in ``tb/``.
``--resume`` continues from the last checkpoint to the run's total steps (or ``--timesteps``);
with the batched env it continues exactly as if never stopped.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from psl_env.config_files import brief, clip, read_yaml

from .cli import UsageError, add_scenario_arguments
from .paths import check_out_dir, make_out_dir
from .sb3_env import (ALGOS, ENV_ID, AgentConfig, AgentConfigError, apply_overrides, build_agent_config,
                      env_config, make_single_env, parse_config, read_config_file)

EVAL_SEED = 10_000  # evaluation episodes are seeded apart from the training episodes (seed + env index)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="agent config: a shipped name (ppo, ppo-box, sac, a2c, td3, maskable-ppo) "
                                         "or a Zoo-style YAML file")
    add_scenario_arguments(parser, default=None)
    parser.add_argument("--hyperparams", action="append", default=[], metavar="KEY=VALUE",
                        help="override an agent config key (repeatable; dotted keys reach env_kwargs, "
                             "policy_kwargs, normalize), e.g. --hyperparams learning_rate=1e-4")
    parser.add_argument("--timesteps", type=int, default=None, help="total environment steps (default: the "
                                                                     "config's n_timesteps)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the model and of the training episodes "
                                                               "(env k gets SEED + k; default 0)")
    parser.add_argument("--out", default=None, help="run folder (default runs/train/ALGO-ACTION-SCENARIO-sSEED)")
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue a run from its last checkpoint")
    parser.add_argument("--eval-freq", type=int, default=None, help="steps between evaluations against "
                                                                    "epsl-bcd and fixed (0 = never)")
    parser.add_argument("--checkpoint-freq", type=int, default=None, help="steps between checkpoints "
                                                                          "(0 = only at the end)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the networks are "
                                                               "small, the environment needs the other cores)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("-v", "--verbose", type=int, default=0, help="SB3 verbosity (0, 1, 2)")


# ---------------------------------------------------------------------------------------------------
# validation (everything before anything is written)

def _check_int(value: Any, flag: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{flag}: {brief(value)} is not allowed; allowed: an integer in [{low}, {high}]")
    return value


def _check_device(device: str) -> None:
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", str(device)):
        raise UsageError(f"--device: {brief(device)} is not allowed; allowed: cpu, auto, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch  # noqa: PLC0415

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise UsageError(f"--device: {device!r} is not available (this machine has {count} CUDA device(s)); "
                             f"allowed: cpu, auto" + (f" or cuda:0..cuda:{count - 1}" if count else ""))


def _scenario(cfg: AgentConfig, scenario_arg: str | None, overrides: list[str]):
    from psl_env.system.scenario import load_scenario  # noqa: PLC0415

    name = scenario_arg or cfg.env_kwargs.get("scenario") or cfg.default_scenario
    cfg_overrides = cfg.env_kwargs.get("overrides") or []
    if isinstance(cfg_overrides, dict):
        cfg_overrides = [f"{k}={v}" for k, v in cfg_overrides.items()]
    return name, load_scenario(name, list(cfg_overrides) + list(overrides) or None)


def _probe_env(cfg: AgentConfig, env_cfg: dict, scenario: Any) -> None:
    """Build one environment of the run here, so that one that cannot be built (bad env_kwargs, a
    scenario the training-mode env cannot train, a bad wrapper) fails before anything is written,
    not later inside a worker process."""
    from psl_env.envs.config import EnvConfigError  # noqa: PLC0415

    config = {k: v for k, v in env_cfg.items() if k != "overrides"}
    try:
        env = make_single_env(cfg.env_id, {**config, "scenario": scenario}, cfg.env_wrapper)
    except EnvConfigError as err:
        raise UsageError(f"env_kwargs: {err}") from None
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise UsageError(f"{cfg.env_id} cannot be built on scenario {scenario.name!r} with these env_kwargs "
                         f"and env_wrapper: {clip(str(err))}") from None
    env.close()


def _check_out(out: Path) -> None:
    check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out: {str(out)!r} exists and is not empty; choose another folder or --resume it")


def prepare(args: argparse.Namespace) -> dict:
    """Validate the command line; returns the resolved run plan (nothing written)."""
    _check_int(args.timesteps, "--timesteps", 1, 10**10)
    _check_int(args.seed, "--seed", 0, 2**31 - 1)
    _check_int(args.eval_freq, "--eval-freq", 0, 10**10)
    _check_int(args.checkpoint_freq, "--checkpoint-freq", 0, 10**10)
    _check_int(args.verbose, "--verbose", 0, 2)
    _check_int(getattr(args, "threads", 1), "--threads", 1, 256)
    _check_device(args.device)
    if args.resume is not None:
        return _prepare_resume(args)
    if not args.config:
        raise UsageError("--config: required (e.g. configs/agents/ppo.yaml) unless --resume DIR is given")
    try:
        entry, algo = read_config_file(args.config)
        entry = apply_overrides(entry, args.hyperparams)
        cfg = build_agent_config(entry, algo if algo in ALGOS else None)
    except AgentConfigError as err:
        raise UsageError(str(err)) from None
    if args.eval_freq is not None:
        cfg.eval_freq = args.eval_freq
    if args.checkpoint_freq is not None:
        cfg.checkpoint_freq = args.checkpoint_freq
    seed = 0 if args.seed is None else args.seed
    timesteps = args.timesteps or cfg.n_timesteps
    scenario_name, scenario = _scenario(cfg, args.scenario, args.overrides)
    env_cfg = env_config(cfg, scenario_name, None)
    env_cfg.pop("overrides", None)
    all_overrides = list(_scenario_overrides(cfg)) + list(args.overrides)
    if all_overrides:
        env_cfg["overrides"] = all_overrides
    _probe_env(cfg, env_cfg, scenario)
    default_out = f"runs/train/{cfg.algo}-{cfg.action_type}-{scenario.name}-s{seed}"
    out = Path(args.out or default_out)
    _check_out(out)
    return {"cfg": cfg, "seed": seed, "timesteps": int(timesteps), "scenario": scenario, "env_config": env_cfg,
            "out": out, "resume": False, "config_path": args.config}


def _scenario_overrides(cfg: AgentConfig) -> list[str]:
    ov = cfg.env_kwargs.get("overrides") or []
    if isinstance(ov, dict):
        return [f"{k}={v}" for k, v in ov.items()]
    return list(ov)


def _prepare_resume(args: argparse.Namespace) -> dict:
    from psl_env.system.scenario import build_scenario  # noqa: PLC0415

    from .callbacks import latest_checkpoint  # noqa: PLC0415

    run_dir = Path(args.resume)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"--resume: {str(run_dir)!r} has no config.yaml; not a `psl train` run folder")
    for flag, value in (("--config", args.config), ("--scenario", args.scenario), ("--seed", args.seed),
                        ("--out", args.out)):
        if value is not None:
            raise UsageError(f"{flag}: not allowed with --resume (the run folder fixes it)")
    if args.overrides or args.hyperparams:
        raise UsageError("--set/--hyperparams: not allowed with --resume (the run folder fixes them)")
    what = f"--resume: {brief(str(cfg_path))}"
    run = read_yaml(cfg_path, what, UsageError)
    try:
        entry, env_id = parse_config(run["agent"], what, run.get("env_id", ENV_ID))
        cfg = build_agent_config({**entry, "env_id": env_id}, run.get("algo"))
        scenario = build_scenario(run["scenario"])
        total = _check_int(int(run["timesteps"]), "timesteps", 1, 10**10)
        seed = _check_int(int(run["seed"]), "seed", 0, 2**31 - 1)
        if not isinstance(run["env_config"], dict):
            raise TypeError("env_config: expected a mapping")
    except (ValueError, KeyError, TypeError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise UsageError(f"{what} is not a valid run config ({clip(detail)})") from None
    if args.eval_freq is not None:
        cfg.eval_freq = args.eval_freq
    if args.checkpoint_freq is not None:
        cfg.checkpoint_freq = args.checkpoint_freq
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise UsageError(f"--resume: no checkpoint in {str(run_dir / 'checkpoints')!r}")
    timesteps = args.timesteps or total
    done = int(ckpt.stem.split("_")[1])
    if timesteps <= done:
        raise UsageError(f"--timesteps: {timesteps} is not above the checkpoint's {done} steps; give a larger total")
    return {"cfg": cfg, "seed": seed, "timesteps": int(timesteps), "scenario": scenario,
            "env_config": run["env_config"], "out": run_dir, "resume": True, "checkpoint": ckpt,
            "config_path": run.get("config_path")}


# ---------------------------------------------------------------------------------------------------
# building and training

def build_model(plan: dict, device: str = "cpu", verbose: int = 0):
    """The vectorized env and the SB3 model of a plan (fresh, or loaded from its checkpoint)."""
    from stable_baselines3.common.noise import NormalActionNoise  # noqa: PLC0415
    from stable_baselines3.common.vec_env import VecNormalize  # noqa: PLC0415

    from .sb3_env import algo_class, algo_kwargs, make_vec_env, normalize_env  # noqa: PLC0415

    cfg: AgentConfig = plan["cfg"]
    config = {**plan["env_config"], "scenario": plan["scenario"]}
    config.pop("overrides", None)  # already applied to the scenario object
    venv = make_vec_env(cfg, config, seed=plan["seed"])
    cls = algo_class(cfg.algo)
    kwargs = algo_kwargs(cfg)
    gamma = kwargs.get("gamma", 0.99)
    if plan["resume"]:
        ckpt: Path = plan["checkpoint"]
        norm_path = ckpt.with_name(ckpt.stem[: -len("_steps")] + "_vecnormalize.pkl")
        if cfg.normalize:
            venv = VecNormalize.load(str(norm_path), venv)
        model = cls.load(str(ckpt), env=venv, device=device, force_reset=False)
        buffer = ckpt.with_name(ckpt.stem[: -len("_steps")] + "_replay_buffer.pkl")
        if buffer.is_file() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(str(buffer))
        return model
    venv = normalize_env(venv, cfg, gamma)
    if cfg.noise_type == "normal":
        import numpy as np  # noqa: PLC0415

        dim = venv.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), cfg.noise_std * np.ones(dim))
    return cls(cfg.policy, venv, seed=plan["seed"], device=device, verbose=verbose, **kwargs)


def run_config(plan: dict, command: str) -> dict:
    """What ``config.yaml`` holds (plain YAML types)."""
    cfg: AgentConfig = plan["cfg"]
    env_cfg = {k: v for k, v in plan["env_config"].items()}
    return {"algo": cfg.algo, "env_id": cfg.env_id, "seed": plan["seed"], "timesteps": plan["timesteps"],
            "command": command, "config_path": str(plan.get("config_path")), "normalize": bool(cfg.normalize),
            "env_config": env_cfg, "agent": cfg.to_dict(), "scenario": plan["scenario"].to_dict()}


def train(plan: dict, progress: bool = True, device: str = "cpu", verbose: int = 0, command: str = "") -> Any:
    """Train (or resume) per ``plan``; returns the SB3 model. Writes the run folder."""
    from stable_baselines3.common.logger import configure  # noqa: PLC0415

    from .callbacks import (ExactCheckpointCallback, PolicyGapCallback, PSLMetricsCallback,  # noqa: PLC0415
                            TqdmProgressCallback, restore_env_state, save_checkpoint, sb3_progress_bar_available,
                            set_rng_state)

    cfg: AgentConfig = plan["cfg"]
    out: Path = plan["out"]
    try:
        model = build_model(plan, device, verbose)
    except (ValueError, TypeError, AssertionError) as err:
        raise UsageError(f"--config: the {cfg.algo} model cannot be built: {err}") from None
    if plan["resume"]:
        import pickle  # noqa: PLC0415

        ckpt: Path = plan["checkpoint"]
        state_path = ckpt.with_name(ckpt.stem[: -len("_steps")] + "_state.pkl")
        if state_path.is_file():
            with state_path.open("rb") as fh:
                saved = pickle.load(fh)
            if not restore_env_state(model.get_env(), saved["env"]):
                model._last_obs = None  # a subprocess env cannot be captured: start fresh episodes
            set_rng_state(saved["rng"])
    else:
        make_out_dir(out)
        (out / "config.yaml").write_text(yaml.safe_dump(run_config(plan, command), sort_keys=False))
    formats = ["tensorboard", "csv"] + (["stdout"] if verbose else [])
    model.set_logger(configure(str(out / "tb"), formats))
    callbacks = [PSLMetricsCallback()]
    if cfg.eval_freq > 0:
        callbacks.append(PolicyGapCallback({k: v for k, v in plan["env_config"].items() if k != "scenario"},
                                           plan["scenario"], cfg.eval_freq, cfg.eval_episodes, cfg.eval_rounds,
                                           EVAL_SEED, out, masked=cfg.algo == "maskable-ppo", verbose=verbose))
    if cfg.checkpoint_freq > 0:
        callbacks.append(ExactCheckpointCallback(out / "checkpoints", cfg.checkpoint_freq, verbose))
    remaining = plan["timesteps"] - (model.num_timesteps if plan["resume"] else 0)
    rich_bar = progress and sb3_progress_bar_available()
    if progress and not rich_bar:
        callbacks.append(TqdmProgressCallback(remaining))
    model.learn(remaining, callback=callbacks, progress_bar=rich_bar, reset_num_timesteps=not plan["resume"],
                log_interval=1)
    model.save(out / "model.zip")
    norm = model.get_vec_normalize_env()
    if norm is not None:
        norm.save(str(out / "vecnormalize.pkl"))
    save_checkpoint(model, out / "checkpoints")
    model.get_env().close()
    return model


def run(args: argparse.Namespace) -> int:
    plan = prepare(args)
    command = shlex.join(["psl", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else "psl train"
    t0 = time.perf_counter()
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    train(plan, progress=args.progress, device=args.device, verbose=args.verbose, command=command)
    out = plan["out"]
    cfg = plan["cfg"]
    print(f"trained {cfg.algo} ({cfg.action_type}) on {plan['scenario'].name} for {plan['timesteps']} steps "
          f"in {time.perf_counter() - t0:.0f} s")
    print(f"run folder: {out} (model.zip, config.yaml, checkpoints/, eval.csv, tb/)")
    if cfg.env_id == ENV_ID:
        print(f"benchmark it: psl bench --scenario {plan['scenario'].name} --methods {cfg.algo}:{out},epsl-bcd,fixed")
    print(f"TensorBoard: tensorboard --logdir {out / 'tb'}")
    return 0

