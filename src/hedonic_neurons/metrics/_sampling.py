"""Null draws and the shared null-table engine of the size-matched null tests (docs/method.md §8).

Random same-size coalitions per size (seeded per (seed, size)), the blocked within-coalition
sums that evaluate Pair on a batch of draws, the pooled-Pair draws, the Monte-Carlo p-values
with Benjamini–Hochberg adjustment, and the table every null test returns. Private;
:mod:`hedonic_neurons.metrics.nulls` re-exports :func:`benjamini_hochberg`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd

from .._validation import as_generator
from ..errors import InputError

#: Columns after the metric column, in order.
_TAIL_COLUMNS: tuple[str, ...] = ("null_mean", "null_sd", "z", "p_value", "q_value", "significant")

#: Elements (float64) of one temporary block: draws are processed in chunks under this bound.
_BLOCK_ELEMENTS = 1 << 22

Seed = int | np.random.Generator


# ----------------------------------------------------------------------------- BH
def _bh_numpy(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of a 1-d array without NaN (step-up, monotone)."""
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return q


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values (``q_(i) = min_{k ≥ i} min(1, m·p_(k)/k)``).

    Uses :func:`scipy.stats.false_discovery_control` (``method="bh"``) when the installed
    SciPy has it (≥ 1.11), else the same step-up computation in NumPy.

    Parameters
    ----------
    p_values : array_like, shape (m,)
        p-values in [0, 1]; NaNs are passed through and do not count towards ``m``.

    Returns
    -------
    numpy.ndarray, shape (m,)
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise InputError(f"p_values: expected values in [0, 1], got min {p[finite].min()}, max {p[finite].max()}.")
    out = np.full(p.shape, np.nan)
    if not finite.any():
        return out
    try:
        from scipy.stats import false_discovery_control
    except ImportError:  # SciPy < 1.11
        out[finite] = _bh_numpy(p[finite])
    else:
        out[finite] = np.asarray(false_discovery_control(p[finite], method="bh"), dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- draws
def _size_generators(seed: Seed, sizes: Sequence[int]) -> dict[int, np.random.Generator]:
    """One generator per size: ``default_rng([seed, s])`` for an int seed, else the shared one."""
    rng = as_generator(seed)  # validates the seed
    if isinstance(seed, np.random.Generator):
        return {int(s): rng for s in sorted(sizes)}
    return {int(s): np.random.default_rng([int(seed), int(s)]) for s in sorted(sizes)}


def _draw_subsets(rng: np.random.Generator, n: int, s: int, b: int) -> np.ndarray:
    """``b`` uniform random ``s``-subsets of ``0..n-1`` (``1 ≤ s < n``), rows sorted, shape (b, s).

    Two exact samplers, chosen by ``(n, s)`` only (never by how the caller batches), so the
    draws depend on ``(rng, n, s, b)`` alone:

    - ``s² ≤ n``: ``s`` indices with replacement per row, rows with a repeat redrawn (a row
      with distinct members is uniform over ordered tuples, hence over subsets; at least
      ``e^{-1/2}`` of the rows are accepted per round). Memory ``b·s``.
    - otherwise: the ``s`` smallest of ``n`` i.i.d. uniform keys, in chunks of at most
      :data:`_BLOCK_ELEMENTS` keys (rows come from one stream, so chunking does not change
      them). Memory ``min(b·n, _BLOCK_ELEMENTS)``.
    """
    if s * s <= n:
        idx = np.sort(rng.integers(0, n, size=(b, s)), axis=1)
        bad = np.flatnonzero((np.diff(idx, axis=1) == 0).any(axis=1))
        while bad.size:
            idx[bad] = np.sort(rng.integers(0, n, size=(bad.size, s)), axis=1)
            bad = bad[(np.diff(idx[bad], axis=1) == 0).any(axis=1)]
        return idx
    out = np.empty((b, s), dtype=np.int64)
    step = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, b, step):
        keys = rng.random((min(step, b - start), n))
        out[start:start + keys.shape[0]] = np.sort(np.argpartition(keys, s - 1, axis=1)[:, :s], axis=1)
    return out


def _chunks(total: int, size: int) -> list[int]:
    size = max(1, int(size))
    return [min(size, total - start) for start in range(0, total, size)]


def _check_null_values(out: np.ndarray, b: int, s: int) -> np.ndarray:
    if out.shape != (b,):
        raise InputError(f"null function: expected {b} values for {b} random coalitions of size {s}, "
                         f"got shape {out.shape}.")
    if not np.isfinite(out).all():
        raise InputError(f"null function: returned a non-finite value for a random coalition of size {s}; "
                         "expected finite values.")
    return out


