"""The SCC routine of the Top Covering engine against SciPy and a plain recursive Tarjan.

``hedonic_neurons.game._engine.strong_components`` has two branches: a pure-Python
Tarjan for graphs of at most ``SMALL_GRAPH`` (96) nodes and
``scipy.sparse.csgraph.connected_components(connection="strong")`` above. The loop of
docs/method.md §5 runs the SciPy branch on the large forward-closed subgraphs (at
n = 14336, the first round) and the Tarjan branch on the small ones, so both are checked
here on random digraphs on both sides of the switch-over, and each branch is also forced
on the same graph.

What the engine relies on (``_SinkTracker.discover``): ``labels`` is a partition of the
nodes into strongly connected components numbered ``0..n_components-1``; sink components
are then read off the cross edges. The numbering itself is not relied on, so the tests
compare the components as sets, check the numbering is dense, and compare the set of sink
components.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from hedonic_neurons.game import _engine
from hedonic_neurons.game._engine import strong_components


@contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def tarjan_scc(n: int, edges: list[tuple[int, int]]) -> list[frozenset[int]]:
    """Tarjan's algorithm, recursive, as in the textbook (components in reverse topological order)."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    out: list[frozenset[int]] = []

    def visit(v: int) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(frozenset(comp))

    with _recursion_limit(4 * n + 1000):
        for v in range(n):
            if v not in index:
                visit(v)
    return out


def sink_components(components: list[frozenset[int]], edges: list[tuple[int, int]]) -> set[frozenset[int]]:
    """Components with no edge leaving them."""
    comp_of = {v: c for c in components for v in c}
    left = {comp_of[a] for a, b in edges if comp_of[a] != comp_of[b]}
    return set(components) - left


def as_components(n_comp: int, labels: np.ndarray) -> list[frozenset[int]]:
    labels = np.asarray(labels)
    assert labels.shape == (labels.size,)
    assert sorted(set(labels.tolist())) == list(range(n_comp)), "labels must be exactly 0..n_components-1"
    return [frozenset(np.flatnonzero(labels == c).tolist()) for c in range(n_comp)]


def random_digraph(rng: np.random.Generator, n: int, k: int, self_loops: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every node gets 0..k distinct out-neighbours (the shape of a choice-set digraph)."""
    src: list[int] = []
    dst: list[int] = []
    for v in range(n):
        deg = int(rng.integers(0, k + 1))
        pool = np.arange(n) if self_loops else np.delete(np.arange(n), v)
        if pool.size == 0:
            continue
        for w in rng.choice(pool, size=min(deg, pool.size), replace=False).tolist():
            src.append(v)
            dst.append(int(w))
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def local_digraph(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-neighbours mostly among nearby indices: many mid-sized SCCs and long paths."""
    src, dst = [], []
    for v in range(n):
        for _ in range(int(rng.integers(1, k + 1))):
            w = int((v + rng.integers(-3, 6)) % n)
            if w != v:
                src.append(v)
                dst.append(w)
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def check_against_references(n: int, src: np.ndarray, dst: np.ndarray) -> None:
    edges = list(zip(src.tolist(), dst.tolist()))
    expected = tarjan_scc(n, edges)
    n_comp, labels = strong_components(n, src, dst)
    got = as_components(n_comp, labels)
    assert set(got) == set(expected) and len(got) == len(expected)
    graph = sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    s_comp, s_lab = connected_components(graph, directed=True, connection="strong")
    assert set(as_components(int(s_comp), s_lab)) == set(expected)
    assert sink_components(got, edges) == sink_components(expected, edges)
    assert sink_components(got, edges), "every finite digraph has a sink component"


@pytest.mark.parametrize("n", [1, 2, 10, 95, 96, 97, 150, 300])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_random_choice_digraphs(n: int, k: int) -> None:
    rng = np.random.default_rng(1000 * n + k)
    for rep in range(3):
        check_against_references(n, *random_digraph(rng, n, k, self_loops=rep == 2))


@pytest.mark.parametrize("n", [10, 96, 97, 300])
def test_local_digraphs_with_mid_sized_components(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(3):
        check_against_references(n, *local_digraph(rng, n, 3))


@pytest.mark.parametrize("n", [96, 97, 300])
def test_one_cycle_and_one_path(n: int) -> None:
    v = np.arange(n, dtype=np.int64)
    check_against_references(n, v, (v + 1) % n)  # one SCC of size n
    check_against_references(n, v[:-1], v[1:])  # n singletons, one sink (the last node)
    check_against_references(n, v[1:], v[:-1])  # the same path reversed: deep DFS from node n-1


def test_empty_and_edgeless_graphs() -> None:
    n_comp, labels = strong_components(0, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert n_comp == 0 and labels.size == 0
    for n in (5, 200):
        check_against_references(n, np.zeros(0, np.int64), np.zeros(0, np.int64))


@pytest.mark.parametrize("n", [10, 96, 97, 300])
def test_both_branches_agree_on_the_same_graph(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the pure-Python branch and the SciPy branch on one graph each side of 96."""
    rng = np.random.default_rng(7 + n)
    src, dst = random_digraph(rng, n, 3, self_loops=False)
    edges = list(zip(src.tolist(), dst.tolist()))
    expected = set(tarjan_scc(n, edges))
    monkeypatch.setattr(_engine, "SMALL_GRAPH", n)  # n <= SMALL_GRAPH: Tarjan branch
    tarjan_branch = set(as_components(*strong_components(n, src, dst)))
    monkeypatch.setattr(_engine, "SMALL_GRAPH", n - 1)  # n > SMALL_GRAPH: SciPy branch
    scipy_branch = set(as_components(*strong_components(n, src, dst)))
    assert tarjan_branch == scipy_branch == expected


def test_switch_over_is_where_the_docstring_says() -> None:
    assert _engine.SMALL_GRAPH == 96
