"""Golden results: seeded benchmark rounds and environment trajectories, recorded and compared.

The redesigns of the simulator must keep every seeded result (to 1e-9 relative). This module records
what the public entry points produce (``psl bench`` with round traces, ``PSL-v0`` and its vector env
with every codec) as plain JSON and compares two recordings. Timing fields are never recorded.

    python -m tests.golden.golden record DIR [--all]   # --all: the shipped scenarios too (large)
    python -m tests.golden.golden compare DIR_A DIR_B
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RTOL = 1e-9
ATOL = 1e-12
SKIP_KEYS = ("decision_ms", "decision_ms_mean", "decision_ms_p95", "command")

# Committed cases: small enough to hold as files (tests/golden/data).
SMALL_VARIANTS = {
    "small-exact": [],
    "small-psl-doppler-mobile-delayed": ["scheme=psl", "phi=0", "csi=delayed", "channel.correlation=doppler",
                                         "channel.mobility=true"],
    "small-sfl-unicast": ["scheme=sfl", "phi=0", "downlink=unicast"],
    "small-edgesplit": ["scheme=edgesplit", "phi=0", "downlink=ignore", "sync_period=3"],
}
BENCH_METHODS = ("epsl-bcd", "edgesplit-alt", "greedy", "fixed", "random")
CODECS = ("dict", "box", "multidiscrete", "assisted")


def small_cases() -> list[dict]:
    cases = []
    for name, overrides in SMALL_VARIANTS.items():
        cases.append({"kind": "bench", "name": f"bench-{name}", "scenario": "small-exact", "overrides": overrides,
                      "methods": [*BENCH_METHODS, "oracle"], "rounds": 8, "episodes": 2})
        for codec in CODECS:
            cases.append({"kind": "env", "name": f"env-{name}-{codec}", "scenario": "small-exact",
                          "overrides": overrides + ["rounds=6"], "action_type": codec, "steps": 14})
        cases.append({"kind": "vector", "name": f"vector-{name}-box", "scenario": "small-exact",
                      "overrides": overrides + ["rounds=4"], "action_type": "box", "num_envs": 3, "steps": 9})
    return cases


def shipped_cases() -> list[dict]:
    cases = []
    for scen in ("epsl-resnet18", "edgesplit-vgg16", "small-exact", "digits-train"):
        methods = [*BENCH_METHODS] + (["oracle"] if scen == "small-exact" else [])
        cases.append({"kind": "bench", "name": f"shipped-bench-{scen}", "scenario": scen, "overrides": [],
                      "methods": methods, "rounds": 30, "episodes": 2})
        for codec in CODECS:
            cases.append({"kind": "env", "name": f"shipped-env-{scen}-{codec}", "scenario": scen, "overrides": ["rounds=10"],
                          "action_type": codec, "steps": 25})
        cases.append({"kind": "vector", "name": f"shipped-vector-{scen}-box", "scenario": scen,
                      "overrides": ["rounds=5"], "action_type": "box", "num_envs": 4, "steps": 12})
    for name, extra in {"doppler-mobile-delayed": ["csi=delayed", "channel.correlation=doppler", "channel.mobility=true"],
                        "unicast-sync": ["downlink=unicast", "sync_period=2"]}.items():
        cases.append({"kind": "bench", "name": f"shipped-bench-epsl-resnet18-{name}", "scenario": "epsl-resnet18",
                      "overrides": extra, "methods": list(BENCH_METHODS), "rounds": 20, "episodes": 2})
        cases.append({"kind": "vector", "name": f"shipped-vector-epsl-resnet18-{name}", "scenario": "epsl-resnet18",
                      "overrides": extra + ["rounds=5"], "action_type": "multidiscrete", "num_envs": 4, "steps": 12})
    return cases


def _plain(x: Any) -> Any:
    """JSON-able copy (arrays to lists, numpy scalars to Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items() if k not in SKIP_KEYS}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return [_plain(v) for v in x]
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def run_bench(case: dict) -> dict:
    from trainers.bench import run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        res = run_benchmark(case["scenario"], case["methods"], case["rounds"], case["episodes"], seed=0,
                            out_dir=tmp, trace=True, overrides=case["overrides"], num_resamples=200,
                            hindsight="off")  # the recorded figures predate it; tests/agents/test_hindsight.py
        trace = [json.loads(line) for line in (Path(tmp) / "trace.jsonl").read_text().splitlines()]
    rounds = [{k: rec[k] for k in ("method", "episode", "round", "cut", "owner", "power_w", "latency_s")}
              for rec in trace]
    return {"methods": _plain(res["methods"]), "rounds": rounds}


