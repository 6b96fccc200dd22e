"""Baseline partitions matched to a hedonic partition (paper §4, docs/method.md §6).

All baselines return the same :class:`~hedonic_neurons.partition.Partition` type as the
game and match the hedonic partition's number of coalitions (Random also matches its
size histogram). Clustering uses scikit-learn.

Each baseline has two doors to one code path, as scikit-learn's ``k_means``/``KMeans``:
an estimator (:class:`RandomPartition`, :class:`SphericalKMeans`, :class:`Hierarchical`)
with hyper-parameters in ``__init__``, ``fit(X) -> self`` and the fitted ``partition_``,
``labels_``, ``coalitions_`` — the same interface as
:class:`~hedonic_neurons.game.TopCover` — and a function (:func:`random_partition`,
:func:`spherical_kmeans`, :func:`hierarchical`) that builds the estimator, fits it and
returns its ``partition_``.

``profiles`` is each player's activation profile over the inputs, shape
``(n_players, N)`` (for a :class:`~hedonic_neurons.records.LayerRecord`, ``record.a.T``).

Zero profiles (dead neurons) cannot be ℓ2-normalised; they are kept as the zero vector,
which is equidistant from every unit vector, so k-means puts them with the centroid of
smallest norm and Ward with whatever merge is cheapest. Asking for more clusters than
there are distinct (normalised) profiles raises :class:`~hedonic_neurons.errors.InputError`
(k-means would silently return fewer clusters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._estimator import PartitionerBase
from ._validation import as_generator, check_positive_int
from .errors import InputError
from .partition import Partition, _default_meta

__all__ = [
    "Hierarchical",
    "RandomPartition",
    "SphericalKMeans",
    "hierarchical",
    "matched_baselines",
    "random_partition",
    "spherical_kmeans",
]


def _sizes_list(sizes: Any) -> list[int]:
    if isinstance(sizes, Partition):
        return [int(s) for s in sizes.sizes]
    if isinstance(sizes, Mapping):
        out: list[int] = []
        for s, c in sorted(sizes.items(), key=lambda kv: int(kv[0]), reverse=True):
            s_i, c_i = int(s), int(c)
            if s_i < 1 or c_i < 0:
                raise InputError(f"sizes: histogram entries must be size >= 1 -> count >= 0, got {s!r}: {c!r}.")
            out.extend([s_i] * c_i)
        return out
    arr = np.asarray(sizes)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(
            f"sizes: expected a list of coalition sizes or a {{size: count}} histogram, got {sizes!r}."
        )
    if arr.size and arr.min() < 1:
        raise InputError(f"sizes: coalition sizes must be >= 1, got {arr.tolist()}.")
    return [int(s) for s in arr]


Sizes = Sequence[int] | Mapping[int, int] | np.ndarray | Partition
Seed = int | np.random.Generator


def _seed_meta(seed: Seed) -> int | str:
    return seed if not isinstance(seed, np.random.Generator) else "generator"


def _normalised(profiles: Any, n_clusters: int) -> np.ndarray:
    X = np.asarray(profiles)
    if X.ndim != 2:
        raise InputError(f"profiles: expected a 2-d (n_players, N) array, got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise InputError(f"profiles: expected real numbers, got dtype {X.dtype}.")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise InputError("profiles: expected finite values, found NaN or inf.")
    n = X.shape[0]
    if not 1 <= n_clusters <= n:
        raise InputError(f"n_clusters: expected 1 <= n_clusters <= n_players = {n}, got {n_clusters}.")
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    X = np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)
    distinct = np.unique(np.round(X, 12), axis=0).shape[0]
    if n_clusters > distinct:
        raise InputError(
            f"n_clusters: asked for {n_clusters} clusters but profiles (shape {X.shape}) have only "
            f"{distinct} distinct l2-normalised rows."
        )
    return X


def _int_seed(seed: Seed) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    as_generator(seed)  # validates
    return int(seed)


@dataclass
class _BaselineEstimator(PartitionerBase):
    """Baseline estimators: :class:`~hedonic_neurons._estimator.PartitionerBase`, the interface of
    :class:`~hedonic_neurons.game.TopCover`; ``fit(X)`` takes one row per player (shape (n_players, N))."""

    _input_name: ClassVar[str] = "X"


@dataclass
class RandomPartition(_BaselineEstimator):
    """Uniformly random partition with a given size histogram (paper §4 "Random"; docs/method.md §6).

    Parameters
    ----------
    sizes : sequence of int, mapping ``{size: count}`` or Partition
        Coalition sizes (e.g. the hedonic partition itself, or its ``sizes``) or a size
        histogram; ``n_players = Σ sizes``.
    random_state : int or numpy.random.Generator
        One random permutation of the players is cut into blocks of the given sizes.

    Notes
    -----
    ``fit(X)`` uses ``X`` only for its number of rows, which must equal ``Σ sizes``;
    ``fit(None)`` takes ``n_players`` from ``sizes``.

    Examples
    --------
    >>> from hedonic_neurons.baselines import RandomPartition
    >>> sorted(RandomPartition(sizes=[3, 2, 1], random_state=0).fit(None).partition_.sizes.tolist())
    [1, 2, 3]
    """

    sizes: Sizes = ()
    random_state: Seed = 0

    def _fit_partition(self, X: Any) -> Partition:
        lst = _sizes_list(self.sizes)
        n = int(sum(lst))
        if X is not None:
            shape = np.shape(X)
            if len(shape) < 1 or shape[0] != n:
                raise InputError(f"X: expected {n} rows (one per player, n = sum of sizes), got shape {shape}.")
        rng = as_generator(self.random_state)
        perm = rng.permutation(n)
        labels = np.empty(n, dtype=np.int64)
        labels[perm] = np.repeat(np.arange(len(lst)), lst)
        meta = _default_meta("random", n_coalitions=len(lst), seed=_seed_meta(self.random_state))
        return Partition.from_labels(labels, meta)


@dataclass
class SphericalKMeans(_BaselineEstimator):
    """k-means on ℓ2-normalised activation profiles (paper §4 "K-means (Spherical)"; docs/method.md §6).

    Parameters
    ----------
    n_clusters : int
        Number of coalitions (matched to the hedonic partition's).
    n_init : int
        k-means++ restarts of :class:`sklearn.cluster.KMeans`.
    random_state : int or numpy.random.Generator
        ``random_state`` of :class:`sklearn.cluster.KMeans`; a Generator gives one draw.

    Notes
    -----
    ``fit(X)`` takes the activation profiles, shape (n_players, N). Euclidean k-means on
    unit vectors (centroids are not re-projected onto the sphere), the usual way
    "spherical k-means" is run with scikit-learn. Zero rows stay zero.
    """

    n_clusters: int = 8
    n_init: int = 4
    random_state: Seed = 0

    def _fit_partition(self, X: Any) -> Partition:
        from sklearn.cluster import KMeans

        k = check_positive_int(self.n_clusters, "n_clusters")
        n_init = check_positive_int(self.n_init, "n_init")
        Xn = _normalised(X, k)
        rs = _int_seed(self.random_state)
        km = KMeans(n_clusters=k, n_init=n_init, random_state=rs).fit(Xn)
        meta = _default_meta("kmeans", n_clusters=k, seed=_seed_meta(self.random_state))
        return Partition.from_labels(km.labels_, meta)


@dataclass
class Hierarchical(_BaselineEstimator):
    """Ward agglomerative clustering of ℓ2-normalised profiles, cut at ``n_clusters`` (docs/method.md §6).

    Parameters
    ----------
    n_clusters : int
        Number of coalitions (matched to the hedonic partition's).

    Notes
    -----
    ``fit(X)`` takes the activation profiles, shape (n_players, N). Euclidean distance
    between unit vectors is ``sqrt(2 - 2 cos)``, a monotone function of the cosine
    distance, so this is "Ward + cosine". Deterministic. Uses
    :class:`sklearn.cluster.AgglomerativeClustering` (memory ``O(n²)``).
    """

    n_clusters: int = 8

    def _fit_partition(self, X: Any) -> Partition:
        from sklearn.cluster import AgglomerativeClustering

        k = check_positive_int(self.n_clusters, "n_clusters")
        Xn = _normalised(X, k)
        if Xn.shape[0] == 1:
            labels = np.zeros(1, dtype=np.int64)
        else:
            labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(Xn).labels_
        return Partition.from_labels(labels, _default_meta("hierarchical", n_clusters=k))


def random_partition(sizes: Sizes, seed: Seed = 0) -> Partition:
    """Uniformly random partition with a given size histogram (paper §4 "Random").

    The function door of :class:`RandomPartition`.

    Parameters
    ----------
    sizes : sequence of int, mapping ``{size: count}`` or Partition
        Coalition sizes (e.g. ``reference.sizes``) or a size histogram; ``n = Σ sizes``.
    seed : int or numpy.random.Generator
        One random permutation of the players is cut into blocks of the given sizes.

    Returns
    -------
    Partition
        ``meta["method"] = "random"``.
    """
    return RandomPartition(sizes=sizes, random_state=seed).fit(None)._fitted()


def spherical_kmeans(profiles: Any, n_clusters: int, seed: Seed = 0) -> Partition:
    """k-means on ℓ2-normalised activation profiles (paper §4 "K-means (Spherical)").

    The function door of :class:`SphericalKMeans` (``n_init=4``).

    Parameters
    ----------
    profiles : array_like, shape (n_players, N)
    n_clusters : int
    seed : int or numpy.random.Generator
        ``random_state`` of :class:`sklearn.cluster.KMeans` (k-means++, ``n_init=4``).

    Returns
    -------
    Partition
        ``meta["method"] = "kmeans"`` (the name in :data:`hedonic_neurons.vocab.BASELINES`).
    """
    return SphericalKMeans(n_clusters=n_clusters, random_state=seed).fit(profiles)._fitted()


def hierarchical(profiles: Any, n_clusters: int) -> Partition:
    """Ward agglomerative clustering of ℓ2-normalised profiles, cut at ``n_clusters`` (paper §4).

    The function door of :class:`Hierarchical`: "Ward + cosine" (docs/method.md §6).

    Parameters
    ----------
    profiles : array_like, shape (n_players, N)
    n_clusters : int

    Returns
    -------
    Partition
        ``meta["method"] = "hierarchical"``.
    """
    return Hierarchical(n_clusters=n_clusters).fit(profiles)._fitted()


def matched_baselines(reference: Partition, profiles: Any, seed: int | np.random.Generator = 0) -> dict[str, Partition]:
    """Random, spherical k-means and hierarchical partitions matched to ``reference`` (docs/method.md §6).

    Parameters
    ----------
    reference : Partition
        The hedonic partition; its number of coalitions (and, for Random, its sizes) is matched.
    profiles : array_like, shape (n_players, N)
    seed : int or numpy.random.Generator
        Seeds Random and k-means (an int seed is used for both).

    Returns
    -------
    dict
        ``{"random": ..., "kmeans": ..., "hierarchical": ...}``.
    """
    if not isinstance(reference, Partition):
        raise InputError(f"reference: expected a Partition, got {type(reference).__name__}.")
    X = np.asarray(profiles)
    if X.ndim != 2 or X.shape[0] != reference.n_players:
        raise InputError(
            f"profiles: expected shape ({reference.n_players}, N) (one row per player of reference), "
            f"got {X.shape}."
        )
    rng = as_generator(seed)
    k = reference.n_coalitions
    return {
        "random": random_partition(reference.sizes, rng),
        "kmeans": spherical_kmeans(X, k, rng),
        "hierarchical": hierarchical(X, k),
    }
