"""The analyzer and the App. D targets (CQTR, Mean-TF/L) on hand-computed examples."""

from __future__ import annotations

import pandas as pd
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.ir import (
    DEFAULT_ANALYZER,
    LUCENE_STOPWORDS,
    Analyzer,
    analyze,
    compute_targets,
    cqtr,
    mean_tf_l,
)
from tests.helpers import assert_close


def test_default_analyzer_lowercases_splits_and_drops_stopwords() -> None:
    assert analyze("The cat's file_name, in 2 BOXES!") == ["cat", "s", "file", "name", "2", "boxes"]
    assert analyze("Ünïcode Straße") == ["ünïcode", "straße"]
    assert analyze("") == []
    assert analyze("the and of") == []


def test_stopword_list_is_lucene_classic_set() -> None:
    assert len(LUCENE_STOPWORDS) == 33
    assert {"the", "a", "and", "with", "will", "such"} <= LUCENE_STOPWORDS
    assert "from" not in LUCENE_STOPWORDS  # not in Lucene's classic list


def test_analyzer_options() -> None:
    keep_case = Analyzer(lowercase=False, stopwords=frozenset())
    assert keep_case.analyze("The Cat") == ["The", "Cat"]
    stem = Analyzer(stemmer=lambda t: t.rstrip("s"))
    assert stem.analyze("cats and dogs") == ["cat", "dog"]
    assert Analyzer(min_length=3).analyze("a be cat doge") == ["cat", "doge"]
    assert DEFAULT_ANALYZER.describe()["stemmer"] is None
    with pytest.raises(InputError, match="min_length"):
        Analyzer(min_length=0)
    with pytest.raises(InputError, match="pattern"):
        Analyzer(pattern="(")
    with pytest.raises(InputError, match="text"):
        DEFAULT_ANALYZER.analyze(None)  # type: ignore[arg-type]


def test_cqtr_hand_computed() -> None:
    # Q = {sort, list, place}; the passage covers sort and list -> 2/3
    assert_close(cqtr("sort a list in place", "Sort the list; the sort is stable."), 2 / 3, rtol=0, atol=1e-15)
    assert cqtr("sort sort sort", "sort") == 1.0  # unique query terms
    assert cqtr("kiwi", "apple") == 0.0
    assert cqtr("the of and", "anything at all") == 0.0  # empty Q -> 0 by rule
    assert cqtr("apple", "") == 0.0


def test_mean_tf_l_hand_computed() -> None:
    # Q = {sort, list}; d = [sort, list, sort, stable]: (2 + 1) / 4
    assert_close(mean_tf_l("sort a list", "Sort the list; the sort is stable."), 0.75, rtol=0, atol=1e-15)
    # duplicate query terms count once: Σ over unique t ∈ Q
    assert_close(mean_tf_l("sort sort", "sort list sort"), 2 / 3, rtol=0, atol=1e-15)
    assert mean_tf_l("the", "sort") == 0.0
    assert mean_tf_l("sort", "the of") == 0.0  # empty document


def test_compute_targets_matches_scalar_functions() -> None:
    pairs = pd.DataFrame({
        "query": ["sort a list", "open a file", "sort a list", "the"],
        "passage": ["sort the list of lists", "read a file and close the file", "nothing here", "x"],
        "relevance": [2, 0, 1, 0],
    }, index=[10, 11, 12, 13])
    for task, fn in (("cqtr", cqtr), ("mean_tf_l", mean_tf_l)):
        got = compute_targets(pairs, task)
        assert list(got.index) == [10, 11, 12, 13] and got.name == task
        expected = [fn(q, d) for q, d in zip(pairs["query"], pairs["passage"])]
        assert_close(got.to_numpy(), expected, rtol=0, atol=1e-15)
    assert compute_targets(pairs, "relevance").tolist() == [2.0, 0.0, 1.0, 0.0]
    with pytest.raises(InputError, match="task"):
        compute_targets(pairs, "bm25")
    with pytest.raises(InputError, match="missing column"):
        compute_targets(pairs.drop(columns="passage"), "cqtr")
