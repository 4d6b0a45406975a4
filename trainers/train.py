"""``psl train``: train an SB3 scheduling agent from a Zoo-style config, with TensorBoard and checkpoints.

::

    psl train --config NAME_OR_FILE [--scenario NAME] [--set key=value ...]
              [--hyperparams key=value ...] [--timesteps N] [--seed S] [--out DIR]
    psl train --resume DIR [--timesteps N]

The run folder holds ``config.yaml`` (the resolved agent config, env config, the scenario with its
overrides applied, seed and command), ``model.zip`` and ``vecnormalize.pkl`` (the final policy,
loadable with SB3's ``load`` / ``VecNormalize.load``, or with ``psl bench --methods ALGO:DIR``),
``best_model.zip`` (best evaluation), ``checkpoints/`` (with ``manifest.json``), ``eval.csv``,
``progress.csv`` and the TensorBoard events in ``tb/``.

One process writes a run folder at a time (``.lock``, see ``trainers.run_folder``). ``--resume``
continues from the newest complete checkpoint to the run's total steps (or ``--timesteps``), and
``progress.csv``, ``eval.csv`` and TensorBoard continue where that checkpoint was taken; with the
batched env it continues exactly as if never stopped. Ctrl-C (or SIGTERM) stops after the current
step, saves a checkpoint and prints the command that resumes.
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from psl_env.config_files import brief, clip, read_yaml

from .cli import UsageError, add_scenario_arguments
from .paths import check_out_dir
from .sb3_env import (ALGOS, ENV_ID, OFF_POLICY, AgentConfig, AgentConfigError, apply_overrides, build_agent_config,
                      make_single_env, parse_config, read_config_file)

EVAL_SEED = 10_000  # evaluation episodes are seeded apart from the training episodes (seed + env index)
MAX_TIMESTEPS = 10**10


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C / SIGTERM after saving a checkpoint; the message says how to resume."""


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
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue a run from its newest complete "
                                                                      "checkpoint")
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


def _override_list(value: Any) -> list[str]:
    """``env_kwargs.overrides`` (a mapping or a list of ``key=value``) as a list."""
    if not value:
        return []
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    return [value] if isinstance(value, str) else list(value)


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


def _out_is_empty(out: Path) -> None:
    """A new run's folder holds nothing but (maybe) a lock file."""
    from .run_folder import LOCK_FILE  # noqa: PLC0415

    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise UsageError(f"--out: {str(out)!r} exists and is not empty; choose another folder, or continue it "
                         f"with: psl train --resume {shlex.quote(str(out))}")


def _apply_frequencies(cfg: AgentConfig, args: argparse.Namespace) -> None:
    if args.eval_freq is not None:
        cfg.eval_freq = args.eval_freq
    if args.checkpoint_freq is not None:
        cfg.checkpoint_freq = args.checkpoint_freq


def prepare(args: argparse.Namespace) -> dict:
    """Validate the command line; returns the resolved run plan (nothing written)."""
    _check_int(args.timesteps, "--timesteps", 1, MAX_TIMESTEPS)
    _check_int(args.seed, "--seed", 0, 2**31 - 1)
    _check_int(args.eval_freq, "--eval-freq", 0, MAX_TIMESTEPS)
    _check_int(args.checkpoint_freq, "--checkpoint-freq", 0, MAX_TIMESTEPS)
    _check_int(args.verbose, "--verbose", 0, 2)
    _check_int(getattr(args, "threads", 1), "--threads", 1, 256)
    _check_device(args.device)
    if args.resume is not None:
        return _prepare_resume(args)
    if not args.config:
        raise UsageError("--config: required (a shipped name such as ppo, or a file) unless --resume DIR is given")
    from psl_env.system.scenario import load_scenario  # noqa: PLC0415

    from .run_folder import check_not_in_use  # noqa: PLC0415

    try:
        entry, algo = read_config_file(args.config)
        entry = apply_overrides(entry, args.hyperparams)
        cfg = build_agent_config(entry, algo if algo in ALGOS else None)
    except AgentConfigError as err:
        raise UsageError(str(err)) from None
    _apply_frequencies(cfg, args)
    seed = 0 if args.seed is None else args.seed
    timesteps = args.timesteps or cfg.n_timesteps
    scenario_ref = args.scenario or cfg.env_kwargs.get("scenario") or cfg.default_scenario
    overrides = _override_list(cfg.env_kwargs.get("overrides")) + list(args.overrides)
    scenario = load_scenario(scenario_ref, overrides or None)
    env_cfg = {k: v for k, v in cfg.env_kwargs.items() if k != "overrides"}
    env_cfg["scenario"] = scenario_ref if isinstance(scenario_ref, str) else scenario.name
    if overrides:
        env_cfg["overrides"] = overrides
    _probe_env(cfg, env_cfg, scenario)
    out = check_out_dir(args.out or f"runs/train/{cfg.algo}-{cfg.action_type}-{scenario.name}-s{seed}")
    check_not_in_use(out)
    _out_is_empty(out)
    return {"cfg": cfg, "seed": seed, "timesteps": int(timesteps), "scenario": scenario, "env_config": env_cfg,
            "out": out, "resume": False, "config_path": args.config}


