"""Split training across processes with torch.distributed (gloo): the server is rank 0, client i is rank i + 1.

``DistributedSplitEngine`` is ``SplitTrainingEngine`` (``engine.py``, docs/training.md) with the
clients in their own processes: same constructor, same ``step(cut)``, same ``RoundResult`` (plus
the bytes every rank sent and the measured times), and, seed for seed, the same weights. Launch
it locally with ``Cluster.local(N)`` (N client processes spawned on 127.0.0.1) or across machines
with ``torchrun`` (``python -m psl_env.training.distributed``, docs/training.md).

Who holds what. Client i (rank i + 1) holds its blocks 1..j_i, its optimizer state, its data and a
replica of the engine's batch sampler and augmentation generator (the in-process engine draws
every client's batch from one generator; each client replays it and keeps its own rows, so the
batches are the same). The server holds blocks j+1..L and, for evaluation and checkpoints only, a
mirror of the clients' blocks that it refreshes by pulling them when it needs them.

One iteration (``training.local_iterations`` per step), messages in this order:

1. client i -> server: its activation [b, ...] in the wire format of ``bits_per_element``
   (``wire.py``: float32, float64, float16 (gradients: bfloat16), or int8 plus a float32 scale),
   then its b labels (int64);
2. the server runs ``SplitTrainingEngine._server_pass`` on the decoded activations (forward, loss,
   EPSL's aggregation, backward: the in-process code) and steps its optimizer;
3. server -> clients: EPSL's aggregated rows' cut-layer gradient [m, ...] with one
   ``broadcast`` (sent once) when ``downlink: broadcast``; then to each client its own rows
   [b - m, ...] (all b rows without the broadcast), in the wire format;
4. client i back-propagates, steps its optimizer and sends a report (3 float64: forward, upload and
   backward seconds).

FedAvg (``sfl``, ``edgesplit``: every ``sync_period`` rounds): every client uploads the parameters
of all its blocks (float32: delta_j bits), the server averages them with the in-process code and
sends each client its averaged blocks back (delta_j bits): uploads plus downloads, as the latency
model's sync term. Cut changes: a client whose cut moves towards the input uploads the blocks it
hands over; one whose cut moves deeper downloads them from the server's copy; both at the same
time, then the server merges the incoming blocks with the in-process rule. The optimizer state
(SGD momentum, Adam moments) and BatchNorm buffers travel with the parameters, serialized, on
their own line: the in-process engine averages them too, and the latency model does not charge
them.

Bytes. Every rank counts what it sends, by line (``Traffic``): ``activations``, ``gradients``
(unicast), ``broadcast`` (once), ``sync`` and ``migration`` are exactly the latency model's bits
(docs/system-model.md, sections 3 and 8; tested); ``labels`` (8 bytes per sample; the model
omits them), ``scales`` (the int8 scales), ``state`` (optimizer state and buffers), ``pull``
(blocks pulled for evaluation or a checkpoint) and ``control`` (reports, acknowledgements) are
reported on their own lines. Commands go through the rendezvous store, not counted.

Emulated links (``step(cut, links=LinkRates(...))``): each transfer is held by its sender for the
time the channel model gives, bits / rate, before it is sent: an upload for b psi / R_i, the
broadcast for m chi / R_bc, then each client's own gradient rows released at m chi / R_bc +
(b - m) chi / RD_i after the downlink starts, sync uploads delta / R_i and downloads delta / RD_i,
migrations |delta' - delta| / (R_i or RD_i). ``Timing`` reports the transfer phases measured
(hold plus the real transfer, measured by the sender) next to the simulated ones (the holds), and
the processes' compute separately.

Failures. Data moves with a bounded timeout (``timeout_s``, gloo's); a client that dies makes the
server raise ``DistributedError`` naming the client, the phase and the round, not hang; the server
then stops the processes it started. Clients exit when the server's store goes away, when idle
longer than ``idle_timeout_s``, and (spawned ones) when their parent process is gone.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..system.scenario import Scenario, load_scenario
from . import wire
from .datasets import Dataset
from .engine import RoundResult, SplitTrainingEngine, build_optimizer, shift_images

LINES = ("activations", "gradients", "broadcast", "labels", "scales", "sync", "migration", "state", "pull",
         "control")
MODEL_LINES = ("activations", "gradients", "broadcast", "sync", "migration")  # what the latency model charges
PHASES = ("uplink", "downlink", "sync", "migration")
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_IDLE_TIMEOUT_S = 3600.0
_KEY = "psl/"


class DistributedError(RuntimeError):
    """A rank failed or stopped answering; the message names it, the phase and the round."""


# -- links, traffic, timing ---------------------------------------------------------------------

@dataclass(frozen=True)
class LinkRates:
    """The rates a round's transfers are held at (emulated links), bit/s.

    Attributes:
        up_bps: [N] uplink rate R_i of every client.
        down_bps: [N] downlink rate RD_i.
        broadcast_bps: R_bc, EPSL's broadcast rate (needed when the round broadcasts).
    """

    up_bps: np.ndarray
    down_bps: np.ndarray
    broadcast_bps: float | None = None

    def __post_init__(self) -> None:
        up = np.asarray(self.up_bps, dtype=np.float64)
        down = np.asarray(self.down_bps, dtype=np.float64)
        if up.shape != down.shape or up.ndim != 1:
            raise ValueError(f"links: up_bps and down_bps must be [N], got {up.shape} and {down.shape}")
        if not (np.all(up > 0) and np.all(down > 0) and np.all(np.isfinite(up)) and np.all(np.isfinite(down))):
            raise ValueError("links: every rate must be finite and > 0 (a client without a subchannel never "
                             "finishes its transfer)")
        object.__setattr__(self, "up_bps", up)
        object.__setattr__(self, "down_bps", down)
        if self.broadcast_bps is not None:
            object.__setattr__(self, "broadcast_bps", float(self.broadcast_bps))

    @classmethod
    def from_latency(cls, latency: Any, broadcast_bps: float | np.ndarray | None = None) -> "LinkRates":
        """The rates of a priced round (``psl_env.system.latency.Latency``; ``broadcast_bps`` from
        ``LatencyModel.broadcast_rate``)."""
        bc = None if broadcast_bps is None else float(np.asarray(broadcast_bps).reshape(-1)[0])
        return cls(np.asarray(latency.uplink_rate_bps, dtype=np.float64),
                   np.asarray(latency.downlink_rate_bps, dtype=np.float64), bc)


@dataclass
class Traffic:
    """Bytes moved by one step, by line (``LINES``).

    Attributes:
        sent: line -> [N + 1] bytes each rank sent (index 0: the server, i + 1: client i); a
            broadcast is counted once, on the server.
        to_client: line -> [N] bytes the server sent to each client alone (the broadcast, which every
            client receives, under ``broadcast``).
    """

    sent: dict[str, np.ndarray]
    to_client: dict[str, np.ndarray]

    def bits(self, line: str) -> np.ndarray:
        """[N + 1] bits each rank sent on ``line``."""
        return self.sent[line] * 8.0

    def model_bytes(self) -> np.ndarray:
        """[N + 1] bytes each rank sent on the lines the latency model charges."""
        return sum(self.sent[line] for line in MODEL_LINES)


@dataclass
class Timing:
    """Seconds of one step. Transfer phases (``PHASES``) as the round structure has them: uplink and
    downlink summed over the step's iterations (each the slowest client's), sync = slowest upload +
    slowest download, migration = slowest move.

    Attributes:
        measured: phase -> measured seconds (each transfer from the start of its hold to the end of
            its send, measured by the sender).
        simulated: phase -> the same phase at the link rates (the holds); empty without links.
        compute: ``client_forward``, ``client_backward`` (the slowest client's, summed over
            iterations) and ``server`` (forward, backward and optimizer step) in seconds of these
            processes on this machine.
        per_client: ``uplink_s``, ``downlink_s`` [N] measured per client (sums over iterations).
        wall_s: the step's wall time on the server.
    """

    measured: dict[str, float]
    simulated: dict[str, float]
    compute: dict[str, float]
    per_client: dict[str, np.ndarray]
    wall_s: float = 0.0


@dataclass
class DistributedRoundResult(RoundResult):
    """``RoundResult`` plus what the distributed step moved and how long its phases took."""

    traffic: Traffic | None = field(default=None, repr=False)
    timing: Timing | None = field(default=None, repr=False)


class _StepMeter:
    """Accumulates one step's measured and simulated phases."""

    def __init__(self, n: int, links: bool) -> None:
        self.n = n
        self.links = links
        self.measured = dict.fromkeys(PHASES, 0.0)
        self.simulated = dict.fromkeys(PHASES, 0.0)
        self.compute = {"client_forward": 0.0, "client_backward": 0.0, "server": 0.0}
        self.up = np.zeros(n)
        self.down = np.zeros(n)

    def phase(self, name: str, measured: np.ndarray, simulated: np.ndarray | float) -> None:
        self.measured[name] += float(np.max(measured)) if np.size(measured) else 0.0
        if self.links:
            self.simulated[name] += float(np.max(simulated)) if np.size(simulated) else 0.0

    def timing(self, wall_s: float) -> Timing:
        return Timing(dict(self.measured), dict(self.simulated) if self.links else {}, dict(self.compute),
                      {"uplink_s": self.up.copy(), "downlink_s": self.down.copy()}, wall_s)