def _null_table(
    ids: Sequence[Hashable],
    sizes: np.ndarray,
    observed: np.ndarray,
    *,
    n_players: int,
    draws: int,
    alpha: float,
    seed: Seed,
    metric: str,
    evaluate: Callable[[np.ndarray], np.ndarray],
    batch_for: Callable[[int], int],
) -> pd.DataFrame:
    """Shared engine: draw per size, evaluate, p/z/q per coalition.

    ``evaluate(idx)`` maps ``(b, s)`` member indices to ``(b,)`` values; ``batch_for(s)`` is the
    number of draws evaluated at once for size ``s``.
    """
    null_sizes = sorted({int(s) for s in sizes if s < n_players})
    gens = _size_generators(seed, null_sizes)
    null_by_size: dict[int, np.ndarray] = {}
    for s in null_sizes:
        vals: list[np.ndarray] = []
        # the key sampler yields the same rows however the draws are chunked, so it is drawn per
        # batch (bounded memory); the rejection sampler is drawn at once (b·s ≤ b·√n integers)
        drawn = _draw_subsets(gens[s], n_players, s, draws) if s * s <= n_players else None
        start = 0
        for b in _chunks(draws, batch_for(s)):
            idx = drawn[start:start + b] if drawn is not None else _draw_subsets(gens[s], n_players, s, b)
            start += b
            vals.append(_check_null_values(np.asarray(evaluate(idx), dtype=np.float64).reshape(-1), b, s))
        null_by_size[s] = np.concatenate(vals)
    return _table_from_nulls(ids, sizes, observed, null_by_size, n_players=n_players, alpha=alpha, metric=metric)


def _table_from_nulls(
    ids: Sequence[Hashable],
    sizes: np.ndarray,
    observed: np.ndarray,
    null_by_size: dict[int, np.ndarray],
    *,
    n_players: int,
    alpha: float,
    metric: str,
) -> pd.DataFrame:
    """p/z/q per coalition from the null values of each size (``null_by_size[s]``, shape (B,))."""
    k = len(ids)
    null_mean = np.full(k, np.nan)
    null_sd = np.full(k, np.nan)
    z = np.full(k, np.nan)
    p = np.full(k, np.nan)
    for r in range(k):
        s, obs = int(sizes[r]), float(observed[r])
        if s >= n_players:  # the only coalition of its size: nothing to compare with
            null_mean[r], null_sd[r] = obs, 0.0
            p[r] = 1.0 if not np.isnan(obs) else np.nan
            continue
        null = null_by_size[s]
        null_mean[r] = float(null.mean())
        null_sd[r] = float(null.std(ddof=1)) if null.size > 1 else np.nan
        if np.isnan(obs):
            continue
        p[r] = (1.0 + np.count_nonzero(null >= obs)) / (1.0 + null.size)
        if null_sd[r] > 0:
            z[r] = (obs - null_mean[r]) / null_sd[r]
    q = benjamini_hochberg(p)
    sig = np.where(np.isnan(q), False, q <= alpha)
    return pd.DataFrame({"coalition": list(ids), "size": sizes.astype(np.int64), metric: observed,
                         "null_mean": null_mean, "null_sd": null_sd, "z": z, "p_value": p, "q_value": q,
                         "significant": sig.astype(bool)},
                        columns=["coalition", "size", metric, *_TAIL_COLUMNS])


def _gemm_path(n: int, s: int) -> bool:
    # A gather costs ~s² slow indexed reads per coalition, a GEMM ~2n² fast flops. Measured on a
    # 2-core Xeon, one thread, n = 2000 … 14336, float32 and float64
    # (`python benchmarks/bench_nulls.py --crossover`, docs/benchmarks.md): the two break even
    # near s = n/20; at s = n/10 the gather is 1.2-5x slower.
    return 20 * s > n


def phi_margins(phi0: np.ndarray) -> tuple[float, np.ndarray]:
    """``(T, r + c)``: the total ``Σ_ij φ_ij`` and each player's row plus column sum, shape (n,), in float64."""
    rows = phi0.sum(axis=1, dtype=np.float64)
    return float(rows.sum()), rows + phi0.sum(axis=0, dtype=np.float64)


def _complements(idx: np.ndarray, n: int) -> np.ndarray:
    """The sorted complement of each row of ``idx`` in ``range(n)``, shape (b, n − s)."""
    b, s = idx.shape
    keep = np.ones((b, n), dtype=bool)
    keep[np.arange(b)[:, None], idx] = False
    return np.nonzero(keep)[1].reshape(b, n - s)


