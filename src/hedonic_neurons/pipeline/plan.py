"""The plan of a study: every unit of work and its cache key, computed from the config alone.

One key type names every partition of a study, hedonic or baseline
(:class:`PartitionKey`); the plan maps it to the cached unit and file that hold the
partition (:meth:`StudyPlan.partition_file`), to its stability, evaluation and OOD units.
Nothing here runs a stage or touches torch; :func:`build_plan` writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import vocab
from .cache import StageCache, Unit
from .config import StudyConfig, to_dict

__all__ = ["K_SWEEP", "NULL_SEED", "PartitionKey", "PartitionRef", "StudyPlan", "build_plan", "describe_plan", "model_name"]

#: Seed of the null valuation (docs/method.md §3): fixed, so it is the same φ for every seed.
NULL_SEED = 12345

#: Values of k of the closure diagnostics' k-sweep (exact Top Covering; docs/method.md §5.5).
K_SWEEP: tuple[int, ...] = (1, 2, 3, 5, 8)


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One partition of a study.

    Attributes
    ----------
    layer : int
    method : str
        A hedonic method label (``"hedonic_pas"``, :func:`hedonic_neurons.vocab.method_label`)
        or a baseline name (``"kmeans"``).
    seed : int
    matched_to : str or None
        For a baseline matched to a hedonic partition other than the study's first one
        (``discovery.match_baselines: all``), that partition's label; else ``None``.
    """

    layer: int
    method: str
    seed: int
    matched_to: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.method in vocab.BASELINES

    @property
    def label(self) -> str:
        """The ``method`` column of the results: ``"hedonic_pas"``, ``"kmeans"``, ``"kmeans~hedonic_oca"``."""
        return vocab.baseline_label(self.method, self.matched_to) if self.is_baseline else self.method


@dataclass(frozen=True)
class PartitionRef:
    """Where a partition lives: a file of a cached unit, and a key that identifies it."""

    unit: Unit
    filename: str

    @property
    def path(self) -> Path:
        return self.unit.file(self.filename)

    @property
    def key(self) -> str:
        return self.unit.key if self.filename == "partition.json" else f"{self.unit.key}/{self.filename[:-5]}"


def model_name(cfg: StudyConfig) -> str:
    """Short model name for tables (:func:`hedonic_neurons.vocab.model_label`)."""
    return vocab.model_label(cfg.model.base)


