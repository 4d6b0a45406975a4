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
    ({"algo": "ppo", "vec_env": "dummy", "env_wrapper": ["os.system"]},
     "env_wrapper: 'os.system' is not allowed; allowed: gymnasium.Wrapper subclasses"),
    ({"algo": "ppo", "gamma": 1.5}, "gamma: 1.5 is not allowed; allowed: a number in [0, 1]"),
    ({"algo": "ppo", "learning_rate": -1e-3}, "learning_rate: -0.001 is not allowed"),
    ({"algo": "ppo", "learning_rate": "lin_5"}, "learning_rate: 'lin_5' must start in (0, 1]"),
    ({"algo": "ppo", "n_steps": 0}, "n_steps: 0 is not allowed"),
    ({"algo": "ppo", "ent_coef": "auto"}, "ent_coef: 'auto' is not allowed"),
    ({"algo": "sac", "tau": 0}, "tau: 0 is not allowed; allowed: a number in (0, 1]"),
    ({"algo": "sac", "train_freq": [4, "minute"]}, "train_freq"),
    ({"algo": "ppo", "policy_kwargs": {"net_arch": [64, -1]}}, "policy_kwargs.net_arch"),
    ({"algo": "ppo", "env_id": "CartPole-v1"}, "env_id: 'CartPole-v1' is not allowed"),
])
def test_bad_config_values_name_the_key(entry, needle):
    with pytest.raises(AgentConfigError) as err:
        build_agent_config(entry)
    assert needle in str(err.value)


def test_sac_accepts_automatic_entropy_and_zoo_algo_names():
    sac = build_agent_config({"algo": "sac", "ent_coef": "auto_0.1", "env_kwargs": {"action_type": "box"}})
    assert sac.algo == "sac"
    assert build_agent_config({"algo": "ppo_mask", "env_kwargs": {"action_type": "assisted"}}).algo == "maskable-ppo"


def _config_file(tmp_path, data) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_own_keys_sit_under_psl_or_in_the_entry_but_not_both(tmp_path):
    entry, algo = read_config_file(_config_file(tmp_path, {"psl_env/PSL-v0": {"n_envs": 2}, "psl": {"algo": "a2c"}}))
    assert build_agent_config(entry, algo).algo == "a2c" and entry["env_id"] == "psl_env/PSL-v0"
    entry, algo = read_config_file(_config_file(tmp_path, {"psl_env/PSL-v0": {"algo": "td3", "eval_freq": 5}}))
    assert build_agent_config(entry, algo).eval_freq == 5  # older files: the project's keys in the entry
    with pytest.raises(AgentConfigError, match="algo: given both in the 'psl_env/PSL-v0' entry and under psl:"):
        read_config_file(_config_file(tmp_path, {"psl_env/PSL-v0": {"algo": "ppo"}, "psl": {"algo": "a2c"}}))
    with pytest.raises(AgentConfigError, match=r"psl.gamma: unknown key; allowed: \['algo', 'checkpoint_freq'"):
        read_config_file(_config_file(tmp_path, {"psl_env/PSL-v0": {}, "psl": {"gamma": 0.9}}))


@pytest.mark.parametrize("text, fragment", [
    ("CartPole-v1:\n  n_envs: 8\n", "no entry for 'psl_env/PSL-v0' or 'psl_env/PSLTrain-v0'; found ['CartPole-v1']"),
    ("psl_env/PSL-v0:\n  n_envs: 8\n  n_envs: 4\n", "key 'n_envs' is given twice (line 3)"),
    ("", "the file is empty"),
    ("psl_env/PSL-v0: [1, 2]\n", "entry must be a mapping"),
])
def test_config_file_faults_are_named(tmp_path, text, fragment):
    with pytest.raises(AgentConfigError) as err:
        read_config_file(_config_file(tmp_path, text))
    assert fragment in str(err.value)
    assert "algo: None" not in str(err.value)


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
    (["--hyperparams", "gamma=1.5"], "gamma: 1.5 is not allowed"),
    (["--hyperparams", "env_kwargs.action.levels=1", "--hyperparams", "env_kwargs.action_type=multidiscrete"],
     "levels"),
    (["--timesteps", "100000000000"], "--timesteps: 100000000000 is not allowed; allowed: an integer in [1, "),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, needle):
    cfg = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert train("--config", str(cfg), "--out", str(out), *TINY, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not out.exists()


def test_summary_states_what_ran_and_what_was_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--config", str(tiny_config(tmp_path)), "--out", str(out), "--timesteps", "40", *TINY) == 0
    printed = capsys.readouterr().out
    assert "64 steps (asked for 40; ppo collects rollouts of n_steps x n_envs = 32 steps)" in printed
    files = next(line for line in printed.splitlines() if line.startswith("run folder: "))
    assert "model.zip" in files and "checkpoints/ (1)" in files and "eval.csv" not in files  # no evaluation ran


def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    assert train("--config", str(tiny_config(tmp_path)), "--out", str(out), "--device", "cuda", *TINY) == 2
    err = capsys.readouterr().err.strip()
    assert err == "psl train: error: --device: 'cuda' is not available (this machine has 0 CUDA device(s)); " \
                  "allowed: cpu, auto" and not out.exists()


@pytest.mark.parametrize("vec_env", ["dummy", "subproc"])
def test_training_env_on_a_scenario_it_cannot_train_is_one_line(tmp_path, capsys, vec_env):
    cfg = _config_file(tmp_path, {"psl_env/PSLTrain-v0": {"n_envs": 2, "env_kwargs": {"action_type": "assisted"}},
                                  "psl": {"algo": "ppo", "vec_env": vec_env}})
    out = tmp_path / "run"
    assert train("--config", str(cfg), "--scenario", "epsl-resnet18", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "psl_env/PSLTrain-v0 cannot be built on scenario 'epsl-resnet18'" in err
    assert "expects 64x64 inputs" in err and not out.exists()


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
        "n_envs": 2, "env_kwargs": {"action_type": "assisted"}, "n_steps": 4, "batch_size": 8, "n_epochs": 1,
        "policy_kwargs": {"net_arch": [8]}}, "psl": {"algo": "ppo", "vec_env": "dummy"}}))
    out = tmp_path / "run"
    # no --scenario: the training-mode env defaults to the scenario it can train (digits-train)
    assert train("--config", str(cfg), "--set", "rounds=4", "--timesteps", "8", "--out", str(out)) == 0
    run = yaml.safe_load((out / "config.yaml").read_text())
    assert run["env_id"] == "psl_env/PSLTrain-v0" and run["scenario"]["name"] == "digits-train"
    scalars = set(_events(out / "tb").Tags()["scalars"])
    assert {"psl/accuracy", "psl/sim_time_s", "psl/latency_s"} <= scalars
