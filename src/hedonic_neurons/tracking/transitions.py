"""Coalition transitions between consecutive layers: persist, split, merge, vanish (paper §3.4).

From the interaction mass ``M`` (K, K') (:mod:`.mass`):

- ``α(C→C') = M(C, C') / Σ_{C''} M(C, C'')`` — the share of source ``C``'s output that
  flows into target ``C'`` (rows sum to 1),
- ``β(C→C') = M(C, C') / Σ_{C''} M(C'', C')`` — the share of target ``C'``'s input that
  comes from ``C`` (columns sum to 1),

(``0/0 := 0``: a coalition with no outgoing mass has ``α = 0`` everywhere), and a
maximum-weight bipartite matching on ``M`` (``scipy.optimize.linear_sum_assignment``) aligns
each source with at most one target.

The paper classifies each *matched pair* as persist (α and β high), split (α low, β high),
merge (α high, β low) or vanish (both low) with ``(α_hi, α_lo) = (0.7, 0.1)``, and leaves the
band between ``α_lo`` and ``α_hi`` and many-to-one events open. The rule implemented here
(one event per source coalition, so the four percentages of a layer pair sum to 100, as the
rows of Table 3 do) is :data:`TRANSITION_RULE`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, InputError
from ..io import atomic_path, atomic_write, json_default, read_json
from ..partition import Partition
from ..provenance import provenance
from ..records import LayerRecord
from ._classify import (
    EVENTS,
    TRANSITION_RULE,
    _check_mass,
    _check_thresholds,
    _classify,
    match_coalitions,
    transfer_ratios,
)
from .mass import WriteKind, interaction_mass

__all__ = [
    "EVENTS",
    "TRANSITION_RULE",
    "TransitionTable",
    "classify_transitions",
    "match_coalitions",
    "threshold_sweep",
    "track",
    "transfer_ratios",
    "transition_table",
    "transitions_long",
]

def classify_transitions(
    mass: np.ndarray, *, alpha_hi: float = 0.7, alpha_lo: float = 0.1
) -> pd.DataFrame:
    """Classify every source coalition's transition from an interaction-mass matrix.

    Parameters
    ----------
    mass : numpy.ndarray, shape (K, K')
        Non-negative interaction mass (paper §3.4).
    alpha_hi, alpha_lo : float
        Thresholds, ``0 <= alpha_lo < alpha_hi <= 1`` (paper: 0.7 and 0.1).

    Returns
    -------
    pandas.DataFrame
        One row per source coalition: ``coalition, event, target, alpha, beta, targets,
        matched, matched_alpha, matched_beta``. The rule is :data:`TRANSITION_RULE`.
    """
    table = _build_table(_check_mass(mass), None, 0, 1, alpha_hi, alpha_lo, {})
    return table.to_dataframe().drop(columns=["src_layer", "dst_layer", "size"])


@dataclass(frozen=True, eq=False)
class TransitionTable:
    """Transitions of the coalitions of layer ``src_layer`` into layer ``dst_layer``.

    One entry per source coalition (canonical order of the source :class:`Partition`).

    Attributes
    ----------
    src_layer, dst_layer : int
    event : numpy.ndarray of str, shape (K,)
        ``"persist"``, ``"merge"``, ``"split"`` or ``"vanish"`` (:data:`TRANSITION_RULE`).
    target : numpy.ndarray of int, shape (K,)
        The event's target coalition in ``dst_layer`` (``-1`` for vanish).
    alpha, beta : numpy.ndarray, shape (K,)
        α and β of the pair (source, target); for vanish, of the matched pair (or of the
        largest-α target when unmatched).
    targets : tuple of tuple of int
        All targets the event links to (the split pieces; one target for persist/merge;
        none for vanish).
    matched : numpy.ndarray of int, shape (K,)
        Partner in the maximum-weight matching (``-1`` if none).
    matched_alpha, matched_beta : numpy.ndarray, shape (K,)
        α and β of the matched pair (0 when unmatched).
    src_sizes : numpy.ndarray of int, shape (K,)
        Source coalition sizes.
    n_dst : int
        Number of target coalitions ``K'``.
    alpha_hi, alpha_lo : float
        Thresholds used.
    mass : numpy.ndarray, shape (K, K'), optional
        The interaction mass (kept in memory; saved only on request).
    meta : dict
        Provenance.
    """

    src_layer: int
    dst_layer: int
    event: np.ndarray
    target: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    targets: tuple[tuple[int, ...], ...]
    matched: np.ndarray
    matched_alpha: np.ndarray
    matched_beta: np.ndarray
    src_sizes: np.ndarray
    n_dst: int
    alpha_hi: float = 0.7
    alpha_lo: float = 0.1
    mass: np.ndarray | None = field(default=None, repr=False, compare=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __eq__(self, other: object) -> bool:
        """Equal layers, thresholds, sizes and per-coalition results (``mass``/``meta`` ignored)."""
        if not isinstance(other, TransitionTable):
            return NotImplemented
        arrays = ("event", "target", "matched", "src_sizes")
        floats = ("alpha", "beta", "matched_alpha", "matched_beta")
        return (
            (self.src_layer, self.dst_layer, self.n_dst, self.alpha_hi, self.alpha_lo, self.targets)
            == (other.src_layer, other.dst_layer, other.n_dst, other.alpha_hi, other.alpha_lo, other.targets)
            and all(np.array_equal(getattr(self, f), getattr(other, f)) for f in arrays)
            and all(np.allclose(getattr(self, f), getattr(other, f), rtol=0, atol=1e-12) for f in floats)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_src(self) -> int:
        """Number of source coalitions ``K``."""
        return int(self.event.shape[0])

    def counts(self) -> dict[str, int]:
        """Number of source coalitions per event (all four keys present)."""
        return {e: int(np.count_nonzero(self.event == e)) for e in EVENTS}

    def percentages(self) -> dict[str, float]:
        """Percent of the source layer's coalitions per event (Table 3); sums to 100."""
        k = self.n_src
        return {e: (100.0 * c / k if k else 0.0) for e, c in self.counts().items()}

    def summary(self) -> pd.DataFrame:
        """One row: layers, ``n_src``, ``n_dst``, the count and percent of every event, and
        ``merged_targets`` (distinct targets that merging sources flow into; each merge of
        ``s`` sources counts ``s`` times in ``merge_count``)."""
        merged = np.unique(self.target[self.event == "merge"]).size
        row: dict[str, Any] = {"src_layer": self.src_layer, "dst_layer": self.dst_layer,
                               "n_src": self.n_src, "n_dst": self.n_dst, "merged_targets": int(merged)}
        for e, c in self.counts().items():
            row[f"{e}_count"] = c
        for e, p in self.percentages().items():
            row[f"{e}_pct"] = p
        return pd.DataFrame([row])

    def to_dataframe(self) -> pd.DataFrame:
        """One row per source coalition: ``src_layer, dst_layer, coalition, size, event,
        target, alpha, beta, targets`` (``;``-joined), ``matched, matched_alpha, matched_beta``."""
        k = self.n_src
        return pd.DataFrame({
            "src_layer": np.full(k, self.src_layer, dtype=np.int64),
            "dst_layer": np.full(k, self.dst_layer, dtype=np.int64),
            "coalition": np.arange(k, dtype=np.int64),
            "size": np.asarray(self.src_sizes, dtype=np.int64),
            "event": np.asarray(self.event, dtype=str),
            "target": np.asarray(self.target, dtype=np.int64),
            "alpha": np.asarray(self.alpha, dtype=np.float64),
            "beta": np.asarray(self.beta, dtype=np.float64),
            "targets": [";".join(str(t) for t in tt) for tt in self.targets],
            "matched": np.asarray(self.matched, dtype=np.int64),
            "matched_alpha": np.asarray(self.matched_alpha, dtype=np.float64),
            "matched_beta": np.asarray(self.matched_beta, dtype=np.float64),
        })

    def to_dict(self, *, include_mass: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": "hedonic-neurons/transitions@1",
            "src_layer": self.src_layer, "dst_layer": self.dst_layer,
            "alpha_hi": self.alpha_hi, "alpha_lo": self.alpha_lo,
            "n_src": self.n_src, "n_dst": self.n_dst,
            "counts": self.counts(), "percentages": self.percentages(),
            "rule": TRANSITION_RULE,
            "rows": self.to_dataframe().drop(columns=["src_layer", "dst_layer"]).to_dict(orient="list"),
            "meta": self.meta,
        }
        if include_mass and self.mass is not None:
            out["mass"] = np.asarray(self.mass).tolist()
        return out

    def save(self, path: str | os.PathLike[str], *, include_mass: bool = False) -> Path:
        """Save by suffix: ``.json`` (rows, counts, thresholds, rule, meta; the mass matrix
        with ``include_mass``), ``.csv`` or ``.parquet`` (the per-coalition rows). Atomic."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".json":
            with atomic_write(p) as fh:
                json.dump(self.to_dict(include_mass=include_mass), fh, default=json_default)
                fh.write("\n")
        elif suffix == ".csv":
            with atomic_write(p) as fh:
                self.to_dataframe().to_csv(fh, index=False)
        elif suffix == ".parquet":
            with atomic_path(p) as tmp:
                self.to_dataframe().to_parquet(tmp, index=False)
        else:
            raise InputError(f"path: expected a .json, .csv or .parquet file name, got {p.name!r}.")
        return p

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransitionTable:
        if not isinstance(data, Mapping) or data.get("format") != "hedonic-neurons/transitions@1":
            raise ArtifactError("transitions: expected a JSON object with format 'hedonic-neurons/transitions@1'.")
        rows = data["rows"]
        targets = tuple(
            tuple(int(t) for t in str(s).split(";") if t != "") for s in rows["targets"]
        )
        mass = np.asarray(data["mass"], dtype=np.float64) if "mass" in data else None
        return cls(
            src_layer=int(data["src_layer"]), dst_layer=int(data["dst_layer"]),
            event=np.asarray(rows["event"], dtype=str), target=np.asarray(rows["target"], dtype=np.int64),
            alpha=np.asarray(rows["alpha"], dtype=np.float64), beta=np.asarray(rows["beta"], dtype=np.float64),
            targets=targets, matched=np.asarray(rows["matched"], dtype=np.int64),
            matched_alpha=np.asarray(rows["matched_alpha"], dtype=np.float64),
            matched_beta=np.asarray(rows["matched_beta"], dtype=np.float64),
            src_sizes=np.asarray(rows["size"], dtype=np.int64), n_dst=int(data["n_dst"]),
            alpha_hi=float(data["alpha_hi"]), alpha_lo=float(data["alpha_lo"]),
            mass=mass, meta=dict(data.get("meta") or {}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransitionTable:
        """Load a table saved as ``.json``."""
        return cls.from_dict(read_json(path))

    def __repr__(self) -> str:
        pct = ", ".join(f"{e} {p:.1f}%" for e, p in self.percentages().items())
        return f"TransitionTable({self.src_layer}->{self.dst_layer}, K={self.n_src}, K'={self.n_dst}: {pct})"



def _build_table(
    mass: np.ndarray,
    src_sizes: np.ndarray | None,
    src_layer: int,
    dst_layer: int,
    alpha_hi: float,
    alpha_lo: float,
    meta: dict[str, Any],
) -> TransitionTable:
    hi, lo = _check_thresholds(alpha_hi, alpha_lo)
    alpha, beta = transfer_ratios(mass)
    matched = match_coalitions(mass)
    cls = _classify(alpha, beta, matched, hi, lo)
    k = mass.shape[0]
    has = matched >= 0
    m_alpha = np.zeros(k)
    m_beta = np.zeros(k)
    m_alpha[has] = alpha[np.flatnonzero(has), matched[has]]
    m_beta[has] = beta[np.flatnonzero(has), matched[has]]
    sizes = np.ones(k, dtype=np.int64) if src_sizes is None else np.asarray(src_sizes, dtype=np.int64)
    for a in (cls.event, cls.target, cls.alpha, cls.beta, matched, m_alpha, m_beta, sizes):
        a.setflags(write=False)
    return TransitionTable(
        src_layer=int(src_layer), dst_layer=int(dst_layer), event=cls.event, target=cls.target,
        alpha=cls.alpha, beta=cls.beta, targets=cls.targets, matched=matched,
        matched_alpha=m_alpha, matched_beta=m_beta, src_sizes=sizes, n_dst=int(mass.shape[1]),
        alpha_hi=hi, alpha_lo=lo, mass=mass, meta=meta,
    )


def transition_table(
    mass: np.ndarray,
    *,
    src_layer: int = 0,
    dst_layer: int = 1,
    src_sizes: np.ndarray | None = None,
    alpha_hi: float = 0.7,
    alpha_lo: float = 0.1,
    meta: dict[str, Any] | None = None,
) -> TransitionTable:
    """Build a :class:`TransitionTable` from an interaction-mass matrix (rule: :data:`TRANSITION_RULE`).

    Parameters
    ----------
    mass : numpy.ndarray, shape (K, K')
    src_layer, dst_layer : int
    src_sizes : numpy.ndarray of int, shape (K,), optional
        Source coalition sizes (for the table and the Sankey widths); ones if omitted.
    alpha_hi, alpha_lo : float
    meta : dict, optional
    """
    m = _check_mass(mass)
    if src_sizes is not None and np.shape(src_sizes) != (m.shape[0],):
        raise InputError(f"src_sizes: expected shape ({m.shape[0]},), got {np.shape(src_sizes)}.")
    return _build_table(m, src_sizes, src_layer, dst_layer, alpha_hi, alpha_lo,
                        {**provenance(), **(meta or {})})



def track(
    partitions: Mapping[int, Partition],
    records: Mapping[int, LayerRecord],
    *,
    alpha_hi: float = 0.7,
    alpha_lo: float = 0.1,
    write: WriteKind = "weighted",
    layers: Sequence[int] | None = None,
) -> dict[tuple[int, int], TransitionTable]:
    """Track coalitions across consecutive layers (paper §3.4, docs/method.md §7).

    Parameters
    ----------
    partitions : mapping int -> Partition
        Partition of each layer's neurons.
    records : mapping int -> LayerRecord
        Record of each layer (source layers need ``w_down`` and ``a``; target layers
        ``w_read`` and ``h``).
    alpha_hi, alpha_lo : float
        Classification thresholds (paper: 0.7, 0.1).
    write : {"weighted", "weights"}
        Source write aggregation, see :func:`~hedonic_neurons.tracking.interaction_mass`.
    layers : sequence of int, optional
        Layers to use; default every layer present in both mappings. Consecutive means
        consecutive in this sorted list (layer ℓ+1 reads the residual stream that every
        earlier layer writes, so a gap is allowed; the pair is then (ℓ, next layer)).

    Returns
    -------
    dict mapping (ℓ, ℓ_next) -> TransitionTable
        Each table keeps its mass matrix in memory (``table.mass``).
    """
    hi, lo = _check_thresholds(alpha_hi, alpha_lo)
    avail = sorted(set(partitions) & set(records))
    if layers is not None:
        missing = [int(x) for x in layers if x not in avail]
        if missing:
            raise InputError(
                f"layers: {missing} lack a partition or a record (available: {avail})."
            )
        avail = sorted(int(x) for x in layers)
    if len(avail) < 2:
        raise InputError(
            f"partitions/records: need at least two layers present in both to track, got {avail} "
            f"(partitions for {sorted(partitions)}, records for {sorted(records)})."
        )
    out: dict[tuple[int, int], TransitionTable] = {}
    for src_l, dst_l in itertools.pairwise(avail):
        src, dst = partitions[src_l], partitions[dst_l]
        mass = interaction_mass(src, dst, records[src_l], records[dst_l], write=write)
        meta = {"write": write, "src_method": src.meta.get("method"), "dst_method": dst.meta.get("method"),
                **provenance()}
        out[(src_l, dst_l)] = _build_table(mass, src.sizes, src_l, dst_l, hi, lo, meta)
    return out


def _as_masses(
    inputs: np.ndarray | TransitionTable | Mapping[tuple[int, int], np.ndarray | TransitionTable],
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]]:
    """``(ℓ, ℓ') -> (mass, matching or None)``; a table's matching is reused (it is the slow part)."""
    if isinstance(inputs, TransitionTable):
        inputs = {(inputs.src_layer, inputs.dst_layer): inputs}
    elif not isinstance(inputs, Mapping):
        inputs = {(0, 1): inputs}
    out: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}
    for key, v in inputs.items():
        matched = None
        if isinstance(v, TransitionTable):
            if v.mass is None:
                raise InputError(
                    f"inputs[{key}]: this TransitionTable carries no mass matrix (loaded without "
                    "include_mass); pass the mass matrix instead."
                )
            matched = np.asarray(v.matched, dtype=np.int64)
            v = v.mass
        out[(int(key[0]), int(key[1]))] = (_check_mass(v, f"inputs[{key}]"), matched)
    return out


def threshold_sweep(
    inputs: np.ndarray | TransitionTable | Mapping[tuple[int, int], np.ndarray | TransitionTable],
    alpha_hi_grid: Iterable[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
    alpha_lo_grid: Iterable[float] = (0.02, 0.05, 0.1, 0.2, 0.3),
) -> pd.DataFrame:
    """Threshold sensitivity of the transition percentages (the summary's experiment 3).

    Parameters
    ----------
    inputs : (K, K') mass matrix, a TransitionTable with ``mass``, or a mapping
        ``(ℓ, ℓ') -> mass or TransitionTable`` (the output of :func:`track`).
    alpha_hi_grid, alpha_lo_grid : iterable of float
        Every pair with ``alpha_lo < alpha_hi`` is evaluated; other pairs are skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``src_layer, dst_layer, alpha_hi, alpha_lo, n_src, persist, merge, split,
        vanish`` (percent of the source layer's coalitions).
    """
    masses = _as_masses(inputs)
    his = sorted({float(x) for x in alpha_hi_grid})
    los = sorted({float(x) for x in alpha_lo_grid})
    rows: list[dict[str, Any]] = []
    for (sl, dl), (m, matched) in masses.items():
        alpha, beta = transfer_ratios(m)
        if matched is None:
            matched = match_coalitions(m)
        k = m.shape[0]
        for hi in his:
            for lo in los:
                if not (0.0 <= lo < hi <= 1.0):
                    continue
                ev = _classify(alpha, beta, matched, hi, lo).event
                row: dict[str, Any] = {"src_layer": sl, "dst_layer": dl, "alpha_hi": hi, "alpha_lo": lo, "n_src": k}
                for e in EVENTS:
                    row[e] = 100.0 * np.count_nonzero(ev == e) / k if k else 0.0
                rows.append(row)
    return pd.DataFrame(rows, columns=["src_layer", "dst_layer", "alpha_hi", "alpha_lo", "n_src", *EVENTS])


def transitions_long(
    tables: Mapping[tuple[int, int], TransitionTable] | Iterable[TransitionTable],
    *,
    model: str | None = None,
    task: str | None = None,
    method: str | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Long-format event percentages, one row per (layer pair, event) (Table 3 input).

    Returns
    -------
    pandas.DataFrame
        Columns ``[model, task, method, seed]`` (only those given), then ``src_layer,
        dst_layer, event, percent, count, n_src``.
    """
    items = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    rows: list[dict[str, Any]] = []
    extra = {k: v for k, v in (("model", model), ("task", task), ("method", method), ("seed", seed))
             if v is not None}
    for t in items:
        counts, pcts = t.counts(), t.percentages()
        for e in EVENTS:
            rows.append({**extra, "src_layer": t.src_layer, "dst_layer": t.dst_layer, "event": e,
                         "percent": pcts[e], "count": counts[e], "n_src": t.n_src})
    cols = [*extra, "src_layer", "dst_layer", "event", "percent", "count", "n_src"]
    return pd.DataFrame(rows, columns=cols)
