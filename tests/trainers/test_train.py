"""``psl train``: input validation, a tiny run's folder and TensorBoard tags, exact resume, the batched SB3 env."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainers.cli import main
from trainers.sb3_env import (AgentConfigError, apply_overrides, build_agent_config, parse_value,
                              read_config_file, shipped_configs)

TINY = ["--scenario", "small-exact", "--set", "rounds=8"]


def tiny_config(tmp_path: Path, algo: str = "ppo", action_type: str = "box", **extra) -> Path:
    entry = {"algo": algo, "n_envs": 4, "vec_env": "batched",
             "env_kwargs": {"action_type": action_type, "reward": "log-relative"},
             "normalize": {"norm_obs": True, "norm_reward": False},
             "policy_kwargs": {"net_arch": [16, 16], "activation_fn": "tanh"}}
    if algo in ("ppo", "maskable-ppo", "a2c"):
        entry.update({"n_steps": 8, "batch_size": 16, "n_epochs": 2, "learning_rate": "lin_1e-3"})
        if algo == "a2c":
            entry.pop("batch_size"), entry.pop("n_epochs")
    else:
        entry.update({"learning_starts": 16, "batch_size": 16, "buffer_size": 1000, "train_freq": 1,
                      "gradient_steps": 1})
    entry.update(extra)
    path = tmp_path / f"{algo}.yaml"
    path.write_text(yaml.safe_dump({"psl_env/PSL-v0": entry}))
    return path


def train(*argv: str) -> int:
    return main(["train", "--no-progress", *argv])


# -- configs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", list(shipped_configs()))
def test_shipped_configs_validate(path):
    entry, algo = read_config_file(path)
    cfg = build_agent_config(entry, algo)
    assert cfg.n_timesteps > 0 and cfg.env_kwargs["action_type"] in ("box", "multidiscrete", "assisted")


def test_overrides_and_values():
    assert parse_value("1e-3") == pytest.approx(1e-3) and parse_value("2e6") == 2e6 and parse_value("64") == 64
    entry = apply_overrides({"env_kwargs": {"action_type": "box"}}, ["env_kwargs.reward=relative", "n_envs=8"])
    assert entry == {"env_kwargs": {"action_type": "box", "reward": "relative"}, "n_envs": 8}


@pytest.mark.parametrize("entry, needle", [
    ({"algo": "sac", "env_kwargs": {"action_type": "multidiscrete"}}, "env_kwargs.action_type"),
    ({"algo": "ppo", "n_envs": 0}, "n_envs"),
    ({"algo": "ppo", "learning_rate": "cos_1e-3"}, "learning_rate"),
    ({"algo": "ppo", "policy_kwargs": "dict(net_arch=[64])"}, "policy_kwargs"),
    ({"algo": "ppo", "policy_kwargs": {"activation_fn": "swish"}}, "activation_fn"),
    ({"algo": "ppo", "normalize": {"norm_obs": True, "bogus": 1}}, "normalize"),
    ({"algo": "ppo", "vec_env": "threads"}, "vec_env"),
    ({"algo": "dqn"}, "algo"),
    ({"algo": "ppo", "tau": 0.1}, "tau"),
    ({"algo": "ppo", "env_wrapper": ["nowhere.Wrapper"]}, "env_wrapper"),
])
def test_bad_config_values_name_the_key(entry, needle):
    with pytest.raises(AgentConfigError, match=needle):
        build_agent_config(entry)


# -- command line ----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--timesteps", "0"], "--timesteps"),
    (["--seed", "-1"], "--seed"),
    (["--hyperparams", "n_envs=-3"], "n_envs"),
    (["--hyperparams", "nonsense"], "--hyperparams"),
    (["--set", "num_clients=0"], "num_clients"),
    (["--scenario", "no-such-scenario"], "no-such-scenario"),
    (["--hyperparams", "env_kwargs.reward=cubic"], "reward"),
    (["--device", "tpu"], "--device"),
    (["--eval-freq", "-5"], "--eval-freq"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, needle):
    cfg = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert train("--config", str(cfg), "--out", str(out), *TINY, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not out.exists()


def test_missing_config_and_busy_out(tmp_path, capsys):
    assert train("--config", str(tmp_path / "nope.yaml")) == 2
    assert "--config" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert train("--config", str(tiny_config(tmp_path)), "--out", str(busy), *TINY) == 2
    assert "--out" in capsys.readouterr().err
    assert train("--resume", str(tmp_path / "nothing")) == 2
    assert "--resume" in capsys.readouterr().err


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_tiny_run_writes_folder_tensorboard_tags_and_resumes(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "ppo", "assisted", eval_freq=32, eval_episodes=1, eval_rounds=3)
    out = tmp_path / "run"
    assert train("--config", str(cfg), "--out", str(out), "--timesteps", "64", "--checkpoint-freq", "32",
                 "--seed", "3", *TINY) == 0
    printed = capsys.readouterr().out
    assert "tensorboard --logdir" in printed
    for name in ("config.yaml", "model.zip", "vecnormalize.pkl", "eval.csv", "best_model.zip"):
        assert (out / name).is_file(), name
    assert zipfile.is_zipfile(out / "model.zip")
    run = yaml.safe_load((out / "config.yaml").read_text())
    assert run["algo"] == "ppo" and run["seed"] == 3 and run["env_config"]["action_type"] == "assisted"
    acc = _events(out / "tb")
    scalars = set(acc.Tags()["scalars"])
    for tag in ("psl/latency_s", "psl/uplink_phase_s", "psl/server_compute_s", "psl/downlink_phase_s",
                "psl/sync_s", "psl/migration_s", "psl/latency_ratio", "psl/repairs", "eval/latency_s",
                "eval/gap_to_epsl-bcd", "eval/gap_to_fixed", "eval/decision_ms", "rollout/ep_rew_mean"):
        assert tag in scalars, tag
    assert "psl/cut" in acc.Tags()["histograms"]
    gaps = [e.value for e in acc.Scalars("eval/gap_to_epsl-bcd")]
    assert gaps and all(np.isfinite(gaps))

    from stable_baselines3 import PPO

    ckpts = sorted((out / "checkpoints").glob("ckpt_*_steps.zip"))
    assert [p.name for p in ckpts] == ["ckpt_32_steps.zip", "ckpt_64_steps.zip"]
    assert PPO.load(ckpts[0]).num_timesteps == 32
    # resume to a larger total continues the same run folder and TensorBoard log
    assert train("--resume", str(out), "--timesteps", "96") == 0
    assert PPO.load(out / "model.zip").num_timesteps == 96
    assert max(e.step for e in _events(out / "tb").Scalars("psl/latency_s")) >= 64


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_resume_is_exact(tmp_path, algo):
    """Half the steps + resume == all the steps at once: same parameters, bit for bit.

    (Constant learning rate: a schedule depends on the total, which an interrupted run keeps.)"""
    import torch as th

    cfg = tiny_config(tmp_path, algo, "box", learning_rate=1e-3)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train("--config", str(cfg), "--out", str(straight), "--timesteps", "64", *TINY) == 0
    assert train("--config", str(cfg), "--out", str(split), "--timesteps", "32", *TINY) == 0
    assert train("--resume", str(split), "--timesteps", "64") == 0
    from trainers.sb3_env import algo_class

    a = algo_class(algo).load(straight / "model.zip").policy.state_dict()
    b = algo_class(algo).load(split / "model.zip").policy.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert th.equal(a[key], b[key]), key


def test_other_algorithms_train(tmp_path):
    for algo, action in (("a2c", "multidiscrete"), ("td3", "box"), ("maskable-ppo", "assisted")):
        extra = {"noise_type": "normal", "noise_std": 0.2} if algo == "td3" else {}
        cfg = tiny_config(tmp_path, algo, action, **extra)
        out = tmp_path / algo
        assert train("--config", str(cfg), "--out", str(out), "--timesteps", "32", *TINY) == 0
        assert (out / "model.zip").is_file()


def test_batched_vec_env_episode_boundaries():
    import gymnasium as gym

    import psl_env  # noqa: F401
    from trainers.sb3_vec import BatchedVecEnv

    venv = BatchedVecEnv(gym.make_vec("psl_env/PSL-v0", num_envs=3, vectorization_mode="vector_entry_point",
                                      autoreset_mode="SameStep", scenario="small-exact",
                                      overrides=["rounds=2"], action_type="box"))
    venv.seed(7)
    obs = venv.reset()
    assert obs.shape == (3, *venv.observation_space.shape)
    actions = np.zeros((3, *venv.action_space.shape), dtype=np.float32)
    _, rew, dones, infos = venv.step(actions)
    assert not dones.any() and rew.dtype == np.float32
    assert all("latency_s" in i and "allocation" in i for i in infos)
    obs, rew, dones, infos = venv.step(actions)
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] and "terminal_observation" in info and "latency_s" in info
        assert not np.array_equal(info["terminal_observation"], obs[i])
    venv.close()


@pytest.mark.parametrize("vec_env", ["dummy", "subproc"])
def test_single_env_vectorizations_train(tmp_path, vec_env):
    cfg = tiny_config(tmp_path, "ppo", "box", vec_env=vec_env, n_envs=2,
                      env_wrapper=["gymnasium.wrappers.RecordEpisodeStatistics"])
    out = tmp_path / vec_env
    assert train("--config", str(cfg), "--out", str(out), "--timesteps", "32", *TINY) == 0
    assert (out / "model.zip").is_file()


def test_training_mode_env_logs_accuracy_and_simulated_time(tmp_path):
    cfg = tmp_path / "ppo-train.yaml"
    cfg.write_text(yaml.safe_dump({"psl_env/PSLTrain-v0": {
        "algo": "ppo", "n_envs": 2, "vec_env": "dummy", "env_kwargs": {"action_type": "assisted"},
        "n_steps": 4, "batch_size": 8, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}}))
    out = tmp_path / "run"
    assert train("--config", str(cfg), "--scenario", "digits-train", "--set", "rounds=4", "--timesteps", "8",
                 "--out", str(out)) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["env_id"] == "psl_env/PSLTrain-v0"
    scalars = set(_events(out / "tb").Tags()["scalars"])
    assert {"psl/accuracy", "psl/sim_time_s", "psl/latency_s"} <= scalars
