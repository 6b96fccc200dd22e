"""End-to-end studies: config → stages (cached, parallel) → artifacts and report.

>>> from hedonic_neurons.pipeline import load_config, run_study     # doctest: +SKIP
>>> result = run_study(load_config("demo"))                           # doctest: +SKIP
>>> result.report                                                     # doctest: +SKIP
PosixPath('runs/demo/report.md')
"""

from __future__ import annotations

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
from .stages import RunResult, StudyPlan, build_plan, describe_plan, method_label, run_study

__all__ = [
    "DataConfig",
    "DiscoveryConfig",
    "EvaluationConfig",
    "FinetuneConfig",
    "LoraConfig",
    "ModelConfig",
    "PacConfig",
    "RunResult",
    "StageCache",
    "StudyConfig",
    "StudyPlan",
    "TrackingConfig",
    "Unit",
    "build_plan",
    "config_names",
    "describe_plan",
    "from_dict",
    "load_config",
    "method_label",
    "packaged_config_path",
    "run_study",
    "to_dict",
]
