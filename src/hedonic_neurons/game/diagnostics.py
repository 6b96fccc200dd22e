"""Closure diagnostics: how much of a giant coalition is the top-k game rather than the data (docs/method.md §5).

A sink strongly connected component of the top-k choice-set digraph grows with ``k``
whatever φ is: exact Top Covering on a *random* symmetric φ already puts most players in
one coalition for ``k >= 3``, and the additively separable game's Nash-stable partition
forms sizeable coalitions on it too (about a quarter of the players). So a report shows,
beside every hedonic partition,

* :func:`closure_null_share` — the same algorithm with the same ``k`` (or the same
  best-response dynamics) on a null φ with the real φ's size and value distribution
  (:func:`null_phi_like`, a seeded symmetric permutation of its off-diagonal entries), and
* :func:`k_sweep` — exact Top Covering over a range of ``k`` (coalitions, largest share,
  singletons and, given a held-out interaction matrix ψ, the pooled Pair of
  :func:`pooled_pair`).

Plain NumPy (pandas for the table); no torch.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_generator
from ..errors import InputError
from ..partition import Partition
from .ashg import _is_symmetric, nash_stable_partition
from .pac import pac_top_cover
from .preferences import check_game_phi, check_k
from .stability import _check_partition
from .top_cover import top_cover

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLOSURE_METHODS", "closure_null_share", "k_sweep", "null_phi_like", "pooled_pair"]

CLOSURE_METHODS = ("top_cover", "pac_top_cover", "nash_stable")
"""The package's partitioners that :func:`closure_null_share` reruns on a null φ (any other
method registered in :data:`hedonic_neurons.vocab.PARTITION_METHODS` is accepted too)."""

_ALGORITHMS: dict[str, Callable[..., Partition]] = {
    "top_cover": top_cover, "pac_top_cover": pac_top_cover, "nash_stable": nash_stable_partition,
}


def _algorithm(method: str) -> tuple[Callable[..., Partition], bool]:
    """``(function, top_responsive)`` of a partition method of the vocabulary."""
    from .. import vocab

    if method not in vocab.PARTITION_METHODS:
        raise InputError(f"method: expected one of {vocab.names('method')}, got {method!r}.")
    spec = vocab.PARTITION_METHODS[method]
    if method in _ALGORITHMS:
        return _ALGORITHMS[method], spec.top_responsive
    module, _, attr = spec.function.partition(":")
    return getattr(importlib.import_module(module), attr), spec.top_responsive


def null_phi_like(phi: Any, seed: int | np.random.Generator) -> np.ndarray:
    """A null valuation with ``phi``'s size and value distribution: a seeded symmetric permutation.

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        The real valuation matrix.
    seed : int or numpy.random.Generator
        Randomness of the permutation (same seed, same matrix).

    Returns
    -------
    numpy.ndarray, shape (n, n)
        Symmetric, zero diagonal, ``phi``'s dtype (``float32`` stays ``float32``, anything
        else is ``float64``). For symmetric ``phi`` its upper triangle is a uniformly random
        permutation of ``phi``'s upper triangle, so the off-diagonal entries have exactly
        the same multiset of values. For asymmetric ``phi`` the ``n(n−1)/2`` upper values
        are a uniform sample without replacement of ``phi``'s ``n(n−1)`` off-diagonal
        entries (the same distribution, not the same multiset).

    Raises
    ------
    InputError
        If ``phi`` is not a finite square matrix or ``seed`` is invalid.
    """
    arr = check_game_phi(phi)
    rng = as_generator(seed)
    n = arr.shape[0]
    rows = range(n - 1)
    if _is_symmetric(arr):
        values = np.concatenate([arr[i, i + 1 :] for i in rows]) if n > 1 else np.zeros(0, arr.dtype)
        rng.shuffle(values)
    else:
        off = np.concatenate([np.delete(arr[i], i) for i in range(n)]) if n > 1 else np.zeros(0, arr.dtype)
        values = off[rng.choice(off.size, size=n * (n - 1) // 2, replace=False)]
    out = np.zeros((n, n), dtype=arr.dtype)
    start = 0
    for i in rows:
        stop = start + n - 1 - i
        out[i, i + 1 :] = values[start:stop]
        start = stop
    out += out.T  # numpy buffers the overlapping operand: the result is exactly symmetric
    return out


def closure_null_share(
    phi: Any, method: str, k: int | None = None, seed: int | np.random.Generator = 0, **kw: Any
) -> float:
    """Largest-coalition share of the same algorithm on a null φ (docs/method.md §5.5).

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        The real valuation matrix; the null is ``null_phi_like(phi, seed)``.
    method : {"top_cover", "pac_top_cover", "nash_stable"} or another registered method
        The algorithm of the partition being diagnosed (a name of
        :data:`hedonic_neurons.vocab.PARTITION_METHODS`).
    k : int or None
        Its number of top partners (required for the top-responsive ``top_cover`` and
        ``pac_top_cover``; ignored by ``nash_stable``, whose utilities sum over every member,
        and by any method registered with ``top_responsive=False``).
    seed : int or numpy.random.Generator
        Seed of the null permutation; also the algorithm's ``seed`` (``pac_top_cover``,
        ``nash_stable``: any algorithm with a ``seed`` argument) unless given in ``kw``.
    **kw
        Further arguments of the algorithm (e.g. ``m``, ``omega``, ``size_range``,
        ``sampler`` for ``pac_top_cover``; ``max_sweeps``, ``order`` for ``nash_stable``);
        pass the values used for the real partition.

    Returns
    -------
    float
        Fraction of the ``n`` players in the largest coalition, in ``(0, 1]``.

    Raises
    ------
    InputError
        If ``method`` is unknown, a keyword is not an argument of the algorithm, ``k`` is
        missing for a top-responsive method, or ``phi``, ``k`` or ``seed`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from hedonic_neurons.game import closure_null_share
    >>> phi = np.random.default_rng(0).normal(size=(64, 64)); phi = phi + phi.T
    >>> 0 < closure_null_share(phi, "nash_stable", seed=1) <= 1
    True
    """
    fn, top_responsive = _algorithm(method)
    params = set(inspect.signature(fn).parameters)
    args: dict[str, Any] = {}
    if top_responsive:
        if k is None:
            raise InputError(f"k: {method} is top-responsive and needs its number of top partners, got None.")
        args["k"] = check_k(k)
    allowed = params - {"phi", "k"}
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise InputError(f"closure_null_share: {unknown} are not arguments of {method}; valid: {sorted(allowed)}.")
    if "seed" in params and "seed" not in kw:
        kw = {**kw, "seed": seed if isinstance(seed, (int, np.integer)) else as_generator(seed)}
    null = null_phi_like(phi, seed)
    part: Partition = fn(null, **args, **kw)
    return part.summary().largest_share


def pooled_pair(psi: Any, partition: Partition | np.ndarray) -> float:
    """Pooled Pair of a partition: Σ of ψ_ij over all within-coalition ordered pairs / their number.

    Parameters
    ----------
    psi : array_like, shape (n, n)
        Pairwise interactions ψ(i, j) (docs/method.md §8), preferably held out (computed on
        inputs the partition was not found on). Asymmetric allowed; the diagonal is ignored.
    partition : Partition or array_like of int, shape (n,)

    Returns
    -------
    float
        ``Σ_C Σ_{i≠j∈C} ψ_ij / Σ_C |C|(|C|−1)``; a giant coalition counts by its pairs.
        NaN when every coalition is a singleton (no pair).

    Raises
    ------
    InputError
        If ``psi`` is not a finite square matrix or the partition does not cover its ``n`` players.
    """
    from ..metrics.nulls import pooled_pair as _pooled
    from ..metrics.nulls import prepare_phi

    prepared = prepare_phi(psi, name="heldout_psi")
    return _pooled(prepared, _check_partition(partition, prepared.values.shape[0]))


def k_sweep(
    phi: Any, ks: Sequence[int] = (1, 2, 3, 5, 8), *, heldout_psi: Any | None = None
) -> pd.DataFrame:
    """Exact Top Covering for each ``k``: the shape of the partition as the closure grows (docs/method.md §5).

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        Valuations the partitions are found on.
    ks : sequence of int
        Values of ``k`` (each >= 1).
    heldout_psi : array_like, shape (n, n), optional
        Held-out pairwise interactions ψ; when given, adds the pooled Pair of each partition.

    Returns
    -------
    pandas.DataFrame
        One row per ``k``, columns ``k``, ``n_coalitions``, ``largest_share``,
        ``n_singletons`` and, with ``heldout_psi``, ``pooled_pair`` (:func:`pooled_pair`).

    Raises
    ------
    InputError
        If ``phi`` or ``heldout_psi`` is not a finite square matrix, their sizes differ,
        or a ``k`` is not an integer >= 1.
    """
    import pandas as pd

    arr = check_game_phi(phi)
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise InputError(f"ks: expected a non-empty sequence of integers >= 1, got {ks!r}.")
    kk = [check_k(k) for k in ks]
    psi = None
    if heldout_psi is not None:
        from ..metrics.nulls import prepare_phi

        psi = prepare_phi(heldout_psi, name="heldout_psi")  # a float32 ψ is used in place
        if psi.values.shape != arr.shape:
            raise InputError(f"heldout_psi: expected shape {arr.shape} (that of phi), got {psi.values.shape}.")
    rows = []
    for k in kk:
        part = top_cover(arr, k=k)
        summary = part.summary()
        row: dict[str, Any] = {
            "k": k,
            "n_coalitions": summary.n_coalitions,
            "largest_share": summary.largest_share,
            "n_singletons": int(summary.size_histogram.get(1, 0)),
        }
        if psi is not None:
            row["pooled_pair"] = pooled_pair(psi, part)
        rows.append(row)
    return pd.DataFrame(rows)
