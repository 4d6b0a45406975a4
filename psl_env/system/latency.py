"""Round latency of parallel split learning (docs/system-model.md): one formula for every caller.

The environments, the optimizers, the oracle, the training engine's accounting, the fixed
reference and the round traces all price rounds with the functions below:

1. ``SchemeTables`` (``scheme.py``, built once per scenario): the per-cut bits and FLOPs.
2. ``rates(radio, gains, owner, power)``: per-client uplink and downlink rates of an allocation.
3. ``cut_terms(tables, cut, client_flops, ...)``: everything of the round that does not depend on
   the rates; ``CutTerms.total(up, down)`` / ``CutTerms.latency(up, down)`` finish the formula.
   ``latency_from_rates`` chains the two.

Every function is batch-first: arrays may carry any leading axes ``...`` (one round: [N], [M],
[N, M]; K rounds: [K, N], [K, M], [K, N, M]), and the cut terms broadcast against candidate rates
(the optimizers price many assignments of one cut at once).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..backend import load_kernels
from ..models.profile import ModelProfile
from .radio import Radio, dbm_to_w
from .scenario import Scenario
from .scheme import SchemeTables
from .state import Allocation, Observation, RoundState

# The phases of a round, in the order they happen; with ``total`` the round's figures everywhere
# (info dicts as ``<phase>_s``, traces, tables, TensorBoard).
PHASES = ("uplink_phase", "server_compute", "downlink_phase", "sync", "migration")
PHASE_KEYS = {name: f"{name}_s" for name in PHASES}  # their keys in info dicts and tables
PER_CLIENT = ("client_fwd_s", "uplink_s", "downlink_s", "client_bwd_s", "uplink_rate_bps", "downlink_rate_bps")


@dataclass
class Latency:
    """The latency of a round (floats) or of a batch of rounds (arrays [...]); seconds.

    ``uplink_phase + server_compute + downlink_phase + sync + migration == total`` (to rounding).
    Per-client arrays have shape [..., N].
    """

    total: np.ndarray | float
    uplink_phase: np.ndarray | float
    server_compute: np.ndarray | float
    downlink_phase: np.ndarray | float
    sync: np.ndarray | float
    migration: np.ndarray | float
    client_fwd_s: np.ndarray
    uplink_s: np.ndarray
    downlink_s: np.ndarray
    client_bwd_s: np.ndarray
    uplink_rate_bps: np.ndarray
    downlink_rate_bps: np.ndarray

    def rows(self, sl: slice | int) -> "Latency":
        """The rounds ``sl`` of a batch (views)."""
        return Latency(*(getattr(self, name)[sl] for name in _LATENCY_FIELDS))

    def phases(self) -> dict[str, float]:
        """The scalar phases and total, for info dicts, traces and tables."""
        return {"total": float(self.total), **{k: float(getattr(self, k)) for k in PHASES}}

    def scalar(self) -> "Latency":
        """A one-round latency with Python floats for the total and the phases."""
        self.total = float(self.total)
        for name in PHASES:
            setattr(self, name, float(getattr(self, name)))
        return self


_LATENCY_FIELDS = tuple(f.name for f in dataclasses.fields(Latency))


# ---------------------------------------------------------------------------------------------------
# rates

def rates(radio: Radio, gains: np.ndarray, owner: np.ndarray, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uplink R_i and downlink RD_i of every client, bit/s, shape [..., N].

    R_i = W sum over client i's subchannels of log2(1 + p g / (N0 W)); RD_i the same at the server's
    power per subchannel (reciprocal gains). A client without a subchannel has rate 0.

    Args:
        radio: the scenario's radio constants.
        gains: [..., N, M] linear gains.
        owner: [..., M] client of each subchannel, -1 for unused.
        power_w: [..., M] transmit power of each subchannel, W.
    """
    n, m = gains.shape[-2:]
    if owner.ndim == 1:  # one round: the hot path of single environments and optimizers
        used = owner >= 0
        g_sel = gains[np.maximum(owner, 0), np.arange(m)]
        bins = np.where(used, owner, n)  # unused subchannels land in bin n, dropped
        up = np.bincount(bins, radio.uplink_se(g_sel, power_w), minlength=n + 1)[:n]
        down = np.bincount(bins, radio.downlink_se(g_sel), minlength=n + 1)[:n]
        return up * radio.bw_hz, down * radio.bw_hz
    batch = owner.shape[:-1]
    k = int(np.prod(batch)) if batch else 1
    owner2 = owner.reshape(k, m)
    used = owner2 >= 0
    base = np.arange(k)[:, None] * (n * m) + np.arange(m)[None, :]
    g_sel = np.broadcast_to(gains, (*batch, n, m)).reshape(-1).take(base + np.maximum(owner2, 0) * m)
    all_used = bool(used.all())
    bins = owner2 + np.arange(0, k * n, n)[:, None]
    if not all_used:
        bins = np.where(used, bins, k * n)  # unused subchannels land in an extra bin, dropped
    bins = bins.ravel()
    size = k * n + 1
    up = np.bincount(bins, radio.uplink_se(g_sel, power_w.reshape(k, m)).ravel(), minlength=size)[:-1]
    down = np.bincount(bins, radio.downlink_se(g_sel).ravel(), minlength=size)[:-1]
    return (up * radio.bw_hz).reshape(*batch, n), (down * radio.bw_hz).reshape(*batch, n)


