"""Stability of a partition, measured rather than assumed (docs/method.md §5).

A coalition S *blocks* a partition π iff every member strictly prefers it:
``key_i(S) > key_i(π(i))`` for all ``i ∈ S`` (keys of docs/method.md §4, see
:func:`~hedonic_neurons.game.preference_key`). Provided here:

(a) :func:`blocking_rate` — the empirical blocking rate ε̂ over fresh draws from the
    paper's distribution D with a one-sided Clopper–Pearson upper bound;
(b) :func:`is_core_stable` / :func:`find_blocking_coalition` — brute force over all
    ``2^n - 1`` coalitions (singletons included: individual rationality), ``n <= 14``;
(c) :func:`internally_stable` — inside every coalition the true choice-set digraph is
    strongly connected (otherwise one of its sink SCCs blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from .._validation import as_generator, check_positive_int, check_size_range
from ..errors import InputError
from ..partition import Partition
from ._sampling import all_coalitions, sample_coalitions
from .preferences import (
    _coalition_tops,
    _key_columns,
    _lex_greater,
    _pad_keys,
    _sample_tops,
    check_game_phi,
    check_k,
)
from .top_cover import clamp_k

__all__ = [
    "BRUTE_FORCE_MAX_N",
    "BlockingRate",
    "blocking_rate",
    "find_blocking_coalition",
    "internally_stable",
    "internally_unstable_coalitions",
    "is_core_stable",
]

BRUTE_FORCE_MAX_N = 14


@dataclass(frozen=True)
class BlockingRate:
    """Empirical blocking rate of a partition (docs/method.md §5 (a)).

    Attributes
    ----------
    epsilon : float
        ε̂ = ``n_blocking / n_samples`` (0.0 when no coalition was drawn).
    upper : float
        One-sided 95% Clopper–Pearson upper confidence bound on the blocking probability
        under D (1.0 when no coalition was drawn).
    n_samples : int
        Coalitions drawn from D.
    n_blocking : int
        How many of them block the partition.
    """

    epsilon: float
    upper: float
    n_samples: int
    n_blocking: int

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "upper": self.upper, "n_samples": self.n_samples,
                "n_blocking": self.n_blocking}

    def __str__(self) -> str:
        return (f"blocking rate ε̂ = {self.epsilon:.4g} ({self.n_blocking}/{self.n_samples} sampled "
                f"coalitions block); 95% upper bound {self.upper:.4g}")


def clopper_pearson_upper(n_blocking: int, n_samples: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound: ``Beta.ppf(confidence, x + 1, N - x)``."""
    if n_samples == 0 or n_blocking >= n_samples:
        return 1.0
    return float(stats.beta.ppf(confidence, n_blocking + 1, n_samples - n_blocking))


def _check_partition(partition: Any, n: int) -> Partition:
    if not isinstance(partition, Partition):
        arr = np.asarray(partition)
        if arr.ndim != 1:
            raise InputError(
                f"partition: expected a Partition or a label vector of shape ({n},), got "
                f"{type(partition).__name__} of shape {arr.shape}."
            )
        partition = Partition.from_labels(arr)
    if partition.n_players != n:
        raise InputError(
            f"partition: covers {partition.n_players} players but phi is {n} x {n}; "
            "expected one label per player of phi."
        )
    return partition


def _own_keys(phi: np.ndarray, partition: Partition, k: int) -> np.ndarray:
    """``key_i(π(i))`` for every player, shape (n, 2k + 3)."""
    n = phi.shape[0]
    out = np.zeros((n, 2 * k + 3), dtype=np.float64)
    for C in partition.coalitions:
        tops, vals = _coalition_tops(phi, np.asarray(C), k)
        out[C] = _key_columns(tops, vals, np.full(C.size, C.size), k)
    return out


def _blocking_mask(phi: np.ndarray, samples: np.ndarray, own: np.ndarray, k: int, chunk: int = 16_384) -> np.ndarray:
    """Which rows of a padded coalition array block the partition with keys ``own``."""
    out = np.zeros(samples.shape[0], dtype=bool)
    width = own.shape[1]
    for s in range(0, samples.shape[0], chunk):
        S = samples[s : s + chunk]
        valid = S >= 0
        tops, vals = _sample_tops(phi, S, k)
        size = valid.sum(axis=1)
        keys = _pad_keys(_key_columns(tops, vals, size[:, None], k), width)
        mine = own[np.where(valid, S, 0)]
        better = _lex_greater(keys, mine)
        out[s : s + chunk] = (better | ~valid).all(axis=1) & valid.any(axis=1)
    return out


