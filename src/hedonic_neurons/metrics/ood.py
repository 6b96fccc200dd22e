"""OOD drop of a coalition: the task metric lost when the coalition is ablated (paper §4, docs/method.md §8).

    ΔM(C) = M({ℓ(x)}) − M({ℓ_{−C}(x)})

on the out-of-distribution set, where ``ℓ`` is the model's own scalar output
(:func:`hedonic_neurons.models.score`, the *final* readout) and ``ℓ_{−C}`` the same with the
coalition's neurons reverted to their pre-LoRA weights through
:func:`hedonic_neurons.models.ablation.ablate` on the whole model. ``M`` is

- NDCG@10 for relevance modelling (``task="relevance"``), computed by ``ir_measures``
  (trec_eval's nDCG: linear gains ``rel``, ``log2(rank + 1)`` discounts, mean over the
  queries present in both the qrels and the run; equal scores are ordered by trec_eval's
  tie rule),
- −MSE against the regression targets for CQTR and Mean-TF/L (``task="cqtr"`` /
  ``"mean_tf_l"``).

A larger ΔM(C) means the coalition matters more for the task.

**One pass over the data.** :func:`ood_drop` reads every batch once: for each batch it scores
the unablated model, then, for each coalition in turn, enters ``ablate`` (which masks LoRA
factors in place, no copy of the model) and scores the same batch again. Memory holds one
batch of activations plus a ``(K, N)`` float array of scores, so the batches may be a
streaming iterator. (Replicating a batch to run several ablations in one forward pass would
need per-row masks inside the LoRA layers, which PEFT does not offer; masking is cheap
next to the forward pass.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..partition import Partition

__all__ = ["TASK_METRIC", "ndcg_at_10", "neg_mse", "ood_drop", "task_metric"]

TASK_METRIC: dict[str, str] = {
    "relevance": "ndcg@10",
    "rm": "ndcg@10",
    "cqtr": "neg_mse",
    "mean_tf_l": "neg_mse",
}


def _build_qrels(
    qids: Sequence[Any], docids: Sequence[Any], qrels: Any
) -> list[Any]:
    from ir_measures import Qrel

    if isinstance(qrels, pd.DataFrame):
        cols = {c.lower(): c for c in qrels.columns}
        q = cols.get("qid", cols.get("query_id"))
        d = cols.get("docid", cols.get("doc_id"))
        r = cols.get("relevance", cols.get("rel", cols.get("label")))
        if q is None or d is None or r is None:
            raise InputError(
                f"qrels: expected DataFrame columns qid, docid, relevance; got {list(qrels.columns)}."
            )
        return [Qrel(str(a), str(b), int(c)) for a, b, c in zip(qrels[q], qrels[d], qrels[r])]
    if isinstance(qrels, Mapping):
        return [Qrel(str(q), str(d), int(r)) for q, docs in qrels.items() for d, r in docs.items()]
    grades = np.asarray(qrels)
    if grades.ndim == 1 and grades.shape[0] == len(qids):
        if not np.all(np.mod(grades, 1) == 0):
            raise InputError("qrels: aligned relevance grades must be integers.")
        return [Qrel(str(q), str(d), int(g)) for q, d, g in zip(qids, docids, grades)]
    raise InputError(
        "qrels: expected a DataFrame (qid, docid, relevance), a mapping qid -> {docid: grade}, "
        f"or an array of {len(qids)} integer grades aligned with qids; got {type(qrels).__name__} "
        f"of shape {np.shape(qrels)}."
    )


def ndcg_at_10(
    qids: Sequence[Any], docids: Sequence[Any], scores: Sequence[float] | np.ndarray, qrels: Any
) -> float:
    """Mean NDCG@10 of a run, through ``ir_measures`` (trec_eval definition).

    Parameters
    ----------
    qids, docids : sequence, length N
        Query and document id of each scored pair (converted to ``str``).
    scores : array_like, shape (N,)
        Model scores; higher ranks first.
    qrels : DataFrame with columns ``qid, docid, relevance`` | mapping ``qid -> {docid: grade}`` |
        array of N integer grades aligned with ``qids``/``docids``.

    Returns
    -------
    float
        Mean over the queries present in both the qrels and the run.

    Raises
    ------
    InputError
        On length mismatches, non-finite scores, duplicated (qid, docid) pairs, or no
        overlap between qrels and run.
    """
    import ir_measures
    from ir_measures import ScoredDoc, nDCG

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not (len(qids) == len(docids) == s.shape[0]):
        raise InputError(
            f"qids/docids/scores: expected equal lengths, got {len(qids)}, {len(docids)}, {s.shape[0]}."
        )
    if not np.isfinite(s).all():
        raise InputError(f"scores: found {int((~np.isfinite(s)).sum())} non-finite scores.")
    keys = [(str(q), str(d)) for q, d in zip(qids, docids)]
    if len(set(keys)) != len(keys):
        raise InputError("qids/docids: a (qid, docid) pair appears more than once in the run.")
    run = [ScoredDoc(q, d, float(v)) for (q, d), v in zip(keys, s)]
    rels = _build_qrels(qids, docids, qrels)
    if not {q for q, _ in keys} & {r.query_id for r in rels}:
        raise InputError("qrels: no query of the run has relevance judgements.")
    measure = nDCG @ 10
    return float(ir_measures.calc_aggregate([measure], rels, run)[measure])


def neg_mse(scores: Sequence[float] | np.ndarray, targets: Sequence[float] | np.ndarray) -> float:
    """``−mean((score − target)²)`` (the metric for CQTR and Mean-TF/L; higher is better)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if s.shape != t.shape:
        raise InputError(f"targets: expected shape {s.shape} (one per scored input), got {t.shape}.")
    return float(-np.mean((s - t) ** 2))


