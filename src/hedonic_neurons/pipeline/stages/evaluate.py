"""Stage *evaluation*: the metrics of one partition through :mod:`hedonic_neurons.evaluation`
(the same core as ``hedonic evaluate``; docs/method.md §8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...evaluation import EvaluationOptions, evaluate_ood, evaluate_partition
from ...io import write_json

__all__ = ["stage_ood", "work_evaluation"]


def work_evaluation(part_path: str, rec_path: str, ood_rec_path: str, feats_path: str, metrics: list[str],
                    options: dict[str, Any], targets: tuple[str, str] | None, out: Path) -> None:
    """Synergy (on the capture records), alignment (OOD records and features) and predictivity
    (ridge fit on the capture records, R² on the OOD records) of one partition.

    ``targets``: the capture and OOD pair tables (parquet with a ``target`` column) whose
    float64 targets the predictivity uses (``None``: the records' stored labels).

    Writes ``synergy.csv``, ``alignment.csv`` (when computed) and ``metrics.json``
    (``{metric: value}``, :meth:`hedonic_neurons.evaluation.PartitionEval.metrics`).
    """
    from ...partition import Partition
    from ...records import LayerRecord

    part = Partition.from_json(part_path)
    rec = LayerRecord.load(rec_path)
    ood = LayerRecord.load(ood_rec_path) if {"alignment", "predictivity"} & set(metrics) else None
    feats = pd.read_parquet(feats_path) if "alignment" in metrics else None
    y_train = y_ood = None
    if targets is not None and "predictivity" in metrics:
        y_train, y_ood = (pd.read_parquet(p, columns=["target"])["target"].to_numpy() for p in targets)
    ev = evaluate_partition(part, EvaluationOptions(**options), record=rec, ood_record=ood, train_record=rec,
                            features=feats, metrics=metrics, train_targets=y_train, ood_targets=y_ood)
    if ev.synergy is not None:
        ev.synergy.table.to_csv(out / "synergy.csv", index=False)
    if ev.alignment is not None:
        ev.alignment.table.to_csv(out / "alignment.csv", index=False)
    write_json(out / "metrics.json", ev.metrics())


def stage_ood(model: Any, batches: Sequence[Any], layer: int, part_path: Path, pairs_path: Path,
              qrels_path: Path | None, task: str, options: EvaluationOptions, out: Path) -> None:
    """OOD drop of one partition's largest coalitions through ``model``; writes ``ood.csv`` and
    ``metrics.json`` (``ood_drop``, ``n_evaluated``)."""
    from ...partition import Partition

    pairs = pd.read_parquet(pairs_path)
    qrels = pd.read_parquet(qrels_path) if qrels_path is not None and qrels_path.is_file() else None
    res = evaluate_ood(model, batches, layer, Partition.from_json(part_path), task=task, pairs=pairs,
                       targets=pairs["target"].to_numpy(), qrels=qrels, options=options)
    res.table.to_csv(out / "ood.csv", index=False)
    write_json(out / "metrics.json", {**res.metrics(), "n_evaluated": res.n_evaluated})
