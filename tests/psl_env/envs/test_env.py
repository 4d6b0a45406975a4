"""PSLEnv: determinism, equality with the simulator and the latency model, reward, info, traces."""

from __future__ import annotations

import numpy as np
import pytest

from psl_env.envs.observation import RATIO_CLIP
from psl_env.envs.psl_env import PSLEnv
from psl_env.system.allocation import fixed_allocation
from psl_env.system.latency import PHASES
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import Allocation, RoundState
from psl_env.system.trace import latency_from_record, read_trace

from .helpers import CODECS, assert_same

VARIANTS = [
    {"scenario": "small-exact"},
    {"scenario": "epsl-resnet18", "action_type": "dict",
     "overrides": {"channel.correlation": "doppler", "channel.mobility": True, "csi": "delayed"}},
    {"scenario": "edgesplit-vgg16", "action_type": "multidiscrete"},
    {"scenario": "small-exact", "overrides": {"scheme": "sfl", "phi": 0.0, "downlink": "unicast"}},
    {"scenario": "small-exact", "overrides": {"downlink": "ignore", "devices.resample": "fixed"}},
]


def rollout(env, seed: int, steps: int, action_seed: int = 0):
    out = [env.reset(seed=seed)]
    env.action_space.seed(action_seed)
    for _ in range(steps):
        out.append(env.step(env.action_space.sample()))
        if out[-1][3]:  # truncated: the next episode continues the generator
            out.append(env.reset())
    return out


@pytest.mark.parametrize("action_type", CODECS)
def test_same_seed_same_trajectory(action_type):
    kwargs = {"scenario": "small-exact", "action_type": action_type, "overrides": {"rounds": 4}}
    a = rollout(PSLEnv(**kwargs), seed=5, steps=9)  # crosses two episode ends
    b = rollout(PSLEnv(**kwargs), seed=5, steps=9)
    assert_same(a, b)
    c = rollout(PSLEnv(**kwargs), seed=6, steps=1)
    assert not np.array_equal(a[0][0], c[0][0])


def test_reset_continues_the_generator():
    env = PSLEnv(scenario="small-exact")
    first, _ = env.reset(seed=3)
    second, _ = env.reset()
    env2 = PSLEnv(scenario="small-exact")
    env2.reset(seed=3)
    assert np.array_equal(env2.reset()[0], second) and not np.array_equal(first, second)


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda kw: f"{kw['scenario']}-{kw.get('action_type', 'box')}")
def test_matches_simulator_and_latency_model(kwargs):
    """States equal NetworkSimulator's bitwise; prices equal LatencyModel's; reference = fixed allocation."""
    env = PSLEnv(**kwargs)
    sim = NetworkSimulator(env.scenario)
    model = sim.latency_model
    env.reset(seed=11)
    state = sim.reset(seed=11)
    env.action_space.seed(1)
    for _ in range(12):
        mine = env.state
        for key in ("gains", "observed_gains", "client_flops", "power_budget_w", "memory_bytes", "distance_m"):
            np.testing.assert_array_equal(getattr(mine, key), getattr(state, key), err_msg=key)
        assert (mine.round, mine.sync, mine.prev_latency_s) == (state.round, state.sync, state.prev_latency_s)
        assert (mine.prev_cut is None) == (state.prev_cut is None)
        _, reward, _, _, info = env.step(env.action_space.sample())
        alloc = Allocation(**info["allocation"])
        lat = model.evaluate(state, alloc)
        assert info["latency_s"] == pytest.approx(lat.total, rel=1e-12)
        for phase in PHASES:
            assert info[f"{phase}_s"] == pytest.approx(getattr(lat, phase), rel=1e-12, abs=1e-300)
        for key in ("client_fwd_s", "uplink_s", "downlink_s", "client_bwd_s", "uplink_rate_bps", "downlink_rate_bps"):
            np.testing.assert_allclose(info[key], getattr(lat, key), rtol=1e-12)
        fresh = RoundState(state.round, state.episode, state.client_flops, state.power_budget_w, state.memory_bytes,
                           state.gains, state.observed_gains, None, state.prev_latency_s, state.sync)
        ref = model.evaluate(fresh, fixed_allocation(model.num_blocks, state.power_budget_w, state.num_subchannels))
        assert info["reference_latency_s"] == pytest.approx(ref.total, rel=1e-12)
        assert reward == pytest.approx(-min(lat.total / ref.total, env.config["max_latency_ratio"]), rel=1e-12)
        state = sim.advance(alloc.cut, info["latency_s"])


