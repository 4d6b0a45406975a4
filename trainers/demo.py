"""``psl demo``: the most complete main job on the default scenario."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from . import latency_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")


def run(args: argparse.Namespace) -> int:
    return latency_report.run(SimpleNamespace(scenario="epsl-resnet18", overrides=[], rounds=20, out=args.out))
