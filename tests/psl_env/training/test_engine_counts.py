"""The engine's measured tensors and server rows against the latency model's per-cut charges.

For every scheme the engine runs real rounds; what it reports (bits on the air at
``bits_per_element``, server rows forward and backward, sync and migration bits) must equal what
``SchemeTables`` and ``cut_terms`` charge for the same cuts, and the server forward measured by
torch's ``FlopCounterMode`` must agree with the profile's FLOPs (docs/training.md).
"""

from __future__ import annotations


import numpy as np
import pytest
from torch.utils.flop_counter import FlopCounterMode

from tests.psl_env.training.helpers import scenario_from
from psl_env.models import build_model, load_profile
from psl_env.models.profiler import measure_blocks
from psl_env.system.latency import cut_terms, server_time
from psl_env.system.scheme import SchemeTables
from psl_env.training.engine import RoundResult, SplitTrainingEngine

BASE = {"model": "small-cnn", "num_clients": 4, "num_subchannels": 8, "batch_size": 8, "scheme": "psl",
        "phi": 0.0, "seed": 3, "training": {"dataset": "digits", "eval_every": 1000000, "lr": 0.05,
                                           "momentum": 0.9}}

# elements of one sample's activation at cuts 0..5 of the small CNN on 1x8x8 digits, by hand:
# input 1x8x8, conv1 16x8x8, conv2+pool 16x4x4, conv3 32x4x4, conv4+pool 32x2x2, logits 10
ELEMENTS = np.array([64, 1024, 256, 512, 128, 10])

# name: (scenario overrides, the cuts of successive rounds, m by hand)
CASES = {
    "psl": ({"scheme": "psl", "training": {"local_iterations": 2}}, [2, 2, 3], 0),
    "epsl-half": ({"scheme": "epsl", "phi": 0.5}, [2, 3, 3, 1], 4),
    # phi b = 2.4: m = 2; at 16 bits per element
    "epsl-uneven-16bit": ({"scheme": "epsl", "phi": 0.3, "bits_per_element": 16}, [3, 1], 2),
    # phi b = 2.5: round half to even gives 2 (rounding half up would give 3)
    "epsl-half-to-even": ({"scheme": "epsl", "phi": 0.25, "batch_size": 10}, [2, 4], 2),
    "epsl-unicast": ({"scheme": "epsl", "phi": 0.5, "downlink": "unicast"}, [2, 3], 4),
    "sfl": ({"scheme": "sfl"}, [3, 3, 1], 0),
    "sfl-every-2": ({"scheme": "sfl", "sync_period": 2}, [2, 2, 2, 4], 0),
    "edgesplit": ({"scheme": "edgesplit"}, [[1, 3, 2, 4], [1, 3, 2, 4], [2, 2, 4, 1]], 0),
    "edgesplit-16bit": ({"scheme": "edgesplit", "bits_per_element": 16}, [[4, 1, 1, 2], [3, 1, 2, 2]], 0),
}


def scenario(over: dict):
    return scenario_from(BASE, over)


def cut_array(cut, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(cut, dtype=np.int64), (n,)).copy()


def server_flops(res: RoundResult, profile) -> tuple[float, float]:
    """(forward, backward) FLOPs of the engine's server rows at the profile's per-sample FLOPs."""
    rho, varpi = profile.fwd_flops, profile.bwd_flops
    return (float(res.server_forward_rows_by_cut @ (rho[-1] - rho)),
            float(res.server_backward_rows_by_cut @ (varpi[-1] - varpi)))


def charged_server_fwd(tables: SchemeTables, cut: np.ndarray) -> float:
    """The server forward FLOPs the tables charge: every client's rows plus EPSL's averaged rows."""
    shared = tables.server_shared_fwd_flops
    return float(tables.server_fwd_flops[cut].sum() + (shared[cut[0]] if shared is not None else 0.0))


@pytest.fixture(scope="module")
def per_block_flops() -> tuple[np.ndarray, np.ndarray]:
    """[L] forward FLOPs per sample of each small-CNN block: (matmul, everything else), profiler conventions."""
    blocks = measure_blocks(build_model("small-cnn", (1, 8, 8), 10))
    matmul = np.array([b.fwd_flops.get("matmul", 0.0) for b in blocks])
    return matmul, np.array([b.total_fwd_flops for b in blocks]) - matmul


def to_output(per_block: np.ndarray) -> np.ndarray:
    """[L + 1] per-sample FLOPs of blocks j+1..L for every cut j."""
    return np.concatenate([np.cumsum(per_block[::-1])[::-1], [0.0]])