def _prepare_resume(args: argparse.Namespace) -> dict:
    from psl_env.system.scenario import build_scenario  # noqa: PLC0415

    from .run_folder import check_not_in_use, usable_checkpoints  # noqa: PLC0415

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
    check_out_dir(run_dir, "--resume")
    check_not_in_use(run_dir, "--resume")
    what = f"--resume: {brief(str(cfg_path))}"
    run = read_yaml(cfg_path, what, UsageError)
    try:
        entry, env_id = parse_config(run["agent"], what, run.get("env_id", ENV_ID))
        cfg = build_agent_config({**entry, "env_id": env_id}, run.get("algo"))
        scenario = build_scenario(run["scenario"])
        total = _check_int(int(run["timesteps"]), "timesteps", 1, MAX_TIMESTEPS)
        seed = _check_int(int(run["seed"]), "seed", 0, 2**31 - 1)
        if not isinstance(run["env_config"], dict):
            raise TypeError("env_config: expected a mapping")
    except (ValueError, KeyError, TypeError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise UsageError(f"{what} is not a valid run config ({clip(detail)})") from None
    _apply_frequencies(cfg, args)
    needs = ("model", "state") + (("vecnormalize",) if cfg.normalize else ())
    usable, skipped = usable_checkpoints(run_dir / "checkpoints", needs) if (run_dir / "checkpoints").is_dir() \
        else ([], [])
    if not usable:
        why = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise UsageError(f"--resume: no complete checkpoint in {str(run_dir / 'checkpoints')!r}{why}")
    ckpt = usable[0]
    timesteps = args.timesteps or total
    if timesteps <= ckpt.steps:
        raise UsageError(f"--timesteps: {timesteps} is not above the checkpoint's {ckpt.steps} steps; give a larger "
                         "total")
    return {"cfg": cfg, "seed": seed, "timesteps": int(timesteps), "scenario": scenario,
            "env_config": run["env_config"], "out": run_dir, "resume": True, "checkpoint": ckpt,
            "skipped": skipped, "config_path": run.get("config_path")}


# ---------------------------------------------------------------------------------------------------
# building and training

def build_model(plan: dict, device: str = "cpu", verbose: int = 0):
    """The vectorized env and the SB3 model of a plan (fresh, or loaded from its checkpoint)."""
    from stable_baselines3.common.noise import NormalActionNoise  # noqa: PLC0415

    from .sb3_env import algo_class, algo_kwargs, make_vec_env, normalize_env  # noqa: PLC0415

    cfg: AgentConfig = plan["cfg"]
    config = {**plan["env_config"], "scenario": plan["scenario"]}
    config.pop("overrides", None)  # already applied to the scenario object
    venv = make_vec_env(cfg, config, seed=plan["seed"])
    cls = algo_class(cfg.algo)
    kwargs = algo_kwargs(cfg)
    gamma = kwargs.get("gamma", 0.99)
    if plan["resume"]:
        return _load_checkpoint(plan, cls, venv, device)
    venv = normalize_env(venv, cfg, gamma)
    if cfg.noise_type == "normal":
        import numpy as np  # noqa: PLC0415

        dim = venv.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), cfg.noise_std * np.ones(dim))
    return cls(cfg.policy, venv, seed=plan["seed"], device=device, verbose=verbose, **kwargs)


