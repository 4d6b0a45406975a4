"""Measure a ``ModelProfile`` from a real ``SplitModel`` (docs/system-model.md).

One forward pass (batch 1, eval mode, no autograd) with forward hooks on every leaf module gives
per-block FLOPs, output shapes and activation sizes; parameter counts come from the modules.

Counting conventions, per sample:

* A multiply-add is 2 FLOPs. Conv: ``2 * C_in/groups * kernel area`` FLOPs per output element,
  plus 1 per output element for the bias. Linear: ``2 * in_features`` per output element, plus 1
  for the bias. These matmul-like terms are what ``torch.utils.flop_counter`` counts too (it ignores
  bias), and they dominate every shipped model.
* BatchNorm: 2 FLOPs per element (one multiply, one add, with mean/var/affine folded into a scale
  and shift as at inference). Computing batch statistics during training is not counted.
* Point-wise activations (ReLU etc.): 1 FLOP per element, whatever the function.
* Max/avg pooling: kernel area FLOPs per output element (one compare or add per window element).
  Adaptive pooling: 1 FLOP per input element (non-overlapping windows).
* Residual addition (``base.Add``): 1 FLOP per output element.
* Flatten, Identity, Dropout: 0 FLOPs (views or eval-mode no-ops).

Backward: a leaf with trainable parameters costs 2x its forward FLOPs (gradient w.r.t. its input
and w.r.t. its weights); a parameter-free leaf costs 1x (gradient w.r.t. its input only). The
first block is counted the same way although a client never needs the gradient w.r.t. the raw
input; this slightly overstates the client-side backward (by about one forward of the first
layer's matmul, e.g. 3.5 MFLOPs of ResNet-18's 2.2 GFLOPs at 3x32x32).

Activation memory (``act_mem_bytes``): bytes autograd keeps for backward, approximated as the sum of
the outputs of every leaf module of blocks 1..j at 4 bytes (fp32) per element, whatever
``bits_per_element`` says (that one is the transmission format). Conv/BN save their input, which is
the previous leaf's output, and ReLU saves its own output, so leaf outputs are a fair proxy. Views
(Flatten, Identity) and Dropout are not counted; the raw input of block 1 is not counted.

Parameters (``param_bits``): trainable and frozen parameters x ``bits_per_element``; buffers (e.g.
BatchNorm running statistics) are excluded.

Ops done functionally in a custom ``forward`` (``a + b``, ``torch.relu(x)``, ``F.conv2d``), and the
ops of leaf modules that have no rule, are invisible to hooks; a ``TorchDispatchMode`` sees them
instead and counts them under the same conventions (``FUNCTIONAL_RULES``: activations and
element-wise arithmetic 1 FLOP per output element, convolutions and matrix products as above,
pooling, means, batch norm; views and copies are free and keep no activation; 2x backward when a
trainable parameter takes part). An op no convention covers (e.g. ``softmax``) makes the profiler
refuse the model with a ``ValueError`` naming the op and the block (``register_flop_rule`` on the
module doing it adds a rule): nothing is silently counted as free.

``load_user_model("module:Class")`` (or ``"path/to/file.py:Class"``) builds a user's model for
``psl profile``: a ``SplitModel``, or an ``nn.Sequential`` whose children are the blocks.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.utils._python_dispatch import TorchDispatchMode

from . import MODEL_NAMES, build_model
from .base import Add, SplitModel
from .profile import PROFILE_DIR, ModelProfile, format_profile_table

__all__ = [
    "BlockMeasure", "FUNCTIONAL_RULES", "SHIPPED_PROFILES", "measure_blocks", "profile_model", "register_flop_rule",
    "parse_input_shape", "profile_command", "load_user_model", "write_shipped_profiles", "default_profile_name",
    "format_profile_table", "main",
]

ACT_MEM_BYTES_PER_ELEMENT = 4  # fp32 activations during training

# profile name -> (model name, input shape, num_classes). HAM10000 has 7 lesion classes.
SHIPPED_PROFILES: dict[str, tuple[str, tuple[int, int, int], int]] = {
    "small-cnn": ("small-cnn", (1, 8, 8), 10),
    "vgg16-32": ("vgg16", (3, 32, 32), 10),
    "resnet18-32": ("resnet18", (3, 32, 32), 10),
    "resnet18-64": ("resnet18", (3, 64, 64), 7),
    "resnet18-224": ("resnet18", (3, 224, 224), 7),
    "resnet18-cifar-64": ("resnet18-cifar", (3, 64, 64), 7),
}

# A rule maps (module, inputs, output) for a whole batch to FLOPs by kind for that batch.
FlopRule = Callable[[nn.Module, tuple, torch.Tensor], dict[str, float]]
_RULES: dict[type, FlopRule] = {}
# Leaves whose output is a view or an eval-mode no-op: no FLOPs and no saved activation.
_NO_MEMORY: tuple[type, ...] = (nn.Flatten, nn.Unflatten, nn.Identity, _DropoutNd)


def register_flop_rule(module_type: type, rule: FlopRule) -> None:
    """Count leaves of ``module_type`` (and its subclasses) with ``rule``.

    ``rule(module, inputs, output)`` returns FLOPs for the whole batch by kind (e.g.
    ``{"matmul": ..., "bias": ...}``); the profiler divides by the batch size.
    """
    _RULES[module_type] = rule


def _conv(m: nn.Module, inputs: tuple, out: torch.Tensor) -> dict[str, float]:
    macs = out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return {"matmul": 2.0 * macs, "bias": float(out.numel()) if m.bias is not None else 0.0}


def _linear(m: nn.Module, inputs: tuple, out: torch.Tensor) -> dict[str, float]:
    return {"matmul": 2.0 * out.numel() * m.in_features,
            "bias": float(out.numel()) if m.bias is not None else 0.0}


def _pool(m: nn.Module, inputs: tuple, out: torch.Tensor) -> dict[str, float]:
    k = m.kernel_size
    area = math.prod(k) if isinstance(k, tuple) else k ** (out.dim() - 2)
    return {"pool": float(out.numel() * area)}


def _per_element(kind: str, factor: float) -> FlopRule:
    return lambda m, inputs, out: {kind: factor * out.numel()}


for _t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_flop_rule(_t, _conv)
register_flop_rule(nn.Linear, _linear)
register_flop_rule(_BatchNorm, _per_element("norm", 2.0))
for _t in (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
           nn.Hardswish, nn.Hardsigmoid, nn.Mish):
    register_flop_rule(_t, _per_element("act", 1.0))
for _t in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d):
    register_flop_rule(_t, _pool)
for _t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
           nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d):
    register_flop_rule(_t, lambda m, inputs, out: {"pool": float(inputs[0].numel())})
register_flop_rule(Add, _per_element("add", 1.0))
for _t in _NO_MEMORY:
    register_flop_rule(_t, lambda m, inputs, out: {})


# -- functional ops (outside any leaf module) ---------------------------------------------------------
# A rule maps (args, output) of one aten op to FLOPs by kind; ops with no FLOPs map to {} and their
# outputs (views, copies) are not counted as kept activations either, like Flatten and Identity.
OpRule = Callable[[tuple, torch.Tensor], dict[str, float]]


def _op_conv(args: tuple, out: torch.Tensor) -> dict[str, float]:
    weight, bias = args[1], args[2] if len(args) > 2 else None
    if len(args) > 6 and args[6]:
        raise ValueError("transposed convolution")
    macs = out.numel() * weight.shape[1] * math.prod(weight.shape[2:])
    return {"matmul": 2.0 * macs, "bias": float(out.numel()) if bias is not None else 0.0}


def _op_addmm(args: tuple, out: torch.Tensor) -> dict[str, float]:  # bias + input @ weight.T (F.linear)
    return {"matmul": 2.0 * out.numel() * args[1].shape[-1], "bias": float(out.numel())}


def _op_matmul(args: tuple, out: torch.Tensor) -> dict[str, float]:
    return {"matmul": 2.0 * out.numel() * args[0].shape[-1]}


def _op_pool(args: tuple, out: torch.Tensor) -> dict[str, float]:
    kernel = args[1] if isinstance(args[1], (list, tuple)) else [args[1]] * (out.dim() - 2)
    return {"pool": float(out.numel() * math.prod(kernel))}


def _op_per_element(kind: str, factor: float) -> OpRule:
    return lambda args, out: {kind: factor * out.numel()}


def _op_per_input(kind: str) -> OpRule:
    return lambda args, out: {kind: float(args[0].numel())}


FREE_OPS = ("view", "_unsafe_view", "reshape", "flatten", "unflatten", "t", "transpose", "permute", "expand",
            "squeeze", "unsqueeze", "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "narrow",
            "detach", "alias", "clone", "contiguous", "cat", "stack", "_to_copy", "as_strided", "dropout",
            "native_dropout", "lift_fresh", "empty_like", "zeros_like", "ones_like")
FUNCTIONAL_RULES: dict[str, OpRule] = {
    **{name: (lambda args, out: {}) for name in FREE_OPS},
    "convolution": _op_conv, "addmm": _op_addmm, "mm": _op_matmul, "bmm": _op_matmul, "matmul": _op_matmul,
    **{name: _op_per_element("act", 1.0) for name in ("relu", "hardtanh", "leaky_relu", "elu", "gelu", "silu",
                                                      "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish")},
    **{name: _op_per_element("add", 1.0) for name in ("add", "sub")},
    **{name: _op_per_element("elementwise", 1.0) for name in ("mul", "div", "maximum", "minimum", "neg")},
    **{name: _op_pool for name in ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                                   "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d")},
    **{name: _op_per_input("pool") for name in ("mean", "sum", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
                                                "adaptive_max_pool2d", "adaptive_max_pool3d")},
    **{name: _op_per_element("norm", 2.0) for name in ("_native_batch_norm_legit_no_training",
                                                       "_native_batch_norm_legit", "native_batch_norm",
                                                       "batch_norm")},
}


class _FunctionalOps(TorchDispatchMode):
    """Counts the aten ops a block runs outside its leaf modules (``depth`` 0) into ``measure``."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.measure: BlockMeasure | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        out = func(*args, **(kwargs or {}))
        if self.depth == 0 and self.measure is not None:
            self._count(func, args, out)
        return out

    def _count(self, func: Any, args: tuple, out: Any) -> None:
        name = func.overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.endswith("__") else name  # in-place: relu_ -> relu
        rule = FUNCTIONAL_RULES.get(base)
        result = out[0] if isinstance(out, (tuple, list)) else out
        if rule is None or not isinstance(result, torch.Tensor):
            raise ValueError(f"profiler: block {self.measure.name!r} computes aten.{name} in a custom forward or "
                             "a module without a rule, and no counting convention covers it; give that module a "
                             "rule (register_flop_rule)")
        try:
            counts = rule(args, result)
        except ValueError as err:
            raise ValueError(f"profiler: block {self.measure.name!r} computes aten.{name} ({err}), which cannot "
                             "be counted") from None
        meas = self.measure
        for kind, v in counts.items():
            meas.fwd_flops[kind] = meas.fwd_flops.get(kind, 0.0) + v  # batch 1: per sample
        trainable = any(isinstance(a, nn.Parameter) and a.requires_grad for a in args)
        meas.bwd_flops += (2.0 if trainable else 1.0) * sum(counts.values())
        if counts:  # a computed value autograd would keep; views and copies are free
            meas.act_mem_bytes += result.numel() * ACT_MEM_BYTES_PER_ELEMENT