@dataclass
class StudyPlan:
    """Every unit of a study with its cache key (computed from the config alone).

    ``valuation`` is keyed by ``(layer, valuation)``; ``partitions``, ``stability``,
    ``evaluation`` and ``ood`` by :class:`PartitionKey`; ``baselines`` by the key of the
    hedonic partition they are matched to; ``tracking`` by ``(label, seed)``; the closure
    diagnostics (docs/method.md §5.5) ``closure`` by the hedonic :class:`PartitionKey` and
    ``k_sweep`` by ``(layer, valuation)``. Partitions of a method that is not top-responsive
    (``nash_stable``) have no ``stability`` unit: no blocking rate applies to them.
    """

    cfg: StudyConfig
    cache: StageCache
    data: Unit
    model: Unit
    capture: Unit
    capture_ood: Unit
    valuation: dict[tuple[int, str], Unit] = field(default_factory=dict)
    hedonic: dict[PartitionKey, Unit] = field(default_factory=dict)
    baselines: dict[PartitionKey, Unit] = field(default_factory=dict)
    partitions: dict[PartitionKey, PartitionRef] = field(default_factory=dict)
    stability: dict[PartitionKey, Unit] = field(default_factory=dict)
    evaluation: dict[PartitionKey, Unit] = field(default_factory=dict)
    ood: dict[PartitionKey, Unit] = field(default_factory=dict)
    tracking: dict[tuple[str, int], Unit] = field(default_factory=dict)
    closure: dict[PartitionKey, Unit] = field(default_factory=dict)
    k_sweep: dict[tuple[int, str], Unit] = field(default_factory=dict)
    # the evidence protocol (docs/method.md §8.5): held-out split, ψ per part, per-layer
    # attributions and their verification, control models
    split: Unit | None = None
    psi: dict[tuple[int, str], Unit] = field(default_factory=dict)
    attribution: dict[int, Unit] = field(default_factory=dict)
    verify: dict[int, Unit] = field(default_factory=dict)
    controls: Unit | None = None

    @property
    def run_dir(self) -> Path:
        return self.cache.root.parent

    def units(self) -> list[Unit]:
        """Every distinct unit, stage by stage."""
        out = [self.data, self.model, self.capture, self.capture_ood]
        out += [u for u in (self.split, self.controls) if u is not None]
        seen = {u.key for u in out}
        for d in (self.valuation, self.hedonic, self.stability, self.baselines, self.evaluation, self.ood,
                  self.tracking, self.closure, self.k_sweep, self.psi, self.attribution, self.verify):
            for u in d.values():
                if u.key not in seen:
                    seen.add(u.key)
                    out.append(u)
        return out

    def keys(self) -> list[PartitionKey]:
        """Every partition key (hedonic first, then baselines)."""
        return list(self.partitions)

    def partition_file(self, key: PartitionKey) -> Path:
        return self.partitions[key].path

    def record_file(self, split: str, layer: int) -> Path:
        if split in ("discovery", "heldout"):  # the parts of the capture set (docs/method.md §8.5)
            assert self.split is not None
            return self.split.file(f"{split}/layer{layer}.safetensors")
        """A layer's capture record, ``split`` ``"capture"`` (in distribution) or ``"ood"``."""
        return (self.capture if split == "capture" else self.capture_ood).file(f"layer{layer}.safetensors")

    def phi_file(self, layer: int, valuation: str) -> Path:
        return self.valuation[(layer, valuation)].file("phi.safetensors")

    def psi_source(self, layer: int) -> tuple[Unit | None, Path | None, str]:
        """``(unit, file, kind)`` of the ψ behind the k-sweep's pooled Pair at ``layer`` (docs/method.md §5.5, §8.5).

        ``kind`` is ``"held-out"`` for ψ on the held-out part of the capture set, else
        ``"in-sample"`` for the ``pas_exact`` φ (exact PAS on the layer-local readout is
        ψ(i, j), eq. 7, on the inputs the partitions were found on), else ``"none"``.
        """
        if (layer, "heldout") in self.psi:
            u = self.psi[(layer, "heldout")]
            return u, u.file("psi.safetensors"), "held-out"
        if (layer, "pas_exact") in self.valuation:
            return self.valuation[(layer, "pas_exact")], self.phi_file(layer, "pas_exact"), "in-sample"
        return None, None, "none"

    def labels(self) -> list[str]:
        """Every method label of the tables, hedonic first."""
        return list(dict.fromkeys(k.label for k in self.partitions))

    def reference_label(self) -> str:
        """The hedonic partition the baselines are matched to with ``match_baselines: first``."""
        d = self.cfg.discovery
        return vocab.method_label(d.valuations[0], d.methods[0])

    def key_of(self, layer: int, label: str, seed: int) -> PartitionKey:
        """The key of the partition labelled ``label`` (as in the results) at ``layer`` and ``seed``."""
        for k in self.partitions:
            if k.layer == layer and k.seed == seed and k.label == label:
                return k
        raise KeyError((layer, label, seed))

    def wants_sankey(self, label: str, seed: int) -> bool:
        """Sankey diagrams (paper Figure 2) for the first method's hedonic partitions, first seed."""
        d = self.cfg.discovery
        firsts = {vocab.method_label(v, d.methods[0]) for v in d.valuations}
        return self.cfg.tracking.sankey and label in firsts and seed == d.seeds[0]