def test_info_reward_and_truncation():
    env = PSLEnv(scenario="small-exact", overrides={"rounds": 3}, reward="log-relative")
    obs, info = env.reset(seed=0)
    assert info == {} and obs.dtype == np.float32
    env.action_space.seed(0)
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["round"] == t and terminated is False and truncated is (t == 2)
        phases = sum(info[f"{p}_s"] for p in PHASES)
        assert phases == pytest.approx(info["latency_s"], rel=1e-12)
        assert info["latency_ratio"] == pytest.approx(info["latency_s"] / info["reference_latency_s"])
        assert reward == pytest.approx(-np.log(info["latency_ratio"]))
        assert info["allocation"]["cut"].shape == (3,) and info["allocation"]["owner"].shape == (6,)
        assert isinstance(reward, float) and isinstance(info["repairs"], int)
        # the next observation carries this round's latency ratio
        assert obs[env.encoder.slices["prev_latency"]][0] == pytest.approx(min(info["latency_ratio"], RATIO_CLIP),
                                                                           rel=1e-6)
    assert env.observation_space.contains(obs)


def test_migration_is_charged_when_the_cut_changes():
    env = PSLEnv(scenario="small-exact", action_type="assisted")
    env.reset(seed=0)
    assert env.step(2)[-1]["migration_s"] == 0.0  # first round: nothing to migrate
    assert env.step(2)[-1]["migration_s"] == 0.0  # same cut
    assert env.step(6)[-1]["migration_s"] > 0.0  # the cut moved: blocks move to the clients


def test_observation_of_matches_and_layout():
    env = PSLEnv(scenario="edgesplit-vgg16", overrides={"csi": "delayed"})
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(env.observation_of(env.state.observation()), obs)
    env.action_space.seed(0)
    obs, *_, info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.observation_of(env.state.observation(), env.core.prev_ratio[0]), obs)
    s = env.encoder.slices
    n, m = env.scenario.num_clients, env.scenario.num_subchannels
    assert s["gain_db"] == slice(0, n * m) and s["prev_cut"].stop - s["prev_cut"].start == n  # per-device cuts
    cut = info["allocation"]["cut"]
    np.testing.assert_allclose(obs[s["prev_cut"]], (cut - 1) / (env.latency_model.num_blocks - 2), rtol=1e-6)
    assert obs[s["progress"]][0] == pytest.approx(1 / env.scenario.rounds)


def test_trace_render_and_masks(tmp_path):
    path = tmp_path / "trace.jsonl"
    env = PSLEnv(scenario="small-exact", action_type="multidiscrete", trace_path=str(path), render_mode="ansi")
    env.reset(seed=0)
    assert "no round" in env.render()
    env.action_space.seed(0)
    infos = [env.step(env.action_space.sample())[-1] for _ in range(3)]
    assert "latency" in env.render()
    masks = env.action_masks()
    assert masks.dtype == bool and masks.shape == (int(env.action_space.nvec.sum()),) and masks.all()
    env.close()
    records = read_trace(path)
    assert [r["round"] for r in records] == [0, 1, 2]
    for rec, info in zip(records, infos):
        assert latency_from_record(rec).total == pytest.approx(info["latency_s"], rel=1e-9)
        assert rec["reference_latency_s"] == info["reference_latency_s"] and rec["action_type"] == "multidiscrete"
    with pytest.raises(NotImplementedError):
        PSLEnv(scenario="small-exact", action_type="box").action_masks()


def test_memory_mask_blocks_oversized_cuts():
    env = PSLEnv(scenario="small-exact", action_type="assisted",
                 overrides={"devices.memory_bytes": [1.0e8, 1.0e8]})
    env.reset(seed=0)
    mask = env.action_masks()
    mem = env.latency_model.profile.client_memory_bytes(np.arange(1, env.codec.num_blocks), env.scenario.batch_size)
    np.testing.assert_array_equal(mask, mem <= 1.0e8)
    assert mask.any() and not mask.all()


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        PSLEnv(scenario="small-exact").step(np.zeros(4, np.float32))


def _trace_file(tmp_path, n=3, m=6, length=7):
    rng = np.random.default_rng(0)
    path = tmp_path / "gains.npz"
    np.savez(path, gains=rng.exponential(1e-11, (length, n, m)),
             client_flops=10.0 ** rng.uniform(9.5, 11, (length, n)),
             client_power_budget_w=rng.uniform(0.1, 0.3, (length, n)))
    return str(path)


def test_trace_channel_matches_simulator(tmp_path):
    overrides = {"channel.kind": "trace", "channel.trace_file": _trace_file(tmp_path), "csi": "delayed"}
    env = PSLEnv(scenario="small-exact", overrides=overrides)
    sim = NetworkSimulator(env.scenario)
    env.reset(seed=0)
    state = sim.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):  # wraps around the 7-entry trace
        for key in ("gains", "observed_gains", "client_flops", "power_budget_w"):
            np.testing.assert_array_equal(getattr(env.state, key), getattr(state, key), err_msg=key)
        _, _, _, _, info = env.step(env.action_space.sample())
        state = sim.advance(info["allocation"]["cut"], info["latency_s"])
    obs = env.observation_of(env.state.observation(), env.core.prev_ratio[0])
    np.testing.assert_array_equal(obs, env.core.observe()[0])
