"""The wire format of activations and gradients at bits_per_element, and the in-process cast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psl_env.system.scenario import load_scenario
from psl_env.training import wire
from psl_env.training.engine import SplitTrainingEngine


@pytest.mark.parametrize("bits,dtype,size", [(8, torch.int8, 1), (16, torch.float16, 2), (32, torch.float32, 4),
                                             (64, torch.float64, 8)])
def test_payload_type_and_bytes(bits, dtype, size):
    x = torch.randn(3, 5)
    payload, scale = wire.encode(x, bits)
    assert payload.dtype == dtype and payload.shape == x.shape
    assert payload.numel() * payload.element_size() == wire.payload_bytes(15, bits) == 15 * size
    assert (scale is not None) == wire.has_scale(bits) == (bits == 8)
    grad, _ = wire.encode(x, bits, gradient=True)
    assert grad.dtype == (torch.bfloat16 if bits == 16 else dtype)  # same width, float32's range at 16


def test_roundtrip_error_bounds():
    x = torch.randn(1000) * 3
    assert torch.equal(wire.roundtrip(x, 32), x)
    assert torch.equal(wire.roundtrip(x, 64), x)  # widening is exact
    assert torch.equal(wire.roundtrip(x, 16), x.half().float())
    assert torch.equal(wire.roundtrip(x, 16, gradient=True), x.bfloat16().float())
    tiny = torch.tensor([2e-8, 1e-6])  # cut-layer gradients this small survive at 16 bits
    assert torch.equal(wire.roundtrip(tiny, 16, gradient=True), tiny.bfloat16().float())
    assert wire.roundtrip(tiny, 16)[0] == 0  # as float16 the first would flush to zero
    q8 = wire.roundtrip(x, 8)
    step = float(x.abs().max()) / 127
    assert float((q8 - x).abs().max()) <= step / 2 + 1e-6  # round to nearest level
    assert float(q8.abs().max()) == pytest.approx(float(x.abs().max()), rel=1e-6)  # the peak is a level
    assert torch.equal(wire.roundtrip(torch.zeros(4), 8), torch.zeros(4))  # no division by a zero scale


def test_widths_without_a_wire_type_are_refused():
    with pytest.raises(ValueError, match="bits_per_element: 12 .* allowed: \\[8, 16, 32, 64\\]"):
        wire.check_bits(12)


def _engine(bits: int, cast: bool) -> SplitTrainingEngine:
    s = load_scenario({"model": "small-cnn", "num_clients": 3, "num_subchannels": 6, "batch_size": 8,
                       "scheme": "epsl", "phi": 0.5, "seed": 1, "bits_per_element": bits,
                       "training": {"eval_every": 1000}})
    return SplitTrainingEngine(s, initial_cut=2, wire_cast=cast)


def test_wire_cast_is_a_no_op_at_32_bits_and_changes_training_below():
    plain, cast32 = _engine(32, False), _engine(32, True)
    half, eight = _engine(16, True), _engine(8, True)
    losses = {k: [] for k in ("plain", "cast32", "half", "eight")}
    for _ in range(5):
        for key, eng in (("plain", plain), ("cast32", cast32), ("half", half), ("eight", eight)):
            losses[key].append(eng.step().loss)
    assert losses["plain"] == losses["cast32"]
    for key in ("half", "eight"):
        assert losses[key] != losses["plain"]  # the cast is real
        assert np.allclose(losses[key], losses["plain"], rtol=0.05)  # and small on this model
    # the counted bits do not depend on the cast
    res_plain, res_half = plain.step(), _engine(16, False).step()
    assert np.array_equal(res_plain.uplink_bits * 16 / 32, res_half.uplink_bits)
