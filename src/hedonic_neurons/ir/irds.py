"""Pairs from an ``ir_datasets`` dataset (e.g. ``msmarco-passage/trec-dl-2019/judged``).

``ir_datasets`` downloads a dataset's files on first access and has no switch that forbids it,
so this package calls it only when the user explicitly allows network access
(``allow_network=True``); when the files are already in ``ir_datasets``'s home
(``IR_DATASETS_HOME``), nothing is fetched. Without that permission, export the files once
and use the file readers of :mod:`hedonic_neurons.ir.loaders`.
"""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd

from ..errors import InputError
from .loaders import pairs_from_run

__all__ = ["pairs_from_ir_datasets"]


def pairs_from_ir_datasets(
    dataset_id: str,
    *,
    depth: int = 100,
    max_queries: int | None = None,
    allow_network: bool = False,
) -> pd.DataFrame:
    """Build the pairs table of a re-ranking set from an ``ir_datasets`` dataset.

    Candidates are the dataset's scored documents (its official first-stage run, e.g. the
    BM25 top-1000 of TREC DL), the top ``depth`` per query by score; datasets without scored
    documents use their judged documents as candidates. Grades come from the qrels.

    Parameters
    ----------
    dataset_id : str
        An ``ir_datasets`` id with queries, qrels and a docs store.
    depth : int
        Candidates per query.
    max_queries : int, optional
        Keep the first ``max_queries`` queries (in the dataset's order).
    allow_network : bool
        Must be True: ``ir_datasets`` may download files it does not find locally.

    Returns
    -------
    pandas.DataFrame with columns ``qid, docid, query, passage, relevance``.

    Raises
    ------
    InputError
        Without ``allow_network``, when ``ir_datasets`` is not installed, or when the dataset
        lacks queries, qrels or documents.
    """
    if not allow_network:
        raise InputError(
            "allow_network: ir_datasets downloads any file it does not find locally and cannot be "
            "told not to; pass allow_network=True to use it (nothing is fetched when the data is "
            "already in IR_DATASETS_HOME), or export the files and use load_collection / "
            "load_queries / load_qrels / load_run / pairs_from_run."
        )
    try:
        irds: Any = importlib.import_module("ir_datasets")
    except ImportError as exc:
        raise InputError("dataset_id: the ir_datasets package is not installed (pip install ir_datasets).") from exc
    ds = irds.load(dataset_id)
    for need in ("queries", "qrels", "docs"):
        if not getattr(ds, f"has_{need}")():
            raise InputError(f"dataset_id: {dataset_id!r} has no {need}; expected queries, qrels and documents.")
    queries = pd.DataFrame([(str(q.query_id), q.text) for q in ds.queries_iter()], columns=["qid", "text"])
    if max_queries is not None:
        queries = queries.head(max_queries)
    keep = set(queries["qid"])
    qrels = pd.DataFrame(
        [(str(r.query_id), str(r.doc_id), int(r.relevance)) for r in ds.qrels_iter() if str(r.query_id) in keep],
        columns=["qid", "docid", "relevance"],
    )
    if ds.has_scoreddocs():
        scored = ((str(s.query_id), str(s.doc_id), float(s.score)) for s in ds.scoreddocs_iter())
        run = pd.DataFrame([s for s in scored if s[0] in keep], columns=["qid", "docid", "score"])
    else:
        run = qrels.assign(score=qrels["relevance"].astype(float))[["qid", "docid", "score"]]
    run = run.sort_values(["qid", "score", "docid"], ascending=[True, False, True], kind="stable")
    run["rank"] = run.groupby("qid").cumcount() + 1
    run = run[run["rank"] <= depth]
    store = ds.docs_store()
    ids = list(dict.fromkeys(run["docid"]))
    docs = store.get_many(ids)
    collection = pd.DataFrame(
        [(d, _doc_text(docs[d])) for d in ids if d in docs], columns=["docid", "text"]
    )
    return pairs_from_run(collection, queries, run[["qid", "docid", "rank", "score"]], qrels, depth=depth)


def _doc_text(doc: Any) -> str:
    """The document's text field (``text``, else ``body``, else every string field joined)."""
    for field in ("text", "body"):
        if hasattr(doc, field):
            return str(getattr(doc, field))
    return " ".join(str(v) for v in doc[1:] if isinstance(v, str))
