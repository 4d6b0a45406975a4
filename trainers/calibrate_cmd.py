"""``psl calibrate``: measure this machine's forward/backward FLOP/s per model block into a device profile.

The profile (JSON, ``psl_env/training/calibrate.py``) gives the rate of every block and, per cut,
the rate that reproduces the measured client-side time; ``--scenario S --scenario-out FILE`` also
writes scenario S with its clients' (``--role server``: the server's) compute rate taken from the
measurement, so the simulated compute times come from this machine. Everything is checked before
measuring; files are written whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import UsageError, add_scenario_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="model profile name, e.g. small-cnn or resnet18-32 (default: the scenario's model, "
                             "or small-cnn without --scenario)")
    parser.add_argument("--out", required=True, help="write the device profile JSON here")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per timed pass (default: the scenario's batch_size, or 32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads while measuring (default: the scenario's training.torch_threads, or 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per block (the median is kept)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes per block first")
    parser.add_argument("--name", default=None, help="device name in the profile (default: this host's name)")
    add_scenario_arguments(parser, default=None)
    parser.add_argument("--scenario-out", default=None,
                        help="also write --scenario (required) with the measured compute rate, as YAML")
    parser.add_argument("--role", default="client", choices=("client", "server"),
                        help="whose rate --scenario-out takes from the measurement")
    parser.add_argument("--cut", type=int, default=None,
                        help="take the rate of blocks 1..CUT instead of the whole model's")


def _folder_of(path: str, flag: str) -> None:
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise UsageError(f"{flag}: folder {str(folder)!r} does not exist")
    if Path(path).is_dir():
        raise UsageError(f"{flag}: {path!r} is a folder; give a file name")


def run(args: argparse.Namespace) -> int:
    import yaml

    from psl_env.models import MODEL_NAMES
    from psl_env.system.scenario import load_scenario
    from psl_env.training.calibrate import (apply_device_profile, measure_device, profile_rate, write_json_atomic,
                                            write_text_atomic)
    from psl_env.training.engine import resolve_model

    scenario = None
    if args.scenario is not None:
        scenario = load_scenario(args.scenario, args.overrides)  # ScenarioError: one line, exit 2
    elif args.overrides:
        raise UsageError("--set: needs --scenario")
    if args.scenario_out is not None and scenario is None:
        raise UsageError("--scenario-out: needs --scenario")
    model = args.model or (scenario.model if scenario is not None else "small-cnn")
    try:
        resolve_model(model)
    except ValueError:
        raise UsageError(f"--model: no trainable model {model!r}; allowed: {sorted(MODEL_NAMES)}, optionally "
                         "with an input-size suffix such as resnet18-32") from None
    batch = args.batch_size if args.batch_size is not None else (scenario.batch_size if scenario else 32)
    threads = args.threads if args.threads is not None else (scenario.training.torch_threads if scenario else 1)
    for flag, value, low in (("--batch-size", batch, 1), ("--threads", threads, 1), ("--repeats", args.repeats, 1),
                             ("--warmup", args.warmup, 0)):
        if value < low:
            raise UsageError(f"{flag}: {value} is out of range; allowed: >= {low}")
    _folder_of(args.out, "--out")
    if args.scenario_out is not None:
        _folder_of(args.scenario_out, "--scenario-out")
        if Path(args.scenario_out).resolve() == Path(args.out).resolve():
            raise UsageError("--scenario-out: must differ from --out")
    if args.cut is not None:
        from psl_env.models import build_model

        arch, _ = resolve_model(model)
        blocks = build_model(arch).num_blocks
        if not 1 <= args.cut <= blocks - 1:
            raise UsageError(f"--cut: {args.cut} is out of range; allowed: 1..{blocks - 1} for {model!r}")

    profile = measure_device(model, batch, threads, args.repeats, args.warmup, args.name)
    calibrated = None
    if args.scenario_out is not None:
        calibrated = apply_device_profile(scenario, profile, args.cut, args.role)
    write_json_atomic(args.out, profile)
    print(f"{'block':14s} {'fwd GFLOP/s':>12s} {'bwd GFLOP/s':>12s} {'fwd ms':>9s} {'bwd ms':>9s}")
    for blk in profile["blocks"]:
        print(f"{blk['name']:14s} {blk['fwd_flops_per_s'] / 1e9:12.3f} {blk['bwd_flops_per_s'] / 1e9:12.3f} "
              f"{blk['fwd_s'] * 1e3:9.3f} {blk['bwd_s'] * 1e3:9.3f}")
    rate = profile_rate(profile, args.cut)
    print(f"{model} at batch {batch}, {threads} thread(s): {profile['compute_flops'] / 1e9:.3f} GFLOP/s over the whole "
          f"model" + (f", {rate / 1e9:.3f} GFLOP/s over blocks 1..{args.cut}" if args.cut else ""))
    print(f"device profile written to {args.out}")
    if calibrated is not None:
        header = (f"# {calibrated.name}: {args.role} compute rate {rate:.6g} FLOP/s measured by psl calibrate "
                  f"({args.out}, model {model})\n")
        write_text_atomic(args.scenario_out, header + yaml.safe_dump(calibrated.to_dict(), sort_keys=False))
        print(f"scenario written to {args.scenario_out}")
    return 0
