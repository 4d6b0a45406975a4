"""The backend option: compiled (numba) and numpy hot paths give the same environments."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.vector import PSLVectorEnv

pytest.importorskip("numba")


def test_environments_agree_across_backends():
    """The same seed and actions give the same trajectory with the numba and the numpy backend."""
    kwargs = {"scenario": "epsl-resnet18", "action_type": "box"}
    fast = PSLEnv(**kwargs, backend="numba")
    slow = PSLEnv(**kwargs, backend="numpy")
    assert slow.codec.compiled is None and slow.world.channel.kernels is None
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
            trajectory += [obs, reward, vec.core.world.gains.copy()]
        assert (vec.core.world.channel._generator_list is not None) == (backend == "numba")  # the draw kernel ran
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
    monkeypatch.setitem(sys.modules, "psl_env.resources.kernels", None)
    monkeypatch.setitem(sys.modules, "psl_env.system.channels.kernels", None)
    env = PSLEnv(scenario="small-exact", action_type="box")
    assert env.codec.compiled is None and env.world.channel.kernels is None
    with pytest.raises(ValueError, match="needs the numba package"):
        PSLEnv(scenario="small-exact", action_type="box", backend="numba")
    # the proportional-fair assignment has no compiled path
    env = PSLEnv(scenario="small-exact", action_type="multidiscrete", action={"assignment": "proportional-fair"})
    assert env.codec.compiled is None
