"""The paper's tables across finished runs, with paired tests (``hedonic tables``; docs/method.md §8).

Each ``hedonic run`` is one model × one task; the paper's Tables 1, 2, 3 and 6 put models side by
side (column groups) and tasks one under the other (row groups), one row per method. This
module reads the long results of several finished runs (:func:`load_runs`), builds those
layouts (:func:`paper_table`), tests each hedonic method against every other method
(:func:`paired_tests`) and writes everything as Markdown, CSV and LaTeX (:func:`write_tables`).

Inputs
------
A finished run directory holds ``artifacts/results.csv`` (long format
``model, task, method, seed, layer, metric, value``) and ``config.yaml``; ``model`` and ``task``
come from the CSV's columns, or from the config when the CSV lacks them. When present,
``artifacts/transitions.csv`` (``method, seed, src_layer, dst_layer, event, percent``) adds the
rows ``metric = "transition_<event>"`` with ``layer = src_layer`` and ``value = percent``, which
feed Table 3.

Aggregation
-----------
The unit of observation is one ``(seed, layer)`` of one ``(model, task, method)`` (for Table 3
the layer is the source layer of the transition); several rows of one unit are averaged first. A cell is the mean over its units ± the half-width of the two-sided
95% t-interval (:func:`hedonic_neurons.metrics.stats.mean_ci`), printed by :func:`format_cell`:
``"0.123 ± 0.045"``, ``"0.123"`` for a single unit (no interval), ``"—"`` when the run has no
such metric. Paired tests pair the units ``(seed, layer)`` of two methods within a
``(model, task)``; the pooled rows (``model = task = "all"``) pair ``(model, task, seed, layer)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import atomic_write
from ..vocab import METRICS, TASKS, display_label, method_order
from ._crossrun_load import RUN_COLUMNS, load_runs
from ._crossrun_writers import to_csv, to_latex, to_markdown
from .stats import mean_ci, paired_ttest

__all__ = [
    "CONTROL_METHODS",
    "RUN_COLUMNS",
    "TABLES",
    "TableSpec",
    "format_cell",
    "load_runs",
    "paired_tests",
    "paper_table",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_tables",
]

_UNIT = ("model", "task", "method", "seed", "layer")

#: Methods that are bounds or reference models, not partitions: never a default comparison.
CONTROL_METHODS: frozenset[str] = frozenset({"all_lora", "finetuned", "no_lora", "base"})

#: Transition events of Table 3, in the paper's order.
_EVENTS: tuple[str, ...] = ("persist", "merge", "split", "vanish")

_MISSING = "—"

#: Labels of the metrics this module introduces (Table 3) or that the shared vocabulary does not
#: list yet; :data:`hedonic_neurons.vocab.METRICS` takes precedence.
_LOCAL_LABELS: dict[str, str] = {
    **{f"transition_{e}": e.capitalize() for e in _EVENTS},
    "ood_drop_rel": "OOD Drop (rel.)",
    "frac_sig_ood": "Sig. OOD (frac.)",
    "pair_heldout": "Pairwise (held-out)",
    "ratio_heldout": "Ratio (held-out)",
    "pair_pooled": "Pairwise (pooled)",
    "pair_pooled_heldout": "Pairwise (pooled, held-out)",
    "frac_sig_pair": "Sig. Pair (frac.)",
}


@dataclass(frozen=True)
class TableSpec:
    """One of the paper's tables: its metrics (``core`` always shown, ``optional`` when present)."""

    name: str
    title: str
    core: tuple[str, ...]
    optional: tuple[str, ...] = ()


#: The tables :func:`paper_table` builds, by name.
TABLES: dict[str, TableSpec] = {t.name: t for t in (
    TableSpec("table1", "Table 1: extrinsic evaluation (OOD drop, feature alignment R²)",
              ("ood_drop", "align_r2"), ("ood_drop_rel", "frac_sig_ood")),
    TableSpec("table2", "Table 2: predictivity (OOD R² of coalition macro-features)", ("predictivity_r2",)),
    TableSpec("table3", "Table 3: coalition transitions across layers (% of source coalitions)",
              tuple(f"transition_{e}" for e in _EVENTS)),
    TableSpec("table6", "Table 6: intrinsic synergy (Pair, Ratio; held-out and pooled when present)",
              ("pair", "ratio"), ("pair_heldout", "ratio_heldout", "pair_pooled", "pair_pooled_heldout",
                                  "frac_sig_pair")),
)}
_ALIASES = {"1": "table1", "2": "table2", "3": "table3", "6": "table6", "extrinsic": "table1",
            "predictivity": "table2", "transitions": "table3", "synergy": "table6", "intrinsic": "table6"}


