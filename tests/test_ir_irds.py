"""The ir_datasets adapter: refused without network permission; correct pairs from a stand-in module."""

from __future__ import annotations

import sys
import types
from collections import namedtuple

import pytest

from hedonic_neurons import InputError
from hedonic_neurons.ir import pairs_from_ir_datasets

Q = namedtuple("Q", "query_id text")
D = namedtuple("D", "doc_id text")
R = namedtuple("R", "query_id doc_id relevance iteration")
S = namedtuple("S", "query_id doc_id score")


class _Store:
    def __init__(self, docs: list[D]) -> None:
        self.docs = {d.doc_id: d for d in docs}

    def get_many(self, ids: list[str]) -> dict[str, D]:
        return {i: self.docs[i] for i in ids if i in self.docs}


class _Dataset:
    def __init__(self, scored: bool) -> None:
        self.scored = scored

    def has_queries(self) -> bool:
        return True

    def has_qrels(self) -> bool:
        return True

    def has_docs(self) -> bool:
        return True

    def has_scoreddocs(self) -> bool:
        return self.scored

    def queries_iter(self):
        return iter([Q("1", "alpha beta"), Q("2", "gamma")])

    def qrels_iter(self):
        return iter([R("1", "d2", 3, "0"), R("2", "d1", 1, "0"), R("2", "d3", 0, "0")])

    def scoreddocs_iter(self):
        return iter([S("1", "d1", 5.0), S("1", "d2", 9.0), S("1", "d3", 1.0), S("2", "d3", 2.0), S("2", "d1", 4.0)])

    def docs_store(self) -> _Store:
        return _Store([D("d1", "one"), D("d2", "two"), D("d3", "three")])


@pytest.fixture()
def fake_irds(monkeypatch):
    mod = types.ModuleType("ir_datasets")
    mod.load = lambda name: _Dataset(scored=name.endswith("scored"))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ir_datasets", mod)
    return mod


def test_refused_without_network_permission() -> None:
    with pytest.raises(InputError, match="allow_network"):
        pairs_from_ir_datasets("msmarco-passage/trec-dl-2019/judged")


def test_pairs_from_scored_docs(fake_irds) -> None:
    pairs = pairs_from_ir_datasets("x/scored", depth=2, allow_network=True)
    got = [tuple(r) for r in pairs[["qid", "docid", "passage", "relevance"]].itertuples(index=False)]
    # query 1: top 2 by score are d2 (9.0, grade 3) then d1 (5.0, unjudged -> 0)
    assert got == [("1", "d2", "two", 3), ("1", "d1", "one", 0), ("2", "d1", "one", 1), ("2", "d3", "three", 0)]
    assert list(pairs["query"]) == ["alpha beta", "alpha beta", "gamma", "gamma"]


def test_judged_docs_as_candidates_and_max_queries(fake_irds) -> None:
    pairs = pairs_from_ir_datasets("x/judged", max_queries=1, allow_network=True)
    assert [tuple(r) for r in pairs[["qid", "docid", "relevance"]].itertuples(index=False)] == [("1", "d2", 3)]
