"""EPSL's aggregation ratio phi as part of the action (``PSLTrain-v0`` with ``phi_action=True``).

The action of a codec gains one more component that picks phi from ``PHI_GRID`` each round:

==========================  =======================================  ===================================
codec space                 with phi                                 phi component
==========================  =======================================  ===================================
Box([-1, 1], D)             Box([-1, 1], D + 1)                      the last score s: grid index
                                                                     floor((s + 1) / 2 x G), s = 1 -> G-1
Discrete(n)                 MultiDiscrete([n, G])                    the last entry: grid index
MultiDiscrete(nvec)         MultiDiscrete([*nvec, G])                the last entry: grid index
Dict(...)                   Dict(..., phi=Discrete(G))               ``phi``: grid index
==========================  =======================================  ===================================

G = ``len(PHI_GRID)``. ``split`` checks the phi component and returns the codec's own action and the
grid index; ``join`` is its inverse (for decision makers that pick a phi and an allocation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from ..models.profile import load_profile
from ..system.latency import LatencyModel
from ..system.scenario import Scenario
from .codecs import Codec, InvalidAction, make_codec

PHI_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0 is plain PSL


class PhiAction:
    """The codec's action space extended by a choice of phi (see the module docstring).

    Args:
        base: the codec's single-round action space.
        grid: the phi values to choose from.
    """

    def __init__(self, base: spaces.Space, grid: tuple[float, ...] = PHI_GRID) -> None:
        self.base = base
        self.grid = tuple(float(p) for p in grid)
        g = len(self.grid)
        if isinstance(base, spaces.Box):
            self.kind = "box"
            low = np.concatenate([base.low, [-1.0]]).astype(base.dtype)
            high = np.concatenate([base.high, [1.0]]).astype(base.dtype)
            self.space: spaces.Space = spaces.Box(low, high, (low.size,), dtype=base.dtype)
        elif isinstance(base, spaces.Discrete):
            self.kind = "discrete"
            self.space = spaces.MultiDiscrete([int(base.n), g])
        elif isinstance(base, spaces.MultiDiscrete):
            self.kind = "multidiscrete"
            self.space = spaces.MultiDiscrete([*np.asarray(base.nvec).tolist(), g])
        elif isinstance(base, spaces.Dict):
            self.kind = "dict"
            self.space = spaces.Dict({**base.spaces, "phi": spaces.Discrete(g)})
        else:
            raise TypeError(f"phi_action: no phi component for action space {type(base).__name__}")

    def split(self, action: Any) -> tuple[Any, int]:
        """(the codec's action, the grid index of phi); ``InvalidAction`` on a bad phi component."""
        g = len(self.grid)
        if self.kind == "dict":
            if not isinstance(action, dict) or "phi" not in action:
                raise InvalidAction("dict action: expected a 'phi' entry (a grid index) with phi_action")
            rest = {k: v for k, v in action.items() if k != "phi"}
            return rest, self._index(action["phi"], "dict action 'phi'")
        arr = np.asarray(action)
        if arr.ndim != 1 or arr.shape[0] != self.space.shape[0]:
            raise InvalidAction(f"action: expected shape {self.space.shape} with phi_action, got {arr.shape}")
        if self.kind == "box":
            score = float(arr[-1])
            if not -1.0 <= score <= 1.0:  # also NaN
                raise InvalidAction(f"action: phi score {score!r} is out of range; allowed [-1, 1]")
            return arr[:-1], min(math.floor((score + 1.0) * 0.5 * g), g - 1)
        idx = self._index(arr[-1], "action phi entry")
        return (arr[0] if self.kind == "discrete" else arr[:-1]), idx

    def join(self, base_action: Any, index: int) -> Any:
        """The action of ``base_action`` at grid index ``index`` (``split``'s inverse; a Box score at
        the middle of the index's bin)."""
        g = len(self.grid)
        if self.kind == "dict":
            return {**base_action, "phi": np.int64(index)}
        if self.kind == "box":
            score = (index + 0.5) / g * 2.0 - 1.0
            return np.concatenate([np.asarray(base_action, dtype=np.float32).reshape(-1),
                                   [np.float32(score)]]).astype(np.float32)
        return np.concatenate([np.asarray(base_action, dtype=np.int64).reshape(-1), [index]]).astype(np.int64)

    def index_of(self, phi: float) -> int:
        """The grid index of ``phi`` (``ValueError`` naming the grid if it is not on it)."""
        for i, p in enumerate(self.grid):
            if abs(p - float(phi)) < 1e-12:
                return i
        raise ValueError(f"phi: {phi!r} is not on the grid; allowed: {list(self.grid)}")

    def _index(self, value: Any, what: str) -> int:
        arr = np.asarray(value)
        if arr.size != 1 or not (np.issubdtype(arr.dtype, np.integer)
                                 or (np.issubdtype(arr.dtype, np.floating) and bool(np.isfinite(arr).all())
                                     and float(arr) == int(arr))):
            raise InvalidAction(f"{what}: expected one integer grid index, got {value!r}")
        idx = int(arr)
        if not 0 <= idx < len(self.grid):
            raise InvalidAction(f"{what}: {idx} is out of range; allowed 0..{len(self.grid) - 1} (phi {list(self.grid)})")
        return idx


def models_per_phi(scenario: Scenario, action_type: str, options: dict | None, backend: str,
                   grid: tuple[float, ...] = PHI_GRID) -> list[tuple[LatencyModel, Codec]]:
    """A latency model (per-cut scheme tables with that phi applied) and a codec deciding on it, for
    every phi of the grid, built once: a round at grid phi p is priced and decoded exactly as in a
    scenario whose ``phi`` is p."""
    profile = load_profile(scenario.model)
    out = []
    for phi in grid:
        model = LatencyModel(scenario.replace(phi=float(phi)), profile, backend)
        out.append((model, make_codec(action_type, model, options, backend)))
    return out


__all__ = ["PHI_GRID", "PhiAction", "models_per_phi"]
