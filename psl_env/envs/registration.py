"""Gymnasium registration of the environment ids (idempotent, cheap: entry points are strings)."""

from __future__ import annotations

# Canonical ids live in the ``psl_env`` namespace. ``PSL-v0`` is an alias so that the module form
# ``gym.make("psl_env:PSL-v0")`` (import the package, then look the id up) works in fresh worker
# processes, e.g. SB3's SubprocVecEnv.
ENV_SPECS: dict[str, dict] = {
    "psl_env/PSL-v0": {
        "entry_point": "psl_env.envs.psl_env:PSLEnv",
        "vector_entry_point": "psl_env.envs.vector:PSLVectorEnv",
    },
    "PSL-v0": {
        "entry_point": "psl_env.envs.psl_env:PSLEnv",
        "vector_entry_point": "psl_env.envs.vector:PSLVectorEnv",
    },
    # real split training in the loop (imports torch when made); same alias scheme
    "psl_env/PSLTrain-v0": {"entry_point": "psl_env.envs.train_env:PSLTrainEnv"},
    "PSLTrain-v0": {"entry_point": "psl_env.envs.train_env:PSLTrainEnv"},
}


def register_envs() -> list[str]:
    """Register every id of ``ENV_SPECS`` not yet in gymnasium's registry; returns the ids added."""
    from gymnasium.envs.registration import register, registry

    added = []
    for env_id, spec in ENV_SPECS.items():
        if env_id not in registry:
            register(id=env_id, **spec)
            added.append(env_id)
    return added
