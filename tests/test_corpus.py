"""The offline docstring corpus: byte-identical builds, consistent files, documented split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ArtifactError, ConfigError
from hedonic_neurons.ir import (
    OOD_PACKAGES,
    PAIR_COLUMNS,
    SPLITS,
    build_offline_corpus,
    load_offline_corpus,
    pairs_from_run,
)

FILES = ["collection.tsv", "manifest.json", "pairs.ood.jsonl", "pairs.train.jsonl", "qrels.ood.txt",
         "qrels.train.txt", "queries.ood.tsv", "queries.train.tsv", "run.ood.tsv", "run.train.tsv", "sources.tsv"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    return build_offline_corpus(root / "a", seed=3, max_queries=40)


def test_two_builds_are_byte_identical(built, tmp_path: Path) -> None:
    again = build_offline_corpus(tmp_path / "b", seed=3, max_queries=40)
    names = sorted(p.name for p in built.root.iterdir())
    assert names == FILES
    assert sorted(p.name for p in again.root.iterdir()) == names
    for name in names:
        assert (built.root / name).read_bytes() == (again.root / name).read_bytes(), name
    # a different seed changes the subsample / random negatives
    other = build_offline_corpus(None, seed=4, max_queries=40)
    assert not other.train.equals(built.train)


def test_shape_grades_and_split(built) -> None:
    per_query = 1 + 3 + 1  # relevant + n_negatives + n_random
    counts = built.counts()
    for split in SPLITS:
        pairs = built.pairs[split]
        assert list(pairs.columns) == list(PAIR_COLUMNS)
        assert counts[f"{split}_queries"] == 40 and counts[f"{split}_pairs"] == 40 * per_query
        assert (pairs.groupby("qid").size() == per_query).all()
        rel = pairs[pairs["relevance"] == 2]
        assert rel["qid"].is_unique and (rel["qid"] == rel["docid"]).all()  # own docstring body, grade 2
        assert set(pairs["relevance"]) <= {0, 1, 2}
        src = built.sources.set_index("docid")
        q_mod, d_mod = src.loc[pairs["qid"], "module"].to_numpy(), src.loc[pairs["docid"], "module"].to_numpy()
        same = (q_mod == d_mod) & (pairs["relevance"].to_numpy() != 2)
        assert (pairs["relevance"].to_numpy()[same] == 1).all()
        assert (pairs["relevance"].to_numpy()[(q_mod != d_mod)] == 0).all()
        # candidates come from the query's own split; OOD = the documented packages
        splits = src.loc[pairs["docid"], "split"]
        assert (splits == split).all()
        tops = {m.split(".")[0] for m in src.loc[pairs["docid"], "module"]}
        assert (tops <= set(OOD_PACKAGES)) if split == "ood" else not (tops & set(OOD_PACKAGES))
        assert not pairs.duplicated(["qid", "docid"]).any()
    assert built.manifest["python"] and built.manifest["files"]["collection.tsv"]
    assert len(built.collection) == len(built.sources) > 500


def test_files_round_trip_and_run_reproduces_pairs(built) -> None:
    loaded = load_offline_corpus(built.root)
    for split in SPLITS:
        pd.testing.assert_frame_equal(loaded.pairs[split], built.pairs[split])
        again = pairs_from_run(loaded.collection, loaded.queries[split], loaded.runs[split], loaded.qrels[split],
                               depth=100)
        pd.testing.assert_frame_equal(again, built.pairs[split])
        # run order is BM25 score descending within each query
        run = built.runs[split]
        assert (run.groupby("qid", sort=False)["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    pd.testing.assert_frame_equal(loaded.collection, built.collection)
    assert loaded.manifest == json.loads((built.root / "manifest.json").read_text())


def test_tampered_file_is_detected(built, tmp_path: Path) -> None:
    root = tmp_path / "c"
    build_offline_corpus(root, seed=3, max_queries=5)
    with open(root / "queries.train.tsv", "a", encoding="utf-8") as fh:
        fh.write("999999\textra\n")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_offline_corpus(root)
    with pytest.raises(ArtifactError, match="manifest not found"):
        load_offline_corpus(tmp_path / "missing")


def test_parameter_validation() -> None:
    with pytest.raises(ConfigError, match="n_negatives"):
        build_offline_corpus(None, n_negatives=-1)
    with pytest.raises(ConfigError, match="max_queries"):
        build_offline_corpus(None, max_queries=0)


def test_cli_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "--out", str(tmp_path / "cli"), "--max-queries", "5", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "ood" in out and "5 queries" in out
    assert (tmp_path / "cli" / "manifest.json").is_file()


def test_objects_attached_by_other_packages_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    import functools
    import logging

    from hedonic_neurons.ir.corpus import _members

    before = [name for name, _ in _members("logging")]

    @functools.wraps(logging.Logger.info)  # copies __module__, __qualname__ and __doc__, like transformers does
    def info_once(self, *args, **kwargs):  # pragma: no cover - never called
        return None

    monkeypatch.setattr(logging.Logger, "info_once", info_once, raising=False)
    monkeypatch.setattr(logging, "extra_helper", lambda: None, raising=False)
    assert [name for name, _ in _members("logging")] == before
