"""``psl demo``: train a short PPO scheduler on the default scenario and benchmark it against the
optimizers.

Steps: ``psl train`` with the shipped config ``ppo`` (``configs/agents/ppo.yaml``; solver-assisted
codec: the agent picks the cut, the EPSL-BCD inner solver completes subchannels and power) on
``epsl-resnet18``, with TensorBoard logs and periodic evaluation against ``epsl-bcd`` and ``fixed``;
then ``psl bench`` of the trained policy, ``epsl-bcd``, ``edgesplit-alt``, ``fixed`` and ``random``
on held-out seeded episodes. Writes into ``--out`` (default ``runs/demo``): ``results.json`` / ``results.md`` /
``results.csv`` (the ``psl bench`` format), ``report.md``, ``latency.png``, ``phases.png``,
``latency_cdf.png``, ``training.png``, and ``agent/`` (the training run: ``model.zip``,
``checkpoints/``, ``eval.csv`` and the TensorBoard events in ``agent/tb``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from .cli import UsageError
from .paths import check_out_dir

SCENARIO = "epsl-resnet18"
CONFIG = "ppo"  # the shipped agent config (configs/agents/ppo.yaml), found in an installed package too
BASELINES = ("epsl-bcd", "edgesplit-alt", "fixed", "random")
BENCH_SEED = 1000  # held-out episodes: training uses seeds 0.., evaluation during training 10000..


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--timesteps", type=int, default=60_000, help="PPO training steps (default 60000)")
    parser.add_argument("--rounds", type=int, default=50, help="benchmark rounds per episode (default 50)")
    parser.add_argument("--episodes", type=int, default=5, help="benchmark episodes (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _check(args: argparse.Namespace) -> Path:
    for flag, value, low, high in (("--timesteps", args.timesteps, 64, 10**9), ("--rounds", args.rounds, 1, 10**6),
                                   ("--episodes", args.episodes, 1, 10**4), ("--seed", args.seed, 0, 2**31 - 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UsageError(f"{flag}: {value!r} is not allowed; allowed: an integer in [{low}, {high}]")
    return check_out_dir(args.out)


def run(args: argparse.Namespace) -> int:
    from .run_folder import RunLock

    out = _check(args)
    with RunLock(out, "psl demo"):  # one demo per folder: a second one would delete this one's agent
        return _run_locked(args, out)


def _run_locked(args: argparse.Namespace, out: Path) -> int:
    from . import train as train_cmd

    agent_dir = out / "agent"
    eval_freq = max(args.timesteps // 3, 1)
    train_args = SimpleNamespace(config=CONFIG, scenario=SCENARIO, overrides=[], hyperparams=[],
                                 timesteps=args.timesteps, seed=args.seed, out=str(agent_dir), resume=None,
                                 eval_freq=eval_freq, checkpoint_freq=eval_freq, device="cpu", threads=1,
                                 progress=args.progress, verbose=0)
    if agent_dir.exists():
        shutil.rmtree(agent_dir)  # the demo starts over; nothing else in --out is touched before this point
    plan = train_cmd.prepare(train_args)
    import torch

    torch.set_num_threads(1)  # small networks: one thread leaves the other core to the environment
    t0 = time.perf_counter()
    print(f"[1/2] training PPO ({plan['cfg'].action_type} codec) on {SCENARIO} for {args.timesteps} steps ...")
    train_cmd.train(plan, progress=args.progress, command=f"psl train --config {CONFIG} "
                                                           f"--scenario {SCENARIO} --timesteps {args.timesteps} "
                                                           f"--seed {args.seed} --out {agent_dir}")
    train_s = time.perf_counter() - t0

    from .bench import run_benchmark

    print(f"[2/2] benchmarking ppo, {', '.join(BASELINES)} on {args.episodes} held-out episodes x "
          f"{args.rounds} rounds ...")
    methods = [f"ppo:{agent_dir}", *BASELINES]
    t1 = time.perf_counter()
    results = run_benchmark(SCENARIO, methods, args.rounds, args.episodes, BENCH_SEED, out, progress=args.progress)
    bench_s = time.perf_counter() - t1
    _plot_training(agent_dir / "eval.csv", out / "training.png")
    report = _report(results, methods, agent_dir, out, train_s, bench_s, args)
    (out / "report.md").write_text(report)
    print()
    print((out / "results.md").read_text())
    print(f"report:      {out / 'report.md'}")
    print(f"results:     {out / 'results.json'} (also results.md, results.csv, rounds.csv)")
    print(f"plots:       {out / 'latency.png'}, {out / 'phases.png'}, {out / 'latency_cdf.png'}, "
          f"{out / 'training.png'}")
    print(f"agent:       {agent_dir} (model.zip, checkpoints/, eval.csv)")
    print(f"TensorBoard: {agent_dir / 'tb'}")
    print(f"  open it with: tensorboard --logdir {agent_dir / 'tb'}   (then browse http://localhost:6006)")
    return 0


def _eval_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _plot_training(eval_csv: Path, png: Path) -> None:
    rows = _eval_rows(eval_csv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        steps = [int(r["timesteps"]) for r in rows]
        ax.plot(steps, [float(r["latency_s"]) for r in rows], "o-", label="PPO (evaluation)")
        for name in ("epsl-bcd", "fixed"):
            key = f"{name}_latency_s"
            if key in rows[0]:
                ax.axhline(float(rows[0][key]), linestyle="--", color="C1" if name == "epsl-bcd" else "C2",
                           label=name)
    ax.set_xlabel("training steps")
    ax.set_ylabel("mean round latency (s)")
    ax.set_title("PPO during training, held-out evaluation episodes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def _report(results: dict, methods: list[str], agent_dir: Path, out: Path, train_s: float, bench_s: float,
            args: argparse.Namespace) -> str:
    stats = results["methods"]
    agent = methods[0]
    bcd = stats["epsl-bcd"]["mean_latency_s"]
    lines = [
        "# psl demo: a learned scheduler against the optimizers",
        "",
        f"Scenario `{SCENARIO}` (ResNet-18 at 3x64x64, EPSL with phi = 0.5, 5 clients, 10 subchannels, "
        f"perfect CSI). PPO with the solver-assisted codec (it picks the common cut; the EPSL-BCD inner "
        f"solver completes subchannels and power) trained for {args.timesteps} steps in {train_s:.0f} s, "
        f"then benchmarked with every other method on {args.episodes} held-out episodes x {args.rounds} "
        f"rounds (seeds {BENCH_SEED}..{BENCH_SEED + args.episodes - 1}) in {bench_s:.0f} s.",
        "",
        "| method | mean latency s | IQM s | 95% CI s | vs epsl-bcd | decision ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in methods:
        s = stats[name]
        lo, hi = s["ci95_latency_s"]
        lines.append(f"| {name} | {s['mean_latency_s']:.3f} | {s['iqm_latency_s']:.3f} | [{lo:.3f}, {hi:.3f}] | "
                     f"{s['mean_latency_s'] / bcd - 1:+.1%} | {s['decision_ms_mean']:.3f} |")
    rows = _eval_rows(agent_dir / "eval.csv")
    lines += ["", "Evaluation during training (held-out seeds 10000.., `eval.csv`):", "",
              "| steps | PPO latency s | gap to epsl-bcd | gap to fixed |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['timesteps']} | {float(r['latency_s']):.3f} | {float(r['gap_to_epsl-bcd']):+.1%} | "
                     f"{float(r['gap_to_fixed']):+.1%} |")
    lines += ["", "Files:", "",
              "- `results.json`, `results.md`, `results.csv`, `rounds.csv`: the benchmark (`psl bench` format)",
              "- `latency.png`, `phases.png`, `latency_cdf.png`: benchmark plots; `training.png`: evaluation "
              "during training",
              f"- `{agent_dir.relative_to(out)}/`: the trained agent (`model.zip`, `vecnormalize.pkl`, "
              f"`checkpoints/`, `eval.csv`, `config.yaml`)",
              f"- TensorBoard: `tensorboard --logdir {agent_dir / 'tb'}`",
              "", "Reproduce the benchmark alone:", "", "```", results["command"], "```", ""]
    return "\n".join(lines)
