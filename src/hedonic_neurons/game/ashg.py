"""The additively separable hedonic game: Nash-stable partitions by best response (docs/method.md §5).

Player ``i`` in coalition ``C`` has utility ``u_i(C) = Σ_{j∈C∖{i}} φ_ij`` (the sum of *all*
its valuations inside, unlike the top-responsive game of docs/method.md §4, which counts
only the best ``k``). A partition is

* *Nash stable* when no player strictly gains by moving to another coalition or to a new
  singleton;
* *individually stable* when no player strictly gains by such a move that every member of
  the receiving coalition accepts (no member's utility drops: ``φ_ji >= 0`` for all
  ``j`` there; a new singleton needs nobody's consent). Nash stable ⇒ individually stable.

For symmetric φ the within-coalition sum ``P(π) = ½ Σ_C Σ_{i≠j∈C} φ_ij`` is an exact
potential: when ``i`` moves from ``A`` to ``B`` it changes by
``Σ_{j∈B} φ_ij − Σ_{j∈A∖{i}} φ_ij``, which is exactly ``i``'s gain. Every improving move
raises ``P``, there are finitely many partitions, so best-response dynamics stop at a
Nash-stable partition. With asymmetric φ they may cycle (two players, ``φ_01 = 1``,
``φ_10 = −1``: 0 follows 1, 1 flees), so :func:`nash_stable_partition` caps the sweeps
and reports ``converged=False``.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .._validation import as_generator, check_positive_int
from ..errors import InputError
from ..partition import Partition, _default_meta
from .preferences import check_game_phi
from .stability import _check_partition

__all__ = ["ORDERS", "is_individually_stable", "is_nash_stable", "nash_stable_partition"]

ORDERS = ("random", "index")
"""Named sweep orders of :func:`nash_stable_partition` (an explicit permutation is also accepted)."""

_CHUNK_ELEMS = 1 << 24  # entries of a float64 work tile (128 MB)
_B = 16  # columns per storage block of the coalition sums (two cache lines; measured best of 8..64)

# kinds of target in a best response
_JOIN = 0  # an existing coalition with >= 2 members (a column of S)
_PAIR = 1  # a player who is alone (forms a new column)
_ALONE = 2  # a new singleton


# ---------------------------------------------------------------------------- checks
def _check_tol(tol: Any, arr: np.ndarray) -> float:
    """``None`` -> the float64 rounding bound ``4·n·ε·max|φ|`` of a sum of ``n`` entries."""
    if tol is None:
        if arr.size == 0:
            return 0.0
        scale = max(float(arr.max()), -float(arr.min()))
        return 4.0 * arr.shape[0] * float(np.finfo(np.float64).eps) * scale
    try:
        v = float(tol)
    except (TypeError, ValueError) as exc:
        raise InputError(f"tol: expected a finite number >= 0 or None, got {tol!r}.") from exc
    if not (math.isfinite(v) and v >= 0):
        raise InputError(f"tol: expected a finite number >= 0 or None, got {tol!r}.")
    return v


def _check_order(order: Any, n: int) -> np.ndarray | None:
    """``None`` for ``"random"``; otherwise the fixed visiting order, shape (n,)."""
    if isinstance(order, str):
        if order not in ORDERS:
            raise InputError(f"order: expected one of {ORDERS} or a permutation of 0..n-1, got {order!r}.")
        return None if order == "random" else np.arange(n, dtype=np.int64)
    arr = np.asarray(order)
    if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer) or (
        n and not np.array_equal(np.sort(arr), np.arange(n))
    ):
        raise InputError(
            f"order: expected 'random', 'index' or a permutation of 0..{n - 1} (shape ({n},)), "
            f"got {type(order).__name__} of shape {arr.shape}."
        )
    return arr.astype(np.int64)


def _is_symmetric(arr: np.ndarray) -> bool:
    """Exact symmetry test in row blocks (no n×n temporary)."""
    n = arr.shape[0]
    step = max(1, min(n, 512))
    for s in range(0, n, step):
        e = min(n, s + step)
        if not np.array_equal(arr[s:e, :], arr[:, s:e].T):
            return False
    return True


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


def _potential(arr: np.ndarray, labels: np.ndarray) -> float:
    """``½ Σ_C Σ_{i≠j∈C} φ_ij`` (the exact potential for symmetric φ)."""
    return 0.5 * float(_utilities(arr, labels).sum())


def _profitable_deviators(arr: np.ndarray, labels: np.ndarray, tol: float, consent: bool) -> np.ndarray:
    """Players with a move that raises their utility by more than ``tol``, shape (n,), bool.

    With ``consent`` a move into an existing coalition counts only when every member ``j``
    there has ``φ_ji >= 0`` (individual stability). Vectorised over tiles of players.
    """
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    sizes = np.bincount(labels)
    k = sizes.size
    mt = _membership_t(labels)
    diag = np.diagonal(arr).astype(np.float64)
    out = np.zeros(n, dtype=bool)
    step = max(1, _CHUNK_ELEMS // max(n, k))
    for s in range(0, n, step):
        players = np.arange(s, min(n, s + step))
        b = players.size
        lab = labels[players]
        T = np.asarray(mt @ np.asarray(arr[players], dtype=np.float64).T)  # (K, b)
        cols = np.arange(b)
        own = T[lab, cols] - diag[players]
        T[lab, cols] = -np.inf
        if consent:
            refusals = np.asarray(mt @ (np.asarray(arr[:, players]) < 0).astype(np.float64))  # (K, b)
            T[refusals > 0] = -np.inf
        best = T.max(axis=0) if k > 1 else np.full(b, -np.inf)
        alone = np.where(sizes[lab] > 1, 0.0, -np.inf)
        out[players] = np.maximum(best, alone) - own > tol
    return out


def is_nash_stable(phi: Any, partition: Partition | np.ndarray, *, tol: float | None = None) -> bool:
    """Whether no player gains by moving to another coalition or a new singleton (docs/method.md §5).

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        Pairwise valuations; ``u_i(C) = Σ_{j∈C∖{i}} φ_ij`` (diagonal ignored, asymmetric
        allowed).
    partition : Partition or array_like of int, shape (n,)
        The partition, or a label vector.
    tol : float or None
        A move is profitable when it raises the mover's utility by more than ``tol``.
        ``None`` (default) uses ``4·n·ε₆₄·max|φ_ij|``, a bound on the rounding of a sum of
        ``n`` entries, so exact ties up to rounding are not violations; ``0`` is strict.

    Returns
    -------
    bool

    Notes
    -----
    Coalition sums ``Σ_{j∈C} φ_ij`` for every player and coalition are recomputed exactly
    (sparse membership product, ``O(n²)`` time, tiles of ``O(n·K)`` memory), independently
    of :func:`nash_stable_partition`'s incremental sums.
    """
    arr = check_game_phi(phi)
    part = _check_partition(partition, arr.shape[0])
    return not bool(_profitable_deviators(arr, part.labels, _check_tol(tol, arr), consent=False).any())


def is_individually_stable(phi: Any, partition: Partition | np.ndarray, *, tol: float | None = None) -> bool:
    """Whether no player gains by a move the receiving coalition accepts (docs/method.md §5).

    A move of ``i`` into coalition ``C`` needs every ``j ∈ C`` to accept it: ``φ_ji >= 0``
    (its utility does not drop). A move to a new singleton needs no consent. Every
    Nash-stable partition is individually stable. Parameters as :func:`is_nash_stable`.
    """
    arr = check_game_phi(phi)
    part = _check_partition(partition, arr.shape[0])
    return not bool(_profitable_deviators(arr, part.labels, _check_tol(tol, arr), consent=True).any())


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


def nash_stable_partition(
    phi: Any,
    *,
    init: Literal["singletons"] | Partition = "singletons",
    order: Literal["random", "index"] | Sequence[int] | np.ndarray = "random",
    max_sweeps: int = 200,
    seed: int | np.random.Generator = 0,
    tol: float | None = None,
) -> Partition:
    """A Nash-stable partition of the additively separable game by best-response dynamics.

    Utilities are ``u_i(C) = Σ_{j∈C∖{i}} φ_ij`` (docs/method.md §5). In each sweep every
    player, in the sweep's order, makes its best move: to the coalition (existing, or a
    new singleton) of largest utility, if that beats staying by more than ``tol``. Sweeps
    repeat until one makes no move (the partition is then Nash stable) or ``max_sweeps``.

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        Pairwise valuations; ``phi[i, j]`` is how much ``i`` values ``j``. The diagonal is
        ignored; asymmetric matrices are allowed (then the dynamics may cycle).
        ``float32`` input is used without a float64 copy.
    init : "singletons" or Partition
        Start from all singletons, or from a given partition of the ``n`` players (warm start).
    order : {"random", "index"} or array_like of int, shape (n,)
        Visiting order in each sweep: a fresh permutation per sweep drawn from ``seed``,
        ``0..n-1``, or this fixed permutation.
    max_sweeps : int
        Cap on the number of sweeps.
    seed : int or numpy.random.Generator
        Randomness of ``order="random"`` (unused otherwise).
    tol : float or None
        A move must raise the mover's utility by more than ``tol``. ``None`` (default):
        ``4·n·ε₆₄·max|φ_ij|``, a bound on the rounding of a sum of ``n`` entries, so gains
        at rounding level count as ties; ``0`` compares exactly.

    Returns
    -------
    Partition
        ``meta``: ``method="nash_stable"``, ``params`` (``init``, ``order``, ``max_sweeps``,
        ``seed``, ``tol``), ``sweeps`` (including the final sweep without moves),
        ``moves``, ``converged``, ``potential`` (``½ Σ_C Σ_{i≠j∈C} φ_ij``, recomputed
        exactly), ``symmetric``, and the package provenance.

    Notes
    -----
    *Ties.* Staying wins every tie. Among targets of equal (exactly equal, in float64)
    value, the coalition whose smallest member has the smallest index wins, a new
    singleton counting as the mover's own index.

    *Convergence.* For symmetric φ, ``½ Σ_C Σ_{i≠j∈C} φ_ij`` is an exact potential: each
    move raises it by exactly the mover's gain, so the dynamics stop at a Nash-stable
    partition. For asymmetric φ they can cycle; after ``max_sweeps`` the result has
    ``meta["converged"] = False`` and a :class:`RuntimeWarning` is issued.

    *Cost.* Coalition sums ``S[i, C] = Σ_{j∈C} φ_ij`` are kept incrementally in float64
    (one ``n``-column per coalition of two or more players; lone players are read from
    φ directly), and a move updates two columns in ``O(n)``; a sweep is ``O(n·K)`` time
    for ``K`` coalitions and the extra memory ``O(n·K)``.

    Raises
    ------
    InputError
        If ``phi`` is not a finite square matrix, ``init`` is neither ``"singletons"``
        nor a partition of the ``n`` players, ``order`` is unknown or not a permutation,
        ``max_sweeps < 1``, ``seed`` is invalid, or ``tol`` is negative.

    Examples
    --------
    >>> import numpy as np
    >>> from hedonic_neurons.game import nash_stable_partition
    >>> phi = np.array([[0, 2, -1], [2, 0, -1], [-1, -1, 0]], dtype=float)
    >>> nash_stable_partition(phi).labels.tolist()
    [0, 0, 1]
    """
    arr = check_game_phi(phi)
    n = arr.shape[0]
    fixed = _check_order(order, n)
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps")
    rng = as_generator(seed)
    if isinstance(init, Partition):
        init_labels: np.ndarray | None = _check_partition(init, n).labels
        init_name = "partition"
    elif isinstance(init, str) and init == "singletons":
        init_labels, init_name = None, "singletons"
    else:
        raise InputError(f"init: expected 'singletons' or a Partition of the {n} players, got {init!r}.")
    tol_v = _check_tol(tol, arr)
    symmetric = _is_symmetric(arr)

    state = _BestResponseState(arr, symmetric, init_labels)
    sweeps = moves = 0
    converged = n == 0
    while not converged and sweeps < max_sweeps:
        seq = rng.permutation(n) if fixed is None else fixed
        moved = 0
        for i in seq.tolist():
            step = state.best_response(i, tol_v)
            if step is not None:
                state.move(i, step[0], step[1])
                moved += 1
        sweeps += 1
        moves += moved
        converged = moved == 0
        state.compact()
    labels = state.labels()
    if not converged:
        warnings.warn(
            f"nash_stable_partition: best-response dynamics did not converge in {max_sweeps} sweeps "
            f"({'symmetric' if symmetric else 'asymmetric'} phi, n = {n}); the result is not Nash stable.",
            RuntimeWarning,
            stacklevel=2,
        )
    order_name = order if isinstance(order, str) else "explicit"
    meta = _default_meta("nash_stable", init=init_name, order=order_name, max_sweeps=max_sweeps,
                         seed=seed if isinstance(seed, (int, np.integer)) else None, tol=tol_v)
    meta.update(sweeps=sweeps, moves=moves, converged=bool(converged), potential=_potential(arr, labels),
                symmetric=symmetric)
    return Partition.from_labels(labels, meta)
