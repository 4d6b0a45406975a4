"""Datasets for real split training, loaded once into memory as float tensors.

``digits`` (scikit-learn's bundled 8x8 digits) needs no download and is the default. MNIST,
Fashion-MNIST and CIFAR-10 are read from their standard files in ``data_dir`` (nothing is
downloaded):

- ``mnist`` / ``fashion-mnist``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``), directly in
  ``data_dir`` or in torchvision's layout ``data_dir/MNIST/raw`` / ``data_dir/FashionMNIST/raw``;
- ``cifar10``: the python pickle batches ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
  in ``data_dir/cifar-10-batches-py`` (torchvision's layout) or directly in ``data_dir``.

Pixels are scaled to [0, 1]; images have shape (C, H, W); labels are int64. ``digits`` is split into
train and test by a stratified, seeded draw of ``test_fraction``; the other datasets keep their
official test split (``test_fraction`` does not apply to them).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_SUBDIRS = {"mnist": ("", "MNIST/raw", "mnist", "MNIST"),
                "fashion-mnist": ("", "FashionMNIST/raw", "fashion-mnist", "FashionMNIST")}
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CIFAR_SUBDIRS = ("cifar-10-batches-py", "")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split held as tensors; unpacks as ``x_train, y_train, x_test, y_test``.

    Attributes:
        name: dataset name.
        x_train, x_test: float32 [n, C, H, W] in [0, 1].
        y_train, y_test: int64 [n] class labels.
        num_classes: number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    def __iter__(self):
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_dataset(name: str = "digits", data_dir: str | Path | None = None, test_fraction: float = 0.2,
                 seed: int = 0) -> Dataset:
    """Load ``name`` (one of ``DATASETS``) as tensors; see the module docstring for the files read.

    Raises:
        ValueError: unknown name, or the dataset files are not in ``data_dir`` (the message names the
            files and the folders searched).
    """
    if name not in DATASETS:
        raise ValueError(f"training.dataset: unknown dataset {name!r}; allowed: {list(DATASETS)}")
    if name == "digits":
        x, y = _digits_arrays()
        tr, te = stratified_split(y, test_fraction, seed)
        return _make(name, x[tr], y[tr], x[te], y[te])
    if data_dir is None:
        expected = _IDX_FILES if name != "cifar10" else _CIFAR_FILES
        raise ValueError(f"training.data_dir: {name} needs its standard files {list(expected)} in a folder, "
                         "but training.data_dir is not set (use dataset 'digits' for an offline run)")
    if name == "cifar10":
        xtr, ytr, xte, yte = _cifar_arrays(str(Path(data_dir).expanduser()))
    else:
        xtr, ytr, xte, yte = _idx_arrays(name, str(Path(data_dir).expanduser()))
    return _make(name, xtr, ytr, xte, yte)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices holding ``test_fraction`` of every class (rounded) out, seeded."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"training.test_fraction: {test_fraction!r} is out of range; allowed (0, 1)")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E57]))
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _make(name: str, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> Dataset:
    # Copies: the cached arrays stay untouched whatever callers do with the tensors.
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.int64, order="C", copy=True))

    return Dataset(name, images(xtr), labels(ytr), images(xte), labels(yte), num_classes=10)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x.setflags(write=False)
    y = d.target.astype(np.int64)
    y.setflags(write=False)
    return x, y


# -- IDX (MNIST, Fashion-MNIST) -----------------------------------------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """An array from an IDX file (the MNIST format), gzip-compressed or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = int(np.prod(shape)) if ndim else 1
    start = 4 + 4 * ndim
    if len(raw) - start < count * dtype.itemsize:
        raise ValueError(f"{path}: truncated IDX file (expected {count} elements of shape {shape})")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(shape)


def _find_files(root: Path, subdirs: tuple[str, ...], names: tuple[str, ...],
                gz: bool) -> list[Path] | None:
    for sub in subdirs:
        folder = root / sub if sub else root
        found = []
        for n in names:
            options = [folder / n] + ([folder / f"{n}.gz"] if gz else [])
            hit = next((p for p in options if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _missing(name: str, root: Path, subdirs: tuple[str, ...], names: tuple[str, ...]) -> ValueError:
    folders = [str(root / s) if s else str(root) for s in subdirs]
    return ValueError(f"training.data_dir: {name} files {list(names)} not found in any of {folders}; "
                      "place the standard files there (nothing is downloaded), or use dataset 'digits'")


@lru_cache(maxsize=2)
def _idx_arrays(name: str, data_dir: str) -> tuple[np.ndarray, ...]:
    root = Path(data_dir)
    files = _find_files(root, _IDX_SUBDIRS[name], _IDX_FILES, gz=True)
    if files is None:
        raise _missing(name, root, _IDX_SUBDIRS[name], _IDX_FILES)
    xtr, ytr, xte, yte = (read_idx(p) for p in files)
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match")
    scale = np.float32(1.0 / 255.0)
    return (xtr[:, None].astype(np.float32) * scale, ytr.astype(np.int64),
            xte[:, None].astype(np.float32) * scale, yte.astype(np.int64))


# -- CIFAR-10 python batches --------------------------------------------------------------------

def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3, 32, 32], labels int64 [n]) from one CIFAR-10 python pickle batch."""
    with open(path, "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 batch (no 'data'/'labels')")
    data = np.asarray(data, dtype=np.uint8)
    return data.reshape(len(data), 3, 32, 32), np.asarray(labels, dtype=np.int64)


@lru_cache(maxsize=1)
def _cifar_arrays(data_dir: str) -> tuple[np.ndarray, ...]:
    root = Path(data_dir)
    files = _find_files(root, _CIFAR_SUBDIRS, _CIFAR_FILES, gz=False)
    if files is None:
        raise _missing("cifar10", root, _CIFAR_SUBDIRS, _CIFAR_FILES)
    batches = [read_cifar_batch(p) for p in files]
    xtr = np.concatenate([b[0] for b in batches[:5]])
    ytr = np.concatenate([b[1] for b in batches[:5]])
    scale = np.float32(1.0 / 255.0)
    return xtr.astype(np.float32) * scale, ytr, batches[5][0].astype(np.float32) * scale, batches[5][1]
