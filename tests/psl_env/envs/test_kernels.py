"""The compiled kernels (numba) equal the numpy reference; the backend option."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psl_env.envs.batch_alloc import gather_owned, water_fill_owned
from psl_env.envs.codecs import BoxCodec
from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.vector import PSLVectorEnv

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
    ref_power = water_fill_owned(ref_owner, codec.model.noise_w / gather_owned(gains, ref_owner, True), budget)
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


def test_environments_agree_across_backends():
    """The same seed and actions give the same trajectory with the numba and the numpy backend."""
    kwargs = {"scenario": "epsl-resnet18", "action_type": "box"}
    fast = PSLEnv(**kwargs, backend="numba")
    slow = PSLEnv(**kwargs, backend="numpy")
    assert slow.codec.compiled is None and slow.core.kernels is None
    fast.action_space.seed(3)
    actions = [fast.action_space.sample() for _ in range(30)]
    for env in (fast, slow):
        env.reset(seed=11)
    for a in actions:
        o1, r1, *_, i1 = fast.step(a)
        o2, r2, *_, i2 = slow.step(a)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
        np.testing.assert_array_equal(i1["allocation"]["owner"], i2["allocation"]["owner"])
        np.testing.assert_array_equal(i1["allocation"]["power_w"], i2["allocation"]["power_w"])


def test_vector_envs_agree_across_backends():
    """The batched fading kernel and the compiled decode, with and without the worker thread."""
    kwargs = {"scenario": "epsl-resnet18", "action_type": "box", "overrides": {"csi": "delayed"}}
    runs = []
    for backend, threads in (("numpy", False), ("numba", False), ("numba", True)):
        vec = PSLVectorEnv(num_envs=70, backend=backend, threads=threads, **kwargs)
        vec.action_space.seed(5)
        obs, _ = vec.reset(seed=2)
        trajectory = [obs]
        for _ in range(12):
            obs, reward, *_ = vec.step(vec.action_space.sample())
            trajectory += [obs, reward, vec.core.gains.copy()]
        assert (vec.core._generator_list is not None) == (backend == "numba")  # the draw kernel ran
        vec.close()
        runs.append(trajectory)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_backend_option_is_validated(monkeypatch):
    with pytest.raises(ValueError, match="backend: 'cuda' is not allowed"):
        PSLEnv(scenario="small-exact", action_type="box", backend="cuda")
    with pytest.raises(ValueError, match="not a codec option"):
        PSLEnv(scenario="small-exact", action_type="box", action={"backend": "numpy"})
    # without numba, "auto" falls back to numpy and "numba" names the missing package
    monkeypatch.setitem(sys.modules, "psl_env.envs.kernels", None)
    env = PSLEnv(scenario="small-exact", action_type="box")
    assert env.codec.compiled is None and env.core.kernels is None
    with pytest.raises(ValueError, match="needs the numba package"):
        PSLEnv(scenario="small-exact", action_type="box", backend="numba")
    # the proportional-fair assignment has no compiled path
    env = PSLEnv(scenario="small-exact", action_type="multidiscrete", action={"assignment": "proportional-fair"})
    assert env.codec.compiled is None


def test_draw_normals_reproduces_numpy_streams():
    """The compiled draws give numpy's values and leave each generator where numpy would."""
    from psl_env.envs import kernels

    seeds = [3, 14, 15, 92, 65]
    ours = [np.random.default_rng(s) for s in seeds]
    theirs = [np.random.default_rng(s) for s in seeds]
    out = np.zeros((5, 2, 40, 50))  # 4,000 normals per env: the ziggurat's rare branches included
    active = np.array([True, False, True, True, True])
    kernels.draw_normals(kernels.generator_list(ours), out, active, 1, 5)  # envs 1..4, env 1 inactive
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i in (2, 3, 4):
            np.testing.assert_array_equal(out[i], b.standard_normal((2, 40, 50)))
        else:
            assert not out[i].any()
        assert a.standard_normal() == b.standard_normal()  # the same next draw: the same state
    assert kernels.draws_match_numpy()  # so the environments draw with the kernel
