"""The splittable models: registry, shapes, and that any split reproduces the full model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psl_env.models import MODEL_NAMES, build_model
from psl_env.models.base import Add, SplitModel
from psl_env.models.resnet import BasicBlock, build_resnet18, conventional_stem

# (model name, input shape, num_classes, expected number of blocks)
CASES = [
    ("small-cnn", (1, 8, 8), 10, 5),
    ("vgg16", (3, 32, 32), 10, 16),
    ("resnet18", (3, 32, 32), 10, 10),       # CIFAR stem (up to 32x32)
    ("resnet18", (3, 64, 64), 7, 10),        # ImageNet/torchvision stem (above 32x32)
    ("resnet18-cifar", (3, 64, 64), 7, 10),  # CIFAR stem at any size
]


@pytest.fixture(scope="module")
def models() -> dict:
    torch.manual_seed(0)
    return {(n, s, c): build_model(n, input_shape=s, num_classes=c).eval() for n, s, c, _ in CASES}


def test_registry_has_the_models() -> None:
    assert {"small-cnn", "vgg16", "resnet18", "resnet18-cifar"} <= set(MODEL_NAMES)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet")


@pytest.mark.parametrize("name,shape,classes,num_blocks", CASES)
def test_structure_and_output_shape(models, name, shape, classes, num_blocks) -> None:
    model = models[(name, shape, classes)]
    assert isinstance(model, SplitModel)
    assert model.name == name and model.input_shape == shape and model.num_classes == classes
    assert model.num_blocks == num_blocks == len(model.block_names)
    assert len(set(model.block_names)) == num_blocks
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)


@pytest.mark.parametrize("name,shape,classes,num_blocks", CASES)
def test_every_split_equals_full_forward(models, name, shape, classes, num_blocks) -> None:
    model = models[(name, shape, classes)]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x)
        for j in range(1, model.num_blocks):
            h = model.run(x, 0, j)
            torch.testing.assert_close(model.run(h, j, None), full, rtol=1e-5, atol=1e-5)


def test_split_backward_matches_full_backward() -> None:
    """Client/server split with a detached cut gives the same gradients as one backward pass."""
    torch.manual_seed(0)
    model = build_model("resnet18", input_shape=(3, 32, 32)).train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 3])
    cut = 4
    nn.functional.cross_entropy(model(x), y).backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    smashed = model.run(x, 0, cut)
    received = smashed.detach().requires_grad_(True)
    nn.functional.cross_entropy(model.run(received, cut, None), y).backward()
    smashed.backward(received.grad)
    for g, p in zip(full_grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


def test_known_parameter_counts() -> None:
    # CIFAR ResNet-18 has 11,173,962 parameters (10 classes), the published figure.
    assert sum(p.numel() for p in build_model("resnet18").parameters()) == 11_173_962
    # torchvision's resnet18 (ImageNet stem, 1000 classes) has 11,689,512.
    standard = build_model("resnet18", input_shape=(3, 224, 224), num_classes=1000)
    assert sum(p.numel() for p in standard.parameters()) == 11_689_512
    vgg = build_model("vgg16")
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in vgg.modules()) == 3


def test_resnet_blocks_and_shortcuts() -> None:
    model = build_model("resnet18")
    assert model.block_names[0] == "stem-cifar" and model.block_names[-1] == "head"
    basic = [b for b in model.blocks if isinstance(b, BasicBlock)]
    assert len(basic) == 8
    projections = [b for b in basic if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 3  # first block of stages 2, 3 and 4
    assert all(isinstance(b.add, Add) for b in basic)


def test_resnet_stems() -> None:
    """ImageNet stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool as one block; CIFAR stem: 3x3/1 conv,
    BN, ReLU. ``resnet18`` picks the CIFAR stem up to 32x32, ``resnet18-cifar`` at every size."""
    def stem_layers(model):
        return [type(m) for m in model.blocks[0]]

    imagenet = build_model("resnet18", input_shape=(3, 64, 64))
    assert imagenet.block_names[0] == "stem-imagenet"
    assert stem_layers(imagenet) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    conv, pool = imagenet.blocks[0][0], imagenet.blocks[0][3]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((7, 7), (2, 2), (3, 3))
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    for model in (build_model("resnet18", input_shape=(3, 32, 32)),
                  build_model("resnet18-cifar", input_shape=(3, 64, 64))):
        assert model.block_names[0] == "stem-cifar"
        assert stem_layers(model) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        conv = model.blocks[0][0]
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert build_model("resnet18-cifar").name == "resnet18-cifar"
    assert [conventional_stem(s) for s in [(3, 8, 8), (1, 28, 28), (3, 32, 32), (3, 33, 33),
                                           (3, 64, 64), (3, 224, 224), (3, 32, 64)]] == \
        ["cifar"] * 3 + ["imagenet"] * 4
    with pytest.raises(ValueError, match="unknown stem"):
        build_resnet18("resnet18", "tiny", (3, 32, 32), 10)


def test_bad_input_shapes_raise() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("vgg16", input_shape=(3, 40, 40))
    with pytest.raises(ValueError, match="at least 8x8"):
        build_model("resnet18", input_shape=(3, 4, 4))
