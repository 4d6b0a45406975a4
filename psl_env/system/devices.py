"""Heterogeneous client devices: drawn from ranges or given as named classes."""

from __future__ import annotations

import numpy as np

from .scenario import Scenario
from .state import Devices


def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def sample_devices(scenario: Scenario, rng: np.random.Generator, min_memory_bytes: float = 0.0) -> Devices:
    """The N clients of an episode.

    ``devices.kind: loguniform`` draws compute log-uniformly (heterogeneity spans the range ratio),
    power, distance and memory uniformly; ``classes`` lays out the named classes in order, with
    only the speed drawn. Memory caps are drawn from [max(low, min_memory_bytes), high] (the memory
    of the model's shallowest cut), so no drawn device fits no cut; the draws are the same numbers
    of the same generator either way.
    """
    cfg = scenario.devices
    n = scenario.num_clients
    speed = rng.uniform(*scenario.channel.speed_mps, n)
    if cfg.kind == "classes":
        rows = [c for c in cfg.classes for _ in range(c["count"])]
        return Devices(
            client_flops=np.array([r["compute_flops"] for r in rows], dtype=np.float64),
            power_budget_w=np.array([r["power_budget_w"] for r in rows], dtype=np.float64),
            memory_bytes=np.array([r["memory_bytes"] for r in rows], dtype=np.float64),
            distance_m=np.array([r["distance_m"] for r in rows], dtype=np.float64),
            speed_mps=speed,
            dataset_size=np.full(n, cfg.dataset_size, dtype=np.int64),
            names=tuple(r["name"] for r in rows),
        )
    return Devices(
        client_flops=_loguniform(rng, *cfg.compute_flops, n),
        power_budget_w=rng.uniform(*cfg.power_budget_w, n),
        memory_bytes=rng.uniform(max(cfg.memory_bytes[0], min_memory_bytes), cfg.memory_bytes[1], n),
        distance_m=rng.uniform(*cfg.distance_m, n),
        speed_mps=speed,
        dataset_size=np.full(n, cfg.dataset_size, dtype=np.int64),
        names=tuple(f"client{i}" for i in range(n)),
    )
