"""Speed of the latency model: one allocation, and 10,000 allocations batched.

Setting: N=10 clients, M=20 subchannels, ResNet-18 (3x32x32) profile, EPSL with broadcast downlink.
Targets: <= 30 us per single evaluation, <= 30 ms for 10,000 batched (the batch runs the compiled
kernel when numba is installed, else numpy).
"""

from __future__ import annotations

import numpy as np

from psl_env.system.allocation import fixed_allocation
from psl_env.system.scenario import load_scenario
from psl_env.system.simulator import NetworkSimulator
from timing import best_seconds


def main() -> None:
    scenario = load_scenario("epsl-resnet18", ["num_clients=10", "num_subchannels=20", "model=resnet18-32"])
    sim = NetworkSimulator(scenario)
    model = sim.latency_model
    state = sim.reset(0)
    alloc = fixed_allocation(sim.profile.num_blocks, state.power_budget_w, scenario.num_subchannels)
    single = best_seconds(lambda: model.evaluate(state, alloc), repeats=5, number=2000)

    batch = 10_000
    rng = np.random.default_rng(0)
    n, m = scenario.num_clients, scenario.num_subchannels
    gains = np.stack([sim.advance(alloc.cut, 1.0).gains for _ in range(batch)])
    flops = np.repeat(state.client_flops[None], batch, axis=0)
    cut = np.repeat(rng.integers(1, sim.profile.num_blocks, (batch, 1)), n, axis=1)
    owner = np.stack([rng.permutation(np.arange(m) % n) for _ in range(batch)])
    power = rng.uniform(0.0, 0.2 / 2, (batch, m))
    batched = best_seconds(lambda: model.price(gains, flops, cut, owner, power, cut, False),
                           repeats=5, number=3)

    print(f"latency model, N={n} M={m} ResNet-18 ({scenario.scheme}, phi={scenario.phi}, {scenario.downlink} downlink)")
    print(f"  one allocation:          {single * 1e6:8.1f} us   (target <= 30 us)")
    print(f"  {batch:,} allocations batched: {batched * 1e3:8.1f} ms   (target <= 30 ms; "
          f"{batched / batch * 1e9:.0f} ns each)")


if __name__ == "__main__":
    main()
