"""LETOR/MSLR body-stream features of query–passage pairs (docs/method.md §8, paper §4 "Feature Alignment").

The feature-alignment metric ``R²(C) = max_j corr²(a_C(x), f_j(x))`` compares a coalition's
mean activation with the classic learning-to-rank features of the MSLR-WEB/LETOR 4.0 lists
(Qin & Liu 2013), restricted to the one stream we have: the passage body. Every feature is
listed with its definition in :data:`FEATURES`.

Conventions (shared by all features)
------------------------------------
- Terms come from an :class:`~.analyzer.Analyzer` (default: lower-case, ``[^\\W_]+``
  tokens, Lucene English stop words, no stemming).
- ``Q`` is the set of **unique** query terms; ``TF_t`` the count of term ``t`` in the
  passage; ``L`` the passage length in terms (after stop-word removal); ``U`` the number of
  distinct passage terms.
- Collection statistics come from a :class:`CorpusStats`: ``N`` documents, document
  frequencies ``df_t``, collection frequencies ``cf_t``, ``T = Σ cf`` terms in total,
  ``avgdl = T / N``.
- ``IDF_t = ln(1 + (N − df_t + 0.5) / (df_t + 0.5))`` (the Robertson–Spärck Jones weight
  as used by Lucene's BM25; positive and finite for unseen terms, unlike ``ln(N/df)``).
- Collection language model ``p_C(t) = max(cf_t, 0.5) / T`` (an unseen term counts as half
  an occurrence so that the log-likelihoods stay finite).
- "min/max/mean/variance" are taken over the terms of ``Q``; the variance is the population
  variance (``ddof=0``). With ``Q`` empty every per-term statistic is 0.
- ``TF/L`` is 0 for an empty passage.

Ranking functions and their parameters (LETOR 3.0/4.0 settings where they are published)
------------------------------------------------------------------------------------------
- BM25 (Robertson & Zaragoza 2009): ``Σ_{t∈Q} IDF_t · TF_t (k1 + 1) / (TF_t + k1 (1 − b + b L / avgdl))``
  with ``k1 = 1.2, b = 0.75`` (the textbook values; MSLR does not publish its own).
- Query-likelihood language models (Zhai & Lafferty 2001), ``Σ_{t∈Q} ln p(t | d)`` with
    * LMIR.ABS, absolute discounting: ``p = max(TF_t − δ, 0)/L + (δ U / L) p_C(t)``, ``δ = 0.7``;
    * LMIR.DIR, Dirichlet prior: ``p = (TF_t + μ p_C(t)) / (L + μ)``, ``μ = 2000``;
    * LMIR.JM, Jelinek–Mercer: ``p = (1 − λ) TF_t / L + λ p_C(t)``, ``λ = 0.1``.
  For an empty passage (``L = 0``) ABS and JM fall back to ``p = p_C(t)``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, InputError
from ..io import atomic_write
from .analyzer import DEFAULT_ANALYZER, Analyzer

__all__ = ["BM25Index", "CorpusStats", "FEATURES", "FEATURE_NAMES", "LetorParams", "letor_features"]

#: Every LETOR/MSLR body-stream feature computed by :func:`letor_features`, in column order,
#: with its definition (notation in the module docstring).
FEATURES: tuple[tuple[str, str], ...] = (
    ("query_terms", "|Q|, number of unique query terms"),
    ("covered_qt_number", "covered query term number: |{t∈Q : TF_t > 0}|"),
    ("covered_qt_ratio", "covered query term ratio: covered_qt_number / |Q| (= CQTR)"),
    ("stream_length", "stream length L: number of passage terms"),
    ("idf_sum", "IDF: Σ_{t∈Q} IDF_t"),
    ("tf_sum", "sum of term frequency: Σ_{t∈Q} TF_t"),
    ("tf_min", "min of term frequency over Q"),
    ("tf_max", "max of term frequency over Q"),
    ("tf_mean", "mean of term frequency over Q"),
    ("tf_var", "variance of term frequency over Q"),
    ("tfl_sum", "sum of stream length normalized term frequency: Σ_{t∈Q} TF_t / L (= App. D Mean-TF/L)"),
    ("tfl_min", "min of TF_t / L over Q"),
    ("tfl_max", "max of TF_t / L over Q"),
    ("tfl_mean", "mean of stream length normalized term frequency over Q (MSLR's Mean(TF/L))"),
    ("tfl_var", "variance of TF_t / L over Q"),
    ("tfidf_sum", "sum of TF·IDF: Σ_{t∈Q} TF_t · IDF_t"),
    ("tfidf_min", "min of TF_t · IDF_t over Q"),
    ("tfidf_max", "max of TF_t · IDF_t over Q"),
    ("tfidf_mean", "mean of TF_t · IDF_t over Q"),
    ("tfidf_var", "variance of TF_t · IDF_t over Q"),
    ("bm25", "BM25 (k1, b)"),
    ("lmir_abs", "LMIR.ABS: query log-likelihood, absolute discounting (δ)"),
    ("lmir_dir", "LMIR.DIR: query log-likelihood, Dirichlet prior (μ)"),
    ("lmir_jm", "LMIR.JM: query log-likelihood, Jelinek–Mercer (λ)"),
)

#: Column names of :func:`letor_features`, in order.
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)


@dataclass(frozen=True)
class LetorParams:
    """Parameters of the ranking-function features (LETOR 3.0/4.0 values by default).

    Attributes
    ----------
    k1, b : float
        BM25 term-frequency saturation and length normalisation (1.2, 0.75).
    delta : float
        LMIR.ABS discount δ (0.7).
    mu : float
        LMIR.DIR Dirichlet prior μ (2000).
    lam : float
        LMIR.JM collection weight λ (0.1).
    """

    k1: float = 1.2
    b: float = 0.75
    delta: float = 0.7
    mu: float = 2000.0
    lam: float = 0.1

    def __post_init__(self) -> None:
        checks = {
            "k1": self.k1 >= 0,
            "b": 0 <= self.b <= 1,
            "delta": 0 < self.delta < 1,
            "mu": self.mu > 0,
            "lam": 0 < self.lam <= 1,
        }
        ranges = {"k1": ">= 0", "b": "in [0, 1]", "delta": "in (0, 1)", "mu": "> 0", "lam": "in (0, 1]"}
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"{name}: expected a value {ranges[name]}, got {getattr(self, name)!r}.")


@dataclass(frozen=True)
class CorpusStats:
    """Collection statistics for IDF, BM25 and the language-model features.

    Attributes
    ----------
    n_docs : int
        Number of documents ``N``.
    total_terms : int
        ``T``: total number of terms over all documents (after analysis).
    df : dict[str, int]
        Document frequency of each term.
    cf : dict[str, int]
        Collection frequency (total count) of each term.
    analyzer : dict
        :meth:`Analyzer.describe` of the analyzer used (provenance only).
    """

    n_docs: int
    total_terms: int
    df: dict[str, int] = field(repr=False)
    cf: dict[str, int] = field(repr=False)
    analyzer: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def avg_len(self) -> float:
        """Average document length ``avgdl = T / N`` (0 for an empty collection)."""
        return self.total_terms / self.n_docs if self.n_docs else 0.0

    @property
    def vocabulary_size(self) -> int:
        return len(self.df)

    @classmethod
    def from_passages(cls, passages: Iterable[str], analyzer: Analyzer | None = None) -> CorpusStats:
        """Count ``df``, ``cf``, ``N`` and ``T`` over an iterable of passage texts.

        Each element is one document (pass the *unique* passages of a pairs table, or a
        whole collection's texts).
        """
        an = analyzer or DEFAULT_ANALYZER
        df: Counter[str] = Counter()
        cf: Counter[str] = Counter()
        n = 0
        for text in passages:
            terms = an.analyze(text)
            cf.update(terms)
            df.update(set(terms))
            n += 1
        return cls(n, int(sum(cf.values())), dict(df), dict(cf), an.describe())

    def idf(self, term: str) -> float:
        """``ln(1 + (N − df + 0.5) / (df + 0.5))``."""
        d = self.df.get(term, 0)
        return math.log1p((self.n_docs - d + 0.5) / (d + 0.5))

    def p_collection(self, term: str) -> float:
        """Collection language model ``max(cf, 0.5) / T``."""
        if self.total_terms <= 0:
            raise InputError("stats: the collection has no terms, so p_C(t) is undefined.")
        return max(self.cf.get(term, 0), 0.5) / self.total_terms

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Save as JSON (terms sorted, so equal statistics give equal files)."""
        obj = {
            "format": "hedonic-neurons/corpus-stats@1",
            "n_docs": self.n_docs,
            "total_terms": self.total_terms,
            "analyzer": self.analyzer,
            "df": dict(sorted(self.df.items())),
            "cf": dict(sorted(self.cf.items())),
        }
        with atomic_write(path) as fh:
            json.dump(obj, fh, ensure_ascii=False)
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CorpusStats:
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"{p}: corpus statistics file not found.")
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
            return cls(int(obj["n_docs"]), int(obj["total_terms"]), dict(obj["df"]), dict(obj["cf"]),
                       dict(obj.get("analyzer", {})))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{p}: malformed corpus statistics ({exc}).") from exc


