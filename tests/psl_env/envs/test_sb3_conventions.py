"""What Stable-Baselines3 and gymnasium expect of an environment: ``make_vec_env`` with either id
and every vec-env class (SB3 asks for ``render_mode="rgb_array"``), frames for the video recorder,
``spec.max_episode_steps``, and an error when stepping on after the episode ended."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

from psl_env.envs.config import EnvConfigError
from psl_env.envs.psl_env import PSLEnv
from psl_env.envs.render import CUT_BAND, HEIGHT, OWNER_BAND, PHASE_BAND, PHASE_COLOURS, UNUSED, WIDTH, \
    _edges, client_colour

from .helpers import IDS

SMALL = {"scenario": "small-exact", "overrides": {"rounds": 3}}


def test_rgb_array_frames_show_owners_cuts_and_phases():
    env = gym.make("psl_env/PSL-v0", render_mode="rgb_array", action_type="multidiscrete", **SMALL)
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (HEIGHT, WIDTH, 3) and before.dtype == np.uint8
    m = env.unwrapped.scenario.num_subchannels
    n = env.unwrapped.scenario.num_clients
    mid = (OWNER_BAND[0] + OWNER_BAND[1]) // 2
    centres = (_edges(m)[:-1] + _edges(m)[1:]) // 2
    assert all((before[mid, x] == UNUSED).all() for x in centres)
    *_, info = env.step(env.action_space.sample())
    frame = env.render()
    owner, cut = info["allocation"]["owner"], info["allocation"]["cut"]
    for x, who in zip(centres, owner):
        assert (frame[mid, x] == (UNUSED if who < 0 else client_colour(who))).all()
    blocks = env.unwrapped.latency_model.num_blocks
    bar_x = (_edges(n)[:-1] + _edges(n)[1:]) // 2
    for i, x in enumerate(bar_x):  # each client's bar is as tall as its cut is deep
        column = (frame[CUT_BAND[0]:CUT_BAND[1], x] == client_colour(i)).all(axis=1)
        expected = round((CUT_BAND[1] - CUT_BAND[0]) * np.broadcast_to(cut, (n,))[i] / blocks)
        assert column.sum() == expected and column[-1]
    row = frame[(PHASE_BAND[0] + PHASE_BAND[1]) // 2]
    assert (row[10] == PHASE_COLOURS["uplink_phase_s"]).all()  # the round starts with the uplink
    assert (frame[PHASE_BAND[0] - 2] == 0).all(axis=1).sum() == 2  # the reference tick
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_spec_max_episode_steps_is_the_scenarios_rounds(env_id):
    env = gym.make(env_id, **SMALL)
    assert env.spec.max_episode_steps == 3 and env.unwrapped.spec.max_episode_steps == 3
    assert gym.make(env_id, scenario="small-exact").spec.max_episode_steps == 50
    shorter = gym.make(env_id, max_episode_steps=2, **SMALL)  # an explicit limit still wins
    assert shorter.spec.max_episode_steps == 2
    shorter.reset(seed=0)
    assert shorter.step(shorter.action_space.sample())[3] is False
    assert shorter.step(shorter.action_space.sample())[3] is True


def test_stepping_after_truncation_raises_until_reset():
    env = PSLEnv(**SMALL)
    env.reset(seed=1)
    truncated = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert truncated == [False, False, True]
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step(env.action_space.sample())
    env.reset()
    assert env.step(env.action_space.sample())[3] is False


def test_trace_path_must_be_a_file_in_an_existing_folder(tmp_path):
    with pytest.raises(EnvConfigError, match="trace_path: .* is a folder"):
        PSLEnv(trace_path=str(tmp_path), **SMALL)
    with pytest.raises(EnvConfigError, match="trace_path: folder .* does not exist"):
        PSLEnv(trace_path=str(tmp_path / "no" / "t.jsonl"), **SMALL)


SCRIPT = textwrap.dedent("""
    # a user's script: the package imported at the top, SB3's make_vec_env with its defaults
    import numpy as np
    import psl_env  # registers the ids (SubprocVecEnv's workers find them through this module)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if __name__ == "__main__":
        for env_id in ("psl_env/PSL-v0", "psl_env:PSL-v0"):
            for cls in (DummyVecEnv, SubprocVecEnv):
                venv = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=cls,
                                    env_kwargs={"scenario": "small-exact", "overrides": {"rounds": 2}})
                venv.reset()
                assert venv.get_attr("render_mode") == ["rgb_array", "rgb_array"]
                dones = [venv.step(np.stack([venv.action_space.sample()] * 2))[2] for _ in range(2)]
                assert not dones[0].any() and dones[1].all()  # truncated after 2 rounds, reset by SB3
                assert venv.render().shape == (2 * 160, 320, 3)  # the two frames tiled
                assert venv.get_attr("spec")[0].max_episode_steps == 2
                venv.close()
                print(env_id, cls.__name__, "ok")
""")


def test_make_vec_env_with_both_ids_and_every_vec_env_class(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(" ok") == 4


def test_sb3_video_recorder_writes_a_video(tmp_path):
    pytest.importorskip("moviepy")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecVideoRecorder

    venv = make_vec_env("psl_env/PSL-v0", n_envs=1, seed=0, env_kwargs=SMALL)
    venv = VecVideoRecorder(venv, str(tmp_path), record_video_trigger=lambda step: step == 0, video_length=4,
                            name_prefix="psl")
    venv.reset()
    for _ in range(5):
        venv.step(np.array([venv.action_space.sample()]))
    venv.close()
    videos = list(tmp_path.glob("psl-*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
