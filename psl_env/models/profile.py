"""The per-cut profile of a splittable model (docs/system-model.md), independent of torch.

A model has L blocks; cut j (1 <= j <= L-1) keeps blocks 1..j on the client. Every per-cut array
has length L+1 and is indexed by j: index 0 means "nothing on the client" (its activation is the
raw input), index L means "the whole model" (its activation is the output logits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ARRAYS = ("fwd_flops", "bwd_flops", "act_bits", "grad_bits", "param_bits", "act_mem_bytes")


@dataclass(frozen=True)
class ModelProfile:
    """Cumulative per-sample costs of blocks 1..j, for j = 0..L.

    Attributes:
        name: model identifier (e.g. ``resnet18-32``).
        input_shape: per-sample input shape (C, H, W).
        block_names: the L block names, in order.
        fwd_flops: [L+1] cumulative forward FLOPs per sample (rho_j).
        bwd_flops: [L+1] cumulative backward FLOPs per sample (varpi_j).
        act_bits: [L+1] bits of the activation leaving block j, per sample (psi_j).
        grad_bits: [L+1] bits of the gradient at cut j, per sample (chi_j).
        param_bits: [L+1] bits of the parameters of blocks 1..j (delta_j), per model.
        act_mem_bytes: [L+1] bytes of activations blocks 1..j keep for backward, per sample.
        bits_per_element: bits of one transmitted activation/gradient element.
        num_classes: output classes of the model.
        source: where the figures come from ("profiler", "user", ...).
    """

    name: str
    input_shape: tuple[int, ...]
    block_names: tuple[str, ...]
    fwd_flops: np.ndarray
    bwd_flops: np.ndarray
    act_bits: np.ndarray
    grad_bits: np.ndarray
    param_bits: np.ndarray
    act_mem_bytes: np.ndarray
    bits_per_element: int = 32
    num_classes: int = 10
    source: str = "profiler"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.block_names) + 1
        for key in _ARRAYS:
            arr = np.asarray(getattr(self, key), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"profile {self.name!r}: {key} must have length L+1={n}, got {arr.shape}")
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"profile {self.name!r}: {key} must be finite and >= 0")
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        for key in ("fwd_flops", "bwd_flops", "param_bits", "act_mem_bytes"):
            if np.any(np.diff(getattr(self, key)) < 0):
                raise ValueError(f"profile {self.name!r}: {key} must be cumulative (non-decreasing)")
        if n < 3:
            raise ValueError(f"profile {self.name!r}: needs at least 2 blocks to have a cut")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "block_names", tuple(self.block_names))

    @property
    def num_blocks(self) -> int:
        """L, the number of blocks."""
        return len(self.block_names)

    @property
    def cut_candidates(self) -> np.ndarray:
        """The valid cuts 1..L-1."""
        return np.arange(1, self.num_blocks)

    def client_memory_bytes(self, cut: int | np.ndarray, batch_size: int,
                            optimizer_slots: int = 1) -> np.ndarray:
        """Client memory to train blocks 1..cut on a batch (mem_j), bytes.

        Parameters, their gradients and ``optimizer_slots`` optimizer tensors per parameter (1 for SGD
        with momentum, 2 for Adam), plus the activations kept for backward for ``batch_size`` samples.
        """
        cut = np.asarray(cut)
        param_bytes = self.param_bits[cut] / 8.0
        return param_bytes * (2 + optimizer_slots) + batch_size * self.act_mem_bytes[cut]

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "block_names": list(self.block_names),
            "bits_per_element": self.bits_per_element,
            "num_classes": self.num_classes,
            "source": self.source,
        }
        for key in _ARRAYS:
            d[key] = [float(x) for x in getattr(self, key)]
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelProfile":
        required = ("name", "input_shape", "block_names", "fwd_flops", "bwd_flops", "act_bits", "param_bits")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"profile is missing keys {missing}; required: {list(required)}")
        act_bits = d["act_bits"]
        return cls(
            name=str(d["name"]),
            input_shape=tuple(d["input_shape"]),
            block_names=tuple(d["block_names"]),
            fwd_flops=np.asarray(d["fwd_flops"], dtype=np.float64),
            bwd_flops=np.asarray(d["bwd_flops"], dtype=np.float64),
            act_bits=np.asarray(act_bits, dtype=np.float64),
            grad_bits=np.asarray(d.get("grad_bits", act_bits), dtype=np.float64),
            param_bits=np.asarray(d["param_bits"], dtype=np.float64),
            act_mem_bytes=np.asarray(d.get("act_mem_bytes", np.zeros(len(d["block_names"]) + 1)),
                                     dtype=np.float64),
            bits_per_element=int(d.get("bits_per_element", 32)),
            num_classes=int(d.get("num_classes", 10)),
            source=str(d.get("source", "user")),
            extra=dict(d.get("extra", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelProfile":
        return cls.from_dict(json.loads(Path(path).read_text()))


PROFILE_DIR = Path(__file__).parent / "profiles"


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> ModelProfile:
    """A shipped profile by name (``resnet18-32``) or a user profile JSON by path. No torch needed."""
    p = Path(name_or_path)
    if p.suffix == ".json" and p.exists():
        return ModelProfile.load(p)
    shipped = PROFILE_DIR / f"{name_or_path}.json"
    if shipped.exists():
        return ModelProfile.load(shipped)
    raise ValueError(f"model: unknown profile {str(name_or_path)!r}; allowed: {shipped_profiles()} "
                     "or a path to a profile .json")


def format_profile_table(profile: ModelProfile) -> str:
    """A plain-text table of the cumulative per-cut figures of ``profile`` (no torch needed).

    Row j is cut j: blocks 1..j on the client. FLOPs and bits are per sample, params per model.
    Row 0 is the raw input and row L the whole model; the cut candidates are rows 1..L-1.
    """
    p = profile
    shape = "x".join(str(s) for s in p.input_shape)
    lines = [
        f"{p.name}: input {shape}, L={p.num_blocks} blocks (cuts 1..{p.num_blocks - 1}), "
        f"{p.num_classes} classes, {p.bits_per_element} bits/element, source={p.source}",
        f"whole model: forward {p.fwd_flops[-1] / 1e9:.4g} GFLOPs/sample, backward "
        f"{p.bwd_flops[-1] / 1e9:.4g} GFLOPs/sample, parameters {p.param_bits[-1] / 1e6:.4g} Mbit",
        f"{'cut':>4}  {'block':<14}{'fwd MFLOPs':>12}{'bwd MFLOPs':>12}{'act kbit':>11}"
        f"{'grad kbit':>11}{'param Mbit':>12}{'act mem KiB':>13}",
    ]
    for j in range(p.num_blocks + 1):
        block = "(input)" if j == 0 else p.block_names[j - 1]
        lines.append(
            f"{j:>4}  {block:<14}{p.fwd_flops[j] / 1e6:>12.3f}{p.bwd_flops[j] / 1e6:>12.3f}"
            f"{p.act_bits[j] / 1e3:>11.2f}{p.grad_bits[j] / 1e3:>11.2f}{p.param_bits[j] / 1e6:>12.4f}"
            f"{p.act_mem_bytes[j] / 1024:>13.1f}")
    return "\n".join(lines)
