"""Incremental coalition sums of the best-response dynamics of the additively separable game.

The engine behind :func:`hedonic_neurons.game.ashg.nash_stable_partition` (docs/method.md §5):
exact coalition sums, utilities and the blocked, incrementally updated sums of
:class:`_BestResponseState`. Private; plain NumPy/SciPy.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

_CHUNK_ELEMS = 1 << 24  # entries of a float64 work tile (128 MB)
_B = 16  # columns per storage block of the coalition sums (two cache lines; measured best of 8..64)


# kinds of target in a best response
_JOIN = 0  # an existing coalition with >= 2 members (a column of S)
_PAIR = 1  # a player who is alone (forms a new column)
_ALONE = 2  # a new singleton


# ---------------------------------------------------------------------------- exact sums
def _membership_t(labels: np.ndarray) -> Any:
    """Sparse ``(K, n)`` membership matrix (row ``c`` marks coalition ``c``'s members)."""
    from scipy import sparse

    n = labels.shape[0]
    k = int(labels.max()) + 1 if n else 0
    return sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))


def _coalition_sums_t(arr: np.ndarray, labels: np.ndarray, players: np.ndarray) -> np.ndarray:
    """``T[c, t] = Σ_{j∈c} φ[players[t], j]``, shape (K, len(players)), float64, exact recomputation."""
    mt = _membership_t(labels)
    block = np.asarray(arr[players], dtype=np.float64)  # (b, n)
    return np.asarray(mt @ block.T)


