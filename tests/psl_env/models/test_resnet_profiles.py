"""The shipped ResNet-18 profiles against hand-counted shapes and the published parameter count.

Two stems (``psl_env/models/resnet.py``):

* ImageNet/torchvision stem, block 1 = 7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max-pool:
  the stem divides the side by 4, then stages 2-4 halve it. ``resnet18-64`` (3x64x64, the
  HAM10000 shape) and ``resnet18-224`` (3x224x224).
* CIFAR stem, block 1 = 3x3 stride-1 conv + BN + ReLU: the stem keeps the side. ``resnet18-32``
  (3x32x32, the convention there) and ``resnet18-cifar-64`` (3x64x64).

Classes: the 3x64x64 and 3x224x224 profiles have 7 (HAM10000's lesion classes), ``resnet18-32``
has 10 (CIFAR-10).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from psl_env.models import build_model, load_profile
from psl_env.models.profile import PROFILE_DIR
from psl_env.models.profiler import profile_model
from psl_env.training.engine import resolve_model

BLOCKS = ("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
          "layer4.1", "head")

# Per-sample shape of the activation at cut j = 0..10 (index 0 is the raw input), counted by hand.
SHAPES = {
    # ImageNet stem at 64: conv 64 -> 32, pool 32 -> 16; stages 16, 8, 4, 2.
    "resnet18-64": [(3, 64, 64), (64, 16, 16), (64, 16, 16), (64, 16, 16), (128, 8, 8), (128, 8, 8),
                    (256, 4, 4), (256, 4, 4), (512, 2, 2), (512, 2, 2), (7,)],
    # ImageNet stem at 224: conv 224 -> 112, pool 112 -> 56; stages 56, 28, 14, 7.
    "resnet18-224": [(3, 224, 224), (64, 56, 56), (64, 56, 56), (64, 56, 56), (128, 28, 28),
                     (128, 28, 28), (256, 14, 14), (256, 14, 14), (512, 7, 7), (512, 7, 7), (7,)],
    # CIFAR stem at 64: stem keeps 64; stages 64, 32, 16, 8.
    "resnet18-cifar-64": [(3, 64, 64), (64, 64, 64), (64, 64, 64), (64, 64, 64), (128, 32, 32),
                          (128, 32, 32), (256, 16, 16), (256, 16, 16), (512, 8, 8), (512, 8, 8), (7,)],
    # CIFAR stem at 32: stem keeps 32; stages 32, 16, 8, 4.
    "resnet18-32": [(3, 32, 32), (64, 32, 32), (64, 32, 32), (64, 32, 32), (128, 16, 16),
                    (128, 16, 16), (256, 8, 8), (256, 8, 8), (512, 4, 4), (512, 4, 4), (10,)],
}
# The same, as elements per sample at every cut.
ELEMENTS = {
    "resnet18-64": [12_288, 16_384, 16_384, 16_384, 8_192, 8_192, 4_096, 4_096, 2_048, 2_048, 7],
    "resnet18-224": [150_528, 200_704, 200_704, 200_704, 100_352, 100_352, 50_176, 50_176,
                     25_088, 25_088, 7],
    "resnet18-cifar-64": [12_288, 262_144, 262_144, 262_144, 131_072, 131_072, 65_536, 65_536,
                          32_768, 32_768, 7],
    "resnet18-32": [3_072, 65_536, 65_536, 65_536, 32_768, 32_768, 16_384, 16_384, 8_192, 8_192, 10],
}
STEM = {"resnet18-64": "imagenet", "resnet18-224": "imagenet", "resnet18-cifar-64": "cifar",
        "resnet18-32": "cifar"}
CLASSES = {"resnet18-64": 7, "resnet18-224": 7, "resnet18-cifar-64": 7, "resnet18-32": 10}

# torchvision's resnet18: 11,689,512 parameters with 1000 classes. The fc layer has 512 weights
# plus a bias per class, and the CIFAR stem's 3x3 conv has 64 * 3 * (49 - 9) = 7,680 fewer
# weights than the 7x7 one (BN and everything after the stem are the same).
TORCHVISION_PARAMS = 11_689_512
PER_CLASS = 512 + 1
CIFAR_STEM_SAVING = 64 * 3 * (7 * 7 - 3 * 3)


def expected_params(classes: int, stem: str) -> int:
    return TORCHVISION_PARAMS - PER_CLASS * (1000 - classes) - (CIFAR_STEM_SAVING if stem == "cifar" else 0)


@pytest.mark.parametrize("pname", list(SHAPES))
def test_activation_sizes_at_every_cut(pname) -> None:
    p = load_profile(pname)
    assert p.num_blocks == 10 and p.bits_per_element == 32
    assert [list(s) for s in SHAPES[pname]] == p.extra["act_shapes"]
    assert [math.prod(s) for s in SHAPES[pname]] == ELEMENTS[pname]
    np.testing.assert_array_equal(p.act_bits / p.bits_per_element, ELEMENTS[pname])
    np.testing.assert_array_equal(p.grad_bits, p.act_bits)


def test_cut1_activation_of_the_standard_resnet18_at_64() -> None:
    """The issue's figure: 64x16x16 per sample at cut 1, 0.52 Mbit at 32 bits (CIFAR stem: 8.4)."""
    assert load_profile("resnet18-64").act_bits[1] == 64 * 16 * 16 * 32 == 524_288
    assert load_profile("resnet18-cifar-64").act_bits[1] == 64 * 64 * 64 * 32 == 8_388_608
    assert load_profile("resnet18-224").act_bits[1] == 64 * 56 * 56 * 32