def _load_checkpoint(plan: dict, cls: type, venv: Any, device: str) -> Any:
    """The model of the plan's checkpoint on ``venv``, with its normalizer, replay buffer and the saved
    env and random states put back."""
    from stable_baselines3.common.vec_env import VecNormalize  # noqa: PLC0415

    from .callbacks import load_state, restore_env_state, set_rng_state  # noqa: PLC0415

    ckpt = plan["checkpoint"]
    try:
        if plan["cfg"].normalize:
            venv = VecNormalize.load(str(ckpt.path("vecnormalize")), venv)
        model = cls.load(str(ckpt.path("model")), env=venv, device=device, force_reset=False)
        buffer = ckpt.path("replay_buffer")
        if buffer is not None and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(str(buffer))
        saved = load_state(ckpt.path("state"))
        if not restore_env_state(model.get_env(), saved["env"]):
            model._last_obs = None  # a subprocess env cannot be captured: start fresh episodes
        set_rng_state(saved["rng"])
    except Exception as err:  # noqa: BLE001 - SB3 and pickle raise many kinds on a damaged file
        venv.close()
        raise UsageError(f"--resume: the checkpoint at {ckpt.steps} steps cannot be loaded "
                         f"({type(err).__name__}: {clip(str(err))})") from None
    return model


def run_config(plan: dict, command: str) -> dict:
    """What ``config.yaml`` holds (plain YAML types)."""
    cfg: AgentConfig = plan["cfg"]
    return {"algo": cfg.algo, "env_id": cfg.env_id, "seed": plan["seed"], "timesteps": plan["timesteps"],
            "command": command, "config_path": str(plan.get("config_path")), "normalize": bool(cfg.normalize),
            "env_config": dict(plan["env_config"]), "agent": cfg.to_dict(), "scenario": plan["scenario"].to_dict()}


