"""Compiled (numba) pricing of K rounds: ``rates`` + ``latency_from_rates`` in one pass per row.

The numpy functions of ``latency.py`` are the reference; this kernel repeats their arithmetic in
their order, so the results are bitwise equal (a test checks):

- the spectral efficiencies (the logarithms) stay with numpy (its SIMD ``log2`` may differ from a
  compiled one in the last bit) and are passed in;
- per-client rates sum them in subchannel order, as ``np.bincount`` does;
- the server's compute time, a sum over clients (numpy sums pairwise), is passed in too;
- maxima over clients propagate NaN, as ``np.maximum.reduce`` does; the sync and migration terms
  enter a row's total whenever some row of the batch has them (adding a zero leaves the others).

Loaded through ``psl_env.backend.load_kernels``; numba is optional (``pip install 'psl-gym[fast]'``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _max_nan(cur, v):  # pragma: no cover - compiled
    """max(cur, v) with NaN winning, as numpy's maximum."""
    return v if (v > cur or v != v) else cur


# error_model="numpy": x / 0 gives inf or NaN as in numpy (a client without a rate waits forever)
@numba.njit(cache=True, nogil=True, error_model="numpy")
def price_rows(owner, up_se, down_se, cut, flops, memory, prev, has_prev, sync, r_bc, server_s, server_client, tables,
               bw, use_bc, migration, chain, total, phases, client):  # pragma: no cover
    """Price R rounds.

    Args:
        owner: [R, M] int64 client of each subchannel (-1 unused).
        up_se, down_se: [R, M] uplink / downlink spectral efficiency of each subchannel for its owner.
        cut, prev: [R, N] int64 cuts and previous cuts (read where ``has_prev``); flops: [R, N] FLOP/s.
        memory: [R, N] the clients' memory caps, bytes (a cut needing more never finishes).
        has_prev, sync: [R] bool; r_bc: [R] broadcast rates (read with ``use_bc``); server_s: [R] s.
        server_client: [R, N] each client's own server time (read with ``chain``: the round is the
            slowest device's chain, ``round_structure: per-device``).
        tables: [7, L + 1] the ``SchemeTables`` arrays: client forward and backward FLOPs, uplink,
            unicast and broadcast downlink bits, parameter bits, client memory.
        bw: subchannel bandwidth, Hz. migration: whether cut changes are charged.
        total: [R] out. phases: [5, R] out (uplink, server, downlink, sync, migration).
        client: [6, R, N] out (client fwd, uplink, downlink, client bwd, uplink rate, downlink rate).
    """
    rows, n = cut.shape
    m = owner.shape[1]
    fwd_tab, bwd_tab, up_tab, dn_tab, bc_tab, param_tab = tables[0], tables[1], tables[2], tables[3], tables[4], tables[5]
    mem_tab = tables[6]
    any_sync = False
    any_move = False
    for r in range(rows):
        any_sync = any_sync or sync[r]
        if migration and has_prev[r]:
            for i in range(n):
                if param_tab[cut[r, i]] != param_tab[prev[r, i]]:
                    any_move = True
    up = np.empty(n)
    down = np.empty(n)
    for r in range(rows):
        up[:] = 0.0
        down[:] = 0.0
        for ch in range(m):
            o = owner[r, ch]
            if o >= 0:
                up[o] += up_se[r, ch]
                down[o] += down_se[r, ch]
        bc = bc_tab[cut[r, 0]] / r_bc[r] if use_bc else 0.0
        up_phase = -np.inf
        dn_phase = -np.inf
        slowest = -np.inf
        server = server_s[r]
        for i in range(n):
            c = cut[r, i]
            ru = up[i] * bw
            rd = down[i] * bw
            t_fwd = np.inf if mem_tab[c] > memory[r, i] else fwd_tab[c] / flops[r, i]
            t_bwd = bwd_tab[c] / flops[r, i]
            t_up = up_tab[c] / ru
            t_dn = dn_tab[c] / rd
            up_i = t_fwd + t_up
            dn_i = (t_bwd + bc) + t_dn if use_bc else t_bwd + t_dn
            if chain:  # the phases of the slowest device (numpy's argmax: the first maximum, or NaN)
                own = (up_i + server_client[r, i]) + dn_i
                if own > slowest or (own != own and slowest == slowest):
                    slowest = own
                    up_phase, dn_phase, server = up_i, dn_i, server_client[r, i]
            else:
                up_phase = _max_nan(up_phase, up_i)
                dn_phase = _max_nan(dn_phase, dn_i)
            client[0, r, i] = t_fwd
            client[1, r, i] = t_up
            client[2, r, i] = t_dn + bc if use_bc else t_dn
            client[3, r, i] = t_bwd
            client[4, r, i] = ru
            client[5, r, i] = rd
        t = slowest if chain else up_phase + server + dn_phase
        sync_s = 0.0
        if any_sync:
            s_up = -np.inf
            s_dn = -np.inf
            for i in range(n):
                delta = param_tab[cut[r, i]]
                s_up = _max_nan(s_up, delta / client[4, r, i] if sync[r] else 0.0)
                s_dn = _max_nan(s_dn, delta / client[5, r, i] if sync[r] else 0.0)
            t = t + s_up
            t = t + s_dn
            sync_s = s_up + s_dn
        mig = 0.0
        if any_move:
            mig = -np.inf
            for i in range(n):
                c = cut[r, i]
                p = prev[r, i] if has_prev[r] else c
                moved = abs(param_tab[c] - param_tab[p])
                mig = _max_nan(mig, moved / (client[4, r, i] if c < p else client[5, r, i]))
            t = t + mig
        total[r] = t
        phases[0, r] = up_phase
        phases[1, r] = server
        phases[2, r] = dn_phase
        phases[3, r] = sync_s
        phases[4, r] = mig


__all__ = ["price_rows"]
