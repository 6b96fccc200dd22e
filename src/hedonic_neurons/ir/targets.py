"""The scalar IR tasks of the paper (App. D; docs/method.md §8): CQTR, Mean-TF/L and relevance.

Both lexical targets are computed on the terms produced by an :class:`~.analyzer.Analyzer`
(default: lower-case, ``[^\\W_]+`` tokens, Lucene English stop words, no stemming), and both
use the set of **unique** query terms ``Q`` (App. D writes ``Σ_{t∈Q}``, a sum over a set):

- ``CQTR(q, d) = |Q ∩ T(d)| / |Q|`` (App. D.2), with ``T(d)`` the set of document terms;
- ``Mean-TF/L(q, d) = Σ_{t∈Q} TF_t(d) / |d|`` (App. D.3), with ``|d|`` the number of
  document terms after analysis (stop words removed, duplicates counted).

Edge cases (documented rules, never NaN): an empty ``Q`` (a query made only of stop words or
punctuation) gives ``0.0`` for both targets — no query term can be covered; an empty
document gives ``0.0`` for both.

Note that App. D.3's Mean-TF/L is *not* divided by ``|Q|``; MSLR's "mean of stream length
normalized term frequency" is, and appears among the LETOR features as ``tfl_mean``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..errors import InputError
from .analyzer import DEFAULT_ANALYZER, Analyzer

__all__ = ["TASKS", "compute_targets", "cqtr", "mean_tf_l"]

#: Task keys accepted by :func:`compute_targets`.
TASKS: tuple[str, ...] = ("cqtr", "mean_tf_l", "relevance")


def _cqtr_terms(q_terms: set[str], d_terms: set[str]) -> float:
    if not q_terms:
        return 0.0
    return len(q_terms & d_terms) / len(q_terms)


def _mean_tf_l_terms(q_terms: set[str], d_counts: Counter[str], d_len: int) -> float:
    if not q_terms or d_len == 0:
        return 0.0
    return sum(d_counts.get(t, 0) for t in q_terms) / d_len


def cqtr(query: str, passage: str, analyzer: Analyzer | None = None) -> float:
    """Covered-Query-Term Ratio ``|Q ∩ T(d)| / |Q|`` (paper App. D.2).

    Parameters
    ----------
    query, passage : str
    analyzer : Analyzer, optional
        Default :data:`~.analyzer.DEFAULT_ANALYZER`.

    Returns
    -------
    float in [0, 1]; ``0.0`` when the query has no terms.

    Examples
    --------
    >>> cqtr("sort a list in place", "Sort the list; the sort is stable.")
    0.6666666666666666
    """
    an = analyzer or DEFAULT_ANALYZER
    return _cqtr_terms(set(an.analyze(query)), set(an.analyze(passage)))


def mean_tf_l(query: str, passage: str, analyzer: Analyzer | None = None) -> float:
    """Mean-TF/L ``Σ_{t∈Q} TF_t(d) / |d|`` over the unique query terms (paper App. D.3).

    Returns
    -------
    float in [0, 1]; ``0.0`` when the query has no terms or the passage is empty.

    Examples
    --------
    >>> mean_tf_l("sort a list", "Sort the list; the sort is stable.")  # (2 + 1) / 4
    0.75
    """
    an = analyzer or DEFAULT_ANALYZER
    d = an.analyze(passage)
    return _mean_tf_l_terms(set(an.analyze(query)), Counter(d), len(d))


def _check_pairs(pairs: pd.DataFrame, columns: tuple[str, ...]) -> None:
    if not isinstance(pairs, pd.DataFrame):
        raise InputError(f"pairs: expected a pandas DataFrame, got {type(pairs).__name__}.")
    missing = [c for c in columns if c not in pairs.columns]
    if missing:
        raise InputError(f"pairs: missing column(s) {missing}; got columns {list(pairs.columns)}.")


def compute_targets(pairs: pd.DataFrame, task: str, analyzer: Analyzer | None = None) -> pd.Series:
    """The regression/ranking target of ``task`` for every row of a pairs DataFrame.

    Parameters
    ----------
    pairs : pandas.DataFrame, N rows
        Columns ``query`` and ``passage`` (for ``"cqtr"``/``"mean_tf_l"``) or ``relevance``
        (for ``"relevance"``: the qrels grade, 0 when unjudged).
    task : {"cqtr", "mean_tf_l", "relevance"}
    analyzer : Analyzer, optional

    Returns
    -------
    pandas.Series of float64, length N, same index as ``pairs``, named ``task``.

    Notes
    -----
    Each distinct query and passage text is analysed once.
    """
    if task not in TASKS:
        raise InputError(f"task: expected one of {TASKS}, got {task!r}.")
    if task == "relevance":
        _check_pairs(pairs, ("relevance",))
        values = pd.to_numeric(pairs["relevance"], errors="coerce")
        if values.isna().any():
            bad = pairs.index[values.isna()][0]
            raise InputError(f"pairs['relevance']: non-numeric grade {pairs['relevance'][bad]!r} at row {bad!r}.")
        return pd.Series(values.to_numpy(dtype=np.float64), index=pairs.index, name=task)
    _check_pairs(pairs, ("query", "passage"))
    an = analyzer or DEFAULT_ANALYZER
    q_cache: dict[str, set[str]] = {}
    d_cache: dict[str, tuple[set[str], Counter[str], int]] = {}
    out = np.empty(len(pairs), dtype=np.float64)
    for i, (q, d) in enumerate(zip(pairs["query"].tolist(), pairs["passage"].tolist())):
        qt = q_cache.get(q)
        if qt is None:
            qt = q_cache[q] = set(an.analyze(q))
        dt = d_cache.get(d)
        if dt is None:
            terms = an.analyze(d)
            dt = d_cache[d] = (set(terms), Counter(terms), len(terms))
        out[i] = _cqtr_terms(qt, dt[0]) if task == "cqtr" else _mean_tf_l_terms(qt, dt[1], dt[2])
    return pd.Series(out, index=pairs.index, name=task)
