"""The one evaluation core: the metrics of a partition (docs/method.md §8), used by both the
study pipeline's evaluation stage and ``hedonic evaluate``.

Every function takes a partition, the records / features / model it needs and the options
explicitly (:class:`EvaluationOptions`), and returns a small frozen result with the per-coalition
table and the per-partition summary that goes into the long results
(``[model, task, method, seed, layer, metric, value]``, metric names from
:data:`hedonic_neurons.vocab.METRICS`):

========================  ====================  =============================================
function                  result                metrics
========================  ====================  =============================================
:func:`evaluate_synergy`  :class:`SynergyEval`  ``pair``, ``ratio`` (eq. 8, local readout)
:func:`evaluate_alignment` :class:`AlignmentEval` ``align_r2`` (max_j corr²(a_C, f_j))
:func:`evaluate_predictivity` :class:`PredictivityEval` ``predictivity_r2`` (ridge, OOD R²)
:func:`evaluate_ood`      :class:`OODEval`      ``ood_drop`` (ΔM through the model)
:func:`evaluate_heldout_synergy` :class:`HeldoutSynergyEval` ``pair_heldout``, ``ratio_heldout``,
                          (§8.5)                ``pair_pooled_heldout``, ``pair_pooled_excess``,
                                                ``frac_sig_pair`` (and ``pair_pooled`` in sample)
:func:`evaluate_ood_estimated` :class:`OODEstimateEval` ``ood_drop``, ``ood_drop_rel``,
                          (§8.5)                ``ood_drop_excess``, ``frac_sig_ood`` (every coalition)
:func:`partition_shape`   dict                  ``n_coalitions``, ``largest_share``, ``singleton_share``
========================  ====================  =============================================

Summaries average over the coalitions of size ``>= options.min_size`` (finite values only);
the OOD drop ablates the ``options.max_coalitions`` largest of them, the same rule for every
method (docs/method.md §8.4); the estimated OOD drop (:func:`evaluate_ood_estimated`, from
precomputed per-neuron attributions) covers every one of them. Only
:func:`evaluate_ood` needs torch (the model); the others are NumPy/pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import vocab
from .errors import InputError
from .partition import Partition
from .records import LayerRecord

__all__ = [
    "AlignmentEval",
    "EvaluationOptions",
    "HeldoutSynergyEval",
    "OODEstimateEval",
    "OODEval",
    "PartitionEval",
    "PredictivityEval",
    "SynergyEval",
    "evaluate_alignment",
    "evaluate_alignment_null",
    "evaluate_heldout_synergy",
    "evaluate_ood",
    "evaluate_ood_estimated",
    "evaluate_partition",
    "evaluate_predictivity",
    "evaluate_synergy",
    "ood_coalitions",
    "partition_shape",
]


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


# ---------------------------------------------------------------------- functions
def partition_shape(partition: Partition) -> dict[str, float]:
    """``n_coalitions``, ``largest_share`` and ``singleton_share`` (docs/method.md §5)."""
    s = _check_partition(partition).summary()
    return {"n_coalitions": float(s.n_coalitions), "largest_share": float(s.largest_share),
            "singleton_share": float(s.singleton_share)}


def evaluate_synergy(record: LayerRecord, partition: Partition, options: EvaluationOptions = EvaluationOptions(), *,
                     progress: bool = False) -> SynergyEval:
    """Pair(C) and Ratio(C) of every coalition of size ``>= options.min_size`` on the local readout.

    Parameters
    ----------
    record : LayerRecord
        Records of the layer (``n`` players, ``N`` inputs).
    partition : Partition
        Partition of the same ``n`` players.
    options : EvaluationOptions
    progress : bool
    """
    from .metrics.synergy import coalition_synergy

    part = _check_partition(partition)
    rec = _check_record(record, part, "record")
    df = coalition_synergy(rec, part, min_size=options.min_size, max_members=options.max_members,
                           seed=options.seed, backend=options.backend, progress=progress)
    pm, pci = _mean_ci(df["pair"], options.confidence)
    rm, rci = _mean_ci(df["ratio"], options.confidence)
    n_undef = int((~df["ratio_defined"].astype(bool)).sum()) if len(df) else 0
    return SynergyEval(df, pm, pci, rm, rci, len(df), n_undef)


def evaluate_alignment(ood_record: LayerRecord, partition: Partition, features: pd.DataFrame,
                       options: EvaluationOptions = EvaluationOptions()) -> AlignmentEval:
    """Feature alignment of every coalition against the LETOR features of the same inputs.

    Parameters
    ----------
    ood_record : LayerRecord
        Records on the evaluation (OOD) pairs, ``N`` inputs.
    partition : Partition
    features : pandas.DataFrame, shape (N, F)
        Features of those pairs, same rows in the same order.
    options : EvaluationOptions
    """
    from .metrics.alignment import coalition_activations, feature_alignment

    part = _check_partition(partition)
    rec = _check_record(ood_record, part, "ood_record")
    if len(features) != rec.n_inputs:
        raise InputError(f"features: {len(features)} rows but ood_record holds {rec.n_inputs} inputs; "
                         "expected the features of the same pairs, in order.")
    acts = coalition_activations(np.asarray(rec.a, dtype=np.float64), part)
    al = feature_alignment(acts, features.reset_index(drop=True))
    sizes = np.asarray(part.sizes)
    al.insert(1, "size", sizes[al["coalition"].to_numpy()])
    big = al[al["size"] >= options.min_size]
    from .metrics.stats import finite_mean

    return AlignmentEval(al, finite_mean((big if len(big) else al)["r2"]))


def evaluate_alignment_null(ood_record: LayerRecord, partition: Partition, features: pd.DataFrame,
                            options: EvaluationOptions = EvaluationOptions()) -> tuple[pd.DataFrame, float, float]:
    """Alignment R² of every coalition of size ``>= min_size`` against random coalitions of its size.

    A random coalition's R² is computed exactly as a real one's (mean activation on the OOD
    records, max_j corr² with the features; :func:`hedonic_neurons.metrics.alignment.feature_alignment`),
    ``options.ood_null_draws`` per size (:func:`hedonic_neurons.metrics.nulls.size_matched_null_batch`,
    one-sided, BH at ``options.alpha``); docs/method.md §8.5.

    Returns
    -------
    table : pandas.DataFrame
        ``coalition, size, r2, null_mean, null_sd, z, p_value, q_value, significant``.
    excess : float
        Mean over the coalitions of ``r2 − null_mean`` (``align_excess``).
    frac_sig : float
        Share of the coalitions with ``q_value <= alpha`` (``frac_sig_align``; NaN when none).
    """
    from .metrics.alignment import coalition_activations, feature_alignment
    from .metrics.nulls import size_matched_null_batch
    from .metrics.stats import finite_mean

    part = _check_partition(partition)
    rec = _check_record(ood_record, part, "ood_record")
    if len(features) != rec.n_inputs:
        raise InputError(f"features: {len(features)} rows but ood_record holds {rec.n_inputs} inputs; "
                         "expected the features of the same pairs, in order.")
    a = np.asarray(rec.a, dtype=np.float64)
    feats = features.reset_index(drop=True)
    sizes = np.asarray(part.sizes)
    ids = [c for c in range(part.n_coalitions) if sizes[c] >= options.min_size]
    if not ids:
        return pd.DataFrame(columns=["coalition", "size", "r2", "null_mean", "null_sd", "z", "p_value", "q_value",
                                     "significant"]), float("nan"), float("nan")
    observed = feature_alignment(coalition_activations(a, part), feats)["r2"].to_numpy()[ids]

    def r2_of(m: np.ndarray) -> np.ndarray:
        acts = a @ m / m.sum(axis=0, keepdims=True)
        return feature_alignment(acts, feats)["r2"].to_numpy()

    table = size_matched_null_batch(pd.Series(observed, index=ids), pd.Series(sizes[ids], index=ids), r2_of,
                                    n_players=part.n_players, draws_per_size=options.ood_null_draws,
                                    alpha=options.alpha, seed=options.seed, metric="r2", min_size=options.min_size)
    sig = table["significant"].astype(bool).to_numpy()
    return table, finite_mean(table["r2"] - table["null_mean"]), float(sig.mean())


def evaluate_predictivity(train_record: LayerRecord, ood_record: LayerRecord, partition: Partition,
                          options: EvaluationOptions = EvaluationOptions(), *, train_targets: Any = None,
                          ood_targets: Any = None) -> PredictivityEval:
    """Ridge predictivity R² of the coalition mean activations (Table 2).

    Parameters
    ----------
    train_record, ood_record : LayerRecord
        In-distribution records (the ridge is fit on them) and OOD records (R² is measured on them).
    partition : Partition
    options : EvaluationOptions
    train_targets, ood_targets : array_like, optional
        Targets of the two sets; default: the records' ``labels``.
    """
    from .metrics.alignment import coalition_activations
    from .metrics.predictivity import predictivity

    part = _check_partition(partition)
    tr = _check_record(train_record, part, "train_record")
    te = _check_record(ood_record, part, "ood_record")
    y_tr = train_targets if train_targets is not None else tr.labels
    y_te = ood_targets if ood_targets is not None else te.labels
    if y_tr is None or y_te is None:
        raise InputError("train_targets/ood_targets: needed when the records carry no labels.")
    acts_in = coalition_activations(np.asarray(tr.a, dtype=np.float64), part)
    acts_ood = coalition_activations(np.asarray(te.a, dtype=np.float64), part)
    r2 = predictivity(acts_in, np.asarray(y_tr, np.float64), acts_ood, np.asarray(y_te, np.float64),
                      alpha=options.ridge_alpha)
    return PredictivityEval(float(r2))


def ood_coalitions(partition: Partition, options: EvaluationOptions = EvaluationOptions()) -> list[int]:
    """Indices of the coalitions the OOD drop ablates: size ``>= min_size``, largest first
    (ties in index order), at most ``max_coalitions``."""
    sizes = np.asarray(_check_partition(partition).sizes)
    order = [int(c) for c in np.argsort(-sizes, kind="stable") if sizes[c] >= options.min_size]
    return order if options.max_coalitions is None else order[: options.max_coalitions]


def evaluate_ood(model: Any, batches: Sequence[Any], layer: int, partition: Partition, *, task: str,
                 pairs: pd.DataFrame, targets: Any, qrels: Any = None, options: EvaluationOptions = EvaluationOptions(),
                 progress: bool = False) -> OODEval:
    """OOD drop of the coalitions chosen by :func:`ood_coalitions`, ablated through ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Scalar PEFT model (:func:`hedonic_neurons.models.load_scalar_model`).
    batches : sequence of tokenizer batches
        The OOD pairs encoded in order (:func:`hedonic_neurons.models.encode_pairs`).
    layer : int
    partition : Partition
    task : str
        A :data:`~hedonic_neurons.vocab.TASKS` name (NDCG@10 for relevance, −MSE otherwise).
    pairs : pandas.DataFrame
        The OOD pairs (``qid``, ``docid``), ``N`` rows.
    targets : array_like, shape (N,)
    qrels : optional
        TREC qrels for NDCG@10 (relevance only; default: the pairs' own grades).
    options : EvaluationOptions
    """
    from .metrics.ood import ood_drop
    from .metrics.stats import finite_mean

    vocab.check("task", task, error=InputError)
    part = _check_partition(partition)
    chosen = ood_coalitions(part, options)
    if not chosen:
        return OODEval(pd.DataFrame(columns=["coalition", "size", "drop"]), float("nan"), 0)
    df = ood_drop(model, batches, layer, part, task=task, qids=pairs["qid"].astype(str).tolist(),
                  docids=pairs["docid"].astype(str).tolist(), qrels=qrels if task == "relevance" else None,
                  targets=np.asarray(targets, dtype=np.float64), coalitions=chosen, progress=progress)
    return OODEval(df, finite_mean(df["drop"]), len(chosen))


def evaluate_heldout_synergy(heldout_record: LayerRecord, partition: Partition, psi_heldout: Any,
                             options: EvaluationOptions = EvaluationOptions(), *,
                             psi_insample: Any = None) -> HeldoutSynergyEval:
    """Held-out Pair and Ratio of every coalition, tested against size-matched random coalitions.

    Pair and Ratio are eq. 8 on the held-out inputs, read from the held-out ``ψ(i, j)`` (exact PAS
    of the local readout, so equal to :func:`evaluate_synergy` on ``heldout_record`` up to the
    float32 storage of ψ) and the exact marginals ``ψ(i)`` of ``heldout_record``
    (:func:`hedonic_neurons.metrics.synergy.pair_ratio`, same NaN rule for Ratio); each
    coalition's Pair is tested against ``options.null_draws`` uniformly
    random coalitions of its size on the held-out interactions ``ψ(i, j)``
    (:func:`hedonic_neurons.metrics.pair_null_test`, one-sided Monte-Carlo p-value,
    Benjamini–Hochberg over the partition at ``options.alpha``); the pooled Pair is compared
    with random partitions of the same size histogram
    (:func:`hedonic_neurons.metrics.nulls.pooled_pair_null`). docs/method.md §8.5.

    Parameters
    ----------
    heldout_record : LayerRecord
        Records of the held-out inputs only (``n`` players).
    partition : Partition
        Built from the discovery inputs.
    psi_heldout : array_like or SynergyMatrix, shape (n, n)
        ``ψ(i, j)`` on the held-out inputs (the exact PAS of ``heldout_record``).
    options : EvaluationOptions
    psi_insample : array_like, shape (n, n), optional
        ``ψ(i, j)`` on the discovery inputs, for the in-sample pooled Pair.
    """
    from .metrics.nulls import pair_null_test, pooled_pair, pooled_pair_null
    from .metrics.stats import finite_mean
    from .metrics.synergy import pair_ratio
    from .valuations import marginals

    part = _check_partition(partition)
    rec = _check_record(heldout_record, part, "heldout_record")
    psi = np.asarray(getattr(psi_heldout, "values", psi_heldout), dtype=np.float64)
    if psi.shape != (part.n_players, part.n_players):
        raise InputError(f"psi_heldout: expected shape ({part.n_players}, {part.n_players}), got {psi.shape}.")
    marg = np.asarray(marginals(rec), dtype=np.float64).reshape(-1)
    null = pair_null_test(psi, part, n_draws=options.null_draws, alpha=options.alpha, seed=options.seed,
                          min_size=options.min_size)
    pr = [pair_ratio(psi[np.ix_(part.coalitions[c], part.coalitions[c])], marg[part.coalitions[c]])
          for c in null["coalition"]]
    table = pd.DataFrame({"coalition": null["coalition"], "size": null["size"],
                          "pair": [p for p, _ in pr], "ratio": [r for _, r in pr]})
    table = table.merge(null.drop(columns=["size", "pair"]), on="coalition", how="left")
    if psi_insample is not None:
        psi_in = np.asarray(getattr(psi_insample, "values", psi_insample), dtype=np.float64)
        within = {c: psi_in[np.ix_(part.coalitions[c], part.coalitions[c])] for c in table["coalition"]}
        table.insert(4, "pair_insample", [float((w.sum() - np.trace(w)) / (w.shape[0] * (w.shape[0] - 1)))
                                          for w in within.values()])
    else:
        table.insert(4, "pair_insample", np.nan)
    pooled = pooled_pair_null(psi_heldout, part, n_draws=options.null_draws, seed=options.seed)
    sig = table["significant"].astype(bool).to_numpy() if len(table) else np.zeros(0, bool)
    return HeldoutSynergyEval(
        table, finite_mean(table["pair"]), finite_mean(table["ratio"]), float(pooled.observed), float(pooled.null_mean), float(pooled.p_value),
        float(pooled_pair(psi_insample, part)) if psi_insample is not None else float("nan"),
        float(sig.mean()) if sig.size else float("nan"), int(sig.size))


def _metric_of_columns(task: str, scores: np.ndarray, *, qids: Any, docids: Any, qrels: Any,
                       targets: np.ndarray) -> np.ndarray:
    """The task metric of each column of ``scores`` (N, K): vectorised −MSE, else one call per column."""
    from .metrics.ood import TASK_METRIC, task_metric

    if TASK_METRIC.get(task) == "neg_mse":
        return -np.mean((scores - targets[:, None]) ** 2, axis=0)
    return np.array([task_metric(task, scores[:, c], qids=qids, docids=docids, qrels=qrels, targets=targets)
                     for c in range(scores.shape[1])])


def evaluate_ood_estimated(base_scores: Any, attributions: Any, partition: Partition, *, task: str,
                           pairs: pd.DataFrame, targets: Any, all_lora_drop: float, qrels: Any = None,
                           options: EvaluationOptions = EvaluationOptions()) -> OODEstimateEval:
    """First-order OOD drop of every coalition of size ``>= min_size``, with a size-matched null.

    With ``e`` the per-neuron attributions of the layer (``N × n``, one backward pass per
    input; :func:`hedonic_neurons.models.attribution.neuron_attributions`) the estimated
    scores with coalition ``C`` ablated are ``score − e @ M`` (``M`` its membership column),
    and ``ΔM(C) = M(score) − M(score − e @ M)`` with the task metric ``M`` (NDCG@10 or −MSE).
    Random coalitions of the same size get their drop the same way, so the null costs one
    matrix product per batch of draws (:func:`hedonic_neurons.metrics.nulls.size_matched_null_batch`,
    ``options.ood_null_draws`` per size). docs/method.md §8.4–§8.5.

    Parameters
    ----------
    base_scores : array_like, shape (N,)
        Unablated scores of the OOD inputs.
    attributions : array_like, shape (N, n)
    partition : Partition
        Of the ``n`` neurons.
    task : str
        A :data:`~hedonic_neurons.vocab.TASKS` name.
    pairs : pandas.DataFrame
        The OOD pairs (``qid``, ``docid``), ``N`` rows in score order.
    targets : array_like, shape (N,)
    all_lora_drop : float
        Drop of ablating every LoRA neuron of the layer (exact); ``drop_rel`` divides by it.
    qrels : optional
        TREC qrels for NDCG@10 (relevance only).
    options : EvaluationOptions

    Returns
    -------
    OODEstimateEval
    """
    from .metrics.nulls import size_matched_null_batch
    from .metrics.stats import finite_mean

    vocab.check("task", task, error=InputError)
    part = _check_partition(partition)
    s = np.asarray(base_scores, dtype=np.float64).reshape(-1)
    e = np.asarray(attributions, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != s.shape[0] or e.shape[1] != part.n_players:
        raise InputError(f"attributions: expected shape ({s.shape[0]}, {part.n_players}) (inputs x neurons), "
                         f"got {e.shape}.")
    if len(pairs) != s.shape[0]:
        raise InputError(f"pairs: {len(pairs)} rows but {s.shape[0]} scores; expected the OOD pairs in score order.")
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    kw: dict[str, Any] = {"qids": pairs["qid"].astype(str).tolist(), "docids": pairs["docid"].astype(str).tolist(),
                          "qrels": qrels if task == "relevance" else None, "targets": y}
    full = float(_metric_of_columns(task, s[:, None], **kw)[0])

    def drops(m: np.ndarray) -> np.ndarray:
        return full - _metric_of_columns(task, s[:, None] - e @ m, **kw)

    sizes = np.asarray(part.sizes)
    ids = [c for c in range(part.n_coalitions) if sizes[c] >= options.min_size]
    cols = [
        "coalition", "size", "drop", "drop_rel", "null_mean", "null_sd", "z", "p_value", "q_value", "significant"]
    if not ids:
        return OODEstimateEval(pd.DataFrame(columns=cols), full, float(all_lora_drop), float("nan"), float("nan"),
                               float("nan"), float("nan"), 0)
    m = np.zeros((part.n_players, len(ids)))
    for j, c in enumerate(ids):
        m[part.coalitions[c], j] = 1.0
    observed = drops(m)
    table = size_matched_null_batch(pd.Series(observed, index=ids), pd.Series(sizes[ids], index=ids), drops,
                                    n_players=part.n_players, draws_per_size=options.ood_null_draws,
                                    alpha=options.alpha, seed=options.seed, metric="drop",
                                    min_size=options.min_size)
    scale = float(all_lora_drop)
    table.insert(3, "drop_rel", table["drop"] / scale if scale != 0 else np.nan)
    mean_drop = finite_mean(table["drop"])
    sig = table["significant"].astype(bool).to_numpy()
    return OODEstimateEval(table[cols], full, scale, mean_drop, mean_drop / scale if scale != 0 else float("nan"),
                           finite_mean(table["drop"] - table["null_mean"]), float(sig.mean()), len(ids))


def evaluate_partition(partition: Partition, options: EvaluationOptions = EvaluationOptions(), *,
                       record: LayerRecord | None = None, ood_record: LayerRecord | None = None,
                       train_record: LayerRecord | None = None, features: pd.DataFrame | None = None,
                       metrics: Sequence[str] = ("synergy", "alignment", "predictivity"),
                       train_targets: Any = None, ood_targets: Any = None,
                       progress: bool = False) -> PartitionEval:
    """The model-free metrics of one partition (the OOD drop is :func:`evaluate_ood`).

    Parameters
    ----------
    partition : Partition
    options : EvaluationOptions
    record : LayerRecord
        Records the synergy is computed on.
    ood_record : LayerRecord
        Records on the OOD pairs (alignment; the test side of predictivity).
    train_record : LayerRecord
        In-distribution records the predictivity ridge is fit on.
    features : pandas.DataFrame
        LETOR features of the OOD pairs (alignment).
    metrics : sequence of {"synergy", "alignment", "predictivity"}
        Which to compute (names of :data:`hedonic_neurons.vocab.EVALUATIONS`).
    train_targets, ood_targets : array_like, optional
        Override the records' labels for predictivity.
    progress : bool
    """
    for m in metrics:
        vocab.check("evaluation", m, where="metrics", error=InputError)
    need = {"synergy": {"record": record}, "alignment": {"ood_record": ood_record, "features": features},
            "predictivity": {"train_record": train_record, "ood_record": ood_record}}
    for m in metrics:
        missing = [k for k, v in need.get(m, {}).items() if v is None]
        if missing:
            raise InputError(f"{', '.join(missing)}: required for the {m!r} metric.")
    syn = evaluate_synergy(record, partition, options, progress=progress) if "synergy" in metrics else None  # type: ignore[arg-type]
    al = (evaluate_alignment(ood_record, partition, features, options)  # type: ignore[arg-type]
          if "alignment" in metrics else None)
    pr = (evaluate_predictivity(train_record, ood_record, partition, options,  # type: ignore[arg-type]
                                train_targets=train_targets, ood_targets=ood_targets)
          if "predictivity" in metrics else None)
    return PartitionEval(partition_shape(partition), syn, al, pr)
