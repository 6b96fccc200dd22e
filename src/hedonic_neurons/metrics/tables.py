"""The paper's result tables (Tables 1, 2, 3 and 6) from long results tables (docs/method.md §8).

Inputs
------
*Results* are a LONG DataFrame, one row per observation, with columns
``[model, task, method, seed, layer, metric, value]``. The keys the builders look for:

- ``task``: ``"cqtr"``, ``"mean_tf_l"``, ``"relevance"`` (others are appended);
- ``method``: ``"random"``, ``"kmeans"``, ``"hierarchical"``, ``"hedonic_oca"``,
  ``"hedonic_pas"`` (or their display labels; others are appended in order of appearance);
- ``metric``: ``"ood_drop"`` and ``"align_r2"`` (Table 1), ``"predictivity_r2"`` (Table 2),
  ``"pair"`` and ``"ratio"`` (Table 6).

*Transitions* (Table 3) are a LONG DataFrame with columns
``[model, task, seed, src_layer, dst_layer, event, percent]``, ``event`` one of
``persist, merge, split, vanish`` (any case) and ``percent`` in 0..100 (share of the source
layer's coalitions, merges relative to the target layer, as in the paper's caption).

Aggregation
-----------
Within one seed, all rows of a cell (several layers, several coalitions, and for Table 2
several models) are averaged first; the cell is then the mean over seeds ± the half-width
of the t-distribution confidence interval (:func:`~.stats.mean_ci`, 95% by default). Pass
``layer=`` to restrict a table to one layer. Cells read ``"0.11±0.01"``; with a single seed
(no interval) just ``"0.11"``; a missing combination reads ``"n/a"``. A half-width that would
round to zero at ``digits`` is printed with one significant digit (``"0.11±0.005"``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import vocab
from ..errors import InputError
from ..io import atomic_write
from .stats import paired_ttest, per_seed_summary

__all__ = [
    "EVENT_LABELS",
    "METHOD_LABELS",
    "METRIC_LABELS",
    "RESULT_COLUMNS",
    "TASK_LABELS",
    "TRANSITION_COLUMNS",
    "format_cell",
    "paired_tests",
    "table_extrinsic",
    "table_predictivity",
    "table_synergy",
    "table_transitions",
    "to_csv",
    "to_latex",
    "to_markdown",
]

#: Columns of a long results table.
RESULT_COLUMNS: tuple[str, ...] = ("model", "task", "method", "seed", "layer", "metric", "value")
#: Columns of a long transitions table (Table 3).
TRANSITION_COLUMNS: tuple[str, ...] = ("model", "task", "seed", "src_layer", "dst_layer", "event", "percent")

#: Method key -> label, in the paper's row order (from :mod:`hedonic_neurons.vocab`).
METHOD_LABELS: dict[str, str] = {m: vocab.display_label(m) for m in vocab.method_order()}
#: Task key -> section label (Tables 1, 3, 6) and column label (Table 2).
TASK_LABELS: dict[str, tuple[str, str]] = {t.name: (t.label, t.short) for t in vocab.TASKS.values()}
#: Metric key -> column label.
METRIC_LABELS: dict[str, str] = {m.name: m.label for m in vocab.METRICS.values()}
#: Transition event key -> column label, in the paper's order.
EVENT_LABELS: dict[str, str] = {"persist": "Persist", "merge": "Merge", "split": "Split", "vanish": "Vanish"}

_NA = "n/a"


# ----------------------------------------------------------------------------- helpers
def _check_columns(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{name}: missing column(s) {missing}; expected {list(columns)}, got {list(df.columns)}.")


def _method_label(m: Any) -> str:
    s = str(m)
    return vocab.display_label(s.lower()) if vocab.display_label(s.lower()) != s.lower() else s


def _task_label(t: Any, short: bool = False) -> str:
    s = str(t)
    if s.lower() in TASK_LABELS:
        return TASK_LABELS[s.lower()][1 if short else 0]
    return s


def _ordered(values: Iterable[Any], preferred: Sequence[str]) -> list[Any]:
    """Preferred values first (in their order), then the others in order of first appearance."""
    seen = list(dict.fromkeys(values))
    head = [p for p in preferred if p in seen]
    return head + [v for v in seen if v not in head]


def format_cell(mean: float, ci: float, digits: int = 2, suffix: str = "", *, significant: bool = False,
                scientific: bool = False, sep: str = "±") -> str:
    """The one ``mean ± ci`` formatter of the package's tables and reports.

    ``"mean±ci"`` (``"mean"`` when ``ci`` is NaN; ``"n/a"`` when ``mean`` is NaN). With
    ``significant=False`` both numbers get ``digits`` decimals, and a half-width that would
    print as zero (but is not zero) gets one significant digit, as in the paper's
    ``0.11±0.005``. With ``significant=True`` the mean gets ``digits`` significant digits
    and the half-width two (synergies in logit units can be ~1e-8). With ``scientific=True``
    the mean is ``{:.<digits>e}`` and the half-width ``{:.1e}``. ``sep`` joins them
    (``" ± "`` in the reports).
    """
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return _NA
    if scientific:
        head = f"{mean:.{digits}e}"
        return head + suffix if ci is None or not np.isfinite(ci) else f"{head}{sep}{ci:.1e}{suffix}"
    if significant:
        head = f"{mean:.{digits}g}"
        if ci is None or not np.isfinite(ci):
            return head + suffix
        return f"{head}{sep}{ci:.2g}{suffix}"
    head = f"{mean:.{digits}f}"
    if ci is None or math.isnan(ci):
        return head + suffix
    ci_s = f"{ci:.{digits}f}"
    if ci > 0 and float(ci_s) == 0.0:
        ci_s = f"{ci:.1g}"
    return f"{head}{sep}{ci_s}{suffix}"


def _cells(
    df: pd.DataFrame, keys: list[str], value: str, confidence: float
) -> dict[tuple[Any, ...], tuple[float, float, int]]:
    """Per-seed means over all other rows, then mean ± CI over seeds, per ``keys``."""
    if df.empty:
        return {}
    summ = per_seed_summary(df, keys, value=value, confidence=confidence)
    return {tuple(row[:len(keys)]): (float(row[-3]), float(row[-2]), int(row[-1]))
            for row in summ.itertuples(index=False, name=None)}


def _prepare(long_df: pd.DataFrame, metrics: Sequence[str], layer: Any) -> pd.DataFrame:
    _check_columns(long_df, RESULT_COLUMNS, "long_df")
    df = long_df[long_df["metric"].astype(str).isin(list(metrics))]
    if layer is not None:
        df = df[df["layer"] == layer]
    return df.assign(method=df["method"].map(_method_label), task=df["task"].map(_task_key))


def _task_key(t: Any) -> str:
    """Known task keys match case-insensitively; other task names are kept as given."""
    s = str(t)
    return s.lower() if s.lower() in TASK_LABELS else s


def _task_list(tasks: Sequence[str] | None, present: Iterable[Any]) -> list[str]:
    return [_task_key(t) for t in _select(tasks, present, list(TASK_LABELS))]


def _select(values: Sequence[Any] | None, present: Iterable[Any], preferred: Sequence[Any]) -> list[Any]:
    return list(values) if values is not None else _ordered(present, list(preferred))


def _model_task_method_table(
    long_df: pd.DataFrame,
    metrics: dict[str, str],
    models: Sequence[str] | None,
    tasks: Sequence[str] | None,
    methods: Sequence[str] | None,
    layer: Any,
    confidence: float,
    digits: int,
) -> pd.DataFrame:
    df = _prepare(long_df, list(metrics), layer)
    model_list = _select(models, df["model"], [])
    task_list = _task_list(tasks, df["task"])
    method_list = [_method_label(m) for m in _select(methods, df["method"], list(METHOD_LABELS.values()))]
    cells = {met: _cells(df[df["metric"] == met], ["task", "method", "model"], "value", confidence)
             for met in metrics}
    index = pd.MultiIndex.from_tuples([(_task_label(t), m) for t in task_list for m in method_list],
                                      names=["Task", "Method"])
    columns = pd.MultiIndex.from_tuples([(str(mo), label) for mo in model_list for label in metrics.values()],
                                        names=["Model", "Metric"])
    data = [[format_cell(*cells[met].get((t, m, mo), (float("nan"), float("nan"), 0))[:2], digits=digits)
             for mo in model_list for met in metrics]
            for t in task_list for m in method_list]
    return pd.DataFrame(data, index=index, columns=columns)


# ----------------------------------------------------------------------------- tables
def table_extrinsic(
    long_df: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    layer: Any = None,
    confidence: float = 0.95,
    digits: int = 2,
) -> pd.DataFrame:
    """Table 1: OOD Drop and feature-alignment R² per task/method (rows) and model (columns).

    Parameters
    ----------
    long_df : pandas.DataFrame
        Long results (:data:`RESULT_COLUMNS`) with metrics ``"ood_drop"`` and ``"align_r2"``.
    models, tasks, methods : sequence, optional
        Restrict and order; default: every one present (tasks and methods in the paper's
        order, models in order of appearance).
    layer : optional
        Only rows of this layer (default: per-seed average over all layers).
    confidence : float
    digits : int

    Returns
    -------
    pandas.DataFrame of str
        Index ``(Task, Method)``, columns ``(Model, {"OOD Drop", "Align R2"})``, cells ``"mean±ci"``.
    """
    return _model_task_method_table(long_df, {"ood_drop": METRIC_LABELS["ood_drop"],
                                              "align_r2": METRIC_LABELS["align_r2"]},
                                    models, tasks, methods, layer, confidence, digits)


def table_synergy(
    long_df: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    layer: Any = None,
    confidence: float = 0.95,
    digits: int = 2,
) -> pd.DataFrame:
    """Table 6: coalition synergy, Pairwise and Ratio (eq. 8), per task/method and model.

    Same layout and arguments as :func:`table_extrinsic`, metrics ``"pair"`` and ``"ratio"``.
    """
    return _model_task_method_table(long_df, {"pair": METRIC_LABELS["pair"], "ratio": METRIC_LABELS["ratio"]},
                                    models, tasks, methods, layer, confidence, digits)


def table_predictivity(
    long_df: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    layer: Any = None,
    metric: str = "predictivity_r2",
    confidence: float = 0.95,
    digits: int = 2,
) -> pd.DataFrame:
    """Table 2: coalition predictivity (OOD R²), rows method, columns task, averaged over models.

    Within each seed the rows of every selected model (and layer) are averaged, then
    mean ± CI over seeds.

    Returns
    -------
    pandas.DataFrame of str
        Index ``Method``, columns the task labels (``CQTR``, ``Mean-TF/L``, ``Relevance (RM)``).
    """
    df = _prepare(long_df, [metric], layer)
    if models is not None:
        df = df[df["model"].isin(list(models))]
    task_list = _task_list(tasks, df["task"])
    method_list = [_method_label(m) for m in _select(methods, df["method"], list(METHOD_LABELS.values()))]
    cells = _cells(df, ["method", "task"], "value", confidence)
    data = [[format_cell(*cells.get((m, t), (float("nan"), float("nan"), 0))[:2], digits=digits)
             for t in task_list] for m in method_list]
    return pd.DataFrame(data, index=pd.Index(method_list, name="Method"),
                        columns=pd.Index([_task_label(t, short=True) for t in task_list], name="Task"))


def table_transitions(
    transitions: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    confidence: float = 0.95,
    digits: int = 1,
) -> pd.DataFrame:
    """Table 3: coalition dynamics across layers, percentages of Persist/Merge/Split/Vanish.

    Parameters
    ----------
    transitions : pandas.DataFrame
        Long transitions (:data:`TRANSITION_COLUMNS`); ``percent`` in 0..100.
    models, tasks : sequence, optional
        Restrict and order (default: all, tasks in the paper's order, models by appearance).
    confidence : float
    digits : int
        Decimals of the percentages (default 1, as in the paper).

    Returns
    -------
    pandas.DataFrame of str
        Index ``(Task, "Layer→")`` with layer pairs like ``"7→8"`` (ascending), columns
        ``(Model, {"Persist", "Merge", "Split", "Vanish"})``, cells ``"12.1%"`` (one seed) or
        ``"12.1±0.4%"``.
    """
    _check_columns(transitions, TRANSITION_COLUMNS, "transitions")
    ev = transitions["event"].astype(str).str.lower()
    unknown = sorted(set(ev) - set(EVENT_LABELS))
    if unknown:
        raise InputError(f"transitions['event']: unknown event(s) {unknown}; expected {list(EVENT_LABELS)}.")
    df = transitions.assign(event=ev, task=transitions["task"].map(_task_key))
    model_list = _select(models, df["model"], [])
    task_list = _task_list(tasks, df["task"])
    cells = _cells(df, ["task", "src_layer", "dst_layer", "model", "event"], "percent", confidence)
    rows: list[tuple[Any, Any, Any]] = []
    for t in task_list:
        sub = df[df["task"] == t][["src_layer", "dst_layer"]].drop_duplicates()
        for s, d in sorted(sub.itertuples(index=False, name=None), key=lambda sd: (_num(sd[0]), _num(sd[1]))):
            rows.append((t, s, d))
    index = pd.MultiIndex.from_tuples([(_task_label(t), f"{s}→{d}") for t, s, d in rows], names=["Task", "Layer→"])
    columns = pd.MultiIndex.from_tuples([(str(m), lab) for m in model_list for lab in EVENT_LABELS.values()],
                                        names=["Model", "Event"])
    data = [[format_cell(*cells.get((t, s, d, m, e), (float("nan"), float("nan"), 0))[:2], digits=digits,
                         suffix="%")
             for m in model_list for e in EVENT_LABELS] for t, s, d in rows]
    return pd.DataFrame(data, index=index, columns=columns)


def _num(x: Any) -> Any:
    try:
        return (0, float(x))
    except (TypeError, ValueError):
        return (1, str(x))


def paired_tests(
    long_df: pd.DataFrame,
    metric: str,
    baseline_method: str,
    *,
    by: Sequence[str] = ("model", "task"),
    pair_on: Sequence[str] = ("seed",),
    layer: Any = None,
) -> pd.DataFrame:
    """Paired t-tests of every method against ``baseline_method`` (docs/method.md §8).

    Within each group of ``by``, each method's values are averaged per pairing unit
    ``pair_on`` (default: per seed, averaging layers; use ``("seed", "layer")`` to pair per
    seed and layer) and matched with the baseline's units; :func:`~.stats.paired_ttest`
    is applied to the matched units.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, method, baseline, n, mean, baseline_mean, mean_diff, t, p``; one row
        per group and non-baseline method (``t > 0``: the method is larger).
    """
    by, pair_on = list(by), list(pair_on)
    df = _prepare(long_df, [metric], layer)
    base = _method_label(baseline_method)
    if base not in set(df["method"]):
        raise InputError(f"baseline_method: {baseline_method!r} has no rows for metric {metric!r}; "
                         f"methods present: {sorted(set(df['method']))}.")
    df = df.assign(_v=pd.to_numeric(df["value"], errors="coerce"))
    units = df.groupby([*by, "method", *pair_on], sort=False, dropna=False)["_v"].mean().reset_index()
    method_list = _ordered(units["method"], list(METHOD_LABELS.values()))
    rows: list[dict[str, Any]] = []
    groups: Any = units.groupby(by, sort=False, dropna=False) if by else [((), units)]
    for key, g in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        b = g[g["method"] == base].set_index(pair_on)["_v"]
        for m in method_list:
            if m == base:
                continue
            a = g[g["method"] == m].set_index(pair_on)["_v"]
            if a.empty:
                continue
            joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
            t, p = paired_ttest(joined["a"].to_numpy(), joined["b"].to_numpy())
            ok = joined.dropna()
            rows.append({**dict(zip(by, key_t)), "method": m, "baseline": base, "n": len(ok),
                         "mean": float(ok["a"].mean()) if len(ok) else float("nan"),
                         "baseline_mean": float(ok["b"].mean()) if len(ok) else float("nan"),
                         "mean_diff": float((ok["a"] - ok["b"]).mean()) if len(ok) else float("nan"),
                         "t": t, "p": p})
    return pd.DataFrame(rows, columns=[*by, "method", "baseline", "n", "mean", "baseline_mean", "mean_diff", "t", "p"])


# ----------------------------------------------------------------------------- export
def _flat(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and body rows with the index turned into leading columns."""
    idx_names = [str(n) if n is not None else "" for n in df.index.names]
    if isinstance(df.columns, pd.MultiIndex):
        col_names = [" / ".join(str(p) for p in c if str(p)) for c in df.columns]
    else:
        col_names = [str(c) for c in df.columns]
    header = [*idx_names, *col_names]
    body: list[list[str]] = []
    for key, row in zip(df.index, df.itertuples(index=False, name=None)):
        key_t = key if isinstance(key, tuple) else (key,)
        body.append([*(str(k) for k in key_t), *(_str(v) for v in row)])
    return header, body


def _str(v: Any) -> str:
    if isinstance(v, float):
        return _NA if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _write_text(text: str, path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        with atomic_write(Path(path)) as fh:
            fh.write(text)
    return text


def to_markdown(df: pd.DataFrame, path: str | os.PathLike[str] | None = None, *, index: bool = True) -> str:
    """The one Markdown table writer: a GitHub pipe table.

    The index becomes leading columns (``index=False`` leaves it out), column levels are
    joined by ``" / "``. Written without ``tabulate`` so it works in a minimal install;
    ``|`` in cells is escaped. An empty frame gives ``"_(no rows)_"``. With ``path``, also
    written to that file.
    """
    if len(df) == 0:
        return _write_text("_(no rows)_\n", path)
    if not index:
        df = df.set_index(df.columns[0]) if len(df.columns) else df
    header, body = _flat(df)

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join(" --- " if i < df.index.nlevels else " ---: " for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
    return _write_text("\n".join(lines) + "\n", path)


def to_csv(df: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> str:
    """CSV with one header row (index as leading columns, column levels joined by ``" / "``)."""
    header, body = _flat(df)
    flat = pd.DataFrame(body, columns=header)
    return _write_text(flat.to_csv(index=False, lineterminator="\n"), path)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(s: str) -> str:
    s = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)
    return s.replace("±", r"$\pm$").replace("→", r"$\to$").replace("R2", r"R$^2$")


def to_latex(
    df: pd.DataFrame,
    path: str | os.PathLike[str] | None = None,
    *,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """A LaTeX ``tabular`` (booktabs rules, multi-level header) via pandas' ``to_latex``.

    Text is escaped; ``±``, ``→`` and ``R2`` become ``$\\pm$``, ``$\\to$`` and ``R$^2$``.
    """
    out = df.copy()
    out = out.map(lambda v: _latex_escape(_str(v)))
    out.index = _relabel(out.index)
    out.columns = _relabel(out.columns)
    text = out.to_latex(escape=False, multicolumn=True, multicolumn_format="c", multirow=True,
                        caption=caption, label=label)
    return _write_text(text, path)


def _relabel(ix: pd.Index) -> pd.Index:
    if isinstance(ix, pd.MultiIndex):
        return pd.MultiIndex.from_tuples([tuple(_latex_escape(str(p)) for p in t) for t in ix],
                                         names=[_latex_escape(str(n)) if n is not None else None for n in ix.names])
    return pd.Index([_latex_escape(str(v)) for v in ix],
                    name=_latex_escape(str(ix.name)) if ix.name is not None else None)
