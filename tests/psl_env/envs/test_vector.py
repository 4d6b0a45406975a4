"""PSLVectorEnv: K batched envs equal K single envs (gymnasium's SyncVectorEnv), bitwise."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from psl_env.envs.vector import PSLVectorEnv

from .helpers import assert_same

CASES = [
    ("NextStep", {"overrides": {"rounds": 6}}),
    ("SameStep", {"overrides": {"rounds": 6}}),
    ("NextStep", {"action_type": "multidiscrete", "overrides": {"rounds": 5, "csi": "delayed"}}),
    ("SameStep", {"action_type": "dict", "overrides": {"rounds": 5}}),
    ("NextStep", {"overrides": {"rounds": 5, "channel.correlation": "doppler", "channel.mobility": True,
                                "csi": "delayed"}}),
    ("NextStep", {"scenario": "edgesplit-vgg16", "overrides": {"rounds": 4}}),
    ("SameStep", {"overrides": {"rounds": 4, "scheme": "sfl", "phi": 0.0}}),
    ("NextStep", {"action_type": "assisted", "overrides": {"rounds": 3}}),
    ("SameStep", {"action_type": "assisted", "action": {"solver": "greedy"}, "overrides": {"rounds": 3}}),
]


@pytest.mark.parametrize("mode, kwargs", CASES)
def test_vector_equals_sync_vector_of_single_envs(mode, kwargs):
    kwargs = {"scenario": "small-exact", **kwargs}
    k, steps = 4, 14 if kwargs.get("action_type") != "assisted" else 7
    vec = gym.make_vec("psl_env/PSL-v0", num_envs=k, vectorization_mode="vector_entry_point",
                       autoreset_mode=mode, threads=True, **kwargs)
    sync = gym.make_vec("psl_env/PSL-v0", num_envs=k, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode(mode)}, **kwargs)
    assert_same(vec.reset(seed=7), sync.reset(seed=7), "reset")
    vec.action_space.seed(3)
    for t in range(steps):
        actions = vec.action_space.sample()
        assert_same(vec.step(actions), sync.step(actions), f"step {t}")
    vec.close()
    sync.close()


def test_threads_do_not_change_results():
    runs = []
    for threads in (True, False):
        vec = PSLVectorEnv(6, scenario="small-exact", threads=threads,
                           overrides={"rounds": 4, "channel.mobility": True, "channel.correlation": "doppler"})
        vec.action_space.seed(0)
        out = [vec.reset(seed=1)] + [vec.step(vec.action_space.sample()) for _ in range(10)]
        runs.append(out)
        vec.close()
    assert_same(runs[0], runs[1])


def test_seeds_masks_and_disabled_autoreset():
    vec = PSLVectorEnv(3, scenario="small-exact", autoreset_mode="Disabled", overrides={"rounds": 2})
    obs, _ = vec.reset(seed=[5, None, 9])
    single = gym.make("psl_env/PSL-v0", scenario="small-exact")
    np.testing.assert_array_equal(obs[0], single.reset(seed=5)[0])
    np.testing.assert_array_equal(obs[2], single.reset(seed=9)[0])
    vec.action_space.seed(0)
    for _ in range(2):
        _, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert truncated.all() and not terminated.any()
    with pytest.raises(RuntimeError, match="reset_mask"):
        vec.step(vec.action_space.sample())
    mask = np.array([True, False, True])
    obs2, _ = vec.reset(options={"reset_mask": mask})
    assert np.all(vec.core.round == [0, 2, 0])
    with pytest.raises(RuntimeError, match="reset_mask"):  # env 1 is still done
        vec.step(vec.action_space.sample())
    vec.reset(options={"reset_mask": ~mask})
    vec.step(vec.action_space.sample())
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.zeros(3, dtype=bool)})


def test_next_step_autoreset_semantics():
    vec = PSLVectorEnv(2, scenario="small-exact", max_episode_steps=2)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    vec.step(vec.action_space.sample())
    _, _, _, truncated, _ = vec.step(vec.action_space.sample())
    assert truncated.all()
    obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())  # the reset step
    assert np.all(reward == 0) and not truncated.any() and info == {}
    assert np.all(vec.core.round == 0)
    assert np.all(obs[:, vec.core.encoder.slices["progress"]] == 0)
    masks = vec.action_masks() if vec.codec.has_action_masks else None
    assert masks is None


@pytest.mark.parametrize("threads", [True, False])
def test_pickled_vector_env_resumes_exactly(threads):
    import pickle

    vec = PSLVectorEnv(4, scenario="small-exact", threads=threads, overrides={"rounds": 3})
    vec.reset(seed=2)
    vec.action_space.seed(0)
    for _ in range(4):
        vec.step(vec.action_space.sample())
    clone = pickle.loads(pickle.dumps(vec))
    actions = [vec.action_space.sample() for _ in range(5)]
    assert_same([vec.step(a) for a in actions], [clone.step(a) for a in actions])
    vec.close()
    clone.close()


def test_pickled_single_env_resumes_exactly():
    import pickle

    env = gym.make("psl_env/PSL-v0", scenario="small-exact").unwrapped
    env.reset(seed=4)
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    actions = [env.action_space.sample() for _ in range(4)]
    assert_same([env.step(a) for a in actions], [clone.step(a) for a in actions])


def test_trace_channel_vector_equals_sync(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "gains.npz"
    np.savez(path, gains=rng.exponential(1e-11, (5, 3, 6)), client_flops=10.0 ** rng.uniform(9.5, 11, (5, 3)))
    kwargs = {"scenario": "small-exact", "overrides": {"channel.kind": "trace", "channel.trace_file": str(path),
                                                       "rounds": 4}}
    vec = gym.make_vec("psl_env/PSL-v0", num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.make_vec("psl_env/PSL-v0", num_envs=3, vectorization_mode="sync", **kwargs)
    assert_same(vec.reset(seed=0), sync.reset(seed=0))
    vec.action_space.seed(0)
    for t in range(9):
        actions = vec.action_space.sample()
        assert_same(vec.step(actions), sync.step(actions), f"step {t}")
