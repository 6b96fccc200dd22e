"""Matched baselines (docs/method.md §6): planted directions, size histograms, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hedonic_neurons.baselines import (
    hierarchical,
    matched_baselines,
    random_partition,
    spherical_kmeans,
)
from hedonic_neurons.errors import InputError
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
