"""Persistent work arrays, reused across calls (large fresh temporaries cost page faults)."""

from __future__ import annotations

import numpy as np


class Scratch:
    """Named work arrays; ``get`` returns the same array while the shape and dtype stay the same."""

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[tuple[int, ...], type, np.ndarray]] = {}
        self.fresh = False  # whether the last ``get`` allocated (its content is undefined)

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        entry = self._arrays.get(name)
        # the requested shape and dtype are kept as given: comparing them is cheaper than
        # comparing an array's dtype with a type
        self.fresh = entry is None or entry[0] != shape or (entry[1] is not dtype and entry[1] != dtype)
        if self.fresh:
            entry = self._arrays[name] = (shape, dtype, np.empty(shape, dtype=dtype))
        return entry[2]


__all__ = ["Scratch"]
