"""The verdict of a study: is each hedonic method better than size-matched random coalitions and
than each baseline? (docs/method.md §8.3, §8.5).

Two families of tests, both over the units ``(seed, layer)`` of one run:

- **against size-matched random**: the per-unit *excess* of a partition over random
  coalitions of the same sizes, ``pair_pooled_excess`` (pooled held-out Pair minus that of
  random partitions with the same size histogram) and ``ood_drop_excess`` (mean estimated
  OOD drop minus that of random coalitions of each coalition's size) and ``align_excess`` (mean
  alignment R² minus that of random coalitions of each size). The mean excess with
  its 95% t-interval and the two-sided one-sample t-test of "excess = 0"
  (:func:`hedonic_neurons.metrics.stats.paired_ttest` against zeros); beside it the share of
  coalitions significantly above their size-matched null (``frac_sig_pair``,
  ``frac_sig_ood``, Benjamini–Hochberg at the run's ``alpha``).
- **against each baseline** (clustering baselines and the null valuation's partitions): paired
  t-tests on the held-out pooled Pair, the OOD drop and the feature alignment
  (:func:`hedonic_neurons.metrics.crossrun.paired_tests`, effect = mean difference with its 95%
  interval and Cohen's ``d_z``).

A comparison is called **better** (**worse**) when the difference is positive (negative) and
``p < alpha``; **not distinguishable** otherwise; **not testable** with fewer than two units
or no variation of the differences. Plain pandas: no cache, no stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import vocab
from ..metrics.stats import mean_ci, paired_ttest

__all__ = ["VERDICT_COLUMNS", "VERDICT_METRICS", "control_labels", "hedonic_labels", "verdict_sentences",
           "verdict_table"]

#: Columns of :func:`verdict_table`.
VERDICT_COLUMNS: tuple[str, ...] = ("method", "against", "metric", "n", "mean", "against_mean", "diff",
                                    "diff_ci_low", "diff_ci_high", "p", "cohens_dz", "verdict")

#: Metric compared with the baselines -> the excess over size-matched random of the same question.
VERDICT_METRICS: dict[str, str | None] = {"pair_pooled_heldout": "pair_pooled_excess", "ood_drop": "ood_drop_excess",
                                          "align_r2": "align_excess"}

#: The share of significant coalitions reported beside each excess.
_FRAC = {"pair_pooled_excess": "frac_sig_pair", "ood_drop_excess": "frac_sig_ood", "align_excess": "frac_sig_align"}

SIZE_MATCHED = "size-matched random"


def control_labels(labels: Sequence[str]) -> list[str]:
    """Hedonic labels built on the null valuation (controls, compared like baselines)."""
    out = []
    for lab in labels:
        try:
            v, _ = vocab.parse_method_label(lab)
        except Exception:
            continue
        if v == "null":
            out.append(lab)
    return out


def hedonic_labels(labels: Sequence[str]) -> list[str]:
    """Hedonic labels of real valuations (the methods a verdict is about)."""
    nulls = set(control_labels(labels))
    out = []
    for lab in labels:
        try:
            vocab.parse_method_label(lab)
        except Exception:
            continue
        if lab not in nulls:
            out.append(lab)
    return out


def _word(diff: float, p: float, n: int, alpha: float) -> str:
    if n < 2 or not np.isfinite(p):
        return "not testable"
    if p < alpha:
        return "better" if diff > 0 else "worse"
    return "not distinguishable"


def _units(results: pd.DataFrame, method: str, metric: str) -> pd.Series:
    sub = results[(results["method"] == method) & (results["metric"] == metric)]
    return sub.groupby(["seed", "layer"])["value"].mean()


def verdict_table(results: pd.DataFrame, labels: Sequence[str], *, alpha: float = 0.05,
                  confidence: float = 0.95) -> pd.DataFrame:
    """Every hedonic method against size-matched random and against each baseline.

    Parameters
    ----------
    results : pandas.DataFrame
        Long results ``[model, task, method, seed, layer, metric, value]`` of one run.
    labels : sequence of str
        Method labels in table order (hedonic first).
    alpha : float
        Level of the tests' verdict words.
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VERDICT_COLUMNS`, one row per (method, against, metric). Rows against
        ``"size-matched random"`` hold the mean excess (``diff``) with its interval and the
        one-sample t-test; ``mean`` is the method's value of the compared metric and
        ``against_mean`` the share of significant coalitions (``frac_sig_*``). Rows against a
        baseline hold the paired test over ``(seed, layer)``.
    """
    from ..metrics.crossrun import paired_tests

    rows: list[dict[str, Any]] = []
    present = set(results["method"])
    hed = [h for h in hedonic_labels(labels) if h in present]
    others = [b for b in labels if b in vocab.BASELINES or b.split("~")[0] in vocab.BASELINES]
    others += [c for c in control_labels(labels) if c in present]
    df = results.assign(run="this run")
    for h in hed:
        for metric, excess in VERDICT_METRICS.items():
            if excess is not None and (results["metric"] == excess).any():
                x = _units(results, h, excess).to_numpy(dtype=np.float64)
                x = x[np.isfinite(x)]
                n = int(x.size)
                mean, half = mean_ci(x, confidence) if n else (float("nan"), float("nan"))
                _, p = paired_ttest(x, np.zeros_like(x)) if n else (float("nan"), float("nan"))
                sd = float(x.std(ddof=1)) if n > 1 else float("nan")
                frac = _units(results, h, _FRAC[excess])
                rows.append({"method": h, "against": SIZE_MATCHED, "metric": metric, "n": n,
                             "mean": float(_units(results, h, metric).mean()),
                             "against_mean": float(frac.mean()) if len(frac) else float("nan"),
                             "diff": mean, "diff_ci_low": mean - half, "diff_ci_high": mean + half, "p": p,
                             "cohens_dz": mean / sd if n > 1 and sd > 0 else float("nan"),
                             "verdict": _word(mean, p, n, alpha)})
            have = set(results.loc[results["metric"] == metric, "method"])
            base = [b for b in others if b in have]
            if h not in have or not base:
                continue
            tests = paired_tests(df, metric, h, baselines=base, pooled=False, confidence=confidence)
            for t in tests.to_dict("records"):
                rows.append({"method": h, "against": t["baseline"], "metric": metric, "n": int(t["n"]),
                             "mean": t["mean"], "against_mean": t["baseline_mean"], "diff": t["diff"],
                             "diff_ci_low": t["diff_ci_low"], "diff_ci_high": t["diff_ci_high"], "p": t["p"],
                             "cohens_dz": t["cohens_dz"], "verdict": _word(t["diff"], t["p"], int(t["n"]), alpha)})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def _g(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _ci(r: dict[str, Any]) -> str:
    return f"{_g(r['diff'])} [{_g(r['diff_ci_low'])}, {_g(r['diff_ci_high'])}]"


_NAMES = {"pair_pooled_heldout": "held-out pooled Pair", "ood_drop": "OOD drop", "align_r2": "feature alignment R²"}


def verdict_sentences(table: pd.DataFrame, *, alpha: float = 0.05) -> list[str]:
    """One plainly worded paragraph per hedonic method, with the numbers of :func:`verdict_table`."""
    out: list[str] = []
    for h, g in table.groupby("method", sort=False):
        parts: list[str] = []
        for metric, name in _NAMES.items():
            sub = g[g["metric"] == metric]
            if sub.empty:
                continue
            bits = []
            rnd = sub[sub["against"] == SIZE_MATCHED]
            if len(rnd):
                r = rnd.iloc[0].to_dict()
                what = {"better": "better than", "worse": "worse than", "not distinguishable": "not better than",
                        "not testable": "not testable against"}[r["verdict"]]
                frac = r["against_mean"]
                bits.append(f"{what} size-matched random (excess {_ci(r)}, p = {_g(r['p'])}, n = {r['n']}"
                            + (f"; {frac:.0%} of coalitions significant at FDR {alpha:g}" if np.isfinite(frac) else "")
                            + ")")
            for r in sub[sub["against"] != SIZE_MATCHED].to_dict("records"):
                bits.append(f"{r['verdict']} vs {r['against']} ({_g(r['mean'])} vs {_g(r['against_mean'])}, "
                            f"diff {_ci(r)}, p = {_g(r['p'])})")
            parts.append(f"{name}: " + "; ".join(bits))
        out.append(f"**{h}** ({vocab.display_label(str(h))}): " + ". ".join(parts) + ".")
    return out
