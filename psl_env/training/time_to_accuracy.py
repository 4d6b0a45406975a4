"""Time-to-accuracy (docs/training.md): simulated seconds and rounds until the held-out accuracy reaches a target.

The devices and the channel are simulated, so the time is the sum of the rounds' latencies
(docs/system-model.md), not wall-clock time. A step that runs ``training.local_iterations``
iterations at one allocation lasts ``step_time_s``: the round's latency (with its sync and
migration, paid once) plus the per-iteration phases (uplink, server compute, downlink) for every
further iteration, on the same gains (block fading: one scheduling decision per step, the channel
held for its duration).

The target counts as reached at the first evaluation (every ``training.eval_every`` rounds) whose
accuracy is >= the target; the time to it includes that round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol


class _Phases(Protocol):
    total: Any
    uplink_phase: Any
    server_compute: Any
    downlink_phase: Any


def step_time_s(latency: _Phases, iterations: int = 1) -> float:
    """Simulated duration of a step of ``iterations`` local iterations priced by ``latency``.

    ``latency`` is a one-round ``Latency``: ``total`` + (iterations - 1) x
    (uplink_phase + server_compute + downlink_phase).
    """
    total = float(latency.total)
    if iterations <= 1:
        return total
    per_iter = float(latency.uplink_phase) + float(latency.server_compute) + float(latency.downlink_phase)
    return total + (int(iterations) - 1) * per_iter


@dataclass
class AccuracyCurve:
    """Simulated time, rounds and the held-out accuracy curve of one training run.

    Call ``add`` after every round with its simulated duration and what the engine measured.

    Attributes:
        target: the target accuracy.
        rounds: rounds played; ``sim_time_s``: their summed simulated duration.
        eval_rounds, eval_time_s, eval_accuracy, eval_loss: one entry per evaluation (round, simulated
            time at its end, held-out accuracy and loss).
        rounds_to_target, sim_time_to_target_s: at the first evaluation reaching the target (None before).
    """

    target: float
    rounds: int = 0
    sim_time_s: float = 0.0
    eval_rounds: list[int] = field(default_factory=list)
    eval_time_s: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    rounds_to_target: int | None = None
    sim_time_to_target_s: float | None = None

    def start(self, accuracy: float, loss: float) -> None:
        """Record the evaluation of the initial model (round 0, time 0)."""
        self._record(accuracy, loss)

    def add(self, step_s: float, evaluated: bool, accuracy: float = math.nan, loss: float = math.nan) -> None:
        """One more round lasting ``step_s`` simulated seconds; ``evaluated``: it ended with an evaluation."""
        self.rounds += 1
        self.sim_time_s += float(step_s)
        if evaluated:
            self._record(accuracy, loss)

    @property
    def reached(self) -> bool:
        return self.rounds_to_target is not None

    @property
    def accuracy(self) -> float:
        """The latest held-out accuracy (nan before any evaluation)."""
        return self.eval_accuracy[-1] if self.eval_accuracy else math.nan

    def summary(self) -> dict[str, Any]:
        """``rounds_to_target``, ``sim_time_to_target_s`` (None if not reached), ``final_accuracy``, ``rounds``,
        ``sim_time_s``."""
        return {"rounds_to_target": self.rounds_to_target, "sim_time_to_target_s": self.sim_time_to_target_s,
                "final_accuracy": self.accuracy, "rounds": self.rounds, "sim_time_s": self.sim_time_s}

    def _record(self, accuracy: float, loss: float) -> None:
        self.eval_rounds.append(self.rounds)
        self.eval_time_s.append(self.sim_time_s)
        self.eval_accuracy.append(float(accuracy))
        self.eval_loss.append(float(loss))
        if self.rounds_to_target is None and accuracy >= self.target:
            self.rounds_to_target = self.rounds
            self.sim_time_to_target_s = self.sim_time_s


__all__ = ["AccuracyCurve", "step_time_s"]
