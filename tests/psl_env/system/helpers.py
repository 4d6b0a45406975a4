"""A tiny hand-checkable system: 3 blocks, 2 clients, 3 subchannels."""

from __future__ import annotations

import numpy as np

from psl_env.models.profile import ModelProfile
from psl_env.system.latency import LatencyModel, dbm_to_w
from psl_env.system.scenario import build_scenario
from psl_env.system.state import RoundState

TINY_PROFILE = ModelProfile(
    name="tiny", input_shape=(1, 2, 2), block_names=("a", "b", "c"),
    fwd_flops=np.array([0, 1e6, 3e6, 6e6]), bwd_flops=np.array([0, 2e6, 6e6, 12e6]),
    act_bits=np.array([1.6e4, 8e3, 4e3, 1e3]), grad_bits=np.array([1.6e4, 8e3, 4e3, 1e3]),
    param_bits=np.array([0, 1e5, 3e5, 6e5]), act_mem_bytes=np.array([0, 10, 20, 30]),
)

NOISE_W = dbm_to_w(-174.0) * 1e6
# Client 0 holds subchannels 0 and 1, client 1 holds subchannel 2, all at 1 W.
OWNER = np.array([0, 0, 1])
POWER = np.array([1.0, 1.0, 1.0])


def tiny_model(**overrides) -> LatencyModel:
    cfg = {"num_clients": 2, "num_subchannels": 3, "batch_size": 2, "model": "tiny",
           "server": {"compute_flops": 1e9, "power_per_subchannel_w": 1.0},
           # an ideal receiver and uncapped Shannon rates keep the hand-checked numbers round
           "channel": {"subchannel_bw_hz": 1e6, "noise_psd_dbm_per_hz": -174.0, "noise_figure_server_db": 0.0,
                       "noise_figure_client_db": 0.0, "se_cap_bps_per_hz": None}}
    cfg.update(overrides)
    return LatencyModel(build_scenario(cfg), TINY_PROFILE)


def tiny_state(prev_cut=None, sync=False) -> RoundState:
    # SNR 3 at 1 W on every subchannel: 2 bit/s/Hz, so 2e6 bit/s per subchannel up and down.
    gains = np.full((2, 3), 3.0 * NOISE_W)
    return RoundState(0, 0, np.array([1e8, 2e8]), np.array([2.0, 1.0]), np.array([1e9, 1e9]),
                      gains, gains, prev_cut, 0.0, sync)