# ---------------------------------------------------------------------------------------------------
# the latency formula

@dataclass
class CutTerms:
    """The round latency for fixed cuts as a function of the per-client rates.

    With the cuts fixed, T = max_i (tF_i + up_bits_i / R_i) + server + max_i (tB_i + tD^bc +
    dn_bits_i / RD_i) [+ sync] [+ migration]. Arrays have shape [..., N] (``server_s`` and
    ``broadcast_s``: [...]) and broadcast against candidate rates.

    Attributes:
        client_fwd_s: tF_i, client forward time, s.
        client_bwd_s: tB_i, client backward time, s.
        broadcast_s: the broadcast part of the downlink (EPSL), s (0 without one).
        up_bits: uplink bits b psi_{j_i}.
        dn_bits: unicast downlink bits.
        server_s: server compute TsF + TsB, s.
        sync_bits: delta_{j_i} where the round syncs (FedAvg), else None.
        sync_rows: [...] which rows sync when ``sync`` differs across a batch (None: all of them).
        mig_bits: |delta_{j_i} - delta_{prev_i}| when migration is charged and some cut moves, else None.
        mig_up: True where the blocks are uploaded (the cut moved towards the input).
        server_client_s: [..., N] each client's own server time with ``round_structure: per-device``
            (the round is the slowest device's chain, ``server_s`` its sum), else None.
    """

    client_fwd_s: np.ndarray
    client_bwd_s: np.ndarray
    broadcast_s: np.ndarray | float
    up_bits: np.ndarray
    dn_bits: np.ndarray
    server_s: np.ndarray
    sync_bits: np.ndarray | None = None
    sync_rows: np.ndarray | None = None
    mig_bits: np.ndarray | None = None
    mig_up: np.ndarray | None = None
    server_client_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        if np.ndim(self.broadcast_s) == 0 and self.broadcast_s == 0.0:
            self.dn_off = self.client_bwd_s
        else:
            self.dn_off = self.client_bwd_s + np.asarray(self.broadcast_s)[..., None]

    @property
    def up_off(self) -> np.ndarray:
        return self.client_fwd_s

    def uplink_times(self, rate_up: np.ndarray) -> np.ndarray:
        """tF_i + tU_i, [..., N]."""
        return self.client_fwd_s + self.up_bits / rate_up

    def downlink_times(self, rate_down: np.ndarray) -> np.ndarray:
        """tD_i + tB_i, [..., N]."""
        return self.dn_off + self.dn_bits / rate_down

    def extra_terms(self, rate_up: np.ndarray, rate_down: np.ndarray) -> list[np.ndarray]:
        """Per-client sync (upload, download) and migration times [..., N]; each enters the total
        through its maximum over clients."""
        out = []
        if self.sync_bits is not None:
            up, down = self.sync_bits / rate_up, self.sync_bits / rate_down
            if self.sync_rows is not None:
                rows = self.sync_rows[..., None]
                up, down = np.where(rows, up, 0.0), np.where(rows, down, 0.0)
            out += [up, down]
        if self.mig_bits is not None:
            out.append(self.mig_bits / np.where(self.mig_up, rate_up, rate_down))
        return out

    def total(self, rate_up: np.ndarray, rate_down: np.ndarray) -> np.ndarray:
        """Round latency, s: the cut axes broadcast against the rate axes, minus the client axis."""
        if self.server_client_s is not None:
            t = (self.uplink_times(rate_up) + self.server_client_s + self.downlink_times(rate_down)).max(axis=-1)
        else:
            t = (self.uplink_times(rate_up).max(axis=-1) + self.server_s
                 + self.downlink_times(rate_down).max(axis=-1))
        for term in self.extra_terms(rate_up, rate_down):
            t = t + term.max(axis=-1)
        return t

    def latency(self, rate_up: np.ndarray, rate_down: np.ndarray) -> Latency:
        """The full breakdown of ``total`` (phases, per-client times and rates). With the per-device
        round structure the phases are those of the slowest device (they still sum to the total)."""
        t_up = self.up_bits / rate_up
        t_dn = self.dn_bits / rate_down
        up_i = self.client_fwd_s + t_up
        dn_i = self.dn_off + t_dn
        if self.server_client_s is not None:
            chain = up_i + self.server_client_s + dn_i
            slowest = np.expand_dims(np.argmax(chain, axis=-1), -1)
            uplink_phase = np.take_along_axis(np.broadcast_to(up_i, chain.shape), slowest, -1)[..., 0]
            server = np.take_along_axis(np.broadcast_to(self.server_client_s, chain.shape), slowest, -1)[..., 0]
            downlink_phase = np.take_along_axis(np.broadcast_to(dn_i, chain.shape), slowest, -1)[..., 0]
            total = chain.max(axis=-1)
        else:
            uplink_phase = up_i.max(axis=-1)
            downlink_phase = dn_i.max(axis=-1)
            server = self.server_s
            total = uplink_phase + self.server_s + downlink_phase
        zero = np.zeros_like(total)
        sync = migration = zero
        extra = [term.max(axis=-1) for term in self.extra_terms(rate_up, rate_down)]
        for term in extra:
            total = total + term
        if self.sync_bits is not None:
            sync = extra[0] + extra[1]
        if self.mig_bits is not None:
            migration = extra[-1]
        if not (np.ndim(self.broadcast_s) == 0 and self.broadcast_s == 0.0):
            t_dn = t_dn + np.asarray(self.broadcast_s)[..., None]
        return Latency(total, uplink_phase, np.broadcast_to(server, np.shape(total)), downlink_phase,
                       sync, migration, np.broadcast_to(self.client_fwd_s, t_up.shape), t_up, t_dn,
                       np.broadcast_to(self.client_bwd_s, t_dn.shape), rate_up, rate_down)