def _within_sums(phi0: np.ndarray, idx: np.ndarray,
                 margins: tuple[float, np.ndarray] | None = None) -> np.ndarray:
    """``Σ_{i, j ∈ C} φ_ij`` for each row ``C`` of ``idx`` (shape (b, s)); ``φ`` has a zero diagonal.

    Small coalitions gather their ``s × s`` blocks; large ones use ``diag(Mᵀ φ M)`` with the
    ``n × b`` membership matrix ``M``. Both bounded by :data:`_BLOCK_ELEMENTS` per block.
    A coalition of more than half the players is summed through its complement ``C̄``:
    ``W(C) = T − Σ_{i ∈ C̄} (r_i + c_i) + W(C̄)`` (``T`` the total, ``r``/``c`` the row/column
    sums; ``margins`` from :func:`phi_margins`, computed here when not given), so its cost is
    that of a coalition of ``n − s`` players.

    Precision: gathered blocks, margins and the final sums accumulate in float64. The product
    ``φ M`` runs in ``φ``'s dtype, so a float32 ``φ`` (ψ's storage) sums each row's ``s``
    members in float32 (twice the speed, half the memory of a float64 copy); the error of
    ``W(C)`` is then at most ``s · 2⁻²³ · Σ_{i, j ∈ C} |φ_ij|`` (typically ``√s`` times less),
    far below the spread of the null (measured in ``tests/test_nulls.py``).
    """
    n = phi0.shape[0]
    b, s = idx.shape
    out = np.empty(b)
    if s > n // 2 and s >= 2:
        total, rc = margins if margins is not None else phi_margins(phi0)
        step = max(1, _BLOCK_ELEMENTS // n)
        for start in range(0, b, step):
            comp = _complements(idx[start:start + step], n)
            inner = _within_sums(phi0, comp) if comp.shape[1] >= 2 else 0.0  # one player: no pair
            out[start:start + comp.shape[0]] = total - rc[comp].sum(axis=1) + inner
        return out
    if _gemm_path(n, s):
        step = max(1, _BLOCK_ELEMENTS // n)
        for start in range(0, b, step):
            part = idx[start:start + step]
            m = np.zeros((n, part.shape[0]), dtype=phi0.dtype)
            m[part, np.arange(part.shape[0])[:, None]] = 1.0
            rows = phi0 @ m  # (n, b) in φ's dtype
            out[start:start + part.shape[0]] = np.einsum("ib,ib->b", m, rows, dtype=np.float64)
        return out
    step = max(1, _BLOCK_ELEMENTS // max(1, s * s))
    for start in range(0, b, step):
        part = idx[start:start + step]
        out[start:start + part.shape[0]] = phi0[part[:, :, None], part[:, None, :]].sum(axis=(1, 2), dtype=np.float64)
    return out


def _pair_batch(n: int) -> Callable[[int], int]:
    def batch_for(s: int) -> int:
        return max(1, _BLOCK_ELEMENTS // (n if _gemm_path(n, s) else s * s))
    return batch_for


def _pooled_null_values(phi0: np.ndarray, sizes: Sequence[int], perms: np.ndarray,
                        margins: tuple[float, np.ndarray] | None = None,
                        first_blocks: dict[int, list[np.ndarray]] | None = None) -> np.ndarray:
    """Pooled Pair of the partitions cutting each row of ``perms`` (shape (b, n)) into ``sizes``.

    Blocks are consecutive slices of the permutation, largest sizes first (as
    :func:`hedonic_neurons.baselines.random_partition` does); blocks of equal size across all
    draws are stacked and summed by one :func:`_within_sums` call.

    ``first_blocks``, when given, receives for every size ``s ≥ 2`` the Pair of each row's
    first block of that size (shape (b,), appended to ``first_blocks[s]``): a uniformly random
    ``s``-subset per row, independent across rows.
    """
    b = perms.shape[0]
    sz = sorted((int(s) for s in sizes), reverse=True)
    totals = np.zeros(b)
    offset = 0
    pairs = 0
    for s in sorted(set(sz), reverse=True):
        count = sz.count(s)
        if s >= 2:
            block = perms[:, offset:offset + count * s].reshape(b * count, s)
            sums = _within_sums(phi0, np.sort(block, axis=1), margins).reshape(b, count)
            totals += sums.sum(axis=1)
            pairs += count * s * (s - 1)
            if first_blocks is not None:
                first_blocks.setdefault(s, []).append(sums[:, 0] / (s * (s - 1)))
        offset += count * s
    return totals / pairs if pairs else np.full(b, np.nan)
