"""The ``psl`` command line: one subcommand per job, each in its own module.

Every subcommand validates its input and fails with one line naming the bad key or value and what
is allowed, exit code 2, before writing anything. A file system or memory error that still
happens later is one line with exit code 2 as well; Ctrl-C is one line with exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# Defined in its own module so that ``python -m trainers.cli`` (which loads this file twice, once
# as __main__) still catches the one class the subcommands raise.
from .errors import UsageError  # noqa: F401  (re-exported for subcommands)

# subcommand -> (module, help). Each module offers add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "profile": ("trainers.profile_cmd", "profile a model per cut candidate (FLOPs, bits, memory)"),
    "latency": ("trainers.latency_report", "latency report of reference allocations on a scenario"),
    "scenario": ("trainers.scenario_cmd", "show a scenario with overrides applied, or list the shipped ones"),
    "bench": ("trainers.bench", "benchmark decision makers on the same seeded rounds"),
    "train": ("trainers.train", "train an RL scheduling agent"),
    "demo": ("trainers.demo", "the main job on the default scenario"),
    "calibrate": ("trainers.calibrate_cmd", "measure this machine's FLOP/s per model block into a device profile"),
    "sweep": ("trainers.sweep", "hyperparameter sweep of an agent config on Ray Tune (psl-gym[ray])"),
}


def add_scenario_arguments(parser: argparse.ArgumentParser, default: str | None = "epsl-resnet18") -> None:
    """``--scenario NAME_OR_PATH`` and repeatable ``--set key=value``."""
    parser.add_argument("--scenario", default=default, help="shipped scenario name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a scenario key (repeatable; dotted keys reach nested settings)")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), values cut to a readable length."""

    def error(self, message: str):  # type: ignore[override]
        from psl_env.config_files import clip  # noqa: PLC0415

        self.exit(2, f"{self.prog}: error: {clip(message, 300)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="psl", description="psl-gym: schedule parallel split learning over wireless edge "
                                             "networks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        if not _available(module):
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from psl_env.config_files import clip
    from psl_env.system.scenario import ScenarioError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (UsageError, ScenarioError) as err:
        message = str(err)
    except OSError as err:  # a file or resource the checks could not foresee (disk full, removed folder)
        where = f" {clip(str(err.filename))!r}" if err.filename else ""
        message = f"{type(err).__name__}{where}: {err.strerror or err}"
    except MemoryError:
        message = "out of memory (reduce the sizes asked for)"
    except KeyboardInterrupt as err:  # Ctrl-C; ``psl train`` says where it saved a checkpoint
        print(f"psl {args.command}: {clip(str(err), 500) or 'interrupted'}", file=sys.stderr)
        return 130
    print(f"psl {args.command}: error: {clip(' '.join(message.split()), 500)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