def server_time(tables: SchemeTables, cut: np.ndarray) -> np.ndarray:
    """TsF + TsB of cuts [..., N], s: every client's rows forward, (b - m) of them backward per
    client, and EPSL's m averaged rows forward and backward once at the common cut."""
    server_fwd = tables.server_fwd_flops[cut].sum(axis=-1)
    server_bwd = tables.server_bwd_scale * tables.server_bwd_flops[cut].sum(axis=-1)
    if tables.server_shared_bwd_flops is not None:
        server_fwd = server_fwd + tables.server_shared_fwd_flops[cut[..., 0]]
        server_bwd = server_bwd + tables.server_shared_bwd_flops[cut[..., 0]]
    return (server_fwd + server_bwd) / tables.server_flops


def server_time_per_client(tables: SchemeTables, cut: np.ndarray) -> np.ndarray:
    """[..., N] the server's time on each client's rows alone, s (``round_structure: per-device``, phi = 0)."""
    return (tables.server_fwd_flops[cut] + tables.server_bwd_flops[cut]) / tables.server_flops


def cut_terms(tables: SchemeTables, cut: np.ndarray, client_flops: np.ndarray,
              broadcast_rate: np.ndarray | float | None = None, prev_cut: np.ndarray | None = None,
              sync: np.ndarray | bool = False, memory_bytes: np.ndarray | None = None) -> CutTerms:
    """The rate-independent terms of the round latency for cuts ``cut`` [..., N].

    Args:
        tables: the scenario's per-cut tables.
        cut: [..., N] int cuts (equal along N for a common cut; the server's aggregated rows are
            back-propagated at ``cut[..., 0]``).
        client_flops: [..., N] compute rates, FLOP/s.
        broadcast_rate: [...] R_bc, bit/s (needed when the scheme broadcasts).
        prev_cut: [..., N] the previous round's cuts, for migration (None: no previous round; in a
            batch, rows without a previous round pass their current cut).
        sync: whether the round syncs (FedAvg), a bool or [...] per row.
        memory_bytes: [..., N] client memory caps: a client whose cut needs more never finishes
            (infinite forward time). None: not checked.
    """
    cut = np.asarray(cut)
    t_fwd = tables.client_fwd_flops[cut] / client_flops
    if memory_bytes is not None:
        over = tables.client_memory_bytes[cut] > memory_bytes
        if over.any():
            t_fwd = np.where(over, np.inf, t_fwd)
    t_bwd = tables.client_bwd_flops[cut] / client_flops
    server_s = server_time(tables, cut)
    broadcast_s = 0.0
    if tables.dn_broadcast_bits is not None:
        if broadcast_rate is None:
            raise ValueError("cut_terms: the scheme broadcasts part of the downlink; pass broadcast_rate")
        broadcast_s = tables.dn_broadcast_bits[cut[..., 0]] / broadcast_rate
    delta = tables.param_bits[cut]
    sync_bits = sync_rows = None
    if np.ndim(sync) == 0:
        if sync:
            sync_bits = delta
    elif np.any(sync):
        sync_bits, sync_rows = delta, None if np.all(sync) else np.asarray(sync, dtype=bool)
    mig_bits = mig_up = None
    if prev_cut is not None and tables.migration:
        prev = np.asarray(prev_cut)
        moved = np.abs(delta - tables.param_bits[prev])
        if np.any(moved > 0):
            mig_bits, mig_up = moved, np.broadcast_to(cut < prev, moved.shape)
    chain = server_time_per_client(tables, cut) if tables.per_device_chain else None
    return CutTerms(t_fwd, t_bwd, broadcast_s, tables.up_bits[cut], tables.dn_unicast_bits[cut], server_s,
                    sync_bits, sync_rows, mig_bits, mig_up, chain)


