"""The real split-training engine (docs/training.md): a torch model trained round by round with the real split.

Layout. The model has L blocks. Client i holds its own copy of blocks 1..j_i (``j_i`` its cut); the
edge server holds ONE copy of every block k > min_i j_i, shared by all clients whose cut is below
k. With a common cut this is plain PSL: N client-side copies of blocks 1..j and one server-side
model j+1..L. With per-device cuts (EdgeSplit) the server runs blocks j_i+1..L for each client's
activations: clients are grouped by cut, and the server concatenates each group's activations as
soon as the forward pass reaches their depth, so a block shared by several clients sees (and
accumulates gradients from) all of them in one batch.

One round (``step``), ``training.local_iterations`` times:

1. every client draws b samples of its partition (epoch-wise shuffling without replacement), with
   ``training.augment_shift`` = k > 0 translates each image by a random offset in [-k, k]^2 pixels
   (zero padding; the client augments its own data), and runs its blocks; the activations are
   detached at the cut and marked ``requires_grad`` (the upload);
2. the server runs the concatenation, computes the loss and the gradient of the logits;
3. EPSL (``scheme: epsl``, phi > 0): last-layer gradient aggregation on m = round(phi * b) rows per
   client (``scheme.aggregated_rows``, the latency model's rule; the first m rows of each client's
   random batch), see below;
4. server backward; the cut-layer gradient of each row goes back to its client (the download);
   clients back-propagate; all optimizers step;
5. FedAvg of the client-side blocks every ``scenario.effective_sync_period`` rounds (``sfl``).

Loss convention. Client i's loss is the mean cross-entropy over its own b samples, l_i; the server's
objective is their mean, (1/N) sum_i l_i, which equals the mean over the union of the N*b samples
because every client draws exactly b. Server parameters get the gradient of that mean; client i
gets the gradient of its own l_i at the cut (N times the union-mean gradient of its rows). Hence
``sfl`` with FedAvg every round, equal partition sizes and SGD takes exactly the step of centralized
SGD on the union batch with the mean loss (tested). The reported training loss is the union mean,
measured before the update.

EPSL aggregated rows (a reconstruction: EPSL's text leaves the mechanics open; docs/training.md).
For each aggregated sample index k < m the server averages the N clients' cut activations,
a_bar_k = mean_i a_{i,k}, and their last-layer gradients (softmax - onehot), g_bar_k = mean_i g_{i,k};
it back-propagates g_bar_k through the server model at a_bar_k (with weight N, the number of rows it
stands for, so the server gradient keeps its scale) and broadcasts the resulting cut-layer gradient:
every client receives the same gradient for its row k (broadcast once with ``downlink:
broadcast``, else sent to each client on its own subchannels). The other b - m rows per client are
plain PSL. The server thus runs N*b + m rows forward (the m averaged activations once more) and
back-propagates the m + N(b - m) rows with a nonzero output gradient, as the latency model charges.
A real implementation skips the N*m per-client aggregated rows, whose output gradient is zeroed;
autograd here still traverses them in the same batched pass (they contribute nothing to the
parameters of models without BatchNorm; with BatchNorm they, and a_bar, enter the batch
statistics), so the wall time, not the counts, includes them. With m = 0 (phi = 0) the code path is
exactly plain PSL.

Cut changes (``set_cut``, called by ``step(cut)``). Blocks that move to the server are averaged over
the clients handing them over (and the server's own copy, if other clients already used it),
weighted by data size: the server copy weighs the data of the clients that used it. Blocks that
move to a client are copied from the server copy the client was using, so its composed model is
unchanged. Optimizer state (SGD momentum buffers, Adam moments) travels with the parameters under
the same rule: averaged with the same weights when blocks merge (Adam's step count: the maximum),
copied when blocks are copied. FedAvg averages optimizer state the same way; this makes ``sfl`` with
sync every round equal to centralized momentum SGD too.

Measurements (``RoundResult``, per iteration, in the units of the latency model's per-cut tables,
``system/scheme.py``). Bits crossing the air are the element counts of the real tensors sent (each
client's uploaded activation, its own cut-layer gradient rows, EPSL's broadcast rows) times
``scenario.bits_per_element``; the tensors themselves stay fp32 (the width is what a transfer at
that precision would carry) unless ``wire_cast=True``, which passes every activation and cut-layer
gradient through the wire format of that width (``wire.py``), as the distributed engine
(``distributed.py``) sends them. Server rows are counted where the server pass puts them: rows entering
at each cut and run forward to the output, and rows back-propagated with a nonzero output gradient;
times the profile's per-sample FLOPs they give the latency model's server FLOPs. Parameter bits
(sync, migration, once per step) are the moved parameters' numel times their width (32, fp32);
BatchNorm buffers are averaged too but not counted.

Reproducibility. Model initialisation, partition, batch sampling, augmentation offsets and the
model's own randomness (e.g. dropout; these two from a private copy of torch's global generator)
derive from ``scenario.seed``;
``state_dict``/``load_state_dict`` capture every model copy, the optimizer, the samplers and the
generators, so a restored run continues bit-identically. The constructor sets
``torch.set_num_threads(training.torch_threads)`` (process-wide).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..models import MODEL_NAMES, build_model
from ..models.profile import ModelProfile, load_profile
from ..system.scenario import Scenario, load_scenario
from ..system.scheme import aggregated_rows
from . import wire
from .datasets import Dataset, load_dataset
from .partition import make_partition

STATE_VERSION = 1
EVAL_CHUNK = 2048
EVAL_MODELS = ("clients", "averaged")
_SUFFIX = re.compile(r"^(?P<arch>.+)-(?P<size>\d+)$")


# -- model name resolution ----------------------------------------------------------------------

def resolve_model(model: str) -> tuple[str, int | None]:
    """(architecture for ``build_model``, input height/width or None) for a scenario's ``model``.

    A profile name maps to an architecture by dropping its input-size suffix (``resnet18-64`` ->
    (``resnet18``, 64)); a profile JSON path is resolved through the profile's name.
    """
    name = str(model)
    path = Path(name)
    if path.suffix == ".json" and path.exists():
        name = ModelProfile.load(path).name
    if name in MODEL_NAMES:
        return name, None
    match = _SUFFIX.match(name)
    if match and match["arch"] in MODEL_NAMES:
        return match["arch"], int(match["size"])
    raise ValueError(f"model: no trainable architecture for {model!r}; allowed: {sorted(MODEL_NAMES)}, "
                     "optionally with an input-size suffix such as 'resnet18-32'")


# -- results ------------------------------------------------------------------------------------

@dataclass
class EvalResult:
    """Held-out evaluation after ``round`` rounds.

    Attributes:
        round: rounds completed when evaluated.
        accuracy: mean over clients of the test accuracy of each client's composed model
            (``eval_model="clients"``) or the accuracy of the averaged model (``"averaged"``).
        loss: the matching mean test cross-entropy.
        client_accuracy: [N] accuracy of each client's composed model (all equal to ``accuracy``
            under ``averaged``).
    """

    round: int
    accuracy: float
    loss: float
    client_accuracy: np.ndarray


@dataclass
class RoundResult:
    """What one ``step`` did. Bits and rows are per iteration, as the latency model charges a round
    (a step of ``training.local_iterations`` = k iterations moves k times as much); sync and
    migration bits are per step.

    Attributes:
        round: rounds completed (1 after the first step).
        cut: [N] the cuts used.
        loss: training loss, mean cross-entropy over the round's N*b samples before the update
            (averaged over local iterations).
        accuracy: latest held-out accuracy (nan before the first evaluation).
        test_loss: latest held-out loss (nan before the first evaluation).
        evaluated: whether this step ran an evaluation (every ``training.eval_every`` rounds).
        target_reached: latest accuracy >= ``training.target_accuracy``.
        act_bits_per_sample: [N] measured bits of one sample's activation at each client's cut (psi).
        grad_bits_per_sample: [N] measured bits of one sample's cut-layer gradient (chi).
        uplink_bits: [N] activation bits each client uploaded (b psi_{j_i}).
        downlink_unicast_bits: [N] gradient bits sent to each client alone ((b - m) chi_{j_i} with a
            broadcast downlink, else b chi_{j_i}; also under ``downlink: ignore``, which only drops
            them from the latency).
        downlink_broadcast_bits: gradient bits broadcast once to all clients (m chi_j, EPSL with
            ``downlink: broadcast``; 0 otherwise).
        aggregated_rows: m, EPSL aggregated rows per client.
        server_forward_rows: rows the server ran forward, N*b + m.
        server_backward_rows: rows the server back-propagated with a nonzero output gradient,
            m + N(b - m) (autograd also traverses the N*m zeroed rows; see the module docstring).
        server_forward_rows_by_cut: [L + 1] rows entering the server at cut j and run forward
            through blocks j+1..L; dotted with rho_L - rho_j (FLOPs per sample) they give the
            server's forward FLOPs.
        server_backward_rows_by_cut: [L + 1] the same for the backward pass (varpi_L - varpi_j).
        synced: whether the step ended with FedAvg of the client-side models.
        sync_bits: [N] client-side parameter bits exchanged per direction by the sync (0 otherwise).
        migration_bits: [N] parameter bits of the blocks that moved because of a cut change.
        wall_time_s: wall-clock time of the step (training, sync, migration, evaluation).
    """

    round: int
    cut: np.ndarray
    loss: float
    accuracy: float
    test_loss: float
    evaluated: bool
    target_reached: bool
    act_bits_per_sample: np.ndarray
    grad_bits_per_sample: np.ndarray
    uplink_bits: np.ndarray
    downlink_unicast_bits: np.ndarray
    downlink_broadcast_bits: float
    aggregated_rows: int
    server_forward_rows: int
    server_backward_rows: int
    server_forward_rows_by_cut: np.ndarray
    server_backward_rows_by_cut: np.ndarray
    synced: bool
    sync_bits: np.ndarray
    migration_bits: np.ndarray
    wall_time_s: float
    eval: EvalResult | None = field(default=None, repr=False)


# -- helpers on tensors and optimizer state -----------------------------------------------------

def random_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """Every image of ``x`` [B, C, H, W] translated by its own (dy, dx), uniform in [-k, k]^2, with zero
    padding; draws from torch's global generator."""
    return shift_images(x, torch.randint(0, 2 * k + 1, (2, x.shape[0])), k)


