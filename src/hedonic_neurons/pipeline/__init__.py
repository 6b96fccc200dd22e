"""End-to-end studies: config → stages (cached, parallel) → artifacts and report.

>>> from hedonic_neurons.pipeline import load_config, run_study     # doctest: +SKIP
>>> result = run_study(load_config("demo"))                           # doctest: +SKIP
>>> result.report                                                     # doctest: +SKIP
PosixPath('runs/demo/report.md')

Modules: :mod:`.config` (the typed config), :mod:`.plan` (units and their keys),
:mod:`.executor` (runs independent units), :mod:`.stages` (one module per stage),
:mod:`.study` (``run_study`` → :class:`StudyResults`), :mod:`.report` (renders the results).
"""

from __future__ import annotations

from ..vocab import method_label
from .cache import StageCache, Unit
from .config import (
    DataConfig,
    DiscoveryConfig,
    EvaluationConfig,
    FinetuneConfig,
    LoraConfig,
    ModelConfig,
    PacConfig,
    StudyConfig,
    TrackingConfig,
    config_names,
    from_dict,
    load_config,
    packaged_config_path,
    to_dict,
)
from .plan import PartitionKey, StudyPlan, build_plan, describe_plan
from .study import RunResult, StudyResults, run_finetune, run_study

__all__ = [
    "DataConfig",
    "DiscoveryConfig",
    "EvaluationConfig",
    "FinetuneConfig",
    "LoraConfig",
    "ModelConfig",
    "PacConfig",
    "PartitionKey",
    "RunResult",
    "StageCache",
    "StudyConfig",
    "StudyPlan",
    "StudyResults",
    "TrackingConfig",
    "Unit",
    "build_plan",
    "config_names",
    "describe_plan",
    "from_dict",
    "load_config",
    "method_label",
    "packaged_config_path",
    "run_finetune",
    "run_study",
    "to_dict",
]
