"""Feature alignment of coalitions with IR heuristics (paper §4 "Feature Alignment"; docs/method.md §8).

``R²(C) = max_j corr²(a_C(x), f_j(x))``: a coalition's mean activation ``a_C`` over the
inputs, compared with every LETOR/MSLR feature ``f_j`` (see
:data:`hedonic_neurons.ir.features.FEATURES`) by the squared Pearson correlation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..partition import Partition

__all__ = ["coalition_activations", "correlation_matrix", "feature_alignment"]


def _as_matrix(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-d array (N inputs, columns), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or inf values.")
    return arr


def coalition_activations(a: Any, partition: Partition) -> np.ndarray:
    """Mean activation of each coalition, ``a_C(x) = (1/|C|) Σ_{i∈C} a_i(x)``.

    Parameters
    ----------
    a : array_like, shape (N, n)
        Neuron activations over N inputs (e.g. ``LayerRecord.a``).
    partition : Partition
        Of the n players; coalition ``c`` is ``partition.coalitions[c]``.

    Returns
    -------
    numpy.ndarray, shape (N, K), float64
        Column ``c`` is coalition ``c``'s mean activation.
    """
    arr = _as_matrix(a, "a")
    if not isinstance(partition, Partition):
        raise InputError(f"partition: expected a Partition, got {type(partition).__name__}.")
    if arr.shape[1] != partition.n_players:
        raise InputError(f"a: has {arr.shape[1]} columns (players) but the partition has "
                         f"{partition.n_players} players.")
    member = partition.membership(np.float64)  # (K, n) sparse
    sizes = np.asarray(partition.sizes, dtype=np.float64)
    return np.asarray(member @ arr.T).T / sizes[None, :]


def correlation_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlations between the columns of ``x`` (N, K) and ``y`` (N, F) -> (K, F).

    A constant column has correlation 0 with everything (not NaN).
    """
    x = _as_matrix(x, "x")
    y = _as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"x, y: expected the same number of rows (inputs), got {x.shape[0]} and {y.shape[0]}.")
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    xn = np.sqrt((xc * xc).sum(axis=0))
    yn = np.sqrt((yc * yc).sum(axis=0))
    # relative tolerance: a column constant up to rounding counts as constant
    x_ok = xn > 1e-12 * np.maximum(1.0, np.abs(x).max(axis=0)) * np.sqrt(max(x.shape[0], 1))
    y_ok = yn > 1e-12 * np.maximum(1.0, np.abs(y).max(axis=0)) * np.sqrt(max(y.shape[0], 1))
    xs = np.divide(xc, xn, out=np.zeros_like(xc), where=x_ok[None, :])
    ys = np.divide(yc, yn, out=np.zeros_like(yc), where=y_ok[None, :])
    return np.clip(xs.T @ ys, -1.0, 1.0)


def feature_alignment(coalition_acts: Any, features: pd.DataFrame) -> pd.DataFrame:
    """Alignment ``R²(C) = max_j corr²(a_C, f_j)`` of every coalition with a feature table.

    Parameters
    ----------
    coalition_acts : array_like, shape (N, K)
        From :func:`coalition_activations`.
    features : pandas.DataFrame, shape (N, F)
        One numeric column per feature (e.g. :func:`hedonic_neurons.ir.letor_features`),
        rows aligned with the inputs.

    Returns
    -------
    pandas.DataFrame, K rows
        Columns ``coalition`` (0..K-1), ``r2`` (in [0, 1]), ``best_feature`` (the argmax; the
        first column on ties), ``corr`` (signed correlation with it). A constant coalition
        or feature column counts as correlation 0, so ``r2`` is never NaN; with no feature
        varying, ``r2 = 0`` and ``best_feature`` is the first column.
    """
    if not isinstance(features, pd.DataFrame):
        raise InputError(f"features: expected a pandas DataFrame (N, F), got {type(features).__name__}.")
    if features.shape[1] == 0:
        raise InputError("features: has no columns.")
    acts = _as_matrix(coalition_acts, "coalition_acts")
    try:
        fmat = features.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"features: every column must be numeric ({exc}).") from exc
    if acts.shape[0] != fmat.shape[0]:
        raise InputError(f"coalition_acts has {acts.shape[0]} rows but features has {fmat.shape[0]}; "
                         "both must have one row per input.")
    corr = correlation_matrix(acts, _as_matrix(fmat, "features"))  # (K, F)
    r2 = corr * corr
    best = np.argmax(r2, axis=1) if r2.size else np.zeros(0, dtype=np.int64)
    k = np.arange(acts.shape[1])
    names = [str(c) for c in features.columns]
    return pd.DataFrame({
        "coalition": k,
        "r2": r2[k, best] if k.size else np.zeros(0),
        "best_feature": pd.Series([names[j] for j in best], dtype=object),
        "corr": corr[k, best] if k.size else np.zeros(0),
    })
