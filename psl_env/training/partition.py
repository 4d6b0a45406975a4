"""Client data partitions: IID and Dirichlet label skew, deterministic under a seed.

The Dirichlet partition follows the common federated-learning recipe (Hsu, Qi and Brown, 2019):
for every class c, a share vector q_c ~ Dir(alpha * 1_N) over the N clients, and the class's samples
are dealt out in those proportions. Smaller alpha gives more skew (alpha -> 0: every class on one
client; alpha -> inf: IID). Client sizes are not balanced, unlike some variants; a draw that leaves a
client with fewer than ``min_size`` samples is redrawn, and after ``max_tries`` failed draws the
smallest clients are topped up with random samples of the largest ones.
"""

from __future__ import annotations

import numpy as np

PARTITIONS = ("iid", "dirichlet")


def iid_partition(num_samples: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random split of ``range(num_samples)`` into ``num_clients`` near-equal parts (sorted)."""
    if num_samples < num_clients:
        raise ValueError(f"partition: {num_samples} samples cannot be split over {num_clients} clients")
    perm = rng.permutation(num_samples)
    return [np.sort(p) for p in np.array_split(perm, num_clients)]


def dirichlet_partition(labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator,
                        min_size: int = 1, max_tries: int = 100) -> list[np.ndarray]:
    """Label-skewed parts: class c's samples dealt out by shares ~ Dir(alpha) (see the module docstring)."""
    labels = np.asarray(labels)
    if alpha <= 0:
        raise ValueError(f"training.dirichlet_alpha: {alpha!r} is out of range; allowed > 0")
    if min_size * num_clients > len(labels):
        raise ValueError(f"partition: {len(labels)} samples cannot give {num_clients} clients {min_size} each")
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: list[np.ndarray] = []
    for _ in range(max_tries):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx in by_class:
            idx = rng.permutation(idx)
            shares = rng.dirichlet(np.full(num_clients, float(alpha)))
            bounds = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
            for i, chunk in enumerate(np.split(idx, bounds)):
                buckets[i].append(chunk)
        parts = [np.concatenate(b) for b in buckets]
        if min(len(p) for p in parts) >= min_size:
            break
    else:
        parts = _top_up(parts, min_size, rng)
    return [np.sort(p) for p in parts]


def _top_up(parts: list[np.ndarray], min_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    parts = [p.copy() for p in parts]
    for i in range(len(parts)):
        while len(parts[i]) < min_size:
            donor = int(np.argmax([len(p) for p in parts]))
            take = min(min_size - len(parts[i]), len(parts[donor]) - min_size)
            pick = rng.choice(len(parts[donor]), size=take, replace=False)
            parts[i] = np.concatenate([parts[i], parts[donor][pick]])
            parts[donor] = np.delete(parts[donor], pick)
    return parts


def make_partition(labels: np.ndarray, num_clients: int, kind: str = "iid", alpha: float = 0.5,
                   seed: int | np.random.Generator = 0, min_size: int = 1) -> list[np.ndarray]:
    """Sample indices of each client: ``kind`` is ``iid`` or ``dirichlet`` (concentration ``alpha``)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if kind == "iid":
        return iid_partition(len(labels), num_clients, rng)
    if kind == "dirichlet":
        return dirichlet_partition(labels, num_clients, alpha, rng, min_size=min_size)
    raise ValueError(f"training.partition: unknown partition {kind!r}; allowed: {list(PARTITIONS)}")


def label_distribution(labels: np.ndarray, parts: list[np.ndarray], num_classes: int | None = None) -> np.ndarray:
    """[N, C] label proportions of each client (rows of empty clients are zero)."""
    labels = np.asarray(labels)
    c = int(num_classes or labels.max() + 1)
    counts = np.stack([np.bincount(labels[p], minlength=c) for p in parts]).astype(np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def label_skew(labels: np.ndarray, parts: list[np.ndarray], num_classes: int | None = None) -> float:
    """Mean total-variation distance between each client's label mix and the global one, in [0, 1).

    0 for perfectly stratified parts; close to 1 - 1/C when every client holds a single class.
    """
    labels = np.asarray(labels)
    c = int(num_classes or labels.max() + 1)
    dist = label_distribution(labels, parts, c)
    glob = np.bincount(labels, minlength=c) / len(labels)
    return float(0.5 * np.abs(dist - glob).sum(axis=1).mean())


def client_share_variance(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Variance over classes and clients of a client's share of a class's samples.

    Under the Dirichlet recipe the share of one class held by one client is Beta distributed with
    variance (1/N)(1 - 1/N) / (N alpha + 1); ``dirichlet_share_variance`` gives that target.
    """
    labels = np.asarray(labels)
    c = int(labels.max() + 1)
    counts = np.stack([np.bincount(labels[p], minlength=c) for p in parts]).astype(np.float64)
    shares = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1.0)
    return float(((shares - 1.0 / len(parts)) ** 2).mean())


def dirichlet_share_variance(num_clients: int, alpha: float) -> float:
    """Var of one client's share of a class under Dir(alpha * 1_N): (1/N)(1 - 1/N) / (N alpha + 1)."""
    n = float(num_clients)
    return (1.0 / n) * (1.0 - 1.0 / n) / (n * alpha + 1.0)
