"""Device profiles: this machine's measured forward and backward FLOP/s per model block (``psl calibrate``).

The latency model prices a client's compute as FLOPs / f_i (docs/system-model.md, sections 7 and
8) with the FLOPs of the model profile (``psl_env/models/profiler.py``). A device profile measures
f on this machine: every block of the model runs forward and backward on a batch in training
mode, timed (median of repeats after warm-up), and its FLOPs (the profiler's count, per sample,
times the batch) over that time give the block's forward and backward rate. For each cut j,
``compute_flops_by_cut[j]`` is the rate that reproduces the measured time of blocks 1..j forward
and backward, b (rho_j + varpi_j) / sum of their times; ``compute_flops`` is that rate for the
whole model (j = L).

A scenario uses a profile through ``apply_device_profile`` (``psl calibrate --scenario S
--scenario-out FILE`` writes the result as a scenario YAML): with ``devices.kind: loguniform``
every client computes at the measured rate (``devices.compute_flops: [f, f]``: the other draws
are unchanged), with ``kind: classes`` every class takes it; ``role="server"`` sets
``server.compute_flops`` instead.

File format (JSON, ``kind: psl-device-profile``, version 1): ``name``, ``machine`` (host, platform,
processor, python, torch, threads), ``model``, ``input_shape``, ``batch_size``, ``repeats``,
``blocks`` (per block: ``name``, ``fwd_flops_per_sample``, ``bwd_flops_per_sample``, ``fwd_s``,
``bwd_s``, ``fwd_flops_per_s``, ``bwd_flops_per_s``), ``compute_flops_by_cut`` (index 0: null) and
``compute_flops``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_KIND = "psl-device-profile"
PROFILE_VERSION = 1
ROLES = ("client", "server")


def measure_device(model: str = "small-cnn", batch_size: int = 32, threads: int = 1, repeats: int = 5,
                   warmup: int = 2, name: str | None = None, seed: int = 0) -> dict:
    """Measure this machine on ``model`` (a profile name such as ``small-cnn`` or ``resnet18-32``):
    the device profile as a JSON-able dict (module docstring).

    Args:
        model: trainable model name (``engine.resolve_model``), optionally with an input-size suffix.
        batch_size: samples per timed pass (the scenario's b is the natural choice).
        threads: torch intra-op threads while measuring (the engine uses ``training.torch_threads``).
        repeats: timed passes per block (the median is kept); ``warmup``: untimed passes first.
        name: the device name in the file (default: this host's name).
        seed: seed of the random weights and inputs.
    """
    import torch

    from ..models import MODEL_NAMES, build_model
    from ..models.profiler import SHIPPED_PROFILES, profile_model
    from .engine import resolve_model

    if batch_size < 1 or threads < 1 or repeats < 1 or warmup < 0:
        raise ValueError("calibrate: batch_size, threads and repeats must be >= 1, warmup >= 0")
    arch, size = resolve_model(model)
    shape = tuple(MODEL_NAMES[arch][2])
    if size is not None:
        shape = (shape[0], size, size)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            classes = SHIPPED_PROFILES[model][2] if model in SHIPPED_PROFILES else 10
            net = build_model(arch, shape, classes)
            profile = profile_model(net, shape, name=model)
            net.train()
            x = torch.rand(batch_size, *shape)
            fwd_per_sample = np.diff(profile.fwd_flops)
            bwd_per_sample = np.diff(profile.bwd_flops)
            blocks = []
            h = x
            for k, blk in enumerate(net.blocks):
                inp = h.detach().requires_grad_(k > 0)  # a client never needs the raw input's gradient
                fwd_times, bwd_times = [], []
                for rep in range(warmup + repeats):
                    t0 = time.perf_counter()
                    out = blk(inp)
                    t1 = time.perf_counter()
                    out.backward(torch.ones_like(out))
                    t2 = time.perf_counter()
                    blk.zero_grad(set_to_none=True)
                    inp.grad = None
                    if rep >= warmup:
                        fwd_times.append(t1 - t0)
                        bwd_times.append(t2 - t1)
                with torch.no_grad():
                    h = blk(inp.detach())
                fwd_s, bwd_s = statistics.median(fwd_times), statistics.median(bwd_times)
                fwd_flops, bwd_flops = float(fwd_per_sample[k]), float(bwd_per_sample[k])
                blocks.append({"name": profile.block_names[k], "fwd_flops_per_sample": fwd_flops,
                               "bwd_flops_per_sample": bwd_flops, "fwd_s": fwd_s, "bwd_s": bwd_s,
                               "fwd_flops_per_s": batch_size * fwd_flops / fwd_s,
                               "bwd_flops_per_s": batch_size * bwd_flops / bwd_s})
    finally:
        torch.set_num_threads(old_threads)
    seconds = np.cumsum([0.0] + [b["fwd_s"] + b["bwd_s"] for b in blocks])
    flops = batch_size * (profile.fwd_flops + profile.bwd_flops)
    by_cut = [None] + [float(flops[j] / seconds[j]) for j in range(1, len(blocks) + 1)]
    return {
        "kind": PROFILE_KIND,
        "version": PROFILE_VERSION,
        "name": name or socket.gethostname(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"hostname": socket.gethostname(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__, "threads": threads},
        "model": model,
        "input_shape": list(shape),
        "batch_size": batch_size,
        "repeats": repeats,
        "warmup": warmup,
        "conventions": "FLOPs per sample as the model profiler counts them (multiply-add = 2; backward = 2x "
                       "forward for layers with weights, 1x otherwise); time: median of the repeats, training mode; "
                       "rate = batch_size x FLOPs / time",
        "blocks": blocks,
        "compute_flops_by_cut": by_cut,
        "compute_flops": by_cut[-1],
    }


def load_device_profile(path: str | Path) -> dict:
    """A device profile from ``path``; ``ValueError`` with one line naming what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"device profile: {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"device profile: {str(path)!r} is not readable JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise ValueError(f"device profile: {str(path)!r} is not a device profile (kind {PROFILE_KIND!r} expected)")
    if data.get("version") != PROFILE_VERSION:
        raise ValueError(f"device profile: {str(path)!r} has version {data.get('version')!r}; "
                         f"allowed: {PROFILE_VERSION}")
    rate = data.get("compute_flops")
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"device profile: {str(path)!r} has no positive compute_flops")
    return data


def profile_rate(profile: dict, cut: int | None = None) -> float:
    """The profile's compute rate, FLOP/s: the whole model's, or blocks 1..``cut``'s."""
    if cut is None:
        return float(profile["compute_flops"])
    by_cut = profile.get("compute_flops_by_cut") or []
    if not 1 <= cut < len(by_cut):
        raise ValueError(f"cut: {cut} is not allowed for {profile.get('model')!r}; allowed: 1..{len(by_cut) - 1}")
    return float(by_cut[cut])


def apply_device_profile(scenario: Any, profile: dict | str | Path, cut: int | None = None,
                         role: str = "client") -> Any:
    """``scenario`` with its clients' (or, ``role="server"``, the server's) compute rate taken from a
    device profile (``profile_rate(profile, cut)``); see the module docstring."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not allowed; allowed: {list(ROLES)}")
    data = load_device_profile(profile) if isinstance(profile, (str, Path)) else profile
    rate = profile_rate(data, cut)
    if role == "server":
        return scenario.replace(**{"server.compute_flops": rate})
    devices = scenario.devices
    if devices.kind == "classes":
        classes = [dict(c, compute_flops=rate) for c in devices.classes]
        return scenario.replace(**{"devices.classes": classes})
    return scenario.replace(**{"devices.compute_flops": [rate, rate]})


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder (all or nothing)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (all or nothing)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["PROFILE_KIND", "PROFILE_VERSION", "ROLES", "apply_device_profile", "load_device_profile",
           "measure_device", "profile_rate", "write_json_atomic", "write_text_atomic"]
