"""The result type of every pairwise valuation: :class:`SynergyMatrix`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_phi
from .errors import ArtifactError
from .io import load_arrays, save_arrays

__all__ = ["SynergyMatrix"]


@dataclass(frozen=True)
class SynergyMatrix:
    """An ``n x n`` matrix of pairwise valuations ``phi[i, j]`` with its provenance.

    Parameters
    ----------
    values : numpy.ndarray, shape (n, n), float32
        ``values[i, j]`` is how much player ``i`` values player ``j`` (docs/method.md §3).
        The diagonal is zero. PAS and OCA are symmetric; the game also accepts
        asymmetric matrices.
    meta : dict
        Provenance: ``method`` (``"oca"``, ``"pas_exact"``, ``"pas_second_order"``,
        ``"null"``, ...), ``layer``, ``readout``, ``n_inputs``, model id, seed, version.
    """

    values: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = check_phi(self.values, "values", dtype=np.float32)
        arr = arr.copy()
        np.fill_diagonal(arr, 0.0)
        arr.setflags(write=False)
        object.__setattr__(self, "values", arr)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __repr__(self) -> str:
        return f"SynergyMatrix(n={self.n}, method={self.meta.get('method', '?')!r}, layer={self.meta.get('layer')})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to a safetensors file (tensor ``values``, ``meta`` as a JSON string)."""
        save_arrays(path, {"values": self.values}, metadata={"meta": json.dumps(self.meta, default=str)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SynergyMatrix:
        """Read a file written by :meth:`save` (or any safetensors file with ``values``)."""
        arrays, metadata = load_arrays(path)
        if "values" not in arrays:
            raise ArtifactError(f"{path}: no tensor named 'values' (found {sorted(arrays)}).")
        try:
            meta = json.loads(metadata.get("meta", "{}"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path}: malformed 'meta' metadata ({exc.msg}).") from exc
        if not isinstance(meta, dict):
            raise ArtifactError(f"{path}: 'meta' metadata must be a JSON object, got {type(meta).__name__}.")
        return cls._owning(arrays["values"], meta)

    @classmethod
    def _owning(cls, values: np.ndarray, meta: dict[str, Any]) -> SynergyMatrix:
        """Like the constructor, for an array nobody else holds (just read from a file): validated
        and its diagonal zeroed in place, without the defensive copy (at n = 14336 that copy is 0.8 GB)."""
        arr = check_phi(values, "values", dtype=np.float32)
        if not arr.flags.writeable:
            arr = arr.copy()
        np.fill_diagonal(arr, 0.0)
        arr.setflags(write=False)
        obj = object.__new__(cls)
        object.__setattr__(obj, "values", arr)
        object.__setattr__(obj, "meta", meta)
        return obj
