"""The small CNN trained for real on the offline digits data (1x8x8 inputs, 10 classes)."""

from __future__ import annotations

from torch import nn

from .base import SplitModel


def small_cnn(input_shape: tuple[int, int, int] = (1, 8, 8), num_classes: int = 10,
              width: int = 16) -> SplitModel:
    """Four conv/pool blocks plus a classifier head: 5 blocks, so cuts 1..4."""
    c, h, w = input_shape
    blocks = [
        nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 64), nn.ReLU(),
                      nn.Linear(64, num_classes)),
    ]
    names = ["conv1", "conv2-pool", "conv3", "conv4-pool", "fc"]
    return SplitModel("small-cnn", blocks, names, input_shape, num_classes)
