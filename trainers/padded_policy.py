"""A policy trained on a range of client counts deciding a scenario of any N up to its maximum.

``PaddedPolicy`` is a ``DecisionMaker`` on the N-client scenario. It holds the ``SB3Policy`` of a run
trained on the padded scenario (``num_clients`` = the maximum N, ``dynamics.present_clients`` a
range), pads every round to the maximum N (``psl_env.envs.padding``), lets that policy decide, and
returns the N clients' part. The previous round's latency ratio in the observation is computed on
the N-client round, as the padded training env computed it (its reference shares the subchannels
among the clients taking part, whose latency is that of the N-client reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.base import DecisionMaker
from agents.sb3_policy import SB3Policy
from psl_env.envs.padding import PaddingDevice, pad_observation, unpad_allocation
from psl_env.models.profile import load_profile
from psl_env.system.latency import LatencyModel
from psl_env.system.state import Allocation, Observation


class PaddedPolicy(DecisionMaker):
    """Decides N-client rounds with a policy trained on up to ``inner``'s maximum N clients.

    Args:
        model: the latency model of the N-client scenario to decide on.
        inner: the trained policy on the padded scenario (its model's ``num_clients`` is the maximum N).
    """

    name = "padded"
    sees_absent = True  # rounds go to the inner policy whole; it keeps absent clients off the air

    def __init__(self, model: LatencyModel, inner: SB3Policy) -> None:
        super().__init__(model)
        self.inner = inner
        self.max_clients = inner.model.num_clients
        self.device = PaddingDevice.centred(inner.env.encoder)
        # the previous-ratio bookkeeping of an unpadded policy on this scenario (no network needed)
        self._ratio = SB3Policy(model, policy=None, env_config=inner.env.config)

    @classmethod
    def load(cls, path: str | Path, model: LatencyModel, device: str = "cpu") -> "PaddedPolicy":
        """The run folder of a policy trained on the padded scenario, deciding ``model``'s scenario
        (its devices, channel and radio, with ``num_clients`` and ``present_clients`` set to the run's)."""
        from agents.sb3_policy import read_run_config, run_folder_of  # noqa: PLC0415

        run = read_run_config(run_folder_of(path)[0])
        trained = run["scenario"]
        max_n = int(trained["num_clients"])
        span = trained.get("dynamics", {}).get("present_clients")
        padded = model.scenario.replace(**{"num_clients": max_n, "dynamics.present_clients": span or [1, max_n]})
        inner = SB3Policy.load(path, LatencyModel(padded, load_profile(padded.model)), device=device)
        return cls(model, inner)

    def reset(self, seed: int | None = None) -> None:
        self.inner.reset(seed)
        self._ratio.reset(seed)

    def decide(self, obs: Observation) -> Allocation:
        inner = self.inner
        padded = pad_observation(obs, self.max_clients, self.device)
        vec = inner.env.observation_of(padded, self._ratio._prev_ratio(obs))
        if inner.normalizer is not None:
            vec = np.asarray(inner.normalizer.normalize_obs(vec[None]), dtype=np.float32)[0]
        action, _ = inner.policy.predict(vec, deterministic=inner.deterministic)
        space = inner.env.action_space
        if hasattr(space, "low") and hasattr(space, "high"):
            action = np.clip(action, space.low, space.high)
        alloc, _ = inner.codec.decode(action, padded)
        self._ratio._prev = obs
        return unpad_allocation(alloc, obs.num_clients)


__all__ = ["PaddedPolicy"]
