"""Top-k responsive preferences of the neuron game (docs/method.md §4, paper §3.2 and App. B).

For player ``i`` and a coalition ``X`` that contains it:

* ``top_i(X)`` — up to ``k`` partners ``j ∈ X \\ {i}`` with the largest **positive**
  ``phi[i, j]``, ties broken by the smaller index. Partners with ``phi[i, j] <= 0`` are
  never chosen.
* ``ch_i(X) = {i} ∪ top_i(X)`` — the choice set.
* ``u_i(X) = (1/k) Σ_{j ∈ top_i(X)} phi[i, j]`` — divided by the *fixed* ``k`` (dividing by
  the number of partners found would break top-responsiveness).
* the preference key, compared lexicographically (larger is better)::

      key_i(X) = (u_i(X), -|ch_i(X)|, sorted[(phi[i, j], -j) for j in top_i(X)] (descending), -|X|)

  The first three components depend on ``X`` only through ``ch_i(X)`` and make
  ``ch_i(X)`` the unique best subset of ``X`` containing ``i``; the last is the
  top-responsive rule "same choice set ⇒ the smaller coalition is preferred".
* ``Φ(S) = (1/|S|) Σ_{i ∈ S} u_i(S)`` — the coalition value used by the samplers (App. B.2).

``phi`` may be asymmetric: ``phi[i, j]`` is how much ``i`` values ``j``; only row ``i``
enters player ``i``'s preferences. The diagonal is ignored.

The public functions here are the slow, obvious reference (one player, one coalition).
The private ``_sample_keys`` / ``_coalition_tops`` helpers are the vectorised versions
used by the partitioners and the stability checks; the tests compare them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._validation import check_phi, check_positive_int
from ..errors import InputError

__all__ = [
    "PreferenceKey",
    "choice_set",
    "coalition_value",
    "preference_key",
    "top_partners",
    "utility",
]

#: ``(u_i(X), -|ch_i(X)|, [(phi_ij, -j), ...] descending, -|X|)``
PreferenceKey = tuple[float, int, list[tuple[float, int]], int]


# ---------------------------------------------------------------------------- checks
def _as_phi(phi: Any) -> np.ndarray:
    """Cheap check for the per-player functions: numeric, square, 2-d (no O(n²) scan)."""
    if hasattr(phi, "values") and hasattr(phi, "meta") and not isinstance(phi, np.ndarray):
        phi = phi.values  # a SynergyMatrix
    arr = np.asarray(phi)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"phi: expected a square (n, n) matrix, got shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"phi: expected a numeric (n, n) matrix, got dtype {arr.dtype}.")
    return arr


def _as_members(members: Iterable[int] | np.ndarray, n: int, name: str = "members") -> np.ndarray:
    arr = np.asarray(list(members) if not isinstance(members, np.ndarray) else members)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name}: expected a 1-d array of player indices, got {arr.dtype} {arr.shape}.")
    if arr.min() < 0 or arr.max() >= n:
        raise InputError(f"{name}: player indices must lie in 0..{n - 1}, got range {arr.min()}..{arr.max()}.")
    out = np.unique(arr.astype(np.int64))
    if out.size != arr.size:
        raise InputError(f"{name}: players must be distinct, got {arr.tolist()}.")
    return out


def _as_player(i: Any, n: int) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
        raise InputError(f"i: expected a player index in 0..{n - 1}, got {i!r}.")
    return int(i)


def check_k(k: Any) -> int:
    """Validate the number of top partners ``k >= 1``."""
    return check_positive_int(k, "k", minimum=1)


def check_game_phi(phi: Any) -> np.ndarray:
    """Full validation of a valuation matrix for the partitioners.

    ``float32`` input stays ``float32`` (an ``n x n`` float64 copy at ``n = 14336`` would
    cost 1.6 GB); anything else becomes ``float64``.
    """
    raw = phi.values if (hasattr(phi, "values") and hasattr(phi, "meta")) else phi
    dtype = np.float32 if getattr(raw, "dtype", None) == np.float32 else np.float64
    return check_phi(raw, "phi", dtype=dtype)


# ---------------------------------------------------------------------------- reference
def top_partners(phi: Any, i: int, members: Iterable[int] | np.ndarray, k: int = 3) -> np.ndarray:
    """``top_i(X)``: up to ``k`` partners of ``i`` in ``members`` with largest positive ``phi[i, j]``.

    Parameters
    ----------
    phi : array_like, shape (n, n)
        Pairwise valuations (row ``i`` is player ``i``'s view; asymmetric allowed).
    i : int
        The player.
    members : iterable of int
        The coalition ``X`` (``i`` itself is skipped if present).
    k : int
        Maximum number of partners.

    Returns
    -------
    numpy.ndarray of int64, shape (<= k,)
        Partners in preference order: ``phi[i, j]`` descending, ties by smaller ``j``.
        Partners with ``phi[i, j] <= 0`` are never returned (docs/method.md §4).
    """
    arr = _as_phi(phi)
    n = arr.shape[0]
    i = _as_player(i, n)
    k = check_k(k)
    mem = _as_members(members, n)
    mem = mem[mem != i]
    vals = arr[i, mem].astype(np.float64)
    keep = vals > 0
    mem, vals = mem[keep], vals[keep]
    order = np.lexsort((mem, -vals))[:k]
    return mem[order]


def choice_set(phi: Any, i: int, members: Iterable[int] | np.ndarray, k: int = 3) -> np.ndarray:
    """``ch_i(X) = {i} ∪ top_i(X)``, sorted ascending (docs/method.md §4)."""
    top = top_partners(phi, i, members, k)
    return np.sort(np.concatenate([[int(i)], top]).astype(np.int64))


def utility(phi: Any, i: int, members: Iterable[int] | np.ndarray, k: int = 3) -> float:
    """``u_i(X) = (1/k) Σ_{j ∈ top_i(X)} phi[i, j]`` (paper §3.2, divided by the fixed ``k``).

    The sum runs in float64 over the partners in preference order (largest first), the
    same order the vectorised code uses, so both give bit-identical values.
    """
    arr = _as_phi(phi)
    top = top_partners(arr, i, members, k)
    total = 0.0
    for j in top:
        total += float(arr[int(i), j])
    return total / k


def preference_key(phi: Any, i: int, members: Iterable[int] | np.ndarray, k: int = 3) -> PreferenceKey:
    """Player ``i``'s preference key for coalition ``X = members`` (docs/method.md §4).

    Returns
    -------
    tuple
        ``(u_i(X), -|ch_i(X)|, [(phi[i, j], -j) for j in top_i(X)], -|X|)``; the list is in
        descending order. Python's tuple/list comparison is the lexicographic order:
        ``key_i(S) > key_i(T)`` means ``i`` strictly prefers ``S`` to ``T``.

    Raises
    ------
    InputError
        If ``i`` is not in ``members``.
    """
    arr = _as_phi(phi)
    n = arr.shape[0]
    i = _as_player(i, n)
    mem = _as_members(members, n)
    if not np.any(mem == i):
        raise InputError(f"members: coalition {mem.tolist()} does not contain player i={i}.")
    top = top_partners(arr, i, mem, k)
    u = utility(arr, i, mem, k)
    pairs = [(float(arr[i, j]), -int(j)) for j in top]
    return (u, -(1 + len(top)), pairs, -int(mem.size))


def coalition_value(phi: Any, members: Iterable[int] | np.ndarray, k: int = 3) -> float:
    """``Φ(S) = (1/|S|) Σ_{i ∈ S} u_i(S)`` (paper App. B.2); 0.0 for an empty ``S``.

    Always ``>= 0``: only positive valuations enter a utility.
    """
    arr = _as_phi(phi)
    mem = _as_members(members, arr.shape[0])
    if mem.size == 0:
        return 0.0
    return float(sum(utility(arr, int(i), mem, k) for i in mem) / mem.size)


# ---------------------------------------------------------------------------- vectorised
def _sample_tops(
    phi: np.ndarray, samples: np.ndarray, k: int, chunk: int = 32_768
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k partners of every member of every sampled coalition, vectorised.

    Parameters
    ----------
    phi : numpy.ndarray, shape (n, n)
    samples : numpy.ndarray of int, shape (b, w)
        One coalition per row, members sorted ascending, padded with ``-1`` at the end.
    k : int

    Returns
    -------
    tops : numpy.ndarray of int64, shape (b, w, kk)
        ``kk = min(k, w - 1)``; partner ids in preference order, ``-1`` where missing.
    vals : numpy.ndarray of float64, shape (b, w, kk)
        Their valuations (``0.0`` where missing). Rows of padding positions are all missing.
    """
    b, w = samples.shape
    kk = max(min(k, w - 1), 0)
    tops = np.full((b, w, kk), -1, dtype=np.int64)
    vals = np.zeros((b, w, kk), dtype=np.float64)
    if b == 0 or kk == 0:
        return tops, vals
    eye = np.eye(w, dtype=bool)
    for s in range(0, b, chunk):
        S = samples[s : s + chunk]
        valid = S >= 0
        Sc = np.where(valid, S, 0)
        V = phi[Sc[:, :, None], Sc[:, None, :]].astype(np.float64)
        bad = ~(valid[:, :, None] & valid[:, None, :]) | eye[None]
        V[bad] = -np.inf
        V[V <= 0] = -np.inf  # nonpositive partners are never chosen
        rows = np.arange(S.shape[0])[:, None]
        cols = np.arange(w)[None, :]
        for r in range(kk):
            # argmax returns the first maximum: members are sorted, so ties go to the smaller id
            pos = np.argmax(V, axis=2)
            v = V[rows, cols, pos]
            ok = v > 0
            tops[s : s + chunk, :, r] = np.where(ok, Sc[rows, pos], -1)
            vals[s : s + chunk, :, r] = np.where(ok, v, 0.0)
            V[rows, cols, pos] = -np.inf
    return tops, vals


def _key_columns(tops: np.ndarray, vals: np.ndarray, size: np.ndarray, k: int) -> np.ndarray:
    """Preference keys as float64 rows, to be compared lexicographically (larger is better).

    Columns: ``u, -|ch|, v_1, -j_1, ..., v_kk, -j_kk, -|X|``. Missing partners give
    ``(0, 0)``; two keys with the same ``-|ch|`` have their missing partners in the
    same places, so the row order equals the order of :func:`preference_key`.

    Parameters
    ----------
    tops, vals : numpy.ndarray, shape (..., kk)
    size : numpy.ndarray, shape (...)
        ``|X|`` for each entry.
    """
    kk = tops.shape[-1]
    u = np.zeros(tops.shape[:-1], dtype=np.float64)
    for r in range(kk):  # sequential sum, same order as utility()
        u = u + vals[..., r]
    u = u / k
    cnt = (tops >= 0).sum(axis=-1)
    cols = [u, -(1.0 + cnt)]
    for r in range(kk):
        cols.append(vals[..., r])
        cols.append(np.where(tops[..., r] >= 0, -tops[..., r], 0).astype(np.float64))
    cols.append(-np.asarray(size, dtype=np.float64) * np.ones_like(u))
    return np.stack(cols, axis=-1)


def _lex_greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise lexicographic ``a > b`` for key rows of equal width (last axis)."""
    diff = a != b
    first = np.argmax(diff, axis=-1)
    av = np.take_along_axis(a, first[..., None], axis=-1)[..., 0]
    bv = np.take_along_axis(b, first[..., None], axis=-1)[..., 0]
    return diff.any(axis=-1) & (av > bv)


def _coalition_tops(
    phi: np.ndarray, members: np.ndarray, k: int, chunk_elems: int = 8_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """``top_i(C)`` for every member ``i`` of one coalition ``C`` (sorted ascending).

    Returns
    -------
    tops : numpy.ndarray of int64, shape (|C|, k)   (``-1`` where missing)
    vals : numpy.ndarray of float64, shape (|C|, k) (``0.0`` where missing)
    """
    c = members.size
    tops = np.full((c, k), -1, dtype=np.int64)
    vals = np.zeros((c, k), dtype=np.float64)
    if c <= 1:
        return tops, vals
    rows_per = max(1, chunk_elems // c)
    kk = min(k, c - 1)
    for s in range(0, c, rows_per):
        idx = members[s : s + rows_per]
        V = phi[np.ix_(idx, members)].astype(np.float64)
        r_ = np.arange(idx.size)
        V[r_, np.arange(s, s + idx.size)] = -np.inf
        V[V <= 0] = -np.inf
        for r in range(kk):
            pos = np.argmax(V, axis=1)
            v = V[r_, pos]
            ok = v > 0
            tops[s : s + idx.size, r] = np.where(ok, members[pos], -1)
            vals[s : s + idx.size, r] = np.where(ok, v, 0.0)
            V[r_, pos] = -np.inf
    return tops, vals


def _pad_keys(keys: np.ndarray, width: int) -> np.ndarray:
    """Widen key rows to ``width`` columns by inserting ``(0, 0)`` partner slots before ``-|X|``."""
    cur = keys.shape[-1]
    if cur == width:
        return keys
    pad = np.zeros((*keys.shape[:-1], width - cur), dtype=keys.dtype)
    return np.concatenate([keys[..., :-1], pad, keys[..., -1:]], axis=-1)
