"""The evidence protocol's metrics of a partition: tested against size-matched nulls (docs/method.md §8.5).

:func:`evaluate_heldout_synergy` (held-out Pair/Ratio, per-coalition null, pooled Pair against
random partitions), :func:`evaluate_alignment_null` (alignment R² against random coalitions of
the same size) and :func:`evaluate_ood_estimated` (first-order OOD drop of every coalition from
precomputed attributions, §8.4–§8.5). NumPy/pandas only. Private;
:mod:`hedonic_neurons.evaluation` re-exports them and documents the whole evaluation core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import vocab
from ._evaluation_types import (
    EvaluationOptions,
    HeldoutSynergyEval,
    OODEstimateEval,
    _check_partition,
    _check_record,
)
from .errors import InputError
from .partition import Partition
from .records import LayerRecord


def evaluate_alignment_null(ood_record: LayerRecord, partition: Partition, features: pd.DataFrame,
                            options: EvaluationOptions = EvaluationOptions()) -> tuple[pd.DataFrame, float, float]:
    """Alignment R² of every coalition of size ``>= min_size`` against random coalitions of its size.

    A random coalition's R² is computed exactly as a real one's (mean activation on the OOD
    records, max_j corr² with the features; :func:`hedonic_neurons.metrics.alignment.feature_alignment`),
    ``options.ood_null_draws`` per size (:func:`hedonic_neurons.metrics.nulls.size_matched_null_batch`,
    one-sided, BH at ``options.alpha``); docs/method.md §8.5.

    Returns
    -------
    table : pandas.DataFrame
        ``coalition, size, r2, null_mean, null_sd, z, p_value, q_value, significant``.
    excess : float
        Mean over the coalitions of ``r2 − null_mean`` (``align_excess``).
    frac_sig : float
        Share of the coalitions with ``q_value <= alpha`` (``frac_sig_align``; NaN when none).
    """
    from .metrics.alignment import coalition_activations, feature_alignment
    from .metrics.nulls import size_matched_null_batch
    from .metrics.stats import finite_mean

    part = _check_partition(partition)
    rec = _check_record(ood_record, part, "ood_record")
    if len(features) != rec.n_inputs:
        raise InputError(f"features: {len(features)} rows but ood_record holds {rec.n_inputs} inputs; "
                         "expected the features of the same pairs, in order.")
    a = np.asarray(rec.a, dtype=np.float64)
    feats = features.reset_index(drop=True)
    sizes = np.asarray(part.sizes)
    ids = [c for c in range(part.n_coalitions) if sizes[c] >= options.min_size]
    if not ids:
        return pd.DataFrame(columns=["coalition", "size", "r2", "null_mean", "null_sd", "z", "p_value", "q_value",
                                     "significant"]), float("nan"), float("nan")
    observed = feature_alignment(coalition_activations(a, part), feats)["r2"].to_numpy()[ids]

    def r2_of(m: np.ndarray) -> np.ndarray:
        acts = a @ m / m.sum(axis=0, keepdims=True)
        return feature_alignment(acts, feats)["r2"].to_numpy()

    table = size_matched_null_batch(pd.Series(observed, index=ids), pd.Series(sizes[ids], index=ids), r2_of,
                                    n_players=part.n_players, draws_per_size=options.ood_null_draws,
                                    alpha=options.alpha, seed=options.seed, metric="r2", min_size=options.min_size)
    sig = table["significant"].astype(bool).to_numpy()
    return table, finite_mean(table["r2"] - table["null_mean"]), float(sig.mean())


def evaluate_heldout_synergy(heldout_record: LayerRecord, partition: Partition, psi_heldout: Any,
                             options: EvaluationOptions = EvaluationOptions(), *,
                             psi_insample: Any = None) -> HeldoutSynergyEval:
    """Held-out Pair and Ratio of every coalition, tested against size-matched random coalitions.

    Pair and Ratio are eq. 8 on the held-out inputs, read from the held-out ``ψ(i, j)`` (exact PAS
    of the local readout, so equal to :func:`evaluate_synergy` on ``heldout_record`` up to the
    float32 storage of ψ) and the exact marginals ``ψ(i)`` of ``heldout_record``
    (:func:`hedonic_neurons.metrics.synergy.pair_ratio`, same NaN rule for Ratio); each
    coalition's Pair is tested against ``options.null_draws`` uniformly random coalitions of its
    size on the held-out interactions ``ψ(i, j)`` (one-sided Monte-Carlo p-value,
    Benjamini–Hochberg over the partition at ``options.alpha``) and the pooled Pair against
    random partitions of the same size histogram; both tests take their draws from the same
    ``options.null_draws`` random partitions (:func:`hedonic_neurons.metrics.nulls.pair_nulls`:
    a coalition of size ``s`` meets the first block of size ``s`` of each, a uniformly random
    ``s``-subset), so the two cost one pass. docs/method.md §8.5.

    Parameters
    ----------
    heldout_record : LayerRecord
        Records of the held-out inputs only (``n`` players).
    partition : Partition
        Built from the discovery inputs.
    psi_heldout : array_like or SynergyMatrix, shape (n, n)
        ``ψ(i, j)`` on the held-out inputs (the exact PAS of ``heldout_record``).
    options : EvaluationOptions
    psi_insample : array_like, shape (n, n), optional
        ``ψ(i, j)`` on the discovery inputs, for the in-sample pooled Pair.
    """
    from .metrics.nulls import pair_nulls, pooled_pair, prepare_phi
    from .metrics.stats import finite_mean
    from .metrics.synergy import pair_ratio_from_sum
    from .valuations import marginals

    part = _check_partition(partition)
    rec = _check_record(heldout_record, part, "heldout_record")
    shape = np.shape(getattr(psi_heldout, "values", psi_heldout))
    if shape != (part.n_players, part.n_players):
        raise InputError(f"psi_heldout: expected shape ({part.n_players}, {part.n_players}), got {shape}.")
    # one zero-diagonal matrix shared by both tests (a float32 ψ with a zero diagonal is used in place)
    psi = prepare_phi(psi_heldout)
    marg = np.asarray(marginals(rec), dtype=np.float64).reshape(-1)
    nulls = pair_nulls(psi, part, n_draws=options.null_draws, alpha=options.alpha, seed=options.seed,
                       min_size=options.min_size)
    null, pooled = nulls.table, nulls.pooled
    # Ratio from the null test's Pair (its within sum; a giant's m × m block is never formed)
    pr = [pair_ratio_from_sum(pair * s * (s - 1), marg[part.coalitions[c]])
          for c, s, pair in zip(null["coalition"], null["size"], null["pair"])]
    table = pd.DataFrame({"coalition": null["coalition"], "size": null["size"],
                          "pair": [p for p, _ in pr], "ratio": [r for _, r in pr]})
    table = table.merge(null.drop(columns=["size", "pair"]), on="coalition", how="left")
    del psi, nulls
    pooled_in = float("nan")
    if psi_insample is not None:
        psi_in = prepare_phi(psi_insample)
        table.insert(4, "pair_insample", [psi_in.within(part.coalitions[c]) / (part.sizes[c] * (part.sizes[c] - 1))
                                          for c in table["coalition"]])
        pooled_in = float(pooled_pair(psi_in, part))
        del psi_in
    else:
        table.insert(4, "pair_insample", np.nan)
    sig = table["significant"].astype(bool).to_numpy() if len(table) else np.zeros(0, bool)
    return HeldoutSynergyEval(
        table, finite_mean(table["pair"]), finite_mean(table["ratio"]), float(pooled.observed), float(pooled.null_mean),
        float(pooled.p_value), pooled_in, float(sig.mean()) if sig.size else float("nan"), int(sig.size))


def _metric_of_columns(task: str, scores: np.ndarray, *, qids: Any, docids: Any, qrels: Any,
                       targets: np.ndarray) -> np.ndarray:
    """The task metric of each column of ``scores`` (N, K): vectorised −MSE, else one call per column."""
    from .metrics.ood import TASK_METRIC, task_metric

    if TASK_METRIC.get(task) == "neg_mse":
        return -np.mean((scores - targets[:, None]) ** 2, axis=0)
    return np.array([task_metric(task, scores[:, c], qids=qids, docids=docids, qrels=qrels, targets=targets)
                     for c in range(scores.shape[1])])


def evaluate_ood_estimated(base_scores: Any, attributions: Any, partition: Partition, *, task: str,
                           pairs: pd.DataFrame, targets: Any, all_lora_drop: float, qrels: Any = None,
                           options: EvaluationOptions = EvaluationOptions()) -> OODEstimateEval:
    """First-order OOD drop of every coalition of size ``>= min_size``, with a size-matched null.

    With ``e`` the per-neuron attributions of the layer (``N × n``, one backward pass per
    input; :func:`hedonic_neurons.models.attribution.neuron_attributions`) the estimated
    scores with coalition ``C`` ablated are ``score − e @ M`` (``M`` its membership column),
    and ``ΔM(C) = M(score) − M(score − e @ M)`` with the task metric ``M`` (NDCG@10 or −MSE).
    Random coalitions of the same size get their drop the same way, so the null costs one
    matrix product per batch of draws (:func:`hedonic_neurons.metrics.nulls.size_matched_null_batch`,
    ``options.ood_null_draws`` per size). docs/method.md §8.4–§8.5.

    Parameters
    ----------
    base_scores : array_like, shape (N,)
        Unablated scores of the OOD inputs.
    attributions : array_like, shape (N, n)
    partition : Partition
        Of the ``n`` neurons.
    task : str
        A :data:`~hedonic_neurons.vocab.TASKS` name.
    pairs : pandas.DataFrame
        The OOD pairs (``qid``, ``docid``), ``N`` rows in score order.
    targets : array_like, shape (N,)
    all_lora_drop : float
        Drop of ablating every LoRA neuron of the layer (exact); ``drop_rel`` divides by it.
    qrels : optional
        TREC qrels for NDCG@10 (relevance only).
    options : EvaluationOptions

    Returns
    -------
    OODEstimateEval
    """
    from .metrics.nulls import size_matched_null_batch
    from .metrics.stats import finite_mean

    vocab.check("task", task, error=InputError)
    part = _check_partition(partition)
    s = np.asarray(base_scores, dtype=np.float64).reshape(-1)
    e = np.asarray(attributions, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != s.shape[0] or e.shape[1] != part.n_players:
        raise InputError(f"attributions: expected shape ({s.shape[0]}, {part.n_players}) (inputs x neurons), "
                         f"got {e.shape}.")
    if len(pairs) != s.shape[0]:
        raise InputError(f"pairs: {len(pairs)} rows but {s.shape[0]} scores; expected the OOD pairs in score order.")
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    kw: dict[str, Any] = {"qids": pairs["qid"].astype(str).tolist(), "docids": pairs["docid"].astype(str).tolist(),
                          "qrels": qrels if task == "relevance" else None, "targets": y}
    full = float(_metric_of_columns(task, s[:, None], **kw)[0])

    def drops(m: np.ndarray) -> np.ndarray:
        return full - _metric_of_columns(task, s[:, None] - e @ m, **kw)

    sizes = np.asarray(part.sizes)
    ids = [c for c in range(part.n_coalitions) if sizes[c] >= options.min_size]
    cols = [
        "coalition", "size", "drop", "drop_rel", "null_mean", "null_sd", "z", "p_value", "q_value", "significant"]
    if not ids:
        return OODEstimateEval(pd.DataFrame(columns=cols), full, float(all_lora_drop), float("nan"), float("nan"),
                               float("nan"), float("nan"), 0)
    m = np.zeros((part.n_players, len(ids)))
    for j, c in enumerate(ids):
        m[part.coalitions[c], j] = 1.0
    observed = drops(m)
    table = size_matched_null_batch(pd.Series(observed, index=ids), pd.Series(sizes[ids], index=ids), drops,
                                    n_players=part.n_players, draws_per_size=options.ood_null_draws,
                                    alpha=options.alpha, seed=options.seed, metric="drop",
                                    min_size=options.min_size)
    scale = float(all_lora_drop)
    table.insert(3, "drop_rel", table["drop"] / scale if scale != 0 else np.nan)
    mean_drop = finite_mean(table["drop"])
    sig = table["significant"].astype(bool).to_numpy()
    return OODEstimateEval(table[cols], full, scale, mean_drop, mean_drop / scale if scale != 0 else float("nan"),
                           finite_mean(table["drop"] - table["null_mean"]), float(sig.mean()), len(ids))
