"""Statistics (mean ± t-CI, paired t-tests) and the paper's table layouts on synthetic results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.metrics.stats import mean_ci, paired_ttest, summarise
from hedonic_neurons.metrics.tables import (
    format_cell,
    paired_tests,
    table_extrinsic,
    table_predictivity,
    table_synergy,
    table_transitions,
    to_csv,
    to_latex,
    to_markdown,
)
from tests.helpers import assert_close

T_975_DF3 = 3.182446305284263  # Student t quantile, two-sided 95%, 3 degrees of freedom (tables)
T_975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # closed form of the t quantile for 2 df


def test_mean_ci_hand_computed() -> None:
    m, h = mean_ci([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)
    assert_close(m, 2.5, rtol=0, atol=1e-15)
    assert_close(h, T_975_DF3 * s / 2, rtol=1e-12, atol=0)
    m, h = mean_ci([1.0, np.nan, 2.0, 3.0, 4.0])  # NaN-safe
    assert_close(h, T_975_DF3 * s / 2, rtol=1e-12, atol=0)
    m1, h1 = mean_ci([0.3])
    assert m1 == 0.3 and math.isnan(h1)  # one seed: no interval
    assert all(math.isnan(x) for x in mean_ci([]))
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 0.0)
    _, h90 = mean_ci([1.0, 2.0, 3.0, 4.0], confidence=0.9)
    assert h90 < h
    with pytest.raises(InputError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_paired_ttest_hand_computed() -> None:
    a = np.array([0.5, 0.7, 0.4, np.nan])
    b = np.array([0.2, 0.3, 0.3, 0.1])
    d = np.array([0.3, 0.4, 0.1])
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    t, p = paired_ttest(a, b)
    assert_close(t, t_hand, rtol=1e-12, atol=0)
    assert 0 < p < 0.1
    # p from the t distribution with 2 df: P(|T| > t) = 1 - t/sqrt(t^2 + 2) (closed form for df = 2)
    assert_close(p, 1 - t_hand / math.sqrt(t_hand**2 + 2), rtol=1e-10, atol=0)
    assert all(math.isnan(x) for x in paired_ttest([1.0], [0.0]))
    assert all(math.isnan(x) for x in paired_ttest([1.0, 2.0], [0.0, 1.0]))  # constant differences
    with pytest.raises(InputError, match="equal length"):
        paired_ttest([1.0, 2.0], [1.0])


def test_summarise() -> None:
    df = pd.DataFrame({"g": ["x", "x", "x", "y"], "value": [1.0, 2.0, 3.0, 5.0]})
    out = summarise(df, by=["g"])
    assert list(out.columns) == ["g", "mean", "ci", "n", "std"]
    assert out["n"].tolist() == [3, 1]
    assert_close(out["ci"].iloc[0], T_975_DF2 * 1.0 / math.sqrt(3), rtol=1e-12, atol=0)
    assert math.isnan(out["ci"].iloc[1])


def test_format_cell() -> None:
    assert format_cell(0.114, 0.0123) == "0.11±0.01"
    assert format_cell(0.11, 0.0049) == "0.11±0.005"  # CI rounding to 0 keeps one significant digit
    assert format_cell(0.11, float("nan")) == "0.11"
    assert format_cell(float("nan"), 0.1) == "n/a"
    assert format_cell(12.06, 0.41, digits=1, suffix="%") == "12.1±0.4%"


# ----------------------------------------------------------------------------- synthetic results
MODELS = ["LLaMA-3.1", "Mistral", "Pythia"]
TASKS = ["relevance", "cqtr", "mean_tf_l"]  # deliberately not in the paper's order
METHODS = ["hedonic_pas", "kmeans", "random", "my_method", "hedonic_oca", "hierarchical"]
SEED_OFFSET = {0: -0.01, 1: 0.0, 2: 0.01}
BASE = {"random": 0.01, "kmeans": 0.02, "hierarchical": 0.03, "hedonic_oca": 0.07, "hedonic_pas": 0.11,
        "my_method": 0.5}


def _long() -> pd.DataFrame:
    rows = []
    for mi, model in enumerate(MODELS):
        for ti, task in enumerate(TASKS):
            for method in METHODS:
                for seed, off in SEED_OFFSET.items():
                    for layer, lo in ((7, -0.004), (8, 0.004)):  # layer offsets cancel within a seed
                        for metric, scale in (("ood_drop", 1.0), ("align_r2", 5.0), ("pair", -1.0),
                                              ("ratio", 7.0), ("predictivity_r2", 4.0)):
                            v = scale * (BASE[method] + 0.001 * mi + 0.002 * ti) + off * (1 + mi) + lo
                            rows.append((model, task, method, seed, layer, metric, v))
    return pd.DataFrame(rows, columns=["model", "task", "method", "seed", "layer", "metric", "value"])


PAPER_METHODS = ["Random", "K-means", "Hier. clustering", "Hedonic (OCA)", "Hedonic (PAS)", "my_method"]
PAPER_TASKS = ["Covered Query Term Ratio", "Mean of Normalized Term Frequency", "Relevance Modelling"]


def _expected_cell(metric_scale: float, method: str, mi: int, ti: int) -> str:
    vals = [metric_scale * (BASE[method] + 0.001 * mi + 0.002 * ti) + off * (1 + mi) for off in SEED_OFFSET.values()]
    return format_cell(*mean_ci(vals))


def test_table_extrinsic_layout_and_cells() -> None:
    tab = table_extrinsic(_long())
    assert list(tab.index) == [(t, m) for t in PAPER_TASKS for m in PAPER_METHODS]
    assert tab.index.names == ["Task", "Method"]
    assert list(tab.columns) == [(mo, c) for mo in MODELS for c in ("OOD Drop", "Align R2")]
    ti = TASKS.index("cqtr")
    assert tab.loc[("Covered Query Term Ratio", "Hedonic (PAS)"), ("Mistral", "OOD Drop")] == \
        _expected_cell(1.0, "hedonic_pas", 1, ti)
    assert tab.loc[("Relevance Modelling", "K-means"), ("Pythia", "Align R2")] == \
        _expected_cell(5.0, "kmeans", 2, TASKS.index("relevance"))
    # a single layer, a subset of models/methods in a chosen order
    one = table_extrinsic(_long(), layer=7, models=["Pythia"], methods=["hedonic_oca", "random"], tasks=["cqtr"])
    assert list(one.index) == [("Covered Query Term Ratio", "Hedonic (OCA)"), ("Covered Query Term Ratio", "Random")]
    assert list(one.columns) == [("Pythia", "OOD Drop"), ("Pythia", "Align R2")]


def test_table_synergy_layout() -> None:
    tab = table_synergy(_long())
    assert list(tab.columns) == [(mo, c) for mo in MODELS for c in ("Pairwise", "Ratio")]
    assert list(tab.index) == [(t, m) for t in PAPER_TASKS for m in PAPER_METHODS]
    assert tab.loc[("Mean of Normalized Term Frequency", "Random"), ("LLaMA-3.1", "Ratio")] == \
        _expected_cell(7.0, "random", 0, TASKS.index("mean_tf_l"))


def test_table_predictivity_averages_models() -> None:
    tab = table_predictivity(_long())
    assert list(tab.index) == PAPER_METHODS
    assert list(tab.columns) == ["CQTR", "Mean-TF/L", "Relevance (RM)"]
    ti = TASKS.index("mean_tf_l")
    per_seed = [np.mean([4.0 * (BASE["hedonic_oca"] + 0.001 * mi + 0.002 * ti) + off * (1 + mi) for mi in range(3)])
                for off in SEED_OFFSET.values()]
    assert tab.loc["Hedonic (OCA)", "Mean-TF/L"] == format_cell(*mean_ci(per_seed))


def test_table_transitions_layout() -> None:
    rows = []
    for model in ["Mistral", "LLaMA"]:
        for task in ["cqtr", "relevance"]:
            for src in (7, 8, 9, 10):  # 10→11 must sort after 9→10
                for seed in (0, 1):
                    for ev, pct in (("Persist", 10.0), ("merge", 0.0), ("SPLIT", 30.0), ("vanish", 60.0)):
                        rows.append((model, task, seed, src, src + 1, ev, pct + seed))
    tr = pd.DataFrame(rows, columns=["model", "task", "seed", "src_layer", "dst_layer", "event", "percent"])
    tab = table_transitions(tr)
    assert list(tab.index) == [(t, f"{s}→{s + 1}") for t in ("Covered Query Term Ratio", "Relevance Modelling")
                               for s in (7, 8, 9, 10)]
    assert list(tab.columns) == [(m, e) for m in ("Mistral", "LLaMA") for e in ("Persist", "Merge", "Split", "Vanish")]
    assert tab.loc[("Relevance Modelling", "10→11"), ("LLaMA", "Vanish")] == format_cell(
        *mean_ci([60.0, 61.0]), digits=1, suffix="%")
    one_seed = table_transitions(tr[tr["seed"] == 0])
    assert one_seed.loc[("Covered Query Term Ratio", "7→8"), ("Mistral", "Split")] == "30.0%"
    with pytest.raises(InputError, match="unknown event"):
        table_transitions(tr.assign(event="explode"))


def test_paired_tests_against_paired_ttest() -> None:
    long_df = _long()
    out = paired_tests(long_df, "ood_drop", "kmeans")
    assert set(out["method"]) == {"Random", "Hier. clustering", "Hedonic (OCA)", "Hedonic (PAS)", "my_method"}
    assert len(out) == 3 * 3 * 5
    row = out[(out["model"] == "Mistral") & (out["task"] == "cqtr") & (out["method"] == "Hedonic (PAS)")].iloc[0]
    sel = long_df[(long_df["model"] == "Mistral") & (long_df["task"] == "cqtr") & (long_df["metric"] == "ood_drop")]
    a = sel[sel["method"] == "hedonic_pas"].groupby("seed")["value"].mean().to_numpy()
    b = sel[sel["method"] == "kmeans"].groupby("seed")["value"].mean().to_numpy()
    t, p = paired_ttest(a, b)
    assert row["n"] == 3
    assert_close([row["t"], row["p"]], [t, p], rtol=1e-12, atol=0)  # NaN == NaN for assert_allclose
    assert_close(row["mean_diff"], (a - b).mean(), rtol=1e-12, atol=1e-15)
    per_layer = paired_tests(long_df, "ood_drop", "kmeans", pair_on=("seed", "layer"))
    assert (per_layer["n"] == 6).all()
    noisy = long_df.assign(value=long_df["value"] + np.random.default_rng(0).normal(0, 0.01, len(long_df)))
    res = paired_tests(noisy, "align_r2", "random", by=("model",))
    r = res[(res["model"] == "LLaMA-3.1") & (res["method"] == "Hedonic (PAS)")].iloc[0]
    sub = noisy[(noisy["model"] == "LLaMA-3.1") & (noisy["metric"] == "align_r2")]
    a = sub[sub["method"] == "hedonic_pas"].groupby("seed")["value"].mean().to_numpy()
    b = sub[sub["method"] == "random"].groupby("seed")["value"].mean().to_numpy()
    assert_close([r["t"], r["p"]], list(paired_ttest(a, b)), rtol=1e-12, atol=0)
    with pytest.raises(InputError, match="baseline_method"):
        paired_tests(long_df, "ood_drop", "nonexistent")


def test_exports(tmp_path: Path) -> None:
    tab = table_extrinsic(_long(), models=["Mistral"], tasks=["cqtr"])
    md = to_markdown(tab, tmp_path / "t.md")
    lines = md.strip().splitlines()
    assert lines[0] == "| Task | Method | Mistral / OOD Drop | Mistral / Align R2 |"
    assert len(lines) == 2 + len(PAPER_METHODS)
    assert (tmp_path / "t.md").read_text() == md
    csv = to_csv(tab)
    back = pd.read_csv(pd.io.common.StringIO(csv), dtype=str)
    assert list(back.columns) == ["Task", "Method", "Mistral / OOD Drop", "Mistral / Align R2"]
    assert back.iloc[4, 2] == tab.iloc[4, 0]
    tex = to_latex(tab, caption="Table 1", label="tab:ext")
    assert r"\pm" in tex and r"\begin{tabular}" in tex and "R$^2$" in tex
    tex3 = to_latex(table_transitions(pd.DataFrame(
        [("m", "cqtr", 0, 7, 8, "persist", 5.0)], columns=["model", "task", "seed", "src_layer", "dst_layer",
                                                           "event", "percent"])))
    assert r"5.0\%" in tex3 and r"$\to$" in tex3


def test_missing_columns_are_reported() -> None:
    with pytest.raises(InputError, match="missing column"):
        table_extrinsic(_long().drop(columns="seed"))
