"""Collection: the finished units of a study read once into a :class:`StudyResults` value.

:func:`collect` writes the long results and transitions, the closure diagnostics and k-sweeps,
hard links of partitions, φ, records and transitions under ``artifacts/``, the Sankey figures,
``artifacts/manifest.json`` and ``artifacts/timings.json``, and the evidence protocol's outputs
(verification, controls, held-out split, explorer; docs/method.md §8.5). Private;
:mod:`hedonic_neurons.pipeline.study` re-exports :func:`collect`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import read_json, write_json
from ..partition import Partition
from ._study_results import RESULT_COLUMNS, TRANSITION_COLUMNS, StudyResults
from .cache import move_aside_stale
from .plan import PartitionKey, StudyPlan, model_name
from .report import write_frame
from .stages.explorer import export_explorer


def _results(plan: StudyPlan) -> pd.DataFrame:
    cfg = plan.cfg
    base = {"model": model_name(cfg), "task": cfg.task}
    rows: list[dict[str, Any]] = []

    def add(key: PartitionKey, metric: str, value: Any) -> None:
        rows.append({**base, "method": key.label, "seed": key.seed, "layer": key.layer, "metric": metric,
                     "value": float(value)})

    for key, u in plan.evaluation.items():
        if u.done:
            for metric, value in read_json(u.file("metrics.json")).items():
                add(key, metric, value)
    for key, u in plan.ood.items():
        if u.done:
            m = read_json(u.file("metrics.json"))
            for metric in ("ood_drop", "ood_drop_rel", "ood_drop_excess", "frac_sig_ood"):
                if metric in m:
                    add(key, metric, m[metric])
    first = cfg.discovery.seeds[0]
    for layer, u in plan.attribution.items():  # the all-LoRA bound, one row per layer (§8.5)
        if u.done:
            add(PartitionKey(layer, "all_lora", first), "ood_drop", read_json(u.file("all_lora.json"))["drop"])
    if plan.controls is not None and plan.controls.done:  # control models, layer -1 (the whole model)
        ctl = read_json(plan.controls.file("controls.json"))
        for name in ("finetuned", "no_lora", "base"):
            if ctl.get(name) is not None and ctl[name] == ctl[name]:  # NaN: no model before fine-tuning
                add(PartitionKey(-1, name, first), "ood_metric", ctl[name])
    for key, u in plan.stability.items():
        if u.done:
            st = read_json(u.file("stability.json"))
            add(key, "epsilon_hat", st["epsilon"])
            add(key, "epsilon_upper", st["upper"])
            if "epsilon_sampler" in st:  # ε̂ under the PAC sampler's own D (docs/method.md §5.3)
                add(key, "epsilon_hat_sampler", st["epsilon_sampler"])
                add(key, "epsilon_upper_sampler", st["upper_sampler"])
    for key, u in plan.closure.items():  # largest_share itself comes with the evaluation's shape metrics
        if u.done:
            add(key, "null_largest_share", read_json(u.file("closure.json"))["null_largest_share"])
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _diagnostics(plan: StudyPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The closure diagnostics (one row per hedonic partition) and the k-sweeps (docs/method.md §5.5)."""
    from .stages.diagnostics import CLOSURE_FIELDS, K_SWEEP_COLUMNS

    rows = [{"layer": key.layer, "method": key.label, "seed": key.seed, **read_json(u.file("closure.json"))}
            for key, u in plan.closure.items() if u.done]
    closure = pd.DataFrame(rows, columns=["layer", "method", "seed", *CLOSURE_FIELDS])
    frames = []
    for (layer, v), u in plan.k_sweep.items():
        if u.done:
            df = pd.read_csv(u.file("k_sweep.csv"))
            df.insert(0, "valuation", v)
            df.insert(0, "layer", layer)
            frames.append(df)
    sweep = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["layer", "valuation", *K_SWEEP_COLUMNS]))
    return closure, sweep


def _transitions(plan: StudyPlan) -> pd.DataFrame:
    frames = []
    for (label, seed), u in plan.tracking.items():
        if u.done:
            df = pd.read_csv(u.file("events.csv"))
            for col, val in (("seed", seed), ("method", label), ("task", plan.cfg.task),
                             ("model", model_name(plan.cfg))):
                df.insert(0, col, val)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRANSITION_COLUMNS)