def _rule_for(module: nn.Module) -> FlopRule | None:
    for cls in type(module).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


def _leaves(block: nn.Module) -> list[nn.Module]:
    return [m for m in block.modules() if next(m.children(), None) is None]


@dataclass
class BlockMeasure:
    """What one block costs, per sample.

    Attributes:
        name: block name.
        fwd_flops: forward FLOPs by kind ("matmul", "bias", "norm", "act", "pool", "add").
        bwd_flops: backward FLOPs (2x forward for leaves with trainable weights, else 1x).
        out_shape: shape of the block's output for one sample.
        num_params: parameters in the block.
        act_mem_bytes: bytes of leaf outputs kept for backward.
    """

    name: str
    fwd_flops: dict[str, float] = field(default_factory=dict)
    bwd_flops: float = 0.0
    out_shape: tuple[int, ...] = ()
    num_params: int = 0
    act_mem_bytes: float = 0.0

    @property
    def total_fwd_flops(self) -> float:
        return float(sum(self.fwd_flops.values()))


def measure_blocks(model: SplitModel, input_shape: Sequence[int] | None = None) -> list[BlockMeasure]:
    """Run one sample through ``model`` block by block and measure each block (see module doc)."""
    shape = tuple(int(s) for s in (input_shape or model.input_shape))
    measures = [BlockMeasure(name=n, num_params=sum(p.numel() for p in b.parameters()))
                for n, b in zip(model.block_names, model.blocks)]
    functional = _FunctionalOps()

    def enter(m: nn.Module, inputs: tuple) -> None:
        functional.depth += 1  # ops inside a leaf are its rule's to count

    def make_hook(meas: BlockMeasure) -> Callable:
        def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            functional.depth -= 1
            if not isinstance(out, torch.Tensor):
                raise ValueError(f"profiler: {type(m).__name__} returned {type(out).__name__}, "
                                 "expected a tensor")
            batch = out.shape[0]  # every tensor here is batch-first
            counts = _rule_for(m)(m, inputs, out)
            for kind, v in counts.items():
                meas.fwd_flops[kind] = meas.fwd_flops.get(kind, 0.0) + v / batch
            trainable = any(p.requires_grad for p in m.parameters(recurse=False))
            meas.bwd_flops += (2.0 if trainable else 1.0) * sum(counts.values()) / batch
            if not isinstance(m, _NO_MEMORY):
                meas.act_mem_bytes += out.numel() / batch * ACT_MEM_BYTES_PER_ELEMENT
        return hook

    ref = next(model.parameters(), None)
    gen = torch.Generator().manual_seed(0)  # values do not matter; keep the global RNG untouched
    x = torch.randn((1, *shape), generator=gen)
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    modes = [(m, m.training) for m in model.modules()]  # restored one by one: modes may be mixed
    model.eval()  # BatchNorm must not update its running statistics while we measure
    try:
        with torch.no_grad(), functional:
            for block, meas in zip(model.blocks, measures):
                # leaves with a rule are counted by it; the ops of any other code (custom forwards,
                # leaves without a rule) by the dispatch mode
                leaves = [leaf for leaf in _leaves(block) if _rule_for(leaf) is not None]
                handles = [leaf.register_forward_pre_hook(enter) for leaf in leaves]
                handles += [leaf.register_forward_hook(make_hook(meas)) for leaf in leaves]
                functional.depth, functional.measure = 0, meas
                try:
                    x = block(x)
                except RuntimeError as e:
                    raise ValueError(f"profiler: {model.name} fails on input shape {shape} in block "
                                     f"{meas.name!r}: {e}") from e
                finally:
                    for h in handles:
                        h.remove()
                meas.out_shape = tuple(x.shape[1:])
    finally:
        for m, training in modes:
            m.training = training
    return measures


