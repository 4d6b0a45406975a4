"""The ergodic spectral efficiency of a Rayleigh-faded subchannel (``channel.small_scale: averaged``).

With |h|^2 ~ Exp(1) and a cap C on the spectral efficiency, a subchannel at mean SNR x carries, over
a round long enough to see many fading blocks,

    E[min(log2(1 + x |h|^2), C)] = log2(e) [U(1, 1, 1/x) - e^(-t) U(1, 1, 1/x + t)],  t = (2^C - 1) / x,

where U(1, 1, z) = e^z E1(z) is Tricomi's confluent hypergeometric function (integrate by parts:
the cap's tail C e^(-t) cancels). Without a cap the second term vanishes. ``ergodic_se`` evaluates
it through a table in log x, built once from the closed form (relative error below 1e-6, tested
against the closed form and a Monte Carlo estimate); below the table the function is linear in x
(x log2(e)), above it at the cap (or log2(x) - gamma / ln 2 without one).
"""

from __future__ import annotations

import functools
from math import e, inf, log, log2

import numpy as np

_LOG_X_MIN, _LOG_X_MAX, _POINTS = log(1e-7), log(1e11), 16_385
_EULER_GAMMA = 0.5772156649015329


def ergodic_se_exact(x: np.ndarray, cap: float = inf) -> np.ndarray:
    """The closed form above (slow: ``scipy.special.hyperu``), bit/s/Hz."""
    from scipy.special import hyperu  # noqa: PLC0415

    x = np.asarray(x, dtype=np.float64)
    z = 1.0 / x
    out = hyperu(1.0, 1.0, z)
    if cap < inf:
        t = (2.0 ** cap - 1.0) / x
        out = out - np.exp(-t) * hyperu(1.0, 1.0, z + t)
    return log2(e) * out


@functools.lru_cache(maxsize=8)
def _table(cap: float) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(_LOG_X_MIN, _LOG_X_MAX, _POINTS)
    return grid, ergodic_se_exact(np.exp(grid), cap)


def ergodic_se(x: np.ndarray, cap: float = inf) -> np.ndarray:
    """E[min(log2(1 + x |h|^2), cap)] for mean SNRs ``x`` >= 0 (any shape), bit/s/Hz."""
    x = np.asarray(x, dtype=np.float64)
    grid, values = _table(float(cap))
    with np.errstate(divide="ignore"):
        lx = np.log(np.where(x > 0, x, 1.0))
    out = np.interp(lx, grid, values)
    low = x < np.exp(_LOG_X_MIN)
    if low.any():
        out = np.where(low, x * log2(e), out)
    high = lx > _LOG_X_MAX
    if high.any():
        top = cap if cap < inf else lx / log(2.0) - _EULER_GAMMA / log(2.0)
        out = np.where(high, top, out)
    return np.where(x > 0, out, 0.0)


__all__ = ["ergodic_se", "ergodic_se_exact"]
