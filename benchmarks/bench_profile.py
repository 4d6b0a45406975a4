"""Time the profiler on each shipped configuration and print its headline figures."""

from __future__ import annotations

import time

import torch

from psl_env.models import build_model
from psl_env.models.profiler import SHIPPED_PROFILES, profile_model


def main() -> None:
    print(f"{'profile':<13}{'L':>3}{'fwd GFLOPs':>12}{'bwd GFLOPs':>12}{'params M':>10}"
          f"{'mid cut':>9}{'act kbit':>10}{'profile s':>11}")
    for pname, (mname, shape, classes) in SHIPPED_PROFILES.items():
        with torch.random.fork_rng(devices=[]):
            model = build_model(mname, input_shape=shape, num_classes=classes)
        t0 = time.perf_counter()
        p = profile_model(model, name=pname)
        dt = time.perf_counter() - t0
        mid = p.num_blocks // 2
        print(f"{pname:<13}{p.num_blocks:>3}{p.fwd_flops[-1] / 1e9:>12.4f}{p.bwd_flops[-1] / 1e9:>12.4f}"
              f"{p.extra['num_params'] / 1e6:>10.3f}{mid:>9}{p.act_bits[mid] / 1e3:>10.1f}{dt:>11.3f}")


if __name__ == "__main__":
    main()
