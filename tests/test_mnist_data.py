"""MNIST data: the offline 5k subset, the IDX parser, and errors that name the path."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.mnist.data import (
    IDX_FILES,
    load_mnist,
    load_mnist_5k,
    load_mnist_idx,
    read_idx,
)


@pytest.fixture(scope="module")
def five_k():
    return load_mnist_5k()


def test_5k_split_shapes_balance_and_range(five_k) -> None:
    assert five_k.x_train.shape == (4000, 784) and five_k.x_test.shape == (1000, 784)
    assert five_k.x_train.dtype == np.float32 and five_k.y_train.dtype == np.int64
    assert np.bincount(five_k.y_train).tolist() == [400] * 10
    assert np.bincount(five_k.y_test).tolist() == [100] * 10
    assert 0.0 <= five_k.x_train.min() and five_k.x_train.max() <= 1.0
    # shuffled within splits: the file is sorted by label, the split must not be
    assert len(set(five_k.y_test[:50].tolist())) > 5


def test_5k_split_is_disjoint_and_deterministic(five_k) -> None:
    again = load_mnist_5k(split_seed=0)
    np.testing.assert_array_equal(again.x_test, five_k.x_test)
    train_rows = {row.tobytes() for row in five_k.x_train}
    overlap = sum(row.tobytes() in train_rows for row in five_k.x_test)
    assert overlap <= 2  # MNIST holds a handful of exact duplicates at most
    other = load_mnist_5k(split_seed=1)
    assert not np.array_equal(other.y_test, five_k.y_test)
    assert load_mnist().n_test == 1000


def test_head_keeps_prefix(five_k) -> None:
    small = five_k.head(100, 50)
    assert small.n_train == 100 and small.n_test == 50
    np.testing.assert_array_equal(small.x_test, five_k.x_test[:50])
    with pytest.raises(InputError, match="n_test"):
        five_k.head(10, 5000)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _fake_mnist(root: Path, compress: bool, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    root.mkdir(parents=True, exist_ok=True)
    for role, base in IDX_FILES.items():
        _write_idx(root / (base + (".gz" if compress else "")), arrays[role], compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    arrays = _fake_mnist(tmp_path, compress)
    split = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(split.y_train, arrays["train_labels"])
    np.testing.assert_allclose(split.x_test, arrays["test_images"].reshape(6, 784) / 255.0, rtol=0, atol=1e-7)
    assert read_idx(tmp_path / (IDX_FILES["train_images"] + (".gz" if compress else ""))).shape == (12, 28, 28)


def test_idx_torchvision_layout(tmp_path: Path) -> None:
    arrays = _fake_mnist(tmp_path / "MNIST" / "raw", compress=False)
    split = load_mnist(tmp_path)
    np.testing.assert_array_equal(split.y_test, arrays["test_labels"])


def test_idx_errors_name_the_path(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, compress=False)
    target = tmp_path / IDX_FILES["test_images"]
    target.write_bytes(target.read_bytes()[:-5])  # truncated
    with pytest.raises(ArtifactError, match="t10k-images-idx3-ubyte"):
        load_mnist_idx(tmp_path)
    target.write_bytes(b"\x01\x02\x03\x04junk")
    with pytest.raises(ArtifactError, match="magic"):
        read_idx(target)
    target.unlink()
    with pytest.raises(ArtifactError, match="t10k-images-idx3-ubyte"):
        load_mnist_idx(tmp_path)
    with pytest.raises(ArtifactError, match="not a directory"):
        load_mnist_idx(tmp_path / "nope")


def test_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"missing\.csv"):
        load_mnist_5k(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ArtifactError, match="785 columns"):
        load_mnist_5k(bad)