def default_profile_name(model_name: str, input_shape: Sequence[int]) -> str:
    """The shipped profile name for (model, shape) if there is one, else ``MODEL-CxHxW``."""
    shape = tuple(int(s) for s in input_shape)
    for pname, (mname, pshape, _) in SHIPPED_PROFILES.items():
        if (mname, pshape) == (model_name, shape):
            return pname
    return f"{model_name}-{'x'.join(str(s) for s in shape)}"


def profile_model(model: SplitModel, input_shape: Sequence[int] | None = None,
                  bits_per_element: int = 32, name: str | None = None) -> ModelProfile:
    """The per-cut cumulative profile of ``model`` measured from the module (see module doc).

    FLOPs per sample, activation/gradient bits per sample, parameter bits per model, activation
    memory in bytes per sample. Index 0 of every array is "nothing on the client".
    """
    if int(bits_per_element) != bits_per_element or bits_per_element <= 0:
        raise ValueError(f"profiler: bits_per_element must be a positive integer, got {bits_per_element!r}")
    shape = tuple(int(s) for s in (input_shape or model.input_shape))
    measures = measure_blocks(model, shape)

    def cumulative(values: list[float]) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=np.float64))])

    shapes = [shape] + [m.out_shape for m in measures]
    act_bits = np.array([math.prod(s) * bits_per_element for s in shapes], dtype=np.float64)
    kinds = sorted({k for m in measures for k in m.fwd_flops})
    extra = {
        "act_shapes": [list(s) for s in shapes],
        "num_params": int(sum(m.num_params for m in measures)),
        "fwd_flops_by_kind": {k: float(sum(m.fwd_flops.get(k, 0.0) for m in measures)) for k in kinds},
        "conventions": "multiply-add = 2 FLOPs; backward = 2x forward for layers with weights, "
                       "1x otherwise; act_mem_bytes = fp32 leaf outputs per sample",
    }
    return ModelProfile(
        name=name or default_profile_name(model.name, shape),
        input_shape=shape,
        block_names=tuple(model.block_names),
        fwd_flops=cumulative([m.total_fwd_flops for m in measures]),
        bwd_flops=cumulative([m.bwd_flops for m in measures]),
        act_bits=act_bits,
        grad_bits=act_bits.copy(),  # uncompressed: the gradient has the activation's shape
        param_bits=cumulative([m.num_params * bits_per_element for m in measures]),
        act_mem_bytes=cumulative([m.act_mem_bytes for m in measures]),
        bits_per_element=int(bits_per_element),
        num_classes=int(model.num_classes),
        source="profiler",
        extra=extra,
    )


