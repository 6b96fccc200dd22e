"""hedonic-neurons: stable coalitions of MLP neurons in LoRA-tuned transformers.

Neurons are players of a top-responsive hedonic game whose preferences come from
pairwise synergy (OCA or exact ablation synergy, PAS); stable partitions of that game
are the coalitions. See ``docs/method.md`` for the mathematics.

The top level imports only NumPy/SciPy; the model side (``hedonic_neurons.models``,
``capture``, ``ablation``, ``valuations``) imports torch, transformers and PEFT lazily.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    ArtifactError,
    ConfigError,
    HedonicError,
    InputError,
    LinearReadoutError,
    UnsupportedModelError,
)
from .partition import Partition, PartitionSummary
from .records import LayerRecord, Readout
from .synergy import SynergyMatrix

__all__ = [
    "ArtifactError",
    "ConfigError",
    "HedonicError",
    "InputError",
    "LayerRecord",
    "LinearReadoutError",
    "Partition",
    "PartitionSummary",
    "Readout",
    "SynergyMatrix",
    "UnsupportedModelError",
    "__version__",
]
