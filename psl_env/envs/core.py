"""The batched simulation core shared by ``PSLEnv`` (K = 1) and ``PSLVectorEnv`` (K envs).

Episodes start with ``NetworkSimulator.reset`` (devices, shadowing, positions, first fading state),
driven by each environment's own generator; rounds then advance on [K, ...] arrays with the same
arithmetic as ``GaussMarkovChannel.step`` / ``TraceChannel.step`` and ``NetworkSimulator.advance``
(tests check both equalities bitwise). Each environment keeps its own ``numpy`` generator and draws
in the same order as a lone simulator would, so environment k of a batch seeded s + k reproduces a
single environment seeded s + k exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..system.channel import SPEED_OF_LIGHT_MPS, pathloss_gain
from ..system.scenario import Scenario
from ..system.simulator import INITIAL_INTERVAL_S, NetworkSimulator
from ..system.state import RoundState
from .batch_alloc import Scratch, broadcast_rate
from .backend import load_kernels
from .codecs import Codec, DecisionView, Decoded, make_codec
from .observation import ObservationEncoder
from .pricing import BatchPricer, PricedRounds

_SQRT_HALF = np.sqrt(0.5)


@dataclass
class StepOutcome:
    """What one batched step produced (arrays with leading axis K)."""

    decoded: Decoded
    priced: PricedRounds  # 2K rows: the allocations (0..K-1), then the reference (K..2K-1)
    reference_total: np.ndarray
    ratio: np.ndarray  # T / T_ref, uncapped
    reward: np.ndarray
    rounds: np.ndarray  # the round index each env just played


class PSLCore:
    """K independent PSL episodes on arrays.

    Args:
        scenario: the validated scenario.
        num_envs: K.
        action_type: the codec name (``dict``, ``box``, ``multidiscrete``, ``assisted``).
        action_options: the codec's options.
        reward: ``"relative"`` or ``"log-relative"``.
        max_latency_ratio: cap of T / T_ref in the reward and observation.
        backend: compiled kernels or numpy (``backend.load_kernels``).
    """

    def __init__(self, scenario: Scenario, num_envs: int, action_type: str = "box",
                 action_options: dict | None = None, reward: str = "relative",
                 max_latency_ratio: float = 100.0, backend: str = "auto") -> None:
        self.scenario = scenario
        self.simulator = NetworkSimulator(scenario)
        self.model = self.simulator.latency_model
        self.codec: Codec = make_codec(action_type, self.model, action_options, backend)
        self.backend = backend
        self.kernels = load_kernels(backend)
        self.encoder = ObservationEncoder(scenario, self.model)
        self.pricer = BatchPricer(self.model, num_envs)
        self.k = k = int(num_envs)
        self.n = n = scenario.num_clients
        self.m = m = scenario.num_subchannels
        self.reward_kind = reward
        self.max_ratio = float(max_latency_ratio)
        ch = scenario.channel
        self.trace = scenario.channel.kind == "trace"
        self.doppler = ch.correlation == "doppler"
        self.mobility = bool(ch.mobility) and not self.trace
        self.delayed = scenario.csi == "delayed"
        self.sync_period = scenario.effective_sync_period
        if not self.doppler:
            # the values GaussMarkovChannel uses, as scalars (same products, faster broadcasting)
            corr = np.float64(ch.correlation)
            self._corr = corr
            self._innov_scale = np.sqrt(np.maximum(1.0 - corr * corr, 0.0))
        self.rngs: list[np.random.Generator | None] = [None] * k
        self._generator_list = None  # the same generators for the draw kernel (built on first use)
        self._all_active = np.ones(k, dtype=bool)
        self.client_flops = np.zeros((k, n))
        self.power_budget_w = np.zeros((k, n))
        self.memory_bytes = np.zeros((k, n))
        self.base_flops = np.zeros((k, n))
        self.base_budget = np.zeros((k, n))
        self.speed = np.zeros((k, n))
        self.shadowing = np.ones((k, n))
        self.position = np.zeros((k, n, 2))
        self.heading = np.zeros((k, n))
        self.large = np.zeros((k, n))  # path loss x shadowing
        self.h = np.zeros((k, 2, n, m))  # fading state: real (h[:, 0]) and imaginary (h[:, 1]) parts
        self.gains = np.zeros((k, n, m))
        self.observed_gains = np.zeros((k, n, m)) if self.delayed else self.gains
        self._spare = np.zeros((k, n, m))  # the next round's gains are written here, then rotated in
        self._noise = np.empty((k, 2, n, m))
        self._sq = np.empty((k, 2, n, m))
        # broadcast rate R_bc of the true and of the observed gains of the current round (EPSL)
        self.needs_broadcast = self.pricer.needs_broadcast
        self.r_bc = np.zeros(k) if self.needs_broadcast else None
        self.r_bc_seen = (np.zeros(k) if self.delayed else self.r_bc) if self.needs_broadcast else None

        self._pool = None  # a worker thread drawing the fading innovations (see ``use_thread``)
        # With a fixed correlation and no mobility the next fading state does not depend on the
        # round's latency: with the worker thread, both threads then draw *and* advance the fading
        # of blocks of envs (with their broadcast rates) while the round is decoded and priced.
        self._early = not self.trace and not self.doppler and not self.mobility
        self._early_r_bc = np.zeros(k) if self.needs_broadcast else None
        self._early_obs = None  # the next observations with their gain features (early path)
        if k >= 64:
            _keep_temporaries_on_heap(min(24, max(8, k * n * m * 8 * 8 >> 20)) << 20)
        self.trace_t = np.zeros(k, dtype=np.int64)
        self.round = np.zeros(k, dtype=np.int64)
        self.episode = np.full(k, -1, dtype=np.int64)
        self.prev_cut = np.zeros((k, n), dtype=np.int64)
        self.has_prev = np.zeros(k, dtype=bool)
        self.prev_latency = np.zeros(k)
        self.prev_ratio = np.zeros(k)
        self.sync = np.zeros(k, dtype=bool)
        self._static = np.zeros((k, 2 * n), dtype=np.float32)  # observation features fixed per episode

    # -- episodes ----------------------------------------------------------------------------------
    def reset_env(self, i: int, rng: np.random.Generator) -> None:
        """Start a new episode in env i, drawing from ``rng`` (which env i keeps using)."""
        self._write_reset(i, self._simulate_reset(i, rng))

    def _simulate_reset(self, i: int, rng: np.random.Generator) -> tuple:
        """Draw env i's new episode with the simulator (touches no batch array)."""
        if self.rngs[i] is not rng:
            self.rngs[i] = rng
            if self._generator_list is not None:
                self._generator_list[i] = rng
        sim = self.simulator
        sim.rng = rng
        state = sim.reset()
        ch = sim.channel
        if self.trace:
            return state, sim.devices, ch.t
        large = pathloss_gain(ch.distance_m, ch.cfg.pathloss_intercept_db, ch.cfg.pathloss_slope_db) * ch.shadowing
        return state, sim.devices, (ch.speed_mps, ch.shadowing, ch.position_m, ch.heading, ch.h, large)

    def _write_reset(self, i: int, record: tuple) -> None:
        state, devices, channel = record
        self._early_obs = None  # its gain features are stale for env i
        self.episode[i] += 1
        self.base_flops[i] = devices.client_flops
        self.base_budget[i] = devices.power_budget_w
        self.client_flops[i] = state.client_flops
        self.power_budget_w[i] = state.power_budget_w
        self.memory_bytes[i] = state.memory_bytes
        self.gains[i] = state.gains
        if self.delayed:
            self.observed_gains[i] = state.observed_gains
        if self.trace:
            self.trace_t[i] = channel
        else:
            speed, shadowing, position, heading, h, large = channel
            self.speed[i] = speed
            self.shadowing[i] = shadowing
            self.position[i] = position
            self.heading[i] = heading
            self.h[i, 0] = h.real
            self.h[i, 1] = h.imag
            self.large[i] = large
        self.round[i] = 0
        self.has_prev[i] = False
        self.prev_cut[i] = 0
        self.prev_latency[i] = 0.0
        self.prev_ratio[i] = 0.0
        self.sync[i] = state.sync
        self._static[i] = self.encoder.static_features(state.client_flops[None], state.power_budget_w[None])[0]
        if self.needs_broadcast:
            self.r_bc[i] = self._broadcast(self.gains[i: i + 1])[0]
            if self.delayed:
                self.r_bc_seen[i] = self._broadcast(self.observed_gains[i: i + 1])[0]

    def _broadcast(self, gains: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        return broadcast_rate(gains, self.pricer.down_snr, self.pricer.bw, scratch)

    # -- one round -----------------------------------------------------------------------------------
    def view(self, broadcast_rate: np.ndarray | None = None) -> DecisionView:
        return DecisionView(self.observed_gains, self.power_budget_w, self.client_flops, self.memory_bytes,
                            self.prev_cut, self.has_prev, self.sync, self.round, self.state,
                            broadcast_rate=broadcast_rate)

    def use_thread(self, enabled: bool) -> None:
        """Draw the fading innovations in a worker thread while the round is decoded and priced
        (the main thread joins the drawing once it is done).

        The innovations do not depend on the action, and each env's generator is used by exactly one
        thread, once per round, so results are identical with or without the thread.
        """
        if enabled and self._pool is None and not self.trace:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psl-rng")
        elif not enabled and self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def close(self) -> None:
        self.use_thread(False)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None  # threads do not pickle; recreated on load
        state["kernels"] = None  # a module: loaded again
        state["_generator_list"] = None  # rebuilt from ``rngs`` on first use
        state["_threaded"] = self._pool is not None
        return state

    def __setstate__(self, state: dict) -> None:
        threaded = state.pop("_threaded", False)
        self.__dict__.update(state)
        self.kernels = load_kernels(self.backend)
        self.use_thread(threaded)

    def play(self, actions: Any, active: np.ndarray | None = None) -> StepOutcome:
        """Decode, price and advance every env, or only those in ``active`` while the others start a
        new episode (the vector env's next-step autoreset; they continue their own generators).

        ``actions`` must be validated by the codec. Envs outside ``active`` are decoded and priced
        too (discard their results); they draw only their new episode and count no round.
        Floating-point warnings are the caller's business (the environments silence them).
        """
        self._prepare_draws()
        job = None
        early = self._pool is not None and self._early
        if early:  # blocks of envs: drawn and advanced by the worker (the main thread helps later)
            self._early_obs = np.empty((self.k, self.encoder.size), dtype=np.float32)
            todo = iter(_blocks(self.k, max(8, min(_EARLY_BLOCK, self.k // 8))))  # shared: next() on it is atomic under the GIL
            job = self._pool.submit(self._draw_and_fade, todo, active)
        elif self._pool is not None and not self.trace:  # the worker draws (the main thread helps later)
            todo = iter(_blocks(self.k, _DRAW_BLOCK))  # shared by both threads: next() on it is atomic under the GIL
            job = self._pool.submit(self._draw_innovations, todo, active)
        elif not self.trace:
            self._draw_innovations([(0, self.k)], active)
        decoded = self.codec.decode_batch(actions, self.view(self.r_bc_seen))
        priced = self.pricer.price(self.gains, self.client_flops, self.power_budget_w, decoded.cut,
                                   decoded.owner, decoded.power_w, self.prev_cut, self.has_prev, self.sync,
                                   self.r_bc, decoded.all_used)
        k = self.k
        total = priced.total[:k]
        ref_total = priced.total[k:]
        ratio = total / ref_total
        capped = np.fmin(ratio, self.max_ratio)  # the cap, also where the ratio is NaN
        reward = -capped if self.reward_kind == "relative" else -np.log(capped)
        rounds = self.round.copy()
        resets = [] if active is None else [(i, self._simulate_reset(i, self.rngs[i]))
                                            for i in np.flatnonzero(~active).tolist()]
        if job is not None:
            if early:
                self._draw_and_fade(todo, active)
            else:
                self._draw_innovations(todo, active)
            job.result()
        self._advance(decoded.cut, total, active, early)
        for i, record in resets:
            self._write_reset(i, record)
        if active is None:
            self.prev_ratio = capped
        else:
            self.prev_ratio = np.where(active, capped, self.prev_ratio)
        return StepOutcome(decoded, priced, ref_total, ratio, reward, rounds)

    def _draw_and_fade(self, blocks, active: np.ndarray | None) -> None:
        """For each block of envs taken from ``blocks``: draw the innovations of its stepping envs,
        then advance its fading state into the spare buffer and compute its broadcast rates (rows
        are independent: the same numbers as the whole-batch ``_fading_step`` and ``_broadcast``;
        the rows of envs that reset are overwritten afterwards, as there)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # as the environments do
            self._draw_and_fade_blocks(blocks, active)

    def _draw_and_fade_blocks(self, blocks, active: np.ndarray | None) -> None:
        out = self._spare
        corr, scale = self._corr, self._innov_scale
        for a, b in blocks:
            self._draw_block(a, b, active)
            self._fade(a, b, corr, scale, out)
            g = out[a:b]
            if self.needs_broadcast:
                self._early_r_bc[a:b] = self._broadcast(g)
            # the next round observes these gains, or under delayed CSI this round's (read only)
            self.encoder.gain_features(self.gains[a:b] if self.delayed else g, self._early_obs[a:b])

    def _prepare_draws(self) -> None:
        """The typed list of the generators for the draw kernel (built once, before any thread draws)."""
        if (self.kernels is not None and self._generator_list is None and not self.trace
                and self.kernels.draws_match_numpy()):
            self._generator_list = self.kernels.generator_list(self.rngs)

    def _draw_innovations(self, blocks, active: np.ndarray | None) -> None:
        """The CN(0, 1) innovations of the next fading step (``complex_normal``'s draws) of the
        stepping envs, for each block (a, b) of envs taken from ``blocks``."""
        for a, b in blocks:
            self._draw_block(a, b, active)

    def _draw_block(self, a: int, b: int, active: np.ndarray | None) -> None:
        """Standard normals into ``_noise[i]`` from env i's generator, for the stepping envs a <= i < b."""
        if self._generator_list is not None:
            self.kernels.draw_normals(self._generator_list, self._noise, self._all_active if active is None else active,
                                      a, b)
            return
        noise, rngs = self._noise, self.rngs
        for i in range(a, b):
            if active is None or active[i]:
                rngs[i].standard_normal(out=noise[i])

    def advance(self, cut: np.ndarray, latency_s: np.ndarray, active: np.ndarray | None = None) -> None:
        """Next round of every env (or of ``active`` ones) after rounds that used ``cut`` [K, N] and
        lasted ``latency_s`` [K] (mirrors ``NetworkSimulator.advance``)."""
        self._early_obs = None
        if not self.trace:
            self._prepare_draws()
            self._draw_innovations([(0, self.k)], active)
        self._advance(cut, latency_s, active)

    def _advance(self, cut: np.ndarray, latency_s: np.ndarray, active: np.ndarray | None,
                 early: bool = False) -> None:
        """Compute the next round's gains into the spare buffer (``early``: already there, with
        their broadcast rates), rotate it in (with its broadcast rate) and update the per-round
        bookkeeping."""
        nxt = self._spare
        if early:
            r_bc = self._early_r_bc.copy() if self.needs_broadcast else None
        else:
            if self.trace:
                self._trace_step(active, nxt)
            else:
                self._fading_step(latency_s, active, nxt)
            r_bc = self._broadcast(nxt, self.pricer.scratch) if self.needs_broadcast else None
        old = self.gains
        self.gains = nxt
        if self.delayed:  # the decision sees last round's true gains
            self._spare, self.observed_gains = self.observed_gains, old
            if self.needs_broadcast:
                self.r_bc_seen, self.r_bc = self.r_bc, r_bc
        else:
            self._spare, self.observed_gains = old, nxt
            if self.needs_broadcast:
                self.r_bc = self.r_bc_seen = r_bc
        if active is None:
            self.round += 1
            self.prev_cut = cut.astype(np.int64, copy=True)
            self.has_prev[:] = True
            self.prev_latency = latency_s.astype(np.float64, copy=True)
        else:
            self.round += active
            self.prev_cut = np.where(active[:, None], cut, self.prev_cut)
            self.has_prev |= active
            self.prev_latency = np.where(active, latency_s, self.prev_latency)
        if self.sync_period > 0:
            self.sync = (self.round + 1) % self.sync_period == 0

    def _fading_step(self, latency_s: np.ndarray, active: np.ndarray | None, out: np.ndarray) -> None:
        """``GaussMarkovChannel.step`` on [K, N, M] into ``out`` (innovations already drawn into
        ``_noise``)."""
        rngs = self.rngs
        mobile = self.mobility
        if mobile:  # the heading drift is drawn after the innovation, for finite rounds only
            drift = np.zeros((self.k, self.n))
            finite = np.isfinite(latency_s)
            for i in (range(self.k) if active is None else np.flatnonzero(active).tolist()):
                if finite[i]:
                    drift[i] = rngs[i].normal(0.0, 0.3, self.n)
        if self.doppler:
            # doppler_correlation() per env: a = J0(2 pi f_D tau), 0 for an infinite round
            tau = latency_s[:, None]
            finite_tau = np.isfinite(tau)
            doppler_hz = self.speed * self.scenario.channel.carrier_hz / SPEED_OF_LIGHT_MPS
            corr = np.clip(_j0(2.0 * np.pi * doppler_hz * np.where(finite_tau, tau, 0.0)), 0.0, 1.0)
            corr = np.where(finite_tau, corr, 0.0)[:, None, :, None]
            scale = np.sqrt(np.maximum(1.0 - corr * corr, 0.0))
        else:
            corr, scale = self._corr, self._innov_scale
        move = (lambda: self._move(latency_s, drift, finite if active is None else finite & active)) if mobile else None
        self._fade(0, self.k, corr, scale, out, move)

    def _fade(self, a: int, b: int, corr, scale, out: np.ndarray, move=None) -> None:
        """The fading step of envs a..b-1 (innovations in ``_noise``) into ``out``; ``move`` (mobility)
        runs between the fading update and the gains, as in ``GaussMarkovChannel.step``."""
        if self.kernels is not None and move is None and np.ndim(corr) == 0:
            self.kernels.gauss_markov_fade(self.h, self._noise, float(corr), float(scale), self.large, out, a, b)
            return
        # the real and imaginary parts go through the same elementwise operations at once
        noise, h, sq = self._noise[a:b], self.h[a:b], self._sq[a:b]
        noise *= _SQRT_HALF
        noise *= scale if np.ndim(scale) == 0 else scale[a:b]
        h *= corr if np.ndim(corr) == 0 else corr[a:b]
        h += noise
        if move is not None:
            move()
        np.multiply(h, h, out=sq)
        np.add(sq[:, 0], sq[:, 1], out=out[a:b])
        out[a:b] *= self.large[a:b, :, None]

    def _move(self, latency_s: np.ndarray, drift: np.ndarray, moving: np.ndarray) -> None:
        """``GaussMarkovChannel._move`` for the envs in ``moving``."""
        heading = self.heading + drift
        step_len = self.speed * np.where(moving, latency_s, 0.0)[:, None]
        step = step_len[:, :, None] * np.stack([np.cos(heading), np.sin(heading)], axis=2)
        pos = self.position + step
        radius = np.hypot(pos[:, :, 0], pos[:, :, 1])
        lo, hi = self.scenario.devices.distance_m
        clipped = np.clip(radius, lo, hi)
        bounced = clipped != radius
        pos = pos * (clipped / np.maximum(radius, 1e-9))[:, :, None]
        heading = np.where(bounced, heading + np.pi, heading)
        self.position = np.where(moving[:, None, None], pos, self.position)
        self.heading = np.where(moving[:, None], heading, self.heading)
        ch = self.scenario.channel
        distance = np.hypot(self.position[:, :, 0], self.position[:, :, 1])
        self.large = pathloss_gain(distance, ch.pathloss_intercept_db, ch.pathloss_slope_db) * self.shadowing

    def _trace_step(self, active: np.ndarray | None, out: np.ndarray) -> None:
        ch = self.simulator.channel
        self.trace_t += 1 if active is None else active
        t = self.trace_t % ch.length
        out[...] = ch.trace["gains"][t]  # rows of envs not stepping are reset next
        for key, base, out in (("client_flops", self.base_flops, self.client_flops),
                               ("client_power_budget_w", self.base_budget, self.power_budget_w)):
            arr = ch.trace.get(key)
            if arr is not None:
                out[...] = np.where(active[:, None], arr[t], out) if active is not None else arr[t]
                self._static[...] = self.encoder.static_features(self.client_flops, self.power_budget_w)

    # -- observation and states ------------------------------------------------------------------------
    def observe(self) -> np.ndarray:
        """[K, D] float32 observations of the current rounds."""
        out, self._early_obs = self._early_obs, None  # gain features prepared during the step, if any
        return self.encoder.encode(self.observed_gains, self.client_flops, self.power_budget_w, self.prev_cut,
                                   self.has_prev, self.prev_ratio, self.round, self.sync, self._static, out)

    def state(self, i: int, observed: bool = True) -> RoundState:
        """The ``RoundState`` of env i (copies): with ``observed`` the gains are the observed ones only."""
        obs = self.observed_gains[i].copy()
        gains = obs if observed else self.gains[i].copy()
        if self.trace:
            distance = self.simulator.devices.distance_m.copy()
        else:
            distance = np.hypot(self.position[i, :, 0], self.position[i, :, 1])
        prev = self.prev_cut[i].copy() if self.has_prev[i] else None
        return RoundState(int(self.round[i]), int(self.episode[i]), self.client_flops[i].copy(),
                          self.power_budget_w[i].copy(), self.memory_bytes[i].copy(), gains, obs, prev,
                          float(self.prev_latency[i]), bool(self.sync[i]), distance)


_DRAW_BLOCK = 64  # envs per block of the threaded draws (fading not advanced early)
_EARLY_BLOCK = 128  # envs per block of the threaded draw-and-fade (at most; K / 8 for smaller K)


def _blocks(k: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, k)) for a in range(0, k, size)]


def _keep_temporaries_on_heap(nbytes: int) -> None:
    """Allocate and free one large block.

    glibc raises its mmap and trim thresholds to the size of a freed mmapped block, so the step's
    large temporaries then stay on the heap instead of being mapped, trimmed and page-faulted again
    every step (about 10% of a K = 1024 step). Elsewhere this is a harmless allocation.
    """
    block = np.empty(nbytes // 8)
    del block


def _j0(x: np.ndarray) -> np.ndarray:
    from scipy.special import j0  # noqa: PLC0415 - only for the Doppler option

    return j0(x)


__all__ = ["PSLCore", "StepOutcome", "INITIAL_INTERVAL_S"]
