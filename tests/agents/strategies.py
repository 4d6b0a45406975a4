"""Hypothesis strategies: random scenarios (scheme, phi, downlink) and random rounds to decide on."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from psl_env.models.profile import load_profile
from psl_env.system.latency import LatencyModel
from psl_env.system.scenario import build_scenario
from psl_env.system.state import RoundState


@lru_cache(maxsize=None)
def model_for(n: int, m: int, scheme: str, phi: float, downlink: str, profile: str = "small-cnn") -> LatencyModel:
    scenario = build_scenario({"num_clients": n, "num_subchannels": m, "scheme": scheme, "phi": phi,
                               "downlink": downlink, "model": profile, "batch_size": 16})
    return LatencyModel(scenario, load_profile(profile))


@st.composite
def models(draw, max_n: int = 4, max_m: int = 8, profile: str = "small-cnn") -> LatencyModel:
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(n, max(n, max_m)))
    scheme = draw(st.sampled_from(["psl", "epsl", "sfl", "edgesplit"]))
    phi = draw(st.sampled_from([0.25, 0.5, 1.0])) if scheme == "epsl" else 0.0
    downlink = draw(st.sampled_from(["broadcast", "unicast", "ignore"]))
    return model_for(n, m, scheme, phi, downlink, profile)


@st.composite
def rounds(draw, model: LatencyModel, delayed: bool | None = None) -> RoundState:
    """A round for ``model``: gains, compute, budgets, previous cut, sync; observed gains may be stale."""
    n, m = model.num_clients, model.num_subchannels
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    gains = 10.0 ** (rng.uniform(-13.0, -7.0, (n, m)))
    flops = 10.0 ** rng.uniform(9.0, 12.0, n)
    budget = rng.uniform(0.01, 1.0, n)
    stale = draw(st.booleans()) if delayed is None else delayed
    observed = gains * rng.exponential(size=(n, m)) if stale else gains
    prev = None
    if draw(st.booleans()):
        cut = rng.integers(1, model.num_blocks, size=1 if model.common_cut else n)
        prev = np.broadcast_to(cut, (n,)).astype(np.int64)
    sync = draw(st.booleans())
    return RoundState(draw(st.integers(0, 5)), 0, flops, budget, np.full(n, 4e9), gains, observed, prev, 0.0, sync)
