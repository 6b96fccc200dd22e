"""``hedonic tables`` and :mod:`hedonic_neurons.metrics.crossrun` on three hand-made finished runs,
checked cell by cell against hand-computed means and t-intervals (docs/method.md §8).

Constants used in the hand computations: t_{0.975, 1} = 12.7062, t_{0.975, 3} = 3.18245.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.metrics.crossrun import (
    RUN_COLUMNS,
    format_cell,
    load_runs,
    paired_tests,
    paper_table,
    to_csv,
    to_latex,
    to_markdown,
    write_tables,
)

CQTR, REL = "Covered Query Term Ratio", "Relevance Modelling"
HED, RND = "Hedonic (PAS)", "Random"


def _write_run(root: Path, cfg: dict, rows: list[tuple], *, with_model_task: bool,
               transitions: list[tuple] | None = None) -> Path:
    (root / "artifacts").mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    df = pd.DataFrame(rows, columns=["method", "seed", "layer", "metric", "value"])
    if with_model_task:
        df.insert(0, "task", cfg["task"])
        df.insert(0, "model", cfg["model"]["base"].split("/")[-1])
    df.to_csv(root / "artifacts" / "results.csv", index=False)
    if transitions is not None:
        tr = pd.DataFrame(transitions, columns=["method", "seed", "src_layer", "dst_layer", "event", "percent"])
        tr.to_csv(root / "artifacts" / "transitions.csv", index=False)
    return root


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    # run 1: model m1, task cqtr (model/task columns in the CSV)
    r1 = [
        ("hedonic_pas", 0, 1, "ood_drop", 1.0), ("hedonic_pas", 0, 2, "ood_drop", 2.0),
        ("hedonic_pas", 1, 1, "ood_drop", 3.0), ("hedonic_pas", 1, 2, "ood_drop", 4.0),
        ("random", 0, 1, "ood_drop", 0.0), ("random", 0, 2, "ood_drop", 1.0),
        ("random", 1, 1, "ood_drop", 1.0), ("random", 1, 2, "ood_drop", 2.0),
        ("hedonic_pas", 0, 1, "align_r2", 0.7),
        *[("random", s, layer, "align_r2", 0.1) for s in (0, 1) for layer in (1, 2)],
        # two rows of one (seed, layer) unit are averaged first: unit (0, 1) = 2.0
        ("hedonic_pas", 0, 1, "pair", 1.0), ("hedonic_pas", 0, 1, "pair", 3.0), ("hedonic_pas", 0, 2, "pair", 4.0),
        ("finetuned", 0, -1, "ood_metric", 0.9),
    ]
    # run 2: model m2 (only in config.yaml: the CSV has no model/task columns), task cqtr
    r2 = [
        *[("hedonic_pas", s, layer, "ood_drop", 5.0) for s in (0, 1) for layer in (1, 2)],
        ("random", 0, 1, "ood_drop", 4.0),
        ("hedonic_pas", 0, 1, "predictivity_r2", 0.2), ("hedonic_pas", 0, 2, "predictivity_r2", float("nan")),
    ]
    # run 3: model m1, task relevance, no alignment at all, a held-out Pair and transitions
    r3 = [
        ("hedonic_pas", 0, 1, "ood_drop", 0.5), ("hedonic_pas", 1, 1, "ood_drop", 0.75),
        ("random", 0, 1, "ood_drop", 0.25), ("random", 1, 1, "ood_drop", 0.5),
        ("hedonic_pas", 0, 1, "pair_heldout", 0.25),
    ]
    tr3 = [("hedonic_pas", 0, 1, 2, "persist", 50.0), ("hedonic_pas", 0, 1, 2, "merge", 25.0),
           ("hedonic_pas", 0, 1, 2, "split", 0.0), ("hedonic_pas", 0, 1, 2, "vanish", 25.0),
           ("hedonic_pas", 1, 1, 2, "Persist", 40.0), ("hedonic_pas", 1, 1, 2, "Merge", 20.0),
           ("hedonic_pas", 1, 1, 2, "Split", 20.0), ("hedonic_pas", 1, 1, 2, "Vanish", 20.0)]
    return [
        _write_run(tmp_path / "run1", {"task": "cqtr", "model": {"base": "org/m1"}}, r1, with_model_task=True),
        _write_run(tmp_path / "run2", {"task": "cqtr", "model": {"base": "hub/m2"}}, r2, with_model_task=False),
        _write_run(tmp_path / "run3", {"task": "relevance", "model": {"base": "org/m1"}}, r3,
                   with_model_task=True, transitions=tr3),
    ]


def test_format_cell() -> None:
    assert format_cell(0.5, 0.1234) == "0.5 ± 0.12"
    assert format_cell(2.0, float("nan")) == "2"
    assert format_cell(float("nan"), 1.0) == "—"
    assert format_cell(0.123456, 0.0, digits=2) == "0.12 ± 0"


def test_load_runs_fills_model_and_task_from_the_config(runs: list[Path]) -> None:
    df = load_runs(runs)
    assert list(df.columns) == list(RUN_COLUMNS)
    assert set(df.loc[df["run"] == str(runs[1]), "model"]) == {"m2"}
    assert set(df.loc[df["run"] == str(runs[1]), "task"]) == {"cqtr"}
    tr = df[df["metric"].str.startswith("transition_")]
    assert len(tr) == 8 and set(tr["metric"]) == {f"transition_{e}" for e in ("persist", "merge", "split", "vanish")}
    assert set(tr["layer"]) == {1} and set(tr["model"]) == {"m1"} and set(tr["task"]) == {"relevance"}


def test_table1_cell_by_cell(runs: list[Path]) -> None:
    t1 = paper_table(load_runs(runs), "table1")
    assert list(t1.columns) == [("m1", "OOD Drop"), ("m1", "Align R2"), ("m2", "OOD Drop"), ("m2", "Align R2")]
    assert list(t1.index) == [(CQTR, RND), (CQTR, HED), (REL, RND), (REL, HED)]
    # m1 cqtr hedonic: units 1, 2, 3, 4 -> 2.5 ± 3.18245·sqrt(5/3)/2 = 2.054
    assert t1.loc[(CQTR, HED), ("m1", "OOD Drop")] == "2.5 ± 2.1"
    # m1 cqtr random: 0, 1, 1, 2 -> 1 ± 3.18245·0.8165/2 = 1.299
    assert t1.loc[(CQTR, RND), ("m1", "OOD Drop")] == "1 ± 1.3"
    assert t1.loc[(CQTR, HED), ("m1", "Align R2")] == "0.7"  # one unit: no interval
    assert t1.loc[(CQTR, RND), ("m1", "Align R2")] == "0.1 ± 0"
    assert t1.loc[(CQTR, HED), ("m2", "OOD Drop")] == "5 ± 0"
    assert t1.loc[(CQTR, RND), ("m2", "OOD Drop")] == "4"
    assert t1.loc[(CQTR, HED), ("m2", "Align R2")] == "—"  # run 2 has no alignment
    # m1 relevance hedonic: 0.5, 0.75 -> 0.625 ± 12.7062·0.125 = 1.59; random 0.25, 0.5 -> 0.375 ± 1.59
    assert t1.loc[(REL, HED), ("m1", "OOD Drop")] == "0.625 ± 1.6"
    assert t1.loc[(REL, RND), ("m1", "OOD Drop")] == "0.375 ± 1.6"
    assert t1.loc[(REL, HED), ("m1", "Align R2")] == "—"
    assert (t1.loc[REL, ("m2", "OOD Drop")] == "—").all()  # no m2 x relevance run


def test_table6_table2_table3_cell_by_cell(runs: list[Path]) -> None:
    df = load_runs(runs)
    t6 = paper_table(df, "synergy")
    assert list(t6.columns.get_level_values(1)[:3]) == ["Pairwise", "Ratio", "Pairwise (held-out)"]
    assert list(t6.index) == [(CQTR, HED), (REL, HED)]  # random has no synergy metric
    # units (0,1) = mean(1, 3) = 2 and (0,2) = 4 -> 3 ± 12.7062·sqrt(2)/sqrt(2) = 12.7
    assert t6.loc[(CQTR, HED), ("m1", "Pairwise")] == "3 ± 13"
    assert t6.loc[(CQTR, HED), ("m1", "Ratio")] == "—"
    assert t6.loc[(REL, HED), ("m1", "Pairwise (held-out)")] == "0.25"
    assert t6.loc[(CQTR, HED), ("m1", "Pairwise (held-out)")] == "—"

    t2 = paper_table(df, "2")
    assert list(t2.index) == [(CQTR, HED)]
    assert t2.loc[(CQTR, HED), ("m2", "R2")] == "0.2"  # the NaN unit is dropped
    assert t2.loc[(CQTR, HED), ("m1", "R2")] == "—"

    t3 = paper_table(df, "table3")
    assert list(t3.index) == [(REL, HED)]
    assert list(t3.columns.get_level_values(1)[:4]) == ["Persist", "Merge", "Split", "Vanish"]
    # persist 50, 40 -> 45 ± 12.7062·5 = 63.5; vanish 25, 20 -> 22.5 ± 31.8; split 0, 20 -> 10 ± 127
    assert t3.loc[(REL, HED), ("m1", "Persist")] == "45 ± 64"
    assert t3.loc[(REL, HED), ("m1", "Vanish")] == "22.5 ± 32"
    assert t3.loc[(REL, HED), ("m1", "Split")] == "10 ± 1.3e+02"
    assert t3.loc[(REL, HED), ("m2", "Merge")] == "—"


def test_paired_tests_by_hand(runs: list[Path]) -> None:
    tests = paired_tests(load_runs(runs), "ood_drop", "hedonic_pas")
    assert list(tests["baseline"].unique()) == ["random"]  # 'finetuned' is a control and has no ood_drop
    r = tests.set_index(["model", "task"])
    # m1 cqtr: d = 1, 1, 2, 2 -> mean 1.5, sd sqrt(1/3), t = 1.5 / (sd/2) = 5.196, d_z = 2.598
    row = r.loc[("m1", "cqtr")]
    sd = math.sqrt(1 / 3)
    assert row["n"] == 4 and row["diff"] == pytest.approx(1.5)
    assert row["mean"] == pytest.approx(2.5) and row["baseline_mean"] == pytest.approx(1.0)
    assert row["t"] == pytest.approx(1.5 / (sd / 2))
    assert row["p"] == pytest.approx(2 * stats.t.sf(1.5 / (sd / 2), df=3))
    assert row["cohens_dz"] == pytest.approx(1.5 / sd)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert (row["diff_ci_low"], row["diff_ci_high"]) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))
    # m2 cqtr: only (seed 0, layer 1) is paired -> n = 1, no test
    row = r.loc[("m2", "cqtr")]
    assert row["n"] == 1 and row["diff"] == pytest.approx(1.0) and np.isnan(row["t"]) and np.isnan(row["p"])
    # m1 relevance: d = 0.25, 0.25 (identical) -> no test, no d_z
    row = r.loc[("m1", "relevance")]
    assert row["n"] == 2 and row["diff"] == 0.25 and np.isnan(row["t"]) and np.isnan(row["cohens_dz"])
    # pooled over every (model, task, seed, layer)
    row = r.loc[("all", "all")]
    a = np.array([1, 2, 3, 4, 5, 0.5, 0.75])
    b = np.array([0, 1, 1, 2, 4, 0.25, 0.5])
    ref = stats.ttest_rel(a, b)
    assert row["n"] == 7 and row["diff"] == pytest.approx((a - b).mean())
    assert row["t"] == pytest.approx(ref.statistic) and row["p"] == pytest.approx(ref.pvalue)


def test_writers_and_the_command(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tables"
    assert main(["tables", *map(str, runs), "--out", str(out)]) == 0
    for name in ("table1", "table2", "table3", "table3_layers", "table6", "paired_tests"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"{name}.{ext}").is_file(), f"{name}.{ext}"
    assert "tables.md" in capsys.readouterr().out
    csv = pd.read_csv(out / "table1.csv", keep_default_na=False)
    assert list(csv.columns) == ["Task", "Method", "m1 / OOD Drop", "m1 / Align R2", "m2 / OOD Drop", "m2 / Align R2"]
    assert csv.loc[(csv["Task"] == CQTR) & (csv["Method"] == HED), "m1 / OOD Drop"].item() == "2.5 ± 2.1"
    md = (out / "table1.md").read_text()
    assert "| Covered Query Term Ratio | Random | 1 ± 1.3 |" in md and "|  | Hedonic (PAS) | 2.5 ± 2.1 |" in md
    tex = (out / "table1.tex").read_text()
    assert r"\toprule" in tex and r"\multicolumn{2}{c}{m1}" in tex and r"2.5 $\pm$ 2.1" in tex and "---" in tex
    paired = pd.read_csv(out / "paired_tests.csv")
    # tested: the metrics of Tables 1, 2, 6 where a second method exists (Pair, R² are hedonic-only here)
    assert set(paired["metric"]) == {"ood_drop", "align_r2"}
    row = paired[(paired["model"] == "m1") & (paired["task"] == "cqtr") & (paired["metric"] == "ood_drop")]
    assert row["t"].item() == pytest.approx(1.5 / (math.sqrt(1 / 3) / 2))
    assert "tables.md" in {p.name for p in out.iterdir()}


def test_writers_render_a_small_table() -> None:
    table = pd.DataFrame([["1 ± 0.1", "—"], ["2", "3 ± 1"]],
                         index=pd.MultiIndex.from_tuples([("T_a", "x"), ("T_a", "y")], names=["Task", "Method"]),
                         columns=pd.MultiIndex.from_tuples([("m", "A"), ("m", "B%")], names=["Model", "Metric"]))
    assert to_csv(table).splitlines() == ["Task,Method,m / A,m / B%", "T_a,x,1 ± 0.1,—", "T_a,y,2,3 ± 1"]
    assert to_markdown(table).splitlines()[2:] == ["| T_a | x | 1 ± 0.1 | — |", "|  | y | 2 | 3 ± 1 |"]
    tex = to_latex(table, caption="cap")
    assert r"\multicolumn{3}{l}{\textit{T\_a}} \\" in tex and r"Method & A & B\% \\" in tex
    assert r"x & 1 $\pm$ 0.1 & --- \\" in tex and r"\cmidrule(lr){2-3}" in tex


def test_missing_results_is_one_clean_error(runs: list[Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "unfinished"
    empty.mkdir()
    with pytest.raises(ArtifactError, match=r"unfinished: has no artifacts/results\.csv"):
        load_runs([runs[0], empty])
    assert main(["tables", str(runs[0]), str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unfinished" in err[0] and "results.csv" in err[0]
    with pytest.raises(ArtifactError, match="does not exist"):
        load_runs([tmp_path / "nowhere"])


def test_input_errors(runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="given twice"):
        load_runs([runs[0], runs[0]])
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "artifacts").mkdir()
    (twin / "artifacts" / "results.csv").write_text((runs[0] / "artifacts" / "results.csv").read_text())
    with pytest.raises(InputError, match="both hold"):
        load_runs([runs[0], twin])
    with pytest.raises(InputError, match="paths"):
        load_runs([])
    df = load_runs(runs)
    with pytest.raises(InputError, match="table: 'table9'"):
        paper_table(df, "table9")
    with pytest.raises(InputError, match="reference: 'kmeans'"):
        paired_tests(df, "ood_drop", "kmeans")
    with pytest.raises(InputError, match="metric: 'nope'"):
        paired_tests(df, "nope", "hedonic_pas")
    bad = tmp_path / "bad"
    (bad / "artifacts").mkdir(parents=True)
    pd.DataFrame({"method": ["x"], "metric": ["pair"], "value": [1.0]}).to_csv(bad / "artifacts" / "results.csv")
    with pytest.raises(ArtifactError, match="missing column"):
        load_runs([bad])


def test_a_table_no_run_has_is_skipped(runs: list[Path], tmp_path: Path) -> None:
    df = load_runs(runs[:2])  # no transitions
    assert paper_table(df, "table3").empty
    files = {p.name for p in write_tables(df, tmp_path / "t")}
    assert "table3.md" not in files and "table1.md" in files and "paired_tests.csv" in files


def test_table3_by_layer_rows_in_numeric_layer_order() -> None:
    rows = [("r", "m", "cqtr", "hedonic_pas", s, layer, "transition_persist", v)
            for s, layer, v in [(0, 7, 10.0), (1, 7, 20.0), (0, 8, 30.0), (1, 8, 30.0), (0, 10, 5.0)]]
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    t = paper_table(df, "table3", by_layer=True)
    assert list(t.index) == [(CQTR, HED, 7), (CQTR, HED, 8), (CQTR, HED, 10)]
    col = ("m", "Persist")
    # layer 7: 10, 20 -> 15 ± 12.7062·5 = 63.5; layer 8: 30, 30 -> 30 ± 0; layer 10: one seed
    assert [t.loc[(CQTR, HED, layer), col] for layer in (7, 8, 10)] == ["15 ± 64", "30 ± 0", "5"]
    # pooled over (seed, layer) units: 10, 20, 30, 30, 5 -> 19 ± 2.776·sqrt(520/4)/sqrt(5) = 14.2
    assert paper_table(df, "table3").loc[(CQTR, HED), col] == "19 ± 14"
    assert t.loc[(CQTR, HED, 7), ("m", "Merge")] == "—"
