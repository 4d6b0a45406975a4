"""Splittable models, the profiler and model profiles.

``ModelProfile`` and ``load_profile`` need no torch; ``build_model`` imports torch lazily.
"""

from .profile import ModelProfile, format_profile_table, load_profile, shipped_profiles

__all__ = ["ModelProfile", "load_profile", "shipped_profiles", "format_profile_table", "build_model",
           "MODEL_NAMES"]

# name -> (factory module, factory function, default input shape). ``resnet18`` takes the CIFAR stem
# up to 32x32 and the ImageNet/torchvision stem (7x7 stride-2 conv + max-pool) above;
# ``resnet18-cifar`` takes the CIFAR stem at any size (see ``resnet.py``).
MODEL_NAMES = {
    "small-cnn": ("small_cnn", "small_cnn", (1, 8, 8)),
    "vgg16": ("vgg", "vgg16", (3, 32, 32)),
    "resnet18": ("resnet", "resnet18", (3, 32, 32)),
    "resnet18-cifar": ("resnet", "resnet18_cifar", (3, 32, 32)),
}


def build_model(name: str, input_shape: tuple[int, ...] | None = None, num_classes: int = 10):
    """A fresh ``SplitModel`` by name (see ``MODEL_NAMES``), randomly initialised by torch's RNG."""
    import importlib

    if name not in MODEL_NAMES:
        raise ValueError(f"model: unknown model {name!r}; allowed: {sorted(MODEL_NAMES)}")
    module, fn, default_shape = MODEL_NAMES[name]
    factory = getattr(importlib.import_module(f"{__name__}.{module}"), fn)
    return factory(input_shape=tuple(input_shape or default_shape), num_classes=num_classes)
