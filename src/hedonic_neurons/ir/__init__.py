"""IR tasks, data and features (docs/method.md §8; paper §4 and App. D). Plain Python/NumPy/pandas.

- :mod:`.analyzer` — the documented text analyzer (lower-case, ``[^\\W_]+`` tokens, Lucene
  English stop words, optional stemming).
- :mod:`.targets` — the scalar tasks: CQTR, Mean-TF/L, relevance.
- :mod:`.features` — LETOR/MSLR body-stream features, collection statistics, a small BM25 index.
- :mod:`.loaders` — MS MARCO / TREC files and the pairs table.
- :mod:`.corpus` — the offline docstring corpus (no download).
- :mod:`.splits` — reading pair files, dropping over-long queries, train/val/capture/OOD splits.
"""

from __future__ import annotations

from .analyzer import DEFAULT_ANALYZER, LUCENE_STOPWORDS, TOKEN_PATTERN, Analyzer, analyze
from .corpus import (
    OOD_PACKAGES,
    SPLITS,
    STDLIB_MODULES,
    OfflineCorpus,
    build_offline_corpus,
    load_offline_corpus,
)
from .features import FEATURE_NAMES, FEATURES, BM25Index, CorpusStats, LetorParams, letor_features
from .irds import pairs_from_ir_datasets
from .loaders import (
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
from .splits import PairSplits, drop_long_queries, read_pairs_file, split_pairs, subsample_queries
from .targets import TASKS, compute_targets, cqtr, mean_tf_l

__all__ = [
    "pairs_from_ir_datasets",
    "DEFAULT_ANALYZER",
    "FEATURES",
    "FEATURE_NAMES",
    "LUCENE_STOPWORDS",
    "OOD_PACKAGES",
    "PAIR_COLUMNS",
    "SPLITS",
    "STDLIB_MODULES",
    "TASKS",
    "TOKEN_PATTERN",
    "Analyzer",
    "BM25Index",
    "CorpusStats",
    "LetorParams",
    "OfflineCorpus",
    "PairSplits",
    "analyze",
    "build_offline_corpus",
    "compute_targets",
    "drop_long_queries",
    "cqtr",
    "letor_features",
    "load_collection",
    "load_offline_corpus",
    "load_pairs_jsonl",
    "load_pairs_tsv",
    "load_qrels",
    "load_queries",
    "load_run",
    "mean_tf_l",
    "pairs_from_run",
    "read_pairs_file",
    "split_pairs",
    "subsample_queries",
    "write_pairs_jsonl",
]
