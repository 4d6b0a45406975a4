"""Gauss-Markov Rayleigh fading over path loss and shadowing, with Doppler and mobility options.

gain = path loss(d_i) x shadowing_i x |h_{i,m,t}|^2, with h independent across subchannels and
correlated across rounds: h_t = a h_{t-1} + sqrt(1 - a^2) e_t, e_t ~ CN(0, 1). The correlation a is
``channel.correlation`` (a number) or, with ``correlation: doppler``, a = J0(2 pi f_D tau) with f_D
from each client's speed and the carrier, tau the previous round's latency (a slow round
decorrelates more). Shadowing is drawn once per episode. With ``mobility`` clients walk on the
plane around the server (heading drifting randomly) within the scenario's distance range, which
updates their path loss every round.

With ``channel.small_scale: averaged`` the gains are the large-scale ones (path loss x shadowing,
the same on every subchannel of a client) and no fading is drawn: the radio then prices each
subchannel at its ergodic rate over the fast fading (``fading.ergodic_se``).
"""

from __future__ import annotations

import numpy as np

from ...backend import load_kernels
from ..scenario import Scenario
from ..state import Devices
from .base import Channel

SPEED_OF_LIGHT_MPS = 299_792_458.0
# The fading step that produces round 0 from the stale round -1 assumes a round of this length.
INITIAL_INTERVAL_S = 1.0
HEADING_DRIFT_RAD = 0.3  # standard deviation of the heading's random walk per round (mobility)
_SQRT_HALF = np.sqrt(0.5)


