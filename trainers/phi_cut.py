"""The ablation of the learned phi/cut schedule: the agent picks phi only, the cut is EPSL-BCD's.

``EPSLBCDCut`` wraps ``PSLTrain-v0`` with ``phi_action=True`` and ``action_type: assisted`` (the
action [cut index, phi index]): the agent's action is the phi index alone (Discrete(G)); each round the
wrapper asks ``epsl-bcd`` at that phi (its per-cut tables, ``PSLTrainEnv``'s per-phi latency models)
for its cut on the observed round and plays [that cut, phi]. Subchannels and power come from the
assisted codec's solver as for the full agent, so the two differ only in who picks the cut.
Use it as an ``env_wrapper`` of an agent config (``configs/agents/ppo-phi-bcd-cut.yaml``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.epsl_bcd import EPSLBCDOptimizer


class EPSLBCDCut(gym.Wrapper):
    """Discrete(G) phi actions; the cut of each round is EPSL-BCD's at the chosen phi."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not getattr(base, "phi_action", False) or base.config["action_type"] != "assisted":
            raise ValueError("EPSLBCDCut: needs PSLTrain-v0 with phi_action=True and action_type 'assisted'")
        self._optimizers = [EPSLBCDOptimizer(model) for model in base.phi_models]
        self.action_space = spaces.Discrete(len(base.phi_choice.grid))

    def action(self, index: Any) -> np.ndarray:
        """The env action [cut - 1, index] with EPSL-BCD's cut at grid phi ``index``."""
        idx = int(np.asarray(index).reshape(()))
        if not 0 <= idx < self.action_space.n:
            raise ValueError(f"EPSLBCDCut action: {idx} is out of range; allowed 0..{self.action_space.n - 1}")
        base = self.env.unwrapped
        cut = self._optimizers[idx].decide(base.observation()).cut
        return np.array([int(cut[0]) - 1, idx], dtype=np.int64)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.env.step(self.action(action))


__all__ = ["EPSLBCDCut"]