# -- counted transfers ------------------------------------------------------------------------

def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _to_bytes(obj: Any) -> torch.Tensor:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _from_bytes(t: torch.Tensor) -> Any:
    return torch.load(io.BytesIO(t.numpy().tobytes()), weights_only=True)


class _Comm:
    """Point-to-point and broadcast calls on the default gloo group, with the bytes counted by line and
    peer (``sent[(dst, line)]``; dst -1: a broadcast)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.sent: dict[tuple[int, str], int] = defaultdict(int)
        self.received: dict[tuple[int, str], int] = defaultdict(int)

    def send(self, t: torch.Tensor, dst: int, line: str) -> None:
        if t.numel():
            dist.send(t, dst)
            self.sent[dst, line] += _nbytes(t)

    def recv(self, t: torch.Tensor, src: int, line: str) -> torch.Tensor:
        if t.numel():
            dist.recv(t, src)
            self.received[src, line] += _nbytes(t)
        return t

    def irecv(self, t: torch.Tensor, src: int, line: str):
        """A posted receive (None for an empty tensor); ``wait()`` it."""
        if not t.numel():
            return None
        self.received[src, line] += _nbytes(t)
        return dist.irecv(t, src)

    def broadcast(self, t: torch.Tensor, line: str) -> torch.Tensor:
        dist.broadcast(t, 0)
        if self.rank == 0:
            self.sent[-1, line] += _nbytes(t)
        else:
            self.received[0, line] += _nbytes(t)
        return t

    def send_blob(self, obj: Any, dst: int, line: str) -> None:
        payload = _to_bytes(obj)
        self.send(torch.tensor([payload.numel()], dtype=torch.int64), dst, line)
        self.send(payload, dst, line)

    def recv_blob(self, src: int, line: str) -> Any:
        size = self.recv(torch.zeros(1, dtype=torch.int64), src, line)
        return _from_bytes(self.recv(torch.empty(int(size), dtype=torch.uint8), src, line))

    def totals(self) -> dict:
        """Cumulative counts as JSON-able lists [[peer, line, bytes], ...]."""
        return {"sent": [[k[0], k[1], v] for k, v in self.sent.items()],
                "received": [[k[0], k[1], v] for k, v in self.received.items()]}


def _sleep_until(t: float) -> None:
    d = t - time.perf_counter()
    if d > 0:
        time.sleep(d)


def _flat_params(modules: Iterable[nn.Module]) -> torch.Tensor:
    """Every parameter of ``modules``, float32, in one flat tensor (what sync and migration send)."""
    parts = [p.detach().reshape(-1) for m in modules for p in m.parameters()]
    return torch.cat(parts) if parts else torch.zeros(0)


def _numel(modules: Iterable[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@torch.no_grad()
def _load_flat(modules: Iterable[nn.Module], flat: torch.Tensor) -> None:
    offset = 0
    for m in modules:
        for p in m.parameters():
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def _state_of(modules: list[nn.Module], opt_state: dict | None) -> dict:
    """Buffers and (with ``opt_state``) optimizer state of ``modules``' parameters, for a blob."""
    out: dict[str, Any] = {"buffers": [b.detach().clone() for m in modules for b in m.buffers()]}
    if opt_state is not None:
        out["opt"] = [dict(opt_state.get(p, {})) for m in modules for p in m.parameters()]
    return out


@torch.no_grad()
def _load_state(modules: list[nn.Module], blob: dict, opt_state: dict | None) -> None:
    for b, v in zip((b for m in modules for b in m.buffers()), blob["buffers"]):
        b.copy_(v)
    if opt_state is not None and "opt" in blob:
        for p, st in zip((p for m in modules for p in m.parameters()), blob["opt"]):
            if st:
                opt_state[p] = st
            else:
                opt_state.pop(p, None)


def _checksum(modules: Iterable[nn.Module]) -> list[float]:
    """Sum and sum of squares (float64) of the parameters: cheap evidence that two copies agree."""
    flat = _flat_params(modules).double()
    return [float(flat.sum()), float((flat * flat).sum())]


# -- the cluster ------------------------------------------------------------------------------