def blocking_rate(
    phi: Any,
    partition: Partition | Any,
    k: int = 3,
    n_samples: int = 100_000,
    size_range: tuple[int, int] = (2, 10),
    seed: int | np.random.Generator = 0,
    sampler: str = "uniform",
    m: int | None = None,
    omega: int | None = None,
) -> BlockingRate:
    """Empirical blocking rate ε̂ of ``partition`` under D with a 95% upper bound (docs/method.md §5 (a)).

    ``sampler="top"`` or ``"weighted"`` measures it instead under the distribution PAC-Top-Cover's
    sampler draws from (§5.2): rounds of ``m`` candidates from D of which the ``omega`` with the
    largest ``Φ(S)`` (``"top"``) or an ``omega``-sample weighted by ``Φ(S)`` (``"weighted"``,
    Efraimidis–Spirakis keys) are kept, until ``n_samples`` are kept.

    Draws ``n_samples`` coalitions from the paper's D (§3.3: size uniform in
    ``size_range``, clipped to n; members uniform among all players) with ``seed``,
    independently of any samples a partitioner used, and counts those that block.

    Parameters
    ----------
    phi : array_like, shape (n, n)
    partition : Partition or label vector of shape (n,)
    k : int
    n_samples : int
    size_range : (int, int)
    seed : int or numpy.random.Generator

    Returns
    -------
    BlockingRate
        ``upper`` is the one-sided 95% Clopper–Pearson bound ``Beta.ppf(0.95, x+1, N-x)``.
    """
    arr = check_game_phi(phi)
    k = check_k(k)
    n_samples = check_positive_int(n_samples, "n_samples")
    lo, hi = check_size_range(size_range, "size_range")
    rng = as_generator(seed)
    n = arr.shape[0]
    k = clamp_k(k, n)
    part = _check_partition(partition, n)
    if n == 0:
        return BlockingRate(0.0, 1.0, 0, 0)
    own = _own_keys(arr, part, k)
    total = 0
    if sampler in ("top", "weighted"):
        from .pac import sample_values

        if m is None or omega is None or not 1 <= omega <= m:
            raise InputError(f"m, omega: sampler {sampler!r} needs 1 <= omega <= m, got m={m}, omega={omega}.")
        kept = 0
        while kept < n_samples:
            cand = sample_coalitions(np.arange(n), m, (lo, hi), rng)
            val = sample_values(arr, cand, k)
            idx = np.arange(cand.shape[0])
            if sampler == "top":
                order = np.lexsort((idx, -val))
            else:
                u = rng.random(cand.shape[0])
                with np.errstate(divide="ignore"):
                    key = np.where(val > 0, np.log(u) / np.where(val > 0, val, 1.0), -np.inf)
                order = np.lexsort((idx, -key))
            take = cand[order[: min(omega, n_samples - kept)]]
            total += int(_blocking_mask(arr, take, own, k).sum())
            kept += take.shape[0]
        return BlockingRate(total / n_samples, clopper_pearson_upper(total, n_samples), n_samples, total)
    if sampler != "uniform":
        raise InputError(f"sampler: expected 'uniform', 'top' or 'weighted', got {sampler!r}.")
    step = 100_000
    for s in range(0, n_samples, step):
        samples = sample_coalitions(np.arange(n), min(step, n_samples - s), (lo, hi), rng)
        total += int(_blocking_mask(arr, samples, own, k).sum())
    return BlockingRate(total / n_samples, clopper_pearson_upper(total, n_samples), n_samples, total)


def find_blocking_coalition(phi: Any, partition: Partition | Any, k: int = 3) -> np.ndarray | None:
    """A coalition blocking ``partition`` (the first by size, then lexicographically), or ``None``.

    Brute force over all ``2^n - 1`` non-empty coalitions (singletons included, so an
    individually irrational assignment is caught). Refuses ``n > 14``.
    """
    arr = check_game_phi(phi)
    k = check_k(k)
    n = arr.shape[0]
    k = clamp_k(k, n)
    if n > BRUTE_FORCE_MAX_N:
        raise InputError(
            f"phi: the brute-force core check enumerates all 2^n coalitions and is limited to n <= "
            f"{BRUTE_FORCE_MAX_N}, got n = {n}; use blocking_rate for larger games."
        )
    part = _check_partition(partition, n)
    if n == 0:
        return None
    own = _own_keys(arr, part, k)
    cands = all_coalitions(np.arange(n), 1)
    hit = np.flatnonzero(_blocking_mask(arr, cands, own, k))
    if hit.size == 0:
        return None
    row = cands[hit[0]]
    return row[row >= 0]


def is_core_stable(phi: Any, partition: Partition | Any, k: int = 3) -> bool:
    """Whether no coalition blocks ``partition`` (brute force, ``n <= 14``; docs/method.md §5 (b))."""
    return find_blocking_coalition(phi, partition, k) is None


def internally_unstable_coalitions(phi: Any, partition: Partition | Any, k: int = 3) -> list[int]:
    """Indices (into ``partition.coalitions``) of coalitions whose choice-set digraph is not strongly connected.

    For a coalition C, the digraph has an edge ``i -> j`` for ``j ∈ top_i(C)``. If it is
    not strongly connected, one of its sink SCCs X has ``ch_i(X) = ch_i(C)`` for all its
    members and is smaller than C, so X blocks (docs/method.md §5 (c)).
    """
    arr = check_game_phi(phi)
    k = clamp_k(check_k(k), arr.shape[0])
    part = _check_partition(partition, arr.shape[0])
    bad: list[int] = []
    for idx, C in enumerate(part.coalitions):
        c = C.size
        if c == 1:
            continue
        tops, _ = _coalition_tops(arr, np.asarray(C), k)
        loc = np.searchsorted(C, np.where(tops >= 0, tops, C[0]))
        src = np.repeat(np.arange(c), k)
        keep = tops.ravel() >= 0
        g = sparse.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.int8), (src[keep], loc.ravel()[keep])), shape=(c, c)
        )
        n_comp, _ = connected_components(g, directed=True, connection="strong")
        if n_comp != 1:
            bad.append(idx)
    return bad


def internally_stable(phi: Any, partition: Partition | Any, k: int = 3) -> bool:
    """Whether every coalition's true choice-set digraph is strongly connected (docs/method.md §5 (c))."""
    return not internally_unstable_coalitions(phi, partition, k)