def _stats5(x: np.ndarray) -> tuple[float, float, float, float, float]:
    if x.size == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    return float(x.sum()), float(x.min()), float(x.max()), float(x.mean()), float(x.var())


def _pair_features(
    q_terms: Sequence[str], d_counts: Counter[str], d_len: int, stats: CorpusStats, p: LetorParams
) -> list[float]:
    nq = len(q_terms)
    tf = np.array([d_counts.get(t, 0) for t in q_terms], dtype=np.float64)
    idf = np.array([stats.idf(t) for t in q_terms], dtype=np.float64)
    covered = float(np.count_nonzero(tf))
    tfl = tf / d_len if d_len > 0 else np.zeros_like(tf)
    tfidf = tf * idf
    avgdl = stats.avg_len
    norm = p.k1 * (1.0 - p.b + p.b * (d_len / avgdl if avgdl > 0 else 0.0))
    denom = tf + norm
    bm25 = float(np.sum(np.divide(idf * tf * (p.k1 + 1.0), denom, out=np.zeros_like(tf), where=denom > 0)))
    if nq:
        pc = np.array([stats.p_collection(t) for t in q_terms], dtype=np.float64)
        if d_len > 0:
            n_unique = len(d_counts)
            p_abs = np.maximum(tf - p.delta, 0.0) / d_len + (p.delta * n_unique / d_len) * pc
            p_jm = (1.0 - p.lam) * tf / d_len + p.lam * pc
        else:
            p_abs = p_jm = pc
        p_dir = (tf + p.mu * pc) / (d_len + p.mu)
        lm = [float(np.log(p_abs).sum()), float(np.log(p_dir).sum()), float(np.log(p_jm).sum())]
    else:
        lm = [0.0, 0.0, 0.0]
    return [
        float(nq),
        covered,
        covered / nq if nq else 0.0,
        float(d_len),
        float(idf.sum()),
        *_stats5(tf),
        *_stats5(tfl),
        *_stats5(tfidf),
        bm25,
        *lm,
    ]


