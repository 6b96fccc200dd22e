"""First-order OOD drop of every coalition, and its check against exact ablation (docs/method.md §8.5).

    ΔM(C) = M({score(x)}) − M({score_{−C}(x)})

with ``score_{−C}`` estimated to first order from one backward pass per batch
(:mod:`hedonic_neurons.models.attribution`: ``score_{−C} ≈ score − e @ M``) and ``M`` the
task metric of the exact path (:func:`hedonic_neurons.metrics.ood.task_metric`: NDCG@10 via
``ir_measures`` for relevance, −MSE for CQTR and Mean-TF/L). :func:`estimated_ood_drop`
returns the same table as :func:`hedonic_neurons.metrics.ood.ood_drop` for every coalition;
:func:`verify_estimates` checks a seeded, size-stratified sample of coalitions by exact
ablation (the layers before ℓ run once per batch) and reports Spearman's rank correlation
and the error of the drop, estimated vs exact.

The model layer is imported lazily, so this module imports without torch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import atomic_write, json_default
from ..partition import Partition

if TYPE_CHECKING:
    import torch

__all__ = [
    "VerificationResult",
    "estimated_ood_drop",
    "metric_drops",
    "stratified_coalition_sample",
    "verify_estimates",
]

Coalitions = Partition | Sequence[Sequence[int] | np.ndarray]
Batch = Mapping[str, Any]

_DROP_COLUMNS = ["layer", "coalition", "size", "metric", "metric_full", "metric_ablated", "drop"]


def metric_drops(
    base_scores: np.ndarray,
    ablated_scores: np.ndarray,
    *,
    task: str,
    qids: Sequence[Any] | None = None,
    docids: Sequence[Any] | None = None,
    qrels: Any = None,
    targets: Sequence[float] | np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Task metric of the unablated scores and its drop under each coalition's ablation.

    ``ΔM(C) = M(score) − M(score_{−C})`` (docs/method.md §8.5), ``M`` from
    :func:`hedonic_neurons.metrics.ood.task_metric` (NDCG@10 via ``ir_measures``, or −MSE),
    the same function the exact :func:`~hedonic_neurons.metrics.ood.ood_drop` uses.

    Parameters
    ----------
    base_scores : array_like, shape (N,)
    ablated_scores : array_like, shape (N, K)
        Exact or estimated scores, one column per coalition.
    task, qids, docids, qrels, targets
        As in :func:`~hedonic_neurons.metrics.ood.task_metric`.

    Returns
    -------
    metric_full : float
    drops : numpy.ndarray of float64, shape (K,)
    """
    from ..metrics.ood import task_metric

    s = np.asarray(base_scores, dtype=np.float64)
    a = np.asarray(ablated_scores, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != s.shape[0] or s.ndim != 1:
        raise InputError(f"ablated_scores: expected shape ({s.shape[0]}, K) for base_scores of shape {s.shape}, "
                         f"got {a.shape}.")
    kwargs = dict(qids=qids, docids=docids, qrels=qrels, targets=targets)
    full = task_metric(task, s, **kwargs)
    return full, np.array([full - task_metric(task, a[:, c], **kwargs) for c in range(a.shape[1])])


def _metric_name(task: str) -> str:
    """The metric of ``task`` (``TASK_METRIC``, the exact path's table); checked before any model run."""
    from ..metrics.ood import TASK_METRIC

    key = str(task).lower().replace("-", "_").replace("/", "_")
    if key not in TASK_METRIC:
        raise InputError(f"task: expected one of {sorted(TASK_METRIC)}, got {task!r}.")
    return TASK_METRIC[key]


def _drop_frame(layer: int, members: Sequence[np.ndarray], ids: Sequence[int], metric: str, full: float,
                drops: np.ndarray) -> pd.DataFrame:
    rows = [{"layer": int(layer), "coalition": int(c), "size": int(members[c].size), "metric": metric,
             "metric_full": full, "metric_ablated": full - float(d), "drop": float(d)}
            for c, d in zip(ids, drops)]
    return pd.DataFrame(rows, columns=_DROP_COLUMNS)


def estimated_ood_drop(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    coalitions: Coalitions,
    *,
    task: str,
    qids: Sequence[Any] | None = None,
    docids: Sequence[Any] | None = None,
    qrels: Any = None,
    targets: Sequence[float] | np.ndarray | None = None,
    base_scores: np.ndarray | None = None,
    attributions: np.ndarray | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """First-order OOD drop ``ΔM(C)`` of every coalition from one backward pass per batch.

    The metric is computed from the estimated scores
    (:func:`~hedonic_neurons.models.attribution.estimate_coalition_scores`) with the exact
    path's metric function (:func:`metric_drops`). Check the estimate with
    :func:`verify_estimates`.

    Parameters
    ----------
    model, batches, layer, device, progress
        As in :func:`~hedonic_neurons.models.attribution.neuron_attributions`.
    coalitions : Partition or sequence of index sequences
        ``K`` coalitions of the layer's neurons.
    task, qids, docids, qrels, targets
        As in :func:`hedonic_neurons.metrics.ood.ood_drop`.
    base_scores : array_like, shape (N,), optional
    attributions : array_like, shape (N, n), optional
        Precomputed :func:`~hedonic_neurons.models.attribution.neuron_attributions` (e.g.
        shared by the partitions of several methods of the same layer); with both given
        the model is not run.

    Returns
    -------
    pandas.DataFrame
        One row per coalition, the columns of ``ood_drop``: ``layer, coalition, size,
        metric, metric_full, metric_ablated, drop``.
    """
    from ..models.arch import architecture
    from ..models.attribution import (
        coalition_members,
        coalition_scores,
        estimated_scores_from_attributions,
    )

    spec = architecture(model)
    metric = _metric_name(task)
    members = coalition_members(coalitions, spec.d_ff)
    if attributions is None or base_scores is None:
        res = coalition_scores(model, batches, layer, device=device, progress=progress)
        base_scores = res.base_scores if base_scores is None else base_scores
        attributions = res.attributions if attributions is None else attributions
    est = estimated_scores_from_attributions(np.asarray(base_scores), np.asarray(attributions), members)
    full, drops = metric_drops(np.asarray(base_scores, dtype=np.float64), est, task=task, qids=qids,
                               docids=docids, qrels=qrels, targets=targets)
    return _drop_frame(int(layer), members, range(len(members)), metric, full, drops)


def stratified_coalition_sample(sizes: Sequence[int] | np.ndarray, n_sample: int, *, seed: int,
                                n_strata: int = 5) -> np.ndarray:
    """A seeded sample of coalition indices, stratified by size.

    Coalitions are binned by size (each distinct size its own stratum when there are at most
    ``n_strata``, else quantile bins of the sizes); the sample is spread as evenly as the
    strata allow (a stratum smaller than its share gives the rest to the others), so the
    rare large coalitions are represented. Within a stratum the draw is uniform without
    replacement.

    Parameters
    ----------
    sizes : array_like of int, shape (K,)
    n_sample : int
        Sample size; all ``K`` indices when ``n_sample >= K``.
    seed : int
    n_strata : int

    Returns
    -------
    numpy.ndarray of int64, sorted, shape (min(n_sample, K),)
    """
    sz = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if n_sample < 1 or n_strata < 1:
        raise InputError(f"n_sample, n_strata: expected >= 1, got {n_sample}, {n_strata}.")
    if n_sample >= sz.size:
        return np.arange(sz.size, dtype=np.int64)
    distinct = np.unique(sz)
    if distinct.size <= n_strata:
        strata = np.searchsorted(distinct, sz)
    else:
        edges = np.unique(np.quantile(sz, np.linspace(0, 1, n_strata + 1)[1:-1], method="higher"))
        strata = np.searchsorted(edges, sz, side="left")
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    quota = np.zeros(len(groups), dtype=np.int64)
    left = n_sample
    open_ = [i for i in range(len(groups))]
    while left > 0 and open_:  # water-filling: equal shares, capped by stratum size
        share = max(1, left // len(open_))
        for i in list(open_):
            take = min(share, groups[i].size - quota[i], left)
            quota[i] += take
            left -= take
            if quota[i] == groups[i].size:
                open_.remove(i)
            if left == 0:
                break
    rng = np.random.default_rng(seed)
    picked = [rng.choice(g, size=q, replace=False) for g, q in zip(groups, quota) if q > 0]
    return np.sort(np.concatenate(picked)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class VerificationResult:
    """The first-order OOD drop checked against exact ablation on a sample of coalitions.

    Attributes
    ----------
    layer : int
    metric : str
        ``"ndcg@10"`` or ``"neg_mse"``.
    n_coalitions : int
        ``K``, the number of coalitions that were estimated.
    coalitions : numpy.ndarray of int64, shape (S,)
        The sampled coalition indices (size-stratified, seeded).
    sizes : numpy.ndarray of int64, shape (S,)
    drop_estimated, drop_exact : numpy.ndarray of float64, shape (S,)
        ``ΔM(C)`` from the first-order and from the exact scores.
    metric_full : float
        ``M`` of the unablated model.
    spearman : float
        Spearman's rank correlation of estimated vs exact drops (NaN if either is constant).
    abs_error : float
        Mean ``|ΔM_est − ΔM_exact|`` over the sample.
    max_abs_error : float
    rel_error : float
        ``Σ|ΔM_est − ΔM_exact| / Σ|ΔM_exact|`` (NaN if every exact drop is 0).
    score_rel_error : float
        ``‖Δŝ − Δs‖_F / ‖Δs‖_F`` of the score changes ``Δs = s − s_{−C}`` over inputs and
        sampled coalitions: the first-order error before the metric.
    seconds_estimate : float
        Wall time of the attribution pass plus the metric of all ``K`` coalitions.
    seconds_exact : float
        Wall time of the exact ablations of the ``S`` sampled coalitions plus their metric.
    seed : int
    meta : dict
        Provenance (package version, git hash, time).
    """

    layer: int
    metric: str
    n_coalitions: int
    coalitions: np.ndarray
    sizes: np.ndarray
    drop_estimated: np.ndarray
    drop_exact: np.ndarray
    metric_full: float
    spearman: float
    abs_error: float
    max_abs_error: float
    rel_error: float
    score_rel_error: float
    seconds_estimate: float
    seconds_exact: float
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_exact_all(self) -> float:
        """Exact time extrapolated linearly to all ``K`` coalitions."""
        return self.seconds_exact * self.n_coalitions / max(1, self.coalitions.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (arrays as lists)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        out["seconds_exact_all"] = self.seconds_exact_all
        return out

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Serialise :meth:`to_dict` to JSON; with ``path``, also write it atomically."""
        text = json.dumps(self.to_dict(), default=json_default)
        if path is not None:
            with atomic_write(path) as fh:
                fh.write(text + "\n")
        return text

    def frame(self) -> pd.DataFrame:
        """One row per sampled coalition: ``coalition, size, drop_estimated, drop_exact, error``."""
        return pd.DataFrame({"coalition": self.coalitions, "size": self.sizes,
                             "drop_estimated": self.drop_estimated, "drop_exact": self.drop_exact,
                             "error": self.drop_estimated - self.drop_exact})

    def __str__(self) -> str:
        return (f"layer {self.layer}, {self.metric}: {self.coalitions.size} of {self.n_coalitions} coalitions "
                f"checked exactly; Spearman {self.spearman:.3f}, mean |error| {self.abs_error:.3g} "
                f"(max {self.max_abs_error:.3g}, relative {self.rel_error:.3g}); score-change relative "
                f"error {self.score_rel_error:.3g}; estimate {self.seconds_estimate:.2f} s for all, exact "
                f"{self.seconds_exact:.2f} s for the sample (≈ {self.seconds_exact_all:.1f} s for all)")


def verify_estimates(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    coalitions: Coalitions,
    *,
    task: str,
    qids: Sequence[Any] | None = None,
    docids: Sequence[Any] | None = None,
    qrels: Any = None,
    targets: Sequence[float] | np.ndarray | None = None,
    n_sample: int = 32,
    seed: int = 0,
    n_strata: int = 5,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> VerificationResult:
    """Estimate every coalition's OOD drop and check a size-stratified sample exactly.

    Reads ``batches`` once: per batch one attribution pass (forward + backward) and, for
    the sampled coalitions, exact ablations reusing the prefix
    (:func:`~hedonic_neurons.models.attribution.coalition_scores`).

    Parameters
    ----------
    model, batches, layer, device, progress
        As in :func:`~hedonic_neurons.models.attribution.neuron_attributions`.
    coalitions : Partition or sequence of index sequences
        ``K`` coalitions of the layer's neurons.
    task, qids, docids, qrels, targets
        As in :func:`hedonic_neurons.metrics.ood.ood_drop`.
    n_sample : int
        Coalitions checked exactly (see :func:`stratified_coalition_sample`).
    seed : int
        Seeds the sample.
    n_strata : int
        Size strata of the sample.

    Returns
    -------
    VerificationResult
    """
    from scipy.stats import spearmanr

    from ..models.arch import architecture
    from ..models.attribution import (
        coalition_members,
        coalition_scores,
        estimated_scores_from_attributions,
    )
    from ..provenance import provenance

    spec = architecture(model)
    metric = _metric_name(task)
    members = coalition_members(coalitions, spec.d_ff)
    sizes = np.array([m.size for m in members], dtype=np.int64)
    sample = stratified_coalition_sample(sizes, n_sample, seed=seed, n_strata=n_strata)
    res = coalition_scores(model, batches, layer, exact=[members[c] for c in sample], device=device,
                           progress=progress)
    s_full, s_exact = res.base_scores, res.exact_scores
    kwargs = dict(task=task, qids=qids, docids=docids, qrels=qrels, targets=targets)

    t0 = time.perf_counter()
    est_all = estimated_scores_from_attributions(s_full, res.attributions, members)
    full, drops_all = metric_drops(s_full, est_all, **kwargs)
    t1 = time.perf_counter()
    _, drops_exact = metric_drops(s_full, s_exact, **kwargs)
    t2 = time.perf_counter()
    t_est = res.seconds_attribution + t1 - t0
    t_exact = res.seconds_exact + t2 - t1

    drop_est = drops_all[sample]
    err = drop_est - drops_exact
    denom = float(np.abs(drops_exact).sum())
    change_exact = s_full[:, None] - s_exact
    change_est = s_full[:, None] - est_all[:, sample]
    norm = float(np.linalg.norm(change_exact))
    with np.errstate(all="ignore"):
        rho = float(spearmanr(drop_est, drops_exact).statistic) if sample.size > 1 else float("nan")
    return VerificationResult(
        layer=res.layer, metric=metric, n_coalitions=len(members), coalitions=sample, sizes=sizes[sample],
        drop_estimated=drop_est, drop_exact=drops_exact, metric_full=full, spearman=rho,
        abs_error=float(np.abs(err).mean()), max_abs_error=float(np.abs(err).max()),
        rel_error=float(np.abs(err).sum() / denom) if denom > 0 else float("nan"),
        score_rel_error=float(np.linalg.norm(change_est - change_exact) / norm) if norm > 0 else float("nan"),
        seconds_estimate=t_est, seconds_exact=t_exact, seed=int(seed),
        meta=provenance(kind="ood_estimate_verification", layer=res.layer, n_sample=int(n_sample),
                        n_strata=int(n_strata)),
    )
