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
from typing import Any, TypeVar

from ..errors import ConfigError
from ..io import atomic_write
from ..models.finetune import FinetuneConfig
from ..provenance import config_hash
from ._config_sections import (
    BASELINES,
    METHODS,
    METRICS,
    TASKS,
    VALUATIONS,
    AshgConfig,
    DataConfig,
    DiscoveryConfig,
    EvaluationConfig,
    ExecutorConfig,
    ExecutorResources,
    LoraConfig,
    ModelConfig,
    PacConfig,
    Task,
    TrackingConfig,
)
from ._config_sections import Baseline as Baseline
from ._config_sections import Method as Method
from ._config_sections import Metric as Metric
from ._config_sections import Valuation as Valuation
from ._typed import build, parse_config_text, to_dict

__all__ = [
    "KNOWN_MODELS",
    "check_input_paths",
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


T = TypeVar("T")


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
    need(f.head_lr is None or f.head_lr > 0, "finetune.head_lr",
         f"expected null (same as lr) or a positive learning rate, got {f.head_lr}.")
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
#: Model names the package resolves itself (no path needed).
KNOWN_MODELS = ("minilm", "smollm2")


def check_input_paths(cfg: StudyConfig) -> None:
    """Refuse a study whose input files or directories do not exist, before any work.

    Checked: ``data.train/val/ood/ood_qrels`` when ``data.source == "files"``, ``model.adapter``,
    and ``model.base`` when it is neither a packaged name (:data:`KNOWN_MODELS`) nor allowed to be a
    hub id (``model.local_files_only: false``).

    Raises
    ------
    ConfigError
        Naming the dotted key and the path.
    """
    checks: list[tuple[str, str | None, str]] = []
    if cfg.data.source == "files":
        checks += [(f"data.{k}", getattr(cfg.data, k), "file") for k in ("train", "val", "ood", "ood_qrels")]
    checks.append(("model.adapter", cfg.model.adapter, "dir"))
    if cfg.model.base not in KNOWN_MODELS and cfg.model.local_files_only:
        checks.append(("model.base", cfg.model.base, "dir"))
    for key, value, kind in checks:
        if value is None:
            continue
        path = Path(value).expanduser()
        if kind == "file" and not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(f"{key}: {value!r} {what}; expected a data file.")
        if kind == "dir" and not path.is_dir():
            what = "is a file" if path.is_file() else "does not exist"
            hint = " (or a packaged name: " + ", ".join(KNOWN_MODELS) + ")" if key == "model.base" else ""
            raise ConfigError(f"{key}: {value!r} {what}; expected a local directory{hint}.")


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