@contextmanager
def _on_signals(handler: Any) -> Iterator[None]:
    """``handler`` for Ctrl-C and SIGTERM within the block (only the main thread can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_request(stopper: Any) -> Any:
    """While training: the first Ctrl-C / SIGTERM asks ``stopper`` to end after the current step, a
    second Ctrl-C stops at once."""

    def request(signum: int, frame: Any) -> None:
        if stopper.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopper.requested = True
        print("\npsl train: stopping after this step to save a checkpoint (Ctrl-C again stops at once)",
              file=sys.stderr, flush=True)

    return request


def _logger(out: Path, plan: dict, verbose: int) -> Any:
    """TensorBoard + ``progress.csv`` (+ stdout); a resumed run continues both from its checkpoint."""
    from stable_baselines3.common.logger import configure  # noqa: PLC0415

    from .callbacks import continued_logger  # noqa: PLC0415
    from .run_folder import rewind_table  # noqa: PLC0415

    if not plan["resume"]:
        return configure(str(out / "tb"), ["tensorboard", "csv"] + (["stdout"] if verbose else []))
    ckpt = plan["checkpoint"]
    rewind_table(out / "eval.csv", ckpt.rows.get("eval"))
    keys = rewind_table(out / "tb" / "progress.csv", ckpt.rows.get("progress"))
    return continued_logger(out / "tb", keys, purge_step=ckpt.steps + 1, stdout=bool(verbose))


def train(plan: dict, progress: bool = True, device: str = "cpu", verbose: int = 0, command: str = "",
          on_eval: Callable[[dict], None] | None = None) -> Any:
    """Train (or resume) per ``plan`` under the run folder's lock; returns the SB3 model.

    ``on_eval`` gets every evaluation's ``eval.csv`` row as it is written (``psl sweep`` reports it
    to its scheduler).

    Raises:
        UsageError: the folder is in use, or the model or checkpoint cannot be built / loaded.
        Interrupted: Ctrl-C or SIGTERM; a checkpoint was saved first.
    """
    from .run_folder import RunLock  # noqa: PLC0415

    out: Path = plan["out"]
    with RunLock(out, command or "psl train", "--resume" if plan["resume"] else "--out"):
        if not plan["resume"]:
            _out_is_empty(out)  # again, now that this process holds the folder
        return _train_locked(plan, progress, device, verbose, command, on_eval)


def _train_locked(plan: dict, progress: bool, device: str, verbose: int, command: str,
                  on_eval: Callable[[dict], None] | None = None) -> Any:
    from .callbacks import (ExactCheckpointCallback, PolicyGapCallback, PSLMetricsCallback,  # noqa: PLC0415
                            StopOnRequest, TqdmProgressCallback, save_checkpoint, save_policy,
                            sb3_progress_bar_available)
    from .run_folder import discard_after, write_atomic  # noqa: PLC0415

    cfg: AgentConfig = plan["cfg"]
    out: Path = plan["out"]
    try:
        model = build_model(plan, device, verbose)
    except UsageError:
        raise
    except (ValueError, TypeError, AssertionError) as err:
        raise UsageError(f"--config: the {cfg.algo} model cannot be built: {clip(str(err))}") from None
    if plan["resume"]:
        ckpt = plan["checkpoint"]
        print(f"resuming {out} from the checkpoint at {ckpt.steps} steps ({ckpt.path('model').name})")
        if plan.get("skipped"):
            print(f"skipped newer checkpoint(s): {'; '.join(plan['skipped'])}", file=sys.stderr)
        discard_after(out / "checkpoints", ckpt.steps)
    else:
        text = yaml.safe_dump(run_config(plan, command), sort_keys=False)
        write_atomic(out / "config.yaml", lambda tmp: tmp.write_text(text))
    model.set_logger(_logger(out, plan, verbose))
    stopper = StopOnRequest()
    callbacks = [stopper, PSLMetricsCallback()]
    if cfg.eval_freq > 0:
        callbacks.append(PolicyGapCallback({k: v for k, v in plan["env_config"].items() if k != "scenario"},
                                           plan["scenario"], cfg.eval_freq, cfg.eval_episodes, cfg.eval_rounds,
                                           EVAL_SEED, out, masked=cfg.algo == "maskable-ppo", verbose=verbose,
                                           on_eval=on_eval))
    if cfg.checkpoint_freq > 0:
        callbacks.append(ExactCheckpointCallback(out / "checkpoints", cfg.checkpoint_freq, verbose))
    remaining = plan["timesteps"] - (model.num_timesteps if plan["resume"] else 0)
    rich_bar = progress and sb3_progress_bar_available()
    if progress and not rich_bar:
        callbacks.append(TqdmProgressCallback(remaining))
    with _on_signals(_stop_request(stopper)):
        model.learn(remaining, callback=callbacks, progress_bar=rich_bar, reset_num_timesteps=not plan["resume"],
                    log_interval=1)
    with _on_signals(signal.SIG_IGN):  # let the last checkpoint be written whole
        if stopper.requested:
            ckpt_path = save_checkpoint(model, out / "checkpoints")
            model.get_env().close()
            raise Interrupted(f"interrupted at {model.num_timesteps} steps; checkpoint saved: {ckpt_path}; "
                              f"resume with: psl train --resume {shlex.quote(str(out))}")
        save_policy(model, out / "model.zip", out / "vecnormalize.pkl")
        save_checkpoint(model, out / "checkpoints")
    model.get_env().close()
    return model


def summary(plan: dict, model: Any, seconds: float) -> list[str]:
    """What ``psl train`` prints when done: what ran, what was written, what to run next."""
    cfg: AgentConfig = plan["cfg"]
    out: Path = plan["out"]
    steps, asked = int(model.num_timesteps), plan["timesteps"]
    ran = f"{steps} steps"
    if steps > asked:
        unit = (f"rollouts of n_steps x n_envs = {model.n_steps * model.n_envs} steps" if cfg.algo not in OFF_POLICY
                else f"{model.n_envs} steps at a time (one per env)")
        ran += f" (asked for {asked}; {cfg.algo} collects {unit})"
    lines = [f"trained {cfg.algo} ({cfg.action_type}) on {plan['scenario'].name}: {ran} in {seconds:.0f} s"]
    written = [name for name in ("config.yaml", "model.zip", "vecnormalize.pkl", "best_model.zip", "eval.csv")
               if (out / name).is_file()]
    ckpts = sorted((out / "checkpoints").glob("ckpt_*_steps.zip"))
    if ckpts:
        written.append(f"checkpoints/ ({len(ckpts)})")
    written.append("tb/ (TensorBoard events, progress.csv)")
    lines.append(f"run folder: {out} ({', '.join(written)})")
    if cfg.env_id == ENV_ID:
        # psl bench takes the scenario (with its overrides) from the run folder
        lines.append(f"benchmark it: psl bench --methods {shlex.quote(f'{cfg.algo}:{out},epsl-bcd,fixed')}")
    lines.append(f"TensorBoard: tensorboard --logdir {shlex.quote(str(out / 'tb'))}")
    return lines


def run(args: argparse.Namespace) -> int:
    plan = prepare(args)
    command = shlex.join(["psl", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else "psl train"
    t0 = time.perf_counter()
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    model = train(plan, progress=args.progress, device=args.device, verbose=args.verbose, command=command)
    print("\n".join(summary(plan, model, time.perf_counter() - t0)))
    return 0


__all__ = ["Interrupted", "build_model", "prepare", "run", "run_config", "summary", "train"]