def _loopback_interface() -> str:
    """The name of the loopback interface (``lo`` on Linux, ``lo0`` on macOS), for gloo."""
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    return next((n for n in names if n.startswith("lo")), "lo")


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Cluster:
    """The gloo process group of one server (rank 0: this process) and N clients (ranks 1..N).

    Build with ``Cluster.local(N)`` (spawned client processes on 127.0.0.1) or
    ``Cluster.from_environment()`` on rank 0 of a ``torchrun`` launch (the other ranks call
    ``serve()``). One cluster at a time per process (torch.distributed has one default group);
    ``close()`` stops the clients the cluster started.

    Attributes:
        num_clients: N.
        timeout_s: bound on every data transfer and collective (gloo's timeout).
        broken: why the cluster stopped after a failure (None while healthy).
    """

    def __init__(self, num_clients: int, store: Any, timeout_s: float,
                 procs: list[subprocess.Popen] | None = None, owns_group: bool = True) -> None:
        self.num_clients = int(num_clients)
        self.store = store
        self.timeout_s = float(timeout_s)
        self.procs = procs or []
        self.owns_group = owns_group
        self.comm = _Comm(0)
        self.broken: str | None = None
        self.closed = False
        self.generation = 0  # bumped by every engine that initializes the clients
        self._seq = [0] * (self.num_clients + 1)
        atexit.register(self.close)

    @classmethod
    def local(cls, num_clients: int, timeout_s: float = DEFAULT_TIMEOUT_S,
              idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S, start_timeout_s: float = 120.0) -> "Cluster":
        """Spawn ``num_clients`` client processes of this Python and join them in a gloo group bound
        to 127.0.0.1 (the store and every connection)."""
        if dist.is_initialized():
            raise DistributedError("a torch.distributed process group already exists in this process; close "
                                   "the previous cluster (Cluster.close) first")
        n = int(num_clients)
        world = n + 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(world * 4)
        port = sock.getsockname()[1]
        store = dist.TCPStore("127.0.0.1", port, world, is_master=True, timeout=timedelta(seconds=timeout_s),
                              wait_for_workers=False, master_listen_fd=sock.detach())
        iface = _loopback_interface()
        env = dict(os.environ, GLOO_SOCKET_IFNAME=iface)
        env.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # a client stopping after its server prints one line
        procs = []
        try:
            for rank in range(1, world):
                cmd = [sys.executable, "-m", "psl_env.training.distributed", "serve-local", "--port", str(port),
                       "--rank", str(rank), "--world", str(world), "--timeout", repr(float(timeout_s)),
                       "--idle-timeout", repr(float(idle_timeout_s)), "--parent", str(os.getpid())]
                procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + start_timeout_s
            keys = [f"{_KEY}ready/{r}" for r in range(1, world)]
            while not store.check(keys):
                dead = [(r, p.poll()) for r, p in enumerate(procs, 1) if p.poll() is not None]
                if dead:
                    raise DistributedError(f"client rank {dead[0][0]} exited with code {dead[0][1]} while starting "
                                           "(its error is printed above)")
                if time.monotonic() > deadline:
                    raise DistributedError(f"clients did not start within {start_timeout_s:g} s")
                time.sleep(0.02)
            with _env(GLOO_SOCKET_IFNAME=iface):
                dist.init_process_group("gloo", store=store, rank=0, world_size=world,
                                        timeout=timedelta(seconds=timeout_s))
        except BaseException:
            _stop(procs)
            raise
        return cls(n, store, timeout_s, procs)

    @classmethod
    def from_environment(cls, timeout_s: float = DEFAULT_TIMEOUT_S) -> "Cluster":
        """Rank 0 of a ``torchrun`` launch (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)."""
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
        if dist.get_rank() != 0:
            raise DistributedError(f"rank {dist.get_rank()} is a client: call serve(), not Cluster.from_environment()")
        if dist.get_world_size() < 2:
            raise DistributedError("WORLD_SIZE is 1: a server needs at least one client rank")
        store = dist.distributed_c10d._get_default_store()
        return cls(dist.get_world_size() - 1, store, timeout_s, owns_group=True)

    # -- commands -------------------------------------------------------------------------------
    def command(self, op: str, args: dict | list[dict] | None = None, ranks: Iterable[int] | None = None) -> None:
        """Send ``op`` to client ranks (default: all) through the store; ``args`` one dict for every
        rank or one per client (indexed by client)."""
        if self.broken:
            raise DistributedError(f"the cluster stopped earlier: {self.broken}")
        for rank in (range(1, self.num_clients + 1) if ranks is None else ranks):
            body = args[rank - 1] if isinstance(args, list) else (args or {})
            key = f"{_KEY}cmd/{rank}/{self._seq[rank]}"
            self._seq[rank] += 1
            self.store.set(key, json.dumps({"op": op, **body}))

    def client_error(self, rank: int) -> str | None:
        """The error a client reported before stopping, if any."""
        key = f"{_KEY}error/{rank}"
        try:
            return self.store.get(key).decode() if self.store.check([key]) else None
        except Exception:  # noqa: BLE001 - the store may be gone with its host
            return None

    def process_status(self, rank: int) -> str | None:
        """``exited with code c`` / ``killed by SIGNAL`` for a spawned client that stopped, else None."""
        if not 1 <= rank <= len(self.procs):
            return None
        code = self.procs[rank - 1].poll()
        if code is None:
            return None
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"

    # -- shutdown -------------------------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Stop after a failure: terminate the clients this cluster started, drop the group."""
        if self.broken is None:
            self.broken = reason
        self._destroy()
        _stop(self.procs, grace_s=0.5)  # the survivors are mid-round: they would only wait for a timeout

    def close(self) -> None:
        """Tell the clients to stop, wait for them (bounded), stop stragglers, drop the group."""
        if self.closed:
            return
        self.closed = True
        if self.broken is None:
            with contextlib.suppress(Exception):
                self.command("shutdown")
        _stop(self.procs, grace_s=10.0)
        self._destroy()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def _destroy(self) -> None:
        if self.owns_group and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


def _stop(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """Wait up to ``grace_s`` for the processes, then terminate, then kill (only these processes)."""
    deadline = time.monotonic() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=3.0)


_SHARED: dict[str, Cluster] = {}


