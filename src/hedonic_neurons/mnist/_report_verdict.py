"""The verdict of the MNIST study (docs/method.md §8.5): hedonic partitions against chance and baselines.

:func:`verdict` pairs each hedonic method's held-out Pair with size-matched random partitions
and with each baseline over ``(seed, layer)`` of the trained network; :func:`verdict_lines`
puts it in words. Private; :mod:`hedonic_neurons.mnist.report` re-exports the public names and
documents the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ._study_config import BASELINE_METHODS, HEDONIC_METHODS, METHOD_LABELS

#: Method name of the size-matched null in :func:`verdict` (random partitions with the method's
#: own size histogram; per unit the mean of ``null_draws`` of them).
SIZE_MATCHED = "size_matched_random"
#: The partition-level metrics the verdict tests, primary first.
VERDICT_METRICS: tuple[str, ...] = ("pair_pooled_heldout", "pair_heldout")


def verdict(partitions: pd.DataFrame) -> pd.DataFrame:
    """Each hedonic method against size-matched random partitions and each baseline (held-out Pair).

    Parameters
    ----------
    partitions : pandas.DataFrame
        The study's per-partition table (``partitions.csv``): ``seed, setting, layer, method,
        pair_pooled_heldout, pair_pooled_null, pair_heldout, frac_sig_pair, ...``. Only the
        trained network enters.

    Returns
    -------
    pandas.DataFrame
        One row per (method, metric, comparison): ``method, metric, baseline, n, mean,
        baseline_mean, diff, diff_ci_low, diff_ci_high, t, p, cohens_dz, frac_sig_pair,
        answer``. ``baseline`` is :data:`SIZE_MATCHED` (for ``pair_pooled_heldout`` the unit's
        null mean; for ``pair_heldout`` each coalition's null mean averaged like the metric) or a
        baseline method. ``answer`` is ``"better"`` when the 95% interval of the mean difference
        lies above 0, ``"worse"`` below 0, ``"no detectable difference"`` when it covers 0, and
        ``"undetermined (n < 2)"`` with fewer than two paired units.
    """
    from ..metrics.crossrun import paired_tests

    need = {"seed", "setting", "layer", "method", "pair_pooled_heldout", "pair_pooled_null", "pair_heldout",
            "pair_heldout_null", "frac_sig_pair"}
    missing = need - set(partitions.columns)
    if missing:
        raise InputError(f"partitions: missing columns {sorted(missing)}; expected the study's partitions.csv.")
    sub = partitions[partitions["setting"] == "trained"]
    present = list(dict.fromkeys(sub["method"]))
    hedonic = [m for m in HEDONIC_METHODS if m in present]
    baselines = [b for b in BASELINE_METHODS if b in present]
    rows: list[pd.DataFrame] = []
    for method in hedonic:
        own = sub[sub["method"] == method]
        frames = [sub[sub["method"].isin([method, *baselines])]]
        frames.append(own.assign(method=SIZE_MATCHED, pair_pooled_heldout=own["pair_pooled_null"],
                                 pair_heldout=own["pair_heldout_null"]))
        units = pd.concat(frames, ignore_index=True)
        long = units.melt(id_vars=["seed", "layer", "method"], value_vars=list(VERDICT_METRICS),
                          var_name="metric", value_name="value").assign(model="mnist_mlp", task="digits")
        for metric in VERDICT_METRICS:
            tests = paired_tests(long, metric, method, baselines=[SIZE_MATCHED, *baselines], pooled=False)
            tests = tests.drop(columns=["model", "task"])
            tests["frac_sig_pair"] = float(own["frac_sig_pair"].mean())
            rows.append(tests)
    if not rows:
        return pd.DataFrame(columns=["method", "metric", "baseline", "n", "mean", "baseline_mean", "diff",
                                     "diff_ci_low", "diff_ci_high", "t", "p", "cohens_dz", "frac_sig_pair", "answer"])
    out = pd.concat(rows, ignore_index=True)
    out["answer"] = [("undetermined (n < 2)" if n < 2 or not np.isfinite(lo) else
                      "better" if lo > 0 else "worse" if hi < 0 else "no detectable difference")
                     for n, lo, hi in zip(out["n"], out["diff_ci_low"], out["diff_ci_high"])]
    return out[["method", "metric", "baseline", "n", "mean", "baseline_mean", "diff", "diff_ci_low",
                "diff_ci_high", "t", "p", "cohens_dz", "frac_sig_pair", "answer"]]


def _label(method: str) -> str:
    return "size-matched random" if method == SIZE_MATCHED else METHOD_LABELS.get(method, method)


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """The verdict in words, one bullet per hedonic method (primary metric: pooled held-out Pair)."""
    lines: list[str] = []
    prim = table[table["metric"] == VERDICT_METRICS[0]]
    for method, grp in prim.groupby("method", sort=False):
        parts = []
        for _, r in grp.iterrows():
            parts.append(f"{r['answer']} than {_label(r['baseline'])} "
                         f"({r['diff']:+.3g} [{r['diff_ci_low']:+.3g}, {r['diff_ci_high']:+.3g}], p = {r['p']:.2g})"
                         if r["answer"] in ("better", "worse") else
                         f"{r['answer']} from {_label(r['baseline'])} "
                         f"({r['diff']:+.3g} [{r['diff_ci_low']:+.3g}, {r['diff_ci_high']:+.3g}]"
                         + (f", p = {r['p']:.2g})" if np.isfinite(r["p"]) else ")"))
        first = grp.iloc[0]
        lines.append(f"- **{_label(str(method))}** (pooled held-out Pair {first['mean']:.3g}, n = {int(first['n'])} "
                     f"(seed, layer) units; {first['frac_sig_pair']:.0%} of its coalitions significantly above "
                     f"size-matched random at FDR 5%): " + "; ".join(parts) + ".")
    return lines


def _format_verdict(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["Method"] = table["method"].map(_label)
    out["Metric"] = table["metric"].map({"pair_pooled_heldout": "Pair (pooled, held-out)",
                                         "pair_heldout": "Pair (mean, held-out)"})
    out["vs"] = table["baseline"].map(_label)
    out["n"] = table["n"]
    out["method"] = table["mean"].map(lambda v: f"{v:.3g}")
    out["other"] = table["baseline_mean"].map(lambda v: f"{v:.3g}")
    out["diff [95% CI]"] = [f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in
                            zip(table["diff"], table["diff_ci_low"], table["diff_ci_high"])]
    out["p"] = table["p"].map(lambda v: f"{v:.2g}")
    out["d_z"] = table["cohens_dz"].map(lambda v: f"{v:.2f}")
    out["answer"] = table["answer"]
    return out