def letor_features(
    pairs: pd.DataFrame,
    stats: CorpusStats | None = None,
    analyzer: Analyzer | None = None,
    params: LetorParams | None = None,
) -> pd.DataFrame:
    """LETOR/MSLR body-stream features of every query–passage pair.

    Parameters
    ----------
    pairs : pandas.DataFrame, N rows
        Needs columns ``query`` and ``passage``.
    stats : CorpusStats, optional
        Collection statistics. Default: built from the unique passages of ``pairs``
        (fine for a self-contained pairs table; pass the training collection's statistics
        to score an OOD split with the same IDF).
    analyzer : Analyzer, optional
        Must be the analyzer ``stats`` was built with (default :data:`DEFAULT_ANALYZER`).
    params : LetorParams, optional
        BM25 and LMIR parameters (default k1=1.2, b=0.75, δ=0.7, μ=2000, λ=0.1).

    Returns
    -------
    pandas.DataFrame, shape (N, F)
        Columns :data:`FEATURE_NAMES` (F = 24), float64, same index as ``pairs``.
    """
    if not isinstance(pairs, pd.DataFrame):
        raise InputError(f"pairs: expected a pandas DataFrame, got {type(pairs).__name__}.")
    missing = [c for c in ("query", "passage") if c not in pairs.columns]
    if missing:
        raise InputError(f"pairs: missing column(s) {missing}; got columns {list(pairs.columns)}.")
    an = analyzer or DEFAULT_ANALYZER
    prm = params or LetorParams()
    queries = pairs["query"].tolist()
    passages = pairs["passage"].tolist()
    if stats is None:
        stats = CorpusStats.from_passages(dict.fromkeys(passages), an)
    q_cache: dict[str, list[str]] = {}
    d_cache: dict[str, tuple[Counter[str], int]] = {}
    rows = np.empty((len(pairs), len(FEATURE_NAMES)), dtype=np.float64)
    for i, (q, d) in enumerate(zip(queries, passages)):
        qt = q_cache.get(q)
        if qt is None:
            qt = q_cache[q] = sorted(set(an.analyze(q)))
        dt = d_cache.get(d)
        if dt is None:
            terms = an.analyze(d)
            dt = d_cache[d] = (Counter(terms), len(terms))
        rows[i] = _pair_features(qt, dt[0], dt[1], stats, prm)
    return pd.DataFrame(rows, columns=list(FEATURE_NAMES), index=pairs.index)


