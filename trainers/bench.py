"""``psl bench``: every decision maker on the same seeded rounds; tables, plots and traces.

For each episode e (seed S + e), every method gets its own ``NetworkSimulator`` reset with that
seed, so the devices and the channel's random draws are the same for all methods. With a fixed
fading correlation (``channel.correlation`` a number) and no mobility, every method sees exactly the
same gains round by round. With ``correlation: doppler`` (or ``mobility``) the next round's gains
depend on this round's latency, so trajectories diverge after round 0 and the per-round gap to
the oracle compares different channel draws. Each method also carries its own previous cut
(migration), so a method can come in below the oracle on a round; ``rounds_below`` counts that.

Decisions see ``state.observation()``; rounds are priced on the true gains. Before the first timed
round every method makes one untimed decision (on episode 0's first round, then everything is
reset), so imports, caches and compilation are not charged to its decision time.

Scenario: ``--scenario`` if given; otherwise, when ``--methods`` holds trained policies
(``ppo:DIR``), the scenario the first of them was trained on (``DIR/config.yaml``, with the
training overrides applied), so a benchmark of a run needs no scenario repeated; otherwise
``epsl-resnet18`` (``digits-train`` with ``--train``). ``--set`` applies on top in every case. A
warning names every policy whose training scenario differs from the benchmark's (other than in
``name``, ``seed`` and ``rounds``, which the benchmark sets itself). Outputs in ``--out``:
results.json (figures per method, the scenario, the command), results.md, results.csv,
rounds.csv (every round), latency.png, phases.png, latency_cdf.png and, with ``--trace``,
trace.jsonl (docs/round-trace.md).

``--train`` (time-to-accuracy, docs/training.md; default scenario ``digits-train``): every method also drives
its own ``SplitTrainingEngine``, which trains the scenario's model for real at the method's cuts,
one ``step`` per round. In episode e all engines start from the same state (training seed S + e:
same data split, partition, initial weights and batch order), each built at the method's first cut
so that no blocks move in round 0. The simulated time is the sum of the priced round latencies
(``psl_env.training.time_to_accuracy.step_time_s`` with ``training.local_iterations``); the held-out
accuracy is measured every ``training.eval_every`` rounds. Each method then also reports
``rounds_to_target``, ``sim_time_to_target_s`` (means over episodes, null unless every episode reached
``training.target_accuracy``; per-episode values in the ``*_by_episode`` lists) and
``final_accuracy`` (mean over episodes of the last measured accuracy); results.md gains a
time-to-accuracy table, and the run writes accuracy.csv (every evaluation) and accuracy_vs_time.png.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from agents.base import DecisionMaker
from agents.registry import available_decision_makers, make_decision_maker, split_specs
from psl_env.config_files import brief, clip
from psl_env.models.profile import load_profile
from psl_env.system.latency import PHASES, LatencyModel
from psl_env.system.scenario import Scenario, ScenarioError, load_scenario
from psl_env.system.simulator import NetworkSimulator
from psl_env.system.state import InfeasibleAllocation, check_allocation
from psl_env.system.trace import RoundTraceWriter, trace_record

from .cli import UsageError, add_scenario_arguments
from .paths import check_out_dir, make_out_dir
from .plots import plot_accuracy_vs_time, plot_benchmark
from .report import Column, gap_summary, markdown_table, summarize_rounds, write_results

DEFAULT_METHODS = "epsl-bcd,greedy,fixed,random"
DEFAULT_SCENARIO = "epsl-resnet18"
TRAIN_SCENARIO = "digits-train"
ROUND_FIELDS = ("method", "episode", "round", "total", *PHASES, "decision_ms", "cut")
ACCURACY_FIELDS = ("method", "episode", "round", "sim_time_s", "accuracy", "test_loss")
MAX_ROUNDS = 10**6  # rounds per episode, and rounds per method over all episodes
MAX_EPISODES = 10**4
HINDSIGHT_MODES = ("auto", "on", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scenario_arguments(parser, default=None)
    parser.epilog = (f"default scenario: the one the first trained policy (ALGO:DIR) was trained on, else "
                     f"{DEFAULT_SCENARIO}, or {TRAIN_SCENARIO} with --train")
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated decision makers, NAME or NAME:ARG (built-in: "
                             f"{', '.join(available_decision_makers())}); default {DEFAULT_METHODS}")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per episode (default: the scenario's)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes, seeded SEED, SEED+1, ... (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    parser.add_argument("--trace", action="store_true", help="also write every round to trace.jsonl")
    parser.add_argument("--train", action="store_true",
                        help="also train the scenario's model for real at each method's cuts: rounds and "
                             "simulated seconds to training.target_accuracy, accuracy against simulated time")
    parser.add_argument("--hindsight", choices=HINDSIGHT_MODES, default="auto",
                        help="the best common-cut sequence of each realized episode (agents/hindsight.py): auto "
                             "(only where it is an exact bound: the oracle runs), on (else a reference from the "
                             "epsl-bcd solver; can be slow), off (default auto)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def bench_command(scenario: str | None, overrides: Iterable[str], methods: list[str], rounds: int, episodes: int,
                  seed: int, out_dir: str | Path | None, trace: bool, train: bool = False,
                  hindsight: str = "auto") -> str:
    """The ``psl bench`` command line that reproduces a run (no ``--scenario``: the training scenario of
    the first trained policy)."""
    parts = ["psl", "bench"] + (["--scenario", scenario] if scenario is not None else [])
    for item in overrides:
        parts += ["--set", item]
    parts += ["--methods", ",".join(methods), "--rounds", str(rounds), "--episodes", str(episodes),
              "--seed", str(seed)]
    if out_dir is not None:
        parts += ["--out", str(out_dir)]
    if trace:
        parts.append("--trace")
    if train:
        parts.append("--train")
    if hindsight != "auto":
        parts += ["--hindsight", hindsight]
    return shlex.join(parts)


class _Training:
    """The real-training side of a ``--train`` run: engines, datasets and accuracy curves (imports torch)."""

    def __init__(self, scenario: Scenario, first_seed: int) -> None:
        from psl_env.training import SplitTrainingEngine, load_dataset
        from psl_env.training.time_to_accuracy import AccuracyCurve, step_time_s

        self.base = scenario
        self.tc = scenario.training
        self._engine, self._load, self._curve, self.step_time_s = (SplitTrainingEngine, load_dataset,
                                                                   AccuracyCurve, step_time_s)
        # an untrainable scenario (model, dataset files, input shape) fails here, before any output
        SplitTrainingEngine(self.scenario(first_seed))

    def scenario(self, seed: int) -> Scenario:
        return self.base.replace(seed=seed)

    def data(self, seed: int):
        """The episode's dataset (split by the training seed), shared by every method."""
        return self._load(self.tc.dataset, self.tc.data_dir, self.tc.test_fraction, seed)

    def start(self, seed: int, cut: np.ndarray, data):
        """A fresh engine at ``cut`` (same initial weights for every method) and its curve, with the
        initial model's evaluation recorded."""
        engine = self._engine(self.scenario(seed), initial_cut=cut, data=data)
        curve = self._curve(self.tc.target_accuracy)
        ev = engine.evaluate()
        curve.start(ev.accuracy, ev.loss)
        return engine, curve

    def summary(self, curves: list) -> dict:
        """The time-to-accuracy figures of one method over its episodes."""
        per = [c.summary() for c in curves]
        reached = [p["rounds_to_target"] is not None for p in per]
        every = all(reached)
        return {
            "target_accuracy": self.tc.target_accuracy,
            "episodes_reached": int(sum(reached)),
            "rounds_to_target": float(np.mean([p["rounds_to_target"] for p in per])) if every else None,
            "sim_time_to_target_s": float(np.mean([p["sim_time_to_target_s"] for p in per])) if every else None,
            "final_accuracy": float(np.mean([p["final_accuracy"] for p in per])),
            "rounds_to_target_by_episode": [p["rounds_to_target"] for p in per],
            "sim_time_to_target_s_by_episode": [p["sim_time_to_target_s"] for p in per],
            "final_accuracy_by_episode": [p["final_accuracy"] for p in per],
            "sim_time_s_by_episode": [p["sim_time_s"] for p in per],
        }


