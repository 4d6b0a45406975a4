"""The compiled pricing kernel equals the numpy latency formula, bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psl_env.models.profile import load_profile
from psl_env.system.latency import LatencyModel
from psl_env.system.scenario import build_scenario

pytest.importorskip("numba")

SCHEMES = [("psl", 0.0, "broadcast"), ("epsl", 0.5, "broadcast"), ("epsl", 1.0, "broadcast"),
           ("epsl", 0.3, "unicast"), ("sfl", 0.0, "ignore"), ("edgesplit", 0.0, "unicast"),
           ("edgesplit", 0.0, "ignore")]


def models(scheme, phi, downlink, n, m, migration=True):
    cfg = {"num_clients": n, "num_subchannels": m, "scheme": scheme, "phi": phi, "downlink": downlink,
           "model": "small-cnn", "migration": migration}
    scenario = build_scenario(cfg)
    profile = load_profile("small-cnn")
    return LatencyModel(scenario, profile, "numba"), LatencyModel(scenario, profile, "numpy")


@pytest.mark.parametrize("scheme,phi,downlink", SCHEMES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.sampled_from([1, 2, 33]), n=st.integers(1, 5), extra=st.integers(0, 5),
       with_prev=st.sampled_from(["none", "some", "all"]), sync=st.sampled_from(["no", "mixed", "all"]),
       unused=st.booleans(), migration=st.booleans(), silent=st.booleans())
def test_compiled_price_equals_numpy(scheme, phi, downlink, seed, k, n, extra, with_prev, sync, unused, migration,
                                     silent):
    m = n + extra
    fast, ref = models(scheme, phi, downlink, n, m, migration)
    assert fast.kernels is not None and ref.kernels is None
    rng = np.random.default_rng(seed)
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-13, -8, (k, n, 1))
    flops = 10.0 ** rng.uniform(9, 12, (k, n))
    owner = np.concatenate([np.tile(np.arange(n), (k, 1)), rng.integers(-1 if unused else 0, n, (k, m - n))], axis=1)
    power = rng.uniform(0.0, 0.2, (k, m)) * (owner >= 0)
    if silent:  # client 0 sends with no power in some rounds: it never finishes (inf or NaN, as numpy says)
        power[(rng.random(k) < 0.5)[:, None] & (owner == 0)] = 0.0
    cuts = rng.integers(1, fast.num_blocks, (k, n))
    if fast.common_cut:
        cuts[:] = cuts[:, :1]
    prev = None
    if with_prev != "none":
        prev = rng.integers(1, fast.num_blocks, (k, n))
        if fast.common_cut:
            prev[:] = prev[:, :1]
        if with_prev == "some":
            prev = np.where(rng.random((k, 1)) < 0.5, prev, cuts)  # rows without a previous round
    rows = {"no": np.zeros(k, bool), "mixed": rng.random(k) < 0.5, "all": np.ones(k, bool)}[sync]
    a = fast.price(gains, flops, cuts, owner, power, prev, rows)
    b = ref.price(gains, flops, cuts, owner, power, prev, rows)
    for name in ("total", "uplink_phase", "server_compute", "downlink_phase", "sync", "migration", "client_fwd_s",
                 "uplink_s", "downlink_s", "client_bwd_s", "uplink_rate_bps", "downlink_rate_bps"):
        x, y = np.broadcast_to(getattr(a, name), np.shape(getattr(b, name))), getattr(b, name)
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_rows_priced_on_shared_gains():
    """``gains_rows``: several allocations of the same rounds in one batch, both backends alike."""
    fast, ref = models("epsl", 0.5, "broadcast", 3, 5)
    rng = np.random.default_rng(0)
    gains = rng.exponential(1e-10, (2, 3, 5))
    rows = np.array([0, 1, 0, 1])
    owner = np.array([[0, 1, 2, 0, 1]] * 4)
    power = rng.uniform(0.01, 0.1, (4, 5))
    args = (np.full((4, 3), 1e10), np.full((4, 3), 2), owner, power, None, False, None, rows)
    a, b = fast.price(gains, *args), ref.price(gains, *args)
    np.testing.assert_array_equal(a.total, b.total)
    alone = ref.price(gains[rows[2:]], np.full((2, 3), 1e10), np.full((2, 3), 2), owner[2:], power[2:])
    np.testing.assert_array_equal(b.total[2:], alone.total)


def test_compiled_price_is_used_for_batches_only():
    fast, _ = models("epsl", 0.5, "broadcast", 2, 3)
    gains = np.full((2, 3), 1e-10)
    one = fast.price(gains, np.full(2, 1e10), np.array([2, 2]), np.array([0, 1, 1]), np.full(3, 0.1))
    batch = fast.price(gains[None], np.full((1, 2), 1e10), np.array([[2, 2]]), np.array([[0, 1, 1]]),
                       np.full((1, 3), 0.1))
    assert float(one.total) == batch.total[0]
