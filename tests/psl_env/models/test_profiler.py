"""The profiler: hand-computed FLOPs, agreement with real tensors, shipped JSONs, profile I/O."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import psl_env
from psl_env.models import ModelProfile, build_model, format_profile_table, load_profile, shipped_profiles
from psl_env.models.base import SplitModel
from psl_env.models.profiler import (
    SHIPPED_PROFILES,
    measure_blocks,
    parse_input_shape,
    profile_command,
    profile_model,
    write_shipped_profiles,
)

ARRAYS = ("fwd_flops", "bwd_flops", "act_bits", "grad_bits", "param_bits", "act_mem_bytes")


def toy(blocks: list[nn.Module], input_shape: tuple[int, ...]) -> SplitModel:
    return SplitModel("toy", blocks, [f"b{i}" for i in range(len(blocks))], input_shape, 2)


def matmul_flops_torch(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Conv/linear FLOPs of one sample as counted by torch's own FlopCounterMode."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return counter.get_total_flops()


@pytest.fixture(scope="module")
def fresh() -> dict[str, tuple[nn.Module, ModelProfile]]:
    """Each shipped configuration, built and profiled once for the whole module."""
    out = {}
    for pname, (mname, shape, classes) in SHIPPED_PROFILES.items():
        torch.manual_seed(0)
        model = build_model(mname, input_shape=shape, num_classes=classes).eval()
        out[pname] = (model, profile_model(model))
    return out


# ---------------------------------------------------------------- hand-computed FLOPs

def test_linear_flops_by_hand() -> None:
    model = toy([nn.Linear(5, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2, bias=False))], (5,))
    p = profile_model(model)
    # Linear(5,3): 3 outputs x (5 multiply-adds x 2 + 1 bias) = 33; ReLU 3; Linear(3,2) no bias: 12.
    np.testing.assert_array_equal(p.fwd_flops, [0, 33, 33 + 3 + 12])
    # Weighted layers 2x forward, ReLU 1x.
    np.testing.assert_array_equal(p.bwd_flops, [0, 66, 66 + 3 + 24])
    np.testing.assert_array_equal(p.act_bits, [5 * 32, 3 * 32, 2 * 32])
    np.testing.assert_array_equal(p.grad_bits, p.act_bits)
    np.testing.assert_array_equal(p.param_bits, [0, 18 * 32, 24 * 32])
    # Leaf outputs at 4 bytes: 3 (linear); then 3 (relu) + 2 (linear).
    np.testing.assert_array_equal(p.act_mem_bytes, [0, 12, 32])
    assert p.name == "toy-5" and p.source == "profiler" and p.num_classes == 2


def test_conv_pool_bn_flops_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)                               # 3x6x6 -> 8x6x6
    gconv = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False)  # 8x6x6 -> 8x3x3
    model = toy([nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU()),
                 nn.Sequential(gconv, nn.MaxPool2d(3, stride=1, padding=1)),
                 nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))], (3, 6, 6))
    m = measure_blocks(model)
    out1 = 8 * 6 * 6
    assert m[0].fwd_flops == {"matmul": 2 * out1 * 27, "bias": out1, "norm": 2 * out1, "act": out1}
    out2 = 8 * 3 * 3
    assert m[1].fwd_flops == {"matmul": 2 * out2 * (8 // 2) * 9, "bias": 0, "pool": out2 * 9}
    assert m[2].fwd_flops == {"pool": out2, "matmul": 2 * 2 * 8, "bias": 2}
    # conv, BN have weights (2x); ReLU, pools 1x.
    assert m[0].bwd_flops == 2 * (2 * out1 * 27 + out1 + 2 * out1) + out1
    assert m[1].bwd_flops == 2 * 2 * out2 * 4 * 9 + out2 * 9
    assert [b.out_shape for b in m] == [(8, 6, 6), (8, 3, 3), (2,)]
    assert m[0].num_params == 8 * 27 + 8 + 2 * 8 and m[1].num_params == 8 * 4 * 9
    # Flatten is a view: not counted as saved activation.
    assert m[2].act_mem_bytes == 4 * (8 + 2)


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 4), cout_per_group=st.integers(1, 4), groups=st.sampled_from([1, 2]),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1), size=st.integers(3, 7),
       bias=st.booleans())
def test_conv_flops_match_formula_and_torch(cin, cout_per_group, groups, k, stride, pad, size, bias):
    conv = nn.Conv2d(cin * groups, cout_per_group * groups, k, stride=stride, padding=pad,
                     groups=groups, bias=bias)
    model = toy([conv, nn.ReLU()], (cin * groups, size, size))
    (m, _) = measure_blocks(model)
    ho = (size + 2 * pad - k) // stride + 1
    n_out = cout_per_group * groups * ho * ho
    assert m.fwd_flops["matmul"] == 2 * n_out * cin * k * k
    assert m.fwd_flops["bias"] == (n_out if bias else 0)
    assert m.fwd_flops["matmul"] == matmul_flops_torch(conv, model.input_shape)


# ---------------------------------------------------------------- real models

def test_sanity_figures(fresh) -> None:
    """Textbook sizes: ResNet-18 CIFAR ~0.56 GMAC, VGG-16 CIFAR ~0.31 GMAC (2 FLOPs per MAC).
    The standard ResNet-18 is checked in test_resnet_profiles.py."""
    r32, v32 = fresh["resnet18-32"][1], fresh["vgg16-32"][1]
    assert 0.55e9 < r32.extra["fwd_flops_by_kind"]["matmul"] / 2 < 0.57e9
    assert 0.30e9 < v32.extra["fwd_flops_by_kind"]["matmul"] / 2 < 0.32e9
    assert 1.10e9 < r32.fwd_flops[-1] < 1.13e9


@pytest.mark.parametrize("pname", list(SHIPPED_PROFILES))
def test_matmul_flops_agree_with_torch_flop_counter(fresh, pname) -> None:
    model, p = fresh[pname]
    assert p.extra["fwd_flops_by_kind"]["matmul"] == matmul_flops_torch(model, p.input_shape)


@pytest.mark.parametrize("pname", list(SHIPPED_PROFILES))
def test_backward_convention(fresh, pname) -> None:
    """Every layer with weights (conv, linear+bias, BN) counts twice, the rest once."""
    kinds = fresh[pname][1].extra["fwd_flops_by_kind"]
    weighted = kinds.get("matmul", 0) + kinds.get("bias", 0) + kinds.get("norm", 0)
    free = kinds.get("act", 0) + kinds.get("pool", 0) + kinds.get("add", 0)
    assert fresh[pname][1].bwd_flops[-1] == pytest.approx(2 * weighted + free, rel=1e-12)


@pytest.mark.parametrize("pname", ["resnet18-32", "resnet18-64", "vgg16-32", "small-cnn"])
def test_bits_and_params_match_real_tensors_at_each_cut(fresh, pname) -> None:
    model, p = fresh[pname]
    x = torch.randn(2, *p.input_shape)
    assert p.act_bits[0] == x[0].numel() * 32
    with torch.no_grad():
        h = x
        for j in range(1, p.num_blocks + 1):
            h = model.run(h, j - 1, j)
            assert p.act_bits[j] == h[0].numel() * 32 == p.grad_bits[j]
            assert p.extra["act_shapes"][j] == list(h.shape[1:])
            n_params = sum(q.numel() for b in model.blocks[:j] for q in b.parameters())
            assert p.param_bits[j] == n_params * 32
    assert p.act_bits[-1] == p.num_classes * 32
    assert p.extra["num_params"] == sum(q.numel() for q in model.parameters())


def test_profiles_are_cumulative_and_match_block_names(fresh) -> None:
    for pname, (model, p) in fresh.items():
        assert p.block_names == tuple(model.block_names) and p.num_blocks == model.num_blocks
        for key in ("fwd_flops", "bwd_flops", "param_bits", "act_mem_bytes"):
            assert getattr(p, key)[0] == 0 and np.all(np.diff(getattr(p, key)) > 0), (pname, key)


def test_profiling_leaves_model_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = build_model("small-cnn").train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    profile_model(model)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert torch.equal(rng, torch.get_rng_state())
    profile_command("small-cnn")  # builds a model, but in a forked RNG
    assert torch.equal(rng, torch.get_rng_state())
    model.blocks[0].eval()  # mixed modes (e.g. a frozen part) survive profiling
    profile_model(model)
    assert not model.blocks[0].training and model.blocks[1].training and model.training


def test_bits_per_element_scales_bits_only() -> None:
    model = build_model("small-cnn")
    p32, p16 = profile_model(model), profile_model(model, bits_per_element=16)
    np.testing.assert_array_equal(p16.act_bits * 2, p32.act_bits)
    np.testing.assert_array_equal(p16.param_bits * 2, p32.param_bits)
    np.testing.assert_array_equal(p16.fwd_flops, p32.fwd_flops)
    np.testing.assert_array_equal(p16.act_mem_bytes, p32.act_mem_bytes)  # memory stays fp32
    with pytest.raises(ValueError, match="bits_per_element"):
        profile_model(model, bits_per_element=0)


def test_leaf_module_without_a_rule_is_counted_by_its_ops_or_refused() -> None:
    class Doubler(nn.Module):
        def forward(self, x):
            return x * 2

    class Mystery(nn.Module):
        def forward(self, x):
            return torch.erf(x)

    profile = profile_model(toy([nn.Linear(4, 4), Doubler()], (4,)))
    assert profile.fwd_flops[2] - profile.fwd_flops[1] == 4  # one multiply per element
    with pytest.raises(ValueError, match="block 'b1' computes aten.erf in a custom forward or a module without"):
        profile_model(toy([nn.Linear(4, 4), Mystery()], (4,)))


def test_wrong_input_shape_raises_value_error() -> None:
    with pytest.raises(ValueError, match="fails on input shape"):
        profile_model(build_model("small-cnn"), input_shape=(3, 8, 8))


# ---------------------------------------------------------------- shipped JSONs and commands

def assert_profiles_close(a: ModelProfile, b: ModelProfile) -> None:
    assert (a.name, a.input_shape, a.block_names, a.num_classes, a.bits_per_element) == \
        (b.name, b.input_shape, b.block_names, b.num_classes, b.bits_per_element)
    for key in ARRAYS:
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-9, err_msg=key)


def test_shipped_profiles_present() -> None:
    assert set(SHIPPED_PROFILES) <= set(shipped_profiles())
    assert load_profile("resnet18-64").num_classes == 7


@pytest.mark.parametrize("pname", list(SHIPPED_PROFILES))
def test_shipped_json_equals_fresh_profile(fresh, pname) -> None:
    assert_profiles_close(load_profile(pname), fresh[pname][1])


def test_write_shipped_profiles_regenerates_same_files(tmp_path) -> None:
    paths = write_shipped_profiles(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.json" for n in SHIPPED_PROFILES)
    shipped_dir = Path(psl_env.__file__).parent / "models" / "profiles"
    for path in paths:  # byte for byte: counting functional ops changed no shipped profile
        assert path.read_bytes() == (shipped_dir / path.name).read_bytes(), path.name


def test_profile_json_round_trip(fresh, tmp_path) -> None:
    p = fresh["resnet18-32"][1]
    p.save(tmp_path / "p.json")
    q = ModelProfile.load(tmp_path / "p.json")
    assert_profiles_close(p, q)
    assert q.extra == p.extra and q.source == "profiler"


def test_parse_input_shape() -> None:
    assert parse_input_shape("3x32x32") == (3, 32, 32)
    assert parse_input_shape(" 1X8X8 ") == (1, 8, 8)
    for bad in ["3x32", "3x32x32x1", "ax32x32", "0x8x8", "3x-1x8", "", "3,32,32"]:
        with pytest.raises(ValueError, match=r"bad value .*CxHxW"):
            parse_input_shape(bad)


def test_profile_command(tmp_path) -> None:
    out = tmp_path / "sub" / "r.json"
    p = profile_command("resnet18", "3x64x64", str(out))
    assert p.name == "resnet18-64" and p.num_classes == 7 and p.input_shape == (3, 64, 64)
    assert_profiles_close(ModelProfile.load(out), p)
    assert profile_command("resnet18-64").input_shape == (3, 64, 64)
    custom = profile_command("small-cnn", "1x16x16")
    assert custom.name == "small-cnn-1x16x16" and custom.num_classes == 10
    with pytest.raises(ValueError, match="unknown model"):
        profile_command("lenet")
    with pytest.raises(ValueError, match="bad value '32x32'"):
        profile_command("vgg16", "32x32")


def test_format_profile_table() -> None:
    p = load_profile("vgg16-32")
    text = format_profile_table(p)
    lines = text.splitlines()
    assert "vgg16-32" in lines[0] and "L=16" in lines[0]
    assert len(lines) == 3 + p.num_blocks + 1
    assert all(name in text for name in p.block_names)


# ---------------------------------------------------------------- torch-free profile loading

def test_load_user_profile_without_torch(tmp_path) -> None:
    d = load_profile("small-cnn").to_dict()
    d.update(name="phone-cnn", source="user")
    d.pop("extra")
    d.pop("grad_bits")  # optional: defaults to act_bits
    path = tmp_path / "phone.json"
    path.write_text(json.dumps(d))
    code = (
        "import sys\n"
        "from psl_env.models import load_profile\n"
        f"p = load_profile({str(path)!r})\n"
        "q = load_profile('resnet18-32')\n"
        "assert p.name == 'phone-cnn' and p.source == 'user' and list(p.grad_bits) == list(p.act_bits)\n"
        "assert q.num_blocks == 10\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = str(Path(psl_env.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------- invalid profiles

def _valid() -> dict:
    return load_profile("small-cnn").to_dict()


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(fwd_flops=d["fwd_flops"][:-1]), "length"),
    (lambda d: d.update(act_bits=[-1.0] + d["act_bits"][1:]), ">= 0"),
    (lambda d: d.update(bwd_flops=[math.nan] * len(d["bwd_flops"])), "finite"),
    (lambda d: d.update(fwd_flops=list(reversed(d["fwd_flops"]))), "cumulative"),
    (lambda d: d.pop("param_bits"), "missing"),
    (lambda d: d.update(block_names=["only"], **{k: [0.0, 1.0] for k in ARRAYS}), "at least 2 blocks"),
])
def test_invalid_profiles_raise(mutate, match) -> None:
    d = _valid()
    mutate(d)
    with pytest.raises(ValueError, match=match):
        ModelProfile.from_dict(d)


def test_unknown_profile_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("resnet50-224")


# ---------------------------------------------------------------- functional ops and user models

class ModuleResidual(nn.Module):
    """conv-bn, residual add, relu, as leaf modules."""

    def __init__(self) -> None:
        super().__init__()
        from psl_env.models.base import Add

        self.conv, self.bn, self.add, self.relu = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), Add(), nn.ReLU()

    def forward(self, x):
        return self.relu(self.add(self.bn(self.conv(x)), x))


class FunctionalResidual(ModuleResidual):
    """The same block with the add and the relu written functionally."""

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + x)


class FunctionalHead(nn.Module):
    """Global average pooling and a linear layer, all functional, on the block's own parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.zeros(3))
        self.conv_weight = nn.Parameter(torch.randn(4, 4, 3, 3))

    def forward(self, x):
        x = torch.nn.functional.conv2d(x, self.conv_weight, padding=1)
        return torch.nn.functional.linear(x.mean((2, 3)), self.weight, self.bias)


