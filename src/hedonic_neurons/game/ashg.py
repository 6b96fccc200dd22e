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

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .._validation import as_generator, check_positive_int
from ..errors import InputError
from ..partition import Partition, _default_meta
from ._ashg_sums import (  # noqa: F401  (_JOIN, _PAIR: re-exported for the tests)
    _CHUNK_ELEMS,
    _JOIN,
    _PAIR,
    _BestResponseState,
    _membership_t,
    _utilities,
)
from .preferences import check_game_phi
from .stability import _check_partition

__all__ = ["ORDERS", "is_individually_stable", "is_nash_stable", "nash_stable_partition"]

ORDERS = ("random", "index")
"""Named sweep orders of :func:`nash_stable_partition` (an explicit permutation is also accepted)."""


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
