"""Stage *evaluation*: the metrics of one partition through :mod:`hedonic_neurons.evaluation`
(the same core as ``hedonic evaluate``; docs/method.md §8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ...evaluation import (
    EvaluationOptions,
    evaluate_heldout_synergy,
    evaluate_ood,
    evaluate_partition,
    evaluate_synergy,
)
from ...io import write_json

__all__ = ["HELDOUT_KEYS", "stage_ood", "work_evaluation", "work_evaluation_heldout", "work_ood_estimated"]

#: Files of the held-out evaluation (docs/method.md §8.5): the two parts' records and ψ.
HELDOUT_KEYS: tuple[str, ...] = ("discovery_record", "heldout_record", "psi_discovery", "psi_heldout")


def work_evaluation(part_path: str, rec_path: str, ood_rec_path: str, feats_path: str, metrics: list[str],
                    options: dict[str, Any], targets: tuple[str, str] | None, out: Path, *,
                    heldout: dict[str, str] | None = None) -> None:
    """Synergy (on the capture records), alignment (OOD records and features) and predictivity
    (ridge fit on the capture records, R² on the OOD records) of one partition.

    ``targets``: the capture and OOD pair tables (parquet with a ``target`` column) whose
    float64 targets the predictivity uses (``None``: the records' stored labels).

    ``heldout``: paths named by :data:`HELDOUT_KEYS`. With it the in-sample Pair and Ratio are
    measured on the discovery part (the inputs φ saw; read from its ψ and marginals,
    :func:`hedonic_neurons.evaluation.evaluate_synergy` with ``psi``) and the held-out ones with
    their size-matched null on the held-out records and ψ
    (:func:`hedonic_neurons.evaluation.evaluate_heldout_synergy`; ``heldout.csv``).

    With ``heldout`` the alignment is also tested against random coalitions of each size
    (:func:`hedonic_neurons.evaluation.evaluate_alignment_null`; ``alignment_null.csv``,
    ``align_excess``, ``frac_sig_align``).

    Writes ``synergy.csv``, ``alignment.csv``, ``heldout.csv`` (when computed) and ``metrics.json``
    (``{metric: value}``, :meth:`hedonic_neurons.evaluation.PartitionEval.metrics`).
    """
    from ...metrics.nulls import prepare_phi
    from ...partition import Partition
    from ...records import LayerRecord
    from ...synergy import SynergyMatrix

    # Each record and ψ is loaded when its metric needs it and dropped after: at n = 14336 a
    # record holds ~1 GB of weights and a ψ 0.8 GB (float32, used in place by the null tests).
    part = Partition.from_json(part_path)
    opts = EvaluationOptions(**options)
    with_synergy = "synergy" in metrics
    syn = held = None
    if heldout and with_synergy:
        # in-sample Pair/Ratio from the discovery ψ (the exact PAS of every pair, already computed)
        psi_in = prepare_phi(SynergyMatrix.load(heldout["psi_discovery"]))  # zero diagonal and margins, once
        syn = evaluate_synergy(LayerRecord.load(heldout["discovery_record"]), part, opts, psi=psi_in)
        held = evaluate_heldout_synergy(LayerRecord.load(heldout["heldout_record"]), part,
                                        SynergyMatrix.load(heldout["psi_heldout"]).values, opts, psi_insample=psi_in)
        del psi_in
        held.table.to_csv(out / "heldout.csv", index=False)
        write_json(out / "heldout.json", {"pair_pooled_null": held.pair_pooled_null, "pair_pooled_p": held.pair_pooled_p,
                                          "n_tested": held.n_tested})
    rec = LayerRecord.load(rec_path) if (with_synergy and syn is None) or "predictivity" in metrics else None
    ood = LayerRecord.load(ood_rec_path) if {"alignment", "predictivity"} & set(metrics) else None
    feats = pd.read_parquet(feats_path) if "alignment" in metrics else None
    y_train = y_ood = None
    if targets is not None and "predictivity" in metrics:
        y_train, y_ood = (pd.read_parquet(p, columns=["target"])["target"].to_numpy() for p in targets)
    rest = [m for m in metrics if m != "synergy" or syn is None]
    ev = evaluate_partition(part, opts, record=rec, ood_record=ood, train_record=rec,
                            features=feats, metrics=rest, train_targets=y_train, ood_targets=y_ood)
    del rec
    ev = replace(ev, synergy=syn if syn is not None else ev.synergy, heldout=held)
    metrics_out = ev.metrics()
    if heldout and ev.alignment is not None and ood is not None and feats is not None:  # size-matched null (§8.5)
        from ...evaluation import evaluate_alignment_null

        al_table, al_excess, al_frac = evaluate_alignment_null(ood, part, feats, opts)
        al_table.to_csv(out / "alignment_null.csv", index=False)
        metrics_out.update(align_excess=al_excess, frac_sig_align=al_frac)
    if ev.synergy is not None:
        ev.synergy.table.to_csv(out / "synergy.csv", index=False)
    if ev.alignment is not None:
        ev.alignment.table.to_csv(out / "alignment.csv", index=False)
    write_json(out / "metrics.json", metrics_out)


def work_evaluation_heldout(part_path: str, rec_path: str, ood_rec_path: str, feats_path: str, metrics: list[str],
                            options: dict[str, Any], targets: tuple[str, str] | None, heldout: dict[str, str],
                            out: Path) -> None:
    """:func:`work_evaluation` with the held-out evaluation (the study's evaluation unit)."""
    work_evaluation(part_path, rec_path, ood_rec_path, feats_path, metrics, options, targets, out, heldout=heldout)


def work_ood_estimated(part_path: str, attribution_path: str, all_lora_path: str, pairs_path: str,
                       qrels_path: str | None, task: str, options: dict[str, Any], out: Path) -> None:
    """Estimated OOD drop of every coalition of one partition from the layer's cached attributions,
    with its size-matched null and the all-LoRA scale
    (:func:`hedonic_neurons.evaluation.evaluate_ood_estimated`; docs/method.md §8.4–§8.5).

    Writes ``ood.csv`` (one row per coalition) and ``metrics.json`` (``ood_drop``,
    ``ood_drop_rel``, ``ood_drop_excess``, ``frac_sig_ood``, ``n_evaluated``, ``metric_full``,
    ``all_lora_drop``, ``rule``).
    """
    from ...evaluation import evaluate_ood_estimated
    from ...io import load_arrays, read_json
    from ...partition import Partition

    arrays, _ = load_arrays(attribution_path)
    pairs = pd.read_parquet(pairs_path)
    qp = Path(qrels_path) if qrels_path else None
    qrels = pd.read_parquet(qp) if qp is not None and qp.is_file() else None
    res = evaluate_ood_estimated(arrays["scores"], arrays["attributions"], Partition.from_json(part_path), task=task,
                                 pairs=pairs, targets=pairs["target"].to_numpy(), qrels=qrels,
                                 all_lora_drop=float(read_json(all_lora_path)["drop"]),
                                 options=EvaluationOptions(**options))
    res.table.to_csv(out / "ood.csv", index=False)
    write_json(out / "metrics.json", {**res.metrics(), "n_evaluated": res.n_evaluated, "metric_full": res.metric_full,
                                      "all_lora_drop": res.all_lora_drop,
                                      "rule": "estimated (first order), every coalition of size >= min_size"})


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
