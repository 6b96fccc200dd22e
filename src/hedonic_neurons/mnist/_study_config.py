"""The MNIST study's vocabulary, configuration and result type (App. I; docs/method.md §8.5).

The method labels (:data:`HEDONIC_METHODS`, :data:`BASELINE_METHODS`, :data:`REFERENCE`,
:data:`METHOD_LABELS`), the three settings, :class:`MnistStudyConfig` (with the config hashes
that key each artifact) and :class:`MnistStudyResult`. Private;
:mod:`hedonic_neurons.mnist.study` re-exports every public name and documents the study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import vocab
from ..errors import ConfigError
from ..provenance import config_hash
from .model import GatedMLPConfig, TrainConfig

SETTINGS: tuple[str, ...] = ("trained", "random_init", "shuffled")
#: method label -> (partition method, valuation), labels composed by :func:`hedonic_neurons.vocab.method_label`
#: (``hedonic_pas`` = PAC-Top-Cover on exact PAS, ``hedonic_pas_topcover`` = exact Top Covering on it).
HEDONIC_METHODS: dict[str, tuple[str, str]] = {
    vocab.method_label(val, algo): (algo, val)
    for algo, val in (("pac_top_cover", "pas_exact"), ("pac_top_cover", "oca"), ("top_cover", "pas_exact"),
                      ("top_cover", "oca"), ("nash_stable", "pas_exact"), ("nash_stable", "oca"))
}
BASELINE_METHODS: tuple[str, ...] = tuple(vocab.BASELINES)
#: The hedonic partition the baselines are matched to (App. I.5).
REFERENCE = vocab.method_label("pas_exact", "pac_top_cover")
#: method label -> display label (:func:`hedonic_neurons.vocab.display_label`), in the tables' row order.
METHOD_LABELS: dict[str, str] = {m: vocab.display_label(m) for m in (*BASELINE_METHODS, *HEDONIC_METHODS)}


@dataclass(frozen=True)
class MnistStudyConfig:
    """Everything that determines the study's numbers (round-trips through JSON).

    Defaults follow App. I: four gated blocks on a 256-d residual stream, AdamW, k = 3,
    coalition sizes 2..10, m = 8e4, omega = 8e3, top-K = 128, layers h2-h4, controls on h3.
    Layers are 1-based: ``h_1`` is the stream after the input projection, ``h_{l+1}`` the
    output of block ``l`` (see :mod:`.model`).

    The evidence protocol (docs/method.md §8.5): ``heldout_fraction`` of the test images
    (``heldout_seed``, stratified by digit) are held out for evaluation, the rest discover φ and
    the partitions; ``null_draws`` random coalitions (partitions) per size (histogram) form the
    size-matched null of the held-out Pair, with false-discovery rate ``alpha``.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    layers: tuple[int, ...] = (2, 3, 4)
    control_layer: int = 3
    controls: bool = True
    exact_top_cover: bool = True
    idx_dir: str | None = None
    split_seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    model: GatedMLPConfig = field(default_factory=GatedMLPConfig)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-2
    baseline: str = "zero"
    k: int = 3
    size_range: tuple[int, int] = (2, 10)
    m: int = 80_000
    omega: int = 8_000
    top_k: int = 128
    grid_images: int = 64
    grid_coalitions: int = 4
    heldout_fraction: float = 0.5
    heldout_seed: int = 0
    null_draws: int = 1000
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds: expected at least one seed, got none.")
        n_layers = self.model.n_layers
        bad = [v for v in (*self.layers, self.control_layer) if not 1 <= int(v) <= n_layers]
        if bad:
            raise ConfigError(f"layers/control_layer: {bad} outside 1..{n_layers} (h_1..h_{n_layers}).")
        if self.baseline not in ("zero", "mean"):
            raise ConfigError(f"baseline: expected 'zero' or 'mean', got {self.baseline!r}.")
        if self.k < 1 or self.top_k < 1 or self.m < 1 or self.omega < 1:
            raise ConfigError(f"k, top_k, m, omega: expected positive integers, got {self.k}, {self.top_k}, {self.m}, {self.omega}.")
        if not 0.0 < float(self.heldout_fraction) < 1.0:
            raise ConfigError(f"heldout_fraction: expected a number in (0, 1), got {self.heldout_fraction!r}.")
        if not 0.0 < float(self.alpha) < 1.0:
            raise ConfigError(f"alpha: expected a number in (0, 1), got {self.alpha!r}.")
        if int(self.null_draws) < 1:
            raise ConfigError(f"null_draws: expected a positive integer, got {self.null_draws!r}.")
        lo, hi = self.size_range
        if not 1 <= lo <= hi:
            raise ConfigError(f"size_range: expected 1 <= k_min <= k_max, got {self.size_range}.")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "layers", tuple(int(v) for v in self.layers))
        object.__setattr__(self, "size_range", (int(lo), int(hi)))

    @classmethod
    def quick(cls, **overrides: Any) -> MnistStudyConfig:
        """A few-minute configuration: one seed, 5 epochs (the game keeps the paper's m and omega,
        PAC-Top-Cover takes well under a second on 256 players)."""
        base: dict[str, Any] = {"seeds": (0,), "epochs": 5}
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MnistStudyConfig:
        data = dict(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"mnist config: unknown keys {sorted(unknown)}.")
        if isinstance(data.get("model"), dict):
            data["model"] = GatedMLPConfig(**data["model"])
        for key in ("seeds", "layers", "size_range"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def train_config(self, seed: int, setting: str) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            seed=seed, shuffle_labels=setting == "shuffled",
        )

    # hashes of the inputs of each artifact (a change recomputes only what depends on it)
    def _model_key(self) -> str:
        return config_hash({k: self.to_dict()[k] for k in ("idx_dir", "split_seed", "n_train", "model", "epochs",
                                                          "batch_size", "lr", "weight_decay")})

    def _record_key(self) -> str:
        return config_hash([self._model_key(), self.n_test, self.baseline, self.heldout_fraction, self.heldout_seed])

    def _partition_key(self) -> str:
        return config_hash([self._record_key(), self.k, self.size_range, self.m, self.omega])

    def _metrics_key(self, methods: Sequence[str]) -> str:
        return config_hash([self._partition_key(), list(methods), self.top_k, self.null_draws, self.alpha])


@dataclass(frozen=True)
class MnistStudyResult:
    """What :func:`run_mnist_study` produced: one row per coalition (``coalitions``), per
    partition (``partitions``), the long format, per-model accuracies, wall time."""

    out_dir: Path
    coalitions: pd.DataFrame
    long: pd.DataFrame
    models: pd.DataFrame
    seconds: float
    partitions: pd.DataFrame = field(default_factory=pd.DataFrame)
