"""Compiled (numba) fading steps of the Gauss-Markov channel; the numpy code is the reference.

- ``draw_normals``: the fading innovations of many envs, each from its own generator, in one call
  without the GIL (numba's ``Generator.standard_normal`` reproduces numpy's stream, about three
  times faster here).
- ``gauss_markov_fade``: the fading step for a fixed correlation (h = a h + sqrt(1 - a^2) e,
  gains = |h|^2 x large-scale gain) in one pass, with numpy's operations in numpy's order.

Rows (environments) are independent, so a round gives bitwise the same numbers alone or in any
batch. The kernels release the GIL, so a worker thread draws meanwhile. Loaded through
``psl_env.backend.load_kernels``; numba is optional (``pip install 'psl-gym[fast]'``).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def gauss_markov_fade(h, noise, corr, scale, large, out, start, stop):  # pragma: no cover - compiled
    """For envs start..stop-1: h <- corr h + scale sqrt(1/2) noise and out <- |h|^2 x large.

    Args:
        h: [K, 2, N, M] fading state (real and imaginary parts), updated in place.
        noise: [K, 2, N, M] standard normal draws (read only).
        corr, scale: the correlation a and sqrt(1 - a^2).
        large: [K, N] path loss x shadowing.
        out: [K, N, M] the new gains.
    """
    n, m = out.shape[1], out.shape[2]
    half = math.sqrt(0.5)
    for r in range(start, stop):
        for i in range(n):
            g = large[r, i]
            for j in range(m):
                re = h[r, 0, i, j] * corr + noise[r, 0, i, j] * half * scale
                im = h[r, 1, i, j] * corr + noise[r, 1, i, j] * half * scale
                h[r, 0, i, j] = re
                h[r, 1, i, j] = im
                out[r, i, j] = (re * re + im * im) * g


@numba.njit(cache=True, nogil=True)
def draw_normals(generators, out, active, start, stop):  # pragma: no cover - compiled
    """out[k] <- standard normals of ``generators[k]`` for the envs start <= k < stop with
    ``active[k]``: numba's ``Generator.standard_normal`` is numpy's ziggurat on the same bit
    generator state, so the values and the generator's next state are numpy's (a test checks)."""
    for k in range(start, stop):
        if active[k]:
            flat = out[k].reshape(-1)
            rng = generators[k]
            for i in range(flat.size):
                flat[i] = rng.standard_normal()


def generator_list(generators: list[np.random.Generator]) -> "numba.typed.List":
    """The generators as a typed list for ``draw_normals`` (it shares their states)."""
    return numba.typed.List(generators)


@functools.cache
def draws_match_numpy() -> bool:
    """Whether ``draw_normals`` reproduces numpy's stream with the installed numba and numpy.

    They agree in the versions we test; another pairing that did not would silently change every
    trajectory, so the environments check once and otherwise draw with numpy.
    """
    ours, theirs = np.random.default_rng(20261125), np.random.default_rng(20261125)
    out = np.empty((1, 2, 32, 64))  # 4,096 normals: the ziggurat's rejection branches included
    draw_normals(generator_list([ours]), out, np.ones(1, dtype=np.bool_), 0, 1)
    return bool(np.array_equal(out[0], theirs.standard_normal((2, 32, 64)))
                and ours.standard_normal() == theirs.standard_normal())


__all__ = ["draw_normals", "draws_match_numpy", "gauss_markov_fade", "generator_list"]
