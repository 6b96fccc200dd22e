"""``run_study``: a whole study, stage by stage through the cache, into one frozen results value.

Data flows one way (paper §3–§4, docs/method.md §1–§8)::

    data → model (fine-tune or load) → capture (in-distribution and OOD records)
         → valuations φ per layer → hedonic partitions per (layer, valuation, method, seed)
         → ε̂ of every hedonic partition → matched baselines
         → evaluation per partition (synergy, alignment, predictivity; OOD drop through the model)
         → tracking per (method, seed) across layers → StudyResults → report

Every unit is keyed by a hash of the config subset it reads and the keys of the units it
consumes (:mod:`.plan`), so a re-run after a crash or a config change recomputes only what
changed. Independent units run through :func:`.executor.run_units` on the configured
executor (``executor.backend``: local joblib, Dask or Ray; docs/scaling.md); the study holds
the run directory's lock (:class:`.lock.RunLock`) and every unit is computed under its
lease, so two studies on one directory never compute a unit twice.
The report (:mod:`.report`) renders the returned :class:`StudyResults` and touches neither
the cache nor the stages. Torch is only imported by the stages that need the model.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .. import vocab
from ..errors import ConfigError
from ..evaluation import EvaluationOptions
from ..io import read_json, write_json
from ..partition import Partition
from ..provenance import provenance
from .cache import move_aside_stale
from .config import ExecutorConfig, StudyConfig
from .executor import Executor, Job, open_executor, require_backend, run_units
from .lock import RunLock
from .plan import K_SWEEP, NULL_SEED, PartitionKey, StudyPlan, build_plan, model_name
from .report import write_frame, write_report
from .stages.baselines import work_baselines
from .stages.capture import encode, stage_capture
from .stages.controls import stage_attribution, stage_controls, stage_verify
from .stages.data import load_study_tokenizer, stage_data
from .stages.diagnostics import work_closure, work_k_sweep
from .stages.evaluate import HELDOUT_KEYS, stage_ood, work_evaluation_heldout, work_ood_estimated
from .stages.explorer import export_explorer
from .stages.finetune import load_study_model, stage_model
from .stages.partition import work_partition
from .stages.split import work_psi, work_split
from .stages.stability import work_stability
from .stages.track import work_tracking
from .stages.valuate import work_valuation

__all__ = ["RESULT_COLUMNS", "RunResult", "StudyResults", "collect", "run_finetune", "run_study"]

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


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[hedonic] {msg}", flush=True)


def eval_options(cfg: StudyConfig) -> EvaluationOptions:
    """The evaluation options of a study config (the same defaults as ``hedonic evaluate``)."""
    e = cfg.evaluation
    return EvaluationOptions(min_size=e.min_size, max_coalitions=e.ood_max_coalitions, ridge_alpha=e.ridge_alpha)


class _ModelBox:
    """The study's model and tokenizer, loaded once and only when a stage needs them."""

    def __init__(self, plan: StudyPlan) -> None:
        self.plan = plan
        self._pair: tuple[Any, Any] | None = None

    def get(self) -> tuple[Any, Any]:
        if self._pair is None:
            cfg = self.plan.cfg
            adapter = str(self.plan.model.file("adapter")) if cfg.finetune.enabled else str(cfg.model.adapter)
            self._pair = (load_study_model(cfg, adapter), load_study_tokenizer(cfg))
        return self._pair


def _worker_model(cfg: StudyConfig, adapter: str) -> tuple[Any, Any]:
    """The study's model and tokenizer in a worker process, loaded once per process."""
    key = (cfg.hash("model", "lora"), adapter)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()
        _WORKER_MODELS[key] = (load_study_model(cfg, adapter), load_study_tokenizer(cfg))
    return _WORKER_MODELS[key]


_WORKER_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}


def _work_model(cfg: StudyConfig, data_dir: str, work_dir: str, out: Path) -> None:
    """The model stage as a cluster unit (fine-tuning on a GPU worker)."""
    stage_model(cfg, Path(data_dir), Path(work_dir), out)