def task_metric(
    task: str,
    scores: np.ndarray,
    *,
    qids: Sequence[Any] | None = None,
    docids: Sequence[Any] | None = None,
    qrels: Any = None,
    targets: Sequence[float] | np.ndarray | None = None,
) -> float:
    """The task's metric ``M`` of a score vector (NDCG@10 or −MSE, :data:`TASK_METRIC`)."""
    kind = _metric_kind(task)
    if kind == "ndcg@10":
        if qids is None or docids is None:
            raise InputError(f"qids/docids: task {task!r} (NDCG@10) needs the query and document ids.")
        return ndcg_at_10(qids, docids, scores, qrels if qrels is not None else targets)
    if targets is None:
        raise InputError(f"targets: task {task!r} (−MSE) needs the regression targets, got None.")
    return neg_mse(scores, targets)


def _metric_kind(task: str) -> str:
    key = str(task).lower().replace("-", "_").replace("/", "_")
    if key not in TASK_METRIC:
        raise InputError(f"task: expected one of {sorted(TASK_METRIC)}, got {task!r}.")
    return TASK_METRIC[key]


def ood_drop(
    model: Any,
    batches: Iterable[Mapping[str, Any]],
    layer: int,
    partition: Partition,
    *,
    task: str,
    qids: Sequence[Any] | None = None,
    docids: Sequence[Any] | None = None,
    qrels: Any = None,
    targets: Sequence[float] | np.ndarray | None = None,
    coalitions: Sequence[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """OOD drop ``ΔM(C) = M(ℓ) − M(ℓ_{−C})`` of every coalition of one layer (paper §4).

    Parameters
    ----------
    model : torch.nn.Module
        A scalar model from :func:`hedonic_neurons.models.load_scalar_model` (PEFT LoRA).
    batches : iterable of tokenizer batches
        The OOD inputs, in the order of ``qids``/``docids``/``targets``; iterated once.
    layer : int
        The layer whose neurons ``partition`` groups.
    partition : Partition
        Partition of that layer's MLP neurons.
    task : {"relevance", "cqtr", "mean_tf_l"}
        Selects the metric: NDCG@10 (relevance) or −MSE.
    qids, docids : sequence, length N, optional
        Required for relevance.
    qrels : optional
        Relevance judgements for NDCG (see :func:`ndcg_at_10`); for relevance without
        ``qrels`` the ``targets`` are used as aligned grades.
    targets : array_like, shape (N,), optional
        Regression targets (CQTR / Mean-TF/L) or aligned relevance grades.
    coalitions : sequence of int, optional
        Indices into ``partition.coalitions``; default all.
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    pandas.DataFrame
        One row per coalition: ``layer, coalition, size, metric, metric_full,
        metric_ablated, drop``.
    """
    import torch

    from ..models import score
    from ..models.ablation import ablate

    kind = _metric_kind(task)
    if not isinstance(partition, Partition):
        raise InputError(f"partition: expected a Partition, got {type(partition).__name__}.")
    ids = list(range(partition.n_coalitions)) if coalitions is None else [int(c) for c in coalitions]
    bad = [c for c in ids if not 0 <= c < partition.n_coalitions]
    if bad:
        raise InputError(f"coalitions: indices {bad[:5]} outside 0..{partition.n_coalitions - 1}.")
    members = [partition.coalitions[c] for c in ids]

    full: list[np.ndarray] = []
    ablated: list[list[np.ndarray]] = [[] for _ in ids]
    it: Iterable[Mapping[str, Any]] = batches
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(batches, desc=f"OOD drop, layer {layer} ({len(ids)} coalitions)", leave=False)
    with torch.no_grad():
        for batch in it:
            full.append(score(model, batch).detach().float().cpu().numpy())
            for slot, m in enumerate(members):
                with ablate(model, {int(layer): m.tolist()}):
                    ablated[slot].append(score(model, batch).detach().float().cpu().numpy())
    if not full:
        raise InputError("batches: expected at least one batch, got none.")
    s_full = np.concatenate(full)
    kwargs = dict(qids=qids, docids=docids, qrels=qrels, targets=targets)
    m_full = task_metric(task, s_full, **kwargs)
    rows = []
    for slot, c in enumerate(ids):
        m_abl = task_metric(task, np.concatenate(ablated[slot]), **kwargs)
        rows.append({"layer": int(layer), "coalition": c, "size": int(members[slot].size), "metric": kind,
                     "metric_full": m_full, "metric_ablated": m_abl, "drop": m_full - m_abl})
    return pd.DataFrame(rows, columns=["layer", "coalition", "size", "metric", "metric_full",
                                       "metric_ablated", "drop"])