def shared_cluster(num_clients: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> Cluster:
    """The process's cluster for engines built by ``make_engine``: rank 0 of a ``torchrun`` launch, or
    local clients spawned once and reused while the client count stays the same."""
    cluster = _SHARED.get("cluster")
    if cluster is not None and not cluster.closed and cluster.broken is None and cluster.num_clients == num_clients:
        return cluster
    if cluster is not None:
        cluster.close()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        cluster = Cluster.from_environment(timeout_s)
        if cluster.num_clients != num_clients:
            raise DistributedError(f"num_clients: the scenario has {num_clients} clients but torchrun started "
                                   f"{cluster.num_clients} client ranks (WORLD_SIZE {cluster.num_clients + 1})")
    else:
        cluster = Cluster.local(num_clients, timeout_s)
    _SHARED["cluster"] = cluster
    return cluster


def close_shared_cluster() -> None:
    """Stop the cluster of ``shared_cluster`` (also done at exit)."""
    cluster = _SHARED.pop("cluster", None)
    if cluster is not None:
        cluster.close()


def make_engine(scenario: Scenario, initial_cut: int | np.ndarray | None = None, data: Dataset | None = None,
                **kwargs: Any) -> SplitTrainingEngine:
    """The engine ``training.engine`` asks for: ``SplitTrainingEngine`` (``inprocess``) or
    ``DistributedSplitEngine`` on the shared cluster (``distributed``, ``distributed-links``)."""
    kind = getattr(scenario.training, "engine", "inprocess")
    if kind == "inprocess":
        return SplitTrainingEngine(scenario, initial_cut=initial_cut, data=data, **kwargs)
    return DistributedSplitEngine(scenario, initial_cut=initial_cut, data=data,
                                  cluster=shared_cluster(scenario.num_clients), **kwargs)


# -- the server -------------------------------------------------------------------------------

class DistributedSplitEngine(SplitTrainingEngine):
    """``SplitTrainingEngine`` whose clients run in the processes of a ``Cluster`` (module docstring).

    Args:
        scenario, initial_cut, data, eval_model: as ``SplitTrainingEngine`` (the clients load
            ``training.dataset`` themselves; ``data`` only spares the server a load).
        cluster: the ``Cluster`` to run on; default: a new local one with ``scenario.num_clients``
            clients, closed by ``close()``.
        timeout_s: gloo timeout of a new local cluster.

    ``step(cut, links=None)`` returns a ``DistributedRoundResult``; ``links`` (``LinkRates``)
    emulates the round's links. ``evaluate``, ``composed_model``, ``client_blocks`` and
    ``state_dict`` pull the clients' blocks first (line ``pull``). ``bits_per_element`` must be
    8, 16, 32 or 64 (``wire.py``).
    """

    def __init__(self, scenario: Scenario | str | dict, initial_cut: int | np.ndarray | None = None,
                 data: Dataset | None = None, eval_model: str | None = None, cluster: Cluster | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        s = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        wire.check_bits(s.bits_per_element)
        owns = cluster is None
        if cluster is None:
            cluster = Cluster.local(s.num_clients, timeout_s)
        if cluster.num_clients != s.num_clients:
            raise ValueError(f"num_clients: the scenario has {s.num_clients} clients, the cluster "
                             f"{cluster.num_clients}")
        self.cluster = cluster
        self._owns_cluster = owns
        self._comm = cluster.comm
        self._links: LinkRates | None = None
        self._meter: _StepMeter | None = None
        self._iterate_pending = True
        try:
            super().__init__(s, initial_cut=initial_cut, data=data, eval_model=eval_model)
        except BaseException:
            if owns:
                cluster.close()
            raise
        self._act_shape = self._activation_shapes()
        self._dtype = wire.wire_dtype(self.bits_per_element)
        self._scaled = wire.has_scale(self.bits_per_element)
        self._ignore_downlink = s.downlink == "ignore"
        cluster.generation += 1  # the clients now belong to this engine
        self._generation = cluster.generation
        self._command("init", [{"scenario": s.to_dict(), "cut": [int(c) for c in self._cuts],
                                "eval_model": self.eval_model} for _ in range(self.num_clients)])
        for i in range(self.num_clients):
            with self._guard("start-up", i):
                got = self._comm.recv(torch.zeros(2, dtype=torch.float64), i + 1, "control").tolist()
            if got != _checksum(self.client_blocks_local(i)):
                self._fail(f"client {i}'s initial weights differ from the server's copy (a different torch "
                           "or package version on that machine?)")

    # -- public API -----------------------------------------------------------------------------
    def step(self, cut: int | np.ndarray | None = None, links: LinkRates | None = None) -> DistributedRoundResult:
        """One round at ``cut`` (see ``SplitTrainingEngine.step``); ``links`` holds every transfer for
        bits / rate (emulated links)."""
        if self.cluster.broken:
            raise DistributedError(f"the cluster stopped earlier: {self.cluster.broken}")
        if links is not None and links.up_bps.shape != (self.num_clients,):
            raise ValueError(f"links: expected rates for {self.num_clients} clients, got {links.up_bps.shape}")
        if links is not None and self.broadcast_downlink and links.broadcast_bps is None:
            raise ValueError("links: this scheme broadcasts the aggregated rows: broadcast_bps is needed")
        t0 = time.perf_counter()
        before_sent = dict(self._comm.sent)
        before_recv = dict(self._comm.received)
        self._links = links
        self._meter = _StepMeter(self.num_clients, links is not None)
        self._iterate_pending = True  # sent at the first iteration, after any migration
        try:
            res = super().step(cut)
        finally:
            self._links = None
        traffic = self._traffic(before_sent, before_recv)
        timing = self._meter.timing(time.perf_counter() - t0)
        values = {f.name: getattr(res, f.name) for f in dataclasses.fields(RoundResult)}
        return DistributedRoundResult(**values, traffic=traffic, timing=timing)

    def set_cut(self, cut: int | np.ndarray) -> np.ndarray:
        """Move blocks between the clients and the server (uploads and downloads at once), then merge
        them with the in-process rule; returns [N] migrated parameter bits."""
        new = self._check_cut(cut)
        old = self._cuts
        n = self.num_clients
        if np.array_equal(new, old):
            return np.zeros(n)
        links = self._links
        ups = [i for i in range(n) if new[i] < old[i]]
        downs = [i for i in range(n) if new[i] > old[i]]
        args = [{"cut": int(new[i]), "up_bps": self._rate(links, "up", i)} for i in range(n)]
        self._command("migrate", args, ranks=[i + 1 for i in ups + downs])
        # what clients moving deeper receive: the server's current copies (set_cut copies them too)
        pushes = {}
        for i in downs:
            mods = [self._server[k] for k in range(int(old[i]), int(new[i]))]
            pushes[i] = (_flat_params(mods), _state_of(mods, self._opt.state))
        posted = {}
        for i in ups:
            mods = [self._client[i][k] for k in range(int(new[i]), int(old[i]))]
            buf = torch.empty(_numel(mods))
            with self._guard("migration", i):
                posted[i] = (mods, buf, self._comm.irecv(buf, i + 1, "migration"))
        sim = np.zeros(n)
        measured = np.zeros(n)
        holds = {i: self._hold(pushes[i][0].numel() * 32, links, "down", i) for i in downs}
        start = time.perf_counter()
        for i in sorted(downs, key=holds.get):
            _sleep_until(start + holds[i])
            with self._guard("migration", i):
                self._comm.send(pushes[i][0], i + 1, "migration")
                measured[i] = time.perf_counter() - start
            sim[i] = holds[i]
        for i in downs:  # optimizer state and buffers after the parameters: not a model term
            with self._guard("migration", i):
                self._comm.send_blob(pushes[i][1], i + 1, "state")
        for i in ups:
            mods, buf, work = posted[i]
            with self._guard("migration", i):
                if work is not None:
                    work.wait()
                blob = self._comm.recv_blob(i + 1, "state")
            _load_flat(mods, buf)
            _load_state(mods, blob, self._opt.state)
            sim[i] = self._hold(buf.numel() * 32, links, "up", i)
        for i in ups + downs:
            with self._guard("migration", i):
                report = self._comm.recv(torch.zeros(1, dtype=torch.float64), i + 1, "control")
            if i in ups:
                measured[i] = float(report[0])
        moved = super().set_cut(new)
        if self._meter is not None:
            self._meter.phase("migration", measured, sim)
        return moved

    def evaluate(self):
        """Held-out accuracy and loss now; pulls the client blocks the evaluation needs first."""
        if not (self._eval_fresh and self._last_eval is not None):
            clients = [0] if (self.eval_model == "clients" and self._identical) else range(self.num_clients)
            self._pull(clients, with_state=False)
        return super().evaluate()

    def composed_model(self, client: int = 0) -> nn.Sequential:
        self._pull([client], with_state=False)
        return super().composed_model(client)

    def client_blocks(self, client: int) -> list[nn.Module]:
        """Client ``client``'s blocks as they are now on its rank (pulled; a copy on the server)."""
        self._pull([client], with_state=False)
        return super().client_blocks(client)

    def client_blocks_local(self, client: int) -> list[nn.Module]:
        """The server's mirror of client ``client``'s blocks, without pulling (possibly stale)."""
        return super().client_blocks(client)

    def state_dict(self) -> dict:
        """The in-process engine's ``state_dict`` after pulling every client block with its optimizer
        state: loadable by a ``SplitTrainingEngine`` of the same scenario."""
        self._pull(range(self.num_clients), with_state=True)
        return super().state_dict()

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError("DistributedSplitEngine cannot restore a state_dict; restore it into a "
                                  "SplitTrainingEngine of the same scenario")

    def client_totals(self) -> list[dict]:
        """Every client's own cumulative byte counts ({"sent": [[peer, line, bytes], ...], "received": ...})."""
        self._command("report")
        out = []
        for i in range(self.num_clients):
            with self._guard("report", i):
                out.append(self._comm.recv_blob(i + 1, "control"))
        return out

    def close(self) -> None:
        """Stop the cluster if this engine started it."""
        if self._owns_cluster:
            self.cluster.close()

    # -- the distributed round ------------------------------------------------------------------
    def _iteration(self) -> float:
        n, b, m = self.num_clients, self.batch_size, self.aggregated_rows
        comm, links, meter = self._comm, self._links, self._meter
        if self._meter is None:  # set_cut / _iteration outside step
            meter = self._meter = _StepMeter(n, False)
        if self._iterate_pending:  # the clients run all of a step's iterations on one command
            self._command_iterate()
        idx = self._sampler.draw()  # the clients' draw: keeps the replica (and checkpoints) in step
        self.last_indices = idx
        if self.augment_shift:
            torch.randint(0, 2 * self.augment_shift + 1, (2, n * b))
        posted = []
        for i in range(n):
            pay = torch.empty((b, *self._act_shape[int(self._cuts[i])]), dtype=self._dtype)
            scale = torch.empty(1) if self._scaled else None
            labels = torch.empty(b, dtype=torch.int64)
            with self._guard("uplink", i):
                works = [comm.irecv(pay, i + 1, "activations")]
                if scale is not None:
                    works.append(comm.irecv(scale, i + 1, "scales"))
                works.append(comm.irecv(labels, i + 1, "labels"))
            posted.append((pay, scale, labels, works))
        acts, ys = [], []
        for i, (pay, scale, labels, works) in enumerate(posted):
            with self._guard("uplink", i):
                for w in works:
                    if w is not None:
                        w.wait()
            acts.append(wire.decode(pay, scale, self.bits_per_element))
            ys.append(labels)
        y = torch.cat(ys)
        if not torch.equal(y, self._y.index_select(0, idx)):
            self._fail("the clients' labels differ from the batch the server expects: the sampler replicas "
                       "are out of step (different data or dataset files on a client?)")
        t = time.perf_counter()
        loss, grads = self._server_pass(acts, y)
        self._opt.step()
        self._opt.zero_grad(set_to_none=True)
        meter.compute["server"] += time.perf_counter() - t

        bits = self.bits_per_element
        start = time.perf_counter()
        bc_hold = 0.0
        if self.broadcast_downlink:
            pay, scale = wire.encode(self.last_broadcast, bits, gradient=True)
            bc_hold = 0.0 if self._ignore_downlink else self._hold(pay.numel() * bits, links, "broadcast")
            _sleep_until(start + bc_hold)
            with self._guard("downlink", None):
                comm.broadcast(pay, "broadcast")
                if scale is not None:
                    comm.broadcast(scale, "scales")
        own = [g[m:] if self.broadcast_downlink else g for g in grads]
        encoded = [wire.encode(g, bits, gradient=True) for g in own]
        holds = np.array([0.0 if self._ignore_downlink else self._hold(p.numel() * bits, links, "down", i)
                          for i, (p, _) in enumerate(encoded)]) + bc_hold
        done = np.zeros(n)
        for i in np.argsort(holds, kind="stable"):
            _sleep_until(start + holds[i])
            with self._guard("downlink", int(i)):
                comm.send(encoded[i][0], int(i) + 1, "gradients")
                done[i] = time.perf_counter() - start
                if encoded[i][1] is not None:
                    comm.send(encoded[i][1], int(i) + 1, "scales")
        reports = np.zeros((n, 3))
        for i in range(n):
            with self._guard("client backward", i):
                reports[i] = comm.recv(torch.zeros(3, dtype=torch.float64), i + 1, "control").numpy()
        up_sim = np.array([self._hold(a.numel() * bits, links, "up", i) for i, a in enumerate(acts)])
        meter.phase("uplink", reports[:, 1], up_sim)
        meter.phase("downlink", done, holds)
        meter.up += reports[:, 1]
        meter.down += done
        meter.compute["client_forward"] += float(reports[:, 0].max())
        meter.compute["client_backward"] += float(reports[:, 2].max())
        self._identical = self._identical and n == 1
        self._eval_fresh = False
        return float(loss)

    def _command_iterate(self) -> None:
        links = self._links
        k = self.scenario.training.local_iterations
        args = [{"iterations": k, "up_bps": self._rate(links, "up", i)} for i in range(self.num_clients)]
        self._command("iterate", args)
        self._iterate_pending = False

    def _fedavg(self) -> None:
        """FedAvg with uploads and downloads of every client's blocks (the model's sync term)."""
        n = self.num_clients
        links = self._links
        self._command("fedavg", [{"up_bps": self._rate(links, "up", i)} for i in range(n)])
        mods = [self.client_blocks_local(i) for i in range(n)]
        bufs = [torch.empty(_numel(ms)) for ms in mods]
        works = []
        for i in range(n):
            with self._guard("sync", i):
                works.append(self._comm.irecv(bufs[i], i + 1, "sync"))
        for i in range(n):
            with self._guard("sync", i):
                if works[i] is not None:
                    works[i].wait()
                blob = self._comm.recv_blob(i + 1, "state")
            _load_flat(mods[i], bufs[i])
            _load_state(mods[i], blob, self._opt.state)
        super()._fedavg()
        holds = np.array([self._hold(buf.numel() * 32, links, "down", i) for i, buf in enumerate(bufs)])
        done = np.zeros(n)
        start = time.perf_counter()
        flats = [_flat_params(ms) for ms in mods]
        for i in np.argsort(holds, kind="stable"):
            i = int(i)
            _sleep_until(start + holds[i])
            with self._guard("sync", i):
                self._comm.send(flats[i], i + 1, "sync")
                done[i] = time.perf_counter() - start
        for i in range(n):  # optimizer state and buffers after every client's parameters: not a model term
            with self._guard("sync", i):
                self._comm.send_blob(_state_of(mods[i], self._opt.state), i + 1, "state")
        up = np.zeros(n)
        for i in range(n):
            with self._guard("sync", i):
                up[i] = float(self._comm.recv(torch.zeros(1, dtype=torch.float64), i + 1, "control")[0])
        up_sim = np.array([self._hold(buf.numel() * 32, links, "up", i) for i, buf in enumerate(bufs)])
        if self._meter is not None:
            self._meter.measured["sync"] += float(up.max() + done.max())
            if self._meter.links:
                self._meter.simulated["sync"] += float(up_sim.max() + holds.max())

    def _pull(self, clients: Iterable[int], with_state: bool) -> None:
        """Refresh the server's mirror of ``clients``' blocks (and their optimizer state)."""
        clients = list(clients)
        if not clients:
            return
        self._command("pull", {"state": with_state}, ranks=[i + 1 for i in clients])
        for i in clients:
            mods = self.client_blocks_local(i)
            buf = torch.empty(_numel(mods))
            with self._guard("pull", i):
                self._comm.recv(buf, i + 1, "pull")
                blob = self._comm.recv_blob(i + 1, "pull")
            _load_flat(mods, buf)
            _load_state(mods, blob, self._opt.state if with_state else None)

    # -- helpers --------------------------------------------------------------------------------
    def _command(self, op: str, args: dict | list[dict] | None = None, ranks: Iterable[int] | None = None) -> None:
        if self.cluster.generation != self._generation:
            raise DistributedError("a newer engine re-initialized this cluster's clients; this engine cannot "
                                   "run on them any more")
        self.cluster.command(op, args, ranks)

    def _hold(self, bits: float, links: LinkRates | None, direction: str, i: int = 0) -> float:
        if links is None:
            return 0.0
        if direction == "up":
            return float(bits) / links.up_bps[i]
        if direction == "down":
            return float(bits) / links.down_bps[i]
        return float(bits) / float(links.broadcast_bps)

    @staticmethod
    def _rate(links: LinkRates | None, direction: str, i: int) -> float | None:
        if links is None:
            return None
        return float(links.up_bps[i] if direction == "up" else links.down_bps[i])

    def _activation_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of the activation at every cut 0..L (one sample through the blocks)."""
        blocks = copy.deepcopy(self._proto.blocks)
        blocks.train(False)
        shapes = []
        with torch.no_grad():
            h = torch.zeros(1, *self.data.input_shape)
            shapes.append(tuple(h.shape[1:]))
            for blk in blocks:
                h = blk(h)
                shapes.append(tuple(h.shape[1:]))
        return shapes

    def _traffic(self, before_sent: dict, before_recv: dict) -> Traffic:
        n = self.num_clients
        sent = {line: np.zeros(n + 1) for line in LINES}
        to_client = {line: np.zeros(n) for line in LINES}
        for (dst, line), v in self._comm.sent.items():
            d = v - before_sent.get((dst, line), 0)
            sent[line][0] += d
            if dst == -1:
                to_client[line] += d
            else:
                to_client[line][dst - 1] += d
        for (src, line), v in self._comm.received.items():
            sent[line][src] += v - before_recv.get((src, line), 0)
        return Traffic(sent, to_client)

    @contextlib.contextmanager
    def _guard(self, phase: str, client: int | None):
        """Turn a failed transfer into a ``DistributedError`` naming the client, phase and round."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as err:
            self._fail(self._describe(phase, client, err))

    def _describe(self, phase: str, client: int | None, err: Exception) -> str:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = re.sub(r"^\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", first)  # gloo's source location
        first = first.split(" This is typically caused")[0].rstrip(".")  # gloo's generic advice
        if client is None:  # a collective: name the client whose process is gone, if one is
            client = next((r - 1 for r in range(1, self.num_clients + 1) if self.cluster.process_status(r)), None)
        who = "a client" if client is None else f"client {client} (rank {client + 1})"
        where = f"during the {phase} of round {self.round + 1}"
        reported = None if client is None else self.cluster.client_error(client + 1)
        msg = f"{who} failed {where}: {reported}" if reported else f"{who} stopped answering {where}: {first}"
        status = None if client is None else self.cluster.process_status(client + 1)
        if status:
            msg += f"; its process {status}"
        return msg

    def _fail(self, message: str) -> None:
        self.cluster.abort(message)
        raise DistributedError(message)


# -- the clients ------------------------------------------------------------------------------

class _ClientWorker:
    """Client i's part of an engine: its blocks, optimizer, data and sampler replica."""

    def __init__(self, rank: int, comm: _Comm, cmd: dict, cache: dict) -> None:
        s = load_scenario(cmd["scenario"])
        tc = s.training
        key = (tc.dataset, str(tc.data_dir), tc.test_fraction, s.seed)
        eng = SplitTrainingEngine(s, initial_cut=np.array(cmd["cut"], dtype=np.int64), data=cache.get(key),
                                  eval_model=cmd.get("eval_model"))
        cache.clear()
        cache[key] = eng.data
        self.comm = comm
        self.rank = rank
        self.i = i = rank - 1
        self.tc = tc
        self.n, self.b, self.m = eng.num_clients, eng.batch_size, eng.aggregated_rows
        self.broadcast_downlink = eng.broadcast_downlink
        self.bits = wire.check_bits(eng.bits_per_element)
        self.shift = eng.augment_shift
        self.proto = eng._proto
        self.blocks: dict[int, nn.Module] = eng._client[i]
        self.cut = int(eng.cut[i])
        self.sampler = eng._sampler
        self.torch_rng = eng._torch_rng
        self.x, self.y = eng._x, eng._y
        self.opt = build_optimizer([self._params()], tc)
        comm.send(torch.tensor(_checksum(self._modules()), dtype=torch.float64), 0, "control")

    def _modules(self) -> list[nn.Module]:
        return [self.blocks[k] for k in sorted(self.blocks)]

    def _params(self) -> list[nn.Parameter]:
        return [p for m in self._modules() for p in m.parameters()]

    # -- ops ------------------------------------------------------------------------------------
    def iterate(self, cmd: dict) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.torch_rng)
            for _ in range(int(cmd["iterations"])):
                self._iteration(cmd.get("up_bps"))
            self.torch_rng = torch.get_rng_state()

    def _iteration(self, up_bps: float | None) -> None:
        n, b, m, i, comm = self.n, self.b, self.m, self.i, self.comm
        idx = self.sampler.draw()
        own = idx[i * b:(i + 1) * b]
        x = self.x.index_select(0, own)
        if self.shift:
            offset = torch.randint(0, 2 * self.shift + 1, (2, n * b))
            x = shift_images(x, offset[:, i * b:(i + 1) * b], self.shift)
        y = self.y.index_select(0, own)
        t = time.perf_counter()
        h = x
        for k in sorted(self.blocks):
            h = self.blocks[k](h)
        fwd = time.perf_counter() - t
        pay, scale = wire.encode(h, self.bits)
        t = time.perf_counter()
        if up_bps:
            time.sleep(pay.numel() * self.bits / up_bps)
        comm.send(pay, 0, "activations")
        up = time.perf_counter() - t
        if scale is not None:
            comm.send(scale, 0, "scales")
        comm.send(y, 0, "labels")
        shape = tuple(h.shape[1:])
        gdtype = wire.wire_dtype(self.bits, gradient=True)
        parts = []
        if self.broadcast_downlink:
            bc = comm.broadcast(torch.empty((m, *shape), dtype=gdtype), "broadcast")
            bc_scale = comm.broadcast(torch.empty(1), "scales") if scale is not None else None
            parts.append(wire.decode(bc, bc_scale, self.bits))
        rows = b - m if self.broadcast_downlink else b
        own_pay = comm.recv(torch.empty((rows, *shape), dtype=gdtype), 0, "gradients")
        own_scale = comm.recv(torch.empty(1), 0, "scales") if scale is not None else None
        parts.append(wire.decode(own_pay, own_scale, self.bits))
        grad = parts[0] if len(parts) == 1 else torch.cat(parts)
        t = time.perf_counter()
        if h.requires_grad:
            h.backward(grad)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        bwd = time.perf_counter() - t
        comm.send(torch.tensor([fwd, up, bwd], dtype=torch.float64), 0, "control")

    def fedavg(self, cmd: dict) -> None:
        mods = self._modules()
        flat = _flat_params(mods)
        t = time.perf_counter()
        if cmd.get("up_bps"):
            time.sleep(flat.numel() * 32 / cmd["up_bps"])
        self.comm.send(flat, 0, "sync")
        up = time.perf_counter() - t
        self.comm.send_blob(_state_of(mods, self.opt.state), 0, "state")
        new = self.comm.recv(torch.empty_like(flat), 0, "sync")
        blob = self.comm.recv_blob(0, "state")
        _load_flat(mods, new)
        _load_state(mods, blob, self.opt.state)
        self.comm.send(torch.tensor([up], dtype=torch.float64), 0, "control")

    def migrate(self, cmd: dict) -> None:
        new, old = int(cmd["cut"]), self.cut
        up = 0.0
        states = dict(self.opt.state)
        if new < old:
            mods = [self.blocks[k] for k in range(new, old)]
            flat = _flat_params(mods)
            t = time.perf_counter()
            if cmd.get("up_bps"):
                time.sleep(flat.numel() * 32 / cmd["up_bps"])
            self.comm.send(flat, 0, "migration")
            up = time.perf_counter() - t
            self.comm.send_blob(_state_of(mods, self.opt.state), 0, "state")
            for k in range(new, old):
                for p in self.blocks.pop(k).parameters():
                    states.pop(p, None)
        elif new > old:
            fresh = {k: copy.deepcopy(self.proto.blocks[k]) for k in range(old, new)}
            mods = [fresh[k] for k in range(old, new)]
            flat = self.comm.recv(torch.empty(_numel(mods)), 0, "migration")
            blob = self.comm.recv_blob(0, "state")
            _load_flat(mods, flat)
            _load_state(mods, blob, states)
            self.blocks.update(fresh)
        self.cut = new
        self.opt = build_optimizer([self._params()], self.tc, states)
        self.comm.send(torch.tensor([up], dtype=torch.float64), 0, "control")

    def pull(self, cmd: dict) -> None:
        mods = self._modules()
        self.comm.send(_flat_params(mods), 0, "pull")
        self.comm.send_blob(_state_of(mods, self.opt.state if cmd.get("state") else None), 0, "pull")


def serve(store: Any | None = None, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S) -> int:
    """Run this client rank: execute the server's commands until it says stop; returns the exit code.

    Under ``torchrun`` call it on every rank but 0 (``python -m psl_env.training.distributed`` does);
    the process group must be initialized (it is initialized from the environment if not).
    """
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(seconds=DEFAULT_TIMEOUT_S))
    rank = dist.get_rank()
    store = store if store is not None else dist.distributed_c10d._get_default_store()
    comm = _Comm(rank)
    worker: _ClientWorker | None = None
    cache: dict = {}
    seq = 0
    code = 0
    while True:
        key = f"{_KEY}cmd/{rank}/{seq}"
        try:
            store.wait([key], timedelta(seconds=idle_timeout_s))
            cmd = json.loads(store.get(key))
            store.delete_key(key)
        except Exception as err:  # noqa: BLE001 - the server is gone or silent: stop
            print(f"psl client rank {rank}: no command from the server ({str(err).splitlines()[0]}); stopping",
                  file=sys.stderr)
            code = 1
            break
        seq += 1
        op = cmd["op"]
        if op == "shutdown":
            break
        try:
            if op == "init":
                worker = None
                worker = _ClientWorker(rank, comm, cmd, cache)
            elif op == "report":
                comm.send_blob(comm.totals(), 0, "control")
            elif worker is None:
                raise RuntimeError(f"command {op!r} before init")
            else:
                getattr(worker, op)(cmd)
        except Exception as err:  # noqa: BLE001 - report, then stop: the server raises with this text
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            message = f"{type(err).__name__}: {first}"
            with contextlib.suppress(Exception):
                store.set(f"{_KEY}error/{rank}", message)
            print(f"psl client rank {rank}: {op} failed: {message}", file=sys.stderr)
            code = 1
            break
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
    return code


