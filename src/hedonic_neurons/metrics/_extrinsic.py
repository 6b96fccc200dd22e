"""Size-matched nulls of any per-coalition metric (docs/method.md §8.5): the extrinsic tests.

:func:`size_matched_null` (one callback per random coalition) and
:func:`size_matched_null_batch` (one callback per batch, given as a membership matrix) compare
an OOD drop, an alignment R², ... with uniformly random coalitions of the same size. The
conventions (p-value, BH, ``min_size``, seeds) are those of :mod:`hedonic_neurons.metrics.nulls`,
which re-exports both functions. Private module.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_generator, check_positive_int, check_probability
from ..errors import InputError
from ._sampling import _TAIL_COLUMNS, Seed, _null_table

__all__ = ["size_matched_null", "size_matched_null_batch"]


def _check_min_size(min_size: Any) -> int:
    return check_positive_int(min_size, "min_size", minimum=1)


def _observed_and_sizes(
    values_by_coalition: Any, sizes: Any, n_players: int, min_size: int, metric: str
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    if not isinstance(metric, str) or not metric or metric in ("coalition", "size", *_TAIL_COLUMNS):
        raise InputError(f"metric: expected a column name other than 'coalition', 'size' and {list(_TAIL_COLUMNS)}, "
                         f"got {metric!r}.")
    if isinstance(values_by_coalition, Mapping | pd.Series):
        keys = list(values_by_coalition.keys())
        vals = [values_by_coalition[k] for k in keys]
    else:
        vals = list(np.asarray(values_by_coalition, dtype=object).reshape(-1))
        keys = list(range(len(vals)))
    if isinstance(sizes, Mapping | pd.Series):
        missing = [k for k in keys if k not in sizes]
        if missing:
            raise InputError(f"sizes: no size for coalition(s) {missing[:5]} of values_by_coalition.")
        size_list = [sizes[k] for k in keys]
    else:
        size_list = list(np.asarray(sizes).reshape(-1))
        if len(size_list) != len(keys):
            raise InputError(f"sizes: expected {len(keys)} sizes (one per coalition of values_by_coalition), "
                             f"got {len(size_list)}.")
    try:
        obs = np.asarray(vals, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"values_by_coalition: expected numbers, got {vals[:3]!r}... ({exc}).") from exc
    sz = np.asarray(size_list)
    if sz.size and (not np.issubdtype(sz.dtype, np.integer) or sz.min() < 1 or sz.max() > n_players):
        raise InputError(f"sizes: expected integers in 1..n_players={n_players}, got {sorted(set(sz.tolist()))[:8]}.")
    if np.isinf(obs).any():
        raise InputError("values_by_coalition: expected finite values (NaN marks a missing one), got inf.")
    keep = sz >= min_size
    return [k for k, kp in zip(keys, keep) if kp], sz[keep].astype(np.int64), obs[keep]


def size_matched_null(
    values_by_coalition: Mapping[Hashable, float] | Sequence[float] | np.ndarray | pd.Series,
    sizes: Mapping[Hashable, int] | Sequence[int] | np.ndarray | pd.Series,
    null_fn: Callable[[np.ndarray], float],
    *,
    n_players: int,
    draws_per_size: int = 200,
    alpha: float = 0.05,
    seed: Seed = 0,
    metric: str = "value",
    min_size: int = 2,
) -> pd.DataFrame:
    """Any per-coalition metric against random coalitions of the same size (docs/method.md §8).

    The extrinsic counterpart of :func:`pair_null_test`: ``null_fn`` evaluates the metric (an
    OOD drop, an alignment R², ...) on a random coalition, e.g. by ablating it.

    Parameters
    ----------
    values_by_coalition : mapping or sequence, length K
        The observed metric of each coalition (NaN: not evaluated). A mapping's keys (or a
        Series' index) name the coalitions; a sequence's are ``0..K-1``.
    sizes : mapping or sequence, length K
        Each coalition's size, keyed or ordered like ``values_by_coalition``.
    null_fn : callable
        ``null_fn(members) -> float`` with ``members`` a sorted int array of shape (s,).
    n_players : int
        The players random coalitions are drawn from (``0..n_players-1``).
    draws_per_size : int
        The budget: random coalitions evaluated per distinct size (so ``null_fn`` runs
        ``draws_per_size × #sizes`` times).
    alpha : float in (0, 1)
        False-discovery rate for ``significant``.
    seed : int or numpy.random.Generator
    metric : str
        Name of the metric column of the result.
    min_size : int
        Smallest coalition tested (default 2).

    Returns
    -------
    pandas.DataFrame
        One row per coalition of at least ``min_size`` members: ``coalition, size, <metric>,
        null_mean, null_sd, z, p_value, q_value, significant``.
    """
    if not callable(null_fn):
        raise InputError(f"null_fn: expected a callable members -> float, got {type(null_fn).__name__}.")
    n = check_positive_int(n_players, "n_players")
    draws = check_positive_int(draws_per_size, "draws_per_size")
    a = check_probability(alpha, "alpha")
    ids, sz, obs = _observed_and_sizes(values_by_coalition, sizes, n, _check_min_size(min_size), metric)
    as_generator(seed)

    def evaluate(idx: np.ndarray) -> np.ndarray:
        return np.array([float(null_fn(row)) for row in idx], dtype=np.float64)

    return _null_table(ids, sz, obs, n_players=n, draws=draws, alpha=a, seed=seed, metric=metric,
                       evaluate=evaluate, batch_for=lambda s: draws)


def size_matched_null_batch(
    values_by_coalition: Mapping[Hashable, float] | Sequence[float] | np.ndarray | pd.Series,
    sizes: Mapping[Hashable, int] | Sequence[int] | np.ndarray | pd.Series,
    null_fn_batch: Callable[[np.ndarray], np.ndarray],
    *,
    n_players: int,
    draws_per_size: int = 200,
    batch_size: int = 256,
    alpha: float = 0.05,
    seed: Seed = 0,
    metric: str = "value",
    min_size: int = 2,
) -> pd.DataFrame:
    """:func:`size_matched_null` with one callback per batch of random coalitions.

    For estimators that score many coalitions at once: a first-order OOD drop is ``e @ M``
    with ``e`` the per-neuron effects, shape (n,), and ``M`` the membership matrix below.
    With the same ``seed`` and arguments the random coalitions are exactly those
    :func:`size_matched_null` draws, so the two agree whenever the callbacks do.

    Parameters
    ----------
    null_fn_batch : callable
        ``null_fn_batch(M) -> values`` with ``M`` a dense float64 0/1 array of shape
        ``(n_players, B)`` (column ``b`` is the indicator of random coalition ``b``; all
        columns of one call have the same size) and ``values`` of shape ``(B,)``.
    batch_size : int
        Largest ``B`` per call (memory: ``n_players × batch_size`` floats).

    Other parameters and the result are those of :func:`size_matched_null`.
    """
    if not callable(null_fn_batch):
        raise InputError(f"null_fn_batch: expected a callable M -> values, got {type(null_fn_batch).__name__}.")
    n = check_positive_int(n_players, "n_players")
    draws = check_positive_int(draws_per_size, "draws_per_size")
    bs = check_positive_int(batch_size, "batch_size")
    a = check_probability(alpha, "alpha")
    ids, sz, obs = _observed_and_sizes(values_by_coalition, sizes, n, _check_min_size(min_size), metric)
    as_generator(seed)

    def evaluate(idx: np.ndarray) -> np.ndarray:
        m = np.zeros((n, idx.shape[0]))
        m[idx, np.arange(idx.shape[0])[:, None]] = 1.0
        return np.asarray(null_fn_batch(m), dtype=np.float64)

    return _null_table(ids, sz, obs, n_players=n, draws=draws, alpha=a, seed=seed, metric=metric,
                       evaluate=evaluate, batch_for=lambda s: bs)
