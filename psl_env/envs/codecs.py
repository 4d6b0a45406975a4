"""Action codecs: each maps one action space to feasible ``Allocation``s (and back).

The Dict action is the truth (cut, owner per subchannel, power fraction per subchannel); the other
codecs are thin, low-dimensional encodings for Stable-Baselines3 agents that decode every output to
a sensible, feasible allocation:

===============  =====================================  ===============================================
``action_type``  action space                           decoding
===============  =====================================  ===============================================
``dict``         Dict(cut, owner, power_fraction)       as given; clients left without a subchannel are
                                                        repaired (``repair_owner``), fractions of a
                                                        client summing above 1 are scaled down
``box``          Box([-1, 1], C + N), float32           C cut scores (C = 1, or N with per-device
                                                        cuts) + N client priorities -> the solver's
                                                        bottleneck greedy (priority-scaled) +
                                                        water-filling
``multidiscrete``MultiDiscrete([L-1]*C + [Q]*N)         the same with cut indices and Q priority levels
``assisted``     Discrete(L-1) (or MultiDiscrete [N])   the cut(s) only; subchannels and power by the
                                                        optimizer's inner solver (``FixedCutSolver``)
===============  =====================================  ===============================================

Codecs work on batches (an ``Observation`` with a leading axis K) so that the single and the
vector environment share one implementation; ``decode`` / ``encode`` are the one-round
conveniences. Decoders only see what a scheduler may see (an ``Observation``). The codecs are
registered by name (``CODECS``, ``register_codec``): the env's ``action.type`` picks one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from ..backend import load_kernels
from ..named import register_named
from ..resources.context import FixedCutSolver
from ..resources.greedy import TabulatedGreedy, anchor_candidates, gather_owned, priority_owner, uplink_need
from ..resources.waterfill import water_fill_owned
from ..scratch import Scratch
from ..system.allocation import repair_owner
from ..system.latency import LatencyModel
from ..system.state import Allocation, Observation


_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # the reductions without the method wrappers


class InvalidAction(ValueError):
    """An action is outside the codec's action space (wrong shape, out of bounds, NaN, ...)."""


@dataclass
class Decoded:
    """K decoded allocations: cut [K, N], owner [K, M], power_w [K, M], and repair counts [K]."""

    cut: np.ndarray
    owner: np.ndarray
    power_w: np.ndarray
    repairs: np.ndarray
    power_repairs: np.ndarray
    all_used: bool | None = None  # every subchannel has an owner (None: unknown)

    def allocation(self, k: int = 0) -> Allocation:
        return Allocation(self.cut[k].copy(), self.owner[k].copy(), self.power_w[k].copy())


# ---------------------------------------------------------------------------------------------------
# validation helpers