def _watch_parent(parent: int) -> None:
    """Exit this process when its parent (the server that spawned it) is gone."""
    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)
    threading.Thread(target=loop, daemon=True, name="psl-parent-watch").start()


def _serve_local(args: argparse.Namespace) -> int:
    _watch_parent(args.parent)
    store = dist.TCPStore("127.0.0.1", args.port, args.world, is_master=False, timeout=timedelta(seconds=args.timeout))
    store.set(f"{_KEY}ready/{args.rank}", str(os.getpid()))
    dist.init_process_group("gloo", store=store, rank=args.rank, world_size=args.world,
                            timeout=timedelta(seconds=args.timeout))
    return serve(store, args.idle_timeout)


# -- command line -----------------------------------------------------------------------------

def _fake_cifar(folder: str, n_train: int, seed: int) -> None:
    """Random 3x32x32 images in CIFAR-10's python batch layout (for timing runs; nothing to learn)."""
    import pickle

    rng = np.random.default_rng(seed)
    per = -(-n_train // 5)
    for name, count in [(f"data_batch_{k}", per) for k in range(1, 6)] + [("test_batch", max(100, n_train // 5))]:
        batch = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, count).tolist()}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)


def _run(args: argparse.Namespace) -> int:
    """Train ``--rounds`` rounds (rank 0), printing what moved and how long the transfers took."""
    import tempfile

    from ..models.profile import load_profile
    from ..system.allocation import reference_allocation
    from ..system.simulator import NetworkSimulator

    overrides = list(args.overrides)
    tmp = None
    if args.random_cifar:
        tmp = tempfile.TemporaryDirectory(prefix="psl-random-cifar-")
        _fake_cifar(tmp.name, args.random_cifar, 0)
        overrides += ["training.dataset=cifar10", f"training.data_dir={tmp.name}"]
    s = load_scenario(args.scenario, overrides)
    torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    cluster = Cluster.from_environment(args.timeout) if torchrun else Cluster.local(s.num_clients, args.timeout)
    try:
        sim = NetworkSimulator(s, load_profile(s.model))
        state = sim.reset(s.seed)
        tables = sim.latency_model.tables
        cut = args.cut
        engine = DistributedSplitEngine(s, initial_cut=cut, cluster=cluster)
        cut = int(engine.cut[0]) if cut is None else cut
        rows = []
        for r in range(args.rounds):
            alloc = reference_allocation(tables, state.power_budget_w, state.memory_bytes, s.num_subchannels, cut)
            lat = sim.latency_model.evaluate(state, alloc)
            links = None
            if args.links:
                links = LinkRates.from_latency(lat, sim.latency_model.broadcast_rate(state.gains))
            res = engine.step(alloc.cut if s.per_device_cuts else int(alloc.cut[0]), links=links)
            k = s.training.local_iterations
            model_bytes = (k * (res.uplink_bits.sum() + res.downlink_unicast_bits.sum() + res.downlink_broadcast_bits)
                           + res.sync_bits.sum() * 2 + res.migration_bits.sum()) / 8
            row = {"round": res.round, "loss": res.loss, "accuracy": None if res.accuracy != res.accuracy else res.accuracy,
                   "sent_bytes": res.traffic.sent, "model_bytes": float(model_bytes),
                   "measured": res.timing.measured, "simulated": res.timing.simulated,
                   "model_phases": {"uplink": float(np.max(lat.uplink_s)), "downlink": float(np.max(lat.downlink_s)),
                                    "sync": float(lat.sync), "migration": float(lat.migration)},
                   "compute": res.timing.compute, "wall_s": res.timing.wall_s}
            rows.append(row)
            traffic = sum(res.traffic.model_bytes())
            print(f"round {res.round:4d}  loss {res.loss:.4f}  bytes {traffic:,.0f} (model {model_bytes:,.0f})  "
                  + "  ".join(f"{p} {res.timing.measured[p] * 1e3:.1f}"
                              + (f"/{res.timing.simulated[p] * 1e3:.1f}" if links else "") + " ms"
                              for p in PHASES)
                  + f"  compute: clients {(res.timing.compute['client_forward'] + res.timing.compute['client_backward']) * 1e3:.1f}"
                  f" ms, server {res.timing.compute['server'] * 1e3:.1f} ms", flush=True)
            state = sim.advance(alloc.cut, float(lat.total))
        _summary(rows[1:] if len(rows) > 1 else rows, bool(args.links))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o), indent=1)
    finally:
        cluster.close()
        if tmp is not None:
            tmp.cleanup()
    return 0


