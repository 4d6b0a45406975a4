"""``psl profile MODEL [--input CxHxW] [--num-classes K] [--out FILE]``: measure a model's per-cut profile.

``MODEL`` is a shipped model (``small-cnn``, ``vgg16``, ``resnet18``), a shipped profile name
(``resnet18-64``) or a user's model as ``module:Class`` (found in the working folder too) or
``path/to/file.py:Class`` (see ``psl_env.models.profiler.load_user_model``).
"""

from __future__ import annotations

import argparse

from .cli import UsageError
from .paths import check_out_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="small-cnn, vgg16, resnet18, a shipped profile name, or module:Class / "
                                      "file.py:Class of your own SplitModel or nn.Sequential")
    parser.add_argument("--input", default=None, metavar="CxHxW", help="input shape, e.g. 3x32x32")
    parser.add_argument("--num-classes", type=int, default=None, help="output classes (default: the shipped "
                                                                      "profile's, else 10)")
    parser.add_argument("--out", default=None, help="write the profile JSON here")


def run(args: argparse.Namespace) -> int:
    from psl_env.models import MODEL_NAMES
    from psl_env.models.profiler import SHIPPED_PROFILES, format_profile_table, parse_input_shape, profile_command

    if ":" not in args.model and args.model not in MODEL_NAMES and args.model not in SHIPPED_PROFILES:
        raise UsageError(f"model: unknown model {args.model[:80]!r}; allowed: {sorted(MODEL_NAMES)}, a shipped "
                         f"profile {sorted(SHIPPED_PROFILES)} or module:Class")
    if args.num_classes is not None and not 1 <= args.num_classes <= 100_000:
        raise UsageError(f"--num-classes: {args.num_classes} is not allowed; allowed: an integer in [1, 100000]")
    try:
        shape = None if args.input is None else parse_input_shape(args.input)
        if args.out is not None:
            check_out_file(args.out)
        profile = profile_command(args.model, shape, args.out, num_classes=args.num_classes)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(format_profile_table(profile))
    if args.out:
        print(f"profile written to {args.out}")
    return 0
