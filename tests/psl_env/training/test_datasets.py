"""Dataset loading: the offline digits split, and the IDX / CIFAR readers on tiny files written here."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from psl_env.training.datasets import load_dataset, read_cifar_batch, read_idx


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(raw)


def write_mnist(folder, n_train=6, n_test=3, side=4, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), arr, compress)
    return arrays


def test_digits_is_offline_scaled_and_stratified():
    data = load_dataset("digits", test_fraction=0.2, seed=3)
    xtr, ytr, xte, yte = data
    assert xtr.shape[1:] == (1, 8, 8) and xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert len(xtr) + len(xte) == 1797
    assert abs(len(xte) / 1797 - 0.2) < 0.01
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) == 1.0
    # every class keeps its share in the test split
    frac = np.bincount(yte.numpy(), minlength=10) / np.bincount(np.concatenate([ytr, yte]), minlength=10)
    assert np.all(np.abs(frac - 0.2) < 0.02)
    again = load_dataset("digits", test_fraction=0.2, seed=3)
    assert torch.equal(again.x_test, xte) and torch.equal(again.y_train, ytr)
    other = load_dataset("digits", test_fraction=0.2, seed=4)
    assert not torch.equal(other.y_test, yte)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10


def test_read_idx_plain_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", arr)
    write_idx(tmp_path / "a.gz", arr, compress=True)
    assert np.array_equal(read_idx(tmp_path / "a"), arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("layout,compress", [("", False), ("MNIST/raw", True)])
def test_mnist_from_idx_files(tmp_path, layout, compress):
    arrays = write_mnist(tmp_path / layout if layout else tmp_path, compress=compress)
    data = load_dataset("mnist", tmp_path)
    assert data.x_train.shape == (6, 1, 4, 4) and data.x_test.shape == (3, 1, 4, 4)
    assert torch.allclose(data.x_train[:, 0] * 255.0,
                          torch.tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32))
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw", seed=1)
    assert load_dataset("fashion-mnist", tmp_path).x_train.shape == (6, 1, 4, 4)


def test_cifar10_from_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        expected.append((data, labels))
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh)
    x, y = read_cifar_batch(folder / "test_batch")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == expected[-1][1]
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (10, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    assert d.y_train.tolist() == sum((lab for _, lab in expected[:5]), [])
    assert torch.allclose(d.x_train[0].flatten() * 255.0, torch.tensor(expected[0][0][0], dtype=torch.float32))
    assert float(d.x_train.max()) <= 1.0


@pytest.mark.parametrize("name,file", [("mnist", "train-images-idx3-ubyte"), ("cifar10", "data_batch_1")])
def test_missing_files_name_the_files_and_folder(tmp_path, name, file):
    with pytest.raises(ValueError) as err:
        load_dataset(name, tmp_path)
    assert file in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset(name, None)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="allowed"):
        load_dataset("imagenet")