def _summary(rows: list[dict], links: bool) -> None:
    """Mean measured and simulated transfer phases (ms) over ``rows`` (the first round is left out)."""
    print(f"\nmeans over {len(rows)} rounds (ms):")
    for p in PHASES:
        meas = np.mean([r["measured"][p] for r in rows]) * 1e3
        line = f"  {p:10s} measured {meas:10.2f}"
        if links:
            sim = np.mean([r["simulated"][p] for r in rows]) * 1e3
            model = np.mean([r["model_phases"][p] for r in rows]) * 1e3
            line += f"   simulated {sim:10.2f}   latency model {model:10.2f}"
        print(line)
    for key in ("client_forward", "client_backward", "server"):
        print(f"  compute {key:16s} {np.mean([r['compute'][key] for r in rows]) * 1e3:10.2f}")
    print(f"  wall per round     {np.mean([r['wall_s'] for r in rows]) * 1e3:10.2f}")


def main(argv: list[str] | None = None) -> int:
    """``python -m psl_env.training.distributed``: train a scenario with the server on rank 0 (local
    clients spawned, or the ranks of ``torchrun``); clients under torchrun serve."""
    parser = argparse.ArgumentParser(prog="python -m psl_env.training.distributed", description=main.__doc__)
    sub = parser.add_subparsers(dest="mode")
    local = sub.add_parser("serve-local", help=argparse.SUPPRESS)
    local.add_argument("--port", type=int, required=True)
    local.add_argument("--rank", type=int, required=True)
    local.add_argument("--world", type=int, required=True)
    local.add_argument("--timeout", type=float, required=True)
    local.add_argument("--idle-timeout", type=float, required=True)
    local.add_argument("--parent", type=int, required=True)
    parser.add_argument("--scenario", default="digits-train", help="shipped scenario name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a scenario key (repeatable)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds to train")
    parser.add_argument("--cut", type=int, default=None, help="the common cut (default: the middle cut)")
    parser.add_argument("--links", action="store_true",
                        help="emulate the links: hold every transfer for bits / rate of the reference allocation")
    parser.add_argument("--random-cifar", type=int, default=0, metavar="N",
                        help="train on N random 3x32x32 images (CIFAR-10 layout, temporary folder): for timing")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="bound on every transfer, s")
    parser.add_argument("--json", default=None, help="write every round's figures here")
    args = parser.parse_args(argv)
    if args.mode == "serve-local":
        return _serve_local(args)
    if "RANK" in os.environ and int(os.environ["RANK"]) != 0:
        return serve()
    try:
        return _run(args)
    except (DistributedError, ValueError) as err:
        print(f"psl distributed: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2


__all__ = ["Cluster", "DistributedError", "DistributedRoundResult", "DistributedSplitEngine", "LINES",
           "LinkRates", "MODEL_LINES", "PHASES", "Timing", "Traffic", "close_shared_cluster", "make_engine",
           "serve", "shared_cluster"]

if __name__ == "__main__":
    sys.exit(main())