class BM25Index:
    """A small in-memory BM25 index for first-stage retrieval (same BM25 as the feature).

    Document term weights ``IDF_t · TF (k1 + 1) / (TF + k1 (1 − b + b L / avgdl))`` are
    stored in a sparse ``(n_docs, V)`` matrix, so scoring a batch of queries is one sparse
    product. Query terms are the unique terms (as in :func:`letor_features`), so
    ``index.scores(q)[j]`` equals ``letor_features`` 's ``bm25`` for ``(q, docs[j])`` with
    ``stats = index.stats``.

    Parameters
    ----------
    docs : sequence of str
        Document texts; document ``j`` is row ``j``.
    analyzer : Analyzer, optional
    k1, b : float
        BM25 parameters (1.2, 0.75).
    """

    def __init__(self, docs: Sequence[str], analyzer: Analyzer | None = None, k1: float = 1.2,
                 b: float = 0.75) -> None:
        from scipy import sparse

        LetorParams(k1=k1, b=b)  # validates
        self.analyzer = analyzer or DEFAULT_ANALYZER
        self.k1, self.b = float(k1), float(b)
        analysed = [self.analyzer.analyze(d) for d in docs]
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lens = np.array([len(t) for t in analysed], dtype=np.float64)
        df: Counter[str] = Counter()
        cf: Counter[str] = Counter()
        for j, terms in enumerate(analysed):
            counts = Counter(terms)
            cf.update(counts)
            df.update(counts.keys())
            for t, c in sorted(counts.items()):
                rows.append(j)
                cols.append(vocab.setdefault(t, len(vocab)))
                tfs.append(float(c))
        self.stats = CorpusStats(len(analysed), int(lens.sum()), dict(df), dict(cf), self.analyzer.describe())
        self.vocabulary = vocab
        idf = np.zeros(len(vocab), dtype=np.float64)
        for t, k in vocab.items():
            idf[k] = self.stats.idf(t)
        tf = np.asarray(tfs, dtype=np.float64)
        row_arr = np.asarray(rows, dtype=np.int64)
        col_arr = np.asarray(cols, dtype=np.int64)
        avgdl = self.stats.avg_len
        norm = self.k1 * (1.0 - self.b + self.b * (lens[row_arr] / avgdl if avgdl > 0 else 0.0))
        weights = idf[col_arr] * tf * (self.k1 + 1.0) / (tf + norm)
        self._w = sparse.csr_matrix((weights, (row_arr, col_arr)), shape=(len(analysed), len(vocab)))

    @property
    def n_docs(self) -> int:
        return int(self._w.shape[0])

    def _query_matrix(self, queries: Sequence[str]) -> Any:
        from scipy import sparse

        rows: list[int] = []
        cols: list[int] = []
        for i, q in enumerate(queries):
            for t in sorted(set(self.analyzer.analyze(q))):
                k = self.vocabulary.get(t)
                if k is not None:
                    rows.append(i)
                    cols.append(k)
        data = np.ones(len(rows), dtype=np.float64)
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(queries), len(self.vocabulary)))

    def score_matrix(self, queries: Sequence[str]) -> np.ndarray:
        """BM25 scores, shape (n_queries, n_docs), float64 (dense)."""
        return np.asarray((self._query_matrix(queries) @ self._w.T).toarray(), dtype=np.float64)

    def scores(self, query: str) -> np.ndarray:
        """BM25 scores of one query against every document, shape (n_docs,)."""
        return self.score_matrix([query])[0]
