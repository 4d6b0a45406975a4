"""VGG-16 for small images (CIFAR-style): 13 conv+BN+ReLU layers, 5 max-pools, 3 linear layers."""

from __future__ import annotations

from torch import nn

from .base import SplitModel

# Output channels of the 13 conv layers; "M" marks a 2x2 max-pool closing a stage.
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
          hidden: int = 512) -> SplitModel:
    """VGG-16 as 16 blocks: one per conv layer (conv+BN+ReLU, plus the pool that ends its stage),
    then three classifier blocks (flatten+fc1+ReLU, fc2+ReLU, fc3 logits).

    Convs have no bias because BatchNorm follows each one. There is no dropout, so a forward pass is
    deterministic in eval and train mode alike apart from BatchNorm statistics. Height and width
    must be multiples of 32 (five halving pools); the flattened feature size is
    ``512 * (H/32) * (W/32)``, i.e. 512 for 32x32 inputs.
    """
    c, h, w = input_shape
    if h % 32 or w % 32:
        raise ValueError(f"vgg16: input height and width must be multiples of 32, got {input_shape}")
    blocks: list[nn.Module] = []
    names: list[str] = []
    stage, idx = 1, 1
    in_ch = c
    for item in VGG16_CFG:
        if item == "M":
            # The pool belongs to the conv that ends the stage: cutting right after a pool sends a
            # 4x smaller activation, so the conv and its pool form one block.
            blocks[-1].append(nn.MaxPool2d(2))
            names[-1] += "-pool"
            stage, idx = stage + 1, 1
            continue
        blocks.append(nn.Sequential(nn.Conv2d(in_ch, int(item), 3, padding=1, bias=False),
                                    nn.BatchNorm2d(int(item)), nn.ReLU()))
        names.append(f"conv{stage}_{idx}")
        in_ch, idx = int(item), idx + 1
    features = in_ch * (h // 32) * (w // 32)
    blocks += [
        nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU()),
        nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()),
        nn.Sequential(nn.Linear(hidden, num_classes)),
    ]
    names += ["fc1", "fc2", "fc3"]
    return SplitModel("vgg16", blocks, names, input_shape, num_classes)