def pathloss_gain(distance_m: np.ndarray, intercept_db: float = 128.1, slope_db: float = 37.6) -> np.ndarray:
    """Linear large-scale gain 10^(-PL/10) with PL_dB = A + B log10(d / 1 km)."""
    pl_db = intercept_db + slope_db * np.log10(np.maximum(distance_m, 1e-3) / 1000.0)
    return 10.0 ** (-pl_db / 10.0)


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """CN(0, 1) samples (the real parts are drawn first, then the imaginary parts)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.sqrt(0.5)


def gauss_markov_step(h: np.ndarray, corr: np.ndarray | float, innovation: np.ndarray) -> np.ndarray:
    """h_t = a h_{t-1} + sqrt(1 - a^2) e_t; ``corr`` broadcasts against h (e.g. [N, 1] per client)."""
    corr = np.asarray(corr)
    return corr * h + np.sqrt(np.maximum(1.0 - corr * corr, 0.0)) * innovation


def doppler_correlation(speed_mps: np.ndarray, carrier_hz: float, interval_s: np.ndarray | float) -> np.ndarray:
    """Jakes correlation a = J0(2 pi f_D tau), f_D = v f_c / c, for rounds of ``interval_s``.

    Negative lobes of J0 are clipped to 0 (our choice): a long round is treated as fully
    decorrelated rather than anti-correlated; the gains only see |h|^2 either way. An infinite
    round gives 0.
    """
    from scipy.special import j0  # noqa: PLC0415 - only for the Doppler option

    doppler_hz = np.asarray(speed_mps) * carrier_hz / SPEED_OF_LIGHT_MPS
    tau = np.asarray(interval_s, dtype=np.float64)
    finite = np.isfinite(tau)
    corr = np.clip(j0(2.0 * np.pi * doppler_hz * np.where(finite, tau, 0.0)), 0.0, 1.0)
    return np.where(finite, corr, 0.0)


class GaussMarkovChannel(Channel):
    """``channel.kind: gauss-markov`` (see the module docstring), batched over K envs.

    State per env: fading h [K, 2, N, M] (real and imaginary parts), large-scale gain [K, N]
    (path loss x shadowing), positions [K, N, 2], headings and speeds [K, N].
    """

    name = "gauss-markov"

    def __init__(self, scenario: Scenario, num_envs: int, rngs: list, backend: str = "auto") -> None:
        super().__init__(scenario, num_envs, rngs, backend)
        cfg = self.cfg = scenario.channel
        k, n, m = self.k, self.n, self.m
        self.doppler = cfg.correlation == "doppler"
        self.mobility = bool(cfg.mobility)
        self.averaged = cfg.small_scale == "averaged"
        self.latency_independent = not self.mobility and (self.averaged or not self.doppler)
        self.uses_rng = self.mobility or not self.averaged
        self.distance_range_m = scenario.devices.distance_m
        if not self.doppler:
            # scalars: the same products as with arrays, faster broadcasting
            self._corr = np.float64(cfg.correlation)
            self._innov_scale = np.sqrt(np.maximum(1.0 - self._corr * self._corr, 0.0))
        self.kernels = load_kernels(backend, "psl_env.system.channels.kernels")
        self._generator_list = None  # the generators as the draw kernel wants them (built on first draw)
        self._all_active = np.ones(k, dtype=bool)
        self.speed = np.zeros((k, n))
        self.shadowing = np.ones((k, n))
        self.position = np.zeros((k, n, 2))
        self.heading = np.zeros((k, n))
        self.large = np.zeros((k, n))
        self.h = np.zeros((k, 2, n, m))
        self._noise = np.empty((k, 2, n, m))
        self._sq = np.empty((k, 2, n, m))

    # -- episodes --------------------------------------------------------------------------------------
    def reset_env(self, i: int, devices: Devices) -> tuple[np.ndarray, np.ndarray]:
        rng, cfg, n, m = self.rngs[i], self.cfg, self.n, self.m
        if self._generator_list is not None:
            self._generator_list[i] = rng
        speed = np.asarray(devices.speed_mps, dtype=np.float64)
        shadowing = 10.0 ** (rng.normal(0.0, cfg.shadowing_db, n) / 10.0) if cfg.shadowing_db else np.ones(n)
        angle = rng.uniform(0.0, 2.0 * np.pi, n)
        position = np.stack([devices.distance_m * np.cos(angle), devices.distance_m * np.sin(angle)], axis=1)
        heading = rng.uniform(0.0, 2.0 * np.pi, n)
        if self.averaged:  # large-scale gains only: no fading state
            prev = np.repeat((self._large(position) * shadowing)[:, None], m, axis=1)
            if self.mobility:
                heading = heading + rng.normal(0.0, HEADING_DRIFT_RAD, n)
                position, heading = self._walk(position, heading, speed * INITIAL_INTERVAL_S)
            self.speed[i], self.shadowing[i], self.position[i], self.heading[i] = speed, shadowing, position, heading
            self.large[i] = self._large(position) * shadowing
            return prev, np.repeat(self.large[i][:, None], m, axis=1)
        h = complex_normal(rng, (n, m))
        prev = self._gains_of(position, shadowing, h)
        # one step of INITIAL_INTERVAL_S from the stale round -1 to round 0
        corr = (doppler_correlation(speed, cfg.carrier_hz, INITIAL_INTERVAL_S) if self.doppler
                else np.full(n, float(cfg.correlation)))[:, None]
        h = gauss_markov_step(h, corr, complex_normal(rng, (n, m)))
        if self.mobility:
            heading = heading + rng.normal(0.0, HEADING_DRIFT_RAD, n)
            position, heading = self._walk(position, heading, speed * INITIAL_INTERVAL_S)
        gains = self._gains_of(position, shadowing, h)
        self.speed[i], self.shadowing[i], self.position[i], self.heading[i] = speed, shadowing, position, heading
        self.h[i, 0], self.h[i, 1] = h.real, h.imag
        self.large[i] = self._large(position) * shadowing
        return prev, gains

    def _large(self, position: np.ndarray) -> np.ndarray:
        distance = np.hypot(position[..., 0], position[..., 1])
        return pathloss_gain(distance, self.cfg.pathloss_intercept_db, self.cfg.pathloss_slope_db)

    def _gains_of(self, position: np.ndarray, shadowing: np.ndarray, h: np.ndarray) -> np.ndarray:
        return (self._large(position) * shadowing)[:, None] * (h.real ** 2 + h.imag ** 2)

    def distance_m(self, i: int) -> np.ndarray:
        return np.hypot(self.position[i, :, 0], self.position[i, :, 1])

    # -- rounds ----------------------------------------------------------------------------------------
    def draw(self, start: int, stop: int, active: np.ndarray | None) -> None:
        """The CN(0, 1) innovations (``complex_normal``'s draws) of envs start..stop-1 into ``_noise``."""
        if self.averaged:
            return
        if self.kernels is not None and self.kernels.draws_match_numpy():
            if self._generator_list is None:
                self._generator_list = self.kernels.generator_list(self.rngs)
            self.kernels.draw_normals(self._generator_list, self._noise,
                                      self._all_active if active is None else active, start, stop)
            return
        noise, rngs = self._noise, self.rngs
        for i in range(start, stop):
            if active is None or active[i]:
                rngs[i].standard_normal(out=noise[i])

    def prepare(self) -> None:
        """Build what the draw kernel needs before threads draw (not thread-safe to build lazily)."""
        if self.kernels is not None and self._generator_list is None and self.kernels.draws_match_numpy():
            self._generator_list = self.kernels.generator_list(self.rngs)
            self._generator_list[0] = self._generator_list[0]  # compiles the list's setitem now, not at a reset

    def advance(self, latency_s: np.ndarray, active: np.ndarray | None, out: np.ndarray,
                start: int = 0, stop: int | None = None) -> None:
        stop = self.k if stop is None else stop
        if self.averaged:
            if self.mobility:
                finite = np.isfinite(latency_s)
                drift = np.zeros((self.k, self.n))
                for i in (range(start, stop) if active is None else np.flatnonzero(active).tolist()):
                    if finite[i]:
                        drift[i] = self.rngs[i].normal(0.0, HEADING_DRIFT_RAD, self.n)
                self._move(latency_s, drift, finite if active is None else finite & active)
            out[start:stop] = self.large[start:stop, :, None]
            return
        if self.mobility:  # the heading drift is drawn after the innovation, for finite rounds only
            drift = np.zeros((self.k, self.n))
            finite = np.isfinite(latency_s)
            rngs = self.rngs
            for i in (range(start, stop) if active is None else
                      [j for j in np.flatnonzero(active).tolist() if start <= j < stop]):
                if finite[i]:
                    drift[i] = rngs[i].normal(0.0, HEADING_DRIFT_RAD, self.n)
        if self.doppler:
            corr = doppler_correlation(self.speed, self.cfg.carrier_hz, latency_s[:, None])[:, None, :, None]
            scale = np.sqrt(np.maximum(1.0 - corr * corr, 0.0))
        else:
            corr, scale = self._corr, self._innov_scale
        move = None
        if self.mobility:
            moving = finite if active is None else finite & active
            move = lambda: self._move(latency_s, drift, moving)  # noqa: E731
        self._fade(start, stop, corr, scale, out, move)

    def _fade(self, a: int, b: int, corr, scale, out: np.ndarray, move=None) -> None:
        """The fading step of envs a..b-1 (innovations in ``_noise``) into ``out``; ``move``
        (mobility) runs between the fading update and the gains."""
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

    def _walk(self, position: np.ndarray, heading: np.ndarray, step_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions and headings after walking ``step_m`` [..., N] along the headings, reflected off
        the boundary of the distance range (the walker turns around)."""
        step = step_m[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        pos = position + step
        radius = np.hypot(pos[..., 0], pos[..., 1])
        lo, hi = self.distance_range_m
        clipped = np.clip(radius, lo, hi)
        bounced = clipped != radius
        pos = pos * (clipped / np.maximum(radius, 1e-9))[..., None]
        return pos, np.where(bounced, heading + np.pi, heading)

    def _move(self, latency_s: np.ndarray, drift: np.ndarray, moving: np.ndarray) -> None:
        """Walk the envs in ``moving`` for their round's latency; update their large-scale gains."""
        step_len = self.speed * np.where(moving, latency_s, 0.0)[:, None]
        pos, heading = self._walk(self.position, self.heading + drift, step_len)
        self.position = np.where(moving[:, None, None], pos, self.position)
        self.heading = np.where(moving[:, None], heading, self.heading)
        self.large = self._large(self.position) * self.shadowing

    def close(self) -> None:
        self._generator_list = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["kernels"] = "auto" if self.kernels is not None else "numpy"  # a module: loaded again
        state["_generator_list"] = None  # rebuilt from ``rngs`` on first use
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kernels = load_kernels(state["kernels"], "psl_env.system.channels.kernels")


__all__ = ["INITIAL_INTERVAL_S", "GaussMarkovChannel", "complex_normal", "doppler_correlation",
           "gauss_markov_step", "pathloss_gain"]
