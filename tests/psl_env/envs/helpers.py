"""Shared helpers of the environment tests."""

from __future__ import annotations

import numpy as np

import psl_env  # noqa: F401 - registers the environment ids

CODECS = ("dict", "box", "multidiscrete", "assisted")
IDS = ("psl_env/PSL-v0", "PSL-v0")

# Small, fast settings: 3 clients, 6 subchannels (ResNet-18 at 3x32x32), EPSL with phi = 0.5.
SMALL = {"scenario": "small-exact"}


def assert_same(a, b, path: str = "") -> None:
    """Recursive bitwise equality of observations / infos (dicts, object arrays, arrays, scalars)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and a.shape == b.shape, path
        for x, y in zip(a, b):
            if x is None:
                assert y is None, path
            else:
                assert_same(x, y, path)
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, (path, a.dtype, b.dtype)
        assert a.shape == b.shape, (path, a.shape, b.shape)
        assert np.array_equal(a, b, equal_nan=True), (path, a, b)