def shift_images(x: torch.Tensor, offset: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` [B, C, H, W] with image r translated by ``offset[:, r] - k`` pixels (rows, columns), zero
    padding; ``offset`` [2, B] in [0, 2k]. Each image depends only on its own column, so a client
    shifting its b rows with its columns of the batch's draw gets the rows of the whole batch's shift."""
    b, _, h, w = x.shape
    padded = F.pad(x, (k, k, k, k)).permute(0, 2, 3, 1)  # [B, H + 2k, W + 2k, C]
    rows = (offset[0, :, None] + torch.arange(h))[:, :, None]  # [B, H, 1]
    cols = (offset[1, :, None] + torch.arange(w))[:, None, :]  # [B, 1, W]
    return padded[torch.arange(b)[:, None, None], rows, cols].permute(0, 3, 1, 2).contiguous()


def build_optimizer(groups: list[list[nn.Parameter]], tc, states: dict | None = None) -> torch.optim.Optimizer:
    """The engine's optimizer (``training.optimizer``, lr, momentum, weight decay) over parameter
    groups (empty ones dropped), with optimizer ``states`` by parameter carried over."""
    groups = [{"params": g} for g in groups if g]
    if tc.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    elif tc.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    else:
        raise ValueError(f"training.optimizer: unknown optimizer {tc.optimizer!r}; allowed: ['sgd', 'adam']")
    for p, st in (states or {}).items():
        opt.state[p] = st
    return opt


def _weighted_mean(tensors: list[torch.Tensor], weights: np.ndarray) -> torch.Tensor:
    if not tensors[0].is_floating_point():
        return torch.stack(tensors).max(dim=0).values
    out = tensors[0] * float(weights[0])
    for t, w in zip(tensors[1:], weights[1:]):
        out.add_(t, alpha=float(w))
    return out


def _clone_state(state: dict) -> dict:
    return {k: (v.clone() if torch.is_tensor(v) else copy.deepcopy(v)) for k, v in state.items()}


def _mean_state(states: list[dict], weights: np.ndarray) -> dict:
    """Weighted mean of per-parameter optimizer states; scalars (Adam's step) take the maximum."""
    present = [(s, w) for s, w in zip(states, weights) if s]
    if not present:
        return {}
    w = np.array([p[1] for p in present], dtype=np.float64)
    w = w / w.sum()
    out = {}
    for key, first in present[0][0].items():
        values = [s.get(key) for s, _ in present]
        if not torch.is_tensor(first) or any(not torch.is_tensor(v) for v in values):
            out[key] = copy.deepcopy(first)
        elif first.dim() == 0 or not first.is_floating_point():
            out[key] = torch.stack(values).max(dim=0).values.clone()
        else:
            out[key] = _weighted_mean(values, w)
    return out


def _param_bits(modules) -> int:
    return int(sum(p.numel() * p.element_size() * 8 for m in modules for p in m.parameters()))


class ClientSampler:
    """Epoch-wise shuffled mini-batches of every client's partition, from one torch generator."""

    def __init__(self, parts: list[torch.Tensor], batch_size: int, seed: int) -> None:
        self.parts = parts
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perms: list[torch.Tensor] = [p[:0] for p in parts]
        self.cursors = [0] * len(parts)

    def draw(self) -> torch.Tensor:
        """Global sample indices [N*b], client 0's batch first."""
        out = []
        for i, part in enumerate(self.parts):
            need = self.batch_size
            while need:
                perm, cur = self.perms[i], self.cursors[i]
                if cur >= len(perm):
                    perm = self.perms[i] = part[torch.randperm(len(part), generator=self.generator)]
                    cur = 0
                take = min(need, len(perm) - cur)
                out.append(perm[cur:cur + take])
                self.cursors[i] = cur + take
                need -= take
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perms": [p.clone() for p in self.perms],
                "cursors": list(self.cursors)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.perms = [p.clone() for p in state["perms"]]
        self.cursors = [int(c) for c in state["cursors"]]


# -- the engine ---------------------------------------------------------------------------------

class SplitTrainingEngine:
    """Trains the scenario's model with the real split, one ``step(cut)`` per round.

    Args:
        scenario: a ``Scenario`` (or anything ``load_scenario`` accepts): ``model``, ``scheme``,
            ``phi``, ``batch_size``, ``num_clients``, ``seed``, ``sync_period`` and ``training``.
        initial_cut: the starting cut (int or [N]); default L // 2.
        data: an already loaded ``Dataset`` (default: ``load_dataset`` from ``scenario.training``).
        eval_model: what ``evaluate`` measures: ``"clients"``, the mean test accuracy of every
            client's own composed model (its blocks + the server's), or ``"averaged"``, one model
            whose every block is the data-weighted mean of the copies the clients use; default
            (None): the scenario's ``training.eval_model``.
        wire_cast: send activations and cut-layer gradients through the wire format of
            ``bits_per_element`` (``psl_env/training/wire.py``: float16 activations and bfloat16
            gradients at 16 bits, int8 with a per-tensor scale at 8), as the distributed engine does; default False: the tensors stay
            float32 and only their bits are counted at that width.

    Attributes:
        num_blocks: L.
        cut: [N] current cuts (a copy).
        round: rounds completed.
        data: the dataset; ``partitions``: each client's train indices; ``profile``: the scenario's
            ``ModelProfile`` if one is available (for cross-checks), else None.
        last_indices: [N*b] train indices of the last iteration's batches (client 0's first).
        aggregated_rows: m = round(phi b) for ``epsl`` (``scheme.aggregated_rows``), else 0.
        broadcast_downlink: whether the m rows' gradient is broadcast once (``downlink: broadcast``).
    """

    def __init__(self, scenario: Scenario | str | dict, initial_cut: int | np.ndarray | None = None,
                 data: Dataset | None = None, eval_model: str | None = None, wire_cast: bool = False) -> None:
        s = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        tc = s.training
        self.scenario = s
        eval_model = tc.eval_model if eval_model is None else eval_model
        if eval_model not in EVAL_MODELS:
            raise ValueError(f"eval_model: {eval_model!r} is not allowed; allowed: {list(EVAL_MODELS)}")
        self.eval_model = eval_model
        if torch.get_num_threads() != tc.torch_threads:
            torch.set_num_threads(tc.torch_threads)
        self.num_clients = n = s.num_clients
        self.batch_size = b = s.batch_size
        self.per_device_cuts = s.per_device_cuts
        self.aggregated_rows = m = aggregated_rows(s.phi, b) if s.scheme == "epsl" else 0
        # EPSL broadcasts the aggregated rows' gradient once to every client (the tables' rule too)
        self.broadcast_downlink = s.downlink == "broadcast" and m > 0
        self.sync_period = s.effective_sync_period
        self.bits_per_element = int(s.bits_per_element)
        self.wire_cast = bool(wire_cast)
        self._cast = None
        if wire_cast and self.bits_per_element != 32:
            self._cast = functools.partial(wire.roundtrip, bits=wire.check_bits(self.bits_per_element))
        self.last_broadcast: torch.Tensor | None = None
        self.augment_shift = int(tc.augment_shift)

        self.data = data if data is not None else load_dataset(tc.dataset, tc.data_dir, tc.test_fraction, s.seed)
        arch, size = resolve_model(s.model)
        shape = self.data.input_shape
        if size is not None and tuple(shape[1:]) != (size, size):
            raise ValueError(f"model: {s.model!r} expects {size}x{size} inputs but dataset "
                             f"{self.data.name!r} has {shape[1]}x{shape[2]}; pick a model profile "
                             f"matching the dataset")
        try:
            self.profile: ModelProfile | None = load_profile(s.model)
        except ValueError:
            self.profile = None

        seeds = [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(s.seed).spawn(4)]
        self.np_rng = np.random.default_rng(seeds[1])
        labels = self.data.y_train.numpy()
        self.partitions = make_partition(labels, n, tc.partition, tc.dirichlet_alpha, self.np_rng)
        self.client_sizes = np.array([len(p) for p in self.partitions], dtype=np.float64)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[0])
            self._proto = build_model(arch, shape, self.data.num_classes)
            self._torch_rng = torch.Generator().manual_seed(seeds[3]).get_state()
        self._proto.train()
        self.num_blocks = L = self._proto.num_blocks
        self.model_name = arch

        cut0 = self._check_cut(L // 2 if initial_cut is None else initial_cut)
        self._cuts = cut0
        self._client: list[dict[int, nn.Module]] = [
            {k: copy.deepcopy(self._proto.blocks[k]) for k in range(int(cut0[i]))} for i in range(n)]
        self._server: dict[int, nn.Module] = {
            k: copy.deepcopy(self._proto.blocks[k]) for k in range(int(cut0.min()), L)}
        self._sampler = ClientSampler([torch.from_numpy(p.astype(np.int64)) for p in self.partitions],
                                       b, seeds[2])
        self._x, self._y = self.data.x_train, self.data.y_train
        self._rows = torch.arange(n * b)
        self.round = 0
        self.last_indices: torch.Tensor | None = None
        self._identical = True  # all clients' composed models are equal (common cut, just synced)
        self._last_eval: EvalResult | None = None
        self._eval_fresh = False  # _last_eval describes the current weights
        self._opt = self._make_optimizer({})
        self._layout()

    # -- public API -----------------------------------------------------------------------------
    @property
    def cut(self) -> np.ndarray:
        return self._cuts.copy()

    def step(self, cut: int | np.ndarray | None = None) -> RoundResult:
        """One round at ``cut`` (moving blocks first if it changed; None keeps the current cut)."""
        t0 = time.perf_counter()
        tc = self.scenario.training
        migration = self.set_cut(cut) if cut is not None else np.zeros(self.num_clients)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._torch_rng)
            losses = [self._iteration() for _ in range(tc.local_iterations)]
            self._torch_rng = torch.get_rng_state()
        self.round += 1
        synced = self.sync_period > 0 and self.round % self.sync_period == 0
        n = self.num_clients
        sync_bits = np.zeros(n)
        if synced:
            self._fedavg()
            sync_bits = np.array([_param_bits(self._client[i].values()) for i in range(n)], dtype=np.float64)
        ev = self.evaluate() if self.round % tc.eval_every == 0 else None

        m = self.aggregated_rows
        width = float(self.bits_per_element)
        psi = self._act_elems * width
        chi = self._grad_elems * width
        fwd_rows, bwd_rows = self._fwd_rows.copy(), self._bwd_rows.copy()
        last = self._last_eval
        acc = last.accuracy if last is not None else math.nan
        return RoundResult(
            round=self.round, cut=self._cuts.copy(), loss=float(np.mean(losses)), accuracy=acc,
            test_loss=last.loss if last is not None else math.nan, evaluated=ev is not None,
            target_reached=bool(acc >= tc.target_accuracy), act_bits_per_sample=psi,
            grad_bits_per_sample=chi, uplink_bits=self._up_elems * width,
            downlink_unicast_bits=self._unicast_elems * width,
            downlink_broadcast_bits=float(self._broadcast_elems * width), aggregated_rows=m,
            server_forward_rows=int(fwd_rows.sum()), server_backward_rows=int(bwd_rows.sum()),
            server_forward_rows_by_cut=fwd_rows, server_backward_rows_by_cut=bwd_rows, synced=synced,
            sync_bits=sync_bits, migration_bits=migration, wall_time_s=time.perf_counter() - t0, eval=ev)

    def set_phi(self, phi: float) -> int:
        """EPSL's aggregation ratio for the next rounds (``scheme: epsl`` only): m = round(phi b) rows per
        client (``scheme.aggregated_rows``). Nothing else changes, so rounds at a phi set here train
        exactly as an engine built with that phi. Returns m."""
        if self.scenario.scheme != "epsl":
            raise ValueError(f"phi: the aggregation ratio is EPSL's; scheme is {self.scenario.scheme!r}, "
                             "allowed: scheme 'epsl'")
        if isinstance(phi, bool) or not isinstance(phi, (int, float, np.floating)) or not 0.0 <= phi <= 1.0:
            raise ValueError(f"phi: {phi!r} is not allowed; allowed: a number in [0, 1]")
        self.aggregated_rows = m = aggregated_rows(float(phi), self.batch_size)
        self.broadcast_downlink = self.scenario.downlink == "broadcast" and m > 0
        return m

    def set_cut(self, cut: int | np.ndarray) -> np.ndarray:
        """Move blocks to reach ``cut`` (see the module docstring); returns [N] migrated parameter bits."""
        new = self._check_cut(cut)
        old = self._cuts
        n, L = self.num_clients, self.num_blocks
        moved = np.zeros(n)
        if np.array_equal(new, old):
            return moved
        old_state = self._opt.state
        states: dict[nn.Parameter, dict] = {}
        w = self.client_sizes

        server: dict[int, nn.Module] = {}
        for k in range(int(new.min()), L):
            incoming = [i for i in range(n) if old[i] > k >= new[i]]
            if not incoming:
                server[k] = self._server[k]
                continue
            sources, weights = [], []
            if k in self._server:
                sources.append(self._server[k])
                weights.append(w[old <= k].sum())
            for i in incoming:
                sources.append(self._client[i][k])
                weights.append(w[i])
            server[k] = self._average(sources, np.array(weights), old_state, states)

        clients = []
        for i in range(n):
            blocks = {}
            for k in range(int(new[i])):
                if k < old[i]:
                    blocks[k] = self._client[i][k]
                else:
                    blocks[k] = copy.deepcopy(self._server[k])
                    for p_new, p_old in zip(blocks[k].parameters(), self._server[k].parameters()):
                        if old_state.get(p_old):
                            states[p_new] = _clone_state(old_state[p_old])
            lo, hi = sorted((int(old[i]), int(new[i])))
            moved[i] = _param_bits(self._proto.blocks[k] for k in range(lo, hi))
            clients.append(blocks)

        self._client, self._server, self._cuts = clients, server, new
        for module in self._all_modules():
            for p in module.parameters():
                if p not in states and old_state.get(p):
                    states[p] = old_state[p]
        self._opt = self._make_optimizer(states)
        self._identical = self._identical and not self.per_device_cuts
        self._eval_fresh = False
        self._layout()
        return moved

    @torch.no_grad()
    def evaluate(self) -> EvalResult:
        """Held-out accuracy and loss now (cached until the next training step)."""
        if self._eval_fresh and self._last_eval is not None:
            return self._last_eval
        mode = self.eval_model
        for module in self._all_modules():
            module.train(False)
        try:
            if mode == "averaged":
                models = [self._averaged_blocks()]
            elif self._identical:
                models = [self._composed_blocks(0)]
            else:
                models = [self._composed_blocks(i) for i in range(self.num_clients)]
            accs, losses = [], []
            x, y = self.data.x_test, self.data.y_test
            for blocks in models:
                correct, total_loss = 0, 0.0
                for start in range(0, len(y), EVAL_CHUNK):
                    h = x[start:start + EVAL_CHUNK]
                    for blk in blocks:
                        h = blk(h)
                    yy = y[start:start + EVAL_CHUNK]
                    total_loss += float(F.cross_entropy(h, yy, reduction="sum"))
                    correct += int((h.argmax(1) == yy).sum())
                accs.append(correct / len(y))
                losses.append(total_loss / len(y))
        finally:
            for module in self._all_modules():
                module.train(True)
        client_acc = np.array(accs if len(accs) == self.num_clients else accs * self.num_clients)
        self._last_eval = EvalResult(self.round, float(np.mean(accs)), float(np.mean(losses)), client_acc)
        self._eval_fresh = True
        return self._last_eval

    def composed_model(self, client: int = 0) -> nn.Sequential:
        """Client ``client``'s full model (its blocks, then the server's), sharing parameters."""
        return nn.Sequential(*self._composed_blocks(client))

    def client_blocks(self, client: int) -> list[nn.Module]:
        return [self._client[client][k] for k in sorted(self._client[client])]

    def server_blocks(self) -> dict[int, nn.Module]:
        """The server's blocks by 0-based block index."""
        return dict(self._server)

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs; only tensors, dicts, lists and scalars (``weights_only`` loads)."""
        ev = self._last_eval
        state = {
            "version": STATE_VERSION,
            "model": self.model_name,
            "num_clients": self.num_clients,
            "num_blocks": self.num_blocks,
            "round": self.round,
            "cut": [int(c) for c in self._cuts],
            "clients": [{k: m.state_dict() for k, m in sorted(c.items())} for c in self._client],
            "server": {k: m.state_dict() for k, m in sorted(self._server.items())},
            "optimizer": self._opt.state_dict(),
            "sampler": self._sampler.state_dict(),
            "torch_rng": self._torch_rng.clone(),
            "np_rng": json.dumps(self.np_rng.bit_generator.state),
            "identical": self._identical,
            "eval_fresh": self._eval_fresh,
            "last_eval": None if ev is None else {"round": ev.round, "accuracy": ev.accuracy, "loss": ev.loss,
                                                   "client_accuracy": torch.from_numpy(ev.client_accuracy.copy())},
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` taken from an engine built from the same scenario."""
        for key in ("model", "num_clients", "num_blocks"):
            mine = getattr(self, "model_name" if key == "model" else key)
            if state.get(key) != mine:
                raise ValueError(f"state_dict: {key} is {state.get(key)!r}, this engine has {mine!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state_dict: version {state.get('version')!r}; allowed: {STATE_VERSION}")
        cuts = np.array(state["cut"], dtype=np.int64)
        self._cuts = self._check_cut(cuts)
        self._client = []
        for i in range(self.num_clients):
            blocks = {}
            for k, sd in state["clients"][i].items():
                blocks[int(k)] = copy.deepcopy(self._proto.blocks[int(k)])
                blocks[int(k)].load_state_dict(sd)
            self._client.append(blocks)
        self._server = {}
        for k, sd in state["server"].items():
            self._server[int(k)] = copy.deepcopy(self._proto.blocks[int(k)])
            self._server[int(k)].load_state_dict(sd)
        self._opt = self._make_optimizer({})
        self._opt.load_state_dict(state["optimizer"])
        self._sampler.load_state_dict(state["sampler"])
        self._torch_rng = state["torch_rng"].clone()
        self.np_rng.bit_generator.state = json.loads(state["np_rng"])
        self.round = int(state["round"])
        self._identical = bool(state["identical"])
        self._eval_fresh = bool(state["eval_fresh"])
        ev = state["last_eval"]
        self._last_eval = None if ev is None else EvalResult(
            int(ev["round"]), float(ev["accuracy"]), float(ev["loss"]), ev["client_accuracy"].numpy().copy())
        self._layout()

    # -- internals ------------------------------------------------------------------------------
    def _check_cut(self, cut: int | np.ndarray) -> np.ndarray:
        n, L = self.num_clients, self.num_blocks
        arr = np.asarray(cut)
        if arr.ndim == 0:
            arr = np.full(n, int(arr))
        arr = arr.astype(np.int64)
        if arr.shape != (n,):
            raise ValueError(f"cut: expected an int or {n} cuts, got shape {arr.shape}")
        if np.any(arr < 1) or np.any(arr > L - 1):
            raise ValueError(f"cut: {arr.tolist()} outside 1..{L - 1}")
        if not self.per_device_cuts and np.any(arr != arr[0]):
            raise ValueError(f"cut: {arr.tolist()} differ but scheme {self.scenario.scheme!r} uses one common "
                             "cut; per-device cuts need scheme 'edgesplit'")
        return arr

    def _all_modules(self) -> list[nn.Module]:
        mods = [m for c in self._client for m in c.values()]
        return mods + list(self._server.values())

    def _make_optimizer(self, states: dict) -> torch.optim.Optimizer:
        groups = [[p for k in sorted(c) for p in c[k].parameters()] for c in self._client]
        groups.append([p for k in sorted(self._server) for p in self._server[k].parameters()])
        return build_optimizer(groups, self.scenario.training, states)

    def _average(self, sources: list[nn.Module], weights: np.ndarray, old_state: dict,
                 states_out: dict) -> nn.Module:
        """A new module holding the weighted mean of ``sources`` (parameters, buffers, optimizer state)."""
        weights = np.asarray(weights, dtype=np.float64)
        weights = weights / weights.sum()
        new = copy.deepcopy(sources[0])
        src_params = [list(m.parameters()) for m in sources]
        src_buffers = [list(m.buffers()) for m in sources]
        with torch.no_grad():
            for j, p in enumerate(new.parameters()):
                p.copy_(_weighted_mean([ps[j] for ps in src_params], weights))
                st = _mean_state([old_state.get(ps[j], {}) for ps in src_params], weights)
                if st:
                    states_out[p] = st
            for j, buf in enumerate(new.buffers()):
                buf.copy_(_weighted_mean([bs[j] for bs in src_buffers], weights))
        return new

    def _fedavg(self) -> None:
        """Data-size weighted FedAvg of every client-side block over the clients holding it."""
        state = self._opt.state
        with torch.no_grad():
            for k in range(int(self._cuts.max())):
                holders = [i for i in range(self.num_clients) if self._cuts[i] > k]
                if len(holders) < 2:
                    continue
                w = self.client_sizes[holders] / self.client_sizes[holders].sum()
                mods = [self._client[i][k] for i in holders]
                params = [list(m.parameters()) for m in mods]
                for j in range(len(params[0])):
                    column = [ps[j] for ps in params]
                    mean = _weighted_mean([p.detach() for p in column], w)
                    st = _mean_state([state.get(p, {}) for p in column], w)
                    for p in column:
                        p.copy_(mean)
                        if st:
                            state[p] = _clone_state(st)
                buffers = [list(m.buffers()) for m in mods]
                for j in range(len(buffers[0])):
                    mean = _weighted_mean([bs[j] for bs in buffers], w)
                    for bs in buffers:
                        bs[j].copy_(mean)
        self._identical = not self.per_device_cuts or bool(np.all(self._cuts == self._cuts[0]))
        self._eval_fresh = False

    def _composed_blocks(self, i: int) -> list[nn.Module]:
        c = int(self._cuts[i])
        return [self._client[i][k] for k in range(c)] + [self._server[k] for k in range(c, self.num_blocks)]

    def _averaged_blocks(self) -> list[nn.Module]:
        """Per block, the data-weighted mean of the copies the clients use (own or the server's)."""
        blocks = []
        for k in range(self.num_blocks):
            users = [i for i in range(self.num_clients) if self._cuts[i] <= k]
            holders = [i for i in range(self.num_clients) if self._cuts[i] > k]
            if not holders:
                blocks.append(self._server[k])
                continue
            sources = [self._client[i][k] for i in holders]
            weights = list(self.client_sizes[holders])
            if users:
                sources.append(self._server[k])
                weights.append(self.client_sizes[users].sum())
            blocks.append(self._average(sources, np.array(weights), {}, {}))
        for blk in blocks:
            blk.train(False)
        return blocks

    def _layout(self) -> None:
        """Cache the per-cut structure the hot path uses (client block lists, server groups)."""
        n, L = self.num_clients, self.num_blocks
        self._client_seq = [[c[k] for k in range(len(c))] for c in self._client]
        cuts = sorted({int(c) for c in self._cuts})
        self._groups = [[i for i in range(n) if self._cuts[i] == c] for c in cuts]
        self._group_cuts = cuts
        bounds = cuts[1:] + [L]
        self._server_seq = [[self._server[k] for k in range(c, e)] for c, e in zip(cuts, bounds)]
        order = [i for g in self._groups for i in g]
        self._order = None if order == list(range(n)) else torch.tensor(order)
        # what an iteration sends and computes, measured on the real tensors every iteration
        self._act_elems = np.zeros(n)  # per sample at each client's cut
        self._grad_elems = np.zeros(n)
        self._up_elems = np.zeros(n)  # per client and iteration
        self._unicast_elems = np.zeros(n)
        self._broadcast_elems = 0
        self._fwd_rows = np.zeros(L + 1, dtype=np.int64)  # by the cut where rows enter the server
        self._bwd_rows = np.zeros(L + 1, dtype=np.int64)

    def _iteration(self) -> float:
        """One PSL iteration (forward, EPSL aggregation, backward, optimizer step); returns the loss."""
        x, y = self._draw_batch()
        acts = [self._client_forward(i, xi) for i, xi in enumerate(x.split(self.batch_size))]
        cast = self._cast
        # with wire_cast the server sees what a transfer at bits_per_element delivers
        sent = acts if cast is None else [cast(a.detach()) for a in acts]
        loss, grads = self._server_pass(sent, y)
        if cast is not None:
            grads = self._cast_downlink(grads)
        pairs = [(a, g) for a, g in zip(acts, grads) if a.requires_grad]
        if pairs:
            torch.autograd.backward([a for a, _ in pairs], [g for _, g in pairs])
        self._opt.step()
        self._opt.zero_grad(set_to_none=True)
        self._identical = self._identical and self.num_clients == 1
        self._eval_fresh = False
        return float(loss)

    def _draw_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The iteration's N*b inputs (augmented) and labels, client 0's rows first."""
        idx = self._sampler.draw()
        self.last_indices = idx
        x = self._x.index_select(0, idx)
        if self.augment_shift:
            x = random_shift(x, self.augment_shift)
        return x, self._y.index_select(0, idx)

    def _client_forward(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Client ``i``'s blocks on its b inputs: the activation it uploads."""
        h = x
        for blk in self._client_seq[i]:
            h = blk(h)
        return h

    def _cast_downlink(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The cut-layer gradients as the clients receive them at ``bits_per_element``: the broadcast
        rows and each client's own rows are separate transfers (each int8 transfer has its own scale)."""
        cast, m = functools.partial(self._cast, gradient=True), self.aggregated_rows
        if not self.broadcast_downlink:
            return [cast(g) for g in grads]
        shared = cast(self.last_broadcast)
        return [torch.cat([shared, cast(g[m:])]) for g in grads]

    def _server_pass(self, acts: list[torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The server's part of an iteration on the uploaded activations ``acts`` (one per client,
        b rows each) and the labels ``y`` (client 0's first): forward, loss, EPSL aggregation,
        backward. Returns the loss (union mean, before the update) and every client's cut-layer
        gradient [b, ...] (its first m rows: the broadcast ``last_broadcast``, EPSL). Counts what
        the iteration moves. The server's parameters hold their gradients; nothing steps."""
        n, b, m = self.num_clients, self.batch_size, self.aggregated_rows
        z, leaves, abar = self._server_forward(acts)
        if self._order is not None:
            y = y.view(n, b).index_select(0, self._order).reshape(-1)

        with torch.no_grad():
            logits = z[: n * b] if m else z
            d = F.log_softmax(logits, dim=1)
            loss = -d.gather(1, y[:, None]).mean()
            d.exp_()
            d[self._rows, y] -= 1.0  # softmax - onehot: the last-layer gradient of each row's CE
            if m:
                dv = d.view(n, b, -1)
                gbar = dv[:, :m].mean(0)
                dv[:, :m] = 0.0
                grad_z = torch.cat([d.mul_(1.0 / (n * b)), gbar.mul_(n / (n * b))])
                # the zeroed rows need no backward; the averaged ones (counted forward) do
                self._bwd_rows[self._group_cuts[0]] -= math.prod(dv[:, :m].shape[:2])
            else:
                grad_z = d.mul_(1.0 / (n * b))
        self._server_backward(z, grad_z)

        grads: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        self.last_broadcast = abar.grad if m else None
        with torch.no_grad():
            for g, members in enumerate(self._groups):
                gl = leaves[g].grad.mul_(n)  # union-mean gradient -> each client's own mean loss
                if m and g == 0:
                    gl.view(n, b, *gl.shape[1:])[:, :m] = abar.grad
                    if self.broadcast_downlink:
                        self._broadcast_elems = abar.grad.numel()  # sent once to every client
                for r, i in enumerate(members):
                    grad_i = gl[r * b:(r + 1) * b]
                    self._act_elems[i] = acts[i].numel() // b  # measured on the uploaded tensor
                    self._grad_elems[i] = grad_i.numel() // b  # and on the cut gradient sent back
                    self._up_elems[i] = acts[i].numel()
                    own = grad_i[m:] if self.broadcast_downlink and g == 0 else grad_i
                    self._unicast_elems[i] = own.numel()
                    grads[i] = grad_i
        return loss, grads

    def _server_forward(self, acts: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor],
                                                                  torch.Tensor | None]:
        """The server's forward pass of one iteration on the clients' activations ``acts``.

        Returns the logits (N*b rows, then EPSL's m averaged rows), the per-group leaves that
        collect the cut-layer gradients, and the averaged activations a_bar (None without EPSL).
        Counts the rows entering at each cut (forward and, until the loss zeroes some, backward).
        """
        n, b, m = self.num_clients, self.batch_size, self.aggregated_rows
        self._fwd_rows[:] = 0
        self._broadcast_elems = 0
        leaves = []
        z = None
        abar = None
        for g, members in enumerate(self._groups):
            with torch.no_grad():
                leaf = torch.cat([acts[i] for i in members]) if len(members) > 1 else acts[members[0]].detach()
            leaf.requires_grad_(True)
            leaves.append(leaf)
            h = leaf if z is None else torch.cat([z, leaf])
            self._fwd_rows[self._group_cuts[g]] += leaf.shape[0]
            if m and g == 0:  # EPSL rows (common cut only: per-device cuts have phi = 0)
                abar = leaf.detach().view(n, b, *leaf.shape[1:])[:, :m].mean(0).requires_grad_(True)
                h = torch.cat([h, abar])
                self._fwd_rows[self._group_cuts[g]] += abar.shape[0]
            for blk in self._server_seq[g]:
                h = blk(h)
            z = h
        self._bwd_rows[:] = self._fwd_rows
        return z, leaves, abar

    def _server_backward(self, z: torch.Tensor, grad_z: torch.Tensor) -> None:
        """The server's backward pass from the logits' gradient ``grad_z`` to the parameters and leaves."""
        z.backward(grad_z)