def latency_from_rates(tables: SchemeTables, cut: np.ndarray, rate_up: np.ndarray, rate_down: np.ndarray,
                       client_flops: np.ndarray, broadcast_rate: np.ndarray | float | None = None,
                       prev_cut: np.ndarray | None = None, sync: np.ndarray | bool = False,
                       memory_bytes: np.ndarray | None = None) -> Latency:
    """The round latency of cuts ``cut`` [..., N] at per-client rates [..., N] (see ``cut_terms``)."""
    return cut_terms(tables, cut, client_flops, broadcast_rate, prev_cut, sync, memory_bytes).latency(rate_up,
                                                                                                       rate_down)


# ---------------------------------------------------------------------------------------------------
# the scenario's model

class LatencyModel:
    """A scenario's profile, per-cut tables and radio constants, ready to price allocations.

    Args:
        scenario: the validated scenario (scheme, phi, batch, downlink mode, radio constants).
        profile: the model profile (per-cut FLOPs and bits).
        backend: price batches with the compiled kernel (``latency_kernels``) or numpy; bitwise
            the same results (``psl_env.backend``).
        check_caps: refuse memory caps that fit no cut (``ScenarioError``).

    Attributes:
        tables: the ``SchemeTables``; radio: the ``Radio``.
    """

    def __init__(self, scenario: Scenario, profile: ModelProfile, backend: str = "auto",
                 check_caps: bool = True) -> None:
        self.scenario = scenario
        self.profile = profile
        self.tables = SchemeTables.build(scenario, profile)
        self.radio = Radio.of(scenario)
        dev = scenario.devices
        if not check_caps:  # e.g. a round trace: the memory caps are the record's, not the scenario's
            pass
        elif dev.kind == "classes":
            self.tables.check_caps([c["memory_bytes"] for c in dev.classes], "devices.classes.memory_bytes",
                                   [c["name"] for c in dev.classes])
        else:
            self.tables.check_caps(dev.memory_bytes[1], "devices.memory_bytes")
        self.num_clients = scenario.num_clients
        self.num_subchannels = scenario.num_subchannels
        self.num_blocks = profile.num_blocks
        self.batch_size = scenario.batch_size
        self.common_cut = self.tables.common_cut
        self.kernels = load_kernels(backend, "psl_env.system.latency_kernels")
        t = self.tables
        # the server time of each common cut j, as ``server_time`` computes it for a row of N cuts j
        all_cuts = np.repeat(np.arange(self.num_blocks + 1)[:, None], self.num_clients, axis=1)
        self._server_common = np.ascontiguousarray(server_time(t, all_cuts)) if t.common_cut else None
        no_bc = np.zeros(self.num_blocks + 1)
        self._kernel_tables = np.ascontiguousarray(np.stack([
            t.client_fwd_flops, t.client_bwd_flops, t.up_bits, t.dn_unicast_bits,
            no_bc if t.dn_broadcast_bits is None else t.dn_broadcast_bits, t.param_bits, t.client_memory_bytes]),
            dtype=np.float64)
        self._bases: dict[tuple, tuple] = {}
        self._no_chain = np.zeros((1, 1))

    @property
    def uses_broadcast(self) -> bool:
        return self.tables.uses_broadcast

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["kernels"] = "auto" if self.kernels is not None else "numpy"  # a module: loaded again
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kernels = load_kernels(state["kernels"], "psl_env.system.latency_kernels")

    def broadcast_rate(self, gains: np.ndarray) -> np.ndarray | None:
        """R_bc of gains [..., N, M] when the scheme broadcasts (else None)."""
        return self.radio.broadcast_rate(gains) if self.tables.uses_broadcast else None

    def price(self, gains: np.ndarray, client_flops: np.ndarray, cut: np.ndarray, owner: np.ndarray,
              power_w: np.ndarray, prev_cut: np.ndarray | None = None, sync: np.ndarray | bool = False,
              broadcast_rate: np.ndarray | float | None = None, gains_rows: np.ndarray | None = None,
              memory_bytes: np.ndarray | None = None) -> Latency:
        """The latency of allocations on gains [..., N, M] (``broadcast_rate``: R_bc if known).

        ``prev_cut``: the previous round's cuts [..., N] (None: no previous round; in a batch, rows
        without one pass their current cut). ``gains_rows`` [R]: with gains [K, N, M], row r of the
        allocations is priced on ``gains[gains_rows[r]]`` (several allocations of one round at once);
        the per-row arguments (``client_flops``, ``sync``, ``broadcast_rate``) then have R rows too.
        ``memory_bytes`` [..., N]: the clients' memory caps (a cut over a cap never finishes).
        """
        with np.errstate(divide="ignore", invalid="ignore"):  # a client without a rate waits forever
            if self.kernels is not None and gains.ndim == 3 and owner.ndim == 2:
                return self._price_compiled(gains, client_flops, cut, owner, power_w, prev_cut, sync, broadcast_rate,
                                            gains_rows, memory_bytes)
            if gains_rows is not None:
                gains = gains[gains_rows]
            if broadcast_rate is None and self.tables.uses_broadcast:
                broadcast_rate = self.radio.broadcast_rate(gains)
            up, down = rates(self.radio, gains, owner, power_w)
            return latency_from_rates(self.tables, cut, up, down, client_flops, broadcast_rate, prev_cut, sync,
                                      memory_bytes)

    def _price_compiled(self, gains, client_flops, cut, owner, power_w, prev_cut, sync, broadcast_rate,
                        gains_rows, memory_bytes) -> Latency:
        """``price`` of a batch with the compiled kernel (the spectral efficiencies and the server sums
        with numpy, see ``latency_kernels``)."""
        k, n, m = gains.shape
        rows = owner.shape[0]
        key = (k, rows, None if gains_rows is None else id(gains_rows))
        cached = self._bases.get(key)
        if cached is None or cached[0] is not gains_rows:  # (the same array object, not a reused id)
            env = np.arange(rows) if gains_rows is None else np.asarray(gains_rows)
            cached = self._bases[key] = (gains_rows, env[:, None] * (n * m) + np.arange(m)[None, :],
                                         np.full((rows, n), np.inf))
        _, base, no_caps = cached
        g_sel = gains.reshape(-1).take(base + np.maximum(owner, 0) * m)
        radio = self.radio
        up_se = radio.uplink_se(g_sel, power_w)
        down_se = radio.downlink_se(g_sel)
        cut = np.ascontiguousarray(cut, dtype=np.int64)
        server_s = self._server_common[cut[:, 0]] if self._server_common is not None else server_time(self.tables, cut)
        if prev_cut is None:
            has_prev, prev = np.zeros(rows, dtype=bool), cut
        else:
            has_prev, prev = np.ones(rows, dtype=bool), np.ascontiguousarray(prev_cut, dtype=np.int64)
        sync_rows = np.empty(rows, dtype=bool)
        sync_rows[:] = sync
        r_bc = np.ones(rows)
        if self.tables.uses_broadcast:
            if broadcast_rate is None:
                broadcast_rate = radio.broadcast_rate(gains if gains_rows is None else gains[gains_rows])
            r_bc[:] = broadcast_rate
        t = self.tables
        memory = no_caps if memory_bytes is None else np.ascontiguousarray(memory_bytes, dtype=np.float64)
        server_client = server_time_per_client(t, cut) if t.per_device_chain else self._no_chain
        total = np.empty(rows)
        phases = np.empty((5, rows))
        client = np.empty((6, rows, n))
        self.kernels.price_rows(np.ascontiguousarray(owner, dtype=np.int64), up_se, down_se, cut,
                                np.ascontiguousarray(client_flops, dtype=np.float64), memory, prev, has_prev, sync_rows,
                                r_bc, np.ascontiguousarray(server_s, dtype=np.float64), server_client,
                                self._kernel_tables, radio.bw_hz, t.uses_broadcast, t.migration, t.per_device_chain,
                                total, phases, client)
        return Latency(total, *phases, *client)

    def evaluate(self, state: RoundState, alloc: Allocation) -> Latency:
        """The latency of one round on its true gains."""
        return self.price(state.gains, state.client_flops, alloc.cut, alloc.owner, alloc.power_w, state.prev_cut,
                          state.sync, memory_bytes=state.memory_bytes).scalar()

    def expected(self, obs: Observation, alloc: Allocation) -> Latency:
        """The latency of one round as a decision expects it (on the observed gains)."""
        return self.price(obs.gains, obs.client_flops, alloc.cut, alloc.owner, alloc.power_w,
                          obs.prev_cut if obs.has_prev else None, obs.sync, obs.broadcast_rate,
                          memory_bytes=obs.memory_bytes).scalar()


def round_latency(state: RoundState, alloc: Allocation, model: LatencyModel) -> Latency:
    """The round latency of ``alloc`` on ``state``'s true gains."""
    return model.evaluate(state, alloc)


__all__ = ["PER_CLIENT", "PHASES", "PHASE_KEYS", "CutTerms", "Latency", "LatencyModel", "cut_terms", "dbm_to_w",
           "latency_from_rates", "rates", "round_latency", "server_time"]
