"""Reading finished run directories into one long frame (``hedonic tables``; docs/method.md §8).

Private; :mod:`hedonic_neurons.metrics.crossrun` re-exports :data:`RUN_COLUMNS` and
:func:`load_runs`, which document the input layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ArtifactError, InputError
from ..vocab import model_label

#: Columns of :func:`load_runs`' frame.
RUN_COLUMNS: tuple[str, ...] = ("run", "model", "task", "method", "seed", "layer", "metric", "value")


# ----------------------------------------------------------------------------- loading
def _read_config(run: Path) -> dict[str, Any]:
    import yaml

    for name in ("config.yaml", "config.yml", "config.json"):
        path = run / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text())
            except yaml.YAMLError as exc:
                raise ArtifactError(f"{path}: not valid YAML/JSON ({exc}).") from exc
            return data if isinstance(data, dict) else {}
    return {}


def _fill_from_config(df: pd.DataFrame, cfg: dict[str, Any], path: Path) -> pd.DataFrame:
    model_cfg = cfg.get("model")
    base = model_cfg.get("base") if isinstance(model_cfg, dict) else model_cfg
    fallback = {"model": model_label(str(base)) if base else None, "task": cfg.get("task")}
    for col, value in fallback.items():
        if col not in df.columns:
            if value is None:
                raise ArtifactError(f"{path}: no '{col}' column and no '{col}' in the run's config.yaml.")
            df[col] = value
        elif value is not None:
            df[col] = df[col].fillna(value)
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable CSV ({exc}).") from exc


def _transition_rows(path: Path, cfg: dict[str, Any]) -> pd.DataFrame:
    tr = _read_csv(path)
    need = ["method", "seed", "src_layer", "event", "percent"]
    missing = [c for c in need if c not in tr.columns]
    if missing:
        raise ArtifactError(f"{path}: missing column(s) {missing}; expected at least {need}.")
    tr = _fill_from_config(tr, cfg, path)
    return pd.DataFrame({"model": tr["model"], "task": tr["task"], "method": tr["method"], "seed": tr["seed"],
                         "layer": tr["src_layer"], "metric": "transition_" + tr["event"].astype(str).str.lower(),
                         "value": tr["percent"]})


def load_runs(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Long results of several finished runs (``hedonic run`` directories).

    Parameters
    ----------
    paths : iterable of path
        Run directories, each with ``artifacts/results.csv`` (and ``config.yaml``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RUN_COLUMNS` (``run`` is the directory as given), ``value`` numeric
        (non-numbers become NaN). Transition percentages are included as described in the
        module docstring.

    Raises
    ------
    ArtifactError
        A directory without ``artifacts/results.csv``, a CSV without the long-format columns,
        or no model/task in either the CSV or the config.
    InputError
        No paths, or two runs holding the same ``(model, task, method, seed, layer, metric)``.
    """
    runs = [Path(p) for p in paths]
    if not runs:
        raise InputError("paths: expected at least one run directory, got none.")
    seen: dict[Path, Path] = {}
    for run in runs:
        key = run.resolve()
        if key in seen:
            raise InputError(f"paths: {run} is given twice (also as {seen[key]}); expected each run once.")
        seen[key] = run
    frames: list[pd.DataFrame] = []
    for run in runs:
        results = run / "artifacts" / "results.csv"
        if not results.is_file():
            what = "does not exist" if not run.exists() else "has no artifacts/results.csv"
            raise ArtifactError(f"{run}: {what}; expected a finished 'hedonic run' directory.")
        cfg = _read_config(run)
        df = _read_csv(results)
        need = ["method", "seed", "layer", "metric", "value"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ArtifactError(f"{results}: missing column(s) {missing}; expected the long format "
                                f"{list(RUN_COLUMNS[1:])}.")
        parts = [_fill_from_config(df, cfg, results)[list(RUN_COLUMNS[1:])]]
        transitions = run / "artifacts" / "transitions.csv"
        if transitions.is_file():
            parts.append(_transition_rows(transitions, cfg))
        one = pd.concat(parts, ignore_index=True)
        one.insert(0, "run", str(run))
        frames.append(one)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    out["metric"] = out["metric"].astype(str)
    out["method"] = out["method"].astype(str)
    keys = ["model", "task", "method", "seed", "layer", "metric"]
    per_key = out.groupby(keys, dropna=False)["run"].nunique()
    clash = per_key[per_key > 1]
    if not clash.empty:
        key = clash.index[0]
        owners = sorted(out.loc[(out[keys] == pd.Series(key, index=keys)).all(axis=1), "run"].unique())
        raise InputError(f"paths: runs {owners} both hold {dict(zip(keys, key))}; expected each "
                         "(model, task, seed) in one run only.")
    return out[list(RUN_COLUMNS)]
