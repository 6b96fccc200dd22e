"""The one result type every partitioner returns.

A :class:`Partition` of ``n`` players is stored as a label vector; coalitions are
derived from it (sorted member arrays, largest first, ties by smallest member). It
carries its provenance in ``meta`` and round-trips through JSON (no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import check_labels
from .errors import ArtifactError, InputError
from .io import atomic_write, json_default
from .provenance import provenance

__all__ = ["PARTITION_FORMAT", "Partition", "PartitionSummary"]

#: The ``format`` tag of a partition JSON file.
PARTITION_FORMAT = "hedonic-neurons/partition@1"


@dataclass(frozen=True)
class PartitionSummary:
    """The shape of a partition (the paper's failure signature 1 in the last fields).

    Attributes
    ----------
    n_players : int
    n_coalitions : int
    size_histogram : dict[int, int]
        Coalition size -> number of coalitions of that size.
    largest_share : float
        Fraction of players in the largest coalition (0 for an empty partition).
    singleton_share : float
        Fraction of players that are alone.
    degenerate : str | None
        ``"giant"`` when one coalition holds more than ``giant_threshold`` of the players,
        ``"singletons"`` when more than ``singleton_threshold`` are alone, else ``None``.
    """

    n_players: int
    n_coalitions: int
    size_histogram: dict[int, int]
    largest_share: float
    singleton_share: float
    degenerate: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_players": self.n_players,
            "n_coalitions": self.n_coalitions,
            "size_histogram": {str(k): v for k, v in self.size_histogram.items()},
            "largest_share": self.largest_share,
            "singleton_share": self.singleton_share,
            "degenerate": self.degenerate,
        }

    def __str__(self) -> str:
        hist = ", ".join(f"{s}:{c}" for s, c in sorted(self.size_histogram.items(), reverse=True)[:12])
        more = " ..." if len(self.size_histogram) > 12 else ""
        warn = f"  WARNING: degenerate partition ({self.degenerate})" if self.degenerate else ""
        return (
            f"{self.n_players} players in {self.n_coalitions} coalitions; "
            f"largest holds {self.largest_share:.1%}, singletons {self.singleton_share:.1%}; "
            f"sizes (size:count) {hist}{more}{warn}"
        )


@dataclass(frozen=True)
class Partition:
    """A partition of players ``0..n-1`` into disjoint, non-empty coalitions.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n,)
        ``labels[i]`` is the index of player ``i``'s coalition in :attr:`coalitions`
        (canonical order: largest coalition first, ties by smallest member).
    meta : dict
        Provenance: method, parameters, seed, package version, and anything else.

    Notes
    -----
    Build one with :meth:`from_coalitions` or :meth:`from_labels`; both validate and
    canonicalise, so two equal partitions have equal ``labels``.
    """

    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = check_labels(self.labels)
        labels = _canonical_labels(labels)
        labels.setflags(write=False)
        object.__setattr__(self, "labels", labels)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_labels(cls, labels: Sequence[int] | np.ndarray, meta: dict[str, Any] | None = None) -> Partition:
        """Build from any integer labelling (labels need not be contiguous)."""
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise InputError(f"labels: expected a 1-d array, got shape {arr.shape}.")
        if arr.size:
            if not np.issubdtype(arr.dtype, np.integer):
                raise InputError(f"labels: expected integer labels, got dtype {arr.dtype}.")
            _, arr = np.unique(arr, return_inverse=True)
        return cls(np.asarray(arr, dtype=np.int64).reshape(-1), dict(meta or {}))

    @classmethod
    def from_coalitions(
        cls, coalitions: Iterable[Iterable[int]], n: int | None = None, meta: dict[str, Any] | None = None
    ) -> Partition:
        """Build from a list of coalitions; they must cover ``0..n-1`` exactly once.

        Raises
        ------
        InputError
            If a coalition is empty, a player appears twice, a player is out of range,
            or a player in ``0..n-1`` is missing.
        """
        groups = []
        for idx, c in enumerate(coalitions):
            try:
                g = np.asarray(list(c))
            except TypeError as exc:
                raise InputError(f"coalitions: coalition #{idx} is not a list of players ({exc}).") from exc
            if g.size and (g.ndim != 1 or not np.issubdtype(g.dtype, np.integer)):
                raise InputError(
                    f"coalitions: coalition #{idx} must be a flat list of integer players, got dtype {g.dtype}, "
                    f"shape {g.shape}."
                )
            groups.append(g.astype(np.int64).reshape(-1))
        total = sum(g.size for g in groups)
        if n is None:
            n = total
        n = int(n)
        for idx, g in enumerate(groups):
            if g.size == 0:
                raise InputError(f"coalitions: coalition #{idx} is empty; coalitions must be non-empty.")
            if g.min() < 0 or g.max() >= n:
                bad = g[(g < 0) | (g >= n)][0]
                raise InputError(f"coalitions: player {bad} in coalition #{idx} is outside 0..{n - 1}.")
        if n > total:  # every member is in range but some player is missing; n may be absurd, so no allocation
            present = np.unique(np.concatenate(groups)) if groups else np.zeros(0, np.int64)
            off = np.flatnonzero(present != np.arange(present.size))
            first = int(off[0]) if off.size else int(present.size)  # smallest player not present
            raise InputError(
                f"coalitions: players [{first}, ...] are not covered (n_players={n} but the coalitions hold "
                f"{total} members; expected every player 0..{n - 1} exactly once)."
            )
        labels = np.full(n, -1, dtype=np.int64)
        for idx, g in enumerate(groups):
            if np.unique(g).size != g.size or np.any(labels[g] >= 0):
                dup = next(int(p) for p in g if labels[p] >= 0 or np.count_nonzero(g == p) > 1)
                raise InputError(f"coalitions: player {dup} appears more than once.")
            labels[g] = idx
        if np.any(labels < 0):
            missing = np.flatnonzero(labels < 0)[:5].tolist()
            raise InputError(
                f"coalitions: players {missing}{' ...' if (labels < 0).sum() > 5 else ''} are not covered "
                f"(expected every player 0..{n - 1} exactly once)."
            )
        return cls(labels, dict(meta or {}))

    # ------------------------------------------------------------------ views
    @property
    def n_players(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_coalitions(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @cached_property
    def coalitions(self) -> list[np.ndarray]:
        """Sorted member arrays, largest first (ties by smallest member)."""
        if not self.labels.size:
            return []
        order = np.argsort(self.labels, kind="stable")
        bounds = np.cumsum(np.bincount(self.labels))[:-1]
        groups = np.split(order, bounds)
        for g in groups:
            g.setflags(write=False)
        return groups

    @cached_property
    def sizes(self) -> np.ndarray:
        """Coalition sizes, shape (K,), in the order of :attr:`coalitions`."""
        return np.bincount(self.labels, minlength=self.n_coalitions) if self.labels.size else np.zeros(0, np.int64)

    def membership(self, dtype: type = np.float64) -> Any:
        """Sparse membership matrix, shape (K, n): row c has ones at coalition c's members."""
        from scipy import sparse

        n = self.n_players
        return sparse.csr_matrix(
            (np.ones(n, dtype=dtype), (self.labels, np.arange(n))), shape=(self.n_coalitions, n)
        )

    def summary(self, giant_threshold: float = 0.5, singleton_threshold: float = 0.9) -> PartitionSummary:
        """Number of coalitions, size histogram, largest and singleton shares (docs/method.md §5)."""
        n = self.n_players
        sizes = self.sizes
        hist: dict[int, int] = {}
        for s, c in zip(*np.unique(sizes, return_counts=True)):
            hist[int(s)] = int(c)
        largest = float(sizes.max() / n) if n else 0.0
        single = float(hist.get(1, 0) / n) if n else 0.0
        degenerate = None
        if n >= 4 and sizes.size > 0:
            if largest > giant_threshold:
                degenerate = "giant"
            elif single > singleton_threshold:
                degenerate = "singletons"
        return PartitionSummary(n, self.n_coalitions, hist, largest, single, degenerate)

    def with_meta(self, **meta: Any) -> Partition:
        """A copy with ``meta`` updated."""
        return Partition(self.labels, {**self.meta, **meta})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Partition):
            return NotImplemented
        return np.array_equal(self.labels, other.labels)

    def __hash__(self) -> int:
        return hash(self.labels.tobytes())

    def __len__(self) -> int:
        return self.n_coalitions

    def __repr__(self) -> str:
        method = self.meta.get("method", "?")
        return f"Partition(n_players={self.n_players}, n_coalitions={self.n_coalitions}, method={method!r})"

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PARTITION_FORMAT,
            "n_players": self.n_players,
            "coalitions": [c.tolist() for c in self.coalitions],
            "meta": self.meta,
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Serialise to JSON; with ``path``, also write it atomically."""
        text = json.dumps(self.to_dict(), default=json_default)
        if path is not None:
            with atomic_write(path) as fh:
                fh.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "partition") -> Partition:
        """Build from the JSON object written by :meth:`to_dict`, accepting exactly that schema.

        Keys: ``coalitions`` (required; a list of lists of non-negative JSON integers),
        ``n_players`` (optional non-negative integer; must equal the number of members),
        ``format`` (optional; must be ``"hedonic-neurons/partition@1"``) and ``meta``
        (optional object or null). Floats, booleans, numeric strings, nested lists and
        unknown keys are refused rather than coerced.

        Raises
        ------
        ArtifactError
            When the object does not follow the schema (names ``source`` and the key).
        InputError
            When it follows the schema but is not a partition (a player missing,
            repeated or out of range).
        """
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: expected a JSON object with a 'coalitions' list, got {type(data).__name__}.")
        unknown = sorted(set(data) - {"format", "n_players", "coalitions", "meta"})
        if unknown:
            raise ArtifactError(
                f"{source}: unknown keys {unknown}; a partition has 'format', 'n_players', 'coalitions', 'meta'."
            )
        if "format" in data and data["format"] != PARTITION_FORMAT:
            raise ArtifactError(f"{source}: format {data['format']!r} is not {PARTITION_FORMAT!r}.")
        if "coalitions" not in data:
            raise ArtifactError(f"{source}: expected a JSON object with a 'coalitions' list.")
        coalitions = data["coalitions"]
        if not isinstance(coalitions, list):
            raise ArtifactError(f"{source}: 'coalitions' must be a list of lists of integers, got "
                                f"{type(coalitions).__name__}.")
        for idx, c in enumerate(coalitions):
            if not isinstance(c, list):
                raise ArtifactError(f"{source}: coalition #{idx} must be a list of integers, got {c!r:.60}.")
            for v in c:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ArtifactError(
                        f"{source}: coalition #{idx} holds {v!r:.40} ({type(v).__name__}); players are JSON integers."
                    )
        n = data.get("n_players")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ArtifactError(f"{source}: 'n_players' must be a non-negative integer, got {n!r:.40}.")
        meta = data.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise ArtifactError(f"{source}: 'meta' must be a JSON object or null, got {type(meta).__name__}.")
        return cls.from_coalitions(coalitions, n=n, meta=meta or {})

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> Partition:
        """Load from a JSON string or a path to a JSON file (schema: :meth:`from_dict`)."""
        from .io import loads_json, read_text

        text: str
        where = "partition"
        if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            p = Path(source)
            if not p.is_file() and not p.is_dir():
                raise ArtifactError(f"{p}: partition file not found.")
            text = read_text(p, "a partition JSON file")
            where = str(p)
        else:
            text = str(source)
        return cls.from_dict(loads_json(text, where), where)


def _canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel so coalitions are numbered largest first, ties by smallest member."""
    if not labels.size:
        return labels.astype(np.int64)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    first = np.full(k, labels.size, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(labels.size))
    order = np.lexsort((first, -sizes))
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return remap[labels]



def _default_meta(method: str, **params: Any) -> dict[str, Any]:
    """Standard ``meta`` for partitioners: method, parameters, package provenance."""
    return {"method": method, "params": params, **provenance()}