def _link(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a cached file into the user-facing tree."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def collect(plan: StudyPlan, timings: dict[str, float] | None = None) -> StudyResults:
    """Read the finished units into a :class:`StudyResults` and export the artifacts tree.

    Writes ``artifacts/results.{csv,parquet}``, ``artifacts/transitions.{csv,parquet}``,
    ``artifacts/closure.{csv,parquet}``, ``artifacts/k_sweep.{csv,parquet}``, hard links of partitions, φ, records and transitions under ``artifacts/``, Sankey
    figures under ``figures/`` and ``artifacts/manifest.json``.
    """
    cfg, run = plan.cfg, plan.run_dir
    art, figs = run / "artifacts", run / "figures"
    d = cfg.discovery
    results, transitions = _results(plan), _transitions(plan)
    write_frame(results, art / "results")
    write_frame(transitions, art / "transitions")
    closure, sweep = _diagnostics(plan)
    write_frame(closure, art / "closure")
    write_frame(sweep, art / "k_sweep")
    manifest: dict[str, Any] = {"partitions": {}, "phi": {}, "records": {}, "transitions": {}}
    partitions: dict[PartitionKey, Partition] = {}
    for key, ref in plan.partitions.items():
        if ref.unit.done and ref.path.is_file():
            dst = art / "partitions" / f"layer{key.layer}" / f"{key.label}.seed{key.seed}.json"
            _link(ref.path, dst)
            manifest["partitions"][f"layer{key.layer}/{key.label}/seed{key.seed}"] = str(dst.relative_to(run))
            partitions[key] = Partition.from_json(ref.path)
    for (layer, v), u in plan.valuation.items():
        if u.done:
            dst = art / "phi" / f"layer{layer}.{v}.safetensors"
            _link(u.file("phi.safetensors"), dst)
            manifest["phi"][f"layer{layer}/{v}"] = str(dst.relative_to(run))
    for split in ("capture", "ood"):
        for layer in d.layers:
            f = plan.record_file(split, layer)
            if f.is_file():
                dst = art / "records" / split / f"layer{layer}.safetensors"
                _link(f, dst)
                manifest["records"][f"{split}/layer{layer}"] = str(dst.relative_to(run))
    sankeys: list[tuple[str, Path | None, Path | None]] = []
    for (label, seed), u in plan.tracking.items():
        if not u.done:
            continue
        dst = art / "transitions" / f"{label}.seed{seed}.csv"
        _link(u.file("transitions.csv"), dst)
        manifest["transitions"][f"{label}/seed{seed}"] = str(dst.relative_to(run))
        out: list[Path | None] = []
        for ext in ("png", "html"):
            src = u.file(f"sankey.{ext}")
            if src.is_file():
                _link(src, figs / f"sankey.{label}.seed{seed}.{ext}")
            out.append(figs / f"sankey.{label}.seed{seed}.{ext}" if src.is_file() else None)
        if seed == d.seeds[0]:
            sankeys.append((label, out[0], out[1]))
    write_json(art / "manifest.json", manifest)
    timing_rows = []
    for u in plan.units():
        if u.done:
            t = plan.cache.timing(u) or {"unit": u.label, "key": u.key, "stage": u.stage,
                                         "wall_s": plan.cache.seconds(u), "peak_rss_gb": None, "backend": None,
                                         "worker": None}
            timing_rows.append({**t, "computed_now": u.label in plan.cache.executed})
    write_json(art / "timings.json", {"units": timing_rows})
    kept = [run / p for group in manifest.values() for p in group.values()]
    kept += [figs / f"sankey.{label}.seed{seed}.{ext}" for (label, seed) in plan.tracking for ext in ("png", "html")]
    move_aside_stale(run, kept, ("artifacts/partitions/**/*", "artifacts/phi/**/*", "artifacts/records/**/*",
                                 "artifacts/transitions/**/*", "figures/sankey.*"))
    stab_rows = []
    for key, u in plan.stability.items():
        if u.done:
            st = read_json(u.file("stability.json"))
            stab_rows.append({"layer": key.layer, "method": key.label, "seed": key.seed,
                              **{k: st.get(k) for k in ("epsilon", "upper", "n_blocking", "n_samples",
                                                         "pac_epsilon", "pac_delta", "pac_upper", "pac_met",
                                                         "sampler", "epsilon_sampler", "upper_sampler")}})
    mj = plan.model.file("model.json")
    compute: dict[str, tuple[int, float]] = {}
    for u in plan.units():
        if u.done:
            n, s = compute.get(u.stage, (0, 0.0))
            compute[u.stage] = (n + 1, s + plan.cache.seconds(u))
    verification, controls, split_info, coalitions, explorer = _evidence(plan)
    return StudyResults(cfg, run, tuple(plan.labels()), results, transitions, partitions, pd.DataFrame(stab_rows),
                        read_json(mj) if mj.is_file() else None, tuple(sankeys), dict(timings or {}), compute,
                        tuple(plan.cache.executed), tuple(plan.cache.reused), closure=closure, k_sweep=sweep,
                        verification=verification, controls=controls, split=split_info, coalitions=coalitions,
                        explorer=explorer)


def _evidence(plan: StudyPlan) -> tuple[pd.DataFrame, dict[str, Any] | None, dict[str, Any] | None, pd.DataFrame,
                                        Path | None]:
    """The evidence protocol's outputs (docs/method.md §8.5): verification per layer, controls, the
    held-out split, and the explorer's artifacts and page (written into the run directory)."""
    rows = []
    for layer, u in plan.attribution.items():
        row: dict[str, Any] = {"layer": layer}
        if u.done:
            al = read_json(u.file("all_lora.json"))
            row.update(all_lora_drop=al["drop"], metric_full=al["metric_full"])
        v = plan.verify.get(layer)
        if v is not None and v.done:
            row.update({k: val for k, val in read_json(v.file("verify.json")).items() if k not in ("layer", "seed")})
        rows.append(row)
    controls = (read_json(plan.controls.file("controls.json"))
                if plan.controls is not None and plan.controls.done else None)
    split = None
    if plan.split is not None and plan.split.done:
        split = {k: v for k, v in read_json(plan.split.file("split.json")).items() if k not in ("discovery", "heldout")}
    explorer = export_explorer(plan)
    coal = plan.run_dir / "artifacts" / "coalitions.parquet"
    coalitions = pd.read_parquet(coal) if explorer is not None and coal.is_file() else pd.DataFrame()
    return pd.DataFrame(rows), controls, split, coalitions, explorer