def _prepare(scenario: Scenario | str, methods: list[str], rounds: int | None, episodes: int, seed: int,
             decision_makers: dict[str, DecisionMaker] | None, overrides: Iterable[str] | None):
    """Validate everything and build the decision makers; raises ValueError before any output."""
    scen = load_scenario(scenario, list(overrides or []) or None)
    if not methods:
        raise ValueError("--methods: give at least one decision maker; allowed: "
                         f"{available_decision_makers()}")
    dupes = sorted({m for m in methods if methods.count(m) > 1})
    if dupes:
        raise ValueError(f"--methods: {dupes} listed more than once")
    if rounds is None and scen.rounds > MAX_ROUNDS:
        raise ValueError(f"--rounds: the scenario's {scen.rounds} rounds exceed the benchmark's {MAX_ROUNDS} per "
                         "episode; give --rounds")
    rounds = scen.rounds if rounds is None else rounds
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"--rounds: {brief(rounds)} is not allowed; allowed: an integer in [1, {MAX_ROUNDS}]")
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or not 1 <= episodes <= MAX_EPISODES:
        raise ValueError(f"--episodes: {brief(episodes)} is not allowed; allowed: an integer in [1, {MAX_EPISODES}]")
    if rounds * episodes > MAX_ROUNDS:
        raise ValueError(f"--rounds x --episodes: {rounds} x {episodes} is not allowed; allowed: at most "
                         f"{MAX_ROUNDS} rounds per method")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32 - episodes:
        raise ValueError(f"--seed: {brief(seed)} is not allowed; allowed: an integer in [0, 2^32 - episodes)")
    profile = load_profile(scen.model)
    model = LatencyModel(scen, profile)
    given = decision_makers or {}
    dms = {}
    for spec in methods:
        dms[spec] = given[spec] if spec in given else make_decision_maker(spec, model, seed)
    return scen, profile, model, dms, int(rounds)


