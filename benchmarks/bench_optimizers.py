"""Speed and quality of the optimizers: decision times, oracle time, EPSL-BCD's gap to the oracle.

Prints:
- EPSL-BCD ms per decision at N=10, M=20 with the ResNet-18 profiles (target <= 5 ms), and the
  inner solver's ms per call for one cut (greedy start only, and with the BCD refinement);
- EPSL-BCD ms per decision as the network grows: N/M = 10/20, 30/60, 60/120, 100/200, with the
  numpy and the compiled (numba) backend on the same rounds, and whether they decide the same
  (after one untimed warm-up decision: numba compiles on its first call);
- the oracle's time per round on small-exact (target <= 1 s);
- on small-exact over 240 rounds, the median and p95 gap of EPSL-BCD to the oracle (targets <= 1%
  and <= 5%), and whether any method beat the oracle on the same round;
- the same for per-device cuts (EdgeSplit-alt against the per-device oracle) on small-exact.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from agents.registry import make_decision_maker  # noqa: E402
from psl_env.resources.context import solve_resources  # noqa: E402
from psl_env.system.scenario import load_scenario  # noqa: E402
from psl_env.system.simulator import NetworkSimulator  # noqa: E402

ROUNDS, EPISODES = 60, 4  # small-exact: 240 rounds
PER_DEVICE_ROUNDS = 25  # x 2 episodes; the per-device oracle takes ~0.1 s per round


def _time_decisions(scenario, rounds: int = 100, inner: bool = True) -> tuple[float, float, float, float]:
    sim = NetworkSimulator(scenario)
    model = sim.latency_model
    dm = make_decision_maker("epsl-bcd", model)
    state = sim.reset(0)
    dm.decide(state.observation())  # warm-up: compiled kernels compile on their first call
    times, inner_greedy, inner_bcd = [], [], []
    for _ in range(rounds):
        obs = state.observation()
        t0 = time.perf_counter()
        alloc = dm.decide(obs)
        times.append(time.perf_counter() - t0)
        cut = model.num_blocks // 2
        for refine, acc in ((False, inner_greedy), (True, inner_bcd)) if inner else ():
            t0 = time.perf_counter()
            solve_resources(model, obs, cut, refine=refine)
            acc.append(time.perf_counter() - t0)
        state = sim.step(alloc)[1]
    ms = 1e3 * np.asarray(times)
    inner_ms = (1e3 * float(np.mean(inner_greedy)), 1e3 * float(np.mean(inner_bcd))) if inner else (0.0, 0.0)
    return float(ms.mean()), float(np.percentile(ms, 95)), *inner_ms


SCALES = ((10, 20, 50), (30, 60, 30), (60, 120, 20), (100, 200, 10))  # N, M, rounds timed


def scaling() -> None:
    """EPSL-BCD's decision time as N and M grow, numpy and compiled backends on the same rounds
    (ResNet-18 at 64x64, epsl-resnet18's radio), and whether they decide the same."""
    print("\nepsl-bcd decision time as the network grows (epsl-resnet18; one warm-up decision untimed)")
    print("| N | M | numpy mean ms | numpy p95 | numba mean ms | numba p95 | ratio | same decisions |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for n, m, rounds in SCALES:
        sim = NetworkSimulator(load_scenario("epsl-resnet18", [f"num_clients={n}", f"num_subchannels={m}"]))
        dms = {b: make_decision_maker(f"epsl-bcd:backend={b}", sim.latency_model) for b in ("numpy", "numba")}
        state = sim.reset(0)
        for dm in dms.values():
            dm.decide(state.observation())  # warm-up: the kernels compile (or load) on their first call
        times = {b: [] for b in dms}
        same = True
        for _ in range(rounds):
            obs = state.observation()
            allocs = {}
            for b, dm in dms.items():
                t0 = time.perf_counter()
                allocs[b] = dm.decide(obs)
                times[b].append(1e3 * (time.perf_counter() - t0))
            a, c = allocs["numpy"], allocs["numba"]
            same &= bool(np.array_equal(a.cut, c.cut) and np.array_equal(a.owner, c.owner)
                         and np.allclose(a.power_w, c.power_w, rtol=1e-12, atol=0.0))
            state = sim.step(allocs["numba"])[1]
        t_np, t_nb = np.asarray(times["numpy"]), np.asarray(times["numba"])
        print(f"| {n} | {m} | {t_np.mean():.1f} | {np.percentile(t_np, 95):.1f} | {t_nb.mean():.2f} | "
              f"{np.percentile(t_nb, 95):.2f} | {t_np.mean() / t_nb.mean():.0f}x | {'yes' if same else 'NO'} |",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only-scaling", action="store_true", help="only the decision times as the network grows")
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    scaling()
    if args.only_scaling:
        return
    print("\nEPSL-BCD decision time, N=10 clients, M=20 subchannels (target <= 5 ms per decision)")
    for profile in ("resnet18-64", "resnet18-32"):
        scen = load_scenario("epsl-resnet18", [f"model={profile}", "num_clients=10", "num_subchannels=20"])
        mean, p95, greedy, bcd = _time_decisions(scen)
        print(f"  {profile:<12} decide: mean {mean:.2f} ms, p95 {p95:.2f} ms   "
              f"solve_resources (one cut): greedy {greedy:.2f} ms, with BCD {bcd:.2f} ms")

    sim = NetworkSimulator("small-exact")
    model = sim.latency_model
    oracle = make_decision_maker("oracle", model)
    others = {name: make_decision_maker(name, model, seed=1)
              for name in ("epsl-bcd", "greedy", "edgesplit-alt", "fixed", "random")}
    t_oracle, gaps, below = [], {name: [] for name in others}, {name: 0 for name in others}
    for ep in range(EPISODES):
        state = sim.reset(1000 + ep)
        for _ in range(ROUNDS):
            obs = state.observation()
            t0 = time.perf_counter()
            best = model.evaluate(state, oracle.decide(obs)).total
            t_oracle.append(time.perf_counter() - t0)
            follow = None
            for name, dm in others.items():
                alloc = dm.decide(obs)
                lat = model.evaluate(state, alloc).total
                gaps[name].append(lat / best - 1.0)
                below[name] += lat < best * (1 - 1e-9)
                follow = alloc if name == "epsl-bcd" else follow
            state = sim.step(follow)[1]
    t = 1e3 * np.asarray(t_oracle)
    print(f"\noracle on small-exact ({oracle.num_candidates} candidates): mean {t.mean():.1f} ms, "
          f"max {t.max():.1f} ms per round (target <= 1000 ms)")
    n = ROUNDS * EPISODES
    print(f"\ngap to the oracle on small-exact, {n} rounds (same states for every method; "
          "targets for epsl-bcd: median <= 1%, p95 <= 5%)")
    for name, g in gaps.items():
        g = 100.0 * np.asarray(g)
        print(f"  {name:<14} median {np.median(g):7.3f}%  p95 {np.percentile(g, 95):8.3f}%  max {g.max():8.2f}%  "
              f"optimal in {np.mean(g < 1e-7) * 100:5.1f}% of rounds")
    print("  (the states follow epsl-bcd's decisions, so fixed and random also pay the migration away from its cut)")
    print(f"  any method below the oracle: {'yes ' + str(below) if any(below.values()) else 'no'}")

    # Per-device cuts (EdgeSplit) on the same small instance: the oracle enumerates cut vectors too.
    scen = load_scenario("small-exact", ["scheme=edgesplit", "phi=0", "downlink=unicast"])
    sim = NetworkSimulator(scen)
    model = sim.latency_model
    oracle = make_decision_maker("oracle", model)
    others = {name: make_decision_maker(name, model) for name in ("edgesplit-alt", "edgesplit-alt:polish=true",
                                                                   "epsl-bcd")}
    t_oracle, gaps, below = [], {name: [] for name in others}, {name: 0 for name in others}
    for ep in range(2):
        state = sim.reset(2000 + ep)
        for _ in range(PER_DEVICE_ROUNDS):
            obs = state.observation()
            t0 = time.perf_counter()
            oracle_alloc = oracle.decide(obs)
            t_oracle.append(time.perf_counter() - t0)
            best = model.evaluate(state, oracle_alloc).total
            for name, dm in others.items():
                lat = model.evaluate(state, dm.decide(obs)).total
                gaps[name].append(lat / best - 1.0)
                below[name] += lat < best * (1 - 1e-9)
            state = sim.step(oracle_alloc)[1]
    t = 1e3 * np.asarray(t_oracle)
    print(f"\nper-device cuts (small-exact with scheme=edgesplit), {2 * PER_DEVICE_ROUNDS} rounds on the oracle's "
          f"states; per-device oracle ({oracle.num_candidates} candidates): mean {t.mean():.0f} ms per round")
    for name, g in gaps.items():
        g = 100.0 * np.asarray(g)
        print(f"  {name:<26} median {np.median(g):7.3f}%  p95 {np.percentile(g, 95):8.3f}%  max {g.max():8.2f}%")
    print("  (epsl-bcd keeps one common cut, so it also pays the migration away from the oracle's per-device cuts)")
    print(f"  any method below the oracle: {'yes ' + str(below) if any(below.values()) else 'no'}")


if __name__ == "__main__":
    main()
