"""The wire format of activations and cut-layer gradients at ``bits_per_element`` (docs/training.md).

The latency model charges every transmitted activation or cut-layer gradient element at the
scenario's ``bits_per_element`` (docs/system-model.md, section 2). The distributed engine sends
them in that width for real, and ``SplitTrainingEngine(wire_cast=True)`` applies the same round
trip in one process:

| bits | on the wire | decoded as |
|---|---|---|
| 32 | float32, unchanged | the tensor itself |
| 64 | float64 (exact widening) | float32 again |
| 16 | activations: float16 (11 significant bits, range +-65504); cut-layer gradients: bfloat16 (8 significant bits, float32's range) | float32 |
| 8 | int8, symmetric per-tensor quantization: scale s = max abs / 127 (float32; 1 for an all-zero tensor), q = round(x / s) in [-127, 127]; s travels as one extra float32 per tensor, counted on its own line | q * s |

Why two 16-bit types: activations are O(1) and need precision, while cut-layer gradients are
small (on digits-train at cut 2, 53-68% of the nonzero elements are below float16's smallest
normal number, 6.1e-5, and up to 4.4% below its smallest subnormal, where they would flush to
zero); bfloat16 keeps float32's exponent range. Both carry 16 bits per element.

Every message is one tensor with its own scale: each client's activation, each client's own
gradient rows, EPSL's broadcast rows. Other widths have no native element type and are refused.
Parameters (sync, migration) always travel at their own width (float32).
"""

from __future__ import annotations

import torch

WIRE_BITS = (8, 16, 32, 64)
_DTYPES = {8: torch.int8, 16: torch.float16, 32: torch.float32, 64: torch.float64}
_GRAD_DTYPES = {**_DTYPES, 16: torch.bfloat16}
INT8_LEVELS = 127.0


def check_bits(bits: int) -> int:
    """``bits`` if it has a wire format, else ``ValueError`` naming the allowed widths."""
    if int(bits) not in _DTYPES:
        raise ValueError(f"bits_per_element: {bits} has no wire format for real transfers; allowed: "
                         f"{list(WIRE_BITS)}")
    return int(bits)


def wire_dtype(bits: int, gradient: bool = False) -> torch.dtype:
    """The element type of an activation (or, ``gradient``, a cut-layer gradient) at ``bits`` per element."""
    return (_GRAD_DTYPES if gradient else _DTYPES)[check_bits(bits)]


def has_scale(bits: int) -> bool:
    """Whether a transfer at ``bits`` carries a float32 scale next to its payload (int8)."""
    return check_bits(bits) == 8


def encode(x: torch.Tensor, bits: int, gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(payload in the wire type, scale [1] float32 or None) of a float32 activation (or, ``gradient``,
    cut-layer gradient) ``x``."""
    dtype = wire_dtype(bits, gradient)
    x = x.detach()
    if bits != 8:
        return x.to(dtype).contiguous(), None
    amax = x.abs().max() if x.numel() else torch.zeros(())
    scale = (amax / INT8_LEVELS).reshape(1).to(torch.float32)
    if float(scale) == 0.0:
        scale = torch.ones(1, dtype=torch.float32)
    q = torch.round(x / scale).clamp_(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)
    return q.contiguous(), scale


def decode(payload: torch.Tensor, scale: torch.Tensor | None, bits: int) -> torch.Tensor:
    """The float32 tensor a receiver rebuilds from ``payload`` (and ``scale`` at 8 bits)."""
    if check_bits(bits) == 8:
        return payload.to(torch.float32) * scale
    return payload.to(torch.float32)


def roundtrip(x: torch.Tensor, bits: int, gradient: bool = False) -> torch.Tensor:
    """``decode(encode(x))``: what the receiver of ``x`` gets; ``x`` itself at 32 bits."""
    if bits == 32:
        return x.detach()
    return decode(*encode(x, bits, gradient), bits)


def payload_bytes(numel: int, bits: int) -> int:
    """Bytes of the payload of ``numel`` elements at ``bits`` (the scale not included)."""
    return int(numel) * torch.empty((), dtype=wire_dtype(bits)).element_size()


__all__ = ["WIRE_BITS", "check_bits", "wire_dtype", "has_scale", "encode", "decode", "roundtrip", "payload_bytes"]