def _work_capture(cfg: StudyConfig, adapter: str, pairs: str, layers: list[int], out: Path) -> None:
    """One capture unit on a worker (the worker loads the model once)."""
    model, tok = _worker_model(cfg, adapter)
    stage_capture(model, tok, Path(pairs), layers, out, batch_size=cfg.model.batch_size,
                  max_length=cfg.model.max_length)


def _work_ood(cfg: StudyConfig, adapter: str, layer: int, part: str, pairs: str, qrels: str, out: Path) -> None:
    """One OOD-drop unit on a worker."""
    model, tok = _worker_model(cfg, adapter)
    batches = encode(tok, pd.read_parquet(pairs), cfg.model.batch_size, cfg.model.max_length)
    stage_ood(model, batches, layer, Path(part), Path(pairs), Path(qrels), cfg.task, eval_options(cfg), out)


def _ood_batches(cfg: StudyConfig, tok: Any, pairs: str) -> list[Any]:
    return encode(tok, pd.read_parquet(pairs), cfg.model.batch_size, cfg.model.max_length)


def _work_attribution(cfg: StudyConfig, adapter: str, layer: int, pairs: str, qrels: str, out: Path) -> None:
    """Per-neuron attributions of one layer on the OOD pairs and its all-LoRA drop (docs/method.md §8.5)."""
    model, tok = _worker_model(cfg, adapter)
    stage_attribution(model, _ood_batches(cfg, tok, pairs), layer, Path(pairs), Path(qrels), cfg.task, out)


def _work_verify(cfg: StudyConfig, adapter: str, layer: int, attribution: str, parts: list[str], pairs: str,
                 qrels: str, out: Path) -> None:
    """Estimated vs exact OOD drop on a size-stratified sample of one layer's coalitions."""
    model, tok = _worker_model(cfg, adapter)
    e = cfg.evaluation
    stage_verify(model, _ood_batches(cfg, tok, pairs), layer, Path(attribution), [Path(p) for p in parts],
                 Path(pairs), Path(qrels), cfg.task, e.ood_verify, e.heldout_seed, e.min_size, out)


def _work_controls(cfg: StudyConfig, adapter: str, pairs: str, qrels: str, out: Path) -> None:
    """OOD metric of the fine-tuned model, with every LoRA neuron reverted, and before fine-tuning."""
    model, tok = _worker_model(cfg, adapter)
    before = (lambda: load_study_model(cfg, None, fresh_lora=True)) if cfg.finetune.enabled else None
    stage_controls(model, _ood_batches(cfg, tok, pairs), Path(pairs), Path(qrels), cfg.task, out, before=before)


def run_study(cfg: StudyConfig, *, run_dir: str | os.PathLike[str] | None = None, progress: bool = True,
              report: bool = True, executor: ExecutorConfig | None = None, wait: float = 0.0) -> StudyResults:
    """Run (or resume) a whole study; return what it produced.

    Parameters
    ----------
    cfg : StudyConfig
    run_dir : path-like, optional
        Overrides ``cfg.output_dir``.
    progress : bool
        Print stage headers and tqdm bars.
    report : bool
        Write the tables, figures and ``report.md`` / ``report.html`` (:func:`.report.write_report`).
    executor : ExecutorConfig, optional
        Overrides ``cfg.executor`` (local joblib, Dask or Ray; docs/scaling.md).
    wait : float
        Seconds to wait for the run directory's lock when another study holds it (default:
        refuse at once).

    Raises
    ------
    ConfigError
        The executor's extra is not installed (before any work).
    hedonic_neurons.pipeline.lock.LockHeld
        ``run directory D is in use by pid P on host H since T`` (a stale lock of a killed
        study is taken over).
    hedonic_neurons.pipeline.executor.UnitFailedError
        A unit failed in its worker (unit key, worker, traceback file); a re-run resumes.
    """
    x = executor or cfg.executor
    require_backend(x.backend)
    run = Path(run_dir or cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run, timeout=x.lease_timeout_s).acquire(wait=wait)
    ex = open_executor(x.backend, n_workers=x.n_workers or cfg.n_jobs, address=x.address,
                       gpu_units=x.resources.gpu_units)
    try:
        return _run_locked(cfg, run, progress=progress, report=report, ex=ex, lease_timeout=x.lease_timeout_s)
    finally:
        ex.close()
        lock.release()


