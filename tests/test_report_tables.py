"""The run report renders a hand-made StudyResults value; every table cell is checked against
mean ± CI computed by hand (per-seed mean over layers, then t-interval over seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from hedonic_neurons.pipeline import load_config
from hedonic_neurons.pipeline.report import write_report
from hedonic_neurons.pipeline.study import StudyResults

METHODS = ["hedonic_pas", "random", "kmeans"]
SEEDS = [0, 1, 2]
LAYERS = [2, 3]
METRICS = ["ood_drop", "align_r2", "predictivity_r2", "pair", "ratio"]


def _value(method: int, seed: int, layer: int, metric: int) -> float:
    # distinct, irregular numbers so that a wrong grouping cannot give the right cell
    return round(0.1 * (method + 1) + 0.037 * seed ** 2 + 0.011 * layer + 0.05 * metric + 0.003 * seed * layer, 6)


def _hand(values_by_seed: dict[int, list[float]]) -> tuple[float, float]:
    """Mean over seeds of the per-seed mean over layers, and the 95% t half-width (NaN with one seed)."""
    per_seed = [sum(v) / len(v) for v in values_by_seed.values()]
    n = len(per_seed)
    mean = sum(per_seed) / n
    if n == 1:
        return mean, math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (n - 1))
    return mean, float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    run = tmp_path_factory.mktemp("report")
    cfg = load_config("demo", output_dir=str(run), **{"discovery.seeds": SEEDS})
    rows = []
    for mi, method in enumerate(METHODS):
        for seed in SEEDS:
            for layer in LAYERS:
                for ki, metric in enumerate(METRICS):
                    if method == "random" and metric == "pair":
                        continue  # a missing combination
                    if method == "kmeans" and metric == "predictivity_r2" and seed != 0:
                        continue  # a single seed: no interval
                    rows.append({"model": "m", "task": "cqtr", "method": method, "seed": seed, "layer": layer,
                                 "metric": metric, "value": _value(mi, seed, layer, ki)})
    results = pd.DataFrame(rows)
    tr_rows = []
    for seed in SEEDS:
        for event, base in (("persist", 50.0), ("split", 20.0), ("merge", 20.0), ("vanish", 10.0)):
            shift = {"persist": 3.0 * seed, "split": -1.0 * seed, "merge": -seed * 1.5, "vanish": -0.5 * seed}[event]
            tr_rows.append({"model": "m", "task": "cqtr", "method": "hedonic_pas", "seed": seed, "src_layer": 2,
                            "dst_layer": 3, "event": event, "percent": base + shift, "count": 1, "n_src": 10})
    study = StudyResults(cfg, run, tuple(METHODS), results, pd.DataFrame(tr_rows))
    md = write_report(study).read_text(encoding="utf-8")
    return {"run": run, "results": results, "md": md, "transitions": pd.DataFrame(tr_rows)}


def _expected(results: pd.DataFrame, method: str, metric: str) -> tuple[float, float]:
    sub = results[(results["method"] == method) & (results["metric"] == metric)]
    if sub.empty:
        return math.nan, math.nan
    return _hand({s: list(g["value"]) for s, g in sub.groupby("seed")})


@pytest.mark.parametrize("table,metrics", [("table1", ("ood_drop", "align_r2")), ("table2", ("predictivity_r2",)),
                                           ("table6", ("pair", "ratio"))])
def test_numeric_tables_cell_by_cell(rendered, table: str, metrics: tuple[str, ...]) -> None:
    tab = pd.read_csv(rendered["run"] / "artifacts" / "tables" / f"{table}_numeric.csv")
    assert list(tab["method"]) == METHODS
    checked = 0
    for _, row in tab.iterrows():
        for metric in metrics:
            mean, ci = _expected(rendered["results"], row["method"], metric)
            for got, want in ((row[f"{metric}_mean"], mean), (row[f"{metric}_ci"], ci)):
                if math.isnan(want):
                    assert math.isnan(got), (row["method"], metric)
                else:
                    assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (row["method"], metric)
            checked += 1
    assert checked == len(METHODS) * len(metrics)


def _md_rows(md: str, title: str) -> dict[str, list[str]]:
    block = md.split(title, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows[1:])}


def test_report_markdown_cells(rendered) -> None:
    md = rendered["md"]
    for title, metrics in (("Table 1:", ("ood_drop", "align_r2")), ("Table 2:", ("predictivity_r2",)),
                           ("Table 6:", ("pair", "ratio"))):
        rows = _md_rows(md, title)
        assert list(rows) == METHODS
        for method, cells in rows.items():
            for metric, cell in zip(metrics, cells):
                mean, ci = _expected(rendered["results"], method, metric)
                want = "n/a" if math.isnan(mean) else f"{mean:.3g}" if math.isnan(ci) else f"{mean:.3g} ± {ci:.2g}"
                assert cell == want, (title, method, metric)
    assert _md_rows(md, "Table 2:")["kmeans"] == [f"{_expected(rendered['results'], 'kmeans', 'predictivity_r2')[0]:.3g}"]
    assert _md_rows(md, "Table 6:")["random"][0] == "n/a"


def _paper(mean: float, ci: float, digits: int, suffix: str = "") -> str:
    if math.isnan(mean):
        return "n/a"
    head = f"{mean:.{digits}f}"
    if math.isnan(ci):
        return head + suffix
    ci_s = f"{ci:.{digits}f}"
    if ci > 0 and float(ci_s) == 0:
        ci_s = f"{ci:.1g}"
    return f"{head}±{ci_s}{suffix}"


def test_paper_layout_tables_cell_by_cell(rendered) -> None:
    t1 = pd.read_csv(rendered["run"] / "artifacts" / "tables" / "table1.csv", keep_default_na=False)
    labels = {"hedonic_pas": "Hedonic (PAS)", "random": "Random", "kmeans": "K-means"}
    assert set(t1["Method"]) == set(labels.values())
    for method, label in labels.items():
        row = t1[t1["Method"] == label].iloc[0]
        assert row["Task"] == "Covered Query Term Ratio"
        for metric, col in (("ood_drop", "m / OOD Drop"), ("align_r2", "m / Align R2")):
            assert row[col] == _paper(*_expected(rendered["results"], method, metric), 3), (method, metric)
    t6 = pd.read_csv(rendered["run"] / "artifacts" / "tables" / "table6.csv", keep_default_na=False).set_index("Method")
    assert t6.loc["Random", "m / Pairwise"] == "n/a"
    assert t6.loc["Hedonic (PAS)", "m / Ratio"] == _paper(*_expected(rendered["results"], "hedonic_pas", "ratio"), 3)
    t3 = pd.read_csv(rendered["run"] / "artifacts" / "tables" / "table3.csv", keep_default_na=False)
    assert len(t3) == 1 and t3.loc[0, "Layer→"] == "2→3"
    tr = rendered["transitions"]
    for event in ("persist", "split", "merge", "vanish"):
        sub = tr[tr["event"] == event]
        want = _paper(*_hand({s: list(g["percent"]) for s, g in sub.groupby("seed")}), 1, "%")
        assert t3.loc[0, f"m / {event.capitalize()}"] == want, event
    assert np.isfinite(pd.read_csv(rendered["run"] / "artifacts" / "tables" / "table2_numeric.csv")
                       ["predictivity_r2_mean"]).all()


def test_report_imports_neither_the_cache_nor_the_stages() -> None:
    """Data flows one way: the study imports the report, never the other way round."""
    import ast
    import inspect

    import hedonic_neurons.pipeline.report as report

    tree = ast.parse(inspect.getsource(report))
    guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in guarded:
            assert (node.module or "") not in ("study", "plan", "cache", "stages", "executor"), node.module
            assert not (node.module or "").startswith("stages"), node.module


def test_pac_bound_of_the_stability_stage_against_the_binomial() -> None:
    """pac_upper_bound(x, N, δ) is the u with P(Binom(N, u) <= x) = δ (found here by bisection)."""
    from scipy.stats import binom

    from hedonic_neurons.pipeline.stages.stability import pac_upper_bound

    for x, n, delta in ((0, 100, 0.1), (3, 500, 0.05), (40, 200, 0.2), (7, 7, 0.1)):
        got = pac_upper_bound(x, n, delta)
        if x == n:
            assert got == 1.0
            continue
        lo, hi = x / n, 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if binom.cdf(x, n, mid) > delta else (lo, mid)
        assert got == pytest.approx(lo, abs=1e-9)
