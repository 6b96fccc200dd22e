"""Loaders of the MS MARCO / TREC formats and the pairs table, including malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.ir import (
    PAIR_COLUMNS,
    load_collection,
    load_pairs_jsonl,
    load_pairs_tsv,
    load_qrels,
    load_queries,
    load_run,
    pairs_from_run,
    write_pairs_jsonl,
)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "collection": _write(tmp_path / "collection.tsv",
                             "0\tThe first passage.\n1\tSecond passage, about apples.\n\n2\tThird one\r\n"),
        "queries": _write(tmp_path / "queries.tsv", "100\twhat is the first\n200\tapples\n"),
        "qrels_trec": _write(tmp_path / "qrels.txt", "100 0 0 3\n100 0 2 1\n200 0 1 2\n"),
        "qrels_msmarco": _write(tmp_path / "qrels.dev.tsv", "100\t0\t0\t1\n200\t0\t1\t1\n"),
        "run_trec": _write(tmp_path / "run.trec", "200 Q0 1 1 9.5 bm25\n100 Q0 2 2 3.0 bm25\n100 Q0 0 1 4.5 bm25\n"
                           "100 Q0 1 3 1.0 bm25\n"),
        "run_msmarco": _write(tmp_path / "run.tsv", "100\t0\t1\n100\t2\t2\n100\t1\t3\n200\t1\t1\n"),
    }


def test_collection_and_queries(files: dict[str, Path]) -> None:
    coll = load_collection(files["collection"])
    assert list(coll.columns) == ["docid", "text"]
    assert coll["docid"].tolist() == ["0", "1", "2"]
    assert coll["text"].tolist() == ["The first passage.", "Second passage, about apples.", "Third one"]
    q = load_queries(files["queries"])
    assert q.to_dict("list") == {"qid": ["100", "200"], "text": ["what is the first", "apples"]}


def test_qrels_trec_and_msmarco(files: dict[str, Path]) -> None:
    trec = load_qrels(files["qrels_trec"])
    assert list(trec.columns) == ["qid", "docid", "relevance"]
    assert list(trec.itertuples(index=False, name=None)) == [("100", "0", 3), ("100", "2", 1), ("200", "1", 2)]
    assert str(trec["relevance"].dtype) == "int64"
    ms = load_qrels(files["qrels_msmarco"])
    assert list(ms.itertuples(index=False, name=None)) == [("100", "0", 1), ("200", "1", 1)]


def test_runs_trec_and_msmarco(files: dict[str, Path]) -> None:
    trec = load_run(files["run_trec"])
    assert list(trec.columns) == ["qid", "docid", "rank", "score"]
    # sorted by query (first appearance) then rank
    assert trec[["qid", "docid", "rank"]].values.tolist() == [["200", "1", 1], ["100", "0", 1], ["100", "2", 2],
                                                               ["100", "1", 3]]
    assert trec["score"].tolist() == [9.5, 4.5, 3.0, 1.0]
    ms = load_run(files["run_msmarco"])
    assert ms["docid"].tolist() == ["0", "2", "1", "1"]
    assert ms["score"].tolist() == [-1.0, -2.0, -3.0, -1.0]  # score = -rank


def test_pairs_from_run(files: dict[str, Path]) -> None:
    pairs = pairs_from_run(files["collection"], files["queries"], files["run_msmarco"], files["qrels_trec"], depth=2)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs[["qid", "docid", "relevance"]].values.tolist() == [["100", "0", 3], ["100", "2", 1], ["200", "1", 2]]
    assert pairs["passage"].iloc[1] == "Third one"
    assert pairs["query"].iloc[2] == "apples"
    no_qrels = pairs_from_run(load_collection(files["collection"]), load_queries(files["queries"]),
                              load_run(files["run_trec"]))
    assert no_qrels["relevance"].tolist() == [0, 0, 0, 0]
    bad_run = pd.DataFrame({"qid": ["100"], "docid": ["99"], "rank": [1]})
    with pytest.raises(InputError, match="'99'"):
        pairs_from_run(files["collection"], files["queries"], bad_run)
    with pytest.raises(InputError, match="depth"):
        pairs_from_run(files["collection"], files["queries"], files["run_trec"], depth=0)


def test_pairs_jsonl_and_tsv(tmp_path: Path) -> None:
    lines = [
        {"qid": 7, "docid": "d1", "query": "q one", "passage": "p one", "relevance": 2},
        {"query": "q two", "passage": "p two", "label": 1, "extra": "ignored"},
        {"query": "q two", "passage": "p three"},
    ]
    path = _write(tmp_path / "pairs.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    pairs = load_pairs_jsonl(path)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs["qid"].tolist() == ["7", "q0", "q0"]  # missing qids derived from distinct query texts
    assert pairs["docid"].tolist() == ["d1", "d0", "d2"]  # generated ids never collide with given ones
    assert pairs["relevance"].tolist() == [2, 1, 0]
    # write -> read round trip
    back = load_pairs_jsonl(write_pairs_jsonl(pairs, tmp_path / "again.jsonl"))
    pd.testing.assert_frame_equal(back, pairs)

    with_header = _write(tmp_path / "h.tsv", "qid\tquery\tpassage\tlabel\n1\tq\tp\t1\n2\tr\ts\t0\n")
    p1 = load_pairs_tsv(with_header)
    assert p1[["qid", "query", "passage", "relevance"]].values.tolist() == [["1", "q", "p", 1], ["2", "r", "s", 0]]
    headerless = _write(tmp_path / "n.tsv", "q a\tp a\t2\nq b\tp b\t0\n")
    p2 = load_pairs_tsv(headerless)
    assert p2[["qid", "query", "passage", "relevance"]].values.tolist() == [["q0", "q a", "p a", 2],
                                                                              ["q1", "q b", "p b", 0]]


@pytest.mark.parametrize(
    ("loader", "text", "line", "needle"),
    [
        (load_collection, "0\tok\n1 no tab here\n", 2, "pid<TAB>text"),
        (load_collection, "0\tok\n0\tagain\n", 2, "duplicate"),
        (load_queries, "1\tq\n\n2\tq\textra\n", 3, "qid<TAB>text"),
        (load_qrels, "1 0 d 1\n1 0 d\n", 2, "qid 0 docid grade"),
        (load_qrels, "1 0 d 1\n1 0 e high\n", 2, "not an integer"),
        (load_run, "1 Q0 d 1 2.0 x\n1\td\t2\n", 2, "expected 6 fields"),
        (load_run, "1 Q0 d 1 abc x\n", 1, "not a number"),
        (load_run, "1 2\n", 1, "TREC"),
        (load_pairs_jsonl, '{"query": "q", "passage": "p"}\n{"query": "q"\n', 2, "malformed JSON"),
        (load_pairs_jsonl, '{"query": "q", "passage": 3}\n', 1, "passage"),
        (load_pairs_jsonl, '{"query": "q", "passage": "p", "relevance": "x"}\n', 1, "integer"),
        (load_pairs_tsv, "query\tpassage\nq\tp\textra\n", 2, "expected 2"),
    ],
)
def test_malformed_files_name_path_and_line(tmp_path: Path, loader, text: str, line: int, needle: str) -> None:
    path = _write(tmp_path / "bad.txt", text)
    with pytest.raises(ArtifactError) as info:
        loader(path)
    msg = str(info.value)
    assert f"{path}:{line}:" in msg, msg
    assert needle in msg, msg


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        load_collection(tmp_path / "nope.tsv")
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes(b"0\tok\n1\tcaf\xe9\n")
    with pytest.raises(ArtifactError, match=r"latin1\.tsv:2: .*UTF-8"):
        load_collection(bad)