MAX_CHANNELS, MAX_SIDE = 64, 1024
MAX_INPUT_VALUES = 3 * 1024 * 1024  # per sample: one forward pass must fit in memory


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"3x32x32"`` -> ``(3, 32, 32)``; ``ValueError`` naming the bad value otherwise (also for
    shapes too large to profile: C <= 64, H and W <= 1024, C*H*W <= 3*1024*1024)."""
    shown = repr(str(text)[:40] + ("..." if len(str(text)) > 40 else ""))
    parts = str(text).strip().lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"input shape: bad value {shown}; expected CxHxW with three positive "
                         "integers, e.g. 3x32x32")
    c, h, w = (int(p) for p in parts)
    if c > MAX_CHANNELS or h > MAX_SIDE or w > MAX_SIDE or c * h * w > MAX_INPUT_VALUES:
        raise ValueError(f"input shape: {shown} is too large; allowed: C <= {MAX_CHANNELS}, H and W <= {MAX_SIDE}, "
                         f"C*H*W <= {MAX_INPUT_VALUES}")
    return c, h, w


def profile_command(model_name: str, input_shape: str | Sequence[int] | None = None,
                    out: str | Path | None = None, num_classes: int | None = None,
                    bits_per_element: int = 32) -> ModelProfile:
    """Build and profile a model for the ``psl profile`` command; write JSON to ``out`` if given.

    ``model_name`` is a model (``resnet18``), a shipped profile name (``resnet18-64``, which
    fixes its input shape and classes unless overridden) or a user's ``module:Class`` (see
    ``load_user_model``). ``input_shape`` is ``"CxHxW"``; default
    the model's. ``num_classes`` defaults to the matching shipped profile's, else 10. The global
    torch RNG state is left as it was.
    """
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape) if isinstance(input_shape, str) else \
            tuple(int(s) for s in input_shape)
    if ":" in model_name:  # a user's model
        with torch.random.fork_rng(devices=[]):
            net = load_user_model(model_name, input_shape, num_classes)
        profile = profile_model(net, input_shape, bits_per_element=bits_per_element)
        if not profile.num_classes:  # an nn.Sequential: the size of its output
            profile = dataclasses.replace(profile, num_classes=int(math.prod(profile.extra["act_shapes"][-1])))
    else:
        if model_name in MODEL_NAMES:
            model, shape = model_name, tuple(MODEL_NAMES[model_name][2])
        elif model_name in SHIPPED_PROFILES:
            model, shape, _ = SHIPPED_PROFILES[model_name]
        else:
            raise ValueError(f"model: unknown model {model_name!r}; allowed: {sorted(MODEL_NAMES)}, "
                             f"a shipped profile {sorted(SHIPPED_PROFILES)} or 'module:Class'")
        shape = input_shape or shape
        if num_classes is None:
            shipped = SHIPPED_PROFILES.get(default_profile_name(model, shape))
            num_classes = shipped[2] if shipped else 10
        with torch.random.fork_rng(devices=[]):
            net = build_model(model, input_shape=shape, num_classes=num_classes)
        profile = profile_model(net, shape, bits_per_element=bits_per_element)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        profile.save(out)
    return profile


def _import_user_module(where: str) -> Any:
    """A module by name (the working folder is searched too) or by ``.py`` path."""
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"model: file {where!r} does not exist")
        spec = importlib.util.spec_from_file_location(f"_psl_user_model_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    added = "" not in sys.path and "." not in sys.path
    if added:
        sys.path.insert(0, "")  # as `python -m` would: the working folder's modules are found
    try:
        return importlib.import_module(where)
    finally:
        if added:
            sys.path.remove("")


def _call_factory(factory: Callable, input_shape: Sequence[int] | None, num_classes: int | None) -> Any:
    """``factory(...)`` with the ``input_shape`` / ``num_classes`` keywords it accepts (and that are given)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {}
    if input_shape is not None and "input_shape" in params:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None and "num_classes" in params:
        kwargs["num_classes"] = num_classes
    return factory(**kwargs)


