"""The Partition result type: invariants, canonical form, summary, JSON round trip, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.partition import Partition


def test_from_coalitions_and_views() -> None:
    p = Partition.from_coalitions([[4, 1], [0], [2, 3, 5]], meta={"method": "x"})
    assert p.n_players == 6 and p.n_coalitions == 3 and len(p) == 3
    # canonical: largest first, ties by smallest member, members sorted
    assert [c.tolist() for c in p.coalitions] == [[2, 3, 5], [1, 4], [0]]
    assert p.sizes.tolist() == [3, 2, 1]
    assert p.labels.tolist() == [2, 1, 0, 0, 1, 0]
    with pytest.raises(ValueError):
        p.labels[0] = 1  # read-only
    M = p.membership().toarray()
    assert M.shape == (3, 6) and (M.sum(axis=0) == 1).all()
    assert M[0].nonzero()[0].tolist() == [2, 3, 5]


def test_equality_is_label_invariant() -> None:
    a = Partition.from_labels([7, 7, 3, 9])
    b = Partition.from_coalitions([[3], [0, 1], [2]])
    assert a == b and hash(a) == hash(b)
    assert a != Partition.from_labels([0, 1, 1, 2])


def test_summary_and_degenerate() -> None:
    giant = Partition.from_labels([0] * 8 + [1, 2])
    s = giant.summary()
    assert s.n_players == 10 and s.n_coalitions == 3
    assert s.size_histogram == {1: 2, 8: 1}
    assert s.largest_share == 0.8 and s.singleton_share == 0.2 and s.degenerate == "giant"
    assert Partition.from_labels(np.arange(20)).summary().degenerate == "singletons"
    assert Partition.from_labels([0, 0, 1, 1, 2, 2]).summary().degenerate is None
    assert "WARNING" in str(s)
    assert Partition.from_labels(np.zeros(0, dtype=int)).summary().n_players == 0


def test_json_round_trip(tmp_path) -> None:
    p = Partition.from_coalitions([[0, 2], [1], [3, 4, 5]], meta={"method": "top_cover", "params": {"k": 3}})
    text = p.to_json()
    q = Partition.from_json(text)
    assert q == p and q.meta == p.meta
    path = tmp_path / "sub" / "p.json"
    p.to_json(path)
    r = Partition.from_json(path)
    assert r == p and r.meta["params"] == {"k": 3}
    data = json.loads(path.read_text())
    assert data["format"] == "hedonic-neurons/partition@1" and data["n_players"] == 6
    e = Partition.from_labels(np.zeros(0, dtype=int))
    assert Partition.from_json(e.to_json()) == e
    # numpy values in meta serialise
    m = p.with_meta(eps=np.float32(0.5), arr=np.arange(2))
    assert Partition.from_json(m.to_json()).meta["arr"] == [0, 1]


@pytest.mark.parametrize(
    ("coalitions", "n", "match"),
    [
        ([[0, 1], [1, 2]], 3, "more than once"),
        ([[0, 1], []], 2, "empty"),
        ([[0, 3]], 3, "outside"),
        ([[0, -1]], 2, "outside"),
        ([[0], [2]], 3, "not covered"),
        ([[0, 0]], 1, "more than once"),
    ],
)
def test_bad_coalitions(coalitions: list[list[int]], n: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Partition.from_coalitions(coalitions, n=n)


def test_bad_labels(tmp_path) -> None:
    with pytest.raises(InputError, match="1-d"):
        Partition.from_labels(np.zeros((2, 2), dtype=int))
    with pytest.raises(InputError, match="integer"):
        Partition.from_labels(np.array([0.5, 1.0]))
    with pytest.raises(InputError, match="every value"):
        Partition(np.array([0, 2]))
    with pytest.raises(InputError, match=">= 0"):
        Partition(np.array([0, -1]))
    with pytest.raises(ArtifactError, match="not found"):
        Partition.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArtifactError, match="malformed"):
        Partition.from_json(bad)
    with pytest.raises(ArtifactError, match="coalitions"):
        Partition.from_json('{"n_players": 2}')
    with pytest.raises(InputError, match="not covered"):
        Partition.from_json('{"n_players": 3, "coalitions": [[0, 1]]}')