@pytest.mark.parametrize("pname", list(SHAPES))
def test_profile_names_its_stem_and_classes(pname) -> None:
    p = load_profile(pname)
    assert p.block_names == (f"stem-{STEM[pname]}",) + BLOCKS
    assert p.num_classes == CLASSES[pname] and p.source == "profiler"


@pytest.mark.parametrize("pname", list(SHAPES))
def test_parameter_counts(pname) -> None:
    p = load_profile(pname)
    n = expected_params(CLASSES[pname], STEM[pname])
    assert p.extra["num_params"] == n and p.param_bits[-1] == 32 * n
    # the split does not change the count: cut 1 holds exactly the stem
    stem = 64 * 3 * (49 if STEM[pname] == "imagenet" else 9) + 2 * 64  # conv + BN weight/bias
    assert p.param_bits[1] == 32 * stem


def test_expected_parameter_counts_by_hand() -> None:
    assert expected_params(7, "imagenet") == 11_180_103
    assert expected_params(7, "cifar") == 11_172_423
    assert expected_params(10, "cifar") == 11_173_962  # the published CIFAR ResNet-18 figure


def test_flops_of_the_standard_resnet18() -> None:
    """1000 classes at 3x224x224: 1.81 GMAC, torchvision's published figure for resnet18."""
    model = build_model("resnet18", input_shape=(3, 224, 224), num_classes=1000)
    macs = profile_model(model).extra["fwd_flops_by_kind"]["matmul"] / 2
    assert 1.80e9 < macs < 1.82e9
    # Every feature map of resnet18-64 has 2/7 the side of resnet18-224's (112 -> 32, 56 -> 16,
    # ..., 7 -> 2), so the conv multiply-adds scale by exactly (2/7)^2; the 512x7 fc does not scale.
    fc = 2 * 512 * 7
    conv64 = load_profile("resnet18-64").extra["fwd_flops_by_kind"]["matmul"] - fc
    conv224 = load_profile("resnet18-224").extra["fwd_flops_by_kind"]["matmul"] - fc
    assert conv64 * 49 == conv224 * 4
    # The CIFAR stem keeps the CIFAR network's 4x from 32 to 64.
    r32, c64 = load_profile("resnet18-32"), load_profile("resnet18-cifar-64")
    assert c64.fwd_flops[-1] == pytest.approx(4 * r32.fwd_flops[-1], rel=0.01)
    assert load_profile("resnet18-64").fwd_flops[-1] < c64.fwd_flops[-1] / 10


@pytest.mark.parametrize("pname,model,shape", [("resnet18-224", "resnet18", (3, 224, 224)),
                                               ("resnet18-cifar-64", "resnet18-cifar", (3, 64, 64))])
def test_shipped_json_equals_fresh_measurement(pname, model, shape) -> None:
    """The profiles the profiler's shipped list does not name are re-measured here."""
    with torch.random.fork_rng(devices=[]):
        net = build_model(model, input_shape=shape, num_classes=CLASSES[pname])
    fresh = profile_model(net, shape, name=pname).to_dict()
    assert json.loads(json.dumps(fresh)) == json.loads((PROFILE_DIR / f"{pname}.json").read_text())


@pytest.mark.parametrize("pname", list(SHAPES))
def test_training_builds_the_profiled_network(pname) -> None:
    """The training engine resolves a profile name to the architecture the profile measured."""
    arch, size = resolve_model(pname)
    p = load_profile(pname)
    assert (3, size, size) == p.input_shape
    model = build_model(arch, input_shape=p.input_shape, num_classes=p.num_classes)
    assert tuple(model.block_names) == p.block_names
    assert sum(q.numel() for q in model.parameters()) == p.extra["num_params"]
