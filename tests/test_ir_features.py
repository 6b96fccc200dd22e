"""LETOR/MSLR body-stream features, each checked on a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.ir import (
    FEATURE_NAMES,
    FEATURES,
    BM25Index,
    CorpusStats,
    LetorParams,
    compute_targets,
    letor_features,
)
from tests.helpers import assert_close

# Collection: D1 = [apple, banana, apple, cherry], D2 = [banana, date], D3 = [cherry] ("the" is a stop word)
DOCS = ["Apple banana apple cherry", "banana date", "the cherry"]
N, T = 3, 7
AVGDL = T / N
QUERY = "apple and kiwi"  # Q = {apple, kiwi}


def _hand_expected() -> dict[str, float]:
    """Every feature of (QUERY, D1) computed by hand from the definitions."""
    L, U = 4.0, 3.0  # TF(apple) = 2, TF(kiwi) = 0
    idf = {"apple": math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)), "kiwi": math.log(1 + (3 - 0 + 0.5) / (0 + 0.5))}
    pc = {"apple": 2 / 7, "kiwi": 0.5 / 7}  # unseen kiwi counts as half an occurrence
    ta = idf["apple"] * 2
    bm25 = idf["apple"] * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * L / AVGDL))
    abs_ = math.log((2 - 0.7) / L + 0.7 * U / L * pc["apple"]) + math.log(0.7 * U / L * pc["kiwi"])
    dir_ = math.log((2 + 2000 * pc["apple"]) / (L + 2000)) + math.log((0 + 2000 * pc["kiwi"]) / (L + 2000))
    jm = math.log(0.9 * 2 / L + 0.1 * pc["apple"]) + math.log(0.1 * pc["kiwi"])
    return {
        "query_terms": 2, "covered_qt_number": 1, "covered_qt_ratio": 0.5, "stream_length": 4,
        "idf_sum": idf["apple"] + idf["kiwi"],
        "tf_sum": 2, "tf_min": 0, "tf_max": 2, "tf_mean": 1, "tf_var": 1,
        "tfl_sum": 0.5, "tfl_min": 0, "tfl_max": 0.5, "tfl_mean": 0.25, "tfl_var": 0.0625,
        "tfidf_sum": ta, "tfidf_min": 0, "tfidf_max": ta, "tfidf_mean": ta / 2, "tfidf_var": (ta / 2) ** 2,
        "bm25": bm25, "lmir_abs": abs_, "lmir_dir": dir_, "lmir_jm": jm,
    }


@pytest.fixture(scope="module")
def stats() -> CorpusStats:
    return CorpusStats.from_passages(DOCS)


def test_corpus_stats_counts(stats: CorpusStats) -> None:
    assert (stats.n_docs, stats.total_terms) == (N, T)
    assert_close(stats.avg_len, AVGDL, rtol=0, atol=1e-15)
    assert stats.df == {"apple": 1, "banana": 2, "cherry": 2, "date": 1}
    assert stats.cf == {"apple": 2, "banana": 2, "cherry": 2, "date": 1}


def test_features_list_is_documented() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 24
    assert all(desc for _, desc in FEATURES)
    assert set(_hand_expected()) == set(FEATURE_NAMES)


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_each_feature_on_hand_computed_example(name: str, stats: CorpusStats) -> None:
    pairs = pd.DataFrame({"query": [QUERY], "passage": [DOCS[0]]})
    got = letor_features(pairs, stats)
    assert list(got.columns) == list(FEATURE_NAMES)
    assert_close(got[name].iloc[0], _hand_expected()[name], rtol=1e-12, atol=1e-12, msg=name)


def test_empty_query_and_empty_passage(stats: CorpusStats) -> None:
    pairs = pd.DataFrame({"query": ["the of", "apple"], "passage": [DOCS[0], "the"]})
    f = letor_features(pairs, stats)
    assert np.all(f.iloc[0].drop("stream_length").to_numpy() == 0.0)  # empty Q: everything 0 ...
    assert f["stream_length"].iloc[0] == 4  # ... except the passage's own length
    # empty passage: TF = 0, TF/L = 0, JM and ABS fall back to p_C
    assert f.loc[1, ["tf_sum", "tfl_sum", "bm25", "covered_qt_ratio"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert_close(f["lmir_jm"].iloc[1], math.log(2 / 7), rtol=1e-12, atol=0)
    assert_close(f["lmir_abs"].iloc[1], math.log(2 / 7), rtol=1e-12, atol=0)
    assert_close(f["lmir_dir"].iloc[1], math.log(2000 * (2 / 7) / 2000), rtol=1e-12, atol=0)
    assert np.all(np.isfinite(f.to_numpy()))


def test_features_agree_with_targets_and_default_stats() -> None:
    pairs = pd.DataFrame({"query": ["apple cherry", "banana kiwi", "date"], "passage": DOCS})
    f = letor_features(pairs)  # stats from the pairs' own unique passages == DOCS
    f2 = letor_features(pairs, CorpusStats.from_passages(DOCS))
    assert_close(f.to_numpy(), f2.to_numpy(), rtol=0, atol=0)
    assert_close(f["covered_qt_ratio"], compute_targets(pairs, "cqtr"), rtol=0, atol=1e-15)
    assert_close(f["tfl_sum"], compute_targets(pairs, "mean_tf_l"), rtol=0, atol=1e-15)


def test_bm25_index_matches_feature(stats: CorpusStats) -> None:
    docs = [*DOCS, "apple apple apple pie", "kiwi banana smoothie with apple"]
    queries = ["apple and kiwi", "banana", "nothing matches", "cherry apple date"]
    index = BM25Index(docs)
    scores = index.score_matrix(queries)
    assert scores.shape == (len(queries), len(docs))
    slow = np.array([[letor_features(pd.DataFrame({"query": [q], "passage": [d]}), index.stats)["bm25"].iloc[0]
                      for d in docs] for q in queries])
    assert_close(scores, slow, rtol=1e-12, atol=1e-12)
    assert_close(index.scores("banana"), scores[1], rtol=0, atol=0)


def test_params_are_used_and_validated(stats: CorpusStats) -> None:
    pairs = pd.DataFrame({"query": [QUERY], "passage": [DOCS[0]]})
    f = letor_features(pairs, stats, params=LetorParams(k1=0.9, b=0.4, mu=100.0))
    idf_a = math.log(1 + 2.5 / 1.5)
    assert_close(f["bm25"].iloc[0], idf_a * 2 * 1.9 / (2 + 0.9 * (0.6 + 0.4 * 4 / AVGDL)), rtol=1e-12, atol=0)
    assert_close(f["lmir_dir"].iloc[0], math.log((2 + 100 * 2 / 7) / 104) + math.log(100 * 0.5 / 7 / 104),
                 rtol=1e-12, atol=0)
    with pytest.raises(InputError, match="delta"):
        LetorParams(delta=1.5)
    with pytest.raises(InputError, match="missing column"):
        letor_features(pd.DataFrame({"query": ["a"]}), stats)


def test_stats_json_round_trip(tmp_path, stats: CorpusStats) -> None:
    path = stats.to_json(tmp_path / "stats.json")
    back = CorpusStats.from_json(path)
    assert (back.n_docs, back.total_terms, back.df, back.cf) == (stats.n_docs, stats.total_terms, stats.df, stats.cf)
