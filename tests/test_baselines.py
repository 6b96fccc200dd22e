"""Matched baselines (docs/method.md §6): planted directions, size histograms, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hedonic_neurons.baselines import (
    Hierarchical,
    RandomPartition,
    SphericalKMeans,
    hierarchical,
    matched_baselines,
    random_partition,
    spherical_kmeans,
)
from hedonic_neurons.errors import InputError
from hedonic_neurons.game import PACTopCover, TopCover
from hedonic_neurons.partition import Partition


def planted_profiles(rng: np.random.Generator, n_groups: int = 4, per: int = 6, dim: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Rows point in one of ``n_groups`` directions with random positive scales (so only the
    direction, which ℓ2 normalisation keeps, identifies the group)."""
    dirs = rng.normal(size=(n_groups, dim))
    labels = rng.permutation(np.repeat(np.arange(n_groups), per))
    scales = rng.uniform(0.1, 50.0, size=(labels.size, 1))
    X = scales * (dirs[labels] + 0.05 * rng.normal(size=(labels.size, dim)))
    return X, labels


def test_random_partition_histogram_and_seed() -> None:
    sizes = [5, 3, 3, 1, 1]
    a = random_partition(sizes, seed=1)
    assert sorted(a.sizes.tolist()) == sorted(sizes)
    assert a == random_partition(sizes, seed=1)
    assert a != random_partition(sizes, seed=2)
    b = random_partition({5: 1, 3: 2, 1: 2}, seed=1)
    assert sorted(b.sizes.tolist()) == sorted(sizes) and b.n_players == 13
    assert a.meta["method"] == "random"
    assert random_partition([], seed=0).n_players == 0


def test_random_partition_is_uniform() -> None:
    # P(players 0 and 1 together) for sizes [2, 2] is 1/3
    together = sum(
        random_partition([2, 2], seed=s).labels[0] == random_partition([2, 2], seed=s).labels[1] for s in range(600)
    )
    assert 150 < together < 250


@pytest.mark.parametrize("method", ["kmeans", "hierarchical"])
def test_recovers_planted_directions(method: str) -> None:
    rng = np.random.default_rng(0)
    X, labels = planted_profiles(rng)
    p = spherical_kmeans(X, 4, seed=0) if method == "kmeans" else hierarchical(X, 4)
    assert p == Partition.from_labels(labels)


def test_kmeans_seed_determinism() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 8))
    assert spherical_kmeans(X, 5, seed=3) == spherical_kmeans(X, 5, seed=3)
    assert spherical_kmeans(X, 5, seed=3).n_coalitions == 5
    assert hierarchical(X, 5) == hierarchical(X, 5)


def test_zero_rows_and_too_many_clusters() -> None:
    X = np.zeros((6, 3))
    X[:3, 0] = [1.0, 2.0, 3.0]
    X[3:5, 1] = 1.0  # rows 5 is a zero (dead) profile
    p = spherical_kmeans(X, 3, seed=0)
    assert p.n_coalitions == 3 and p.labels[5] != p.labels[0] and p.labels[0] == p.labels[2]
    assert hierarchical(X, 3).n_coalitions == 3
    with pytest.raises(InputError, match="3 distinct"):
        spherical_kmeans(X, 4, seed=0)
    with pytest.raises(InputError, match="n_clusters"):
        hierarchical(X, 7)
    with pytest.raises(InputError, match="n_clusters"):
        spherical_kmeans(X, 0, seed=0)
    with pytest.raises(InputError, match="finite"):
        hierarchical(np.full((3, 2), np.nan), 1)
    with pytest.raises(InputError, match="2-d"):
        hierarchical(np.zeros(5), 1)


def test_matched_baselines() -> None:
    rng = np.random.default_rng(2)
    X, labels = planted_profiles(rng, n_groups=3, per=5)
    ref = Partition.from_coalitions([[0, 1, 2, 3, 4, 5, 6], [7, 8], [9, 10, 11], [12], [13, 14]])
    out = matched_baselines(ref, X, seed=0)
    assert set(out) == {"random", "kmeans", "hierarchical"}
    assert all(p.n_coalitions == ref.n_coalitions and p.n_players == 15 for p in out.values())
    assert sorted(out["random"].sizes.tolist()) == sorted(ref.sizes.tolist())
    again = matched_baselines(ref, X, seed=0)
    assert all(again[key] == out[key] for key in out)
    with pytest.raises(InputError, match=r"profiles: expected shape \(15, N\)"):
        matched_baselines(ref, X[:10], seed=0)
    with pytest.raises(InputError, match="reference"):
        matched_baselines(labels, X, seed=0)  # type: ignore[arg-type]


def test_bad_sizes() -> None:
    with pytest.raises(InputError, match="sizes"):
        random_partition([3, 0], seed=0)
    with pytest.raises(InputError, match="sizes"):
        random_partition([[1, 2]], seed=0)  # type: ignore[list-item]
    with pytest.raises(InputError, match="seed"):
        random_partition([1, 2], seed=None)  # type: ignore[arg-type]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)


