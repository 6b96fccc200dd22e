"""Exact Top Covering (docs/method.md §5): slow reference, core stability, planted answers, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import (
    blocking_rate,
    internally_stable,
    is_core_stable,
    top_cover,
    top_partners,
)
from hedonic_neurons.game.top_cover import _PartnerLists
from hedonic_neurons.partition import Partition


def reference_top_cover(phi: np.ndarray, k: int) -> Partition:
    """Literal Top Covering: recompute every choice set over R, emit the smallest sink SCC."""
    n = phi.shape[0]
    R = list(range(n))
    coalitions: list[list[int]] = []
    while R:
        idx = {p: a for a, p in enumerate(R)}
        src, dst = [], []
        for i in R:
            for j in top_partners(phi, i, R, k):
                src.append(idx[i])
                dst.append(idx[int(j)])
        g = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(R), len(R)))
        _, lab = connected_components(g, directed=True, connection="strong")
        sinks = set(lab.tolist()) - {lab[s] for s, d in zip(src, dst) if lab[s] != lab[d]}
        comps = sorted((sorted(R[a] for a in range(len(R)) if lab[a] == c) for c in sinks), key=lambda c: (len(c), c[0]))
        coalitions.append(comps[0])
        R = [p for p in R if p not in comps[0]]
    return Partition.from_coalitions(coalitions, n=n)


def random_game(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    if kind == 0:  # ties and negatives
        return rng.integers(-3, 4, size=(n, n)).astype(float)
    if kind == 1:  # continuous, asymmetric
        return rng.normal(size=(n, n))
    a = rng.normal(size=(n, n))  # symmetric
    return a + a.T


def check_invariants(p: Partition, n: int) -> None:
    assert p.n_players == n
    seen = np.concatenate(p.coalitions) if p.coalitions else np.zeros(0, dtype=int)
    assert sorted(seen.tolist()) == list(range(n))  # covering, disjoint
    assert all(c.size > 0 for c in p.coalitions)


@pytest.mark.parametrize("emit", ["smallest", "all"])
def test_matches_slow_reference(emit: str) -> None:
    rng = np.random.default_rng(10)
    for t in range(60):
        n = int(rng.integers(1, 13))
        k = int(rng.integers(1, 5))
        phi = random_game(rng, n, t % 3)
        assert top_cover(phi, k, emit=emit) == reference_top_cover(phi, k)


def test_core_stable_on_200_random_games() -> None:
    rng = np.random.default_rng(0)
    for t in range(210):
        n = int(rng.integers(1, 10))
        k = int(rng.integers(1, 5))
        phi = random_game(rng, n, t % 3)
        p = top_cover(phi, k)
        check_invariants(p, n)
        assert is_core_stable(phi, p, k), (phi, p.coalitions)
        assert internally_stable(phi, p, k)


def test_planted_blocks_recovered_exactly() -> None:
    rng = np.random.default_rng(1)
    sizes = [4, 3, 5, 2, 4, 1, 3]
    n = sum(sizes)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    perm = rng.permutation(n)
    labels = labels[perm]
    same = labels[:, None] == labels[None, :]
    phi = np.where(same, rng.uniform(0.5, 1.0, (n, n)), rng.uniform(-1.0, -0.1, (n, n)))
    for k in (max(sizes) - 1, max(sizes) + 2):
        assert top_cover(phi, k) == Partition.from_labels(labels)


def test_symmetric_k1_mutual_best_pairs() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        n = 30
        a = rng.normal(size=(n, n))
        phi = a + a.T
        np.fill_diagonal(phi, 0)
        p = top_cover(phi, 1)
        best = [top_partners(phi, i, range(n), 1) for i in range(n)]
        coal = {tuple(c.tolist()) for c in p.coalitions}
        for i in range(n):
            if best[i].size and best[int(best[i][0])].size and int(best[int(best[i][0])][0]) == i:
                assert tuple(sorted((i, int(best[i][0])))) in coal


def test_relabelling_players_relabels_partition() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        phi = rng.normal(size=(n, n))  # tie-free
        perm = rng.permutation(n)
        p = top_cover(phi, 3)
        q = top_cover(phi[np.ix_(perm, perm)], 3)
        # player a of the permuted game is player perm[a] of the original
        assert Partition.from_labels(q.labels[np.argsort(perm)]) == p


def test_blocking_rate_of_top_cover_is_zero() -> None:
    rng = np.random.default_rng(4)
    n = 60
    phi = rng.normal(size=(n, n)).astype(np.float32)
    p = top_cover(phi, 3)
    br = blocking_rate(phi, p, 3, n_samples=20_000, seed=1)
    assert br.n_blocking == 0 and br.epsilon == 0.0
    assert 0 < br.upper < 2e-4


def test_edge_cases() -> None:
    assert top_cover(np.zeros((0, 0))).n_players == 0
    assert top_cover(np.zeros((1, 1))).coalitions[0].tolist() == [0]
    assert top_cover(np.array([[0.0, 1.0], [1.0, 0.0]])).n_coalitions == 1
    assert top_cover(np.array([[0.0, 1.0], [-1.0, 0.0]])).n_coalitions == 2  # asymmetric: 1 does not want 0
    assert top_cover(-np.ones((6, 6))).n_coalitions == 6  # all phi <= 0 -> singletons
    assert top_cover(np.zeros((6, 6))).n_coalitions == 6
    phi = np.ones((5, 5))
    assert top_cover(phi, k=10).n_coalitions == 1  # k >= n


def test_deterministic_and_meta() -> None:
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(50, 50)).astype(np.float32)
    a, b = top_cover(phi, 2), top_cover(phi, 2)
    assert a == b
    assert a.meta["method"] == "top_cover" and a.meta["params"] == {"k": 2, "emit": "smallest"}
    assert "version" in a.meta and a.meta["n_rounds"] >= 1


def test_partner_lists_refill() -> None:
    """Truncated lists refilled lazily give top_i(R) for every R (fast path vs reference)."""
    rng = np.random.default_rng(6)
    n, k = 40, 3
    phi = np.round(rng.normal(size=(n, n)), 1)
    lists = _PartnerLists(phi, k, length=3, chunk_elems=100)
    alive = np.ones(n, dtype=bool)
    for _ in range(30):
        alive[rng.choice(np.flatnonzero(alive), size=1)] = False
        R = np.flatnonzero(alive)
        for i in R[:10]:
            assert lists.choice(int(i), alive).tolist() == top_partners(phi, int(i), R, k).tolist()


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="square"):
        top_cover(np.zeros((2, 3)))
    with pytest.raises(InputError, match="finite"):
        top_cover(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(InputError, match="numeric"):
        top_cover(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError, match="k"):
        top_cover(np.zeros((2, 2)), k=0)
    with pytest.raises(InputError, match="emit"):
        top_cover(np.zeros((2, 2)), emit="largest")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 8),
    k=st.integers(1, 4),
    data=st.data(),
)
def test_property_invariants_and_core(n: int, k: int, data: st.DataObject) -> None:
    vals = data.draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]), min_size=n * n, max_size=n * n))
    phi = np.asarray(vals, dtype=float).reshape(n, n)
    p = top_cover(phi, k)
    check_invariants(p, n)
    assert p == top_cover(phi, k, emit="all")
    assert is_core_stable(phi, p, k)
