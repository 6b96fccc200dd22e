"""Exact Top Covering against the literal loop of docs/method.md §5, at n = 97, 200 and 500.

The reference below is written from the method page alone and shares no code with the
package: every round it recomputes ``B_i = top_i(R)`` for every remaining player (up to
``k`` partners with the largest positive φ_ij, ties by smaller index), builds the digraph
``i -> j (j ∈ B_i)``, finds its SCCs with a plain Tarjan, and emits the sink SCCs —
the smallest one (ties by lowest member) for ``emit="smallest"``, all of them for
``emit="all"`` — then removes them. The package's loop is incremental (sorted partner
lists with pointers, sink SCCs re-examined only where a choice set changed, SciPy SCCs
above 96 players), so these sizes exercise both SCC branches and many refills.

Asserted: the same partition (as sets of coalitions) and, for ``emit="all"``, the same
number of rounds (the incremental tracker finds every sink SCC of every round). For
``emit="smallest"`` the round count equals the number of coalitions.
"""

from __future__ import annotations

import numpy as np
import pytest

from hedonic_neurons.game import top_cover
from tests.test_scc_reference import sink_components, tarjan_scc


def literal_top_cover(phi: np.ndarray, k: int, emit: str) -> tuple[set[frozenset[int]], int]:
    """The Top Covering loop of docs/method.md §5, recomputed from scratch every round."""
    n = phi.shape[0]
    remaining = list(range(n))
    coalitions: set[frozenset[int]] = set()
    rounds = 0
    while remaining:
        R = np.asarray(remaining)
        pos = {p: a for a, p in enumerate(remaining)}
        edges: list[tuple[int, int]] = []
        for i in remaining:
            others = R[R != i]
            vals = phi[i, others]
            order = np.lexsort((others, -vals))  # largest φ first, ties by smaller index
            chosen = [int(others[o]) for o in order if vals[o] > 0][:k]
            edges.extend((pos[i], pos[j]) for j in chosen)
        sinks = sink_components(tarjan_scc(len(remaining), edges), edges)
        members = sorted((sorted(remaining[a] for a in c) for c in sinks), key=lambda c: (len(c), c[0]))
        emitted = members[:1] if emit == "smallest" else members
        for c in emitted:
            coalitions.add(frozenset(c))
        gone = {p for c in emitted for p in c}
        remaining = [p for p in remaining if p not in gone]
        rounds += 1
    return coalitions, rounds


def planted_phi(rng: np.random.Generator, n: int, ties: bool) -> np.ndarray:
    """Blocks of sizes 1..12 with positive within-block synergy, noisy and weakly positive across."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(min(rng.integers(1, 13), n - sum(sizes))))
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    same = labels[:, None] == labels[None, :]
    phi = np.where(same, 1.0, -0.5) + 0.35 * rng.normal(size=(n, n))
    phi = (phi + phi.T) / 2
    if ties:
        phi = np.round(4 * phi) / 4  # many exact ties: the smaller-index rule decides
    np.fill_diagonal(phi, 0.0)
    return phi


def sparse_phi(rng: np.random.Generator, n: int, symmetric: bool) -> np.ndarray:
    """Most entries ≤ 0: about 1.2 positive entries per row, so many players have fewer than k partners."""
    phi = -np.abs(rng.normal(size=(n, n)))
    mask = rng.random((n, n)) < 1.2 / n
    phi[mask] = rng.exponential(size=int(mask.sum()))
    if symmetric:
        upper = np.triu(phi, 1)
        phi = upper + upper.T
    np.fill_diagonal(phi, 0.0)
    return phi


def _check(phi: np.ndarray, k: int, emit: str) -> None:
    expected, rounds = literal_top_cover(phi, k, emit)
    got = top_cover(phi, k=k, emit=emit)  # type: ignore[arg-type]
    assert {frozenset(c.tolist()) for c in got.coalitions} == expected
    if emit == "all":
        assert got.meta["n_rounds"] == rounds
    else:
        assert got.meta["n_rounds"] == len(expected) == rounds


@pytest.mark.parametrize("n", [97, 200, 500])
@pytest.mark.parametrize("kind", ["planted", "planted_ties", "sparse_symmetric", "sparse_asymmetric"])
def test_exact_top_cover_equals_literal_loop(n: int, kind: str) -> None:
    rng = np.random.default_rng(n + len(kind))
    if kind.startswith("planted"):
        phi = planted_phi(rng, n, ties=kind.endswith("ties"))
    else:
        phi = sparse_phi(rng, n, symmetric=kind.endswith("_symmetric"))
    for k in (1, 2, 3):
        _check(phi, k, "all")
    _check(phi, 3, "smallest" if n <= 200 else "all")


def test_float32_input_gives_the_float64_partition() -> None:
    rng = np.random.default_rng(3)
    phi = planted_phi(rng, 200, ties=True).astype(np.float32)  # quarter steps are exact in float32
    expected, _ = literal_top_cover(phi.astype(np.float64), 3, "all")
    assert {frozenset(c.tolist()) for c in top_cover(phi, k=3).coalitions} == expected


def test_planted_blocks_are_recovered_without_noise() -> None:
    """With no noise the answer is known: each block is a sink SCC (for k below the block size)."""
    rng = np.random.default_rng(0)
    n, sizes = 97, [5] * 19 + [2]
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    phi = np.where(labels[:, None] == labels[None, :], 1.0, -1.0) + 0.01 * rng.random((n, n))
    np.fill_diagonal(phi, 0.0)
    blocks = {frozenset(np.flatnonzero(labels == b).tolist()) for b in range(len(sizes))}
    assert literal_top_cover(phi, 3, "all")[0] == blocks
    assert {frozenset(c.tolist()) for c in top_cover(phi, k=3).coalitions} == blocks
