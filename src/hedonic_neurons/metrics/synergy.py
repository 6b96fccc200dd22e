"""Intrinsic coalition synergy: Pair(C) and Ratio(C) (paper App. G, eq. 6–8; docs/method.md §8).

With the marginal ``ψ(i) = E_x[ℓ(x) − ℓ_{−i}(x)]`` (eq. 6) and the interaction
``ψ(i, j) = E_x[ℓ(x) − ℓ_{−i}(x) − ℓ_{−j}(x) + ℓ_{−{i,j}}(x)]`` (eq. 7):

    Pair(C)  = 1 / (|C|(|C|−1)) · Σ_{i≠j ∈ C} ψ(i, j)          (mean over ordered pairs)
    Ratio(C) = Σ_{i≠j ∈ C} ψ(i, j) / Σ_{i ∈ C} ψ(i)                (eq. 8)

Two readouts:

- **local** (:func:`coalition_synergy`): ``ℓ`` is the layer-local readout of a
  :class:`~hedonic_neurons.records.LayerRecord` (docs/method.md §2); ψ(i, j) is exact through
  ``valuations.pas(record, method="exact", players=C)`` and ψ(i) through
  ``valuations.marginals(record, players=C)``.
- **final** (:func:`coalition_synergy_final`): ``ℓ`` is the model's own output; ψ is
  estimated from a uniform sample of pairs, each through real forward passes under
  :func:`hedonic_neurons.models.ablation.ablate`, with a confidence interval.

**Ratio's denominator.** ``Σ_i ψ(i)`` can be ~0 (marginals of both signs cancel), where
the ratio is meaningless and huge. It is reported as NaN when
``|Σ_i ψ(i)| <= ratio_eps · Σ_i |ψ(i)|`` (default ``ratio_eps = 1e-6``: the signed sum is
cancellation noise) or when every marginal is zero; ``ratio_defined`` says which rows are
affected. Aggregate with ``nanmean``/``nanmedian`` and report how many rows were NaN. A
negative denominator (ablation *raises* the readout on balance) flips the sign of Ratio;
it is kept as defined by eq. 8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_generator
from ..errors import InputError
from ..partition import Partition
from ..records import LayerRecord

__all__ = ["coalition_synergy", "coalition_synergy_final", "coalition_synergy_from_psi", "pair_ratio",
           "pair_ratio_from_sum"]

_COLUMNS = ["coalition", "size", "pair", "ratio", "ratio_defined", "psi_sum", "marginal_sum",
            "marginal_abs_sum", "n_members_used", "exact"]


def pair_ratio(
    psi_pair: np.ndarray, psi_single: np.ndarray, *, ratio_eps: float = 1e-6
) -> tuple[float, float]:
    """Pair(C) and Ratio(C) from a coalition's interactions and marginals (eq. 8).

    Parameters
    ----------
    psi_pair : numpy.ndarray, shape (m, m)
        ``ψ(i, j)`` for the coalition's members; the diagonal is ignored. Asymmetric input
        is allowed (both ordered pairs are summed).
    psi_single : numpy.ndarray, shape (m,)
        ``ψ(i)``.
    ratio_eps : float
        Relative cancellation threshold for the denominator (module docstring).

    Returns
    -------
    pair, ratio : float
        ``pair`` is NaN for ``m < 2``; ``ratio`` is NaN when the denominator is
        cancellation noise or zero.
    """
    p = np.asarray(psi_pair, dtype=np.float64)
    s = np.asarray(psi_single, dtype=np.float64).reshape(-1)
    m = s.shape[0]
    if p.shape != (m, m):
        raise InputError(f"psi_pair: expected shape ({m}, {m}) to match psi_single ({m},), got {p.shape}.")
    if not (np.isfinite(p).all() and np.isfinite(s).all()):
        raise InputError("psi_pair/psi_single: expected finite values.")
    return pair_ratio_from_sum(float(p.sum() - np.trace(p)), s, ratio_eps=ratio_eps)


def pair_ratio_from_sum(off: float, psi_single: np.ndarray, *, ratio_eps: float = 1e-6) -> tuple[float, float]:
    """:func:`pair_ratio` from the coalition's off-diagonal sum ``Σ_{i≠j ∈ C} ψ(i, j)`` (eq. 8).

    For callers that have the sum without the ``m × m`` block (the null tests' within sums).

    Parameters
    ----------
    off : float
        ``Σ_{i≠j ∈ C} ψ(i, j)``.
    psi_single : numpy.ndarray, shape (m,)
        ``ψ(i)`` of the ``m`` members.
    ratio_eps : float
    """
    s = np.asarray(psi_single, dtype=np.float64).reshape(-1)
    m = s.shape[0]
    pair = off / (m * (m - 1)) if m >= 2 else math.nan
    den = s.sum()
    scale = np.abs(s).sum()
    ratio = off / den if scale > 0 and abs(den) > ratio_eps * scale else math.nan
    return float(pair), float(ratio)


def _coalition_ids(partition: Partition, coalitions: Sequence[int] | None, min_size: int) -> list[int]:
    if not isinstance(partition, Partition):
        raise InputError(f"partition: expected a Partition, got {type(partition).__name__}.")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 2:
        raise InputError(f"min_size: expected an integer >= 2 (Pair needs two members), got {min_size!r}.")
    if coalitions is None:
        ids = list(range(partition.n_coalitions))
    else:
        ids = [int(c) for c in coalitions]
        bad = [c for c in ids if not 0 <= c < partition.n_coalitions]
        if bad:
            raise InputError(f"coalitions: indices {bad[:5]} outside 0..{partition.n_coalitions - 1}.")
    return [c for c in ids if partition.sizes[c] >= min_size]


def coalition_synergy(
    record: LayerRecord,
    partition: Partition,
    *,
    min_size: int = 2,
    coalitions: Sequence[int] | None = None,
    max_members: int | None = None,
    seed: int | np.random.Generator = 0,
    ratio_eps: float = 1e-6,
    backend: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """Pair(C) and Ratio(C) of every coalition on the layer-local readout (exact; eq. 6–8).

    Parameters
    ----------
    record : LayerRecord
        The layer's capture record (``n`` players).
    partition : Partition
        Partition of the same ``n`` players.
    min_size : int
        Coalitions smaller than this are skipped (Pair needs at least 2 members).
    coalitions : sequence of int, optional
        Indices into ``partition.coalitions``; default all.
    max_members : int, optional
        For a coalition larger than this, ψ is computed on a uniform random subset of
        ``max_members`` members (the ``m × m`` interaction matrix of a 12k-neuron coalition
        is 0.6 GB); Pair is then the subset's mean and Ratio is estimated as
        ``(|C|−1)·Pair / mean_i ψ(i)``; ``exact`` is False for those rows.
    seed : int or numpy.random.Generator
        Draws the subsets of ``max_members``.
    ratio_eps : float
        See :func:`pair_ratio`.
    backend : {"auto", "numba", "torch"}
        Inner loop of ``valuations.pas`` (``"torch"`` avoids numba's one-off compile for
        small coalitions).
    progress : bool
        tqdm bar over coalitions.

    Returns
    -------
    pandas.DataFrame
        One row per coalition: ``coalition, size, pair, ratio, ratio_defined, psi_sum``
        (``Σ_{i≠j} ψ(i,j)`` over the members used), ``marginal_sum`` (``Σ ψ(i)``),
        ``marginal_abs_sum``, ``n_members_used``, ``exact``.
    """
    from ..valuations import marginals, pas

    if not isinstance(record, LayerRecord):
        raise InputError(f"record: expected a LayerRecord, got {type(record).__name__}.")
    if partition.n_players != record.n_players:
        raise InputError(
            f"partition: has {partition.n_players} players but the record of layer {record.layer} "
            f"has n={record.n_players}."
        )
    if max_members is not None and (isinstance(max_members, bool) or int(max_members) < 2):
        raise InputError(f"max_members: expected an integer >= 2 or None, got {max_members!r}.")
    rng = as_generator(seed)
    ids = _coalition_ids(partition, coalitions, min_size)
    it: Iterable[int] = ids
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ids, desc=f"synergy, layer {record.layer}", leave=False)
    rows: list[dict[str, Any]] = []
    for c in it:
        members = partition.coalitions[c]
        size = int(members.size)
        exact = max_members is None or size <= max_members
        used = members if max_members is None or exact else np.sort(
            rng.choice(members, size=int(max_members), replace=False))
        psi_pair = np.asarray(pas(record, method="exact", players=used, backend=backend).values, dtype=np.float64)
        psi_single = np.asarray(marginals(record, players=used), dtype=np.float64).reshape(-1)
        pair, ratio = pair_ratio(psi_pair, psi_single, ratio_eps=ratio_eps)
        off = float(psi_pair.sum() - np.trace(psi_pair))
        if not exact:
            mean_single = psi_single.mean()
            scale = np.abs(psi_single).mean()
            ratio = (size - 1) * pair / mean_single if scale > 0 and abs(mean_single) > ratio_eps * scale \
                else math.nan
        rows.append({"coalition": c, "size": size, "pair": pair, "ratio": ratio,
                     "ratio_defined": not math.isnan(ratio), "psi_sum": off,
                     "marginal_sum": float(psi_single.sum()), "marginal_abs_sum": float(np.abs(psi_single).sum()),
                     "n_members_used": int(used.size), "exact": bool(exact)})
    return pd.DataFrame(rows, columns=_COLUMNS)


def coalition_synergy_from_psi(
    psi: Any,
    marginals: np.ndarray,
    partition: Partition,
    *,
    min_size: int = 2,
    coalitions: Sequence[int] | None = None,
    ratio_eps: float = 1e-6,
) -> pd.DataFrame:
    """:func:`coalition_synergy` from the layer's whole ``ψ(i, j)`` and ``ψ(i)`` (eq. 6–8).

    When the exact PAS of every pair is already computed (the pipeline's ψ on the discovery or
    held-out part, :func:`hedonic_neurons.valuations.pas`), each coalition's Pair and Ratio are
    its within-coalition sum and marginal sum: no ``m × m`` block is recomputed, and a coalition
    of more than half the players is summed through its complement
    (:class:`hedonic_neurons.metrics.nulls.ZeroDiagonalPhi`). Equal to :func:`coalition_synergy`
    on the same record up to ψ's float32 storage (every row is exact).

    Parameters
    ----------
    psi : numpy.ndarray, SynergyMatrix or ZeroDiagonalPhi, shape (n, n)
        ``ψ(i, j)`` of the ``n`` players (the diagonal is ignored).
    marginals : numpy.ndarray, shape (n,)
        ``ψ(i)`` (:func:`hedonic_neurons.valuations.marginals` of the same record).
    partition : Partition
        Of the same ``n`` players.
    min_size, coalitions, ratio_eps
        As in :func:`coalition_synergy`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`coalition_synergy`.
    """
    from .nulls import prepare_phi

    prepared = prepare_phi(psi)
    n = prepared.values.shape[0]
    single = np.asarray(marginals, dtype=np.float64).reshape(-1)
    if single.shape != (n,):
        raise InputError(f"marginals: expected shape ({n},) to match psi ({n} x {n}), got {single.shape}.")
    if not isinstance(partition, Partition) or partition.n_players != n:
        got = partition.n_players if isinstance(partition, Partition) else type(partition).__name__
        raise InputError(f"partition: expected a Partition of psi's {n} players, got {got}.")
    rows: list[dict[str, Any]] = []
    for c in _coalition_ids(partition, coalitions, min_size):
        members = partition.coalitions[c]
        off = prepared.within(members)
        ms = single[members]
        pair, ratio = pair_ratio_from_sum(off, ms, ratio_eps=ratio_eps)
        rows.append({"coalition": c, "size": int(members.size), "pair": pair, "ratio": ratio,
                     "ratio_defined": not math.isnan(ratio), "psi_sum": off, "marginal_sum": float(ms.sum()),
                     "marginal_abs_sum": float(np.abs(ms).sum()), "n_members_used": int(members.size),
                     "exact": True})
    return pd.DataFrame(rows, columns=_COLUMNS)


def _t_half_width(values: np.ndarray, confidence: float) -> float:
    from scipy import stats

    n = values.shape[0]
    if n < 2:
        return math.nan
    sd = values.std(ddof=1)
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))


def coalition_synergy_final(
    model: Any,
    batches: Sequence[Mapping[str, Any]],
    layer: int,
    partition: Partition,
    *,
    n_pairs: int = 32,
    max_singles: int = 64,
    min_size: int = 2,
    coalitions: Sequence[int] | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    ratio_eps: float = 1e-6,
    progress: bool = True,
) -> pd.DataFrame:
    """Pair(C) and Ratio(C) on the model's final output, from sampled pairs (App. G, docs/method.md §8).

    For each coalition ``C`` (``m = |C|``):

    - ``n_pairs`` unordered pairs ``{i, j}`` are drawn uniformly without replacement (all
      ``m(m−1)/2`` pairs when that is not more; the estimate is then exact up to the data);
      ψ is symmetric, so the mean over unordered pairs estimates Pair (ordered pairs);
    - the marginals of up to ``max_singles`` uniformly drawn members (all when ``m <=
      max_singles``) estimate ``Σ_i ψ(i) ≈ m · mean ψ(i)``, so
      ``Ratio ≈ (m − 1) · Pair / mean ψ(i)``;
    - every ψ is an average over all inputs of differences of real forward passes:
      ``ℓ`` (unablated), ``ℓ_{−i}``, ``ℓ_{−j}``, ``ℓ_{−{i,j}}`` with the neurons reverted to
      their pre-LoRA weights by :func:`~hedonic_neurons.models.ablation.ablate`.

    Precision floor: the final output passes through every later block's norm, and Hugging
    Face's LLaMA/Mistral RMSNorm rounds to float32 even in a float64 model, so each score
    carries float32 rounding and ψ below ~1e-6·|score| is noise (measured on SmolLM2, layer
    15, float64: scores ~0.5 off by up to 7e-7, ψ(i, j) off by up to 5e-7, wrong in sign for
    the pairs with |ψ| ~ 1e-7). The local readout's exact forms have no such floor.

    All ablations of all coalitions are run in one pass over ``batches`` (each needed set is
    scored on each batch; the unablated score and each single ``ℓ_{−i}`` are shared), so
    the cost is ``len(batches) × (1 + #singles + #pairs)`` forward passes.

    Parameters
    ----------
    model : torch.nn.Module
        A scalar model (PEFT LoRA) from :func:`hedonic_neurons.models.load_scalar_model`.
    batches : sequence of tokenizer batches
    layer : int
        The layer of the partitioned neurons.
    partition : Partition
    n_pairs : int
        Pairs sampled per coalition.
    max_singles : int
        Marginals computed per coalition for the Ratio denominator (more are computed when
        the sampled pairs need them; only the uniform draw enters the denominator).
    min_size : int
    coalitions : sequence of int, optional
    confidence : float
        Confidence level of the intervals.
    n_boot : int
        Bootstrap resamples for Ratio's interval (percentile bootstrap over the sampled
        pairs and singles, independently).
    seed : int or numpy.random.Generator
        Pair and member draws and the bootstrap.
    ratio_eps : float
        See :func:`pair_ratio`.
    progress : bool

    Returns
    -------
    pandas.DataFrame
        One row per coalition: ``coalition, size, pair, pair_ci`` (t-interval half-width
        over the sampled pairs; 0 when every pair was used), ``ratio, ratio_ci_low,
        ratio_ci_high, n_pairs, n_singles, exact``.
    """
    import torch

    from ..models import score
    from ..models.ablation import ablate

    if not isinstance(batches, Sequence) or isinstance(batches, (str, bytes)):
        raise InputError(f"batches: expected a sequence (list) of batches, got {type(batches).__name__}.")
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a number in (0, 1), got {confidence!r}.")
    for name, v in (("n_pairs", n_pairs), ("max_singles", max_singles), ("n_boot", n_boot)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name}: expected a positive integer, got {v!r}.")
    rng = as_generator(seed)
    ids = _coalition_ids(partition, coalitions, min_size)

    plans: list[tuple[int, np.ndarray, np.ndarray, bool]] = []  # (c, pairs (P,2), singles, exact)
    needed_singles: set[int] = set()
    needed_pairs: set[tuple[int, int]] = set()
    for c in ids:
        members = partition.coalitions[c]
        m = int(members.size)
        total = m * (m - 1) // 2
        if total <= n_pairs:
            iu = np.triu_indices(m, 1)
            pairs = np.stack([members[iu[0]], members[iu[1]]], axis=1)
        else:
            flat = np.sort(rng.choice(total, size=n_pairs, replace=False))
            pairs = np.stack([members[a] for a in _unrank_pairs(flat, m)], axis=1)
        singles = members if m <= max_singles else np.sort(rng.choice(members, size=max_singles, replace=False))
        exact = total <= n_pairs and m <= max_singles
        plans.append((c, pairs, singles, exact))
        needed_singles.update(int(i) for i in singles)
        needed_singles.update(int(i) for i in pairs.reshape(-1))
        needed_pairs.update((int(i), int(j)) for i, j in pairs)

    sets: list[tuple[int, ...]] = [(i,) for i in sorted(needed_singles)] + sorted(needed_pairs)
    sums = np.zeros(len(sets))
    full_sum = 0.0
    n_inputs = 0
    it: Iterable[Mapping[str, Any]] = batches
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(batches, desc=f"final-readout synergy, layer {layer} ({len(sets)} ablations/batch)",
                  leave=False)
    with torch.no_grad():
        for batch in it:
            base = score(model, batch).detach().double().cpu().numpy()
            full_sum += float(base.sum())
            n_inputs += base.shape[0]
            for k, s in enumerate(sets):
                with ablate(model, {int(layer): list(s)}):
                    sums[k] += float(score(model, batch).detach().double().cpu().sum())
    if n_inputs == 0:
        raise InputError("batches: expected at least one non-empty batch.")
    mean_full = full_sum / n_inputs
    mean_of = {s: v / n_inputs for s, v in zip(sets, sums)}

    def psi1(i: int) -> float:
        return mean_full - mean_of[(i,)]

    rows: list[dict[str, Any]] = []
    for c, pairs, singles, exact in plans:
        m = int(partition.sizes[c])
        pv = np.array([mean_full - mean_of[(int(i),)] - mean_of[(int(j),)] + mean_of[(int(i), int(j))]
                       for i, j in pairs])
        sv = np.array([psi1(int(i)) for i in singles])
        pair = float(pv.mean())
        all_pairs = pairs.shape[0] == m * (m - 1) // 2
        pair_ci = 0.0 if all_pairs else _t_half_width(pv, confidence)
        ratio = _ratio_est(pv.mean(), sv, m, ratio_eps)
        if exact:
            lo = hi = ratio
        else:
            boot = np.empty(n_boot)
            for b in range(n_boot):
                pb = pv if all_pairs else pv[rng.integers(0, pv.size, pv.size)]
                sb = sv if singles.size == m else sv[rng.integers(0, sv.size, sv.size)]
                boot[b] = _ratio_est(pb.mean(), sb, m, ratio_eps)
            finite = boot[np.isfinite(boot)]
            alpha = (1 - confidence) / 2
            lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (math.nan, math.nan))
        rows.append({"coalition": c, "size": m, "pair": pair, "pair_ci": pair_ci, "ratio": ratio,
                     "ratio_ci_low": float(lo), "ratio_ci_high": float(hi), "n_pairs": int(pairs.shape[0]),
                     "n_singles": int(singles.size), "exact": bool(exact)})
    return pd.DataFrame(rows, columns=["coalition", "size", "pair", "pair_ci", "ratio", "ratio_ci_low",
                                       "ratio_ci_high", "n_pairs", "n_singles", "exact"])


def _ratio_est(pair_mean: float, singles: np.ndarray, m: int, ratio_eps: float) -> float:
    mean_single = float(singles.mean())
    scale = float(np.abs(singles).mean())
    if scale == 0 or abs(mean_single) <= ratio_eps * scale:
        return math.nan
    return (m - 1) * pair_mean / mean_single


def _unrank_pairs(flat: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Map ranks ``0..m(m-1)/2-1`` to pairs ``(a, b)``, ``a < b``, in ``triu_indices`` order.

    Closed form (no ``O(m²)`` index arrays): row ``a`` starts at ``a·m − a(a+1)/2``.
    """
    k = np.asarray(flat, dtype=np.int64)
    start = lambda a: a * m - a * (a + 1) // 2  # noqa: E731
    a = np.floor(((2 * m - 1) - np.sqrt((2.0 * m - 1) ** 2 - 8.0 * k)) / 2).astype(np.int64)
    a = np.clip(a, 0, max(m - 2, 0))
    # Guard against floating-point error in the square root.
    a = np.where(start(a) > k, a - 1, a)
    a = np.where(start(a + 1) <= k, a + 1, a)
    b = k - start(a) + a + 1
    return a, b
