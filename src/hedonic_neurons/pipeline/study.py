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
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from .. import vocab
from ..errors import ConfigError
from ..evaluation import EvaluationOptions
from ..io import write_json
from ..provenance import provenance
from ._collect import collect
from ._study_results import RESULT_COLUMNS, RunResult, StudyResults
from ._study_results import TRANSITION_COLUMNS as TRANSITION_COLUMNS
from .config import ExecutorConfig, StudyConfig
from .executor import Executor, Job, open_executor, require_backend, run_units
from .lock import RunLock
from .plan import K_SWEEP, NULL_SEED, StudyPlan, build_plan
from .report import write_report
from .stages.baselines import work_baselines
from .stages.capture import encode, stage_capture
from .stages.controls import stage_attribution, stage_controls, stage_verify
from .stages.data import load_study_tokenizer, stage_data
from .stages.diagnostics import work_closure, work_k_sweep
from .stages.evaluate import HELDOUT_KEYS, stage_ood, work_evaluation_heldout, work_ood_estimated
from .stages.finetune import load_study_model, stage_model
from .stages.partition import work_partition
from .stages.split import work_psi, work_split
from .stages.stability import work_stability
from .stages.track import work_tracking
from .stages.valuate import work_valuation

__all__ = ["RESULT_COLUMNS", "RunResult", "StudyResults", "collect", "run_finetune", "run_study"]


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


