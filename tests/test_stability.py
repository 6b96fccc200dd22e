"""Stability checks (docs/method.md §5 (a)–(c)): vectorised vs plain loops, hand cases, bounds, errors."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy import stats

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import (
    BlockingRate,
    blocking_rate,
    find_blocking_coalition,
    internally_stable,
    internally_unstable_coalitions,
    is_core_stable,
    preference_key,
    top_cover,
)
from hedonic_neurons.game._sampling import sample_coalitions
from hedonic_neurons.partition import Partition
from tests.helpers import assert_close


def blocks(phi: np.ndarray, part: Partition, S: list[int], k: int) -> bool:
    lab = part.labels
    return all(
        preference_key(phi, i, S, k) > preference_key(phi, i, np.flatnonzero(lab == lab[i]), k) for i in S
    )


def reference_blocker(phi: np.ndarray, part: Partition, k: int) -> list[int] | None:
    n = phi.shape[0]
    for s in range(1, n + 1):
        for S in itertools.combinations(range(n), s):
            if blocks(phi, part, list(S), k):
                return list(S)
    return None


def test_find_blocking_coalition_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(60):
        n = int(rng.integers(1, 7))
        k = int(rng.integers(1, 4))
        phi = rng.integers(-2, 3, size=(n, n)).astype(float)
        part = Partition.from_labels(rng.integers(0, 3, size=n))
        got = find_blocking_coalition(phi, part, k)
        ref = reference_blocker(phi, part, k)
        assert (got is None) == (ref is None)
        if ref is not None:
            found += 1
            assert got.tolist() == ref
            assert not is_core_stable(phi, part, k)
    assert found > 10  # the check is exercised on both outcomes


def test_blocking_rate_counts_match_plain_loop() -> None:
    rng = np.random.default_rng(1)
    n, k = 12, 2
    phi = np.round(rng.normal(size=(n, n)), 1)
    part = Partition.from_labels(rng.integers(0, 4, size=n))
    br = blocking_rate(phi, part, k, n_samples=400, size_range=(1, 4), seed=5)
    S = sample_coalitions(np.arange(n), 400, (1, 4), np.random.default_rng(5))
    expected = sum(blocks(phi, part, row[row >= 0].tolist(), k) for row in S)
    assert br.n_blocking == expected
    assert br.n_samples == 400
    assert br.epsilon == expected / 400
    assert expected > 0


def test_clopper_pearson_bound() -> None:
    rng = np.random.default_rng(2)
    n = 10
    phi = np.abs(rng.normal(size=(n, n)))
    singles = Partition.from_labels(np.arange(n))  # every pair of positive players blocks
    br = blocking_rate(phi, singles, 3, n_samples=1000, seed=0)
    assert br.n_blocking == 1000 and br.epsilon == 1.0 and br.upper == 1.0
    good = top_cover(phi, 3)
    br = blocking_rate(phi, good, 3, n_samples=1000, seed=0)
    assert br.n_blocking == 0
    assert_close(br.upper, 1 - 0.05 ** (1 / 1000), rtol=1e-9, atol=0)
    x, N = 7, 500
    part = Partition.from_labels(rng.integers(0, 3, size=n))
    br = blocking_rate(phi, part, 1, n_samples=N, seed=3)
    x = br.n_blocking
    if x < N:
        assert_close(br.upper, stats.beta.ppf(0.95, x + 1, N - x), rtol=1e-12, atol=0)
    assert isinstance(br, BlockingRate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        br.epsilon = 0.5  # type: ignore[misc]


def test_singletons_block_irrational_assignment() -> None:
    phi = -np.ones((3, 3))
    together = Partition.from_labels([0, 0, 0])
    assert find_blocking_coalition(phi, together, 3).tolist() == [0]
    assert is_core_stable(phi, Partition.from_labels([0, 1, 2]), 3)


def test_internal_stability_hand_case() -> None:
    # 0<->1 and 2<->3 like each other; {0,1,2,3} is not strongly connected
    phi = np.zeros((4, 4))
    phi[0, 1] = phi[1, 0] = phi[2, 3] = phi[3, 2] = 1.0
    merged = Partition.from_labels([0, 0, 0, 0])
    assert not internally_stable(phi, merged, 3)
    assert internally_unstable_coalitions(phi, merged, 3) == [0]
    assert internally_stable(phi, Partition.from_labels([0, 0, 1, 1]), 3)
    assert not is_core_stable(phi, merged, 3)


def test_accepts_label_vectors_and_checks_sizes() -> None:
    phi = np.ones((4, 4))
    assert is_core_stable(phi, np.zeros(4, dtype=int), 3)
    with pytest.raises(InputError, match="covers 3 players"):
        blocking_rate(phi, Partition.from_labels([0, 0, 1]))
    with pytest.raises(InputError, match="n <= 14"):
        is_core_stable(np.zeros((15, 15)), Partition.from_labels(np.arange(15)))
    with pytest.raises(InputError, match="n_samples"):
        blocking_rate(phi, np.zeros(4, dtype=int), n_samples=0)
    with pytest.raises(InputError, match="size_range"):
        blocking_rate(phi, np.zeros(4, dtype=int), size_range=(3, 1))
    with pytest.raises(InputError, match=r"partition: expected .* shape \(4,\)"):
        blocking_rate(phi, np.zeros((2, 2), dtype=int))


def test_empty_game() -> None:
    br = blocking_rate(np.zeros((0, 0)), Partition.from_labels(np.zeros(0, dtype=int)))
    assert br == BlockingRate(0.0, 1.0, 0, 0)
    assert is_core_stable(np.zeros((0, 0)), Partition.from_labels(np.zeros(0, dtype=int)))
