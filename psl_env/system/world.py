"""The world: K independent PSL episodes (devices, channel, CSI, round bookkeeping) on [K, ...] arrays.

One object serves every caller: ``NetworkSimulator`` and ``PSLEnv`` are K = 1, ``PSLVectorEnv`` is
K envs. Each env keeps its own numpy generator (``rngs[k]``) and draws in a fixed order (devices,
the channel's reset draws, then one step's draws per round), so env k of a batch seeded s + k
reproduces a lone env seeded s + k exactly.

A round: ``observation()`` (what a scheduler may see) -> a decision -> the caller prices it on the
true ``gains`` -> ``advance(cut, latency_s)`` moves every env to its next round.

Dynamics (``scenario.dynamics``, off by default): each device's background load is a Markov chain
over ``load_levels`` (the share of its compute rate left; it stays with ``load_stay``, else jumps to
another level uniformly), devices leave and rejoin (``churn_leave``, ``churn_rejoin``; at least one
stays), and batteries drain with the energy each round costs (an empty one leaves for good). With
``present_clients: [low, high]`` each episode draws n in low..high and only clients 0..n-1 ever take
part (``slots``): the others are padding up to the scenario's maximum N. These
draws follow the channel's, from the same generator, in round order: they never depend on the
decisions, so every method meets the same realized episode. With a worker
thread (``use_thread``), ``begin_step`` starts the next round's random draws (and, for channels
whose next gains do not depend on the latency, the whole fading step) while the caller decodes
and prices; ``finish_step`` joins and advances. Results are identical with or without the thread:
each env's generator is used by one thread at a time, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .channels import make_channel
from .devices import sample_devices
from .radio import Radio
from .scenario import Scenario
from .state import Devices, Observation, RoundState

_DRAW_BLOCK = 64  # envs per block of the threaded draws (fading advanced after the join)
_EARLY_BLOCK = 128  # envs per block of the threaded draw-and-fade (at most; K / 8 for smaller K)


@dataclass
class _Step:
    """A step in flight (``begin_step`` -> ``finish_step``)."""

    active: np.ndarray | None
    job: object = None
    todo: object = None
    early: bool = False
    on_block: object = None


class World:
    """K PSL episodes advanced together.

    Args:
        scenario: the validated scenario.
        num_envs: K.
        radio: the radio constants; with ``broadcast`` the world keeps R_bc of the true and of the
            observed gains of every env (EPSL's broadcast downlink needs it every round).
        broadcast: keep the broadcast rates.
        backend: compiled kernels or numpy (``psl_env.backend``).
        min_memory_bytes: the memory of the model's shallowest cut (drawn caps are at least this).

    Attributes (arrays with leading axis K): ``client_flops``, ``power_budget_w``, ``memory_bytes``
    [K, N]; ``gains`` (true) and ``observed_gains`` [K, N, M]; ``r_bc`` / ``r_bc_seen`` [K] (with
    ``broadcast``); ``round``, ``episode``, ``prev_latency``, ``has_prev``, ``sync`` [K];
    ``prev_cut`` [K, N]; ``devices`` (each env's ``Devices``); ``rngs``.
    """

    def __init__(self, scenario: Scenario, num_envs: int = 1, radio: Radio | None = None, broadcast: bool = False,
                 backend: str = "auto", min_memory_bytes: float = 0.0) -> None:
        self.scenario = scenario
        self.k = k = int(num_envs)
        self.n = n = scenario.num_clients
        self.m = m = scenario.num_subchannels
        self.rngs: list[np.random.Generator | None] = [None] * k
        self.channel = make_channel(scenario, k, self.rngs, backend)
        self.delayed = scenario.csi == "delayed"
        self.sync_period = scenario.effective_sync_period
        self.radio = radio
        self.needs_broadcast = bool(broadcast)
        self.min_memory_bytes = float(min_memory_bytes)
        self._fixed_devices: Devices | None = None
        self.devices: list[Devices | None] = [None] * k
        self.client_flops = np.zeros((k, n))
        self.power_budget_w = np.zeros((k, n))
        self.memory_bytes = np.zeros((k, n))
        self.gains = np.zeros((k, n, m))
        self.observed_gains = np.zeros((k, n, m)) if self.delayed else self.gains
        self._spare = np.zeros((k, n, m))  # the next round's gains are written here, then rotated in
        self.r_bc = np.zeros(k) if broadcast else None
        self.r_bc_seen = (np.zeros(k) if self.delayed else self.r_bc) if broadcast else None
        self._early_r_bc = np.zeros(k) if broadcast else None
        self.round = np.zeros(k, dtype=np.int64)
        self.episode = np.full(k, -1, dtype=np.int64)
        self.prev_cut = np.zeros((k, n), dtype=np.int64)
        self.has_prev = np.zeros(k, dtype=bool)
        self.prev_latency = np.zeros(k)
        self.sync = np.zeros(k, dtype=bool)
        self.devices_changed = False  # the channel or the load changed device figures in the last advance
        self._pool = None
        dyn = scenario.dynamics
        self.dynamic = scenario.has_dynamics
        self.load_levels = np.asarray(dyn.load_levels, dtype=np.float64)
        self.base_flops = np.zeros((k, n))  # the devices' own rates (before background load)
        self.load_state = np.zeros((k, n), dtype=np.int64)
        self.availability = np.ones((k, n))
        self.present = np.ones((k, n), dtype=bool)
        self.alive = np.ones((k, n), dtype=bool)  # battery not empty
        self.slots = np.ones((k, n), dtype=bool)  # clients of the episode (present_clients: the first n)
        self.battery = np.full((k, n), np.inf)

    # -- episodes --------------------------------------------------------------------------------------
    def reset_env(self, i: int, rng: np.random.Generator) -> None:
        """Start a new episode in env i, drawing from ``rng`` (which env i keeps using)."""
        self.rngs[i] = rng
        s = self.scenario
        if s.devices.resample == "fixed":
            if self._fixed_devices is None:
                self._fixed_devices = sample_devices(s, np.random.default_rng(s.seed), self.min_memory_bytes)
            devices = self._fixed_devices
        else:
            devices = sample_devices(s, rng, self.min_memory_bytes)
        self.devices[i] = devices
        prev, gains = self.channel.reset_env(i, devices)
        self.episode[i] += 1
        flops, budget = self.channel.device_rates(None)
        self.base_flops[i] = devices.client_flops if flops is None else flops[i]
        self.client_flops[i] = self.base_flops[i]
        if self.dynamic:
            levels = self.load_levels.size
            self.load_state[i] = rng.integers(levels, size=self.n) if levels > 1 else 0
            self.availability[i] = self.load_levels[self.load_state[i]]
            self.client_flops[i] = self.base_flops[i] * self.availability[i]
            self.alive[i] = True
            span = self.scenario.dynamics.present_clients
            # drawn after the load states, so scenarios without the key keep their draws
            taking_part = self.n if span is None else int(rng.integers(span[0], span[1] + 1))
            self.slots[i] = np.arange(self.n) < taking_part
            self.present[i] = self.slots[i]
            battery = self.scenario.dynamics.battery_j
            self.battery[i] = np.inf if battery is None else float(battery)
        self.power_budget_w[i] = devices.power_budget_w if budget is None else budget[i]
        self.memory_bytes[i] = devices.memory_bytes
        self.gains[i] = gains
        if self.delayed:
            self.observed_gains[i] = prev
        self.round[i] = 0
        self.has_prev[i] = False
        self.prev_cut[i] = 0
        self.prev_latency[i] = 0.0
        self.sync[i] = self.sync_period > 0 and 1 % self.sync_period == 0
        if self.needs_broadcast:
            self.r_bc[i] = self.radio.broadcast_rate(gains)
            if self.delayed:
                self.r_bc_seen[i] = self.radio.broadcast_rate(prev)

    # -- what a scheduler sees, what is true -------------------------------------------------------------
    def observation(self) -> Observation:
        """What the schedulers of the K envs may see now (views of the world's arrays)."""
        dyn = self.dynamic
        return Observation(self.observed_gains, self.client_flops, self.power_budget_w, self.memory_bytes,
                           self.prev_cut, self.has_prev, self.prev_latency, self.round, self.sync, self.episode,
                           self.r_bc_seen, self.present if dyn else None, self.availability if dyn else None,
                           self.battery if dyn else None)

    def state(self, i: int) -> RoundState:
        """The current round of env i (copies): true and observed gains."""
        prev = self.prev_cut[i].copy() if self.has_prev[i] else None
        distance = self.channel.distance_m(i)
        if distance is None:
            distance = self.devices[i].distance_m.copy()
        gains = self.gains[i].copy()
        observed = self.observed_gains[i].copy() if self.delayed else gains
        dyn = self.dynamic
        return RoundState(int(self.round[i]), int(self.episode[i]), self.client_flops[i].copy(),
                          self.power_budget_w[i].copy(), self.memory_bytes[i].copy(), gains, observed, prev,
                          float(self.prev_latency[i]), bool(self.sync[i]), distance,
                          self.present[i].copy() if dyn else None, self.availability[i].copy() if dyn else None,
                          self.battery[i].copy() if dyn else None)

    # -- rounds ----------------------------------------------------------------------------------------
    def use_thread(self, enabled: bool) -> None:
        """Make the next rounds' random draws (and, where the channel allows, the whole fading step)
        in a worker thread while the caller decodes and prices (see the module docstring)."""
        if enabled and self._pool is None and self.channel.uses_rng:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psl-rng")
        elif not enabled and self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def begin_step(self, active: np.ndarray | None = None,
                   on_block: Callable[[int, int, np.ndarray], None] | None = None) -> _Step:
        """Start the next round's work for the envs in ``active`` (None: all).

        ``on_block(a, b, observed)``: called with the next round's observed gains of envs a..b-1
        when they are computed early (the caller may derive features from them meanwhile).
        """
        ch = self.channel
        step = _Step(active, on_block=on_block)
        if hasattr(ch, "prepare"):
            ch.prepare()
        if self._pool is not None and ch.latency_independent:  # draw and advance blocks in the worker
            step.early = True
            step.todo = iter(_blocks(self.k, max(8, min(_EARLY_BLOCK, self.k // 8))))  # next() is atomic under the GIL
            step.job = self._pool.submit(self._draw_and_advance, step.todo, active, on_block)
        elif self._pool is not None and ch.uses_rng:  # the worker draws (the main thread helps later)
            step.todo = iter(_blocks(self.k, _DRAW_BLOCK))
            step.job = self._pool.submit(self._draw, step.todo, active)
        elif ch.uses_rng:
            self._draw([(0, self.k)], active)
        return step

    def finish_step(self, step: _Step, cut: np.ndarray, latency_s: np.ndarray,
                    energy_j: np.ndarray | None = None) -> None:
        """Move every env in the step's ``active`` set to its next round, after rounds that used
        ``cut`` [K, N], lasted ``latency_s`` [K] seconds and cost the devices ``energy_j`` [K, N]
        joules (drained from the batteries, if they are finite)."""
        active = step.active
        if step.job is not None:
            if step.early:
                self._draw_and_advance(step.todo, active, step.on_block)
            else:
                self._draw(step.todo, active)
            step.job.result()
        nxt = self._spare
        if step.early:
            r_bc = self._early_r_bc.copy() if self.needs_broadcast else None
        else:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                self.channel.advance(latency_s, active, nxt)
            r_bc = self.radio.broadcast_rate(nxt) if self.needs_broadcast else None
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
        flops, budget = self.channel.device_rates(active)
        self.devices_changed = flops is not None or budget is not None
        for new, arr in ((flops, self.base_flops), (budget, self.power_budget_w)):
            if new is not None:
                arr[...] = new if active is None else np.where(active[:, None], new, arr)
        if self.dynamic:
            self._evolve(active, energy_j)
            self.devices_changed = True
        if flops is not None or self.dynamic:
            self.client_flops = self.base_flops * self.availability
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

    def advance(self, cut: np.ndarray, latency_s: np.ndarray, active: np.ndarray | None = None,
                energy_j: np.ndarray | None = None) -> None:
        """``begin_step`` + ``finish_step`` with nothing in between."""
        self.finish_step(self.begin_step(active), np.asarray(cut), np.asarray(latency_s, dtype=np.float64), energy_j)

    def _evolve(self, active: np.ndarray | None, energy_j: np.ndarray | None) -> None:
        """The devices' next load state, presence and battery, per stepping env (see the module docstring)."""
        dyn = self.scenario.dynamics
        levels = self.load_levels.size
        churn = dyn.churn_leave > 0 or dyn.churn_rejoin > 0
        if energy_j is not None and dyn.battery_j is not None:
            self.battery = np.where(self.present, self.battery - energy_j, self.battery)
            self.alive &= self.battery > 0
        for i in (range(self.k) if active is None else np.flatnonzero(active).tolist()):
            rng = self.rngs[i]
            if levels > 1:
                stay = rng.random(self.n) < dyn.load_stay
                jump = rng.integers(levels - 1, size=self.n)
                state = self.load_state[i]
                self.load_state[i] = np.where(stay, state, jump + (jump >= state))
            present = self.present[i]
            if churn:
                u = rng.random(self.n)
                stay = self.alive[i] & self.slots[i]
                nxt = np.where(present, u >= dyn.churn_leave, u < dyn.churn_rejoin) & stay
                self.present[i] = nxt if nxt.any() else present & stay  # nobody leaves the last seat
            else:
                self.present[i] = present & self.alive[i]
        self.availability = self.load_levels[self.load_state]

    def _draw(self, blocks, active: np.ndarray | None) -> None:
        for a, b in blocks:
            self.channel.draw(a, b, active)

    def _draw_and_advance(self, blocks, active: np.ndarray | None, on_block) -> None:
        """For each block of envs taken from ``blocks``: draw, advance into the spare buffer and take
        its broadcast rates (rows are independent: the same numbers as the whole batch at once; the
        rows of envs that reset are overwritten afterwards)."""
        out, ch = self._spare, self.channel
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for a, b in blocks:
                ch.draw(a, b, active)
                ch.advance(None, active, out, a, b)
                if self.needs_broadcast:
                    self._early_r_bc[a:b] = self.radio.broadcast_rate(out[a:b])
                if on_block is not None:
                    # the next round observes these gains, or under delayed CSI this round's
                    on_block(a, b, self.gains[a:b] if self.delayed else out[a:b])

    def close(self) -> None:
        self.use_thread(False)
        self.channel.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None  # threads do not pickle; recreated on load
        state["_threaded"] = self._pool is not None
        return state

    def __setstate__(self, state: dict) -> None:
        threaded = state.pop("_threaded", False)
        self.__dict__.update(state)
        self.channel.rngs = self.rngs  # one list, shared again after unpickling
        self.use_thread(threaded)


def _blocks(k: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, k)) for a in range(0, k, size)]


__all__ = ["World"]