def test_functions_and_estimators_agree() -> None:
    """One code path, two doors: the function returns the estimator's partition_, meta included."""
    rng = np.random.default_rng(4)
    X, _ = planted_profiles(rng, n_groups=5, per=7)
    ref = Partition.from_coalitions([list(range(0, 20)), list(range(20, 30)), [30, 31], [32], [33, 34]])
    for seed in (0, 5):
        est = RandomPartition(sizes=ref, random_state=seed).fit(X)
        assert est.partition_ == random_partition(ref.sizes, seed=seed)
        assert est.partition_.meta["params"] == random_partition(ref.sizes, seed=seed).meta["params"]
        km = SphericalKMeans(n_clusters=5, random_state=seed).fit(X)
        assert km.partition_ == spherical_kmeans(X, 5, seed=seed)
        assert km.partition_.meta["params"] == spherical_kmeans(X, 5, seed=seed).meta["params"]
    assert Hierarchical(n_clusters=5).fit(X).partition_ == hierarchical(X, 5)
    # a Generator seed gives the same draw through either door
    a = SphericalKMeans(n_clusters=5, random_state=np.random.default_rng(9)).fit(X).partition_
    assert a == spherical_kmeans(X, 5, seed=np.random.default_rng(9))
    assert a.meta["params"]["seed"] == "generator"


def test_estimators_against_plain_scikit_learn() -> None:
    """The slow obvious reference: normalise rows by hand and call scikit-learn directly."""
    from sklearn.cluster import AgglomerativeClustering, KMeans

    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 6)) * rng.uniform(0.1, 10, size=(40, 1))
    U = _unit_rows(X)
    km = KMeans(n_clusters=6, n_init=4, random_state=3).fit(U).labels_
    assert SphericalKMeans(n_clusters=6, random_state=3).fit(X).partition_ == Partition.from_labels(km)
    ward = AgglomerativeClustering(n_clusters=6, linkage="ward").fit(U).labels_
    assert Hierarchical(n_clusters=6).fit(X).partition_ == Partition.from_labels(ward)
    # Random: one permutation cut into blocks of the given sizes, in the given order
    perm = np.random.default_rng(11).permutation(10)
    expected = Partition.from_coalitions([perm[:4].tolist(), perm[4:7].tolist(), perm[7:9].tolist(), perm[9:].tolist()])
    assert RandomPartition(sizes=[4, 3, 2, 1], random_state=11).fit(None).partition_ == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomPartition(sizes=[3, 3, 2], random_state=0),
        lambda: SphericalKMeans(n_clusters=3, random_state=0),
        lambda: Hierarchical(n_clusters=3),
        lambda: TopCover(k=2),
        lambda: PACTopCover(k=2, m=500, omega=100, random_state=0),
    ],
)
def test_one_partitioner_interface(make) -> None:
    """Baselines and hedonic partitioners share fit -> self, labels_, coalitions_, partition_, params."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(8, 8))
    X = (X + X.T) / 2  # a valid phi for the hedonic methods and a valid profile matrix for the baselines
    est = make()
    with pytest.raises(InputError, match="call fit"):
        _ = est.labels_
    assert est.fit(X) is est
    p = est.partition_
    assert isinstance(p, Partition) and p.n_players == 8
    assert est.labels_.tolist() == p.labels.tolist()
    assert [c.tolist() for c in est.coalitions_] == [c.tolist() for c in p.coalitions]
    assert est.fit_predict(X).tolist() == p.labels.tolist()
    params = est.get_params()
    assert "partition_" not in params and params
    clone = type(est)(**params)
    assert clone.fit(X).partition_ == p  # parameters alone determine the result
    with pytest.raises(InputError, match="unknown parameter 'bogus'"):
        est.set_params(bogus=1)


def test_set_params_changes_the_fit() -> None:
    rng = np.random.default_rng(7)
    X, _ = planted_profiles(rng, n_groups=4, per=5)
    est = Hierarchical(n_clusters=2)
    assert est.fit(X).partition_.n_coalitions == 2
    assert est.set_params(n_clusters=4) is est
    assert est.get_params() == {"n_clusters": 4}
    assert est.fit(X).partition_.n_coalitions == 4
    km = SphericalKMeans(n_clusters=4, n_init=1, random_state=2)
    assert km.get_params() == {"n_clusters": 4, "n_init": 1, "random_state": 2}


def test_estimator_errors_name_the_argument() -> None:
    X = np.random.default_rng(8).normal(size=(6, 3))
    with pytest.raises(InputError, match=r"X: expected 6 rows"):
        RandomPartition(sizes=[3, 3]).fit(X[:5])
    with pytest.raises(InputError, match="n_init"):
        SphericalKMeans(n_clusters=2, n_init=0).fit(X)
    with pytest.raises(InputError, match="n_clusters"):
        Hierarchical(n_clusters=0).fit(X)
    with pytest.raises(InputError, match="sizes"):
        RandomPartition(sizes=[3, -1]).fit(None)
