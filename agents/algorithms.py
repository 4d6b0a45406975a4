"""The reinforcement-learning algorithms the package trains and loads, in one table (no SB3 import)."""

from __future__ import annotations

# algo name -> (module, class, action types it can drive)
ALGORITHMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ppo": ("stable_baselines3", "PPO", ("box", "multidiscrete", "assisted")),
    "a2c": ("stable_baselines3", "A2C", ("box", "multidiscrete", "assisted")),
    "sac": ("stable_baselines3", "SAC", ("box",)),
    "td3": ("stable_baselines3", "TD3", ("box",)),
    "maskable-ppo": ("sb3_contrib", "MaskablePPO", ("multidiscrete", "assisted")),
}
