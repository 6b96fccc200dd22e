"""Per-coalition metrics of the MNIST study (App. I.6): ΔAcc, Pair, Ratio, purity, selectivity,
sparsity, stroke alignment, loss delta — one row per coalition of a partition — and the evidence
protocol of docs/method.md §8.5: held-out Pair against size-matched random coalitions
(:func:`heldout_pair_tests`) and the pooled Pair of a partition (:func:`partition_evidence`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import vocab
from ..metrics.nulls import pair_null_test, pooled_pair, pooled_pair_null
from ..partition import Partition
from .metrics import (
    accuracy_drop,
    activation_sparsity,
    coalition_activation,
    digit_purity,
    digit_selectivity,
    pair_ratio,
    stroke_alignment,
    top_k_indices,
)
from .model import GatedResidualMLP
from .players import ablation_accuracy

__all__ = ["METRIC_COLUMNS", "NULL_COLUMNS", "PARTITION_COLUMNS", "coalition_metrics", "heldout_pair_tests",
           "partition_evidence"]


def coalition_metrics(
    model: GatedResidualMLP,
    h: np.ndarray,
    images: np.ndarray,
    digits: np.ndarray,
    layer: int,
    partition: Partition,
    *,
    phi_pas: np.ndarray,
    psi: np.ndarray,
    loss_delta: np.ndarray,
    baseline: np.ndarray,
    acc_base: float,
    top_k: int = 128,
    stroke_scale: np.ndarray | None = None,
    phi_insample: np.ndarray | None = None,
    psi_insample: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per coalition of ``partition`` with every App. I.6 metric.

    Every metric is measured on the images passed here (the study passes its *evaluation*
    half, docs/method.md §8.5); ``pair_insample``/``ratio_insample`` come from the matrices of
    the discovery half when given (NaN otherwise).

    Parameters
    ----------
    h : numpy.ndarray, shape (N, d)
        ``h_layer`` on the evaluation images ``images`` (N, 784) with labels ``digits`` (N,).
    phi_pas, psi : exact ``psi(i, j)`` (n, n) and ``psi(i)`` (n,) on the local readout.
    loss_delta : numpy.ndarray, shape (n,)
        ``Delta_i`` of App. I.3 (summed over the coalition in column ``loss_delta``).
    baseline : numpy.ndarray, shape (d,)
        Ablation values.
    acc_base : float
        Unablated accuracy on ``images`` (fraction).
    phi_insample, psi_insample : numpy.ndarray, shapes (n, n) and (n,), optional
        ``psi(i, j)`` and ``psi(i)`` on the discovery images (from which the partition was built).

    Returns
    -------
    pandas.DataFrame
        Columns: coalition, size, delta_acc (percentage points), pair, ratio, pair_insample,
        ratio_insample, purity, selectivity, sparsity, stroke, stroke_template, top_digit,
        loss_delta.
    """
    coalitions = partition.coalitions
    acc = ablation_accuracy(model, h, digits, layer, coalitions, baseline)
    rows = []
    for c, members in enumerate(coalitions):
        a_c = coalition_activation(h, members)
        top = top_k_indices(a_c, top_k)
        pair, ratio = pair_ratio(phi_pas, psi, members)
        pair_in, ratio_in = (pair_ratio(phi_insample, psi_insample, members)
                             if phi_insample is not None and psi_insample is not None else (np.nan, np.nan))
        stroke, template = stroke_alignment(images[top], stroke_scale)
        rows.append({
            "coalition": c,
            "size": int(members.size),
            "delta_acc": float(accuracy_drop(acc_base, float(acc[c]))),
            "pair": pair,
            "ratio": ratio,
            "pair_insample": pair_in,
            "ratio_insample": ratio_in,
            "purity": digit_purity(a_c, digits, top_k),
            "selectivity": digit_selectivity(a_c, digits),
            "sparsity": activation_sparsity(a_c),
            "stroke": stroke,
            "stroke_template": template,
            "top_digit": int(np.bincount(digits[top]).argmax()),
            "loss_delta": float(np.sum(loss_delta[members])),
        })
    return pd.DataFrame(rows)


METRIC_COLUMNS: tuple[str, ...] = tuple(vocab.check("metric", m) for m in (
    "delta_acc", "pair", "ratio", "purity", "selectivity", "sparsity", "stroke", "loss_delta", "size",
))

#: Columns :func:`heldout_pair_tests` adds to a coalition table.
NULL_COLUMNS: tuple[str, ...] = ("pair_null_mean", "pair_null_sd", "pair_z", "pair_p", "pair_q", "pair_significant")