def load_user_model(spec: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None
                    ) -> SplitModel:
    """A user's model from ``"module:attr"`` or ``"path/to/file.py:attr"`` (``psl profile``).

    ``attr`` is a ``SplitModel`` / ``nn.Sequential`` instance, or a class or function building one
    (called with the ``input_shape`` and ``num_classes`` keywords it accepts). An ``nn.Sequential``
    becomes a ``SplitModel`` whose blocks are its children; it needs ``input_shape``.

    Raises:
        ValueError: one line naming what failed (import, construction, the kind of object).
    """
    where, sep, attr = str(spec).rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(f"model: {spec!r} is not allowed; allowed: a shipped model or 'module:Class' / "
                         "'file.py:Class'")
    try:
        module = _import_user_module(where)
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
        building = callable(target) and not isinstance(target, nn.Module)
        model = _call_factory(target, input_shape, num_classes) if building else target
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - user code may fail in any way
        raise ValueError(f"model: {spec!r} cannot be loaded ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if isinstance(model, SplitModel):
        return model
    if isinstance(model, nn.Sequential):
        if input_shape is None:
            raise ValueError(f"model: {spec!r} is an nn.Sequential; give its input shape with --input CxHxW")
        names = [name for name, _ in model.named_children()]
        return SplitModel(attr.rsplit(".", 1)[-1].lower(), list(model.children()), names, tuple(input_shape),
                          int(num_classes or 0))
    raise ValueError(f"model: {spec!r} gives a {type(model).__name__}; allowed: a psl_env.models.base.SplitModel "
                     "(an ordered list of blocks) or an nn.Sequential of blocks")


def write_shipped_profiles(directory: str | Path | None = None) -> list[Path]:
    """(Re)generate the shipped profile JSONs (``SHIPPED_PROFILES``) into ``directory``."""
    directory = Path(directory) if directory is not None else PROFILE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for pname in SHIPPED_PROFILES:
        path = directory / f"{pname}.json"
        profile_command(pname, out=path)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m psl_env.models.profiler --all`` or ``... MODEL [--input CxHxW] [--out FILE]``."""
    ap = argparse.ArgumentParser(prog="python -m psl_env.models.profiler", description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help=f"one of {sorted(MODEL_NAMES)} or a shipped profile name")
    ap.add_argument("--input", help="per-sample input shape CxHxW, e.g. 3x32x32")
    ap.add_argument("--out", help="write the profile JSON here")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--all", action="store_true", help="regenerate the shipped profiles")
    args = ap.parse_args(argv)
    if args.all:
        for path in write_shipped_profiles():
            p = ModelProfile.load(path)
            print(f"{path}: L={p.num_blocks}, forward {p.fwd_flops[-1] / 1e9:.4g} GFLOPs/sample")
        return 0
    if not args.model:
        ap.error("give a MODEL or --all")
    try:
        profile = profile_command(args.model, args.input, args.out, num_classes=args.num_classes)
    except ValueError as e:
        ap.error(str(e))
    print(format_profile_table(profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