def _run_locked(cfg: StudyConfig, run: Path, *, progress: bool, report: bool, ex: Executor,
                lease_timeout: float) -> StudyResults:
    """:func:`run_study` once the run directory is locked."""
    cfg.to_yaml(run / "config.yaml")
    plan = build_plan(cfg, run)
    cache = plan.cache
    cache.lease_timeout = lease_timeout
    cache.save_fingerprints()
    remote = ex.name != "local"
    adapter = str(plan.model.file("adapter")) if cfg.finetune.enabled else str(cfg.model.adapter)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    d = cfg.discovery
    layers = list(d.layers)
    box = _ModelBox(plan)

    def timed(stage: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        fn()
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t0

    def parallel(stage: str, jobs: list[Job], model: bool = False) -> None:
        timed(stage, lambda: run_units(jobs, cache, executor=ex, desc=stage, progress=progress, model=model))

    _say(progress, f"run directory {run}")
    _say(progress, "stage 1/9 data")
    timed("data", lambda: cache.run(plan.data, lambda out: stage_data(cfg, out)))
    _say(progress, "stage 2/9 model (fine-tune or load the adapter)")
    work_dir = cache.root / "finetune-work" / plan.model.key
    if remote:
        parallel("model", [(plan.model, _work_model, (cfg, str(plan.data.path), str(work_dir)))], model=True)
    else:
        timed("model", lambda: cache.run(plan.model, lambda out: stage_model(
            cfg, plan.data.path, work_dir, out, progress=progress)))

    _say(progress, "stage 3/9 capture (in-distribution and OOD records)")
    if remote:
        parallel("capture", [(u, _work_capture, (cfg, adapter, str(plan.data.file(f"{split}.parquet")), layers))
                             for u, split in ((plan.capture, "capture"), (plan.capture_ood, "ood"))], model=True)
    for unit, split in () if remote else ((plan.capture, "capture"), (plan.capture_ood, "ood")):
        def cap(out: Path, split: str = split) -> None:
            model, tok = box.get()
            stage_capture(model, tok, plan.data.file(f"{split}.parquet"), layers, out,
                          batch_size=cfg.model.batch_size, max_length=cfg.model.max_length, progress=progress)
        timed("capture", lambda unit=unit, cap=cap: cache.run(unit, cap))  # type: ignore[misc]

    def with_model(stage: str, jobs: list[Job]) -> None:
        """Units that need the model: on the workers of a cluster, else here with the one loaded model."""
        if remote:
            parallel(stage, jobs, model=True)
            return
        for u, fn, args in jobs:
            def one(out: Path, fn: Callable[..., Any] = fn, args: tuple[Any, ...] = args) -> None:
                _WORKER_MODELS.clear()
                _WORKER_MODELS[(cfg.hash("model", "lora"), adapter)] = box.get()
                fn(*args, out)
            timed(stage, lambda u=u, one=one: cache.run(u, one))  # type: ignore[misc]

    _say(progress, "held-out split of the capture set by query; ψ on each part (docs/method.md §8.5)")
    assert plan.split is not None
    timed("split", lambda: cache.run(plan.split, lambda out: work_split(  # type: ignore[arg-type]
        str(plan.data.file("capture.parquet")), [str(plan.record_file("capture", layer)) for layer in layers],
        layers, cfg.evaluation.heldout_fraction, cfg.evaluation.heldout_seed, out)))
    parallel("psi", [(u, work_psi, (str(plan.record_file(part, layer)),)) for (layer, part), u in plan.psi.items()])

    _say(progress, "stage 4/9 valuations (discovery part of the capture set)")
    parallel("valuations", [(u, work_valuation, (str(plan.record_file("discovery", layer)), v, NULL_SEED))
                            for (layer, v), u in plan.valuation.items()])

    _say(progress, "stage 5/9 hedonic partitions")
    jobs: list[Job] = []
    common: dict[str, Any] = {"k": d.k, "emit": d.emit, "m": d.pac.m, "omega": d.pac.omega,
                              "size_range": list(d.pac.size_range), "sampler": d.pac.sampler,
                              "max_sweeps": d.ashg.max_sweeps, "order": d.ashg.order}
    for key, u in plan.hedonic.items():
        v, m = vocab.parse_method_label(key.method)
        seeded = vocab.PARTITION_METHODS[m].seeded
        meta = {"label": key.method, "layer": key.layer, "valuation": v, "method": m,
                "seed": key.seed if seeded else None, "model": cfg.model.base, "task": cfg.task,
                "config_hash": cfg.hash()}
        options = {**common, "seed": key.seed}
        jobs.append((u, work_partition, (str(plan.phi_file(key.layer, v)), m, options, meta)))
    parallel("partitions", jobs)

    _say(progress, "closure diagnostics: each hedonic algorithm on a null φ, and a k-sweep (docs/method.md §5.5)")
    diag: list[Job] = [(u, work_closure, (str(plan.phi_file(key.layer, vocab.parse_method_label(key.method)[0])),
                                          str(plan.partition_file(key)), vocab.parse_method_label(key.method)[1],
                                          common, key.seed))
                       for key, u in plan.closure.items()]
    diag += [(u, work_k_sweep, (str(plan.phi_file(layer, v)),
                                None if plan.psi_source(layer)[1] is None else str(plan.psi_source(layer)[1]),
                                plan.psi_source(layer)[2], list(K_SWEEP)))
             for (layer, v), u in plan.k_sweep.items()]
    parallel("diagnostics", diag)

    if "stability" in cfg.evaluation.metrics:
        _say(progress, "stage 6/9 stability: measured blocking rate of every hedonic partition")
        parallel("stability", [
            (u, work_stability, (str(plan.phi_file(key.layer, vocab.parse_method_label(key.method)[0])),
                                 str(plan.partition_file(key)), d.k, list(d.pac.size_range),
                                 cfg.evaluation.stability_samples, key.seed, d.pac.epsilon, d.pac.delta,
                                 {"sampler": d.pac.sampler, "m": d.pac.m, "omega": d.pac.omega}
                                 if vocab.parse_method_label(key.method)[1] == "pac_top_cover"
                                 and d.pac.sampler in ("top", "weighted") else None))
            for key, u in plan.stability.items()])

    _say(progress, "stage 7/9 matched baselines")
    parallel("baselines", [
        (u, work_baselines, (str(plan.partition_file(ref)), str(plan.record_file("discovery", ref.layer)),
                             list(d.baselines), ref.seed,
                             {"layer": ref.layer, "seed": ref.seed, "model": cfg.model.base, "task": cfg.task}))
        for ref, u in plan.baselines.items()])

    _say(progress, "stage 8/9 evaluation (synergy, alignment, predictivity, OOD drop)")
    opts = eval_options(cfg)
    intrinsic = [x for x in cfg.evaluation.metrics if x in ("synergy", "alignment", "predictivity")]
    e = cfg.evaluation

    def heldout(layer: int) -> dict[str, str]:
        files = (plan.record_file("discovery", layer), plan.record_file("heldout", layer),
                 plan.psi[(layer, "discovery")].file("psi.safetensors"), plan.psi[(layer, "heldout")].file("psi.safetensors"))
        return dict(zip(HELDOUT_KEYS, map(str, files)))

    null_opts = {"min_size": opts.min_size, "null_draws": e.null_draws, "alpha": e.alpha}
    parallel("evaluation", [
        (u, work_evaluation_heldout, (str(plan.partition_file(key)), str(plan.record_file("capture", key.layer)),
                                      str(plan.record_file("ood", key.layer)),
                                      str(plan.data.file("ood_features.parquet")), intrinsic,
                                      {**null_opts, "ridge_alpha": opts.ridge_alpha,
                                       "ood_null_draws": e.ood_null_draws},
                                      (str(plan.data.file("capture.parquet")), str(plan.data.file("ood.parquet"))),
                                      heldout(key.layer)))
        for key, u in plan.evaluation.items()])
    if plan.ood:  # every coalition through one attribution pass per layer (docs/method.md §8.4–§8.5)
        pairs_f, qrels_f = str(plan.data.file("ood.parquet")), str(plan.data.file("ood_qrels.parquet"))
        with_model("attribution", [(u, _work_attribution, (cfg, adapter, layer, pairs_f, qrels_f))
                                   for layer, u in plan.attribution.items()])
        parallel("ood", [
            (u, work_ood_estimated, (str(plan.partition_file(key)),
                                     str(plan.attribution[key.layer].file("attributions.safetensors")),
                                     str(plan.attribution[key.layer].file("all_lora.json")), pairs_f, qrels_f,
                                     cfg.task, {**null_opts, "ood_null_draws": e.ood_null_draws}))
            for key, u in {u.key: (k, u) for k, u in plan.ood.items()}.values()])
        with_model("verify", [
            (u, _work_verify, (cfg, adapter, layer, str(plan.attribution[layer].file("attributions.safetensors")),
                               sorted({str(plan.partition_file(k)) for k in plan.partitions if k.layer == layer}),
                               pairs_f, qrels_f))
            for layer, u in plan.verify.items()])
        if plan.controls is not None:
            with_model("controls", [(plan.controls, _work_controls, (cfg, adapter, pairs_f, qrels_f))])

    if plan.tracking:
        _say(progress, "stage 9/9 tracking across layers")
        parallel("tracking", [
            (u, work_tracking, ([str(plan.partition_file(plan.key_of(layer, label, seed))) for layer in layers],
                                [str(plan.record_file("capture", layer)) for layer in layers], layers,
                                cfg.tracking.alpha_hi, cfg.tracking.alpha_lo, plan.wants_sankey(label, seed), label))
            for (label, seed), u in plan.tracking.items()])

    timings["total"] = time.perf_counter() - t_all
    results = collect(plan, timings)
    write_json(run / "provenance.json", provenance(
        config_hash=cfg.hash(), seeds=list(d.seeds), timings_s={k: round(v, 3) for k, v in timings.items()},
        executed=cache.executed, reused=cache.reused,
        unit_seconds={f"{u.stage}:{u.name}": cache.seconds(u) for u in plan.units() if u.done}))
    if report:
        t0 = time.perf_counter()
        path = write_report(results)
        timings["report"] = time.perf_counter() - t0
        results = replace(results, report=path, timings=dict(timings))
    cache.save_fingerprints()
    return results


def run_finetune(cfg: StudyConfig, *, run_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> Path:
    """Run only the data and model stages (``hedonic finetune``); return the adapter directory.

    Uses the same cache as :func:`run_study`, so a later ``hedonic run`` with the same
    config reuses the adapter.
    """
    if not cfg.finetune.enabled:
        raise ConfigError("finetune.enabled: false in this config; nothing to fine-tune.")
    run = Path(run_dir or cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    with RunLock(run, timeout=cfg.executor.lease_timeout_s):
        plan = build_plan(cfg, run)
        plan.cache.lease_timeout = cfg.executor.lease_timeout_s
        _say(progress, "data")
        plan.cache.run(plan.data, lambda out: stage_data(cfg, out))
        _say(progress, "fine-tuning")
        plan.cache.run(plan.model, lambda out: stage_model(
            cfg, plan.data.path, plan.cache.root / "finetune-work" / plan.model.key, out, progress=progress))
        plan.cache.save_fingerprints()
    return plan.model.file("adapter")


# ---------------------------------------------------------------------- collection
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
