"""PSLTrainEnv: PSL-v0 with the real split training in the loop (``psl_env/PSLTrain-v0``).

Everything PSL-v0 does, unchanged: the same config keys, action codecs and action space, the same
pricing of the round on its true gains, the same reward (latency against the fixed reference
allocation) and the same channel draws for a given seed. In addition every step trains the
scenario's model for one round (``training.local_iterations`` iterations) with the
``SplitTrainingEngine`` at the decoded cut(s), and

- the observation is PSL-v0's followed by two features: ``accuracy``, the latest held-out accuracy in
  [0, 1], and ``loss``, the last round's training loss over ln(number of classes), clipped to [0, 4]
  (1 = chance level; after ``reset`` the initial model's held-out loss stands in);
- the episode terminates when the latest held-out accuracy reaches ``training.target_accuracy``
  and is truncated after ``scenario.rounds`` rounds;
- info adds ``accuracy``, ``loss`` (training loss of the step), ``test_loss``, ``evaluated``,
  ``step_time_s`` (the step's simulated duration, see ``psl_env.training.time_to_accuracy``) and
  ``sim_time_s`` (simulated seconds since ``reset``: the time-to-accuracy when the episode terminates).

The reward stays PSL-v0's per-round reward: since every round costs, ending the episode sooner
(reaching the target in fewer, faster rounds) earns more, which is what time-to-accuracy asks for.

Seeding. ``reset(seed=s)`` draws the devices and channel exactly as PSL-v0 does, and trains with the
scenario's training settings under seed s (dataset split, client partition, initial weights and
batches: the scenario's own ``seed`` key is replaced). A ``reset()`` without a seed trains under a
new seed drawn from a generator seeded by the last seed given. The engine is built at the first
step with the first decoded cut as its initial cut, so the first round moves no blocks (PSL-v0
charges no migration on it either); the initial model, evaluated at ``reset``, does not depend on
the cut.

``training.engine: distributed`` (or ``distributed-links``, which holds every transfer for the
priced round's bits / rate) runs the rounds on ``DistributedSplitEngine``, one process per client
(``psl_env/training/distributed.py``, docs/training.md); the results are the in-process engine's.

``phi_action=True`` (``scheme: epsl`` only, in-process engine) makes EPSL's aggregation ratio a decision
and time to accuracy the objective (docs/training.md, "phi as a decision"):

- the action is the codec's plus a choice of phi from ``PHI_GRID`` (``psl_env.envs.phi_action``);
  the round is decoded and priced with the per-cut tables of that phi (built once per grid value)
  and the engine aggregates round(phi b) rows in it; ``info["phi"]`` says which phi was played;
- the observation gains a third feature, ``phi``, the previous round's phi (0 after ``reset``);
- the reward of a step is minus its simulated duration (``step_time_s``), so the return is minus the
  simulated time to the target accuracy, or minus the time of the whole round budget
  (``scenario.rounds``) when the episode is truncated before reaching it.

With phi held constant at p the episode is exactly the one of ``overrides={"phi": p}`` without
``phi_action`` (same decoded allocations, latencies, training, accuracies; tested).

Needs torch (imported when this module is). Default scenario: ``digits-train`` (offline).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from ..system.scenario import load_scenario
from ..training.distributed import LinkRates, make_engine
from ..training.engine import RoundResult, SplitTrainingEngine
from ..training.time_to_accuracy import step_time_s
from .config import EnvConfigError
from .phi_action import PHI_GRID, PhiAction, models_per_phi
from .psl_env import PSLEnv

TRAIN_SCENARIO = "digits-train"
LOSS_CLIP = 4.0
TRAIN_FEATURES = ("accuracy", "loss")
_SEED_TAG = 0x7EA1


class PSLTrainEnv(PSLEnv):
    """PSL-v0 plus one round of real split training per step (see the module docstring).

    Args:
        config: overrides of ``default_config()`` (PSL-v0's keys; the default scenario is
            ``digits-train``).
        render_mode: ``None``, ``"ansi"`` or ``"rgb_array"`` (PSL-v0's picture of the round).
        **kwargs: the same keys as ``config``.

    Attributes:
        engine: the ``SplitTrainingEngine`` of the episode (None before the first step).
        train_seed: the training seed of the episode.
        sim_time_s: simulated seconds since ``reset``.
        accuracy, test_loss: the latest held-out accuracy and loss; ``loss``: the last training loss.
        last_result: the engine's ``RoundResult`` of the last step.
        phi_action: whether the action chooses phi; phi: the phi of the last round (the scenario's
            without ``phi_action``); phi_choice: the ``PhiAction`` (``split`` / ``join``), ``phi_models``:
            the latency model of each grid phi (with ``phi_action``).
    """

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        cfg = super().default_config()
        cfg["scenario"] = TRAIN_SCENARIO
        return cfg

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        config = dict(config) if isinstance(config, dict) else config
        phi_action = False
        for src in (config, kwargs):  # PSLTrain-v0's own key (PSL-v0 does not know it)
            if isinstance(src, dict) and "phi_action" in src:
                phi_action = src.pop("phi_action")
        if not isinstance(phi_action, bool):
            raise EnvConfigError(f"phi_action: {phi_action!r} is not allowed; allowed: true or false")
        if not any(isinstance(src, dict) and "scenario" in src for src in (config, kwargs)):
            kwargs["scenario"] = TRAIN_SCENARIO
        if phi_action:
            self._phi_scenario(config, kwargs)
        super().__init__(config, render_mode, **kwargs)
        self.config["phi_action"] = phi_action
        self.phi_action = phi_action
        self.phi = float(self.scenario.phi) if self.scenario.scheme == "epsl" else 0.0
        self._phi_models: list = []
        self.phi_choice: PhiAction | None = None
        if phi_action:
            cfg = self.config
            self._phi_models = models_per_phi(self.scenario, cfg["action_type"], cfg["action"], cfg["backend"])
            self.phi_choice = PhiAction(self.codec.space)
            self.action_space = self.phi_choice.space
            self.phi = 0.0
        base = self.encoder.space
        self.num_base_features = base.shape[0]
        extra_high = [1.0, LOSS_CLIP] + ([1.0] if phi_action else [])
        low = np.concatenate([base.low, np.zeros(len(extra_high), dtype=np.float32)])
        high = np.concatenate([base.high, np.array(extra_high, dtype=np.float32)])
        self.observation_space = spaces.Box(low, high, (low.size,), dtype=np.float32)
        # an untrainable scenario (model, dataset files, input shape) fails here, not at reset
        probe = SplitTrainingEngine(self.scenario)
        self.num_classes = probe.data.num_classes
        self.target_accuracy = float(self.scenario.training.target_accuracy)
        self.iterations = int(self.scenario.training.local_iterations)
        self._engine_kind = self.scenario.training.engine
        self._loss_scale = 1.0 / math.log(self.num_classes)
        self._seed_rng: np.random.Generator | None = None
        self.engine: SplitTrainingEngine | None = None
        self._train_scenario = None
        self._initial: SplitTrainingEngine | None = None
        self.train_seed: int | None = None
        self.sim_time_s = 0.0
        self.accuracy = math.nan
        self.test_loss = math.nan
        self.loss = math.nan
        self.last_result: RoundResult | None = None

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        _, info = super().reset(seed=seed, options=options)
        if seed is not None or self._seed_rng is None:
            train_seed = int(self.np_random_seed) % 2**32
            self._seed_rng = np.random.default_rng([train_seed, _SEED_TAG])
        else:
            train_seed = int(self._seed_rng.integers(2**32))
        self.train_seed = train_seed
        self._train_scenario = self.scenario.replace(seed=train_seed)
        # The initial model does not depend on the cut: evaluate it now, build the real engine at
        # the first step with the first cut.
        probe = SplitTrainingEngine(self._train_scenario)
        ev = probe.evaluate()
        self._initial = probe
        self.engine = None
        self.sim_time_s = 0.0
        self.accuracy, self.test_loss, self.loss = ev.accuracy, ev.loss, ev.loss
        self.last_result = None
        if self.phi_action:
            self.phi = 0.0
        info.update(self._train_info())
        return self._extend(self.core.observe()[0]), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.phi_action:
            action = self._play_phi(action)
        links_state = self.state if self._engine_kind == "distributed-links" else None  # the round priced next
        obs, reward, _, truncated, info = super().step(action)  # decode, price, advance the channel
        cut = self.last_allocation.cut
        engine = self.engine
        if engine is None:
            probe, self._initial = self._initial, None
            if self._engine_kind == "inprocess" and np.array_equal(probe.cut, cut):
                engine = probe
            else:  # training.engine picks the in-process or the distributed engine
                engine = make_engine(self._train_scenario, initial_cut=cut, data=probe.data)
            self.engine = engine
        if self.phi_action:
            engine.set_phi(self.phi)
        if links_state is None:
            res = engine.step(cut)
        else:  # emulated links: every transfer held for bits / rate of the round just priced
            bc = self.latency_model.broadcast_rate(links_state.gains)
            res = engine.step(cut, links=LinkRates.from_latency(self.last_latency, bc))
        self.last_result = res
        self.loss = res.loss
        if res.evaluated:
            self.accuracy, self.test_loss = res.accuracy, res.test_loss
        dt = step_time_s(self.last_latency, self.iterations)
        self.sim_time_s += dt
        info.update(self._train_info(), evaluated=res.evaluated, step_time_s=dt)
        if self.phi_action:  # time to accuracy is the objective
            reward = -dt
            info["phi"] = self.phi
        terminated = bool(self.accuracy >= self.target_accuracy)
        self._episode_over = self._episode_over or terminated  # stepping on raises until reset
        return self._extend(obs), reward, terminated, truncated and not terminated, info

    def render(self) -> str | None:
        text = super().render()
        if text is None or self.last_result is None:
            return text
        return text + (f"  accuracy {self.accuracy:.4f} (target {self.target_accuracy:.4g}), training loss "
                       f"{self.loss:.4f}, simulated time {self.sim_time_s:.4g} s\n")

    @property
    def phi_models(self) -> list:
        """With ``phi_action``: the latency model of every grid phi (its per-cut tables), in grid order."""
        return [model for model, _ in self._phi_models]

    def action_masks(self) -> np.ndarray:
        masks = super().action_masks()
        if self.phi_action:  # every phi of the grid is allowed
            masks = np.concatenate([masks, np.ones(len(self.phi_choice.grid), dtype=bool)])
        return masks

    # -- helpers -------------------------------------------------------------------------------------
    def _phi_scenario(self, config: dict | None, kwargs: dict) -> None:
        """Check that phi can be a decision here, and train on the scenario at the grid's largest phi
        (so the world keeps the broadcast rates any grid phi needs; every round sets its own phi)."""
        src = kwargs if "scenario" in kwargs else config
        over = kwargs.get("overrides", (config or {}).get("overrides"))
        scenario = load_scenario(src["scenario"], over)
        if scenario.scheme != "epsl":
            raise EnvConfigError(f"phi_action: needs scheme 'epsl' (phi is EPSL's aggregation ratio), scenario "
                                 f"{scenario.name!r} has scheme {scenario.scheme!r}; allowed: scheme 'epsl'")
        if scenario.training.engine != "inprocess":
            raise EnvConfigError(f"phi_action: needs training.engine 'inprocess', got "
                                 f"{scenario.training.engine!r}; allowed: 'inprocess'")
        for d in (config, kwargs):
            if isinstance(d, dict):
                d.pop("overrides", None)
                d.pop("scenario", None)
        kwargs["scenario"] = scenario.replace(phi=max(PHI_GRID))

    def _play_phi(self, action: Any) -> Any:
        """Split off the phi of ``action``; the codec, latency model and engine of the round use it."""
        if not self._started:
            raise RuntimeError("PSLEnv: call reset() before step()")
        base, idx = self.phi_choice.split(action)
        model, codec = self._phi_models[idx]
        self.core.model = self.latency_model = model
        self.core.codec = self.codec = codec
        self.phi = self.phi_choice.grid[idx]
        return base

    def observation_of(self, obs, prev_latency_ratio: float = 0.0) -> np.ndarray:
        """PSL-v0's observation of ``obs`` followed by the current accuracy and loss features."""
        return self._extend(super().observation_of(obs, prev_latency_ratio))

    def train_features(self) -> np.ndarray:
        """[accuracy, normalized loss] (+ [phi] with ``phi_action``), float32, as appended to the observation."""
        acc = 0.0 if math.isnan(self.accuracy) else self.accuracy
        loss = LOSS_CLIP if not math.isfinite(self.loss) else self.loss * self._loss_scale
        feats = np.clip(np.array([acc, loss], dtype=np.float32), 0.0, [1.0, LOSS_CLIP]).astype(np.float32)
        if self.phi_action:  # the phi of the previous round
            feats = np.append(feats, np.float32(self.phi))
        return feats

    def _extend(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self.train_features()]).astype(np.float32, copy=False)

    def _train_info(self) -> dict[str, Any]:
        return {"accuracy": float(self.accuracy), "loss": float(self.loss), "test_loss": float(self.test_loss),
                "sim_time_s": float(self.sim_time_s), "train_seed": self.train_seed, "phi": float(self.phi)}


__all__ = ["PHI_GRID", "PSLTrainEnv", "TRAIN_SCENARIO", "TRAIN_FEATURES"]
