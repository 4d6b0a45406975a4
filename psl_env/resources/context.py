"""Subchannels and power for fixed cuts: the EPSL-BCD inner solver, shared by every optimizer and by
the environments' solver-assisted codec.

- ``ResourceContext``: what every solver call on one observed round shares (inverse SNRs, downlink
  rates, preference orders, rate bounds).
- ``solve_fixed_cut(model, obs, cut) -> (Allocation, latency_s)`` and ``solve_resources`` (the
  allocation alone): a greedy start, then local search, with water-filled power.
- ``greedy_assignment(obs, weights)``: a greedy assignment driven by per-client weights.

Everything here decides on an ``Observation`` (what a scheduler may see); pricing on the true
gains is the caller's business (``LatencyModel.evaluate``).
"""

from __future__ import annotations

import numpy as np

from ..backend import load_kernels
from ..system.latency import CutTerms, LatencyModel, cut_terms
from ..system.radio import Radio, dbm_to_w
from ..system.state import Allocation, Observation
from .greedy import bottleneck_greedy, proportional_start
from .local_search import local_search
from .waterfill import inverse_snr, rate_from_inverse_snr, water_fill

# Noise power N0 W of one 1 MHz subchannel at -174 dBm/Hz (the default radio): the default of
# ``greedy_assignment`` when it is called without a latency model.
DEFAULT_NOISE_W = dbm_to_w(-174.0) * 1e6

# Starting assignments of the BCD (``solve_fixed_cut(starts=...)``).
STARTS = ("greedy", "proportional")
MOVES = ("bottleneck", "all")