def build_plan(cfg: StudyConfig, run_dir: str | os.PathLike[str] | None = None) -> StudyPlan:
    """Compute every unit and its key from the config (nothing runs, nothing is written)."""
    run = Path(run_dir or cfg.output_dir)
    cache = StageCache(run / "cache")
    c = to_dict(cfg)
    if cfg.finetune.head_lr is None:  # keep the keys of runs made before finetune.head_lr existed
        c["finetune"] = {k: v for k, v in c["finetune"].items() if k != "head_lr"}
    data_params: dict[str, Any] = {"task": cfg.task, "data": c["data"], "tokenizer": c["model"]["base"],
                                   "max_length": cfg.model.max_length}
    if cfg.data.ood_qrels is None:  # keep the keys of runs made before data.ood_qrels existed
        data_params["data"] = {k: v for k, v in c["data"].items() if k != "ood_qrels"}
    # files and model directories enter the keys by content (docs/scaling.md), not by path alone
    contents = cache.contents([cfg.data.train, cfg.data.val, cfg.data.ood, cfg.data.ood_qrels, cfg.model.base])
    if contents:
        data_params["contents"] = contents
    data = cache.unit("data", "pairs", data_params)
    model_params: dict[str, Any] = {"model": {k: c["model"][k] for k in ("base", "adapter", "dtype", "max_length")},
                                    "data": data.key}
    if cfg.finetune.enabled:
        model_params.update(lora=c["lora"], finetune=c["finetune"], task=cfg.task)
    contents = cache.contents([cfg.model.base, cfg.model.adapter])
    if contents:
        model_params["contents"] = contents
    model = cache.unit("model", "finetune" if cfg.finetune.enabled else "adapter", model_params)
    d = cfg.discovery
    layers = list(d.layers)
    capture = cache.unit("capture", "in-distribution", {"model": model.key, "data": data.key, "layers": layers,
                                                         "split": "capture"})
    capture_ood = cache.unit("capture", "ood", {"model": model.key, "data": data.key, "layers": layers,
                                                 "split": "ood"})
    plan = StudyPlan(cfg, cache, data, model, capture, capture_ood)
    ev_c = c["evaluation"]
    # φ, the partitions and the baselines see only the discovery part of the capture set (§8.5)
    plan.split = cache.unit("split", "capture", {"capture": capture.key, "data": data.key, "layers": layers,
                                                 "fraction": ev_c["heldout_fraction"], "seed": ev_c["heldout_seed"]})
    for layer in layers:
        for part_name in ("discovery", "heldout"):
            plan.psi[(layer, part_name)] = cache.unit("psi", f"layer{layer}/{part_name}",
                                                      {"split": plan.split.key, "layer": layer, "part": part_name})
    for layer in layers:
        for v in d.valuations:
            vp: dict[str, Any] = {"capture": plan.split.key, "layer": layer, "valuation": v}
            if v == "null":
                vp["seed"] = NULL_SEED
            plan.valuation[(layer, v)] = cache.unit("valuation", f"layer{layer}/{v}", vp)
    pac = {k: v for k, v in c["discovery"]["pac"].items() if k not in ("epsilon", "delta")}
    for layer in layers:
        for v in d.valuations:
            for m in d.methods:
                spec = vocab.PARTITION_METHODS[m]
                label = vocab.method_label(v, m)
                for seed in d.seeds:
                    pp: dict[str, Any] = {"phi": plan.valuation[(layer, v)].key, "method": m, "k": d.k, "emit": d.emit}
                    if not spec.top_responsive:  # k, emit and pac do not apply (docs/method.md §5.6)
                        pp = {"phi": pp["phi"], "method": m, "ashg": c["discovery"]["ashg"], "seed": seed}
                    elif spec.seeded:
                        pp.update(pac=pac, seed=seed)
                    name = f"layer{layer}/{label}" + (f"/seed{seed}" if spec.seeded else "")
                    key = PartitionKey(layer, label, seed)
                    unit = cache.unit("partition", name, pp)
                    plan.hedonic[key] = unit
                    plan.partitions[key] = PartitionRef(unit, "partition.json")
                    # closure diagnostics: the same algorithm on a null φ seeded by the study seed (§5.5)
                    plan.closure[key] = cache.unit(
                        "diagnostics", f"closure/layer{layer}/{label}/seed{seed}",
                        {"partition": unit.key, **{k: v for k, v in pp.items() if k != "seed"}, "null_seed": seed})
                    if not spec.top_responsive:  # no blocking rate: Nash/individual stability instead
                        continue
                    plan.stability[key] = cache.unit(
                        "stability", f"layer{layer}/{label}/seed{seed}",
                        {"partition": unit.key, "phi": plan.valuation[(layer, v)].key, "k": d.k,
                         "size_range": list(d.pac.size_range), "n": cfg.evaluation.stability_samples,
                         "seed": seed, "epsilon": d.pac.epsilon, "delta": d.pac.delta,
                         **({"sampler": c["discovery"]["pac"]["sampler"], "m": d.pac.m, "omega": d.pac.omega}
                            if m == "pac_top_cover" and d.pac.sampler in ("top", "weighted") else {})})
    for layer in layers:
        psi_unit, _, psi_kind = plan.psi_source(layer)
        for v in d.valuations:
            plan.k_sweep[(layer, v)] = cache.unit(
                "diagnostics", f"k_sweep/layer{layer}/{v}",
                {"phi": plan.valuation[(layer, v)].key, "ks": list(K_SWEEP),
                 "psi": None if psi_unit is None else psi_unit.key, "psi_kind": psi_kind})
    refs = [vocab.method_label(v, m) for v in d.valuations for m in d.methods]
    if d.match_baselines == "first":
        refs = refs[:1]
    for layer in layers:
        for ref in refs:
            for seed in d.seeds:
                ref_key = PartitionKey(layer, ref, seed)
                unit = cache.unit("baselines", f"layer{layer}/{ref}/seed{seed}",
                                  {"reference": plan.hedonic[ref_key].key, "capture": plan.split.key,
                                   "baselines": list(d.baselines), "seed": seed})
                plan.baselines[ref_key] = unit
                for b in d.baselines:
                    bkey = PartitionKey(layer, b, seed, None if d.match_baselines == "first" else ref)
                    plan.partitions[bkey] = PartitionRef(unit, f"{b}.json")
    ev = c["evaluation"]
    intrinsic = [x for x in ev["metrics"] if x in ("synergy", "alignment", "predictivity")]
    wants_ood = "ood" in cfg.evaluation.metrics
    if wants_ood:  # one attribution pass per layer, shared by every partition of it (§8.5)
        for layer in layers:
            plan.attribution[layer] = cache.unit("attribution", f"layer{layer}",
                                                 {"model": model.key, "data": data.key, "layer": layer,
                                                  "task": cfg.task})
        plan.controls = cache.unit("controls", "ood", {"model": model.key, "data": data.key, "task": cfg.task,
                                                       "finetune": c["finetune"] if cfg.finetune.enabled else None,
                                                       "lora": c["lora"]})
    nulls = {"null_draws": ev["null_draws"], "alpha": ev["alpha"], "min_size": ev["min_size"]}
    for key, pref in list(plan.partitions.items()):
        name = f"layer{key.layer}/{key.label}/seed{key.seed}"
        plan.evaluation[key] = cache.unit(
            "evaluation", name,
            {"partition": pref.key, "label": key.label, "capture": capture.key, "ood": capture_ood.key,
             "metrics": intrinsic, "ridge_alpha": ev["ridge_alpha"], "min_size": ev["min_size"], "task": cfg.task,
             "targets": data.key, "split": plan.split.key,
             "psi": [plan.psi[(key.layer, p)].key for p in ("discovery", "heldout")], **nulls,
             "align_null_draws": ev["ood_null_draws"]})
        if wants_ood:
            plan.ood[key] = cache.unit(
                "ood", name,
                {"partition": pref.key, "label": key.label, "attribution": plan.attribution[key.layer].key,
                 "data": data.key, "task": cfg.task, "rule": "estimated-all", "ood_null_draws": ev["ood_null_draws"],
                 **nulls})
    if wants_ood:
        for layer in layers:
            keys = sorted({plan.partitions[k].key for k in plan.partitions if k.layer == layer})
            plan.verify[layer] = cache.unit("verify", f"layer{layer}",
                                            {"attribution": plan.attribution[layer].key, "partitions": keys,
                                             "n_sample": ev["ood_verify"], "seed": ev["heldout_seed"],
                                             "min_size": ev["min_size"]})
    if cfg.tracking.enabled and len(layers) >= 2:
        for label in plan.labels():
            for seed in d.seeds:
                plan.tracking[(label, seed)] = cache.unit(
                    "tracking", f"{label}/seed{seed}",
                    {"partitions": [plan.partitions[plan.key_of(layer, label, seed)].key for layer in layers],
                     "label": label, "capture": capture.key, "tracking": c["tracking"],
                     "sankey": plan.wants_sankey(label, seed)})
    return plan


def describe_plan(plan: StudyPlan) -> str:
    """The resolved plan as text (``hedonic run --dry-run``): per stage, cached vs to run."""
    lines = [f"run directory: {plan.run_dir}", f"config hash:   {plan.cfg.hash()}", ""]
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
