"""An offline query–passage corpus built from Python's own docstrings (no download).

The paper trains on MS MARCO and evaluates out of distribution on TREC DL 2019/20. Neither
ships offline, so the demo and the tests use a small stand-in with the same shape, built
deterministically from the standard library that is already installed:

- **Documents.** For every module in :data:`STDLIB_MODULES` (a fixed list of pure-Python or
  always-built modules whose contents do not depend on the platform or on optional build
  features such as ``ssl``), the public functions and classes *defined in that module*
  (``obj.__module__`` is the module or its C accelerator ``_name``), and the public methods,
  static/class methods and properties defined in each such class's own ``__dict__``, all in
  sorted order of (module, qualified name). Aliases (``__qualname__`` differs from the name
  it is found under) and functions whose code lives outside the standard library (things
  other packages attach at import time) are skipped, so the result does not depend on what
  else the process imported. Each object's own ``__doc__`` is cleaned with
  :func:`inspect.cleandoc`; leading paragraphs that are bare call signatures are dropped.
- **Query** = the summary: the first paragraph if it spans at most 3 lines and more
  paragraphs follow, otherwise the first line; whitespace collapsed.
- **Relevant passage** (grade 2) = the rest of the docstring, whitespace collapsed and cut
  to at most ``max_passage_words`` words.
- Kept when the query has >= ``min_query_terms`` and the passage >= ``min_passage_terms``
  analysed terms; an object seen before (an alias) and a repeated query or passage text
  are skipped (first in sorted order wins).
- **Split.** Entries whose top-level package is in :data:`OOD_PACKAGES` (the internet
  data-handling and protocol packages: ``email, html, http, urllib, wsgiref, xml``) form the
  out-of-distribution split ``"ood"``; the rest the in-distribution split ``"train"``.
- **Candidates.** Per query, the ``n_negatives`` best BM25 passages (k1 = 1.2, b = 0.75,
  :class:`~.features.BM25Index`, the package analyzer) *of the same split* other than the
  relevant one, ties broken by smaller passage id, plus ``n_random`` further passages of the
  split drawn uniformly with a seeded generator. A candidate from the same module as the
  query gets grade 1 (related), any other grade 0.
- **Run.** Each query's candidates (relevant passage included) ranked by BM25 score, ties by
  passage id. ``pairs_from_run(collection, queries, run, qrels)`` reproduces the pairs files.

Files written to ``out_dir`` (MS MARCO conventions; ``\\n`` line endings, UTF-8):
``collection.tsv`` (pid, text), ``queries.{train,ood}.tsv`` (qid, text),
``qrels.{train,ood}.txt`` (TREC ``qid 0 pid grade``, every candidate judged),
``run.{train,ood}.tsv`` (MS MARCO ``qid pid rank``), ``pairs.{train,ood}.jsonl``,
``sources.tsv`` (pid, split, module, qualified name) and ``manifest.json`` (Python version,
module lists, parameters, counts, SHA-256 of every file; no timestamp, so two builds with
the same Python and parameters are byte-identical).

Docstrings change between Python versions, so the corpus is reproducible for one Python
version (recorded in the manifest), not across versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_generator
from ..errors import ArtifactError, ConfigError
from ..io import atomic_write
from ._stdlib_docstrings import (  # noqa: F401  (_members: re-exported for the tests)
    OOD_PACKAGES,
    STDLIB_MODULES,
    _harvest,
    _members,
    _split_of,
)
from .analyzer import DEFAULT_ANALYZER
from .features import BM25Index
from .loaders import (
    PAIR_COLUMNS,
    load_collection,
    load_pairs_jsonl,
    load_qrels,
    load_queries,
    load_run,
    write_pairs_jsonl,
)

__all__ = [
    "OOD_PACKAGES",
    "SPLITS",
    "STDLIB_MODULES",
    "OfflineCorpus",
    "build_offline_corpus",
    "load_offline_corpus",
]

#: Split names, in file order.
SPLITS: tuple[str, ...] = ("train", "ood")

_FORMAT = "hedonic-neurons/offline-corpus@1"
@dataclass(frozen=True)
class OfflineCorpus:
    """The docstring corpus: pairs, queries, qrels and runs per split, and the collection.

    Attributes
    ----------
    pairs : dict[str, pandas.DataFrame]
        ``"train"`` / ``"ood"`` pairs tables (columns ``qid, docid, query, passage, relevance``).
    queries : dict[str, pandas.DataFrame]
        Per split, columns ``qid, text``.
    qrels : dict[str, pandas.DataFrame]
        Per split, columns ``qid, docid, relevance``.
    runs : dict[str, pandas.DataFrame]
        Per split, columns ``qid, docid, rank, score`` (score = BM25 when built, ``-rank``
        when loaded from the MS MARCO run file).
    collection : pandas.DataFrame
        Columns ``docid, text`` (both splits).
    sources : pandas.DataFrame
        Columns ``docid, split, module, qualname``: where each passage comes from.
    manifest : dict
        Python version, module lists, parameters, counts (and file hashes when written).
    root : pathlib.Path or None
        Directory the files were written to / loaded from.
    paths : dict[str, pathlib.Path]
        File name -> path (empty when nothing was written).
    """

    pairs: dict[str, pd.DataFrame]
    queries: dict[str, pd.DataFrame]
    qrels: dict[str, pd.DataFrame]
    runs: dict[str, pd.DataFrame]
    collection: pd.DataFrame
    sources: pd.DataFrame
    manifest: dict[str, Any]
    root: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def train(self) -> pd.DataFrame:
        """The in-distribution pairs."""
        return self.pairs["train"]

    @property
    def ood(self) -> pd.DataFrame:
        """The out-of-distribution pairs."""
        return self.pairs["ood"]

    def counts(self) -> dict[str, int]:
        """Queries and pairs per split, and passages in the collection."""
        out = {"passages": len(self.collection)}
        for s in SPLITS:
            out[f"{s}_queries"] = len(self.queries[s])
            out[f"{s}_pairs"] = len(self.pairs[s])
        return out


def build_offline_corpus(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int | np.random.Generator = 0,
    n_negatives: int = 3,
    n_random: int = 1,
    max_queries: int | None = None,
    max_passage_words: int = 160,
    min_query_terms: int = 2,
    min_passage_terms: int = 8,
    k1: float = 1.2,
    b: float = 0.75,
) -> OfflineCorpus:
    """Build the docstring corpus (and write it to ``out_dir`` when given).

    Parameters
    ----------
    out_dir : path, optional
        Where to write the MS MARCO-style files (created if missing). ``None``: build in memory.
    seed : int or numpy.random.Generator
        Seeds the query subsample (``max_queries``) and the random negatives.
    n_negatives : int
        BM25 negatives per query (default 3).
    n_random : int
        Uniformly drawn extra negatives per query (default 1); they give the lexical targets
        their low end (CQTR near 0).
    max_queries : int, optional
        At most this many queries *per split*, a seeded subsample kept in id order. The
        collection still holds every passage (the unused ones are distractors).
    max_passage_words : int
        Passages are cut to this many whitespace-separated words (default 160).
    min_query_terms, min_passage_terms : int
        Minimum analysed terms of a kept query (2) and passage (8).
    k1, b : float
        BM25 parameters of the candidate retrieval (1.2, 0.75).

    Returns
    -------
    OfflineCorpus
        With Python 3.11.7 and the defaults: 994 passages; 787 train and 207 OOD queries;
        5 pairs per query (3,935 train and 1,035 OOD pairs); built in 1–3 s.

    Raises
    ------
    ConfigError
        If Python runs with ``-OO`` (docstrings stripped) or a parameter is out of range.
    """
    if sys.flags.optimize >= 2:
        raise ConfigError("offline corpus: Python runs with -OO, which strips the docstrings it is built from.")
    for name, value, low in (("n_negatives", n_negatives, 0), ("n_random", n_random, 0),
                             ("max_passage_words", max_passage_words, 1), ("min_query_terms", min_query_terms, 1),
                             ("min_passage_terms", min_passage_terms, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name}: expected an int >= {low}, got {value!r}.")
    if max_queries is not None and (not isinstance(max_queries, (int, np.integer)) or max_queries < 1):
        raise ConfigError(f"max_queries: expected a positive int or None, got {max_queries!r}.")
    rng = as_generator(seed)

    entries = _harvest(max_passage_words, min_query_terms, min_passage_terms)
    if not entries:
        raise ConfigError("offline corpus: no docstrings found in the standard library.")
    pid = np.arange(len(entries))
    split_of = np.array([_split_of(e.module) for e in entries])
    modules = np.array([e.module for e in entries])
    collection = pd.DataFrame({"docid": pd.Series([str(i) for i in pid], dtype=object),
                               "text": pd.Series([e.passage for e in entries], dtype=object)})
    sources = pd.DataFrame({"docid": collection["docid"], "split": pd.Series(split_of, dtype=object),
                            "module": pd.Series(modules, dtype=object),
                            "qualname": pd.Series([e.qualname for e in entries], dtype=object)})

    pairs: dict[str, pd.DataFrame] = {}
    queries: dict[str, pd.DataFrame] = {}
    qrels: dict[str, pd.DataFrame] = {}
    runs: dict[str, pd.DataFrame] = {}
    for split in SPLITS:
        docs = np.flatnonzero(split_of == split)  # global pids of this split, ascending
        qsel = docs
        if max_queries is not None and docs.size > max_queries:
            qsel = np.sort(rng.choice(docs, size=int(max_queries), replace=False))
        index = BM25Index([entries[j].passage for j in docs], k1=k1, b=b)
        scores = index.score_matrix([entries[j].query for j in qsel])  # (n_q, n_docs)
        rows: dict[str, list[Any]] = {c: [] for c in (*PAIR_COLUMNS, "rank", "score")}
        for r, qpid in enumerate(qsel):
            own = int(np.searchsorted(docs, qpid))
            s = scores[r]
            order = np.lexsort((docs, -s))  # best score first, ties by smaller pid
            negs = [int(k) for k in order if k != own][:n_negatives]
            pool = np.setdiff1d(np.arange(docs.size), np.array([own, *negs], dtype=np.int64))
            n_draw = min(n_random, pool.size)
            rand = rng.choice(pool, size=n_draw, replace=False).tolist() if n_draw else []
            cand = [own, *negs, *(int(k) for k in rand)]
            cand.sort(key=lambda k: (-s[k], docs[k]))
            for rank, k in enumerate(cand, start=1):
                dpid = int(docs[k])
                grade = 2 if dpid == qpid else (1 if modules[dpid] == modules[qpid] else 0)
                rows["qid"].append(str(qpid))
                rows["docid"].append(str(dpid))
                rows["query"].append(entries[qpid].query)
                rows["passage"].append(entries[dpid].passage)
                rows["relevance"].append(grade)
                rows["rank"].append(rank)
                rows["score"].append(float(s[k]))
        table = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in rows.items()})
        table["relevance"] = table["relevance"].astype(np.int64)
        table["rank"] = table["rank"].astype(np.int64)
        table["score"] = table["score"].astype(np.float64)
        pairs[split] = table[list(PAIR_COLUMNS)].copy()
        runs[split] = table[["qid", "docid", "rank", "score"]].copy()
        qrels[split] = table[["qid", "docid", "relevance"]].copy()
        queries[split] = pd.DataFrame({"qid": pd.Series([str(q) for q in qsel], dtype=object),
                                       "text": pd.Series([entries[q].query for q in qsel], dtype=object)})

    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "modules": list(STDLIB_MODULES),
        "ood_packages": list(OOD_PACKAGES),
        "params": {"seed": seed if isinstance(seed, (int, np.integer)) else "generator",
                   "n_negatives": int(n_negatives), "n_random": int(n_random),
                   "max_queries": None if max_queries is None else int(max_queries),
                   "max_passage_words": int(max_passage_words), "min_query_terms": int(min_query_terms),
                   "min_passage_terms": int(min_passage_terms), "bm25": {"k1": float(k1), "b": float(b)}},
        "grades": {"2": "the query's own docstring body", "1": "candidate from the same module",
                   "0": "candidate from another module"},
        "analyzer": DEFAULT_ANALYZER.describe(),
    }
    corpus = OfflineCorpus(pairs, queries, qrels, runs, collection, sources, manifest)
    manifest["counts"] = corpus.counts()
    if out_dir is None:
        return corpus
    return _write(corpus, Path(out_dir))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write("".join(line + "\n" for line in lines).encode("utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(corpus: OfflineCorpus, root: Path) -> OfflineCorpus:
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def put(name: str, lines: Sequence[str]) -> None:
        paths[name] = root / name
        _write_lines(paths[name], lines)

    for text in corpus.collection["text"]:
        if "\t" in text or "\n" in text:  # pragma: no cover - texts are whitespace-collapsed
            raise ArtifactError(f"offline corpus: passage contains a tab or newline: {text[:60]!r}.")
    put("collection.tsv", [f"{d}\t{t}" for d, t in zip(corpus.collection["docid"], corpus.collection["text"])])
    put("sources.tsv", [f"{d}\t{s}\t{m}\t{q}" for d, s, m, q in zip(*(corpus.sources[c] for c in corpus.sources))])
    for split in SPLITS:
        q = corpus.queries[split]
        put(f"queries.{split}.tsv", [f"{i}\t{t}" for i, t in zip(q["qid"], q["text"])])
        qr = corpus.qrels[split]
        put(f"qrels.{split}.txt", [f"{i} 0 {d} {g}" for i, d, g in zip(qr["qid"], qr["docid"], qr["relevance"])])
        rn = corpus.runs[split]
        put(f"run.{split}.tsv", [f"{i}\t{d}\t{r}" for i, d, r in zip(rn["qid"], rn["docid"], rn["rank"])])
        name = f"pairs.{split}.jsonl"
        paths[name] = write_pairs_jsonl(corpus.pairs[split], root / name)
    manifest = dict(corpus.manifest)
    manifest["files"] = {name: _sha256(p) for name, p in sorted(paths.items())}
    paths["manifest.json"] = root / "manifest.json"
    with atomic_write(paths["manifest.json"], "wb") as fh:
        fh.write((json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    return OfflineCorpus(corpus.pairs, corpus.queries, corpus.qrels, corpus.runs, corpus.collection,
                         corpus.sources, manifest, root, paths)


def load_offline_corpus(root: str | os.PathLike[str], *, verify: bool = True) -> OfflineCorpus:
    """Load a corpus written by :func:`build_offline_corpus`.

    Parameters
    ----------
    root : path
        The ``out_dir`` of the build.
    verify : bool
        Check every file's SHA-256 against the manifest (default ``True``).

    Raises
    ------
    ArtifactError
        If the manifest or a file is missing, malformed, or does not match its hash.
    """
    root = Path(root)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise ArtifactError(f"{mpath}: offline corpus manifest not found (build it with 'hedonic corpus --out {root}').")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{mpath}:{exc.lineno}: malformed JSON ({exc.msg}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ArtifactError(f"{mpath}: expected format {_FORMAT!r}, got {manifest.get('format') if isinstance(manifest, dict) else manifest!r}.")
    files = manifest.get("files", {})
    paths = {name: root / name for name in files}
    if verify:
        for name, digest in files.items():
            p = root / name
            if not p.is_file():
                raise ArtifactError(f"{p}: listed in the manifest but missing.")
            if _sha256(p) != digest:
                raise ArtifactError(f"{p}: SHA-256 does not match the manifest (file modified or truncated).")
    paths["manifest.json"] = mpath
    collection = load_collection(root / "collection.tsv")
    src_path = root / "sources.tsv"
    if not src_path.is_file():
        raise ArtifactError(f"{src_path}: offline corpus file not found.")
    src_rows = [line.split("\t") for line in src_path.read_text(encoding="utf-8").splitlines() if line]
    if any(len(r) != 4 for r in src_rows):
        bad = next(i for i, r in enumerate(src_rows, 1) if len(r) != 4)
        raise ArtifactError(f"{root / 'sources.tsv'}:{bad}: expected 4 tab-separated fields (pid, split, module, qualname).")
    sources = pd.DataFrame(src_rows, columns=["docid", "split", "module", "qualname"], dtype=object)
    pairs, queries, qrels, runs = {}, {}, {}, {}
    for split in SPLITS:
        pairs[split] = load_pairs_jsonl(root / f"pairs.{split}.jsonl")
        queries[split] = load_queries(root / f"queries.{split}.tsv")
        qrels[split] = load_qrels(root / f"qrels.{split}.txt")
        runs[split] = load_run(root / f"run.{split}.tsv")
    return OfflineCorpus(pairs, queries, qrels, runs, collection, sources, manifest, root, paths)

