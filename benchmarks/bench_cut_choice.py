"""Choosing the common cut per episode: what the observation allows and what trained agents pick.

On ``epsl-resnet18`` the devices are redrawn every episode and the best common cut differs between
episodes (docs/results.md). This script separates two questions: does the observation tell which
cut is best, and do trained policies use it? On held-out episodes it measures

1. per episode, the mean round latency of every common cut held for R rounds (the ``assisted`` codec:
   EPSL-BCD's inner solver at that cut; the cut never changes, so nothing migrates) and the best one;
2. yardsticks: one cut for every episode (each cut, and the best such cut), and a supervised
   classifier (scikit-learn MLP) trained on the round-0 observations of training episodes (seeds
   ``--train-seed`` ...) to predict the best cut: its regret is what the observation makes possible
   for a scheduler that picks the cut once per episode;
3. trained policies (``--policy NAME=RUN_DIR``, ``psl train`` run folders of any codec): the cut
   they play in round 0 and their mean latency over the R rounds (migrations included).

Regret = mean over episodes of latency / latency of that episode's best constant cut - 1. Episode k
of a run is env k of a vector env reset with the run's seed (seed + k, as in ``psl train``).

    python benchmarks/bench_cut_choice.py             # smoke (make bench): 64 training, 32 held-out episodes
    python benchmarks/bench_cut_choice.py --full --out runs/cut-choice --policy ppo=runs/train/ppo-s0

Writes ``OUT/cut_choice.json`` and ``OUT/cut_choice.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402

import psl_env  # noqa: E402,F401 - registers the env ids
from psl_env.models.profile import load_profile  # noqa: E402
from psl_env.system.latency import LatencyModel  # noqa: E402
from psl_env.system.scenario import load_scenario  # noqa: E402

ENV_ID = "psl_env/PSL-v0"


def _vector_env(scenario: str, overrides: list[str], episodes: int, config: dict) -> gym.vector.VectorEnv:
    return gym.make_vec(ENV_ID, num_envs=episodes, vectorization_mode="vector_entry_point",
                        config={**config, "scenario": scenario, "overrides": overrides or None})


def _assisted_env(scenario: str, overrides: list[str], episodes: int) -> gym.vector.VectorEnv:
    return _vector_env(scenario, overrides, episodes, {"action_type": "assisted"})


def play_cuts(env: gym.vector.VectorEnv, seed: int, cuts: list) -> tuple[np.ndarray, np.ndarray]:
    """Reset ``env`` with ``seed`` and play ``cuts[r]`` (cut indices, a scalar or one per episode) in
    round r: (round-0 observations [E, D], round latencies s [R, E])."""
    obs0, _ = env.reset(seed=seed)
    episodes = obs0.shape[0]
    latency = np.array([env.step(np.broadcast_to(cut, (episodes,)).copy())[4]["latency_s"] for cut in cuts])
    return obs0, latency


def constant_cut_latencies(scenario: str, overrides: list[str], seed: int, episodes: int,
                           rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """(round-0 observations [E, D] float32, mean round latency s of every cut held for ``rounds``
    rounds [E, C]; column j is cut j + 1)."""
    env = _assisted_env(scenario, overrides, episodes)
    played = [play_cuts(env, seed, [action] * rounds) for action in range(int(env.single_action_space.n))]
    env.close()
    return played[0][0], np.stack([lat.mean(axis=0) for _, lat in played], axis=1)


def switch_costs_s(scenario: str, overrides: list[str], seed: int, episodes: int, start: int) -> np.ndarray:
    """[C] mean extra latency s of the round that moves the cut from ``start`` (index) to each cut:
    that round's latency minus the next round's at the new cut (the migration, with the round's fading)."""
    env = _assisted_env(scenario, overrides, episodes)
    extra = []
    for action in range(int(env.single_action_space.n)):
        lat = play_cuts(env, seed, [start, action, action])[1]
        extra.append(float(np.mean(lat[1] - lat[2])))
    env.close()
    return np.array(extra)


def regret(latency: np.ndarray, cut_index: np.ndarray) -> float:
    """Mean over episodes of latency[e, cut_index[e]] / min_j latency[e, j] - 1."""
    chosen = latency[np.arange(len(latency)), cut_index]
    return float(np.mean(chosen / latency.min(axis=1)) - 1.0)


def classifier_cuts(train_obs: np.ndarray, train_best: np.ndarray, test_obs: np.ndarray, seed: int = 0) -> np.ndarray:
    """The best-cut index predicted for ``test_obs`` by an MLP fit on (train_obs, train_best)."""
    from sklearn.neural_network import MLPClassifier  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    scaler = StandardScaler().fit(train_obs)
    if len(np.unique(train_best)) == 1:
        return np.full(len(test_obs), train_best[0])
    clf = MLPClassifier((128, 128), max_iter=500, random_state=seed)
    clf.fit(scaler.transform(train_obs), train_best)
    return clf.predict(scaler.transform(test_obs)).astype(int)


def policy_rollout(run_dir: str, scenario: str, overrides: list[str], seed: int, episodes: int,
                   rounds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A trained policy on the episodes: (round-0 cut index [E], mean round latency s [E], cut changes [E])."""
    from agents.sb3_policy import POLICY_ENV_KEYS, SB3Policy  # noqa: PLC0415 - SB3 only when a policy is given

    scen = load_scenario(scenario, overrides or None)
    policy = SB3Policy.load(run_dir, LatencyModel(scen, load_profile(scen.model)))
    config = {k: v for k, v in policy.env.config.items() if k in POLICY_ENV_KEYS}
    env = _vector_env(scenario, overrides, episodes, config)
    obs, _ = env.reset(seed=seed)
    total = np.zeros(episodes)
    changes = np.zeros(episodes, dtype=int)
    first = prev = None
    for _ in range(rounds):
        seen = policy.normalizer.normalize_obs(obs) if policy.normalizer is not None else obs
        action, _ = policy.policy.predict(seen, deterministic=True)
        obs, _, _, _, info = env.step(action)
        cut = np.asarray(info["allocation"]["cut"])[:, 0] - 1
        if first is None:
            first = cut.copy()
        else:
            changes += cut != prev
        prev = cut
        total += info["latency_s"]
    env.close()
    return first, total / rounds, changes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="epsl-resnet18")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--full", action="store_true", help="4000 training and 1000 held-out episodes, 100 rounds")
    ap.add_argument("--train-episodes", type=int, default=None)
    ap.add_argument("--episodes", type=int, default=None, help="held-out episodes")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of a policy's rollout (default 100; 5 smoke)")
    ap.add_argument("--label-rounds", type=int, default=5, help="rounds each constant cut is held for its label")
    ap.add_argument("--train-seed", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1000, help="first held-out episode seed")
    ap.add_argument("--policy", action="append", default=[], metavar="NAME=RUN_DIR")
    ap.add_argument("--out", default="runs/cut-choice")
    args = ap.parse_args(argv)
    n_train = args.train_episodes or (4000 if args.full else 64)
    n_test = args.episodes or (1000 if args.full else 32)
    rounds = args.rounds or (100 if args.full else 5)
    policies = []
    for item in args.policy:
        name, sep, run = item.partition("=")
        if not sep or not name or not (Path(run) / "model.zip").is_file():
            ap.error(f"--policy: {item!r} is not allowed; allowed: NAME=RUN_DIR with RUN_DIR/model.zip")
        policies.append((name, run))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    train_obs, train_lat = constant_cut_latencies(args.scenario, args.overrides, args.train_seed, n_train,
                                                  args.label_rounds)
    test_obs, test_lat = constant_cut_latencies(args.scenario, args.overrides, args.seed, n_test, args.label_rounds)
    best = test_lat.argmin(axis=1)
    cuts = test_lat.shape[1]
    start = int(np.bincount(best).argmax())
    switch = switch_costs_s(args.scenario, args.overrides, args.seed, min(n_test, 200), start)
    rows = [{"method": f"cut {j + 1} in every episode", "regret": regret(test_lat, np.full(n_test, j))}
            for j in range(cuts)]
    single = min(range(cuts), key=lambda j: rows[j]["regret"])
    rows[single]["method"] += " (the best single cut)"
    predicted = classifier_cuts(train_obs, train_lat.argmin(axis=1), test_obs)
    rows.append({"method": f"supervised classifier on the round-0 observation ({n_train} training episodes)",
                 "regret": regret(test_lat, predicted), "accuracy": float(np.mean(predicted == best)),
                 "round0_cuts": np.bincount(predicted + 1, minlength=cuts + 1).tolist()})
    rows.append({"method": "best constant cut of each episode (hindsight)", "regret": 0.0,
                 "round0_cuts": np.bincount(best + 1, minlength=cuts + 1).tolist()})
    # the rollout yardstick: each episode's best constant cut for the rollout's rounds
    if policies:
        env = _assisted_env(args.scenario, args.overrides, n_test)
        best_mean = play_cuts(env, args.seed, [best] * rounds)[1].mean(axis=0)
        env.close()
    for name, run in policies:
        first, mean_s, changes = policy_rollout(run, args.scenario, args.overrides, args.seed, n_test, rounds)
        rows.append({"method": f"policy {name} ({run})", "regret": regret(test_lat, first),
                     "accuracy": float(np.mean(first == best)),
                     "round0_cuts": np.bincount(first + 1, minlength=cuts + 1).tolist(),
                     "rollout_over_best_constant": float(mean_s.mean() / best_mean.mean() - 1.0),
                     "cut_changes_per_episode": float(changes.mean())})
    seconds = time.perf_counter() - t0

    lines = [f"# Choosing the cut per episode: {args.scenario} {' '.join(args.overrides)}".rstrip(),
             "",
             f"{n_test} held-out episodes (seeds {args.seed}..), each cut held {args.label_rounds} rounds for the labels; "
             f"policies roll out {rounds} rounds; {seconds:.0f} s.",
             "",
             f"Mean round latency of the best constant cut: {test_lat.min(axis=1).mean():.4g} s. A round that "
             f"moves the cut from cut {start + 1} (the most common best cut) costs this much more than the next "
             "round (s): " + ", ".join(f"cut {j + 1}: {x:.3g}" for j, x in enumerate(switch)) + ".",
             "",
             "| method | round-0 regret | accuracy | round-0 cuts (count by cut) | rollout over best constant cut "
             "| cut changes / episode |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        counts = r.get("round0_cuts")
        counts = {j: c for j, c in enumerate(counts) if c} if counts else "-"
        acc = f"{r['accuracy']:.1%}" if "accuracy" in r else "-"
        roll = f"{r['rollout_over_best_constant']:+.1%}" if "rollout_over_best_constant" in r else "-"
        chg = f"{r['cut_changes_per_episode']:.1f}" if "cut_changes_per_episode" in r else "-"
        lines.append(f"| {r['method']} | {r['regret']:+.1%} | {acc} | {counts} | {roll} | {chg} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "cut_choice.md").write_text(text)
    (out / "cut_choice.json").write_text(json.dumps(
        {"scenario": args.scenario, "overrides": args.overrides, "train_episodes": n_train, "episodes": n_test,
         "seed": args.seed, "train_seed": args.train_seed, "label_rounds": args.label_rounds, "rounds": rounds,
         "best_cut_counts": np.bincount(best + 1, minlength=cuts + 1).tolist(), "rows": rows,
         "switch_from_cut": start + 1, "switch_cost_s": switch.tolist(),
         "mean_best_constant_latency_s": float(test_lat.min(axis=1).mean()),
         "seconds": seconds}, indent=2))
    print(f"wrote {out / 'cut_choice.md'} and {out / 'cut_choice.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
