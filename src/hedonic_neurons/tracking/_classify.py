"""The coalition-transition classifier (paper §3.4, docs/method.md §7).

Transfer ratios α and β of an interaction-mass matrix, the maximum-weight matching of source to
target coalitions, and the one-event-per-source rule :data:`TRANSITION_RULE` that labels each
source coalition persist, merge, split or vanish. Private; the public names are re-exported by
:mod:`hedonic_neurons.tracking.transitions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

EVENTS: tuple[str, ...] = ("persist", "merge", "split", "vanish")

TRANSITION_RULE = """\
Each source coalition C of layer l gets exactly one event, checked in this order
(a = alpha(C->C'), b = beta(C->C'), hi = alpha_hi, lo = alpha_lo):
1. persist: some target C' has a >= hi and b >= hi (C flows essentially whole into C',
   and C' is essentially made of C). The event's target is that C'. With hi > 0.5 it is
   unique; with hi > 2/3 it is always C's partner in the maximum-weight matching (swapping
   C's and C''s partners would gain at least M(C,C')(1 - 2(1 - hi)/hi) > 0).
2. merge: some target C' has a >= hi but b < hi (C flows essentially whole into a successor
   that also draws at least 1 - b of its input from other sources). Every merging source is
   counted, not only the one the matching pairs with C' (a matching pairs C' with one source).
3. split: no target has a >= hi, and at least one target C' has b >= hi and a >= lo (C's
   output is spread, and the pieces that carry a non-negligible share land in successors
   that C dominates). The event's targets are all such C'; its reported target is the one
   with the largest a.
4. vanish: everything else: no non-negligible share of C lands in a successor that C
   dominates or that absorbs C whole. This includes the in-between band (a in [lo, hi)
   onto targets with b < hi: C is diluted into successors fed mainly by others) and a
   coalition with zero outgoing mass (a = 0 everywhere by the convention 0/0 = 0).
The matched partner and its (a, b) are reported for every source coalition regardless of
its event. Ties between candidate targets go to the largest a, then the matched partner,
then the smallest target index. Comparisons use a tolerance of 1e-12."""

_TOL = 1e-12


def transfer_ratios(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output shares α and input shares β of an interaction-mass matrix.

    Parameters
    ----------
    mass : numpy.ndarray, shape (K, K')
        Non-negative interaction mass.

    Returns
    -------
    alpha, beta : numpy.ndarray, shape (K, K') each
        ``alpha`` rows sum to 1 (or 0 for a zero row), ``beta`` columns sum to 1 (or 0).
    """
    m = _check_mass(mass)
    rows = m.sum(axis=1, keepdims=True)
    cols = m.sum(axis=0, keepdims=True)
    alpha = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    beta = np.divide(m, cols, out=np.zeros_like(m), where=cols > 0)
    return alpha, beta


def match_coalitions(mass: np.ndarray) -> np.ndarray:
    """Maximum-weight bipartite matching of source to target coalitions.

    Parameters
    ----------
    mass : numpy.ndarray, shape (K, K')

    Returns
    -------
    numpy.ndarray of int, shape (K,)
        Matched target of each source, ``-1`` when unmatched (more sources than targets,
        or a matched pair with zero mass).
    """
    from scipy.optimize import linear_sum_assignment

    m = _check_mass(mass)
    out = np.full(m.shape[0], -1, dtype=np.int64)
    if m.size == 0:
        return out
    rows, cols = linear_sum_assignment(m, maximize=True)
    keep = m[rows, cols] > 0
    out[rows[keep]] = cols[keep]
    return out


@dataclass(frozen=True)
class _Classified:
    event: np.ndarray
    target: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    targets: tuple[tuple[int, ...], ...]


def _pick(cand: np.ndarray, alpha_row: np.ndarray, matched: int) -> int:
    """Among candidate targets (bool mask), the largest α, then the matched one, then the lowest."""
    idx = np.flatnonzero(cand)
    best = alpha_row[idx].max()
    top = idx[alpha_row[idx] >= best - _TOL]
    if matched in top:
        return int(matched)
    return int(top.min())


def _classify(
    alpha: np.ndarray, beta: np.ndarray, matched: np.ndarray, alpha_hi: float, alpha_lo: float
) -> _Classified:
    k = alpha.shape[0]
    hi_a = alpha >= alpha_hi - _TOL
    hi_b = beta >= alpha_hi - _TOL
    persist_c = hi_a & hi_b
    split_c = hi_b & (alpha >= alpha_lo - _TOL)
    persist = np.asarray(persist_c.any(axis=1))
    merge = np.asarray(~persist & hi_a.any(axis=1))
    split = np.asarray(~hi_a.any(axis=1) & split_c.any(axis=1))
    event = np.full(k, "vanish", dtype=object)
    target = np.full(k, -1, dtype=np.int64)
    a_out = np.zeros(k)
    b_out = np.zeros(k)
    targets: list[tuple[int, ...]] = []
    for c in range(k):
        m = int(matched[c])
        tt: tuple[int, ...] = ()
        if persist[c]:
            t = _pick(persist_c[c], alpha[c], m)
            event[c], target[c], tt = "persist", t, (t,)
        elif merge[c]:
            t = _pick(hi_a[c], alpha[c], m)
            event[c], target[c], tt = "merge", t, (t,)
        elif split[c]:
            t = _pick(split_c[c], alpha[c], m)
            pieces = np.flatnonzero(split_c[c])
            pieces = pieces[np.argsort(-alpha[c, pieces], kind="stable")]
            event[c], target[c], tt = "split", t, tuple(int(p) for p in pieces)
        if target[c] >= 0:
            a_out[c], b_out[c] = alpha[c, target[c]], beta[c, target[c]]
        elif m >= 0:
            a_out[c], b_out[c] = alpha[c, m], beta[c, m]
        elif alpha.shape[1]:
            j = int(np.argmax(alpha[c]))
            a_out[c], b_out[c] = alpha[c, j], beta[c, j]
        targets.append(tt)
    return _Classified(event.astype(str), target, a_out, b_out, tuple(targets))


def _check_thresholds(alpha_hi: float, alpha_lo: float) -> tuple[float, float]:
    hi, lo = float(alpha_hi), float(alpha_lo)
    if not (0.0 <= lo < hi <= 1.0):
        raise InputError(
            f"alpha_hi/alpha_lo: expected 0 <= alpha_lo < alpha_hi <= 1, got alpha_hi={alpha_hi}, "
            f"alpha_lo={alpha_lo}."
        )
    return hi, lo


def _check_mass(mass: Any, name: str = "mass") -> np.ndarray:
    m = np.asarray(mass, dtype=np.float64)
    if m.ndim != 2:
        raise InputError(f"{name}: expected a (K, K') matrix, got shape {m.shape}.")
    if not np.isfinite(m).all():
        raise InputError(f"{name}: expected finite values, found {int((~np.isfinite(m)).sum())} non-finite.")
    if (m < 0).any():
        raise InputError(f"{name}: interaction mass must be non-negative, found minimum {m.min():.3g}.")
    return m