class ResourceContext:
    """What every solver call on one observed round shares.

    Args:
        model: the scenario's latency model (None: only the radio is needed, see ``greedy_assignment``).
        obs: the observed round.
        radio: the radio constants (default: the model's).
    """

    def __init__(self, model: LatencyModel | None, obs: Observation, radio: Radio | None = None) -> None:
        radio = radio or model.radio
        g = np.asarray(obs.gains, dtype=np.float64)
        self.model = model
        self.obs = obs
        self.n, self.m = g.shape
        self.gains = g
        self.budget = np.asarray(obs.power_budget_w, dtype=np.float64)
        self.bw = radio.bw_hz
        self.link = radio.link
        self.noise_w = radio.wf_noise_w
        self.inv_snr = inverse_snr(g, self.noise_w)  # [N, M]
        self.rate_down_sc = radio.downlink_rate(g)  # [N, M]
        self.broadcast_rate = None
        if model is not None and model.uses_broadcast:
            self.broadcast_rate = obs.broadcast_rate if obs.broadcast_rate is not None else float(
                radio.broadcast_rate(g))
        # Subchannels of each client from best to worst gain (ties by index).
        self.preference = np.argsort(-g, axis=1, kind="stable")
        self.preference_lists = self.preference.tolist()
        self.inv_snr_lists = self.inv_snr.tolist()
        # Upper bounds on the rates: the whole band to one client (for lower bounds on the latency).
        self.rate_up_max = rate_from_inverse_snr(self.inv_snr, self.budget, self.bw, self.link)
        self.rate_down_max = self.rate_down_sc.sum(axis=1)

    def terms(self, cut: np.ndarray) -> CutTerms:
        """The latency of cuts ``cut`` [..., N] on this round as a function of the rates."""
        obs = self.obs
        return cut_terms(self.model.tables, cut, obs.client_flops, self.broadcast_rate,
                         obs.prev_cut if obs.has_prev else None, obs.sync, obs.memory_bytes)

    def lower_bound(self, terms: CutTerms) -> np.ndarray:
        """A lower bound on the latency of ``terms``' cuts over every assignment and power."""
        return terms.total(self.rate_up_max, self.rate_down_max)

    def rates(self, mask: np.ndarray, clients: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Water-filled uplink and downlink rates of ownership masks.

        ``mask`` [..., N, M] gives every client's subchannels; or, with ``clients`` [...] naming a
        client per row, ``mask`` [..., M] gives that client's subchannels. Returns arrays [..., N]
        (or [...]).
        """
        if clients is None:
            inv, budget, rd = self.inv_snr, self.budget, self.rate_down_sc
        else:
            inv, budget, rd = self.inv_snr[clients], self.budget[clients], self.rate_down_sc[clients]
        up = rate_from_inverse_snr(np.where(mask, inv, np.inf), budget, self.bw, self.link)
        down = (rd * mask).sum(axis=-1)
        return up, down

    def powers(self, owner: np.ndarray) -> np.ndarray:
        """[M] water-filled power of each subchannel for an assignment ``owner`` [M]."""
        mask = owner[None, :] == np.arange(self.n)[:, None]
        p = water_fill(np.where(mask, self.gains, 0.0), self.budget, self.noise_w, self.link)
        out = np.zeros(self.m)
        used = owner >= 0
        out[used] = p[owner[used], np.flatnonzero(used)]
        return out


def greedy_assignment(obs: Observation, weights: np.ndarray, *, noise_w: float = DEFAULT_NOISE_W,
                      bw_hz: float = 1e6, offset_s: np.ndarray | None = None) -> np.ndarray:
    """Deterministic greedy subchannel assignment driven by per-client weights (``bottleneck_greedy``
    with ``offset_s_i + weights_i / R_i`` as client i's time).

    With ``weights`` = bits to upload and ``offset_s`` = compute time, this is min-max of the
    uplink-phase times; with equal weights it balances rates.

    Args:
        obs: the observed round (gains, power budgets).
        weights: [N] non-negative per-client weights (e.g. bits to send, or priorities).
        noise_w: noise power N0 W of one subchannel, W (pass ``model.radio.wf_noise_w`` for a scenario's).
        bw_hz: subchannel bandwidth W (scales all rates alike; only matters with ``offset_s``).
        offset_s: [N] optional per-client time added to the weighted rate term, s.

    Returns:
        owner [M]: every subchannel assigned, every client holding at least one.
    """
    n, m = obs.gains.shape
    if m < n:
        raise ValueError(f"greedy_assignment: M={m} subchannels cannot serve N={n} clients")
    weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), (n,))
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("greedy_assignment: weights must be finite and >= 0")
    ctx = ResourceContext(None, obs, Radio(bw_hz, noise_w / bw_hz, noise_w, noise_w, 1.0))
    return bottleneck_greedy(ctx, np.zeros(n) if offset_s is None else offset_s, weights)


def solve_fixed_cut(model: LatencyModel, obs: Observation, cut: np.ndarray | int,
                    priority: np.ndarray | None = None, *, refine: bool = True, max_iter: int = 200,
                    moves: str = "bottleneck", starts: tuple[str, ...] = ("greedy",),
                    context: ResourceContext | None = None, kernels=None) -> tuple[Allocation, float]:
    """Subchannels and power for fixed cuts (the EPSL-BCD inner loop), with the modeled latency.

    1. Greedy start (``bottleneck_greedy``): each client takes its best subchannel, then the client
       with the largest modeled time (uplink compute + upload at the water-filled rate, plus the
       downlink side) takes its best free subchannel, until all M are used.
    2. Block-coordinate descent (``local_search``): alternate subchannel reassignment toward the
       bottleneck client (moves and swaps) with per-client water-filling of the affected clients,
       keeping a change only if the round latency drops, until no change does.
    3. Power: water-filling of every client over its subchannels (exact for the final assignment).

    Args:
        model: the scenario's latency model.
        obs: the observed round.
        cut: [N] cut per client, or one int for a common cut.
        priority: [N] optional non-negative weights multiplying each client's uplink load in the
            greedy start (1 = neutral, larger = served first and more). The refinement then
            minimizes the modeled latency; pass ``refine=False`` to keep the priority-driven
            assignment as it is.
        refine: run step 2 (default True).
        max_iter: cap on the number of accepted reassignments.
        moves: ``"bottleneck"`` (candidates hand a subchannel to a bottleneck client) or ``"all"``.
        starts: starting assignments, each refined, the best kept: ``"greedy"`` (step 1) and/or
            ``"proportional"`` (``proportional_start``; ignores ``priority``).
        context: a ``ResourceContext`` of (model, obs) to reuse (else built).
        kernels: the compiled backend (``psl_env.resources.kernels``) or None for numpy; the same
            decisions either way (the per-device round structure always runs numpy).

    Returns:
        (a feasible ``Allocation``: every subchannel used, every client served, budgets spent;
        its modeled latency on the observed gains, s).
    """
    n = obs.num_clients
    cut_arr = np.broadcast_to(np.asarray(cut, dtype=np.int64), (n,)).copy()
    if np.any(cut_arr < 1) or np.any(cut_arr > model.num_blocks - 1):
        raise ValueError(f"cut {cut_arr.tolist()} outside 1..{model.num_blocks - 1}")
    if moves not in MOVES:
        raise ValueError(f"moves: {moves!r} is not allowed; allowed: {list(MOVES)}")
    ctx = context or ResourceContext(model, obs)
    terms = ctx.terms(cut_arr)
    if priority is not None:
        priority = np.broadcast_to(np.asarray(priority, dtype=np.float64), (n,))
        if np.any(priority < 0) or not np.all(np.isfinite(priority)):
            raise ValueError("priority must be finite and >= 0")
    # the kernels compute the capped closed form; the ergodic rate and the per-device chain run numpy
    k = kernels if terms.server_client_s is None and ctx.link.se is None else None
    greedy = bottleneck_greedy if k is None else k.greedy
    best_owner, best = None, np.inf
    for start in starts:
        if start == "greedy":
            if priority is None:
                owner = greedy(ctx, terms.up_off, terms.up_bits, terms.dn_off, terms.dn_bits)
            else:
                owner = greedy(ctx, terms.up_off, terms.up_bits * priority)
        elif start == "proportional":
            owner = proportional_start(ctx, terms) if k is None else k.proportional(ctx, terms)
        else:
            raise ValueError(f"starts: {start!r} is not allowed; allowed: {list(STARTS)}")
        if refine:
            owner, latency = (local_search if k is None else k.local_search)(ctx, terms, owner, max_iter, moves)
        else:
            mask = owner[None, :] == np.arange(n)[:, None]
            latency = float(terms.total(*ctx.rates(mask)))
        if best_owner is None or latency < best:  # (a cut over a memory cap is infinite for every start)
            best_owner, best = owner, latency
    if best_owner is None:
        raise ValueError("starts: give at least one starting point")
    power = ctx.powers(best_owner) if k is None else k.powers(ctx, best_owner)
    return Allocation(cut_arr, best_owner, power), best


def solve_resources(model: LatencyModel, obs: Observation, cut: np.ndarray | int, **options) -> Allocation:
    """``solve_fixed_cut`` without the latency (same options)."""
    return solve_fixed_cut(model, obs, cut, **options)[0]


class FixedCutSolver:
    """The inner solver of ``epsl-bcd`` as an object with fixed options, shared by the optimizers
    and the environments' ``assisted`` codec (``solve_fixed_cut`` with these options).

    Args:
        model: the scenario's latency model.
        refine: run the local search after the greedy start.
        max_iter: cap on accepted reassignments per solve.
        moves: ``"bottleneck"`` or ``"all"`` (see ``local_search``).
        backend: compiled kernels or numpy (``psl_env.backend``); the same decisions either way.
    """

    def __init__(self, model: LatencyModel, *, refine: bool = True, max_iter: int = 200, moves: str = "bottleneck",
                 backend: str = "auto") -> None:
        if moves not in MOVES:
            raise ValueError(f"moves: {moves!r} is not allowed; allowed: {list(MOVES)}")
        if int(max_iter) < 0:
            raise ValueError(f"max_iter: {max_iter!r} must be >= 0")
        self.model = model
        self.refine = bool(refine)
        self.max_iter = int(max_iter)
        self.moves = moves
        self.backend = backend
        self.kernels = load_kernels(backend, "psl_env.resources.kernels")

    def context(self, obs: Observation) -> ResourceContext:
        return ResourceContext(self.model, obs)

    def solve(self, obs: Observation, cut: np.ndarray | int, *, starts: tuple[str, ...] = ("greedy",),
              priority: np.ndarray | None = None, context: ResourceContext | None = None) -> tuple[Allocation, float]:
        """(allocation, modeled latency in s) for cuts ``cut`` on the observed round."""
        return solve_fixed_cut(self.model, obs, cut, priority, refine=self.refine, max_iter=self.max_iter,
                               moves=self.moves, starts=starts, context=context, kernels=self.kernels)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["kernels"] = None  # a module: loaded again
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kernels = load_kernels(self.backend, "psl_env.resources.kernels")


__all__ = ["DEFAULT_NOISE_W", "MOVES", "STARTS", "FixedCutSolver", "ResourceContext", "greedy_assignment",
           "solve_fixed_cut", "solve_resources"]