def _utilities(arr: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``u_i(π(i)) = Σ_{j∈π(i)∖{i}} φ_ij`` for every player, shape (n,), float64."""
    n = arr.shape[0]
    u = np.zeros(n)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if members.size < 2:
            continue
        rows = max(1, _CHUNK_ELEMS // members.size)
        for s in range(0, members.size, rows):
            r = members[s : s + rows]
            u[r] = np.asarray(arr[np.ix_(r, members)], dtype=np.float64).sum(axis=1) - np.asarray(
                arr[r, r], dtype=np.float64
            )
    return u


# ---------------------------------------------------------------------------- dynamics
class _BestResponseState:
    """Labels and incremental coalition sums of the best-response dynamics.

    A coalition with two or more members owns a column ``c`` of ``S`` (logically (n, capacity),
    float64) with ``S[:, c] = Σ_{j∈c} φ[:, j]``; dead columns hold ``-inf``. ``S`` is stored
    in blocks of ``_B`` columns, ``blocks[c // _B, :, c % _B]`` (shape (capacity/_B, n, _B)):
    a column is then a run of ``n`` consecutive cache lines (a move streams it instead of
    touching one page per player) and a row is ``capacity/_B`` short contiguous pieces. A player who
    is alone owns no column: its "coalition sum" for player ``i`` is ``φ_ij`` itself. A move
    updates at most two columns with one column of φ each (``O(n)``); choosing a move
    reads one row of ``S`` and φ at the lone players (``O(K)``), so a sweep is ``O(n·K)``.
    ``rep[c]`` is the smallest member of column ``c``'s coalition (the tie-break key).
    """

    def __init__(self, arr: np.ndarray, symmetric: bool, labels: np.ndarray | None = None) -> None:
        n = arr.shape[0]
        self.arr = arr
        self.n = n
        self.symmetric = symmetric
        self.diag = np.diagonal(arr).astype(np.float64)
        self.slot = np.full(n, -1, dtype=np.int64)
        self.alone = np.ones(n, dtype=bool)
        self._alone_idx: np.ndarray | None = None
        self.blocks = np.empty((0, n, _B))
        self.size = np.zeros(0, dtype=np.int64)
        self.rep = np.zeros(0, dtype=np.int64)
        self.top = 0
        self._free: list[int] = []
        if labels is not None:
            order = np.argsort(labels, kind="stable")
            bounds = np.flatnonzero(np.diff(labels[order])) + 1
            for members in np.split(order, bounds):
                if members.size >= 2:
                    c = self._alloc()
                    col = np.zeros(n)
                    rows = max(1, _CHUNK_ELEMS // n)
                    for s in range(0, members.size, rows):
                        m = members[s : s + rows]
                        col += (arr[m].sum(axis=0, dtype=np.float64) if symmetric
                                else arr[:, m].sum(axis=1, dtype=np.float64))
                    self.col(c)[:] = col
                    self.size[c] = members.size
                    self.rep[c] = members.min()
                    self.slot[members] = c
                    self.alone[members] = False

    # -- columns
    def column(self, i: int) -> np.ndarray:
        """``φ[:, i]``: how much every player values ``i`` (a row when φ is symmetric)."""
        return self.arr[i] if self.symmetric else self.arr[:, i]

    @property
    def capacity(self) -> int:
        return self.blocks.shape[0] * _B

    def col(self, c: int) -> np.ndarray:
        """View of column ``c`` of ``S``, shape (n,)."""
        return self.blocks[c // _B, :, c % _B]

    def row(self, i: int) -> np.ndarray:
        """Copy of ``S[i, :top]``, shape (top,)."""
        return self.blocks[: -(-self.top // _B), i, :].flatten()[: self.top]

    def _alloc(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        if self.top == self.capacity:
            nb = max(2, 2 * self.blocks.shape[0])
            blocks = np.full((nb, self.n, _B), -np.inf)
            blocks[: self.blocks.shape[0]] = self.blocks
            self.blocks = blocks
            cap = self.capacity
            self.size = np.concatenate([self.size, np.zeros(cap - self.size.size, dtype=np.int64)])
            self.rep = np.concatenate([self.rep, np.zeros(cap - self.rep.size, dtype=np.int64)])
        c = self.top
        self.top += 1
        return c

    def _release(self, c: int) -> None:
        self.col(c)[:] = -np.inf
        self.size[c] = 0
        heapq.heappush(self._free, c)

    def compact(self) -> None:
        """Renumber live columns ``0..K'-1`` when more than half of ``0..top-1`` are dead."""
        live = np.flatnonzero(self.size[: self.top] > 0)
        if live.size * 2 >= self.top:
            return
        for new, old in enumerate(live.tolist()):  # new <= old: never overwrites a live column unread
            if new != old:
                self.col(new)[:] = self.col(old)
        for c in range(live.size, self.top):
            self.col(c)[:] = -np.inf
        remap = np.full(self.top, -1, dtype=np.int64)
        remap[live] = np.arange(live.size)
        in_col = self.slot >= 0
        self.slot[in_col] = remap[self.slot[in_col]]
        self.size[: live.size] = self.size[live]
        self.size[live.size : self.top] = 0
        self.rep[: live.size] = self.rep[live]
        self.top = int(live.size)
        self._free = []

    @property
    def alone_idx(self) -> np.ndarray:
        if self._alone_idx is None:
            self._alone_idx = np.flatnonzero(self.alone)
        return self._alone_idx

    # -- the dynamics
    def utility(self, i: int) -> float:
        c = int(self.slot[i])
        return float(self.blocks[c // _B, i, c % _B] - self.diag[i]) if c >= 0 else 0.0

    def best_response(self, i: int, tol: float) -> tuple[int, int, float] | None:
        """``(kind, target, gain)`` of ``i``'s best move, or ``None`` when none gains more than ``tol``.

        Targets: an existing coalition (its column), a player who is alone (joining it),
        or a new singleton (only when ``i`` is not alone already). Among targets of equal
        value the one whose smallest member is smallest wins (a new singleton's member is
        ``i``); staying wins every tie (a move must gain more than ``tol``).
        """
        own = int(self.slot[i])
        u = self.utility(i)
        best = -np.inf
        row = self.row(i)
        if own >= 0:
            row[own] = -np.inf
        if self.top:
            best = float(row.max())
        idx = self.alone_idx
        vals = np.asarray(self.arr[i, idx], dtype=np.float64)
        if own < 0:  # i is alone: itself is not a target
            vals[np.searchsorted(idx, i)] = -np.inf
        if vals.size:
            best = max(best, float(vals.max()))
        if own >= 0:
            best = max(best, 0.0)
        gain = best - u
        if not gain > tol:
            return None
        choice: tuple[int, int, int] | None = None  # (rep, kind, target)
        if self.top and best != -np.inf:
            ties = np.flatnonzero(row == best)
            if ties.size:
                c = int(ties[np.argmin(self.rep[ties])])
                choice = (int(self.rep[c]), _JOIN, c)
        ties = np.flatnonzero(vals == best)
        if ties.size:
            j = int(idx[ties[0]])  # idx is sorted: the first tie is the smallest player
            if choice is None or j < choice[0]:
                choice = (j, _PAIR, j)
        if own >= 0 and best == 0.0 and (choice is None or i < choice[0]):
            choice = (i, _ALONE, i)
        assert choice is not None
        return choice[1], choice[2], gain

    def move(self, i: int, kind: int, target: int) -> None:
        """Move ``i`` to ``target`` and update the (at most two) affected columns of ``S``."""
        col = self.column(i)
        own = int(self.slot[i])
        self.slot[i] = -1
        if own >= 0:
            self.size[own] -= 1
            if self.size[own] == 1:  # the coalition left behind is a lone player now
                other = int(np.flatnonzero(self.slot == own)[0])
                self.slot[other] = -1
                self.alone[other] = True
                self._release(own)
            else:
                self.col(own)[:] -= col
                if self.rep[own] == i:
                    self.rep[own] = int(np.argmax(self.slot == own))
        if kind == _JOIN:
            self.col(target)[:] += col
            self.size[target] += 1
            self.rep[target] = min(int(self.rep[target]), i)
            self.slot[i] = target
            self.alone[i] = False
        elif kind == _PAIR:
            c = self._alloc()
            np.add(self.column(target), col, out=self.col(c), dtype=np.float64)
            self.size[c] = 2
            self.rep[c] = min(i, target)
            self.slot[i] = self.slot[target] = c
            self.alone[i] = self.alone[target] = False
        else:
            self.alone[i] = True
        self._alone_idx = None

    def labels(self) -> np.ndarray:
        """Coalition labels, shape (n,) (not canonical; :class:`Partition` canonicalises)."""
        lab = self.slot.copy()
        alone = lab < 0
        lab[alone] = self.top + np.arange(int(alone.sum()))
        return lab
