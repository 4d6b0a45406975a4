"""The PSL metrics callback: phases, ratio, repairs, cut histogram, and training-mode accuracy /
simulated time when the env's info carries them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from stable_baselines3.common.logger import configure

from trainers.callbacks import PSLMetricsCallback


def _info(latency, cut, **extra):
    return {"latency_s": latency, "uplink_phase_s": latency / 2, "server_compute_s": 0.1,
            "downlink_phase_s": latency / 2 - 0.1, "sync_s": 0.0, "migration_s": 0.0, "latency_ratio": 0.5,
            "repairs": 1, "power_repairs": 0, "allocation": {"cut": np.array([cut, cut])}, **extra}


def test_metrics_callback_logs_every_tag(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = configure(str(tmp_path / "tb"), ["tensorboard"])
    cb = PSLMetricsCallback()
    cb.init_callback(SimpleNamespace(logger=logger, num_timesteps=0))
    for step in range(3):
        cb.update_locals({"infos": [_info(2.0, 3, accuracy=0.5 + 0.1 * step, sim_time_s=10.0 * step),
                                    _info(4.0, 5), {"episode": {"r": 1.0}}]})
        cb.on_step()
    cb.on_rollout_end()
    assert logger.name_to_value["psl/latency_s"] == 3.0
    assert logger.name_to_value["psl/repairs"] == 1.0
    assert abs(logger.name_to_value["psl/accuracy"] - 0.6) < 1e-9
    logger.dump(1)
    logger.close()
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"psl/latency_s", "psl/uplink_phase_s", "psl/server_compute_s", "psl/downlink_phase_s", "psl/sync_s",
            "psl/migration_s", "psl/latency_ratio", "psl/repairs", "psl/accuracy", "psl/sim_time_s"} <= scalars
    hist = acc.Histograms("psl/cut")[-1].histogram_value
    assert hist.num == 12 and hist.min == 3 and hist.max == 5


def test_plain_tqdm_bar_when_rich_is_missing(tmp_path, monkeypatch):
    import trainers.callbacks as callbacks
    from trainers.cli import main

    import yaml

    monkeypatch.setattr(callbacks, "sb3_progress_bar_available", lambda: False)
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"psl_env/PSL-v0": {"algo": "ppo", "n_envs": 2, "n_steps": 8, "batch_size": 16,
                                                      "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}}))
    assert main(["train", "--config", str(cfg), "--scenario", "small-exact", "--timesteps", "16",
                 "--out", str(tmp_path / "run")]) == 0
