"""The environments' step: ``World`` + codec + latency + reward, shared by ``PSLEnv`` (K = 1) and
``PSLVectorEnv`` (K envs).

One step: the world starts the next round's random draws (in a worker thread for large K), the
codec decodes the actions on the ``Observation``, the latency model prices the allocations and the
fixed reference allocation on the true gains, the reward compares the two, and the world advances
by the round's latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.profile import load_profile
from ..system.allocation import fixed_allocations
from ..system.latency import Latency, LatencyModel
from ..system.scenario import Scenario
from ..system.state import Observation, RoundState
from ..system.world import World
from .codecs import Codec, Decoded, make_codec
from .observation import ObservationEncoder


@dataclass
class StepOutcome:
    """What one batched step produced (arrays with leading axis K)."""

    decoded: Decoded
    priced: Latency  # the decoded allocations
    reference_total: np.ndarray  # the fixed reference allocation on the same rounds, s
    ratio: np.ndarray  # T / T_ref, uncapped
    reward: np.ndarray
    rounds: np.ndarray  # the round index each env just played


class PSLCore:
    """K independent PSL episodes with actions, prices and rewards.

    Args:
        scenario: the validated scenario.
        num_envs: K.
        action_type: the codec name (``CODECS``).
        action_options: the codec's options.
        reward: ``"relative"`` or ``"log-relative"``.
        max_latency_ratio: cap of T / T_ref in the reward and observation.
        backend: compiled kernels or numpy (``psl_env.backend``).
    """

    def __init__(self, scenario: Scenario, num_envs: int, action_type: str = "box",
                 action_options: dict | None = None, reward: str = "relative",
                 max_latency_ratio: float = 100.0, backend: str = "auto") -> None:
        self.scenario = scenario
        self.k = k = int(num_envs)
        self.model = LatencyModel(scenario, load_profile(scenario.model), backend)
        self.world = World(scenario, k, self.model.radio, self.model.uses_broadcast, backend,
                           self.model.tables.min_memory_bytes)
        self.codec: Codec = make_codec(action_type, self.model, action_options, backend)
        self.encoder = ObservationEncoder(scenario, self.model)
        self.reward_kind = reward
        self.max_ratio = float(max_latency_ratio)
        self.prev_ratio = np.zeros(k)
        # the fixed reference allocation (middle cut, round-robin subchannels, equal power), priced
        # with the K allocations in one batch: rows K..2K-1 read the gains of envs 0..K-1
        cut, owner, _ = fixed_allocations(self.model.num_blocks, np.ones((k, scenario.num_clients)),
                                          scenario.num_subchannels)
        n, m = scenario.num_clients, scenario.num_subchannels
        self._ref_cut_middle, self._ref_owner = cut, owner[0]
        self._ref_counts = np.bincount(owner[0], minlength=n)[owner[0]]
        self._rows = np.tile(np.arange(k), 2)
        # the 2K rows priced every step: the decoded allocations (0..K-1), then the reference
        # (K..2K-1, rewritten when an episode starts or the devices change)
        self._cut2 = np.empty((2 * k, n), dtype=np.int64)
        self._prev2 = np.empty((2 * k, n), dtype=np.int64)
        self._owner2 = np.empty((2 * k, m), dtype=np.int64)
        self._owner2[k:] = owner[0]
        self._power2 = np.empty((2 * k, m))
        self._flops2 = np.empty((2 * k, n))
        self._memory2 = np.empty((2 * k, n))
        self._sync2 = np.empty(2 * k, dtype=bool)
        self._rbc2 = np.empty(2 * k) if self.model.uses_broadcast else None
        self._static = np.zeros((k, 2 * scenario.num_clients), dtype=np.float32)  # features fixed per episode
        self._early_obs = None  # the next observations with their gain features (computed during the step)
        if k >= 64:
            _keep_temporaries_on_heap(min(24, max(8, k * scenario.num_clients * scenario.num_subchannels * 64 >> 20)) << 20)

    @property
    def rngs(self) -> list:
        return self.world.rngs

    @property
    def round(self) -> np.ndarray:
        return self.world.round

    def reset_env(self, i: int, rng: np.random.Generator) -> None:
        """Start a new episode in env i, drawing from ``rng`` (which env i keeps using)."""
        self.world.reset_env(i, rng)
        self._write_devices(i)
        self._early_obs = None  # its gain features are stale for env i
        self.prev_ratio[i] = 0.0
        w = self.world
        self._static[i] = self.encoder.static_features(w.client_flops[i: i + 1], w.power_budget_w[i: i + 1])[0]

    def _write_devices(self, i: int | slice) -> None:
        """The rows of env(s) ``i`` that depend on the devices: the reference's cut (the middle cut,
        moved shallower where the memory caps demand it) and equal power, compute and memory."""
        w, k = self.world, self.k
        rows = np.arange(k)[i] + k
        self._cut2[rows] = self.model.tables.fit_cut(self._ref_cut_middle[i], w.memory_bytes[i])
        self._prev2[rows] = self._cut2[rows]  # the reference never moves its cut
        # equal power: each client's budget over its subchannels (``equal_power``'s arithmetic)
        self._power2[rows] = w.power_budget_w[i][..., self._ref_owner] / self._ref_counts
        for buf, arr in ((self._flops2, w.client_flops), (self._memory2, w.memory_bytes)):
            buf[np.arange(k)[i]] = arr[i]
            buf[rows] = arr[i]

    def use_thread(self, enabled: bool) -> None:
        self.world.use_thread(enabled)

    def close(self) -> None:
        self.world.close()

    def observation(self) -> Observation:
        """What the K schedulers may see now."""
        return self.world.observation()

    def price(self, decoded: Decoded) -> tuple[Latency, np.ndarray]:
        """The latency of the decoded allocations on the true gains (migration from the previous cuts)
        and [K] that of the fixed reference allocation on the same rounds (it never moves its cut)."""
        w = self.world
        k = self.k
        self._cut2[:k] = decoded.cut
        self._owner2[:k] = decoded.owner
        self._power2[:k] = decoded.power_w
        self._sync2[:k] = w.sync
        self._sync2[k:] = w.sync
        if self._rbc2 is not None:
            self._rbc2[:k] = w.r_bc
            self._rbc2[k:] = w.r_bc
        prev = None
        if w.has_prev.any():
            prev = self._prev2
            prev[:k] = w.prev_cut if w.has_prev.all() else np.where(w.has_prev[:, None], w.prev_cut, decoded.cut)
        priced = self.model.price(w.gains, self._flops2, self._cut2, self._owner2, self._power2, prev, self._sync2,
                                  self._rbc2, self._rows, self._memory2)
        return priced.rows(slice(0, k)), priced.total[k:]

    def play(self, actions: Any, active: np.ndarray | None = None) -> StepOutcome:
        """Decode, price and advance every env, or only those in ``active`` while the others start a
        new episode (the vector env's next-step autoreset; they continue their own generators).

        ``actions`` must be validated by the codec. Envs outside ``active`` are decoded and priced
        too (discard their results); they draw only their new episode and count no round.
        Floating-point warnings are the caller's business (the environments silence them).
        """
        w = self.world
        on_block = None
        if w._pool is not None and w.channel.latency_independent:
            self._early_obs = np.empty((self.k, self.encoder.size), dtype=np.float32)
            early = self._early_obs
            on_block = lambda a, b, seen: self.encoder.gain_features(seen, early[a:b])  # noqa: E731
        step = w.begin_step(active, on_block)
        decoded = self.codec.decode_batch(actions, w.observation())
        priced, ref_total = self.price(decoded)
        total = priced.total
        ratio = total / ref_total
        capped = np.fmin(ratio, self.max_ratio)  # the cap, also where the ratio is NaN
        reward = -capped if self.reward_kind == "relative" else -np.log(capped)
        rounds = w.round.copy()
        w.finish_step(step, decoded.cut, total)
        if w.devices_changed:
            self._static[...] = self.encoder.static_features(w.client_flops, w.power_budget_w)
            self._write_devices(slice(None))
        if active is None:
            self.prev_ratio = capped
        else:
            self.prev_ratio = np.where(active, capped, self.prev_ratio)
            for i in np.flatnonzero(~active).tolist():
                self.reset_env(i, w.rngs[i])
                if on_block is not None:
                    self._early_obs = early  # envs that reset write their own features below
                    self.encoder.gain_features(w.observed_gains[i: i + 1], early[i: i + 1])
        return StepOutcome(decoded, priced, ref_total, ratio, reward, rounds)

    def observe(self) -> np.ndarray:
        """[K, D] float32 observations of the current rounds."""
        out, self._early_obs = self._early_obs, None  # gain features prepared during the step, if any
        w = self.world
        return self.encoder.encode(w.observed_gains, w.client_flops, w.power_budget_w, w.prev_cut, w.has_prev,
                                   self.prev_ratio, w.round, w.sync, self._static, out)

    def state(self, i: int) -> RoundState:
        """The current ``RoundState`` of env i (copies, true and observed gains)."""
        return self.world.state(i)


def _keep_temporaries_on_heap(nbytes: int) -> None:
    """Allocate and free one large block.

    glibc raises its mmap and trim thresholds to the size of a freed mmapped block, so the step's
    large temporaries then stay on the heap instead of being mapped, trimmed and page-faulted again
    every step (about 10% of a K = 1024 step). Elsewhere this is a harmless allocation.
    """
    block = np.empty(nbytes // 8)
    del block


__all__ = ["PSLCore", "StepOutcome"]
