"""Readers for the IR file formats the studies use, and the pairs table they build.

Formats (one record per line, UTF-8; blank lines are skipped)
--------------------------------------------------------------
- MS MARCO ``collection.tsv``: ``pid<TAB>text``                       -> :func:`load_collection`
- MS MARCO ``queries.*.tsv``:  ``qid<TAB>text``                       -> :func:`load_queries`
- qrels, TREC format ``qid 0 docid grade`` (whitespace-separated; MS MARCO's ``qrels.*.tsv``
  and TREC DL 2019/2020's graded 0–3 qrels are this format)          -> :func:`load_qrels`
- runs, TREC ``qid Q0 docid rank score tag`` or MS MARCO ``qid<TAB>pid<TAB>rank``
                                                                       -> :func:`load_run`
- pairs as JSON lines ``{"query", "passage", ["qid", "docid", "relevance" | "label"]}``
                                                                       -> :func:`load_pairs_jsonl`
- pairs as TSV with a header naming the columns, or headerless ``query<TAB>passage[<TAB>grade]``
                                                                       -> :func:`load_pairs_tsv`

Identifiers are kept as **strings** everywhere (``ir_measures`` and TREC allow non-numeric
ids). Every problem with a file raises :class:`~hedonic_neurons.errors.ArtifactError` naming
the path and, for a malformed record, the line number and what was expected.

The pairs table
---------------
A pandas DataFrame with columns ``qid, docid, query, passage, relevance`` (ids str, texts
str, relevance int: the qrels grade, 0 when the pair is not judged). :func:`pairs_from_run`
builds it from a collection, queries, a run and qrels. Reading through the ``ir_datasets``
package is in :mod:`hedonic_neurons.ir.irds` and needs an explicit ``allow_network=True``
(``ir_datasets`` downloads what it does not find locally and cannot be told not to).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, InputError

__all__ = [
    "PAIR_COLUMNS",
    "load_collection",
    "load_pairs_jsonl",
    "load_pairs_tsv",
    "load_qrels",
    "load_queries",
    "load_run",
    "pairs_from_run",
    "write_pairs_jsonl",
]

#: Columns of every pairs DataFrame, in order.
PAIR_COLUMNS: tuple[str, ...] = ("qid", "docid", "query", "passage", "relevance")

PathLike = str | os.PathLike[str]


def _lines(path: PathLike, what: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file, 1-based, without the newline."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: {what} file not found.")
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ArtifactError(f"{p}:{lineno}: {what}: not valid UTF-8 ({exc.reason}).") from exc
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _id_text(path: PathLike, what: str, id_name: str, file_id: str) -> pd.DataFrame:
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in _lines(path, what):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip():
            raise ArtifactError(
                f"{path}:{lineno}: malformed {what} line: expected '{file_id}<TAB>text' (2 tab-separated "
                f"fields), got {len(parts)} field(s): {line[:80]!r}."
            )
        key = parts[0].strip()
        if key in seen:
            raise ArtifactError(f"{path}:{lineno}: duplicate {id_name} {key!r} (first on line {seen[key]}).")
        seen[key] = lineno
        ids.append(key)
        texts.append(parts[1])
    return pd.DataFrame({id_name: pd.Series(ids, dtype=object), "text": pd.Series(texts, dtype=object)})


def load_collection(path: PathLike) -> pd.DataFrame:
    """Read an MS MARCO-style ``collection.tsv`` (``pid<TAB>text``).

    Returns
    -------
    pandas.DataFrame with columns ``docid`` (str) and ``text`` (str), in file order.
    """
    return _id_text(path, "collection", "docid", "pid")


def load_queries(path: PathLike) -> pd.DataFrame:
    """Read an MS MARCO-style ``queries.tsv`` (``qid<TAB>text``).

    Returns
    -------
    pandas.DataFrame with columns ``qid`` (str) and ``text`` (str), in file order.
    """
    return _id_text(path, "queries", "qid", "qid")


def _parse_int(value: str, path: PathLike, lineno: int, field: str, expected: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ArtifactError(f"{path}:{lineno}: {field} {value!r} is not an integer ({expected}).") from None


def load_qrels(path: PathLike) -> pd.DataFrame:
    """Read TREC-format relevance judgements ``qid iteration docid grade``.

    Fields may be separated by tabs or spaces (MS MARCO ``qrels.*.tsv`` uses tabs, TREC DL
    2019/2020 spaces); grades are integers (TREC DL: 0–3). A repeated ``(qid, docid)`` keeps
    the last grade, as ``trec_eval`` does.

    Returns
    -------
    pandas.DataFrame with columns ``qid`` (str), ``docid`` (str), ``relevance`` (int64).
    """
    rec: dict[tuple[str, str], int] = {}
    expected = "expected 'qid 0 docid grade' (4 whitespace-separated fields, integer grade)"
    for lineno, line in _lines(path, "qrels"):
        parts = line.split()
        if len(parts) != 4:
            raise ArtifactError(f"{path}:{lineno}: malformed qrels line: {expected}, got {len(parts)} "
                                f"field(s): {line[:80]!r}.")
        rec[(parts[0], parts[2])] = _parse_int(parts[3], path, lineno, "grade", expected)
    return pd.DataFrame(
        {
            "qid": pd.Series([k[0] for k in rec], dtype=object),
            "docid": pd.Series([k[1] for k in rec], dtype=object),
            "relevance": np.fromiter(rec.values(), dtype=np.int64, count=len(rec)),
        }
    )


def load_run(path: PathLike) -> pd.DataFrame:
    """Read a run: TREC ``qid Q0 docid rank score tag`` or MS MARCO ``qid<TAB>pid<TAB>rank``.

    The format is decided by the first record (6 or 3 fields) and every line must follow it.
    MS MARCO runs carry no score; ``score = -rank`` is used so that a higher score is better
    and the order is the file's ranks.

    Returns
    -------
    pandas.DataFrame with columns ``qid`` (str), ``docid`` (str), ``rank`` (int64),
    ``score`` (float64), sorted by ``qid`` (file order of first appearance) then ``rank``.
    """
    qids: list[str] = []
    docids: list[str] = []
    ranks: list[int] = []
    scores: list[float] = []
    n_fields: int | None = None
    for lineno, line in _lines(path, "run"):
        parts = line.split()
        if n_fields is None:
            if len(parts) not in (3, 6):
                raise ArtifactError(
                    f"{path}:{lineno}: malformed run line: expected TREC 'qid Q0 docid rank score tag' "
                    f"(6 fields) or MS MARCO 'qid<TAB>pid<TAB>rank' (3 fields), got {len(parts)}: {line[:80]!r}."
                )
            n_fields = len(parts)
        if len(parts) != n_fields:
            fmt = "TREC 'qid Q0 docid rank score tag'" if n_fields == 6 else "MS MARCO 'qid<TAB>pid<TAB>rank'"
            raise ArtifactError(f"{path}:{lineno}: malformed run line: expected {n_fields} fields ({fmt}, "
                                f"as on the first line), got {len(parts)}: {line[:80]!r}.")
        if n_fields == 6:
            qid, _, docid, rank_s, score_s, _ = parts
            rank = _parse_int(rank_s, path, lineno, "rank", "TREC run")
            try:
                score = float(score_s)
            except ValueError:
                raise ArtifactError(f"{path}:{lineno}: score {score_s!r} is not a number (TREC run).") from None
        else:
            qid, docid, rank_s = parts
            rank = _parse_int(rank_s, path, lineno, "rank", "MS MARCO run")
            score = -float(rank)
        qids.append(qid)
        docids.append(docid)
        ranks.append(rank)
        scores.append(score)
    df = pd.DataFrame({"qid": pd.Series(qids, dtype=object), "docid": pd.Series(docids, dtype=object),
                       "rank": np.asarray(ranks, dtype=np.int64), "score": np.asarray(scores, dtype=np.float64)})
    first = {q: i for i, q in enumerate(dict.fromkeys(qids))}
    order = np.lexsort((df["rank"].to_numpy(), np.array([first[q] for q in qids], dtype=np.int64)))
    return df.iloc[order].reset_index(drop=True)


def _finish_pairs(rows: dict[str, list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": pd.Series(rows["qid"], dtype=object),
            "docid": pd.Series(rows["docid"], dtype=object),
            "query": pd.Series(rows["query"], dtype=object),
            "passage": pd.Series(rows["passage"], dtype=object),
            "relevance": np.asarray(rows["relevance"], dtype=np.int64),
        }
    )


def _fill_ids(rows: dict[str, list[Any]]) -> None:
    """Give pairs without ``qid``/``docid`` ids derived from the distinct texts (first-seen order).

    Generated ids (``q0, q1, ...``/``d0, d1, ...``) skip any id the file already uses.
    """
    for key, text_key, prefix in (("qid", "query", "q"), ("docid", "passage", "d")):
        used = {v for v in rows[key] if v is not None}
        ids: dict[str, str] = {}
        counter = 0
        for i, v in enumerate(rows[key]):
            if v is not None:
                continue
            text = rows[text_key][i]
            if text not in ids:
                while f"{prefix}{counter}" in used:
                    counter += 1
                ids[text] = f"{prefix}{counter}"
                used.add(ids[text])
            rows[key][i] = ids[text]


def load_pairs_jsonl(path: PathLike) -> pd.DataFrame:
    """Read query–passage pairs from JSON lines.

    Each line is an object with string fields ``query`` and ``passage`` and optionally
    ``qid``, ``docid`` and an integer grade ``relevance`` (or its alias ``label``); other
    keys are ignored. Missing ids are derived from the distinct texts (``q0, q1, ...`` and
    ``d0, d1, ...`` in order of first appearance); a missing grade is 0.

    Returns
    -------
    pandas.DataFrame with columns :data:`PAIR_COLUMNS`.
    """
    rows: dict[str, list[Any]] = {c: [] for c in PAIR_COLUMNS}
    for lineno, line in _lines(path, "pairs JSONL"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno}).") from exc
        if not isinstance(obj, dict):
            raise ArtifactError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}.")
        for key in ("query", "passage"):
            if not isinstance(obj.get(key), str):
                raise ArtifactError(f"{path}:{lineno}: expected a string field {key!r}, got "
                                    f"{type(obj.get(key)).__name__} (keys: {sorted(obj)}).")
        grade = obj.get("relevance", obj.get("label", 0))
        if isinstance(grade, bool) or not isinstance(grade, (int, float)) or float(grade) != int(grade):
            raise ArtifactError(f"{path}:{lineno}: expected an integer 'relevance'/'label', got {grade!r}.")
        rows["query"].append(obj["query"])
        rows["passage"].append(obj["passage"])
        rows["qid"].append(None if obj.get("qid") is None else str(obj["qid"]))
        rows["docid"].append(None if obj.get("docid") is None else str(obj["docid"]))
        rows["relevance"].append(int(grade))
    _fill_ids(rows)
    return _finish_pairs(rows)


#: Column names that mark a TSV's first line as a header.
_TSV_HEADER_NAMES = frozenset({"qid", "docid", "query", "passage", "relevance", "label"})


def load_pairs_tsv(path: PathLike) -> pd.DataFrame:
    """Read query–passage pairs from a TSV file.

    Either the first line is a header naming the columns (a first line naming any of
    ``qid``, ``docid``, ``query``, ``passage``, ``relevance``, ``label`` is a header, and it
    must include ``query`` and ``passage``; other columns are ignored), or the
    file is headerless with ``query<TAB>passage`` or ``query<TAB>passage<TAB>grade`` lines.
    Ids and grades are completed as in :func:`load_pairs_jsonl`.

    Returns
    -------
    pandas.DataFrame with columns :data:`PAIR_COLUMNS`.
    """
    rows: dict[str, list[Any]] = {c: [] for c in PAIR_COLUMNS}
    columns: list[str] | None = None
    for lineno, line in _lines(path, "pairs TSV"):
        parts = line.split("\t")
        if columns is None:
            lowered = [p.strip().lower() for p in parts]
            if any(c in _TSV_HEADER_NAMES for c in lowered):  # a header: it names a known column
                lacking = [c for c in ("query", "passage") if c not in lowered]
                if lacking:
                    raise ArtifactError(f"{path}:{lineno}: the header {parts} lacks the column(s) {lacking}; a "
                                        "header must name 'query' and 'passage'.")
                if len(set(lowered)) != len(lowered):
                    raise ArtifactError(f"{path}:{lineno}: the header {parts} names a column twice.")
                columns = lowered
                continue
            if len(parts) not in (2, 3):
                raise ArtifactError(f"{path}:{lineno}: expected a header with 'query' and 'passage' or "
                                    f"headerless 'query<TAB>passage[<TAB>grade]', got {len(parts)} field(s).")
            columns = ["query", "passage", "relevance"][: len(parts)]
        if len(parts) != len(columns):
            raise ArtifactError(f"{path}:{lineno}: expected {len(columns)} tab-separated fields "
                                f"({', '.join(columns)}), got {len(parts)}: {line[:80]!r}.")
        rec = dict(zip(columns, parts))
        grade_s = rec.get("relevance", rec.get("label", "0")).strip() or "0"
        rows["relevance"].append(_parse_int(grade_s, path, lineno, "grade", "an integer relevance grade"))
        rows["query"].append(rec["query"])
        rows["passage"].append(rec["passage"])
        rows["qid"].append(rec.get("qid") or None)
        rows["docid"].append(rec.get("docid") or None)
    _fill_ids(rows)
    return _finish_pairs(rows)


def write_pairs_jsonl(pairs: pd.DataFrame, path: PathLike) -> Path:
    """Write a pairs DataFrame as JSON lines (keys in :data:`PAIR_COLUMNS` order), atomically."""
    from ..io import atomic_write

    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise InputError(f"pairs: missing column(s) {missing}; got {list(pairs.columns)}.")
    with atomic_write(path) as fh:
        for qid, docid, q, d, r in zip(*(pairs[c].tolist() for c in PAIR_COLUMNS)):
            rec = {"qid": str(qid), "docid": str(docid), "query": q, "passage": d, "relevance": int(r)}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


def _as_frame(obj: pd.DataFrame | PathLike, loader: Any, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    df = obj if isinstance(obj, pd.DataFrame) else loader(obj)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{name}: missing column(s) {missing}; got {list(df.columns)}.")
    return df


def pairs_from_run(
    collection: pd.DataFrame | PathLike,
    queries: pd.DataFrame | PathLike,
    run: pd.DataFrame | PathLike,
    qrels: pd.DataFrame | PathLike | None = None,
    depth: int = 100,
) -> pd.DataFrame:
    """Build the pairs table of a re-ranking set: the top ``depth`` documents of each query.

    Parameters
    ----------
    collection : DataFrame (docid, text) or path to ``collection.tsv``
    queries : DataFrame (qid, text) or path to ``queries.tsv``
    run : DataFrame (qid, docid, rank[, score]) or path to a run file
    qrels : DataFrame (qid, docid, relevance) or path, optional
        Grades; pairs not judged get relevance 0.
    depth : int
        Candidates kept per query (by rank).

    Returns
    -------
    pandas.DataFrame with columns :data:`PAIR_COLUMNS`, in the run's query order, then rank.

    Raises
    ------
    InputError
        If the run names a query or document absent from ``queries``/``collection``.
    """
    if not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InputError(f"depth: expected a positive int, got {depth!r}.")
    coll = _as_frame(collection, load_collection, "collection", ("docid", "text"))
    qs = _as_frame(queries, load_queries, "queries", ("qid", "text"))
    rn = _as_frame(run, load_run, "run", ("qid", "docid", "rank"))
    doc_text = dict(zip(coll["docid"].astype(str), coll["text"]))
    q_text = dict(zip(qs["qid"].astype(str), qs["text"]))
    grades: dict[tuple[str, str], int] = {}
    if qrels is not None:
        qr = _as_frame(qrels, load_qrels, "qrels", ("qid", "docid", "relevance"))
        grades = {(str(q), str(d)): int(r) for q, d, r in zip(qr["qid"], qr["docid"], qr["relevance"])}
    rn = rn.assign(qid=rn["qid"].astype(str), docid=rn["docid"].astype(str))
    q_order = {q: i for i, q in enumerate(dict.fromkeys(rn["qid"]))}
    rn = rn.assign(_q=rn["qid"].map(q_order)).sort_values(["_q", "rank"], kind="stable")
    rn = rn.groupby("_q", sort=False).head(int(depth))
    rows: dict[str, list[Any]] = {c: [] for c in PAIR_COLUMNS}
    for qid, docid in zip(rn["qid"], rn["docid"]):
        if qid not in q_text:
            raise InputError(f"run: query {qid!r} is not in queries ({len(q_text)} queries).")
        if docid not in doc_text:
            raise InputError(f"run: document {docid!r} (query {qid!r}) is not in the collection "
                             f"({len(doc_text)} documents).")
        rows["qid"].append(qid)
        rows["docid"].append(docid)
        rows["query"].append(q_text[qid])
        rows["passage"].append(doc_text[docid])
        rows["relevance"].append(grades.get((qid, docid), 0))
    return _finish_pairs(rows)
