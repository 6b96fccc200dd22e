"""Exact Top Covering (Alcalde & Revilla 2004; Dimitrov & Sung 2007), docs/method.md §5.

With ``phi`` fully known, every remaining player's choice set over the remaining players
R is computed exactly: ``B_i = top_i(R)``. Each round emits a sink strongly connected
component of the digraph ``i -> j (j ∈ B_i)`` and removes it. The result is core stable
for the utilities of docs/method.md §4 (no coalition of any size blocks it).

Why the result does not depend on ``emit``: if C1 and C2 are two sink SCCs of the graph
on R, then C2 is still a sink SCC after C1 is removed (its members' choice sets lie inside
C2, so they do not change). Removing C1 then C2 or C2 then C1 reaches the same state, so
by Newman's lemma every order of emission ends in the same partition. ``emit`` only
changes the number of rounds (and is kept for symmetry with :func:`pac_top_cover`,
where the order does matter).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..partition import Partition, _default_meta
from ._engine import run_top_cover_loop
from .preferences import check_game_phi, check_k

__all__ = ["top_cover"]

EMITS = ("smallest", "all")


def _check_emit(emit: Any) -> str:
    from ..errors import InputError

    if emit not in EMITS:
        raise InputError(f"emit: expected one of {EMITS}, got {emit!r}.")
    return str(emit)


class _PartnerLists:
    """Per-player positive partners sorted by ``(-phi[i, j], j)``, truncated and refilled lazily.

    Each list is a *prefix* of player ``i``'s full preference order over all players:
    every positive partner with ``phi[i, j] >= t_i`` (``t_i`` the ``L``-th largest value
    of row ``i``, so ties at the cut are all kept). ``complete[i]`` says the list holds
    every positive partner. When removals exhaust an incomplete list it is rebuilt from
    row ``i`` over the players still alive.
    """

    def __init__(self, phi: np.ndarray, k: int, length: int | None = None, chunk_elems: int = 16_000_000):
        self.phi = phi
        self.k = k
        n = phi.shape[0]
        self.L = min(max(length or (2 * k + 8), k), max(n - 1, 1))
        self.lists: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
        self.complete = np.zeros(n, dtype=bool)
        self.ptr = np.zeros(n, dtype=np.int64)
        rows_per = max(1, chunk_elems // max(n, 1))
        for s in range(0, n, rows_per):
            X = np.array(phi[s : s + rows_per], dtype=phi.dtype, copy=True)
            X[np.arange(X.shape[0]), np.arange(s, s + X.shape[0])] = -np.inf
            self._fill(np.arange(s, s + X.shape[0]), X)

    def _fill(self, players: np.ndarray, X: np.ndarray) -> None:
        n = X.shape[1]
        L = min(self.L, n)
        pos = X > 0
        n_pos = pos.sum(axis=1)
        t = np.partition(X, n - L, axis=1)[:, n - L] if n >= L and L > 0 else np.full(X.shape[0], -np.inf)
        mask = pos & (X >= t[:, None])
        r, c = np.nonzero(mask)
        v = X[r, c]
        order = np.lexsort((c, -v.astype(np.float64), r))
        r, c = r[order], c[order]
        counts = np.bincount(r, minlength=X.shape[0])
        bounds = np.cumsum(counts)[:-1]
        for p, lst, cnt, npos in zip(players.tolist(), np.split(c, bounds), counts, n_pos):
            self.lists[p] = lst.astype(np.int64)
            self.complete[p] = cnt == npos
            self.ptr[p] = 0

    def _refill(self, i: int, alive: np.ndarray) -> None:
        row = np.array(self.phi[i], dtype=self.phi.dtype, copy=True)[None, :]
        row[0, ~alive] = -np.inf
        row[0, i] = -np.inf
        self._fill(np.array([i]), row)

    def choice(self, i: int, alive: np.ndarray) -> np.ndarray:
        """``top_i(R)`` for ``R = {alive}``: the first ``k`` alive entries of the list."""
        while True:
            lst = self.lists[i]
            p = int(self.ptr[i])
            while p < lst.size and not alive[lst[p]]:
                p += 1
            self.ptr[i] = p
            out = [int(j) for j in lst[p:] if alive[j]][: self.k] if p < lst.size else []
            if len(out) == self.k or self.complete[i]:
                return np.asarray(out, dtype=np.int64)
            self._refill(i, alive)


def clamp_k(k: int, n: int) -> int:
    """``min(k, n - 1)`` (at least 1): the largest ``k`` that can change a top-``k`` game on ``n`` players.

    A choice set ``top_i(X)`` holds at most ``|X| - 1 <= n - 1`` partners, so every ``k >= n - 1``
    gives the same choice sets, and utilities ``u_i = (1/k) sum phi_ij`` that differ only by the
    common factor ``(n-1)/k`` (docs/method.md §4): the same preferences and the same
    partitions. Clamping keeps a huge ``k`` from allocating ``n x k`` tables.
    """
    return max(min(int(k), n - 1), 1)


def top_cover(
    phi: Any, k: int = 3, emit: Literal["smallest", "all"] = "smallest", *, progress: bool = False
) -> Partition:
    """Exact Top Covering: a core-stable partition of the top-k responsive game (docs/method.md §5).

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        Pairwise valuations; ``phi[i, j]`` is how much ``i`` values ``j``. Asymmetric
        matrices are allowed (preferences are directed); the diagonal is ignored.
        ``float32`` input is used without a float64 copy.
    k : int
        Number of top partners in a choice set (paper: 3).
    emit : {"smallest", "all"}
        Per round, emit the smallest sink SCC (ties by lowest member) or all sink SCCs.
        Both give the same partition (see the module docstring); ``"all"`` needs fewer
        rounds.
    progress : bool
        Show a progress bar (players assigned).

    Returns
    -------
    Partition
        ``meta``: ``method="top_cover"``, ``params={"k", "emit"}``, ``n_rounds``,
        and the package provenance.

    Notes
    -----
    ``B_i = top_i(R)`` is read from a per-player list of positive partners sorted by
    ``(-phi[i, j], j)`` with a pointer that skips removed players (lists are truncated at
    ``2k + 8`` entries plus ties and rebuilt from the row when exhausted), so a round
    costs time proportional to the players whose choice set changed, not ``O(n²)``.
    Players without a positive partner in R have ``B_i = ∅`` and become singletons.
    The result is core stable: if S blocked it, let ``C`` be the first emitted coalition
    meeting S; a member of S ∩ C can only prefer S if ``ch_i(S) = ch_i(R) ⊆ C`` and
    ``|S| < |C|``, so S ∩ C is closed in the strongly connected C, i.e. ``C ⊆ S`` —
    a contradiction.

    Raises
    ------
    InputError
        If ``phi`` is not a finite numeric square matrix, ``k < 1``, or ``emit`` is unknown.
    """
    arr = check_game_phi(phi)
    k_given = k = check_k(k)
    _check_emit(emit)
    n = arr.shape[0]
    k = clamp_k(k, n)
    lists = _PartnerLists(arr, k)
    alive = np.ones(n, dtype=bool)
    B = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        c = lists.choice(i, alive)
        B[i, : c.size] = c

    def update(removed: np.ndarray, alive_now: np.ndarray) -> np.ndarray:
        dead = ~alive_now
        Bc = np.where(B >= 0, B, 0)
        hit = alive_now & ((B >= 0) & dead[Bc]).any(axis=1)
        changed = np.flatnonzero(hit)
        for i in changed.tolist():
            c = lists.choice(i, alive_now)
            B[i] = -1
            B[i, : c.size] = c
        return changed

    labels, rounds = run_top_cover_loop(B, update, emit, progress, "top_cover")
    meta = _default_meta("top_cover", k=k_given, emit=emit)
    meta["n_rounds"] = rounds
    return Partition.from_labels(labels, meta)
