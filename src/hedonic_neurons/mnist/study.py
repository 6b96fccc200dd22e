"""The MNIST study of App. I end to end: train, record, valuate, partition, measure.

Per seed and *setting* — ``"trained"`` (the network of App. I.1), ``"random_init"`` (the
same network untrained) and ``"shuffled"`` (trained on permuted labels; the two negative
controls of Table 9):

1. train (or initialise) the gated residual MLP (:mod:`.model`);
2. split the test images into a *discovery* and an *evaluation* half (:func:`heldout_split`:
   seeded, stratified by digit, disjoint; docs/method.md §8.5);
3. per layer ``h_l`` and half: build the :class:`~hedonic_neurons.records.LayerRecord`
   (:func:`.players.layer_record`), the exact PAS matrix, the exact marginals ``psi(i)`` and the
   loss deltas ``Delta_i`` (App. I.3); on the discovery half also the OCA matrix (weights = the
   next reader's columns, :meth:`.model.GatedResidualMLP.reading_weights`);
4. partitions, from the discovery half only: PAC-Top-Cover on PAS and on OCA (the paper's Hedonic-PAS / Hedonic-OCA,
   App. I.4), exact Top Covering on both, the additively separable game's Nash-stable
   partition on both (docs/method.md §5.6), and the three baselines matched to Hedonic-PAS
   (App. I.5; clustered on the discovery activations);
5. per coalition, on the evaluation half: ΔAcc, Pair, Ratio, purity, selectivity, sparsity,
   stroke alignment (App. I.6; :mod:`.metrics`), the in-sample Pair/Ratio (discovery half) beside
   them, and the held-out Pair against ``null_draws`` random coalitions of the same size
   (:func:`hedonic_neurons.metrics.nulls.pair_null_test`); per partition the pooled held-out
   Pair against random partitions with the same size histogram (``pooled_pair_null``).

The controls are run on ``control_layer`` (h3) with Hedonic-PAS and the hierarchical
baseline only. Every artifact is written atomically and reused on a re-run with the same
output directory (models, records, φ, partitions, per-layer metric tables). Artifacts are
keyed by the config hash of what produced them, so a changed config recomputes.

Output layout::

    out/config.json
    out/seed{s}/{setting}/model.safetensors
    out/seed{s}/{setting}/h{l}/{discovery,heldout}/record.safetensors    LayerRecord of each half
    out/seed{s}/{setting}/h{l}/{discovery,heldout}/phi_pas.safetensors   SynergyMatrix (OCA: discovery)
    out/seed{s}/{setting}/h{l}/{discovery,heldout}/players.safetensors   psi (marginals), loss_delta
    out/seed{s}/{setting}/h{l}/partitions/{method}.json    Partition (from the discovery half)
    out/seed{s}/{setting}/h{l}/coalitions.csv              one row per coalition
    out/seed{s}/{setting}/h{l}/partitions.csv              one row per partition (pooled Pair, nulls)
    out/coalitions.csv, out/partitions.csv, out/results_long.csv   all rows; long format
    out/models.csv, out/timings.csv                        accuracies; seconds per stage
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import vocab
from ..errors import ArtifactError, InputError
from ..io import atomic_write, load_arrays, read_json, save_arrays, write_json
from ..partition import Partition
from ..provenance import provenance
from ..records import LayerRecord
from ._study_config import (
    BASELINE_METHODS,
    HEDONIC_METHODS,
    METHOD_LABELS,
    REFERENCE,
    SETTINGS,
    MnistStudyConfig,
    MnistStudyResult,
)
from .coalitions import METRIC_COLUMNS, coalition_metrics, heldout_pair_tests, partition_evidence
from .data import MnistSplit, load_mnist
from .metrics import (
    template_scale,
)
from .model import (
    GatedResidualMLP,
    accuracy,
    init_model,
    load_model,
    save_model,
    train_model,
)
from .players import (
    baseline_vector,
    layer_activations,
    layer_record,
    loss_deltas,
)

__all__ = [
    "HEDONIC_METHODS",
    "METHOD_LABELS",
    "MnistStudyConfig",
    "MnistStudyResult",
    "SETTINGS",
    "coalition_metrics",
    "heldout_split",
    "run_mnist_study",
]


def heldout_split(labels: np.ndarray, *, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split evaluation images into a discovery and a held-out part (docs/method.md §8.5).

    A seeded split stratified by digit (:func:`sklearn.model_selection.train_test_split`), so
    both parts keep the digit frequencies. φ and the partitions come from the discovery part;
    Pair, Ratio and every other coalition metric are measured on the held-out part.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (N,)
        Digit of each image.
    fraction : float in (0, 1)
        Share of the images held out.
    seed : int

    Returns
    -------
    (discovery, heldout) : tuple of numpy.ndarray of int64
        Sorted, disjoint row indices whose union is ``0..N-1``.

    Raises
    ------
    InputError
        If ``labels`` is not 1-d, has fewer than 4 images, or ``fraction`` is outside (0, 1).
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(labels).reshape(-1) if np.ndim(labels) == 1 else None
    if y is None or y.size < 4:
        raise InputError(f"labels: expected a 1-d array of at least 4 digits, got shape {np.shape(labels)}.")
    if not 0.0 < float(fraction) < 1.0:
        raise InputError(f"fraction: expected a number in (0, 1), got {fraction!r}.")
    idx = np.arange(y.size)
    counts = np.bincount(y.astype(np.int64) - y.min())
    stratify = y if counts[counts > 0].min() >= 2 else None
    disc, held = train_test_split(idx, test_size=float(fraction), random_state=int(seed), stratify=stratify)
    return np.sort(disc).astype(np.int64), np.sort(held).astype(np.int64)


# ---------------------------------------------------------------------------- artifacts
def _load_or_train(path: Path, cfg: MnistStudyConfig, data: MnistSplit, seed: int, setting: str,
                   progress: bool) -> tuple[GatedResidualMLP, dict[str, Any]]:
    key = cfg._model_key()
    if path.is_file():
        try:
            model, meta = load_model(path)
            if meta.get("key") == key:
                return model, meta
        except ArtifactError:
            pass
    tc = cfg.train_config(seed, setting)
    if setting == "random_init":
        model, losses = init_model(cfg.model, seed), []
    else:
        result = train_model(cfg.model, tc, data.x_train, data.y_train, progress=progress)
        model, losses = result.model, result.losses
    meta = {
        "key": key, "seed": seed, "setting": setting, "train": tc.to_dict(), "losses": losses,
        "test_accuracy": accuracy(model, data.x_test, data.y_test), "data": data.source, **provenance(),
    }
    save_model(path, model, meta)
    return model, meta


def _valuations(layer_dir: Path, record: LayerRecord, model: GatedResidualMLP, need_oca: bool, key: str,
                progress: bool, *, need_loss: bool = True) -> dict[str, np.ndarray]:
    """φ_PAS, φ_OCA (optional), psi and loss deltas (optional; NaN otherwise) for one layer, cached
    as safetensors."""
    from .. import valuations
    from ..synergy import SynergyMatrix

    out: dict[str, np.ndarray] = {}
    pas_path = layer_dir / "phi_pas.safetensors"
    if _fresh(pas_path, key):
        out["pas_exact"] = SynergyMatrix.load(pas_path).values
    else:
        sm = valuations.pas(record, method="exact", progress=progress)
        sm = _with_key(sm, key)
        sm.save(pas_path)
        out["pas_exact"] = np.asarray(sm.values)
    if need_oca:
        oca_path = layer_dir / "phi_oca.safetensors"
        if _fresh(oca_path, key):
            out["oca"] = SynergyMatrix.load(oca_path).values
        else:
            sm = valuations.oca(record, weights=model.reading_weights(record.layer))
            sm = _with_key(sm, key)
            sm.save(oca_path)
            out["oca"] = np.asarray(sm.values)
    players_path = layer_dir / "players.safetensors"
    arrays: dict[str, np.ndarray] = {}
    if players_path.is_file():
        try:
            arrays, meta = load_arrays(players_path)
            if meta.get("key") != key:
                arrays = {}
        except ArtifactError:
            arrays = {}
    if not arrays:
        psi = np.asarray(valuations.marginals(record), dtype=np.float64)
        digits = np.asarray(record.target_index, dtype=np.int64)
        deltas = (loss_deltas(model, record.a, digits, record.layer, np.asarray(record.a_base[0]), progress=progress)
                  if need_loss else np.full(psi.shape, np.nan))
        arrays = {"psi": psi, "loss_delta": deltas}
        save_arrays(players_path, arrays, metadata={"key": key, "header": json.dumps(provenance())})
    out.update(arrays)
    return out


def _fresh(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        _, meta = load_arrays(path)
    except ArtifactError:
        return False
    return key in meta.get("meta", "") or meta.get("key") == key


def _with_key(sm: Any, key: str) -> Any:
    return replace(sm, meta={**dict(sm.meta), "mnist_key": key})


def _partitions(layer_dir: Path, phis: dict[str, np.ndarray], profiles: np.ndarray, cfg: MnistStudyConfig,
                seed: int, methods: Sequence[str], key: str) -> dict[str, Partition]:
    """Hedonic partitions and matched baselines for one layer, cached as JSON."""
    from .. import baselines

    out: dict[str, Partition] = {}
    pdir = layer_dir / "partitions"

    def cached(name: str) -> Partition | None:
        p = pdir / f"{name}.json"
        if p.is_file():
            try:
                part = Partition.from_json(p)
            except ArtifactError:
                return None
            if part.meta.get("mnist_key") == key:
                return part
        return None

    for name in methods:
        if name not in HEDONIC_METHODS:
            continue
        part = cached(name)
        if part is None:
            algo, val = HEDONIC_METHODS[name]
            t0 = time.perf_counter()
            options = {"k": cfg.k, "emit": "smallest", "m": cfg.m, "omega": cfg.omega, "size_range": cfg.size_range,
                       "sampler": "uniform", "seed": seed, "max_sweeps": 200, "order": "random"}
            part = vocab.PARTITION_METHODS[algo].run(phis[val], **options)
            part = part.with_meta(mnist_key=key, mnist_method=name, label=name, valuation=val, method=algo,
                                  seconds=time.perf_counter() - t0, summary=part.summary().to_dict())
            part.to_json(pdir / f"{name}.json")
        out[name] = part
    wanted = [b for b in BASELINE_METHODS if b in methods]
    if wanted:
        parts = {b: cached(b) for b in wanted}
        if any(p is None for p in parts.values()):
            made = baselines.matched_baselines(out[REFERENCE], profiles, seed)
            for b in wanted:
                part = made[b].with_meta(mnist_key=key, mnist_method=b, label=b, matched_to=REFERENCE,
                                         summary=made[b].summary().to_dict())
                part.to_json(pdir / f"{b}.json")
                parts[b] = part
        out.update({b: p for b, p in parts.items() if p is not None})
    return out


def run_mnist_study(cfg: MnistStudyConfig, out_dir: str | Path, *, progress: bool = True,
                    data: MnistSplit | None = None) -> MnistStudyResult:
    """Run (or resume) the whole study and write every artifact under ``out_dir``.

    Parameters
    ----------
    cfg : MnistStudyConfig
    out_dir : path-like
    progress : bool
        tqdm bars.
    data : MnistSplit, optional
        Overrides the data source (tests pass a small slice).

    Returns
    -------
    MnistStudyResult
        Per-coalition table, long results, per-model accuracies, wall time. Build the tables
        and the report with :func:`hedonic_neurons.mnist.report.write_report`.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"config": cfg.to_dict(), **provenance()})
    if data is None:
        data = load_mnist(cfg.idx_dir, split_seed=cfg.split_seed)
    if cfg.n_train is not None or cfg.n_test is not None:
        data = data.head(cfg.n_train, cfg.n_test)
    x_te, y_te = data.x_test, data.y_test
    stroke_scale = template_scale(x_te)
    record_key, part_key = cfg._record_key(), cfg._partition_key()
    frames: list[pd.DataFrame] = []
    part_frames: list[pd.DataFrame] = []
    disc_idx, held_idx = heldout_split(y_te, fraction=cfg.heldout_fraction, seed=cfg.heldout_seed)
    model_rows: list[dict[str, Any]] = []
    jobs: list[tuple[int, str, int, list[str]]] = []
    hedonic = [m for m, (algo, _) in HEDONIC_METHODS.items() if cfg.exact_top_cover or algo != "top_cover"]
    main_methods = [*hedonic, *BASELINE_METHODS]
    for seed in cfg.seeds:
        for layer in cfg.layers:
            jobs.append((seed, "trained", layer, main_methods))
        if cfg.controls:
            for setting in ("random_init", "shuffled"):
                jobs.append((seed, setting, cfg.control_layer, [REFERENCE, "hierarchical"]))
    models: dict[tuple[int, str], tuple[GatedResidualMLP, dict[str, Any]]] = {}
    timing_rows: list[tuple[int, str, int, str, float]] = []

    @contextmanager
    def clock(stage: str, seed: int, setting: str, layer: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        timing_rows.append((seed, setting, layer, stage, time.perf_counter() - start))

    # Train every network first: the exact-PAS kernels (numba, OpenMP) that follow can leave
    # spinning worker threads that slow torch training down several-fold on a small CPU.
    for seed, setting, _, _ in jobs:
        if (seed, setting) in models:
            continue
        with clock("train", seed, setting, 0):
            models[(seed, setting)] = _load_or_train(out / f"seed{seed}" / setting / "model.safetensors", cfg,
                                                     data, seed, setting, progress)
        meta = models[(seed, setting)][1]
        model_rows.append({"seed": seed, "setting": setting, "test_accuracy": meta["test_accuracy"],
                           "final_train_loss": (meta["losses"] or [float("nan")])[-1]})
    bar = tqdm(jobs, desc="mnist study", disable=not progress)
    for seed, setting, layer, methods in bar:
        bar.set_postfix(seed=seed, setting=setting, layer=f"h{layer}")
        sdir = out / f"seed{seed}" / setting
        model, meta = models[(seed, setting)]
        layer_dir = sdir / f"h{layer}"
        table_path, parts_path, key_path = (layer_dir / "coalitions.csv", layer_dir / "partitions.csv",
                                            layer_dir / "coalitions.key")
        metrics_key = cfg._metrics_key(methods)
        if table_path.is_file() and parts_path.is_file() and key_path.is_file() \
                and key_path.read_text().strip() == metrics_key:
            frames.append(pd.read_csv(table_path))
            part_frames.append(pd.read_csv(parts_path))
            continue
        with clock("record", seed, setting, layer):
            base = baseline_vector(model, layer, cfg.baseline, data.x_train)  # type: ignore[arg-type]
            h = layer_activations(model, x_te)[layer - 1]
            halves: dict[str, tuple[np.ndarray, LayerRecord]] = {}
            for half, rows_idx in (("discovery", disc_idx), ("heldout", held_idx)):
                rec = layer_record(model, x_te[rows_idx], y_te[rows_idx], layer, baseline=base, h=h[rows_idx],
                                   meta={"seed": seed, "setting": setting, "key": record_key, "half": half})
                rec.save(layer_dir / half / "record.safetensors")
                halves[half] = (rows_idx, rec)
        need_oca = any(HEDONIC_METHODS.get(m, ("", ""))[1] == "oca" for m in methods)
        with clock("valuations", seed, setting, layer):
            vals = _valuations(layer_dir / "discovery", halves["discovery"][1], model, need_oca,
                               record_key + "/discovery", progress, need_loss=False)  # Delta_i: held-out only
            held = _valuations(layer_dir / "heldout", halves["heldout"][1], model, False, record_key + "/heldout",
                               progress)
        with clock("partitions", seed, setting, layer):
            parts = _partitions(layer_dir, vals, h[disc_idx].T.astype(np.float64), cfg, seed, methods, part_key)
        rows, prow = [], []
        x_held, y_held, h_held = x_te[held_idx], y_te[held_idx], h[held_idx]
        acc_held = accuracy(model, x_held, y_held)
        with clock("metrics", seed, setting, layer):
            for name in methods:
                df = coalition_metrics(
                    model, h_held, x_held, y_held, layer, parts[name], phi_pas=held["pas_exact"], psi=held["psi"],
                    loss_delta=held["loss_delta"], baseline=base, acc_base=acc_held, top_k=cfg.top_k,
                    stroke_scale=stroke_scale, phi_insample=vals["pas_exact"], psi_insample=vals["psi"],
                )
                df = heldout_pair_tests(df, held["pas_exact"], parts[name], n_draws=cfg.null_draws, alpha=cfg.alpha,
                                        seed=seed)
                df.insert(0, "method", name)
                rows.append(df)
                prow.append({"method": name, **partition_evidence(df, held["pas_exact"], parts[name],
                                                                  psi_insample=vals["pas_exact"],
                                                                  n_draws=cfg.null_draws, seed=seed)})
        table = pd.concat(rows, ignore_index=True)
        ptable = pd.DataFrame(prow)
        for frame in (table, ptable):
            frame.insert(0, "layer", layer)
            frame.insert(0, "setting", setting)
            frame.insert(0, "seed", seed)
        with atomic_write(table_path) as fh:
            table.to_csv(fh, index=False)
        with atomic_write(parts_path) as fh:
            ptable.to_csv(fh, index=False)
        with atomic_write(key_path) as fh:
            fh.write(metrics_key + "\n")  # a new method list or null budget recomputes the tables
        frames.append(table)
        part_frames.append(ptable)
    coalitions = pd.concat(frames, ignore_index=True)
    partitions = pd.concat(part_frames, ignore_index=True)
    long = coalitions.melt(
        id_vars=["seed", "setting", "layer", "method", "coalition"],
        value_vars=[c for c in METRIC_COLUMNS if c in coalitions.columns], var_name="metric", value_name="value",
    )
    models_df = pd.DataFrame(model_rows)
    timings = pd.DataFrame(timing_rows, columns=["seed", "setting", "layer", "stage", "seconds"])
    for frame, name in ((coalitions, "coalitions.csv"), (partitions, "partitions.csv"), (long, "results_long.csv"),
                        (models_df, "models.csv"), (timings, "timings.csv")):
        with atomic_write(out / name) as fh:
            frame.to_csv(fh, index=False)
    return MnistStudyResult(out, coalitions, long, models_df, time.perf_counter() - t0, partitions)


def load_study(out_dir: str | Path) -> tuple[MnistStudyConfig, pd.DataFrame, pd.DataFrame]:
    """Read back ``(config, coalitions, models)`` of a finished study."""
    out = Path(out_dir)
    cfg = MnistStudyConfig.from_dict(read_json(out / "config.json")["config"])
    for name in ("coalitions.csv", "models.csv"):
        if not (out / name).is_file():
            raise ArtifactError(f"{out / name}: not found; run the study first.")
    return cfg, pd.read_csv(out / "coalitions.csv"), pd.read_csv(out / "models.csv")


def load_partitions(out_dir: str | Path) -> pd.DataFrame:
    """Read back the per-partition table (``partitions.csv``) of a finished study."""
    path = Path(out_dir) / "partitions.csv"
    if not path.is_file():
        raise ArtifactError(f"{path}: not found; run the study first (a study from before the held-out protocol "
                            "has none: re-run it).")
    return pd.read_csv(path)
