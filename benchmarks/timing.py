"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable


def best_seconds(fn: Callable[[], object], repeats: int, number: int, warmup: int = 0) -> float:
    """Seconds per call of ``fn``: the best mean over ``repeats`` blocks of ``number`` calls.

    The best block, not the mean, because other processes only ever add time.
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best
