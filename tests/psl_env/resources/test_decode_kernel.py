"""The compiled greedy decode (numba) equals the numpy reference (TabulatedGreedy + water_fill_owned)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psl_env.resources.greedy import gather_owned
from psl_env.resources.waterfill import water_fill_owned
from psl_env.envs.codecs import BoxCodec
from psl_env.envs.psl_env import PSLEnv

pytest.importorskip("numba")

SCENARIOS = ("epsl-resnet18", "edgesplit-vgg16", "small-exact")
_CODECS: dict = {}


def codec_for(scenario: str, downlink: str | None = None) -> BoxCodec:
    key = (scenario, downlink)
    if key not in _CODECS:
        overrides = {"downlink": downlink} if downlink else {}
        _CODECS[key] = PSLEnv(scenario=scenario, action_type="box", overrides=overrides).codec
    return _CODECS[key]


def random_rounds(codec: BoxCodec, seed: int, k: int):
    rng = np.random.default_rng(seed)
    n, m = codec.n, codec.m
    gains = rng.exponential(1.0, (k, n, m)) * 10.0 ** rng.uniform(-13, -9, (k, n, 1))
    budget = rng.uniform(0.05, 0.3, (k, n))
    flops = 10.0 ** rng.uniform(9.5, 11.5, (k, n))
    cut = rng.integers(1, codec.num_blocks, (k, n))
    if codec.model.common_cut:
        cut[:] = cut[:, :1]
    urgency = np.exp(rng.uniform(-2, 2, (k, n)))
    return gains, budget, flops, cut, urgency


@pytest.mark.parametrize("scenario,downlink", [(s, None) for s in SCENARIOS]
                         + [("epsl-resnet18", "unicast"), ("epsl-resnet18", "ignore")])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.sampled_from([1, 2, 257]))
def test_compiled_decode_equals_the_numpy_reference(scenario, downlink, seed, k):
    codec = codec_for(scenario, downlink)
    assert codec.compiled is not None
    gains, budget, flops, cut, urgency = random_rounds(codec, seed, k)
    owner, power = codec.compiled.decode(gains, budget, flops, cut, urgency)
    ref_owner = codec.greedy.owner(gains, budget, flops, cut, urgency)
    radio = codec.model.radio
    ref_power = water_fill_owned(ref_owner, radio.wf_noise_w / gather_owned(gains, ref_owner, True), budget, radio.link)
    np.testing.assert_array_equal(owner, ref_owner)
    np.testing.assert_array_equal(power, ref_power)  # add and divide only: bitwise, given the owners
    # rows are independent: a round alone decodes as in the batch
    alone_owner, alone_power = codec.compiled.decode(gains[-1:], budget[-1:], flops[-1:], cut[-1:], urgency[-1:])
    np.testing.assert_array_equal(alone_owner, owner[-1:])
    np.testing.assert_array_equal(alone_power, power[-1:])


def test_ties_follow_numpy_argmax():
    """Equal gains and equal times: the first client and the lower subchannel index win, as in numpy."""
    codec = codec_for("small-exact")
    k, n, m = 3, codec.n, codec.m
    gains = np.full((k, n, m), 1e-10)
    gains[1, :, ::2] = 2e-10
    budget = np.full((k, n), 0.1)
    flops = np.full((k, n), 1e10)
    cut = np.full((k, n), 2)
    urgency = np.ones((k, n))
    owner, power = codec.compiled.decode(gains, budget, flops, cut, urgency)
    ref = codec.greedy.owner(gains, budget, flops, cut, urgency)
    np.testing.assert_array_equal(owner, ref)
    for i in range(1, k):  # the one-round numpy path agrees too
        np.testing.assert_array_equal(codec.greedy.owner(gains[i:i + 1], budget[i:i + 1], flops[i:i + 1],
                                                         cut[i:i + 1], urgency[i:i + 1]), ref[i:i + 1])
