"""PAC-Top-Cover (paper Algorithm 1, docs/method.md §5): exhaustive = exact, planted answers, seeds, reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import pac_top_cover, preference_key, top_cover, top_partners
from hedonic_neurons.game._sampling import sample_coalitions
from hedonic_neurons.game.pac import _PacState
from hedonic_neurons.partition import Partition

SMALL = {"m": 3000, "omega": 600}


def check_invariants(p: Partition, n: int) -> None:
    seen = np.concatenate(p.coalitions) if p.coalitions else np.zeros(0, dtype=int)
    assert sorted(seen.tolist()) == list(range(n))
    assert all(c.size > 0 for c in p.coalitions)


def test_exhaustive_equals_top_cover() -> None:
    rng = np.random.default_rng(0)
    for t in range(120):
        n = int(rng.integers(0, 10)) if t < 110 else 12
        k = int(rng.integers(1, 5))
        kind = t % 3
        if kind == 0:
            phi = rng.integers(-3, 4, size=(n, n)).astype(float)
        elif kind == 1:
            phi = rng.normal(size=(n, n))
        else:
            a = rng.normal(size=(n, n))
            phi = a + a.T
        emit = "smallest" if t % 2 else "all"
        assert pac_top_cover(phi, k, sampler="exhaustive", emit=emit) == top_cover(phi, k), (t, n, k)


def test_exhaustive_refuses_large_n() -> None:
    with pytest.raises(InputError, match="n <= 12"):
        pac_top_cover(np.zeros((13, 13)), sampler="exhaustive")


def _planted(rng: np.random.Generator, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    n = sum(sizes)
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    same = labels[:, None] == labels[None, :]
    phi = np.where(same, rng.uniform(0.5, 1.0, (n, n)), rng.uniform(-1.0, -0.1, (n, n)))
    return phi, labels


@pytest.mark.parametrize("sampler", ["uniform", "top", "weighted"])
def test_planted_blocks_recovered(sampler: str) -> None:
    rng = np.random.default_rng(1)
    phi, labels = _planted(rng, [4, 3, 4, 2, 4, 3])
    p = pac_top_cover(phi, k=3, m=40_000, omega=8_000, size_range=(2, 8), sampler=sampler, seed=3)
    assert p == Partition.from_labels(labels)


@pytest.mark.parametrize("sampler", ["uniform", "top", "weighted", "exhaustive"])
@pytest.mark.parametrize("emit", ["smallest", "all"])
def test_seed_determinism_and_invariants(sampler: str, emit: str) -> None:
    rng = np.random.default_rng(2)
    n = 11 if sampler == "exhaustive" else 40
    phi = rng.normal(size=(n, n)).astype(np.float32)
    a = pac_top_cover(phi, 3, sampler=sampler, emit=emit, seed=7, **SMALL)
    b = pac_top_cover(phi, 3, sampler=sampler, emit=emit, seed=np.random.default_rng(7), **SMALL)
    c = pac_top_cover(phi, 3, sampler=sampler, emit=emit, seed=7, **SMALL)
    check_invariants(a, n)
    assert a == c
    assert a == b  # an int seed and a Generator seeded alike give the same draws
    assert a.meta["method"] == "pac_top_cover"
    assert a.meta["params"]["sampler"] == sampler and a.meta["params"]["seed"] == 7
    assert a.meta["n_rounds"] >= 1


def _reference_B(state: _PacState, phi: np.ndarray, alive: np.ndarray, k: int) -> dict[int, list[int]]:
    """Python loop: T*_i = best valid sample of W containing i (ties: first to enter W)."""
    out: dict[int, list[int]] = {}
    for i in np.flatnonzero(alive).tolist():
        best = None
        for s in np.flatnonzero(state.valid):
            mem = state.mem[s][state.mem[s] >= 0].tolist()
            if i not in mem:
                continue
            key = (preference_key(phi, i, mem, k), -int(state.serial[s]))
            if best is None or key > best[0]:
                best = (key, mem)
        out[i] = [] if best is None else top_partners(phi, i, best[1], k).tolist()
    return out


@pytest.mark.parametrize("small_buffer", [False, True])
@pytest.mark.parametrize("sampler", ["uniform", "top", "weighted"])
def test_incremental_state_matches_reference(sampler: str, small_buffer: bool) -> None:
    """The vectorised/incremental best-sample bookkeeping equals a plain loop, round after round."""
    rng = np.random.default_rng(3)
    n, k = 18, 2
    phi = np.round(rng.normal(size=(n, n)), 1)  # ties
    state = _PacState(phi, k, 200, 60, (2, 5), sampler, np.random.default_rng(0))
    if small_buffer:
        state.buf_cap = 8  # force frequent rebuilds of the inverted index
    alive = np.ones(n, dtype=bool)
    for _ in range(6):
        ref = _reference_B(state, phi, alive, k)
        for i, b in ref.items():
            assert state.B[i][state.B[i] >= 0].tolist() == b, i
        # every valid sample lies inside R and W holds omega of them
        assert alive[state.mem[state.valid][state.mem[state.valid] >= 0]].all()
        assert state.valid.sum() == 60
        removed = rng.choice(np.flatnonzero(alive), size=2, replace=False)
        alive[removed] = False
        state.update(removed, alive)


def test_sampler_draws_inside_pool() -> None:
    rng = np.random.default_rng(4)
    pool = np.array([3, 5, 8, 13, 21, 34])
    S = sample_coalitions(pool, 500, (2, 10), rng)
    assert S.shape == (500, 6)
    for row in S:
        mem = row[row >= 0]
        assert 2 <= mem.size <= 6 and np.isin(mem, pool).all() and np.unique(mem).size == mem.size
        assert (np.diff(mem) > 0).all() and (row[mem.size :] == -1).all()
    big = np.arange(1000)
    S = sample_coalitions(big, 2000, (2, 10), rng)
    sizes = (S >= 0).sum(axis=1)
    assert set(sizes.tolist()) == set(range(2, 11))
    assert all(np.unique(r[r >= 0]).size == (r >= 0).sum() for r in S)


def test_edge_cases() -> None:
    assert pac_top_cover(np.zeros((0, 0)), **SMALL).n_players == 0
    assert pac_top_cover(np.zeros((1, 1)), **SMALL).n_coalitions == 1
    assert pac_top_cover(np.array([[0.0, 1.0], [1.0, 0.0]]), **SMALL).n_coalitions == 1
    assert pac_top_cover(-np.ones((8, 8)), **SMALL).n_coalitions == 8
    assert pac_top_cover(np.ones((4, 4)), k=10, **SMALL).n_coalitions == 1
    # a pool smaller than k_min: sizes are clipped to the remaining players
    assert pac_top_cover(np.ones((3, 3)), size_range=(5, 8), **SMALL).n_coalitions == 1


def test_bad_inputs() -> None:
    phi = np.zeros((4, 4))
    with pytest.raises(InputError, match="sampler"):
        pac_top_cover(phi, sampler="magic")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="size_range"):
        pac_top_cover(phi, size_range=(5, 2))
    with pytest.raises(InputError, match="size_range"):
        pac_top_cover(phi, size_range=(0, 2))
    with pytest.raises(InputError, match="omega"):
        pac_top_cover(phi, omega=0)
    with pytest.raises(InputError, match="m"):
        pac_top_cover(phi, m=-1)
    with pytest.raises(InputError, match="seed"):
        pac_top_cover(phi, seed=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="square"):
        pac_top_cover(np.zeros((3, 2)))
    with pytest.raises(InputError, match="k"):
        pac_top_cover(phi, k=0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 12), k=st.integers(1, 4), seed=st.integers(0, 2**16), data=st.data())
def test_property_invariants(n: int, k: int, seed: int, data: st.DataObject) -> None:
    vals = data.draw(st.lists(st.sampled_from([-1.0, 0.0, 0.3, 1.0]), min_size=n * n, max_size=n * n))
    phi = np.asarray(vals).reshape(n, n)
    p = pac_top_cover(phi, k, m=400, omega=100, seed=seed)
    check_invariants(p, n)
    assert p == pac_top_cover(phi, k, m=400, omega=100, seed=seed)
