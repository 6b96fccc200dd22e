"""Options, input checks and the frozen result types of the evaluation core (docs/method.md §8).

:class:`EvaluationOptions` (one default for the pipeline and the CLI) and the small frozen
results (:class:`SynergyEval`, :class:`AlignmentEval`, :class:`PredictivityEval`,
:class:`OODEval`, :class:`HeldoutSynergyEval`, :class:`OODEstimateEval`,
:class:`PartitionEval`), each with its ``metrics()`` rows of the long results. Private;
:mod:`hedonic_neurons.evaluation` re-exports the public names and documents the functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import vocab
from .errors import InputError
from .partition import Partition
from .records import LayerRecord


@dataclass(frozen=True)
class EvaluationOptions:
    """Options shared by every metric (one default for the pipeline and the CLI).

    Attributes
    ----------
    min_size : int
        Coalitions smaller than this are left out of the summaries and of the OOD drop
        (Pair needs two members; default 2).
    max_coalitions : int or None
        OOD drop ablates only the largest ``max_coalitions`` coalitions of size
        ``>= min_size`` (one forward pass per coalition and batch); ``None``: all.
    ridge_alpha : float or "cv"
        Ridge penalty of the predictivity regression (``"cv"``: leave-one-out ``RidgeCV``).
    max_members : int or None
        Estimate the synergy of larger coalitions on a random subset of this many members.
    seed : int
        Seed of those member subsets.
    backend : {"auto", "numba", "torch"}
        Inner loop of the exact PAS behind the synergy.
    confidence : float
        Level of the t-intervals over coalitions.
    null_draws : int
        Random coalitions per size in the size-matched null of the held-out Pair, and random
        partitions in the null of the pooled Pair (docs/method.md §8.5).
    ood_null_draws : int
        Random coalitions per size in the size-matched null of the estimated OOD drop.
    alpha : float
        False-discovery rate of the per-coalition tests (Benjamini–Hochberg).
    """

    min_size: int = 2
    max_coalitions: int | None = 20
    ridge_alpha: float | str = 1.0
    max_members: int | None = None
    seed: int = 0
    backend: str = "auto"
    confidence: float = 0.95
    null_draws: int = 1000
    ood_null_draws: int = 200
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or self.min_size < 2:
            raise InputError(f"min_size: expected an integer >= 2 (Pair needs two members), got {self.min_size!r}.")
        if self.max_coalitions is not None and (not isinstance(self.max_coalitions, int) or self.max_coalitions < 1):
            raise InputError(f"max_coalitions: expected None (all) or an integer >= 1, got {self.max_coalitions!r}.")
        if self.ridge_alpha != "cv":
            a = self.ridge_alpha
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0:
                raise InputError(f"ridge_alpha: expected a non-negative float or 'cv', got {a!r}.")
        if self.max_members is not None and self.max_members < 2:
            raise InputError(f"max_members: expected None or an integer >= 2, got {self.max_members!r}.")
        if self.backend not in ("auto", "numba", "torch"):
            raise InputError(f"backend: expected 'auto', 'numba' or 'torch', got {self.backend!r}.")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"confidence: expected a value in (0, 1), got {self.confidence!r}.")
        for name in ("null_draws", "ood_null_draws"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected an integer >= 1, got {v!r}.")
        if not 0.0 < self.alpha < 1.0:
            raise InputError(f"alpha: expected a false-discovery rate in (0, 1), got {self.alpha!r}.")


def _mean_ci(values: Any, confidence: float) -> tuple[float, float]:
    from .metrics.stats import mean_ci

    v = np.asarray(values, dtype=np.float64)
    return mean_ci(np.where(np.isfinite(v), v, np.nan), confidence)


def _check_partition(partition: Any) -> Partition:
    if not isinstance(partition, Partition):
        raise InputError(f"partition: expected a Partition, got {type(partition).__name__}.")
    return partition


def _check_record(record: Any, partition: Partition, name: str) -> LayerRecord:
    if not isinstance(record, LayerRecord):
        raise InputError(f"{name}: expected a LayerRecord, got {type(record).__name__}.")
    if record.n_players != partition.n_players:
        raise InputError(f"{name}: holds {record.n_players} players but the partition has {partition.n_players}.")
    return record


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class SynergyEval:
    """Pair(C) and Ratio(C) of one partition (eq. 6–8; docs/method.md §8).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per coalition of size ``>= min_size`` (:func:`~hedonic_neurons.metrics.synergy.coalition_synergy`).
    pair, pair_ci, ratio, ratio_ci : float
        Mean over those coalitions (finite values) ± t half-width (NaN with fewer than two).
    n_coalitions, n_ratio_undefined : int
    """

    table: pd.DataFrame = field(repr=False)
    pair: float
    pair_ci: float
    ratio: float
    ratio_ci: float
    n_coalitions: int
    n_ratio_undefined: int

    def metrics(self) -> dict[str, float]:
        return {"pair": self.pair, "ratio": self.ratio}


@dataclass(frozen=True)
class AlignmentEval:
    """Feature alignment R²(C) = max_j corr²(a_C, f_j) of one partition (docs/method.md §8).

    ``table``: one row per coalition (``coalition, size, r2, best_feature, corr``); ``r2``:
    mean over coalitions of size ``>= min_size`` (over all when none is that large).
    """

    table: pd.DataFrame = field(repr=False)
    r2: float

    def metrics(self) -> dict[str, float]:
        return {"align_r2": self.r2}


@dataclass(frozen=True)
class PredictivityEval:
    """Ridge on coalition mean activations, fit in distribution, R² on the OOD inputs (Table 2)."""

    r2: float

    def metrics(self) -> dict[str, float]:
        return {"predictivity_r2": self.r2}


@dataclass(frozen=True)
class OODEval:
    """OOD drop ΔM(C) = M(ℓ) − M(ℓ_{−C}) of the largest coalitions (paper §4; docs/method.md §8).

    ``table``: one row per ablated coalition; ``drop``: the mean over them (NaN when no
    coalition is large enough); ``n_evaluated``: how many were ablated.
    """

    table: pd.DataFrame = field(repr=False)
    drop: float
    n_evaluated: int

    def metrics(self) -> dict[str, float]:
        return {"ood_drop": self.drop}


@dataclass(frozen=True)
class HeldoutSynergyEval:
    """Pair and Ratio on held-out inputs with the size-matched null (docs/method.md §8.5).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per coalition of size ``>= min_size``: ``coalition, size, pair, ratio`` (held
        out, exact on the local readout), ``pair_insample`` (NaN without in-sample ψ),
        ``null_mean, null_sd, z, p_value, q_value, significant``
        (:func:`hedonic_neurons.metrics.pair_null_test` on the held-out ψ).
    pair, ratio : float
        Mean over those coalitions of the held-out Pair and Ratio (finite values).
    pair_pooled : float
        Pooled held-out Pair (every within-coalition ordered pair counts once).
    pair_pooled_null : float
        Mean pooled held-out Pair of random partitions with the same size histogram.
    pair_pooled_p : float
        One-sided Monte-Carlo p-value of the pooled Pair against those.
    pair_pooled_insample : float
        Pooled Pair on the discovery inputs (NaN when not given).
    frac_sig : float
        Share of the tested coalitions with ``q_value <= alpha`` (NaN when none was tested).
    n_tested : int
    """

    table: pd.DataFrame = field(repr=False)
    pair: float
    ratio: float
    pair_pooled: float
    pair_pooled_null: float
    pair_pooled_p: float
    pair_pooled_insample: float
    frac_sig: float
    n_tested: int

    def metrics(self) -> dict[str, float]:
        out = {"pair_heldout": self.pair, "ratio_heldout": self.ratio, "pair_pooled_heldout": self.pair_pooled,
               "pair_pooled_excess": self.pair_pooled - self.pair_pooled_null, "frac_sig_pair": self.frac_sig}
        if np.isfinite(self.pair_pooled_insample):
            out["pair_pooled"] = self.pair_pooled_insample
        return out


@dataclass(frozen=True)
class OODEstimateEval:
    """First-order OOD drop of every coalition with its size-matched null (docs/method.md §8.5).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per coalition of size ``>= min_size``: ``coalition, size, drop, drop_rel,
        null_mean, null_sd, z, p_value, q_value, significant``.
    metric_full : float
        Task metric of the unablated model on the OOD inputs.
    all_lora_drop : float
        Drop of ablating every LoRA neuron of the layer (the scale of ``drop_rel``).
    drop, drop_rel : float
        Mean over the coalitions of the drop, and that mean divided by ``all_lora_drop``.
    excess : float
        Mean over the coalitions of ``drop − null_mean``.
    frac_sig : float
        Share of the coalitions with ``q_value <= alpha`` (NaN when none).
    n_evaluated : int
    """

    table: pd.DataFrame = field(repr=False)
    metric_full: float
    all_lora_drop: float
    drop: float
    drop_rel: float
    excess: float
    frac_sig: float
    n_evaluated: int

    def metrics(self) -> dict[str, float]:
        return {"ood_drop": self.drop, "ood_drop_rel": self.drop_rel, "ood_drop_excess": self.excess,
                "frac_sig_ood": self.frac_sig}


@dataclass(frozen=True)
class PartitionEval:
    """Everything evaluated for one partition; :meth:`metrics` gives the rows of the long results."""

    shape: dict[str, float]
    synergy: SynergyEval | None = None
    alignment: AlignmentEval | None = None
    predictivity: PredictivityEval | None = None
    ood: OODEval | None = None
    heldout: HeldoutSynergyEval | None = None

    def metrics(self) -> dict[str, float]:
        """``{metric: value}`` with metric names of :data:`hedonic_neurons.vocab.METRICS`."""
        out: dict[str, float] = {}
        for part in (self.synergy, self.alignment, self.predictivity, self.ood, self.heldout):
            if part is not None:
                out.update(part.metrics())
        out.update(self.shape)
        for name in out:
            vocab.check("metric", name, error=InputError)
        return out
