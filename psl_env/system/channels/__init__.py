"""Channel models by name: ``channel.kind`` in a scenario picks one (``make_channel``).

A new model is one file with a ``Channel`` subclass plus one ``register_channel`` line (here for the
shipped models; anywhere, e.g. a user module or a test, for others)::

    register_channel(MyChannel)        # MyChannel.name == "my-channel"
"""

from __future__ import annotations

from ...named import register_named
from ..scenario import Scenario
from .base import Channel
from .gauss_markov import GaussMarkovChannel
from .trace import TraceChannel

CHANNELS: dict[str, type[Channel]] = {}


def register_channel(cls: type[Channel], replace: bool = False) -> type[Channel]:
    """Make ``cls`` available as ``channel.kind: <cls.name>`` (idempotent for the same class)."""
    return register_named(CHANNELS, cls.name, cls, "channel model", replace)


def make_channel(scenario: Scenario, num_envs: int, rngs: list, backend: str = "auto") -> Channel:
    """The channel model named by ``scenario.channel.kind`` for K = ``num_envs`` envs."""
    kind = scenario.channel.kind
    if kind not in CHANNELS:
        raise ValueError(f"channel.kind: {kind!r} is not allowed; allowed: {sorted(CHANNELS)}")
    return CHANNELS[kind](scenario, num_envs, rngs, backend)


register_channel(GaussMarkovChannel)
register_channel(TraceChannel)

__all__ = ["CHANNELS", "Channel", "GaussMarkovChannel", "TraceChannel", "make_channel", "register_channel"]
