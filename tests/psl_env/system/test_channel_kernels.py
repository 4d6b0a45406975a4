"""The compiled fading kernels of the Gauss-Markov channel reproduce numpy's draws and arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")


def test_draw_normals_reproduces_numpy_streams():
    """The compiled draws give numpy's values and leave each generator where numpy would."""
    from psl_env.system.channels import kernels

    seeds = [3, 14, 15, 92, 65]
    ours = [np.random.default_rng(s) for s in seeds]
    theirs = [np.random.default_rng(s) for s in seeds]
    out = np.zeros((5, 2, 40, 50))  # 4,000 normals per env: the ziggurat's rare branches included
    active = np.array([True, False, True, True, True])
    kernels.draw_normals(kernels.generator_list(ours), out, active, 1, 5)  # envs 1..4, env 1 inactive
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i in (2, 3, 4):
            np.testing.assert_array_equal(out[i], b.standard_normal((2, 40, 50)))
        else:
            assert not out[i].any()
        assert a.standard_normal() == b.standard_normal()  # the same next draw: the same state
    assert kernels.draws_match_numpy()  # so the environments draw with the kernel