def run_benchmark(scenario: Scenario | str, methods: list[str], rounds: int | None = None, episodes: int = 3,
                  seed: int = 0, out_dir: str | Path | None = None, trace: bool = False,
                  decision_makers: dict[str, DecisionMaker] | None = None, *, overrides: Iterable[str] | None = None,
                  progress: bool = False, num_resamples: int = 2000, train: bool = False,
                  scenario_arg: str | None | bool = True, hindsight: str = "auto") -> dict:
    """Run every method on the same seeded rounds and summarize.

    Args:
        scenario: a ``Scenario`` or a shipped name / YAML path.
        methods: decision-maker specs (``NAME`` or ``NAME:ARG``, see ``agents.registry``); a name
            found in ``decision_makers`` uses that object instead of the registry.
        rounds: rounds per episode (default: the scenario's ``rounds``).
        episodes: episodes, seeded ``seed``, ``seed + 1``, ...
        seed: seed of the first episode (also of the bootstrap and of seeded decision makers).
        out_dir: write results.json/.md/.csv, rounds.csv and the plots there (None: write nothing).
        trace: also write ``trace.jsonl`` (needs ``out_dir``).
        decision_makers: ready decision makers by name (e.g. trained policies).
        overrides: ``key=value`` scenario overrides.
        progress: show a tqdm progress bar.
        num_resamples: bootstrap resamples of the CI.
        train: also train for real and report time-to-accuracy (see the module docstring).
        scenario_arg: the ``--scenario`` of the reproducing command in results.json (True: the
            scenario's name or path as given; None: none, i.e. the trained policies' scenario).
        hindsight: ``"auto"``, ``"on"`` or ``"off"``: the best common-cut sequence of each realized
            episode (``agents.hindsight``), where every method met the same rounds. ``auto`` computes
            it only where it is an exact bound (the oracle runs, common cut); ``on`` also as a
            reference from the epsl-bcd solver. Adds ``hindsight_latency_s`` (its mean round latency),
            ``hindsight`` (kind, inner solver, totals and cuts per episode) and per method
            ``gap_to_hindsight`` (episode total over the hindsight total, minus 1: mean, max, per
            episode); when the rounds differed between methods, ``hindsight`` gives the reason.

    Returns:
        ``{"scenario", "command", "rounds", "episodes", "seed", "episode_seeds", "methods": {name:
        figures}, "per_round": {name: {"latency_s", "episode", "round", "decision_ms", phases...}}}``;
        results.json holds the same without ``per_round``. With ``train``: also ``"train"`` (the
        settings), the time-to-accuracy figures in every method's entry, and ``"accuracy_curves"``
        ({name: [{"episode", "round", "sim_time_s", "accuracy", "test_loss"} per episode]}, not in
        results.json: see accuracy.csv).

    Raises:
        ValueError: bad input, detected before anything runs or is written.
    """
    methods = list(methods)
    overrides = list(overrides or [])
    if hindsight not in HINDSIGHT_MODES:
        raise ValueError(f"--hindsight: {brief(hindsight)} is not allowed; allowed: {list(HINDSIGHT_MODES)}")
    scen, profile, model, dms, rounds = _prepare(scenario, methods, rounds, episodes, seed, decision_makers,
                                                 overrides)
    if trace and out_dir is None:
        raise ValueError("trace: needs an output folder")
    out = None if out_dir is None else check_out_dir(out_dir)
    if scenario_arg is True:
        scenario_arg = str(scenario) if isinstance(scenario, (str, Path)) else scen.name
    command = bench_command(scenario_arg, overrides, methods, rounds, episodes, seed, out_dir, trace, train,
                            hindsight)
    tracker = _HindsightTracker(model, hindsight, methods, episodes)
    episode_seeds = [int(seed) + e for e in range(episodes)]
    training = _Training(scen, episode_seeds[0]) if train else None
    curves: dict[str, list] = {name: [] for name in methods}

    sims = {name: NetworkSimulator(scen, profile) for name in methods}
    columns = {name: {k: [] for k in ("latency_s", "episode", "round", "decision_ms", *PHASES)} for name in methods}
    cuts: dict[str, list] = {name: [] for name in methods}
    writer = None
    if out is not None:
        make_out_dir(out)
        writer = RoundTraceWriter(out / "trace.jsonl") if trace else None
    from tqdm import tqdm

    # one untimed decision each (on a simulator of its own: the timed ones keep their episode count),
    # so first-call costs stay out of the decision times
    first_round = NetworkSimulator(scen, profile).reset(episode_seeds[0]).observation()
    for name in methods:
        dms[name].reset(episode_seeds[0])
        dms[name].decide(first_round)
    bar = tqdm(total=episodes * len(methods) * rounds, desc=f"bench {scen.name}", unit="round",
               disable=not progress, leave=False)
    try:
        for ep, ep_seed in enumerate(episode_seeds):
            data = training.data(ep_seed) if training is not None else None
            for name in methods:
                sim, dm, col = sims[name], dms[name], columns[name]
                dm.reset(ep_seed)
                state = sim.reset(ep_seed)
                engine = curve = None
                for rnd in range(rounds):
                    observed = state.observation()
                    t0 = time.perf_counter()
                    try:
                        alloc = dm.decide(observed)
                    except ValueError as err:  # not bad input any more: a failure of the method
                        raise RuntimeError(f"{name}: failed in episode {ep} round {rnd}: {err}") from err
                    dt_ms = 1e3 * (time.perf_counter() - t0)
                    try:
                        check_allocation(alloc, state, model.tables)
                    except InfeasibleAllocation as err:
                        raise RuntimeError(f"{name}: infeasible allocation in episode {ep} round {rnd}: {err}") from None
                    seen = tracker.see(name, state)
                    lat, nxt = sim.step(alloc)
                    tracker.add(name, ep, seen, observed, alloc, lat.total)
                    if training is not None:
                        if engine is None:  # built at the method's first cut: no blocks move in round 0
                            engine, curve = training.start(ep_seed, alloc.cut, data)
                            curves[name].append(curve)
                        res = engine.step(alloc.cut)
                        curve.add(training.step_time_s(lat, training.tc.local_iterations), res.evaluated,
                                  res.accuracy, res.test_loss)
                    col["latency_s"].append(lat.total)
                    col["episode"].append(ep)
                    col["round"].append(rnd)
                    col["decision_ms"].append(dt_ms)
                    for phase in PHASES:
                        col[phase].append(getattr(lat, phase))
                    cuts[name].append(alloc.cut.tolist())
                    if writer is not None:
                        writer.write(trace_record(sim.latency_model, state, alloc, lat, name,
                                                  {"decision_ms": dt_ms, "seed": ep_seed}))
                    state = nxt
                    bar.update(1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    per_round = {name: {k: np.asarray(v) for k, v in col.items()} for name, col in columns.items()}
    stats = {}
    for name in methods:
        pr = per_round[name]
        stats[name] = summarize_rounds(pr["latency_s"], pr["episode"], pr["decision_ms"],
                                       {k: pr[k] for k in PHASES}, np.asarray(cuts[name]), seed, num_resamples)
    oracle = next((m for m in methods if m.partition(":")[0] == "oracle"), None)
    if oracle is not None:
        for name in methods:
            stats[name]["gap_to_oracle"] = gap_summary(per_round[name]["latency_s"], per_round[oracle]["latency_s"])
    results = {
        "scenario": scen.to_dict(),
        "command": command,
        "rounds": rounds,
        "episodes": episodes,
        "seed": seed,
        "episode_seeds": episode_seeds,
        "methods": stats,
    }
    if oracle is not None:
        results["oracle"] = oracle
    tracker.report(results, progress)
    accuracy_curves = None
    if training is not None:
        tc = training.tc
        results["train"] = {"dataset": tc.dataset, "target_accuracy": tc.target_accuracy, "eval_every": tc.eval_every,
                            "eval_model": tc.eval_model, "local_iterations": tc.local_iterations}
        for name in methods:
            stats[name].update(training.summary(curves[name]))
        accuracy_curves = {name: [{"episode": ep, "round": list(c.eval_rounds), "sim_time_s": list(c.eval_time_s),
                                   "accuracy": list(c.eval_accuracy), "test_loss": list(c.eval_loss)}
                                  for ep, c in enumerate(curves[name])] for name in methods}
    if out is not None:
        write_results(results, out, title=f"Benchmark on {scen.name}")
        _write_rounds(per_round, cuts, out / "rounds.csv")
        plot_benchmark(results, per_round, out)
        if accuracy_curves is not None:
            with (out / "results.md").open("a") as fh:
                fh.write("\n" + time_to_accuracy_markdown(results))
            _write_accuracy(accuracy_curves, out / "accuracy.csv")
            plot_accuracy_vs_time(accuracy_curves, out / "accuracy_vs_time.png", results["train"]["target_accuracy"],
                                  title=scen.name)
    results["per_round"] = per_round
    if accuracy_curves is not None:
        results["accuracy_curves"] = accuracy_curves
    return results


class _HindsightTracker:
    """Collects what the hindsight figure needs while the methods run: the realized rounds of the
    first method, a fingerprint of every method's rounds (to check they all met the same ones) and
    every method's realized (previous cut, cut, latency)."""

    def __init__(self, model: LatencyModel, mode: str, methods: list[str], episodes: int) -> None:
        self.bound = None
        self.skip = None
        if mode != "off":
            from agents.hindsight import HindsightBound  # noqa: PLC0415

            bound = HindsightBound(model)
            if mode == "on" or bound.exact:
                self.bound = bound
        self.first = methods[0]
        self.rounds: list[list] = [[] for _ in range(episodes)]
        self.prints: dict[str, list] = {m: [] for m in methods}
        self.realized: dict[str, list] = {m: [[] for _ in range(episodes)] for m in methods}
        self.totals: dict[str, np.ndarray] = {m: np.zeros(episodes) for m in methods}

    def see(self, name: str, state) -> object:
        """Before the round is stepped: its fingerprint (and, for the first method, the round itself)."""
        if self.bound is None:
            return None
        from agents.hindsight import realized_observation  # noqa: PLC0415

        key = (state.gains.tobytes(), np.asarray(state.client_flops).tobytes(), bool(state.sync),
               None if state.present is None else np.asarray(state.present).tobytes())
        return key, (realized_observation(state) if name == self.first else None)

    def add(self, name: str, ep: int, seen, observed, alloc, latency_s: float) -> None:
        self.totals[name][ep] += latency_s
        if self.bound is None:
            return
        key, obs = seen
        self.prints[name].append(hash(key))
        if obs is not None:
            self.rounds[ep].append(obs)
        prev = observed.prev_cut if observed.has_prev else None
        self.realized[name][ep].append((prev, alloc.cut.copy(), float(latency_s)))

    def report(self, results: dict, progress: bool) -> None:
        """Adds the hindsight figures to ``results`` (see ``run_benchmark``)."""
        if self.bound is None:
            return
        first = self.prints[self.first]
        if any(p != first for p in self.prints.values()):
            results["hindsight"] = {"skipped": "the methods met different rounds (the channel or the devices "
                                               "depend on the decisions: Doppler by latency, mobility by latency "
                                               "or batteries), so no sequence is best for all of them"}
            return
        from tqdm import tqdm  # noqa: PLC0415

        costs = []
        for ep, rounds in enumerate(tqdm(self.rounds, desc="hindsight", unit="episode", disable=not progress,
                                         leave=False)):
            c = self.bound.episode_costs(rounds)
            for realized in self.realized.values():
                for t, (prev, cut, lat) in enumerate(realized[ep]):
                    self.bound.tighten(c, t, prev, cut, lat)
            costs.append(c)
        res = self.bound.result(costs)
        hind = np.asarray(res.episode_total_s)
        results["hindsight_latency_s"] = res.mean_latency_s
        results["hindsight"] = {"kind": res.kind, "inner": res.inner, "episode_total_s": res.episode_total_s,
                                "cuts": res.cuts}
        for name, totals in self.totals.items():
            gap = totals / hind - 1.0
            results["methods"][name]["gap_to_hindsight"] = {"mean": float(gap.mean()), "max": float(gap.max()),
                                                            "per_episode": gap.tolist()}


def time_to_accuracy_markdown(results: dict) -> str:
    """The time-to-accuracy section of results.md (a ``--train`` run)."""
    tr = results["train"]
    target = tr["target_accuracy"]
    rows = [{"method": name, **stats, "reached": f"{stats['episodes_reached']}/{results['episodes']}"}
            for name, stats in results["methods"].items()]
    cols = [Column("method", "method"), Column("reached", f"reached {target:.4g}"),
            Column("rounds_to_target", "rounds to target", "{:.1f}"),
            Column("sim_time_to_target_s", "simulated s to target", "{:.4g}"),
            Column("rounds_to_target_by_episode", "rounds by episode", _by_episode("{}")),
            Column("sim_time_to_target_s_by_episode", "simulated s by episode", _by_episode("{:.4g}")),
            Column("final_accuracy", "final accuracy", "{:.4f}")]
    head = (f"## Time to accuracy\n\nReal training on `{tr['dataset']}`; held-out accuracy ({tr['eval_model']}) "
            f"every {tr['eval_every']} rounds, target {target:.4g}. Simulated seconds: the sum of the priced round "
            "latencies. Means over episodes (empty unless every episode reached the target); `-`: not reached.\n\n")
    return head + markdown_table(rows, cols)


def _by_episode(fmt: str):
    return lambda values: " ".join("-" if v is None else fmt.format(v) for v in values)


def _write_accuracy(curves: dict, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ACCURACY_FIELDS)
        for name, episodes in curves.items():
            for c in episodes:
                for rnd, t, acc, loss in zip(c["round"], c["sim_time_s"], c["accuracy"], c["test_loss"]):
                    writer.writerow([name, c["episode"], rnd, repr(float(t)), repr(float(acc)), repr(float(loss))])


def _write_rounds(per_round: dict, cuts: dict, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ROUND_FIELDS)
        for name, pr in per_round.items():
            for i in range(pr["latency_s"].size):
                writer.writerow([name, int(pr["episode"][i]), int(pr["round"][i]), repr(float(pr["latency_s"][i])),
                                 *(repr(float(pr[p][i])) for p in PHASES), f"{pr['decision_ms'][i]:.4f}",
                                 " ".join(str(c) for c in cuts[name][i])])


IGNORED_KEYS = ("name", "seed", "rounds")  # the benchmark sets these itself


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def scenario_differences(trained: dict, benched: dict) -> list[str]:
    """``key: trained -> benched`` for every scenario key (dotted) that differs, except name, seed, rounds."""
    a, b = _flatten(trained), _flatten(benched)
    return [f"{k} {brief(a.get(k))} -> {brief(b.get(k))}" for k in sorted(set(a) | set(b))
            if k not in IGNORED_KEYS and a.get(k) != b.get(k)]


def _trained_scenarios(methods: list[str]) -> dict[str, dict]:
    """spec -> the scenario (as a mapping) each trained policy of ``methods`` was trained on."""
    from agents.sb3_policy import ALGO_CLASSES, read_run_config, run_folder_of  # noqa: PLC0415 - no SB3 import

    found = {}
    for spec in methods:
        name, _, arg = spec.partition(":")
        if name in ALGO_CLASSES and arg:
            run = read_run_config(run_folder_of(arg)[0])
            if not isinstance(run.get("scenario"), dict):
                raise ValueError(f"{brief(arg)}: config.yaml has no scenario mapping; give --scenario")
            found[spec] = run["scenario"]
    return found


def _bench_scenario(args: argparse.Namespace, methods: list[str]) -> tuple[Scenario | str, str | None, list[str]]:
    """The scenario to benchmark on, the ``--scenario`` that reproduces it, and warnings."""
    from psl_env.system.scenario import build_scenario  # noqa: PLC0415

    trained = _trained_scenarios(methods)
    if args.scenario is not None:
        scenario, arg = args.scenario, args.scenario
    elif trained:
        first = next(iter(trained))
        scenario, arg = build_scenario(trained[first]), None
    else:
        scenario = arg = TRAIN_SCENARIO if args.train else DEFAULT_SCENARIO
    benched = load_scenario(scenario, list(args.overrides) or None).to_dict()
    warnings = []
    for spec, scen in trained.items():
        diff = scenario_differences(scen, benched)
        if diff:
            shown = clip("; ".join(diff), 400)
            warnings.append(f"warning: {spec} was trained on another scenario than this benchmark's: {shown}")
    return scenario, arg, warnings


def run(args: argparse.Namespace) -> int:
    try:
        methods = split_specs(args.methods)
        scenario, scenario_arg, warnings = _bench_scenario(args, methods)
        for line in warnings:
            print(line, file=sys.stderr)
        results = run_benchmark(scenario, methods, args.rounds, args.episodes, args.seed, args.out, args.trace,
                                overrides=args.overrides, progress=args.progress, train=args.train,
                                scenario_arg=scenario_arg, hindsight=args.hindsight)
    except ScenarioError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None
    out = Path(args.out)
    print((out / "results.md").read_text())
    print(f"wrote {out}/results.json, results.md, results.csv, rounds.csv, latency.png, phases.png, "
          f"latency_cdf.png" + (", trace.jsonl" if args.trace else "")
          + (", accuracy.csv, accuracy_vs_time.png" if args.train else ""))
    del results
    return 0
