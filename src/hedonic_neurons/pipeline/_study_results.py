"""The results value of a study: :class:`StudyResults` and the column orders of its long tables.

Everything a study produced, as values (docs/method.md §8); :func:`hedonic_neurons.pipeline.study.collect`
builds it from the finished units and the report renders it. Private;
:mod:`hedonic_neurons.pipeline.study` re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..partition import Partition
from .config import StudyConfig
from .plan import PartitionKey

RESULT_COLUMNS: list[str] = ["model", "task", "method", "seed", "layer", "metric", "value"]
TRANSITION_COLUMNS: list[str] = ["model", "task", "method", "seed", "src_layer", "dst_layer", "event", "percent",
                                 "count", "n_src"]


@dataclass(frozen=True)
class StudyResults:
    """Everything a study produced, as values (the report renders this and nothing else).

    Attributes
    ----------
    cfg : StudyConfig
    run_dir : pathlib.Path
    labels : tuple of str
        Method labels in table order (hedonic first).
    results : pandas.DataFrame
        Long results ``[model, task, method, seed, layer, metric, value]``.
    transitions : pandas.DataFrame
        Long transitions ``[model, task, method, seed, src_layer, dst_layer, event, percent, count, n_src]``.
    partitions : dict[PartitionKey, Partition]
        Every finished partition.
    stability : pandas.DataFrame
        One row per hedonic partition: ``layer, method, seed, epsilon, upper, n_blocking,
        n_samples, pac_upper, pac_met``.
    finetune : dict or None
        ``model.json`` of the model stage (before/after validation figures).
    sankeys : tuple of (label, png path or None, html path or None)
        Sankey figures of the first seed (files under ``run_dir/figures``).
    timings : dict[str, float]
        Wall seconds per stage in this call.
    compute : dict[str, tuple[int, float]]
        Per stage: units and compute seconds recorded when they were computed.
    executed, reused : tuple of str
        Units computed in this call and units taken from the cache.
    report : pathlib.Path or None
        ``report.md`` once written (``report.html`` next to it).
    verification : pandas.DataFrame
        One row per layer: the estimated OOD drop checked against exact ablations on a
        size-stratified sample (``layer, n_coalitions, n_sample, spearman, abs_error,
        max_abs_error, rel_error, mean_abs_exact_drop``) and the all-LoRA drop
        (``all_lora_drop``, ``metric_full``); docs/method.md §8.5.
    controls : dict or None
        ``controls.json``: OOD metric of ``finetuned``, ``no_lora``, ``base``, and ``gain``.
    split : dict or None
        The held-out split: ``n_discovery``, ``n_heldout``, query counts, ``fraction``, ``seed``.
    coalitions : pandas.DataFrame
        The explorer's per-coalition table (``artifacts/coalitions.parquet``).
    explorer : pathlib.Path or None
        ``explorer.html`` in the run directory.
    closure : pandas.DataFrame
        Closure diagnostics (docs/method.md §5.5), one row per hedonic partition: ``layer,
        method, seed`` and :data:`.stages.diagnostics.CLOSURE_FIELDS` (``artifacts/closure.csv``).
    k_sweep : pandas.DataFrame
        Exact Top Covering over k, one row per layer, valuation and k: ``layer, valuation``
        and :data:`.stages.diagnostics.K_SWEEP_COLUMNS` (``artifacts/k_sweep.csv``).
    """

    cfg: StudyConfig
    run_dir: Path
    labels: tuple[str, ...]
    results: pd.DataFrame = field(repr=False)
    transitions: pd.DataFrame = field(repr=False)
    partitions: dict[PartitionKey, Partition] = field(repr=False, default_factory=dict)
    stability: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    finetune: dict[str, Any] | None = None
    sankeys: tuple[tuple[str, Path | None, Path | None], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    compute: dict[str, tuple[int, float]] = field(default_factory=dict)
    executed: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    report: Path | None = None
    verification: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    controls: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    coalitions: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    explorer: Path | None = None
    closure: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    k_sweep: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


#: The name of the results value before the split (kept for callers).
RunResult = StudyResults
