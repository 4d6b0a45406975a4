"""``psl profile MODEL [--input CxHxW] [--out FILE]``: measure a model's per-cut profile."""

from __future__ import annotations

import argparse

from .cli import UsageError
from .paths import check_out_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (small-cnn, vgg16, resnet18)")
    parser.add_argument("--input", default=None, metavar="CxHxW", help="input shape, e.g. 3x32x32")
    parser.add_argument("--out", default=None, help="write the profile JSON here")


def run(args: argparse.Namespace) -> int:
    from psl_env.models import MODEL_NAMES
    from psl_env.models.profiler import format_profile_table, profile_command

    if args.model not in MODEL_NAMES:
        raise UsageError(f"model: unknown model {args.model!r}; allowed: {sorted(MODEL_NAMES)}")
    if args.out is not None:
        check_out_file(args.out)
    try:
        profile = profile_command(args.model, args.input, args.out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(format_profile_table(profile))
    if args.out:
        print(f"profile written to {args.out}")
    return 0
