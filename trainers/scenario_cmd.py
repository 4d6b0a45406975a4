"""``psl scenario``: print a scenario after overrides (YAML), or list the shipped ones."""

from __future__ import annotations

import argparse

import yaml

from psl_env.system.scenario import available_scenarios, load_scenario

from .cli import add_scenario_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scenario_arguments(parser)
    parser.add_argument("--list", action="store_true", help="list the shipped scenarios")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in available_scenarios():
            s = load_scenario(name)
            print(f"{name:18s} model={s.model:12s} scheme={s.scheme:9s} N={s.num_clients} M={s.num_subchannels}")
        return 0
    scenario = load_scenario(args.scenario, args.overrides)
    print(yaml.safe_dump(scenario.to_dict(), sort_keys=False), end="")
    return 0