def _info(info: dict) -> dict:
    keep = {k: v for k, v in info.items() if not k.startswith("_") and k not in ("final_obs", "final_info")}
    return _plain(keep)


def run_env(case: dict) -> dict:
    import gymnasium as gym

    import psl_env  # noqa: F401

    env = gym.make("psl_env/PSL-v0", scenario=case["scenario"], overrides=case["overrides"],
                   action_type=case["action_type"])
    env.action_space.seed(11)
    obs, _ = env.reset(seed=7)
    steps = [{"obs": _plain(obs)}]
    for _ in range(case["steps"]):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        steps.append({"obs": _plain(obs), "reward": float(reward), "terminated": term, "truncated": trunc,
                      "info": _info(info)})
        if term or trunc:
            obs, _ = env.reset()
            steps.append({"obs": _plain(obs)})
    env.close()
    return {"steps": steps}


def run_vector(case: dict) -> dict:
    import gymnasium as gym

    import psl_env  # noqa: F401

    envs = gym.make_vec("psl_env/PSL-v0", num_envs=case["num_envs"], vectorization_mode="vector_entry_point",
                        scenario=case["scenario"], overrides=case["overrides"], action_type=case["action_type"])
    envs.action_space.seed(11)
    obs, _ = envs.reset(seed=3)
    steps = [{"obs": _plain(obs)}]
    for _ in range(case["steps"]):
        obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
        steps.append({"obs": _plain(obs), "reward": _plain(reward), "terminated": _plain(term),
                      "truncated": _plain(trunc), "info": _info(info)})
    envs.close()
    return {"steps": steps}


RUNNERS = {"bench": run_bench, "env": run_env, "vector": run_vector}


def run_case(case: dict) -> dict:
    return {"case": case, "result": RUNNERS[case["kind"]](case)}


def compare(a: Any, b: Any, path: str = "", rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Differences between two recordings (floats to ``rtol``/``atol``, everything else exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: keys differ {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for k in sorted(set(a) & set(b)):
            out += compare(a[k], b[k], f"{path}.{k}", rtol, atol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += compare(x, y, f"{path}[{i}]", rtol, atol)
        return out
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) \
                or not isinstance(b, (int, float)):
            return [f"{path}: {a!r} != {b!r}"]
        if math.isnan(a) and math.isnan(b) or a == b:
            return []
        if math.isfinite(a) and math.isfinite(b) and abs(a - b) <= atol + rtol * max(abs(a), abs(b)):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def record(out_dir: Path, cases: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        data = run_case(case)
        (out_dir / f"{case['name']}.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")
        print(f"recorded {case['name']}", flush=True)


def compare_dirs(a: Path, b: Path) -> int:
    bad = 0
    for fa in sorted(a.glob("*.json")):
        fb = b / fa.name
        if not fb.exists():
            print(f"{fa.name}: missing in {b}")
            bad += 1
            continue
        diffs = compare(json.loads(fa.read_text())["result"], json.loads(fb.read_text())["result"])
        print(f"{fa.name}: {'ok' if not diffs else f'{len(diffs)} differences'}")
        for d in diffs[:8]:
            print("   ", d)
        bad += bool(diffs)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out")
    rec.add_argument("--all", action="store_true")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        record(Path(args.out), small_cases() + (shipped_cases() if args.all else []))
        return 0
    return 1 if compare_dirs(Path(args.a), Path(args.b)) else 0


if __name__ == "__main__":
    sys.exit(main())
