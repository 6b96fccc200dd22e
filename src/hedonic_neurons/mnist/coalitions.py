"""Per-coalition metrics of the MNIST study (App. I.6): ΔAcc, Pair, Ratio, purity, selectivity,
sparsity, stroke alignment, loss delta — one row per coalition of a partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import vocab
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

__all__ = ["METRIC_COLUMNS", "coalition_metrics"]


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
) -> pd.DataFrame:
    """One row per coalition of ``partition`` with every App. I.6 metric.

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
        Unablated test accuracy (fraction).

    Returns
    -------
    pandas.DataFrame
        Columns: coalition, size, delta_acc (percentage points), pair, ratio, purity,
        selectivity, sparsity, stroke, stroke_template, top_digit, loss_delta.
    """
    coalitions = partition.coalitions
    acc = ablation_accuracy(model, h, digits, layer, coalitions, baseline)
    rows = []
    for c, members in enumerate(coalitions):
        a_c = coalition_activation(h, members)
        top = top_k_indices(a_c, top_k)
        pair, ratio = pair_ratio(phi_pas, psi, members)
        stroke, template = stroke_alignment(images[top], stroke_scale)
        rows.append({
            "coalition": c,
            "size": int(members.size),
            "delta_acc": float(accuracy_drop(acc_base, float(acc[c]))),
            "pair": pair,
            "ratio": ratio,
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