#: Columns of :func:`partition_evidence` (metric names of :data:`hedonic_neurons.vocab.METRICS`).
PARTITION_COLUMNS: tuple[str, ...] = (
    "n_coalitions", "largest_share", "n_tested", "pair_heldout", "pair_heldout_null", "ratio_heldout",
    "pair_pooled_heldout",
    "pair_pooled", "pair_pooled_null", "pair_pooled_excess", "pair_pooled_z", "pair_pooled_p", "frac_sig_pair")


def heldout_pair_tests(table: pd.DataFrame, psi_heldout: np.ndarray, partition: Partition, *, n_draws: int,
                       alpha: float, seed: int) -> pd.DataFrame:
    """Add the size-matched null of each coalition's held-out Pair to ``table`` (docs/method.md §8.5).

    :func:`hedonic_neurons.metrics.nulls.pair_null_test` on the held-out interactions: each
    coalition of size ≥ 2 against ``n_draws`` uniformly random coalitions of its size from the
    same layer (one-sided Monte-Carlo p-value with the +1 correction, Benjamini–Hochberg over
    the partition at ``alpha``). Singletons get NaN and ``pair_significant = False``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`coalition_metrics` for ``partition`` (column ``coalition``).
    psi_heldout : numpy.ndarray, shape (n, n)
        ``psi(i, j)`` on the evaluation images.
    partition : Partition
    n_draws, alpha, seed
        Passed to ``pair_null_test``.

    Returns
    -------
    pandas.DataFrame
        ``table`` with :data:`NULL_COLUMNS` appended (same rows, same order).
    """
    null = pair_null_test(psi_heldout, partition, n_draws=n_draws, alpha=alpha, seed=seed)
    null = null.rename(columns={"null_mean": "pair_null_mean", "null_sd": "pair_null_sd", "z": "pair_z",
                                "p_value": "pair_p", "q_value": "pair_q", "significant": "pair_significant"})
    out = table.merge(null[["coalition", *NULL_COLUMNS]], on="coalition", how="left")
    out["pair_significant"] = out["pair_significant"].astype("boolean").fillna(False).astype(bool)
    return out


def partition_evidence(table: pd.DataFrame, psi_heldout: np.ndarray, partition: Partition, *,
                       psi_insample: np.ndarray | None, n_draws: int, seed: int) -> dict[str, Any]:
    """One partition's summary: mean and pooled held-out Pair against size-matched random partitions.

    ``pair_pooled_heldout`` is the pooled Pair (every within-coalition ordered pair counts
    once, :func:`hedonic_neurons.metrics.nulls.pooled_pair`) on the held-out ψ;
    ``pair_pooled_null`` the mean over ``n_draws`` random partitions with the same size histogram
    (:func:`~hedonic_neurons.metrics.nulls.pooled_pair_null`), ``pair_pooled_excess`` the
    difference, ``pair_pooled_z``/``pair_pooled_p`` the effect size and one-sided p-value;
    ``pair_pooled`` is the in-sample pooled Pair (discovery ψ). ``pair_heldout`` and
    ``ratio_heldout`` are the means over coalitions of size ≥ 2 (finite values), and
    ``pair_heldout_null`` the mean of those coalitions' size-matched null means;
    ``frac_sig_pair`` the share of those with ``pair_significant``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`heldout_pair_tests` for ``partition``.
    psi_heldout, psi_insample : numpy.ndarray, shape (n, n)
    partition : Partition
    n_draws, seed : int

    Returns
    -------
    dict
        Keys :data:`PARTITION_COLUMNS`.
    """
    multi = table[table["size"] >= 2]
    pooled = pooled_pair_null(psi_heldout, partition, n_draws=n_draws, seed=seed)
    summary = partition.summary()
    nan = float("nan")

    def fmean(col: str) -> float:
        v = multi[col].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else nan

    return {
        "n_coalitions": int(partition.n_coalitions), "largest_share": float(summary.largest_share),
        "n_tested": len(multi), "pair_heldout": fmean("pair"),
        "pair_heldout_null": float(multi.loc[np.isfinite(multi["pair"].to_numpy(np.float64)), "pair_null_mean"].mean())
        if len(multi) else nan,
        "ratio_heldout": fmean("ratio"),
        "pair_pooled_heldout": float(pooled.observed),
        "pair_pooled": float(pooled_pair(psi_insample, partition)) if psi_insample is not None else nan,
        "pair_pooled_null": float(pooled.null_mean), "pair_pooled_excess": float(pooled.observed - pooled.null_mean),
        "pair_pooled_z": float(pooled.z), "pair_pooled_p": float(pooled.p_value),
        "frac_sig_pair": float(multi["pair_significant"].mean()) if len(multi) else nan,
    }
