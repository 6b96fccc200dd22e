"""Means with t-distribution confidence intervals and paired tests (docs/method.md §8: "Every table:
mean ± 95% CI over seeds (t-distribution), paired tests between methods").

All functions ignore NaN values (for :func:`paired_ttest`, pairs with a NaN on either side).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..errors import InputError

__all__ = ["finite_mean", "mean_ci", "paired_ttest", "per_seed_summary", "summarise"]


def _as_1d(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected numeric values, got {type(values).__name__} ({exc}).") from exc
    if arr.ndim == 0:
        return arr.reshape(1)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-d sequence of numbers, got shape {arr.shape}.")
    return arr


def mean_ci(values: Sequence[float] | np.ndarray | pd.Series, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its two-sided t-distribution confidence interval.

    ``half_width = t_{(1+c)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof=1``) over the ``n`` non-NaN values.

    Parameters
    ----------
    values : array_like, shape (n,)
        Per-seed results; NaNs are dropped.
    confidence : float in (0, 1)
        Default 0.95.

    Returns
    -------
    (mean, half_width) : tuple of float
        ``(nan, nan)`` with no finite value; ``(x, nan)`` with a single value (one seed gives
        no variance estimate, so no interval); ``half_width = 0`` when all values are equal.
    """
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: expected a value in (0, 1), got {confidence!r}.")
    arr = _as_1d(values, "values")
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(arr.mean())
    if n == 1:
        return mean, float("nan")
    sem = float(arr.std(ddof=1)) / np.sqrt(n)
    return mean, float(_st.t.ppf(0.5 + confidence / 2.0, df=n - 1) * sem)


def paired_ttest(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test of ``a`` against ``b`` (``scipy.stats.ttest_rel``).

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired results (e.g. per seed); pairs with a NaN on either side are dropped.

    Returns
    -------
    (t, p) : tuple of float
        ``t > 0`` when ``a`` is larger on average. ``(nan, nan)`` with fewer than two pairs or
        when every difference is identical (zero variance of the differences).
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.shape != y.shape:
        raise InputError(f"a, b: expected paired arrays of equal length, got {x.shape} and {y.shape}.")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = x - y
    if d.size < 2 or np.all(d == d[0]):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        # nearly-equal differences make scipy warn about precision loss; t is then huge and
        # p tiny, which is the right answer for seeds that agree to rounding error
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.ttest_rel(x, y)
    return float(res.statistic), float(res.pvalue)


def summarise(
    long_df: pd.DataFrame, by: Sequence[str], value: str = "value", confidence: float = 0.95
) -> pd.DataFrame:
    """Mean ± CI of ``value`` for each group of ``by``.

    Parameters
    ----------
    long_df : pandas.DataFrame
        A long table (one row per observation).
    by : sequence of str
        Grouping columns (kept in order of first appearance).
    value : str
        The numeric column (default ``"value"``).
    confidence : float

    Returns
    -------
    pandas.DataFrame with columns ``*by, mean, ci, n, std`` (``n`` counts non-NaN values;
    ``std`` uses ``ddof=1``).
    """
    by = list(by)
    missing = [c for c in [*by, value] if c not in long_df.columns]
    if missing:
        raise InputError(f"long_df: missing column(s) {missing}; got {list(long_df.columns)}.")
    rows: list[dict[str, Any]] = []
    if not by:
        groups: Any = [((), long_df)]
    else:
        groups = long_df.groupby(by, sort=False, dropna=False)
    for key, g in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        vals = pd.to_numeric(g[value], errors="coerce").to_numpy(dtype=np.float64)
        m, h = mean_ci(vals, confidence)
        finite = vals[~np.isnan(vals)]
        rows.append({**dict(zip(by, key_t)), "mean": m, "ci": h, "n": int(finite.size),
                     "std": float(finite.std(ddof=1)) if finite.size > 1 else float("nan")})
    return pd.DataFrame(rows, columns=[*by, "mean", "ci", "n", "std"])


def finite_mean(values: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Mean of the finite values (NaN and ±inf dropped); NaN when none is finite."""
    arr = _as_1d(values, "values")
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def per_seed_summary(
    long_df: pd.DataFrame, by: Sequence[str], value: str = "value", confidence: float = 0.95,
    seed: str = "seed",
) -> pd.DataFrame:
    """Mean ± CI over seeds of the per-seed means: the aggregation of every table (docs/method.md §8).

    Within one seed, all rows of a group of ``by`` (several layers, coalitions, models)
    are averaged first (NaN ignored); the group's cell is then the mean over seeds ± the
    t half-width (:func:`mean_ci`).

    Parameters
    ----------
    long_df : pandas.DataFrame
        A long table with the columns ``by``, ``seed`` and ``value``.
    by : sequence of str
        Grouping columns (groups kept in order of first appearance).
    value, seed : str
        The numeric and the seed column.
    confidence : float

    Returns
    -------
    pandas.DataFrame with columns ``*by, mean, ci, n`` (``n``: seeds with a finite per-seed mean).
    """
    by = list(by)
    missing = [c for c in [*by, seed, value] if c not in long_df.columns]
    if missing:
        raise InputError(f"long_df: missing column(s) {missing}; got {list(long_df.columns)}.")
    if long_df.empty:
        return pd.DataFrame(columns=[*by, "mean", "ci", "n"])
    vals = pd.to_numeric(long_df[value], errors="coerce")
    per_seed = (long_df.assign(_v=vals).groupby([*by, seed], sort=False, dropna=False)["_v"].mean()
                .reset_index())
    summ = summarise(per_seed, by, value="_v", confidence=confidence)
    return summ[[*by, "mean", "ci", "n"]]