class ModuleHead(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_functional_ops_count_like_their_modules() -> None:
    shape = (4, 6, 6)
    functional = profile_model(toy([FunctionalResidual(), FunctionalHead()], shape))
    modules = profile_model(toy([ModuleResidual(), ModuleHead()], shape))
    for key in ("fwd_flops", "bwd_flops", "act_mem_bytes"):
        np.testing.assert_allclose(getattr(functional, key), getattr(modules, key), rtol=1e-12, err_msg=key)
    assert functional.extra["fwd_flops_by_kind"] == modules.extra["fwd_flops_by_kind"]
    assert functional.fwd_flops[1] > profile_model(toy([nn.Sequential(nn.Conv2d(4, 4, 3, padding=1),
                                                                      nn.BatchNorm2d(4)), ModuleHead()],
                                                       shape)).fwd_flops[1]  # the add and relu are counted


def test_functional_ops_without_a_convention_are_refused() -> None:
    class Softmaxed(nn.Sequential):
        def forward(self, x):
            return torch.softmax(super().forward(x), dim=1)

    with pytest.raises(ValueError, match=r"block 'b0' computes aten._softmax in a custom forward"):
        profile_model(toy([Softmaxed(nn.Linear(4, 4)), nn.Linear(4, 2)], (4,)))


USER_MODULE = """
import torch
from torch import nn
from psl_env.models.base import SplitModel


class TinyNet(SplitModel):
    def __init__(self, input_shape=(3, 8, 8), num_classes=5):
        blocks = [Stem(input_shape[0]), nn.Sequential(nn.Flatten(), nn.Linear(8 * input_shape[1] * input_shape[2],
                                                                              num_classes))]
        super().__init__("tinynet", blocks, ["stem", "head"], input_shape, num_classes)


class Stem(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))  # functional: counted by the profiler


def sequential():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 6))
"""


def test_psl_profile_loads_a_users_model(tmp_path, monkeypatch, capsys) -> None:
    from trainers.cli import main

    (tmp_path / "mynets.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    assert main(["profile", "mynets:TinyNet", "--input", "3x8x8", "--out", "tiny.json"]) == 0
    profile = ModelProfile.load(tmp_path / "tiny.json")
    assert profile.block_names == ("stem", "head") and profile.num_classes == 5 and profile.input_shape == (3, 8, 8)
    conv = 2 * 8 * 64 * 3 * 9 + 8 * 64
    assert profile.fwd_flops[1] == conv + 8 * 64  # the functional relu: 1 FLOP per element
    assert main(["profile", str(tmp_path / "mynets.py") + ":sequential", "--input", "3x8x8"]) == 0
    assert "sequential-3x8x8: input 3x8x8, L=4 blocks" in capsys.readouterr().out


@pytest.mark.parametrize("spec, fragment", [
    ("nowhere_at_all:Net", "cannot be loaded (ModuleNotFoundError"),
    ("mynets:Missing", "cannot be loaded (AttributeError"),
    ("mynets:torch", "gives a module; allowed: a psl_env.models.base.SplitModel"),
    ("mynets:sequential", "is an nn.Sequential; give its input shape with --input CxHxW"),
    ("broken.py:Net", "cannot be loaded (ZeroDivisionError"),
])
def test_bad_user_models_are_one_line(tmp_path, monkeypatch, capsys, spec, fragment) -> None:
    from trainers.cli import main

    (tmp_path / "mynets.py").write_text(USER_MODULE)
    (tmp_path / "broken.py").write_text("1 / 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    assert main(["profile", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
