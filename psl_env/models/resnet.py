"""ResNet-18 with either of its two usual stems, four stages of two BasicBlocks each.

* ``imagenet`` stem (He et al. 2016; torchvision and the SplitFed reference code): 7x7 stride-2
  conv, BN, ReLU and a 3x3 stride-2 max-pool, so the stem divides the resolution by 4
  (3x64x64 -> 64x16x16, 3x224x224 -> 64x56x56).
* ``cifar`` stem (the usual CIFAR-10 adaptation): 3x3 stride-1 conv, BN, ReLU, no max-pool, so the
  stem keeps the full resolution (3x32x32 -> 64x32x32).

Model names (``psl_env.models.MODEL_NAMES``): ``resnet18`` takes the stem that is the convention for
its input size, ``cifar`` up to 32x32 and ``imagenet`` above (so ``resnet18-32`` is the CIFAR
ResNet-18 and ``resnet18-64`` / ``resnet18-224`` the standard one); ``resnet18-cifar`` always takes
the CIFAR stem. The first block is named after its stem (``stem-imagenet`` / ``stem-cifar``), so a
profile's block names say which stem it was measured with.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Add, SplitModel

STEMS = ("imagenet", "cifar")
# Inputs up to this height and width get the CIFAR stem under the name ``resnet18``.
CIFAR_STEM_MAX_SIZE = 32


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


def conventional_stem(input_shape: tuple[int, int, int]) -> str:
    """``cifar`` for inputs up to 32x32, else ``imagenet``: the stem ``resnet18`` uses."""
    _, h, w = input_shape
    return "cifar" if max(h, w) <= CIFAR_STEM_MAX_SIZE else "imagenet"


def _stem(in_channels: int, stem: str) -> nn.Sequential:
    if stem == "imagenet":
        # One block: cutting between the ReLU and the pool would send a 4x larger activation.
        return nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                             nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
    if stem == "cifar":
        return nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
                             nn.BatchNorm2d(64), nn.ReLU())
    raise ValueError(f"resnet18: unknown stem {stem!r}; allowed: {list(STEMS)}")


def build_resnet18(name: str, stem: str, input_shape: tuple[int, int, int],
                   num_classes: int) -> SplitModel:
    """ResNet-18 as 10 blocks: the stem, 8 BasicBlocks (``layer1.0`` .. ``layer4.1``), the head
    (global average pool + fc). The head's adaptive pooling takes any input of at least 8x8."""
    c, h, w = input_shape
    if h < 8 or w < 8:
        raise ValueError(f"resnet18: input must be at least 8x8, got {input_shape}")
    blocks: list[nn.Module] = [_stem(c, stem)]
    names = [f"stem-{stem}"]
    in_planes = 64
    for stage, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for i, s in enumerate((stride, 1)):
            blocks.append(BasicBlock(in_planes, planes, s))
            names.append(f"layer{stage}.{i}")
            in_planes = planes
    blocks.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, num_classes)))
    names.append("head")
    return SplitModel(name, blocks, names, input_shape, num_classes)


def resnet18(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> SplitModel:
    """ResNet-18 with the stem conventional for the input size (``conventional_stem``): the CIFAR
    stem up to 32x32 (CIFAR-10), the ImageNet/torchvision stem above (3x64x64 HAM10000, 3x224x224)."""
    return build_resnet18("resnet18", conventional_stem(tuple(input_shape)), tuple(input_shape), num_classes)


def resnet18_cifar(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> SplitModel:
    """ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool) at any input size."""
    return build_resnet18("resnet18-cifar", "cifar", tuple(input_shape), num_classes)
