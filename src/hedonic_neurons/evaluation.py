"""The one evaluation core: the metrics of a partition (docs/method.md §8), used by both the
study pipeline's evaluation stage and ``hedonic evaluate``.

Every function takes a partition, the records / features / model it needs and the options
explicitly (:class:`EvaluationOptions`), and returns a small frozen result with the per-coalition
table and the per-partition summary that goes into the long results
(``[model, task, method, seed, layer, metric, value]``, metric names from
:data:`hedonic_neurons.vocab.METRICS`):

========================  ====================  =============================================
function                  result                metrics
========================  ====================  =============================================
:func:`evaluate_synergy`  :class:`SynergyEval`  ``pair``, ``ratio`` (eq. 8, local readout)
:func:`evaluate_alignment` :class:`AlignmentEval` ``align_r2`` (max_j corr²(a_C, f_j))
:func:`evaluate_predictivity` :class:`PredictivityEval` ``predictivity_r2`` (ridge, OOD R²)
:func:`evaluate_ood`      :class:`OODEval`      ``ood_drop`` (ΔM through the model)
:func:`evaluate_heldout_synergy` :class:`HeldoutSynergyEval` ``pair_heldout``, ``ratio_heldout``,
                          (§8.5)                ``pair_pooled_heldout``, ``pair_pooled_excess``,
                                                ``frac_sig_pair`` (and ``pair_pooled`` in sample)
:func:`evaluate_ood_estimated` :class:`OODEstimateEval` ``ood_drop``, ``ood_drop_rel``,
                          (§8.5)                ``ood_drop_excess``, ``frac_sig_ood`` (every coalition)
:func:`partition_shape`   dict                  ``n_coalitions``, ``largest_share``, ``singleton_share``
========================  ====================  =============================================

Summaries average over the coalitions of size ``>= options.min_size`` (finite values only);
the OOD drop ablates the ``options.max_coalitions`` largest of them, the same rule for every
method (docs/method.md §8.4); the estimated OOD drop (:func:`evaluate_ood_estimated`, from
precomputed per-neuron attributions) covers every one of them. Only
:func:`evaluate_ood` needs torch (the model); the others are NumPy/pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import vocab
from ._evaluation_evidence import (
    evaluate_alignment_null,
    evaluate_heldout_synergy,
    evaluate_ood_estimated,
)
from ._evaluation_types import (
    AlignmentEval,
    EvaluationOptions,
    HeldoutSynergyEval,
    OODEstimateEval,
    OODEval,
    PartitionEval,
    PredictivityEval,
    SynergyEval,
    _check_partition,
    _check_record,
    _mean_ci,
)
from .errors import InputError
from .partition import Partition
from .records import LayerRecord

__all__ = [
    "AlignmentEval",
    "EvaluationOptions",
    "HeldoutSynergyEval",
    "OODEstimateEval",
    "OODEval",
    "PartitionEval",
    "PredictivityEval",
    "SynergyEval",
    "evaluate_alignment",
    "evaluate_alignment_null",
    "evaluate_heldout_synergy",
    "evaluate_ood",
    "evaluate_ood_estimated",
    "evaluate_partition",
    "evaluate_predictivity",
    "evaluate_synergy",
    "ood_coalitions",
    "partition_shape",
]


# ---------------------------------------------------------------------- functions
def partition_shape(partition: Partition) -> dict[str, float]:
    """``n_coalitions``, ``largest_share`` and ``singleton_share`` (docs/method.md §5)."""
    s = _check_partition(partition).summary()
    return {"n_coalitions": float(s.n_coalitions), "largest_share": float(s.largest_share),
            "singleton_share": float(s.singleton_share)}


def evaluate_synergy(record: LayerRecord, partition: Partition, options: EvaluationOptions = EvaluationOptions(), *,
                     progress: bool = False, psi: Any = None) -> SynergyEval:
    """Pair(C) and Ratio(C) of every coalition of size ``>= options.min_size`` on the local readout.

    Parameters
    ----------
    record : LayerRecord
        Records of the layer (``n`` players, ``N`` inputs).
    partition : Partition
        Partition of the same ``n`` players.
    options : EvaluationOptions
    progress : bool
    psi : array_like, SynergyMatrix or ZeroDiagonalPhi, shape (n, n), optional
        The exact ``ψ(i, j)`` of ``record`` when already computed: Pair and Ratio are then read
        from it and the record's marginals (:func:`hedonic_neurons.metrics.synergy.coalition_synergy_from_psi`;
        every row exact, ``options.max_members`` unused) instead of one exact PAS per coalition.
    """
    from .metrics.synergy import coalition_synergy, coalition_synergy_from_psi
    from .valuations import marginals

    part = _check_partition(partition)
    rec = _check_record(record, part, "record")
    if psi is not None:
        df = coalition_synergy_from_psi(psi, marginals(rec), part, min_size=options.min_size)
    else:
        df = coalition_synergy(rec, part, min_size=options.min_size, max_members=options.max_members,
                               seed=options.seed, backend=options.backend, progress=progress)
    pm, pci = _mean_ci(df["pair"], options.confidence)
    rm, rci = _mean_ci(df["ratio"], options.confidence)
    n_undef = int((~df["ratio_defined"].astype(bool)).sum()) if len(df) else 0
    return SynergyEval(df, pm, pci, rm, rci, len(df), n_undef)


def evaluate_alignment(ood_record: LayerRecord, partition: Partition, features: pd.DataFrame,
                       options: EvaluationOptions = EvaluationOptions()) -> AlignmentEval:
    """Feature alignment of every coalition against the LETOR features of the same inputs.

    Parameters
    ----------
    ood_record : LayerRecord
        Records on the evaluation (OOD) pairs, ``N`` inputs.
    partition : Partition
    features : pandas.DataFrame, shape (N, F)
        Features of those pairs, same rows in the same order.
    options : EvaluationOptions
    """
    from .metrics.alignment import coalition_activations, feature_alignment

    part = _check_partition(partition)
    rec = _check_record(ood_record, part, "ood_record")
    if len(features) != rec.n_inputs:
        raise InputError(f"features: {len(features)} rows but ood_record holds {rec.n_inputs} inputs; "
                         "expected the features of the same pairs, in order.")
    acts = coalition_activations(np.asarray(rec.a, dtype=np.float64), part)
    al = feature_alignment(acts, features.reset_index(drop=True))
    sizes = np.asarray(part.sizes)
    al.insert(1, "size", sizes[al["coalition"].to_numpy()])
    big = al[al["size"] >= options.min_size]
    from .metrics.stats import finite_mean

    return AlignmentEval(al, finite_mean((big if len(big) else al)["r2"]))


def evaluate_predictivity(train_record: LayerRecord, ood_record: LayerRecord, partition: Partition,
                          options: EvaluationOptions = EvaluationOptions(), *, train_targets: Any = None,
                          ood_targets: Any = None) -> PredictivityEval:
    """Ridge predictivity R² of the coalition mean activations (Table 2).

    Parameters
    ----------
    train_record, ood_record : LayerRecord
        In-distribution records (the ridge is fit on them) and OOD records (R² is measured on them).
    partition : Partition
    options : EvaluationOptions
    train_targets, ood_targets : array_like, optional
        Targets of the two sets; default: the records' ``labels``.
    """
    from .metrics.alignment import coalition_activations
    from .metrics.predictivity import predictivity

    part = _check_partition(partition)
    tr = _check_record(train_record, part, "train_record")
    te = _check_record(ood_record, part, "ood_record")
    y_tr = train_targets if train_targets is not None else tr.labels
    y_te = ood_targets if ood_targets is not None else te.labels
    if y_tr is None or y_te is None:
        raise InputError("train_targets/ood_targets: needed when the records carry no labels.")
    acts_in = coalition_activations(np.asarray(tr.a, dtype=np.float64), part)
    acts_ood = coalition_activations(np.asarray(te.a, dtype=np.float64), part)
    r2 = predictivity(acts_in, np.asarray(y_tr, np.float64), acts_ood, np.asarray(y_te, np.float64),
                      alpha=options.ridge_alpha)
    return PredictivityEval(float(r2))


def ood_coalitions(partition: Partition, options: EvaluationOptions = EvaluationOptions()) -> list[int]:
    """Indices of the coalitions the OOD drop ablates: size ``>= min_size``, largest first
    (ties in index order), at most ``max_coalitions``."""
    sizes = np.asarray(_check_partition(partition).sizes)
    order = [int(c) for c in np.argsort(-sizes, kind="stable") if sizes[c] >= options.min_size]
    return order if options.max_coalitions is None else order[: options.max_coalitions]


def evaluate_ood(model: Any, batches: Sequence[Any], layer: int, partition: Partition, *, task: str,
                 pairs: pd.DataFrame, targets: Any, qrels: Any = None, options: EvaluationOptions = EvaluationOptions(),
                 progress: bool = False) -> OODEval:
    """OOD drop of the coalitions chosen by :func:`ood_coalitions`, ablated through ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Scalar PEFT model (:func:`hedonic_neurons.models.load_scalar_model`).
    batches : sequence of tokenizer batches
        The OOD pairs encoded in order (:func:`hedonic_neurons.models.encode_pairs`).
    layer : int
    partition : Partition
    task : str
        A :data:`~hedonic_neurons.vocab.TASKS` name (NDCG@10 for relevance, −MSE otherwise).
    pairs : pandas.DataFrame
        The OOD pairs (``qid``, ``docid``), ``N`` rows.
    targets : array_like, shape (N,)
    qrels : optional
        TREC qrels for NDCG@10 (relevance only; default: the pairs' own grades).
    options : EvaluationOptions
    """
    from .metrics.ood import ood_drop
    from .metrics.stats import finite_mean

    vocab.check("task", task, error=InputError)
    part = _check_partition(partition)
    chosen = ood_coalitions(part, options)
    if not chosen:
        return OODEval(pd.DataFrame(columns=["coalition", "size", "drop"]), float("nan"), 0)
    df = ood_drop(model, batches, layer, part, task=task, qids=pairs["qid"].astype(str).tolist(),
                  docids=pairs["docid"].astype(str).tolist(), qrels=qrels if task == "relevance" else None,
                  targets=np.asarray(targets, dtype=np.float64), coalitions=chosen, progress=progress)
    return OODEval(df, finite_mean(df["drop"]), len(chosen))


def evaluate_partition(partition: Partition, options: EvaluationOptions = EvaluationOptions(), *,
                       record: LayerRecord | None = None, ood_record: LayerRecord | None = None,
                       train_record: LayerRecord | None = None, features: pd.DataFrame | None = None,
                       metrics: Sequence[str] = ("synergy", "alignment", "predictivity"),
                       train_targets: Any = None, ood_targets: Any = None,
                       progress: bool = False) -> PartitionEval:
    """The model-free metrics of one partition (the OOD drop is :func:`evaluate_ood`).

    Parameters
    ----------
    partition : Partition
    options : EvaluationOptions
    record : LayerRecord
        Records the synergy is computed on.
    ood_record : LayerRecord
        Records on the OOD pairs (alignment; the test side of predictivity).
    train_record : LayerRecord
        In-distribution records the predictivity ridge is fit on.
    features : pandas.DataFrame
        LETOR features of the OOD pairs (alignment).
    metrics : sequence of {"synergy", "alignment", "predictivity"}
        Which to compute (names of :data:`hedonic_neurons.vocab.EVALUATIONS`).
    train_targets, ood_targets : array_like, optional
        Override the records' labels for predictivity.
    progress : bool
    """
    for m in metrics:
        vocab.check("evaluation", m, where="metrics", error=InputError)
    need = {"synergy": {"record": record}, "alignment": {"ood_record": ood_record, "features": features},
            "predictivity": {"train_record": train_record, "ood_record": ood_record}}
    for m in metrics:
        missing = [k for k, v in need.get(m, {}).items() if v is None]
        if missing:
            raise InputError(f"{', '.join(missing)}: required for the {m!r} metric.")
    syn = evaluate_synergy(record, partition, options, progress=progress) if "synergy" in metrics else None  # type: ignore[arg-type]
    al = (evaluate_alignment(ood_record, partition, features, options)  # type: ignore[arg-type]
          if "alignment" in metrics else None)
    pr = (evaluate_predictivity(train_record, ood_record, partition, options,  # type: ignore[arg-type]
                                train_targets=train_targets, ood_targets=ood_targets)
          if "predictivity" in metrics else None)
    return PartitionEval(partition_shape(partition), syn, al, pr)