# ----------------------------------------------------------------------------- cells
def format_cell(mean: float, half_width: float, digits: int = 3) -> str:
    """The one cell formatter: ``"mean ± half_width"`` (``digits`` significant digits for the mean, two
    for the interval), ``"mean"`` when the interval is NaN (a single unit), ``"—"`` when the mean is NaN.

    >>> format_cell(0.5, 0.1234), format_cell(2.0, float("nan")), format_cell(float("nan"), 0.1)
    ('0.5 ± 0.12', '2', '—')
    """
    if mean is None or math.isnan(mean):
        return _MISSING
    head = f"{mean:.{digits}g}"
    if half_width is None or math.isnan(half_width):
        return head
    return f"{head} ± {half_width:.2g}"


def _check_df(df: Any) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"df: expected a pandas DataFrame from load_runs, got {type(df).__name__}.")
    missing = [c for c in RUN_COLUMNS[1:] if c not in df.columns]
    if missing:
        raise InputError(f"df: missing column(s) {missing}; expected {list(RUN_COLUMNS)}.")
    return df


def _units(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per ``(model, task, method, seed, layer, metric)``: the mean of its non-NaN values."""
    sub = df[df["metric"].isin(list(metrics))]
    return (sub.assign(value=pd.to_numeric(sub["value"], errors="coerce"))
            .groupby([*_UNIT, "metric"], sort=False, dropna=False)["value"].mean().reset_index())


def _ordered(present: Iterable[Any], preferred: Sequence[Any]) -> list[Any]:
    seen = list(dict.fromkeys(present))
    return [p for p in preferred if p in seen] + [v for v in seen if v not in preferred]


def _task_label(task: str) -> str:
    return TASKS[task].label if task in TASKS else str(task)


def _metric_label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else _LOCAL_LABELS.get(metric, metric)


def _table_spec(table: str) -> TableSpec:
    key = _ALIASES.get(str(table).lower(), str(table).lower())
    if key not in TABLES:
        raise InputError(f"table: {table!r} is not a table; expected one of {', '.join(TABLES)} "
                         f"(or {', '.join(_ALIASES)}).")
    return TABLES[key]


def _layer_key(x: Any) -> tuple[int, float | str]:
    try:
        return (0, float(x))
    except (TypeError, ValueError):
        return (1, str(x))


def paper_table(
    df: pd.DataFrame, table: str, *, by_layer: bool = False, confidence: float = 0.95, digits: int = 3
) -> pd.DataFrame:
    """One of the paper's tables across runs: tasks as row groups, methods as rows, models as column groups.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`load_runs`.
    table : {"table1", "table2", "table3", "table6"}
        Or ``"1"``, ``"extrinsic"``, ``"predictivity"``, ``"transitions"``, ``"synergy"``
        (:data:`TABLES` lists each table's metrics).
    by_layer : bool
        One row per layer under each method (the paper's Table 3 shows each layer pair; the
        layer of a transition is its source layer); cells are then mean ± CI over seeds.
    confidence : float
        Level of the t-intervals (default 0.95).
    digits : int
        Significant digits of the means.

    Returns
    -------
    pandas.DataFrame of str
        Index ``(Task, Method)`` (display labels; a method appears under a task when it has
        any of the table's metrics there; ``(Task, Method, Layer)`` with ``by_layer``),
        columns ``(Model, Metric)``: the table's core metrics always, its optional ones
        (held-out, pooled, relative, significant fractions) when some run has them. Cells
        from :func:`format_cell`; ``"—"`` where a run lacks the metric. No rows when no run
        has any of the table's metrics.
    """
    spec = _table_spec(table)
    df = _check_df(df)
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a number in (0, 1), got {confidence!r}.")
    present = set(df["metric"])
    metrics = [*spec.core, *(m for m in spec.optional if m in present)]
    units = _units(df, metrics)
    row_keys = ["task", "method", "layer"] if by_layer else ["task", "method"]
    cells: dict[tuple[Any, ...], str] = {}
    for key, g in units.groupby(["model", *row_keys, "metric"], sort=False, dropna=False):
        cells[key] = format_cell(*mean_ci(g["value"].to_numpy(dtype=np.float64), confidence), digits=digits)
    models = list(dict.fromkeys(df["model"]))
    order = method_order()
    rows: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    for task in _ordered(units["task"], list(TASKS)):
        at_task = units[units["task"] == task]
        for method in _ordered(at_task["method"], order):
            if not by_layer:
                rows.append((_task_label(task), display_label(method)))
                keys.append((task, method))
                continue
            for layer in sorted(set(at_task.loc[at_task["method"] == method, "layer"]), key=_layer_key):
                rows.append((_task_label(task), display_label(method), layer))
                keys.append((task, method, layer))
    names = ["Task", "Method", "Layer"] if by_layer else ["Task", "Method"]
    columns = pd.MultiIndex.from_tuples([(str(m), _metric_label(x)) for m in models for x in metrics],
                                        names=["Model", "Metric"])
    data = [[cells.get((m, *key, x), _MISSING) for m in models for x in metrics] for key in keys]
    index = pd.MultiIndex.from_tuples(rows, names=names) if rows else \
        pd.MultiIndex.from_arrays([[] for _ in names], names=names)
    return pd.DataFrame(data, index=index, columns=columns, dtype=object)


# ----------------------------------------------------------------------------- paired tests
PAIRED_COLUMNS: tuple[str, ...] = ("model", "task", "metric", "method", "baseline", "n", "mean", "baseline_mean",
                                   "diff", "diff_ci_low", "diff_ci_high", "t", "p", "cohens_dz")


def _paired_row(a: pd.Series, b: pd.Series, confidence: float) -> dict[str, Any]:
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    x, y = joined["a"].to_numpy(dtype=np.float64), joined["b"].to_numpy(dtype=np.float64)
    d = x - y
    n = int(d.size)
    nan = float("nan")
    mean_d, half = mean_ci(d, confidence) if n else (nan, nan)
    t, p = paired_ttest(x, y) if n else (nan, nan)
    sd = float(d.std(ddof=1)) if n > 1 else nan
    return {"n": n, "mean": float(x.mean()) if n else nan, "baseline_mean": float(y.mean()) if n else nan,
            "diff": mean_d, "diff_ci_low": mean_d - half, "diff_ci_high": mean_d + half, "t": t, "p": p,
            "cohens_dz": mean_d / sd if n > 1 and sd > 0 else nan}


def paired_tests(
    df: pd.DataFrame,
    metric: str,
    reference: str,
    *,
    baselines: Sequence[str] | None = None,
    pooled: bool = True,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired t-tests of ``reference`` against each baseline, paired over ``(seed, layer)``.

    Within each ``(model, task)`` the reference's and the baseline's units (module docstring)
    are matched on ``(seed, layer)``; pairs with a NaN on either side are dropped. The
    difference ``d = reference − baseline`` gives the mean difference with its t-interval, the
    two-sided paired t-test (:func:`hedonic_neurons.metrics.stats.paired_ttest`) and the
    standardised effect size Cohen's ``d_z = mean(d) / sd(d)``.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`load_runs`.
    metric : str
    reference : str
        A method key, e.g. ``"hedonic_pas"``.
    baselines : sequence of str, optional
        Default: every other method with this metric except :data:`CONTROL_METHODS`.
    pooled : bool
        Also add rows ``model = task = "all"`` pairing ``(model, task, seed, layer)`` across runs.
    confidence : float

    Returns
    -------
    pandas.DataFrame
        Columns ``model, task, metric, method, baseline, n, mean, baseline_mean, diff,
        diff_ci_low, diff_ci_high, t, p, cohens_dz``; ``t > 0`` when the reference is larger.
        ``t, p`` NaN with fewer than two pairs or identical differences.
    """
    df = _check_df(df)
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a number in (0, 1), got {confidence!r}.")
    units = _units(df, [metric])
    if units.empty:
        raise InputError(f"metric: {metric!r} has no rows; metrics present: {sorted(set(df['metric']))}.")
    methods = list(dict.fromkeys(units["method"]))
    if reference not in methods:
        raise InputError(f"reference: {reference!r} has no rows for metric {metric!r}; methods present: {methods}.")
    if baselines is None:
        base_list = [m for m in _ordered(methods, method_order()) if m != reference and m not in CONTROL_METHODS]
    else:
        base_list = [str(b) for b in baselines]
        unknown = [b for b in base_list if b not in methods]
        if unknown:
            raise InputError(f"baselines: {unknown} have no rows for metric {metric!r}; methods present: {methods}.")
    rows: list[dict[str, Any]] = []
    groups: list[tuple[Any, Any, pd.DataFrame, list[str]]] = [
        (m, t, g, ["seed", "layer"]) for (m, t), g in units.groupby(["model", "task"], sort=False, dropna=False)]
    if pooled and len(groups) > 1:
        groups.append(("all", "all", units, ["model", "task", "seed", "layer"]))
    for model, task, g, on in groups:
        ref = g[g["method"] == reference].set_index(on)["value"]
        if ref.empty:
            continue
        for b in base_list:
            other = g[g["method"] == b].set_index(on)["value"]
            if other.empty:
                continue
            rows.append({"model": model, "task": task, "metric": metric, "method": reference, "baseline": b,
                         **_paired_row(ref, other, confidence)})
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _format_paired(tests: pd.DataFrame) -> pd.DataFrame:
    """The paired tests as text for Markdown/LaTeX: one column per quantity, numbers rounded."""
    def g(x: float, d: int = 3) -> str:
        return _MISSING if x is None or math.isnan(x) else f"{x:.{d}g}"

    rows = [[r.model, _task_label(r.task) if r.task != "all" else "all", _metric_label(r.metric),
             display_label(r.method), display_label(r.baseline), str(r.n), g(r.mean), g(r.baseline_mean),
             f"{g(r.diff)} [{g(r.diff_ci_low)}, {g(r.diff_ci_high)}]", g(r.t), g(r.p, 2), g(r.cohens_dz, 2)]
            for r in tests.itertuples(index=False)]
    return pd.DataFrame(rows, columns=["Model", "Task", "Metric", "Method", "Baseline", "n", "Mean", "Baseline mean",
                                       "Δ [95% CI]", "t", "p", "d_z"]).set_index(["Model", "Task", "Metric"])


def _write(path: Path, text: str) -> Path:
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def write_tables(
    df: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    references: Sequence[str] | None = None,
    confidence: float = 0.95,
    digits: int = 3,
) -> list[Path]:
    """Write Tables 1, 2, 3, 6 and the paired tests as Markdown, CSV and LaTeX into ``out``.

    Files: ``table1.{md,csv,tex}`` ... ``table6.*`` and ``table3_layers.*`` (Table 3 with one row
    per source layer; a table no run has a metric of is skipped),
    ``paired_tests.{md,csv,tex}`` (the CSV with unrounded numbers) and ``tables.md`` with all
    of them under their titles.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`load_runs`.
    out : path
        Output directory (created).
    references : sequence of str, optional
        Methods tested against every other method; default every ``hedonic_*`` method present
        except the null-valuation control ``hedonic_null*``.
    confidence, digits
        As in :func:`paper_table`.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    df = _check_df(df)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    combined: list[str] = []
    tested: list[str] = []
    layouts = [(spec.name, spec.title, spec.name, False) for spec in TABLES.values()]
    layouts.append(("table3_layers", TABLES["table3"].title + ", per source layer", "table3", True))
    for name, title, spec_name, by_layer in layouts:
        table = paper_table(df, spec_name, by_layer=by_layer, confidence=confidence, digits=digits)
        if table.empty:
            continue
        spec = TABLES[spec_name]
        if spec_name != "table3":
            tested += [m for m in (*spec.core, *spec.optional) if m in set(df["metric"])]
        md = to_markdown(table, title)
        combined.append(md)
        written += [_write(root / f"{name}.md", md), _write(root / f"{name}.csv", to_csv(table)),
                    _write(root / f"{name}.tex", to_latex(table, caption=title, label=f"tab:{name}"))]
    methods = list(dict.fromkeys(df["method"]))
    refs = list(references) if references is not None else \
        [m for m in methods if m.startswith("hedonic_") and not m.startswith("hedonic_null")]
    frames = []
    for metric in tested:
        have = set(df.loc[df["metric"] == metric, "method"])
        for ref in refs:
            if ref in have and len(have - {ref} - CONTROL_METHODS) > 0:
                frames.append(paired_tests(df, metric, ref, confidence=confidence))
    tests = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PAIRED_COLUMNS))
    title = ("Paired t-tests: each hedonic method against every other method, paired over (seed, layer); "
             "Δ = method − baseline with its 95% t-interval, Cohen's d_z = mean(Δ)/sd(Δ)")
    text = _format_paired(tests)
    md = to_markdown(text, title) if not tests.empty else f"### {title}\n\nNo pairs to test.\n"
    combined.append(md)
    written += [_write(root / "paired_tests.md", md),
                _write(root / "paired_tests.csv", tests.to_csv(index=False, lineterminator="\n")),
                _write(root / "paired_tests.tex", to_latex(text, caption="Paired t-tests", label="tab:paired"))]
    written.append(_write(root / "tables.md", "\n".join(combined)))
    return written
