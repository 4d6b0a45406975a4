"""Gymnasium environments: ``PSLEnv`` (one round per step), ``PSLVectorEnv`` (K at once),
``PSLTrainEnv`` (real split training per step), codecs.

Names are imported lazily so that ``import psl_env`` (which registers the ids) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PSLEnv": "psl_env", "PSLVectorEnv": "vector", "PSLCore": "core", "PSLTrainEnv": "train_env",
    "Codec": "codecs", "CODECS": "codecs", "make_codec": "codecs", "register_codec": "codecs",
    "InvalidAction": "codecs", "BoxCodec": "codecs", "DictCodec": "codecs",
    "MultiDiscreteCodec": "codecs", "AssistedCodec": "codecs",
    "ObservationEncoder": "observation",
    "default_config": "config", "EnvConfigError": "config",
    "register_envs": "registration", "ENV_SPECS": "registration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
