"""``psl demo``: trains a short PPO, benchmarks it with the optimizers, writes the demo folder."""

from __future__ import annotations

import json

from trainers.cli import main


def test_demo_writes_results_report_plots_and_tensorboard(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--no-progress", "--timesteps", "64", "--rounds", "3", "--episodes", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"tensorboard --logdir {out / 'agent' / 'tb'}" in printed
    results = json.loads((out / "results.json").read_text())
    methods = list(results["methods"])
    assert methods[0].startswith("ppo") and {"epsl-bcd", "edgesplit-alt", "fixed", "random"} <= set(methods)
    for name in ("report.md", "results.md", "results.csv", "latency.png", "phases.png", "latency_cdf.png",
                 "training.png", "agent/model.zip", "agent/eval.csv"):
        assert (out / name).is_file(), name
    assert list((out / "agent" / "tb").glob("events.out.tfevents.*"))
    report = (out / "report.md").read_text()
    assert "epsl-bcd" in report and "tensorboard --logdir" in report


def test_demo_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--timesteps", "0", "--out", str(out)]) == 2
    assert "--timesteps" in capsys.readouterr().err
    assert not out.exists()
