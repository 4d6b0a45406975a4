"""ResNet-18, CIFAR variant: 3x3 stem without max-pool, four stages of two BasicBlocks each."""

from __future__ import annotations

import torch
from torch import nn

from .base import Add, SplitModel


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers with an identity (or 1x1 conv+BN projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        else:
            self.shortcut = nn.Identity()
        # Separate modules (not F.relu / "+") so the profiler's hooks see every op.
        self.add = Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.add(out, self.shortcut(x)))


def resnet18(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> SplitModel:
    """ResNet-18 as 10 blocks: stem (conv3x3+BN+ReLU), 8 BasicBlocks, head (global avg-pool + fc).

    The stem keeps the full resolution (CIFAR variant, no 7x7/stride-2 conv, no max-pool); the head
    uses adaptive pooling, so any input of at least 8x8 works (3x32x32 CIFAR, 3x64x64 HAM10000).
    """
    c, h, w = input_shape
    if h < 8 or w < 8:
        raise ValueError(f"resnet18: input must be at least 8x8, got {input_shape}")
    blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(c, 64, 3, padding=1, bias=False),
                                             nn.BatchNorm2d(64), nn.ReLU())]
    names = ["stem"]
    in_planes = 64
    for stage, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for i, s in enumerate((stride, 1)):
            blocks.append(BasicBlock(in_planes, planes, s))
            names.append(f"layer{stage}.{i}")
            in_planes = planes
    blocks.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, num_classes)))
    names.append("head")
    return SplitModel("resnet18", blocks, names, input_shape, num_classes)
