"""Size-matched null tests for coalition metrics (docs/method.md §8, "Size-matched null").

A coalition ``C`` of a layer's ``n`` players is compared with uniformly random coalitions of
the *same size* drawn from the same ``n`` players, so a large coalition is never credited for
its size alone:

- intrinsic: :func:`pair_null_test` tests ``Pair(C)`` (the mean of ``φ_ij`` over the ordered
  pairs ``i ≠ j`` of ``C``; typically ``φ = ψ(i, j)`` measured on held-out inputs, eq. 7–8);
  :func:`pooled_pair` and :func:`pooled_pair_null` do the same for the *pooled* Pair of a whole
  partition against random partitions with the same size histogram;
- extrinsic: :func:`size_matched_null` (one callback per random coalition) and
  :func:`size_matched_null_batch` (one callback per batch of random coalitions, given as an
  ``n × B`` membership matrix) test any per-coalition metric (an OOD drop, an alignment R²).

Every test is one-sided ("larger than random"): with ``B`` null draws,

    p = (1 + #{null ≥ observed}) / (1 + B)                (Monte-Carlo p-value, +1 correction)

which is a valid p-value (``P(p ≤ a) ≤ a`` under the null) also when the null has ties. For a
metric where smaller is better, pass its negative. ``q_value`` is the Benjamini–Hochberg
adjustment over the tested coalitions of one call (one partition); ``significant`` is
``q_value ≤ alpha``. ``z = (observed − null_mean) / null_sd`` (``ddof = 1``) is reported as an
effect size; the test itself does not assume normality.

Conventions
-----------
- Coalitions smaller than ``min_size`` (default 2: Pair needs a pair) get no row.
- A coalition of all ``n`` players has no alternative of its size: its row has
  ``null_mean = observed``, ``null_sd = 0``, ``z = NaN`` and ``p_value = 1`` (never
  significant), without evaluating any draw.
- All coalitions of one size share the same null draws (drawn once per size), and the draws of
  size ``s`` depend only on ``(seed, s)`` when ``seed`` is an int, so adding a coalition of
  another size does not change the others' p-values. With a ``numpy.random.Generator`` the
  sizes consume it in ascending order.
- A NaN observed value (e.g. a metric the pipeline could not evaluate) gets NaN ``z``,
  ``p_value`` and ``q_value``, ``significant = False``, and is left out of the BH adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_generator, check_phi, check_positive_int, check_probability
from ..errors import InputError
from ..partition import Partition
from ._extrinsic import _check_min_size, size_matched_null, size_matched_null_batch
from ._sampling import (  # noqa: F401  (_bh_numpy, _draw_subsets, _gemm_path: re-exported for the tests)
    _BLOCK_ELEMENTS,
    _TAIL_COLUMNS,
    Seed,
    _bh_numpy,
    _chunks,
    _draw_subsets,
    _gemm_path,
    _null_table,
    _pair_batch,
    _pooled_null_values,
    _table_from_nulls,
    _within_sums,
    benjamini_hochberg,
    phi_margins,
)

__all__ = [
    "PairNulls",
    "PooledPairNull",
    "ZeroDiagonalPhi",
    "benjamini_hochberg",
    "pair_null_test",
    "pair_nulls",
    "pooled_pair",
    "pooled_pair_null",
    "prepare_phi",
    "size_matched_null",
    "size_matched_null_batch",
]

# ----------------------------------------------------------------------------- intrinsic: Pair
@dataclass(frozen=True)
class ZeroDiagonalPhi:
    """A valuation prepared for the Pair nulls: zero diagonal, with its margins.

    The null tests accept it in place of ``phi`` so that several of them on one matrix share
    one array (at ``n = 14336`` a float64 copy is 1.6 GB) and one pass for the margins.
    Build it with :func:`prepare_phi`.

    Attributes
    ----------
    values : numpy.ndarray, shape (n, n)
        ``φ`` with a zero diagonal, read-only: float32 when ``φ`` was a float32 array (ψ's
        storage; no copy is made when its diagonal is already zero), else float64.
    total : float
        ``T = Σ_ij φ_ij`` (diagonal excluded), summed in float64.
    margins : numpy.ndarray, shape (n,)
        Row plus column sum of each player (diagonal excluded), float64.
    """

    values: np.ndarray = field(repr=False)
    total: float
    margins: np.ndarray = field(repr=False)

    @property
    def pair(self) -> tuple[float, np.ndarray]:
        """``(total, margins)`` in the form the within-coalition sums take."""
        return self.total, self.margins

    def within(self, members: Any) -> float:
        """``Σ_{i≠j ∈ C} φ_ij`` of one coalition ``C`` (member indices), without forming its block."""
        return float(_within_sums(self.values, np.asarray(members)[None, :], self.pair)[0])


def prepare_phi(phi: Any, *, name: str = "phi") -> ZeroDiagonalPhi:
    """Validate ``phi`` (array_like or SynergyMatrix, shape (n, n)) and prepare it for the Pair nulls.

    ``name`` is the argument named in error messages.

    A float32 array (a SynergyMatrix's values) stays float32 and is used in place, read-only,
    when its diagonal is already zero; anything else becomes a float64 array with a zeroed
    diagonal (a copy: the caller's array is never written). Returns ``phi`` itself when it is
    already a :class:`ZeroDiagonalPhi`.
    """
    if isinstance(phi, ZeroDiagonalPhi):
        return phi
    source = phi.values if hasattr(phi, "values") and hasattr(phi, "meta") and not isinstance(phi, np.ndarray) \
        else phi
    single = isinstance(source, np.ndarray) and source.dtype == np.float32
    arr = check_phi(phi, name, dtype=np.float32 if single else np.float64)
    if np.any(np.diagonal(arr) != 0):
        if isinstance(source, np.ndarray) and np.may_share_memory(arr, source):
            arr = arr.copy()  # never write into the caller's matrix
        np.fill_diagonal(arr, 0.0)
    arr = arr.view()
    arr.setflags(write=False)
    total, margins = phi_margins(arr)
    return ZeroDiagonalPhi(arr, total, margins)


def _check_partition(partition: Any, n: int) -> Partition:
    if not isinstance(partition, Partition):
        raise InputError(f"partition: expected a Partition, got {type(partition).__name__}.")
    if partition.n_players != n:
        raise InputError(f"partition: has {partition.n_players} players but phi is {n} x {n}; "
                         "expected a partition of phi's players.")
    return partition


def _observed_pairs(prepared: ZeroDiagonalPhi, part: Partition,
                    min_size: int) -> tuple[list[int], np.ndarray, np.ndarray, float]:
    """``(ids, sizes, Pair, pooled Pair)``: the coalitions of at least ``min_size`` members, their
    sizes and Pair, and the pooled Pair over every coalition of at least 2 (NaN when none)."""
    ids, sizes, pairs = [], [], []
    total, n_pairs = 0.0, 0
    for c in range(part.n_coalitions):
        s = int(part.sizes[c])
        if s < 2:
            continue
        w = prepared.within(part.coalitions[c])
        total += w
        n_pairs += s * (s - 1)
        if s >= min_size:
            ids.append(c)
            sizes.append(s)
            pairs.append(w / (s * (s - 1)))
    pooled = total / n_pairs if n_pairs else float("nan")
    return ids, np.array(sizes, dtype=np.int64), np.array(pairs, dtype=np.float64), pooled


def pair_null_test(
    phi: Any,
    partition: Partition,
    *,
    n_draws: int = 1000,
    alpha: float = 0.05,
    seed: Seed = 0,
    min_size: int = 2,
) -> pd.DataFrame:
    """Per-coalition Pair against uniformly random coalitions of the same size (docs/method.md §8).

    ``Pair(C) = 1/(|C|(|C|−1)) · Σ_{i≠j ∈ C} φ_ij`` (the mean over ordered pairs; the diagonal of
    ``φ`` is ignored). For each coalition size ``s`` in the partition, ``n_draws`` uniform
    random ``s``-subsets of the ``n`` players form the null; the one-sided Monte-Carlo p-value
    is ``(1 + #{null ≥ Pair(C)}) / (1 + n_draws)``, then Benjamini–Hochberg over the
    partition's tested coalitions (module docstring for the conventions).

    Parameters
    ----------
    phi : numpy.ndarray, SynergyMatrix or ZeroDiagonalPhi, shape (n, n)
        The matrix whose within-coalition mean defines Pair, typically the interactions
        ``ψ(i, j)`` measured on held-out inputs. Asymmetric input is allowed (both ordered
        pairs count).
    partition : Partition
        A partition of the same ``n`` players.
    n_draws : int
        Random coalitions per size (the smallest attainable p-value is ``1/(1 + n_draws)``).
    alpha : float in (0, 1)
        False-discovery rate for ``significant``.
    seed : int or numpy.random.Generator
    min_size : int
        Smallest coalition tested (default 2; smaller coalitions have no Pair).

    Returns
    -------
    pandas.DataFrame
        One row per coalition with at least ``min_size`` members, in the partition's order:
        ``coalition`` (index into ``partition.coalitions``), ``size``, ``pair``, ``null_mean``,
        ``null_sd``, ``z``, ``p_value``, ``q_value``, ``significant``.

    Notes
    -----
    Cost: per distinct size ``n_draws`` random subsets (``O(s)`` each for ``s² ≤ n``, else
    ``O(n)`` random keys), plus per draw either an
    ``s × s`` gather (``s ≤ n/20``) or an ``n × n`` matrix–vector product, batched as a GEMM.
    The expected null Pair of every size is the mean off-diagonal ``φ``.
    """
    prepared = prepare_phi(phi)
    phi0, margins = prepared.values, prepared.pair
    n = phi0.shape[0]
    part = _check_partition(partition, n)
    draws = check_positive_int(n_draws, "n_draws")
    a = check_probability(alpha, "alpha")
    min_size = max(2, _check_min_size(min_size))
    as_generator(seed)
    ids, sizes, observed, _ = _observed_pairs(prepared, part, min_size)

    def evaluate(idx: np.ndarray) -> np.ndarray:
        s = idx.shape[1]
        return _within_sums(phi0, idx, margins) / (s * (s - 1))

    return _null_table(ids, sizes, observed, n_players=n, draws=draws, alpha=a, seed=seed, metric="pair",
                       evaluate=evaluate, batch_for=_pair_batch(n))


def pooled_pair(phi: Any, partition: Partition) -> float:
    """Pooled Pair of a partition: every within-coalition ordered pair counts once.

    ``pooled = Σ_C Σ_{i≠j ∈ C} φ_ij / Σ_C |C|(|C|−1)`` (docs/method.md §8, "Pooled"), so a giant
    coalition weighs by its number of pairs instead of counting as one coalition. It equals the
    mean of the per-coalition Pair weighted by ``|C|(|C|−1)``.

    Parameters
    ----------
    phi : numpy.ndarray, SynergyMatrix or ZeroDiagonalPhi, shape (n, n)
    partition : Partition
        Of the same ``n`` players.

    Returns
    -------
    float
        NaN when every coalition is a singleton (no pair).
    """
    prepared = prepare_phi(phi)
    part = _check_partition(partition, prepared.values.shape[0])
    return _observed_pairs(prepared, part, 2)[3]


@dataclass(frozen=True)
class PooledPairNull:
    """Pooled Pair of a partition against random partitions with the same size histogram.

    Attributes
    ----------
    observed : float
        :func:`pooled_pair` of the partition.
    null_mean, null_sd : float
        Mean and standard deviation (``ddof = 1``) of the null draws.
    z : float
        ``(observed − null_mean) / null_sd``; NaN when ``null_sd = 0``.
    p_value : float
        One-sided ``(1 + #{null ≥ observed}) / (1 + n_draws)``; 1 when the partition is a
        single coalition of all players (every random partition equals it).
    n_draws : int
    null : numpy.ndarray, shape (n_draws,)
        The null pooled Pairs (empty for a single all-player coalition).
    """

    observed: float
    null_mean: float
    null_sd: float
    z: float
    p_value: float
    n_draws: int
    null: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, float | int]:
        """The scalar fields (JSON-ready; the null draws are left out)."""
        return {"observed": self.observed, "null_mean": self.null_mean, "null_sd": self.null_sd, "z": self.z,
                "p_value": self.p_value, "n_draws": self.n_draws}


def pooled_pair_null(
    phi: Any, partition: Partition, *, n_draws: int = 1000, seed: Seed = 0
) -> PooledPairNull:
    """Pooled Pair of ``partition`` against size-matched random partitions (docs/method.md §8).

    The null partitions are uniformly random with the partition's size histogram (a random
    permutation of the players cut into blocks of those sizes, like
    :func:`hedonic_neurons.baselines.random_partition`). Because the pooled Pair is a sum over
    *all* within-coalition pairs, a giant coalition with random-level synergy inside pulls the
    observed value to the null.

    Parameters
    ----------
    phi : numpy.ndarray, SynergyMatrix or ZeroDiagonalPhi, shape (n, n)
    partition : Partition
        Of the same ``n`` players.
    n_draws : int
        Random partitions.
    seed : int or numpy.random.Generator

    Returns
    -------
    PooledPairNull
        With ``observed`` NaN (and NaN statistics) when every coalition is a singleton.
    """
    prepared = prepare_phi(phi)
    n = prepared.values.shape[0]
    part = _check_partition(partition, n)
    draws = check_positive_int(n_draws, "n_draws")
    rng = as_generator(seed)
    return _pooled_null(prepared, part, _observed_pairs(prepared, part, 2)[3], draws, rng, None)


def _pooled_null(prepared: ZeroDiagonalPhi, part: Partition, observed: float, draws: int,
                 rng: np.random.Generator, first_blocks: dict[int, list[np.ndarray]] | None) -> PooledPairNull:
    """The random partitions of :func:`pooled_pair_null` (``first_blocks``: see ``_pooled_null_values``)."""
    n = prepared.values.shape[0]
    sizes = [int(s) for s in part.sizes]
    nan = float("nan")
    if np.isnan(observed):
        return PooledPairNull(nan, nan, nan, nan, nan, draws, np.full(draws, np.nan))
    if part.n_coalitions == 1:  # the only partition with this histogram
        return PooledPairNull(observed, observed, 0.0, nan, 1.0, draws, np.empty(0))
    vals: list[np.ndarray] = []
    for b in _chunks(draws, max(1, _BLOCK_ELEMENTS // n)):
        perms = np.argsort(rng.random((b, n)), axis=1)
        vals.append(_pooled_null_values(prepared.values, sizes, perms, prepared.pair, first_blocks))
    null = np.concatenate(vals)
    mean = float(null.mean())
    sd = float(null.std(ddof=1)) if null.size > 1 else nan
    z = (observed - mean) / sd if sd > 0 else nan
    p = (1.0 + np.count_nonzero(null >= observed)) / (1.0 + null.size)
    return PooledPairNull(observed, mean, sd, z, float(p), draws, null)


@dataclass(frozen=True)
class PairNulls:
    """Both Pair tests of one partition from one set of random partitions (:func:`pair_nulls`).

    Attributes
    ----------
    table : pandas.DataFrame
        Per coalition, the columns of :func:`pair_null_test`.
    pooled : PooledPairNull
        The pooled Pair against the same random partitions, equal to :func:`pooled_pair_null`
        with the same ``seed``.
    """

    table: pd.DataFrame
    pooled: PooledPairNull


def pair_nulls(
    phi: Any,
    partition: Partition,
    *,
    n_draws: int = 1000,
    alpha: float = 0.05,
    seed: Seed = 0,
    min_size: int = 2,
) -> PairNulls:
    """Per-coalition Pair and pooled Pair against the same size-matched random partitions (§8).

    :func:`pair_null_test` and :func:`pooled_pair_null` in one pass, at the cost of the second
    alone. The ``n_draws`` random partitions are those of :func:`pooled_pair_null` (same
    ``seed``, same values). A coalition ``C`` of size ``s`` is compared with the *first* block of
    size ``s`` of every random partition: a block of a uniformly random permutation is a
    uniformly random ``s``-subset and the partitions are independent, so these are ``n_draws``
    i.i.d. draws of the null of :func:`pair_null_test` and the Monte-Carlo p-value
    ``(1 + #{null ≥ Pair(C)}) / (1 + n_draws)`` is valid as there. Only the draws differ from
    :func:`pair_null_test` (its draws of size ``s`` depend on ``(seed, s)`` alone; here they
    come from the partitions, which depend on the whole size histogram).

    Parameters
    ----------
    phi : numpy.ndarray, SynergyMatrix or ZeroDiagonalPhi, shape (n, n)
    partition : Partition
        Of the same ``n`` players.
    n_draws : int
        Random partitions (and so null draws per size).
    alpha : float in (0, 1)
        False-discovery rate for ``significant``.
    seed : int or numpy.random.Generator
    min_size : int
        Smallest coalition in the table (default 2); the pooled Pair counts every coalition
        of at least 2 members.

    Returns
    -------
    PairNulls
    """
    prepared = prepare_phi(phi)
    n = prepared.values.shape[0]
    part = _check_partition(partition, n)
    draws = check_positive_int(n_draws, "n_draws")
    a = check_probability(alpha, "alpha")
    min_size = max(2, _check_min_size(min_size))
    rng = as_generator(seed)
    ids, sizes, observed, pooled_obs = _observed_pairs(prepared, part, min_size)
    first: dict[int, list[np.ndarray]] = {}
    pooled = _pooled_null(prepared, part, pooled_obs, draws, rng, first)
    null_by_size = {s: np.concatenate(v) for s, v in first.items()}
    table = _table_from_nulls(ids, sizes, observed, null_by_size, n_players=n, alpha=a, metric="pair")
    return PairNulls(table, pooled)