def _as_array(action: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(action)
    except Exception as err:  # noqa: BLE001 - any conversion failure is an invalid action
        raise InvalidAction(f"{name}: cannot read {type(action).__name__} as an array ({err})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidAction(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def _check_shape(arr: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if arr.shape != shape:
        raise InvalidAction(f"{name}: expected shape {shape}, got {arr.shape}")


def _check_real(arr: np.ndarray, low: float, high: float, name: str) -> np.ndarray:
    """Finite values in [low, high], as float64."""
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not (arr.min() >= low and arr.max() <= high):
        if np.isnan(arr).any():
            raise InvalidAction(f"{name}: contains NaN")
        bad = arr[(arr < low) | (arr > high)]
        raise InvalidAction(f"{name}: values must lie in [{low:g}, {high:g}]; got {bad[:4].tolist()}")
    return arr


def _check_int(arr: np.ndarray, low: np.ndarray | int, high: np.ndarray | int, name: str) -> np.ndarray:
    """Integers with low <= value < high (per element), as int64."""
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating):
            if np.isnan(arr).any():
                raise InvalidAction(f"{name}: contains NaN")
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise InvalidAction(f"{name}: expected integers, got {arr.ravel()[:4].tolist()}")
        elif arr.dtype != np.bool_:
            raise InvalidAction(f"{name}: expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < low) | (arr >= high)
    if bad.any():
        raise InvalidAction(f"{name}: values must be integers in [{np.min(low)}, {np.max(high) - 1}]; "
                            f"got {arr[bad][:4].tolist()}")
    return arr


# ---------------------------------------------------------------------------------------------------
# codecs

class Codec(ABC):
    """Maps an action space to feasible allocations of a scenario.

    Args:
        model: the scenario's latency model (profile, N, M, scheme).
        options: codec options (see each codec's ``OPTIONS``).
    """

    name: str = ""
    OPTIONS: dict[str, Any] = {}
    has_action_masks = False  # discrete codecs offer MaskablePPO masks

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inner = cls.__dict__.get("decode_batch")
        if inner is None or getattr(inner, "_keeps_absent_off", False):
            return

        def decode_batch(self, actions: Any, obs: Observation) -> Decoded:
            out = inner(self, actions, obs)
            return out if obs.present is None else self._keep_absent_off(out, obs)

        decode_batch.__doc__ = inner.__doc__
        decode_batch._keeps_absent_off = True
        cls.decode_batch = decode_batch

    def _keep_absent_off(self, out: Decoded, obs: Observation) -> Decoded:
        """Absent clients (churn) own nothing: each subchannel a decoder gave one goes to the present
        client with the best gain on it, and the row's power is water-filled again (a repair).
        Every codec's ``decode_batch`` ends with this."""
        rows = np.flatnonzero((~obs.present).any(axis=1))
        if rows.size == 0:
            return out
        owner, power, repairs = out.owner.copy(), out.power_w.copy(), out.repairs.copy()
        radio = self.model.radio
        for r in rows.tolist():
            present = obs.present[r]
            lost = (owner[r] >= 0) & ~present[np.maximum(owner[r], 0)]
            if not lost.any():
                continue
            keep = np.flatnonzero(present)
            for ch in np.flatnonzero(lost).tolist():
                owner[r, ch] = keep[np.argmax(obs.gains[r, keep, ch])]
            inv = radio.wf_noise_w / obs.gains[r, np.maximum(owner[r], 0), np.arange(self.m)]
            power[r] = water_fill_owned(owner[r:r + 1], inv[None], obs.power_budget_w[r:r + 1], radio.link)[0]
            power[r, owner[r] < 0] = 0.0
            repairs[r] += 1
        return Decoded(out.cut, owner, power, repairs, out.power_repairs, out.all_used)
    def __init__(self, model: LatencyModel, backend: str = "auto", **options: Any) -> None:
        self.backend = backend  # see ``backend.load_kernels``
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(f"action options {unknown} are unknown for action_type={self.name!r}; "
                             f"allowed: {sorted(self.OPTIONS)}")
        self.options = {**self.OPTIONS, **options}
        self.model = model
        self.n = model.num_clients
        self.m = model.num_subchannels
        self.num_blocks = model.num_blocks
        self.num_cuts = model.num_blocks - 1  # cut candidates 1..L-1
        self.cut_dims = 1 if model.common_cut else self.n
        self.space = self._space()
        self._cut_memory = model.tables.client_memory_bytes[1:-1]  # [L-1] bytes per cut candidate
        self._deepest_memory = float(self._cut_memory.max())  # caps at least this never exclude a cut

    @abstractmethod
    def _space(self) -> spaces.Space:
        """The single-round action space."""

    @abstractmethod
    def validate(self, action: Any) -> Any:
        """One action, checked against the space (``InvalidAction`` otherwise), in canonical dtypes."""

    @abstractmethod
    def validate_batch(self, actions: Any, num_envs: int) -> Any:
        """A batch of K actions (the batched space of ``gymnasium.vector``), checked."""

    @abstractmethod
    def decode_batch(self, actions: Any, obs: Observation) -> Decoded:
        """K validated actions -> K feasible allocations."""

    @abstractmethod
    def encode(self, alloc: Allocation, obs: Observation) -> Any:
        """An action that decodes to ``alloc`` (exactly for ``dict`` / ``assisted``, approximately
        for the low-dimensional codecs: a projection, e.g. for imitation of an optimizer)."""

    def stack(self, actions: list) -> Any:
        """K single actions -> one batched action."""
        return np.stack([np.asarray(a) for a in actions])

    def one(self, action: Any) -> Any:
        """One validated action -> a batch of one."""
        return action[None]

    # -- one-round conveniences --------------------------------------------------------------------
    def decode(self, action: Any, obs: Observation) -> tuple[Allocation, int]:
        """(allocation, number of repaired clients) for one action on one observed round."""
        out = self.decode_batch(self.one(self.validate(action)), obs.stacked())
        return out.allocation(0), int(out.repairs[0] + out.power_repairs[0])

    # -- masks -------------------------------------------------------------------------------------
    def cut_mask(self, obs: Observation) -> np.ndarray:
        """[K, C, L-1] cut candidates whose client-side memory fits the clients' caps (with a common
        cut: every client's). A masked cut decodes to the deepest one that fits (``fit_cuts``)."""
        fits = self._cut_memory[None, None, :] <= obs.memory_bytes[:, :, None]  # [K, N, L-1]
        if self.cut_dims == 1:
            fits = fits.all(axis=1, keepdims=True)
        return fits

    def fit_cuts(self, cut: np.ndarray, obs: Observation) -> tuple[np.ndarray, np.ndarray | None]:
        """[K, N] cuts moved shallower where the clients' memory caps exclude them, and [K] whether
        a round's cut moved (None: no cap binds, nothing moved)."""
        if obs.memory_bytes.min() >= self._deepest_memory:  # the common case: every cut fits
            return cut, None
        fitted = self.model.tables.fit_cut(cut, obs.memory_bytes)
        return fitted, (fitted != cut).any(axis=1).astype(np.int64)

    def action_masks(self, obs: Observation) -> np.ndarray | None:
        """Flat per-dimension masks [K, sum(nvec)] for MaskablePPO, or None when not discrete."""
        return None

    # -- shared pieces -----------------------------------------------------------------------------
    def _cuts(self, cut: np.ndarray) -> np.ndarray:
        """[K, C] cuts -> [K, N]."""
        if self.cut_dims == 1:
            return np.repeat(cut, self.n, axis=1)
        return cut

    def _zeros(self, k: int) -> np.ndarray:
        return np.zeros(k, dtype=np.int64)


class PriorityCodec(Codec):
    """Shared decoder of ``box`` and ``multidiscrete``: cuts + one priority a_i in [-1, 1] per client.

    Decoding, for cuts j_i and priorities a_i (u_i = exp(priority_range x a_i), 1 when neutral):

    - ``assignment="greedy"`` (default): the solver's bottleneck greedy without its per-pick
      arithmetic: each client's modeled round time as a function of how many
      of its best subchannels it holds is tabulated and scaled by u_i; every client picks once (most
      urgent first), then each remaining subchannel goes to the client with the largest time, each
      pick taking its client's best free subchannel (``TabulatedGreedy``). The neutral action is
      within a few percent of the solver's assignment; priorities shift subchannels towards
      (a_i > 0) or away from clients.
    - ``assignment="proportional-fair"``: faster, coarser: every subchannel goes to the client with
      the largest w_i x g_im / mean_m g_im, w_i = u_i x (air time per subchannel), plus one anchor
      subchannel per client (``priority_owner``).

    Power: exact water-filling of each client's budget over its subchannels. No repair is ever
    needed: every client holds at least one subchannel.
    """

    OPTIONS = {"priority_range": 2.0, "assignment": "greedy"}
    ASSIGNMENTS = ("greedy", "proportional-fair")

    def __init__(self, model: LatencyModel, **options: Any) -> None:
        super().__init__(model, **options)
        self.priority_range = float(self.options["priority_range"])
        if not (0.0 <= self.priority_range <= 20.0):
            raise ValueError(f"action.priority_range: {self.priority_range!r} is out of range; allowed [0, 20]")
        self.assignment = self.options["assignment"]
        if self.assignment not in self.ASSIGNMENTS:
            raise ValueError(f"action.assignment: {self.assignment!r} is not allowed; allowed: {list(self.ASSIGNMENTS)}")
        self.greedy = TabulatedGreedy(model)
        # the compiled greedy decode (numba), used for the greedy assignment when available
        kernels = load_kernels(self.backend, "psl_env.resources.kernels") if self.assignment == "greedy" else None
        self.compiled = None if kernels is None else kernels.CompiledGreedy(self.greedy)
        self.candidates = anchor_candidates(self.n, self.m)
        self.scratch = Scratch()

    def allocate(self, cut: np.ndarray, priority: np.ndarray, obs: Observation) -> Decoded:
        """[K, N] cuts and [K, N] priorities in [-1, 1] -> allocations (cuts over a memory cap move
        to the deepest that fits, counted as repairs).

        Rounds with absent clients (churn, padding slots) are decoded on their present clients
        alone, so an absent client takes no pick of the greedy (repairing such picks afterwards
        would hand subchannels out by gain alone, far from the bottleneck assignment)."""
        out = self._allocate(cut, priority, obs)
        if obs.present is None or obs.present.all():
            return out
        owner, power = out.owner.copy(), out.power_w.copy()
        rows = np.flatnonzero(~obs.present.all(axis=1))
        counts = obs.present[rows].sum(axis=1)
        for count in np.unique(counts).tolist():  # rows with as many present clients decode together
            r = rows[counts == count]
            idx = np.stack([np.flatnonzero(obs.present[i]) for i in r.tolist()])  # [R, count]
            pick = (lambda a: a[r[:, None], idx])  # noqa: E731
            sub = Observation(pick(obs.gains), pick(obs.client_flops), pick(obs.power_budget_w),
                              pick(obs.memory_bytes), pick(obs.prev_cut), obs.has_prev[r], obs.prev_latency_s[r],
                              obs.round[r], obs.sync[r], obs.episode[r],
                              None if obs.broadcast_rate is None else obs.broadcast_rate[r])
            part = self._allocate(pick(out.cut), pick(priority), sub)
            owner[r] = np.take_along_axis(idx, part.owner, axis=1)
            power[r] = part.power_w
        return Decoded(out.cut, owner, power, out.repairs, out.power_repairs, True)

    def _allocate(self, cut: np.ndarray, priority: np.ndarray, obs: Observation) -> Decoded:
        """``allocate`` without regard to presence."""
        urgency = np.exp(self.priority_range * priority)
        k = cut.shape[0]
        cut, moved = self.fit_cuts(cut, obs)
        repairs = self._zeros(k) if moved is None else moved
        if self.compiled is not None:
            owner, power = self.compiled.decode(obs.gains, obs.power_budget_w, obs.client_flops, cut, urgency,
                                                obs.broadcast_rate)
            return Decoded(cut, owner, power, repairs, self._zeros(k), True)
        if self.assignment == "greedy":
            owner, power = self.greedy.decode(obs.gains, obs.power_budget_w, obs.client_flops, cut, urgency,
                                              obs.broadcast_rate)
        else:
            mean_gain = obs.gains.mean(axis=2)
            need = uplink_need(self.model, cut, mean_gain, obs.power_budget_w)
            owner = priority_owner(obs.gains, need * urgency, self.candidates, mean_gain, self.scratch)
            inv_snr = self.model.radio.wf_noise_w / gather_owned(obs.gains, owner, all_used=True)
            power = water_fill_owned(owner, inv_snr, obs.power_budget_w, self.model.radio.link)
        return Decoded(cut, owner, power, repairs, self._zeros(k), True)

    def _priority_of(self, alloc: Allocation, obs: Observation) -> np.ndarray:
        """Priorities that move the decoded subchannel counts towards the allocation's (a projection:
        log of the count ratio to the neutral decoding, over priority_range, clipped)."""
        if self.priority_range == 0:
            return np.zeros(self.n)
        neutral = self.allocate(alloc.cut[None], np.zeros((1, self.n)), obs.stacked()).owner[0]
        counts = np.bincount(alloc.owner[alloc.owner >= 0], minlength=self.n)
        base = np.bincount(neutral, minlength=self.n)
        ratio = np.maximum(counts, 0.5) / np.maximum(base, 0.5)
        return np.clip(np.log(ratio) / self.priority_range, -1.0, 1.0)


class BoxCodec(PriorityCodec):
    """``box``: one Box in [-1, 1] of C cut scores and N priorities (SAC, PPO, TD3).

    Cut score s in [-1, 1] -> cut 1 + floor((s + 1) / 2 x (L - 1)) (equal-width bins, s = 1 -> L-1).
    """

    name = "box"

    def _space(self) -> spaces.Space:
        return spaces.Box(-1.0, 1.0, (self.cut_dims + self.n,), dtype=np.float32)

    def validate(self, action: Any) -> np.ndarray:
        if type(action) is np.ndarray and action.dtype.kind == "f" and action.shape == self.space.shape:
            arr = action.astype(np.float64)  # fast path: a float vector of the right shape
            if _MIN(arr) >= -1.0 and _MAX(arr) <= 1.0:  # False with a NaN: the full checks report it
                return arr
        arr = _as_array(action, "box action")
        _check_shape(arr, self.space.shape, "box action")
        return _check_real(arr, -1.0, 1.0, "box action")

    def validate_batch(self, actions: Any, num_envs: int) -> np.ndarray:
        arr = _as_array(actions, "box actions")
        _check_shape(arr, (num_envs, *self.space.shape), "box actions")
        return _check_real(arr, -1.0, 1.0, "box actions")

    def decode_batch(self, actions: np.ndarray, obs: Observation) -> Decoded:
        c = self.cut_dims
        if c == 1 and actions.shape[0] == 1:  # one round: the same arithmetic on a Python float
            idx = math.floor((float(actions[0, 0]) + 1.0) * (0.5 * self.num_cuts))
            cut = np.full((1, self.n), min(idx, self.num_cuts - 1) + 1, dtype=np.int64)
            return self.allocate(cut, actions[:, 1:], obs)
        idx = np.floor((actions[:, :c] + 1.0) * (0.5 * self.num_cuts)).astype(np.int64)
        cut = np.minimum(idx, self.num_cuts - 1) + 1
        return self.allocate(self._cuts(cut), actions[:, c:], obs)

    def encode(self, alloc: Allocation, obs: Observation) -> np.ndarray:
        cut = alloc.cut[:1] if self.cut_dims == 1 else alloc.cut
        score = (cut - 1 + 0.5) / self.num_cuts * 2.0 - 1.0
        return np.concatenate([score, self._priority_of(alloc, obs)]).astype(np.float32)


class MultiDiscreteCodec(PriorityCodec):
    """``multidiscrete``: C cut indices (value v -> cut v + 1) and N priority levels 0..Q-1
    (level q -> priority -1 + 2q / (Q - 1)) (PPO, A2C, MaskablePPO)."""

    name = "multidiscrete"
    OPTIONS = {**PriorityCodec.OPTIONS, "levels": 5}
    has_action_masks = True

    def __init__(self, model: LatencyModel, **options: Any) -> None:
        levels = options.get("levels", self.OPTIONS["levels"])
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 2 <= levels <= 101:
            raise ValueError(f"action.levels: {levels!r} is not allowed; allowed: an integer in [2, 101]")
        self.levels = int(levels)
        super().__init__(model, **options)
        self.high = np.array([self.num_cuts] * self.cut_dims + [self.levels] * self.n, dtype=np.int64)

    def _space(self) -> spaces.Space:
        return spaces.MultiDiscrete([self.num_cuts] * self.cut_dims + [self.levels] * self.n)

    def validate(self, action: Any) -> np.ndarray:
        arr = _as_array(action, "multidiscrete action")
        _check_shape(arr, self.space.shape, "multidiscrete action")
        return _check_int(arr, 0, self.high, "multidiscrete action")

    def validate_batch(self, actions: Any, num_envs: int) -> np.ndarray:
        arr = _as_array(actions, "multidiscrete actions")
        _check_shape(arr, (num_envs, *self.space.shape), "multidiscrete actions")
        return _check_int(arr, 0, self.high, "multidiscrete actions")

    def decode_batch(self, actions: np.ndarray, obs: Observation) -> Decoded:
        c = self.cut_dims
        priority = actions[:, c:] * (2.0 / (self.levels - 1)) - 1.0
        return self.allocate(self._cuts(actions[:, :c] + 1), priority, obs)

    def encode(self, alloc: Allocation, obs: Observation) -> np.ndarray:
        cut = alloc.cut[:1] if self.cut_dims == 1 else alloc.cut
        level = np.rint((self._priority_of(alloc, obs) + 1.0) * 0.5 * (self.levels - 1))
        return np.concatenate([cut - 1, level]).astype(np.int64)

    def action_masks(self, obs: Observation) -> np.ndarray:
        k = obs.num_envs
        cut = self.cut_mask(obs).reshape(k, -1)
        return np.concatenate([cut, np.ones((k, self.levels * self.n), dtype=bool)], axis=1)


class AssistedCodec(Codec):
    """``assisted``: the agent picks the cut(s); the environment completes subchannels and power on
    the observed gains. Discrete(L-1) for a common cut (value v -> cut v + 1), MultiDiscrete([L-1] *
    N) for per-device cuts.

    ``solver="bcd"`` (default): ``FixedCutSolver``, the inner solver of ``epsl-bcd`` (greedy start,
    then moves and swaps toward the bottleneck; one call per round, so the vector env loops over
    its envs). ``solver="greedy"``: the batched bottleneck greedy of the ``box`` codec at neutral
    priorities (within a few percent of the solver, vectorized).
    """

    name = "assisted"
    OPTIONS = {"refine": True, "solver": "bcd"}
    has_action_masks = True

    def __init__(self, model: LatencyModel, **options: Any) -> None:
        super().__init__(model, **options)
        self.refine = bool(self.options["refine"])
        self.solver = self.options["solver"]
        if self.solver not in ("bcd", "greedy"):
            raise ValueError(f"action.solver: {self.solver!r} is not allowed; allowed: ['bcd', 'greedy']")
        self._greedy = BoxCodec(model, backend=self.backend) if self.solver == "greedy" else None
        self._solver = FixedCutSolver(model, refine=self.refine, backend=self.backend)

    def _space(self) -> spaces.Space:
        if self.cut_dims == 1:
            return spaces.Discrete(self.num_cuts)
        return spaces.MultiDiscrete([self.num_cuts] * self.n)

    def validate(self, action: Any) -> np.ndarray:
        arr = _as_array(action, "assisted action")
        if self.cut_dims == 1:
            if arr.size != 1 or arr.ndim > 1:
                raise InvalidAction(f"assisted action: expected one cut index, got shape {arr.shape}")
            arr = arr.reshape(())
        else:
            _check_shape(arr, self.space.shape, "assisted action")
        return _check_int(arr, 0, self.num_cuts, "assisted action")

    def validate_batch(self, actions: Any, num_envs: int) -> np.ndarray:
        arr = _as_array(actions, "assisted actions")
        shape = (num_envs,) if self.cut_dims == 1 else (num_envs, self.n)
        if self.cut_dims == 1 and arr.shape == (num_envs, 1):
            arr = arr[:, 0]
        _check_shape(arr, shape, "assisted actions")
        return _check_int(arr, 0, self.num_cuts, "assisted actions")

    def decode_batch(self, actions: np.ndarray, obs: Observation) -> Decoded:
        k = obs.num_envs
        cut = self._cuts(actions.reshape(k, -1) + 1)
        if self._greedy is not None:
            return self._greedy.allocate(cut, np.zeros((k, self.n)), obs)
        cut, moved = self.fit_cuts(cut, obs)
        owner = np.empty((k, self.m), dtype=np.int64)
        power = np.empty((k, self.m))
        for i in range(k):
            # the solver sees only the clients taking part: nobody waits for an absent one
            sub, expand = obs[i].present_subproblem()
            present = np.ones(self.n, dtype=bool) if obs.present is None else obs.present[i]
            alloc = expand(self._solver.solve(sub, cut[i][present])[0])
            owner[i], power[i] = alloc.owner, alloc.power_w
        return Decoded(cut, owner, power, self._zeros(k) if moved is None else moved, self._zeros(k), True)

    def encode(self, alloc: Allocation, obs: Observation) -> np.ndarray:
        if self.cut_dims == 1:
            return np.int64(alloc.cut[0] - 1)
        return (alloc.cut - 1).astype(np.int64)

    def action_masks(self, obs: Observation) -> np.ndarray:
        return self.cut_mask(obs).reshape(obs.num_envs, -1)


class DictCodec(Codec):
    """``dict``: the native action, the allocation itself.

    ``cut``: C cuts in 1..L-1; ``owner``: M clients in -1..N-1 (-1 = unused); ``power_fraction``: M
    fractions in [0, 1] of the owner's budget. Decoding is literal except where the action would be
    infeasible: a client with no subchannel takes one (``repair_owner``: its best unused subchannel,
    else its best among clients holding two or more); a client whose fractions sum above 1 has them
    scaled down to sum to 1; a served client whose fractions sum to 0 spreads its budget equally.
    Both counts are reported (``repairs``, ``power_repairs``).
    """

    name = "dict"

    def _space(self) -> spaces.Space:
        c, n, m = self.cut_dims, self.n, self.m
        return spaces.Dict({
            "cut": spaces.MultiDiscrete([self.num_cuts] * c, start=[1] * c),
            "owner": spaces.MultiDiscrete([n + 1] * m, start=[-1] * m),
            "power_fraction": spaces.Box(0.0, 1.0, (m,), dtype=np.float32),
        })

    _KEYS = ("cut", "owner", "power_fraction")

    def _check(self, action: Any, lead: tuple[int, ...], what: str) -> dict[str, np.ndarray]:
        if not isinstance(action, dict):
            raise InvalidAction(f"{what}: expected a dict with keys {list(self._KEYS)}, got {type(action).__name__}")
        if set(action) != set(self._KEYS):
            raise InvalidAction(f"{what}: expected keys {list(self._KEYS)}, got {sorted(action)}")
        cut = _as_array(action["cut"], f"{what}['cut']")
        owner = _as_array(action["owner"], f"{what}['owner']")
        frac = _as_array(action["power_fraction"], f"{what}['power_fraction']")
        _check_shape(cut, (*lead, self.cut_dims), f"{what}['cut']")
        _check_shape(owner, (*lead, self.m), f"{what}['owner']")
        _check_shape(frac, (*lead, self.m), f"{what}['power_fraction']")
        return {"cut": _check_int(cut, 1, self.num_blocks, f"{what}['cut']"),
                "owner": _check_int(owner, -1, self.n, f"{what}['owner']"),
                "power_fraction": _check_real(frac, 0.0, 1.0, f"{what}['power_fraction']")}

    def validate(self, action: Any) -> dict[str, np.ndarray]:
        return self._check(action, (), "dict action")

    def validate_batch(self, actions: Any, num_envs: int) -> dict[str, np.ndarray]:
        return self._check(actions, (num_envs,), "dict actions")

    def stack(self, actions: list) -> dict[str, np.ndarray]:
        return {key: np.stack([np.asarray(a[key]) for a in actions]) for key in self._KEYS}

    def one(self, action: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: value[None] for key, value in action.items()}

    def decode_batch(self, actions: dict[str, np.ndarray], obs: Observation) -> Decoded:
        k, n, m = obs.num_envs, self.n, self.m
        cut, moved = self.fit_cuts(self._cuts(actions["cut"]), obs)
        owner = actions["owner"].copy()
        frac = actions["power_fraction"].copy()
        rows = np.arange(k)[:, None]
        used = owner >= 0
        bins = np.where(used, owner + rows * n, k * n).ravel()
        counts = np.bincount(bins, minlength=k * n + 1)[: k * n].reshape(k, n)
        served = counts > 0
        repairs = self._zeros(k) if moved is None else moved
        for i in np.flatnonzero(~served.all(axis=1)):
            before = owner[i].copy()
            owner[i], fixed = repair_owner(owner[i], obs.gains[i])
            repairs[i] += fixed
            changed = owner[i] != before
            frac[i, changed] = 0.0  # a repaired subchannel carries no power of its old owner
        used = owner >= 0
        bins = np.where(used, owner + rows * n, k * n).ravel()
        frac = np.where(used, frac, 0.0)
        total = np.bincount(bins, frac.ravel(), minlength=k * n + 1)[: k * n].reshape(k, n)
        counts = np.bincount(bins, minlength=k * n + 1)[: k * n].reshape(k, n)
        idle = (total <= 0.0) & (counts > 0)
        # a client spends min(1, sum of its fractions) of its budget; idle clients spread it equally
        scale = np.where(total > 1.0, 1.0 / np.where(total > 0, total, 1.0), 1.0)
        own = np.maximum(owner, 0)
        frac = np.where(idle[rows, own] & used, 1.0 / np.maximum(counts[rows, own], 1), frac * scale[rows, own])
        power = np.where(used, frac * obs.power_budget_w[rows, own], 0.0)
        return Decoded(cut, owner, power, repairs, (idle & served).sum(axis=1).astype(np.int64))

    def encode(self, alloc: Allocation, obs: Observation) -> dict[str, np.ndarray]:
        used = alloc.owner >= 0
        budget = obs.power_budget_w[np.maximum(alloc.owner, 0)]
        frac = np.where(used, alloc.power_w / budget, 0.0)
        cut = alloc.cut[:1] if self.cut_dims == 1 else alloc.cut
        return {"cut": cut.astype(np.int64), "owner": alloc.owner.astype(np.int64),
                "power_fraction": np.clip(frac, 0.0, 1.0).astype(np.float32)}



CODECS: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec], replace: bool = False) -> type[Codec]:
    """Make ``cls`` available as the env's ``action.type: <cls.name>`` (idempotent for the same class)."""
    return register_named(CODECS, cls.name, cls, "codec", replace)


for _codec in (DictCodec, BoxCodec, MultiDiscreteCodec, AssistedCodec):
    register_codec(_codec)


def make_codec(action_type: str, model: LatencyModel, options: dict | None = None, backend: str = "auto") -> Codec:
    """The codec registered as ``action_type``; ``backend`` as in ``psl_env.backend.load_kernels``."""
    if action_type not in CODECS:
        raise ValueError(f"action_type: {action_type!r} is not allowed; allowed: {sorted(CODECS)}")
    options = dict(options or {})
    if "backend" in options:
        raise ValueError("action.backend is not a codec option; set the environment's backend=... instead")
    return CODECS[action_type](model, backend=backend, **options)


__all__ = ["CODECS", "AssistedCodec", "BoxCodec", "Codec", "Decoded", "DictCodec", "InvalidAction",
           "MultiDiscreteCodec", "PriorityCodec", "make_codec", "register_codec"]