def counted(engine: SplitTrainingEngine) -> dict[str, list[int]]:
    """Wrap the engine's server forward and backward in torch's FlopCounterMode; FLOPs per call."""
    out: dict[str, list[int]] = {"forward": [], "backward": []}
    for key, name in (("forward", "_server_forward"), ("backward", "_server_backward")):
        inner = getattr(engine, name)

        def wrapped(*args, inner=inner, key=key):
            with FlopCounterMode(display=False) as counter:
                result = inner(*args)
            out[key].append(counter.get_total_flops())
            return result
        setattr(engine, name, wrapped)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_engine_counts_equal_the_latency_tables(case):
    over, cuts, m = CASES[case]
    s = scenario(over)
    n, b, width = s.num_clients, s.batch_size, s.bits_per_element
    eng = SplitTrainingEngine(s, initial_cut=cuts[0])
    profile = load_profile(s.model)
    tables = SchemeTables.build(s, profile)
    assert eng.aggregated_rows == tables.aggregated_rows == m
    period = s.effective_sync_period
    prev = None
    moved_once = synced_once = False
    for cut in cuts:
        res = eng.step(cut)
        cut = cut_array(cut, n)
        terms = cut_terms(tables, cut, np.ones(n), broadcast_rate=1.0, prev_cut=prev, sync=res.synced)

        # bits on the air, per iteration: by hand, then against the tables' charges
        assert res.aggregated_rows == m
        broadcast = s.downlink == "broadcast" and m > 0
        assert np.array_equal(res.uplink_bits, b * ELEMENTS[cut] * width)
        assert np.array_equal(res.downlink_unicast_bits, (b - m if broadcast else b) * ELEMENTS[cut] * width)
        assert res.downlink_broadcast_bits == (m * ELEMENTS[cut[0]] * width if broadcast else 0.0)
        assert np.array_equal(res.uplink_bits, terms.up_bits)
        assert np.array_equal(res.downlink_unicast_bits, terms.dn_bits)
        expect_bc = tables.dn_broadcast_bits[cut[0]] if tables.dn_broadcast_bits is not None else 0.0
        assert res.downlink_broadcast_bits == expect_bc

        # sync: the engine's schedule and bits, against what the latency charges for a syncing round
        assert res.synced == (period > 0 and res.round % period == 0)
        if res.synced:
            synced_once = True
            assert np.array_equal(res.sync_bits, terms.sync_bits)
            assert np.array_equal(res.sync_bits, tables.param_bits[cut])
        else:
            assert terms.sync_bits is None and not res.sync_bits.any()

        # migration: |delta_j' - delta_j| per client, in parameter bits (their own 32-bit width)
        if terms.mig_bits is not None:
            moved_once = True
            assert np.array_equal(res.migration_bits, terms.mig_bits)
        else:
            assert not res.migration_bits.any()

        # server rows, and their FLOPs at the profile's per-sample figures against the tables'
        rows_fwd = np.bincount(cut, minlength=eng.num_blocks + 1) * b
        rows_fwd[cut[0]] += m
        rows_bwd = rows_fwd.copy()
        rows_bwd[cut[0]] -= n * m
        assert np.array_equal(res.server_forward_rows_by_cut, rows_fwd)
        assert np.array_equal(res.server_backward_rows_by_cut, rows_bwd)
        assert res.server_forward_rows == n * b + m and res.server_backward_rows == m + n * (b - m)
        fwd, bwd = server_flops(res, profile)
        assert fwd == pytest.approx(charged_server_fwd(tables, cut), rel=1e-12)
        assert fwd + bwd == pytest.approx(float(server_time(tables, cut)) * tables.server_flops, rel=1e-12)
        prev = cut
    assert moved_once == (len({tuple(cut_array(c, n)) for c in cuts}) > 1)
    assert synced_once == (period > 0 and len(cuts) >= period)


@pytest.mark.parametrize("case", list(CASES))
def test_server_flops_measured_by_torch_agree_with_the_charge(case, per_block_flops):
    """torch's FlopCounterMode counts matmul-like ops only (conv, linear without bias): it must
    equal the profiler's matmul FLOPs of the engine's server rows exactly, and the charged forward
    exceeds it only by the profiler's bias, ReLU and pooling FLOPs (about 0.5-0.8% at any cut of
    the small CNN; the whole model's non-matmul share, 1.0%, bounds it)."""
    over, cuts, m = CASES[case]
    s = scenario(over)
    eng = SplitTrainingEngine(s, initial_cut=cuts[0])
    flops = counted(eng)
    profile = load_profile(s.model)
    tables = SchemeTables.build(s, profile)
    kinds = profile.extra["fwd_flops_by_kind"]
    tolerance = 1.0 - kinds["matmul"] / sum(kinds.values())
    matmul, other = (to_output(x) for x in per_block_flops)
    iterations = s.training.local_iterations
    for t, cut in enumerate(cuts):
        res = eng.step(cut)
        cut = cut_array(cut, s.num_clients)
        assert len(flops["forward"]) == len(flops["backward"]) == (t + 1) * iterations
        measured = flops["forward"][-1]
        charged = charged_server_fwd(tables, cut)
        assert measured == res.server_forward_rows_by_cut @ matmul
        assert charged - measured == pytest.approx(float(res.server_forward_rows_by_cut @ other), rel=1e-12)
        assert 0.0 < 1.0 - measured / charged < tolerance
        # autograd traverses every forward row, also the N*m whose output gradient is zeroed (the
        # charge counts only m + N(b - m) rows: a real implementation skips them)
        assert flops["backward"][-1] == 2 * res.server_forward_rows_by_cut @ matmul
    assert tolerance == pytest.approx(0.0100, abs=5e-4)


def test_ignored_downlink_still_reports_what_the_engine_sends():
    """``downlink: ignore`` drops the gradients from the latency, not from the training."""
    s = scenario({"scheme": "epsl", "phi": 0.5, "downlink": "ignore"})
    tables = SchemeTables.build(s, load_profile(s.model))
    res = SplitTrainingEngine(s, initial_cut=2).step(2)
    assert not tables.dn_unicast_bits.any() and tables.dn_broadcast_bits is None
    assert np.array_equal(res.downlink_unicast_bits, np.full(4, 8 * ELEMENTS[2] * 32.0))
    assert res.downlink_broadcast_bits == 0.0
