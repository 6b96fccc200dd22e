"""Argument checks shared by the public entry points.

Each check raises :class:`~hedonic_neurons.errors.InputError` with a message that names
the argument, repeats what was received, and says what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "check_labels",
    "check_phi",
    "check_positive_int",
    "check_probability",
    "check_size_range",
    "as_generator",
]


def check_phi(phi: Any, name: str = "phi", *, dtype: type = np.float64) -> np.ndarray:
    """Validate a pairwise valuation matrix and return it as a C-contiguous array.

    Parameters
    ----------
    phi : array_like, shape (n, n)
        Pairwise valuations. Asymmetric matrices are allowed (preferences are directed:
        ``phi[i, j]`` is how much player ``i`` values ``j``). The diagonal is ignored.
    name : str
        Argument name used in error messages.
    dtype : type
        Floating dtype of the returned array. ``float32`` input stays ``float32`` when
        ``dtype`` is ``np.float32``.

    Returns
    -------
    numpy.ndarray, shape (n, n)

    Raises
    ------
    InputError
        If ``phi`` is not numeric, not two-dimensional and square, or has NaN/inf.
    """
    if hasattr(phi, "values") and not isinstance(phi, np.ndarray) and hasattr(phi, "meta"):
        phi = phi.values  # a SynergyMatrix
    if hasattr(phi, "detach") and hasattr(phi, "cpu"):  # a torch tensor
        phi = phi.detach().cpu().numpy()
    try:
        arr = np.asarray(phi)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise InputError(f"{name}: could not convert {type(phi).__name__} to an array ({exc}).") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name}: expected a numeric (n, n) matrix, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name}: expected real values, got complex dtype {arr.dtype}.")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"{name}: expected a square (n, n) matrix, got shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise InputError(
            f"{name}: expected finite values, found {arr[tuple(bad)]} at index "
            f"({bad[0]}, {bad[1]}) ({int((~finite).sum())} non-finite entries in all)."
        )
    return arr


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` after checking ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value}.")
    return int(value)


def check_probability(value: Any, name: str, *, open_left: bool = True) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1) when ``open_left`` is False)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a number in (0, 1), got {value!r}.") from exc
    lo_ok = v > 0 if open_left else v >= 0
    if not (lo_ok and v < 1):
        raise InputError(f"{name}: expected a number in {'(' if open_left else '['}0, 1), got {v}.")
    return v


def check_size_range(size_range: Any, name: str = "size_range") -> tuple[int, int]:
    """Validate a coalition size range ``(k_min, k_max)`` with ``1 <= k_min <= k_max``."""
    if not isinstance(size_range, Sequence) or isinstance(size_range, (str, bytes)) or len(size_range) != 2:
        raise InputError(f"{name}: expected a pair (k_min, k_max) of integers, got {size_range!r}.")
    lo, hi = size_range
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{name}: expected integers (k_min, k_max), got {size_range!r}.")
    if lo < 1 or hi < lo:
        raise InputError(f"{name}: expected 1 <= k_min <= k_max, got ({lo}, {hi}).")
    return int(lo), int(hi)


def check_labels(labels: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Validate a label vector: integers ``0..K-1`` with every label used.

    Parameters
    ----------
    labels : array_like, shape (n,)
    n : int, optional
        Expected number of players.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-d integer array, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name}: expected integer labels, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name}: expected {n} labels (one per player), got {arr.shape[0]}.")
    if arr.size:
        if arr.min() < 0:
            raise InputError(f"{name}: labels must be >= 0, got minimum {arr.min()}.")
        used = np.unique(arr)
        if used.size != arr.max() + 1:
            missing = sorted(set(range(int(arr.max()) + 1)) - set(used.tolist()))[:5]
            raise InputError(
                f"{name}: labels must use every value 0..K-1 (no empty coalitions); missing {missing}."
            )
    return arr


def as_generator(seed: int | np.random.Generator | None, name: str = "seed") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a seed or an existing generator.

    ``None`` is refused: randomness in this package is always explicit.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"{name}: expected an int seed or numpy.random.Generator, got {seed!r}.")
    if seed < 0:
        raise InputError(f"{name}: expected a non-negative seed, got {seed}.")
    return np.random.default_rng(int(seed))
