"""scikit-learn-style estimators over the partition functions.

``TopCover(k=3).fit(phi)``, ``PACTopCover(...).fit(phi)`` and ``NashStable().fit(phi)`` follow scikit-learn's
habits: hyper-parameters in ``__init__``, fitted state in trailing-underscore attributes
(``partition_``, ``labels_``, ``coalitions_``), ``fit`` returning ``self`` and
``fit_predict`` returning the labels. They are thin: the work is done by
:func:`~hedonic_neurons.game.top_cover` and :func:`~hedonic_neurons.game.pac_top_cover`,
:func:`~hedonic_neurons.game.nash_stable_partition`, and ``fit`` on the same input gives
exactly the function's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .._estimator import PartitionerBase
from ..errors import InputError
from ..partition import Partition
from .ashg import is_individually_stable, is_nash_stable, nash_stable_partition
from .pac import pac_top_cover
from .stability import BlockingRate, blocking_rate
from .top_cover import top_cover

__all__ = ["NashStable", "PACTopCover", "TopCover"]


@dataclass
class _PartitionEstimator(PartitionerBase):
    """The games' estimators: :class:`~hedonic_neurons._estimator.PartitionerBase` plus the measured
    blocking rate; ``fit(phi)`` takes the valuations, shape (n, n)."""

    def blocking_rate(self, phi: Any, n_samples: int = 100_000, seed: int = 0) -> BlockingRate:
        """Empirical blocking rate of the fitted partition on fresh draws (docs/method.md §5 (a))."""
        size_range = getattr(self, "size_range", (2, 10))
        return blocking_rate(phi, self._fitted(), k=self.k, n_samples=n_samples,  # type: ignore[attr-defined]
                             size_range=size_range, seed=seed)


@dataclass
class TopCover(_PartitionEstimator):
    """Exact Top Covering as an estimator (see :func:`~hedonic_neurons.game.top_cover`).

    Parameters
    ----------
    k : int
        Choice-set size (paper: 3).
    emit : {"smallest", "all"}
        Sink components emitted per round; the partition does not depend on it.

    Examples
    --------
    >>> import numpy as np
    >>> from hedonic_neurons.game import TopCover
    >>> phi = np.array([[0, 1, -1], [1, 0, -1], [-1, -1, 0]], dtype=float)
    >>> TopCover(k=1).fit(phi).labels_.tolist()
    [0, 0, 1]
    """

    k: int = 3
    emit: Literal["smallest", "all"] = "smallest"

    def _fit_partition(self, phi: Any) -> Partition:
        return top_cover(phi, k=self.k, emit=self.emit)


@dataclass
class PACTopCover(_PartitionEstimator):
    """PAC-Top-Cover (Algorithm 1) as an estimator (see :func:`~hedonic_neurons.game.pac_top_cover`).

    Parameters are those of :func:`~hedonic_neurons.game.pac_top_cover`; ``random_state``
    is its ``seed`` (scikit-learn's name).
    """

    k: int = 3
    m: int = 800_000
    omega: int = 80_000
    size_range: tuple[int, int] = (2, 10)
    sampler: Literal["uniform", "top", "weighted", "exhaustive"] = "uniform"
    emit: Literal["smallest", "all"] = "smallest"
    random_state: int = 0

    def _fit_partition(self, phi: Any) -> Partition:
        return pac_top_cover(phi, k=self.k, m=self.m, omega=self.omega, size_range=self.size_range,
                             sampler=self.sampler, emit=self.emit, seed=self.random_state)


@dataclass
class NashStable(_PartitionEstimator):
    """Best-response dynamics of the additively separable game as an estimator.

    See :func:`~hedonic_neurons.game.nash_stable_partition` (docs/method.md §5); ``random_state``
    is its ``seed`` (scikit-learn's name). The fitted partition's ``meta`` records
    ``sweeps``, ``moves``, ``converged`` and ``potential``.

    Parameters
    ----------
    init : "singletons" or Partition
    order : {"random", "index"} or array_like of int, shape (n,)
    max_sweeps : int
    tol : float or None
    random_state : int

    Examples
    --------
    >>> import numpy as np
    >>> from hedonic_neurons.game import NashStable
    >>> phi = np.array([[0, 2, -1], [2, 0, -1], [-1, -1, 0]], dtype=float)
    >>> NashStable().fit(phi).labels_.tolist()
    [0, 0, 1]
    """

    init: Any = "singletons"
    order: Any = "random"
    max_sweeps: int = 200
    tol: float | None = None
    random_state: int = 0

    def _fit_partition(self, phi: Any) -> Partition:
        return nash_stable_partition(phi, init=self.init, order=self.order, max_sweeps=self.max_sweeps,
                                     seed=self.random_state, tol=self.tol)

    def is_nash_stable(self, phi: Any) -> bool:
        """Whether the fitted partition is Nash stable for ``phi`` (:func:`~hedonic_neurons.game.is_nash_stable`)."""
        return is_nash_stable(phi, self._fitted(), tol=self.tol)

    def is_individually_stable(self, phi: Any) -> bool:
        """Whether the fitted partition is individually stable for ``phi``."""
        return is_individually_stable(phi, self._fitted(), tol=self.tol)

    def blocking_rate(self, phi: Any, n_samples: int = 100_000, seed: int = 0) -> BlockingRate:
        """Not defined here: the blocking rate belongs to the top-responsive game (docs/method.md §5)."""
        raise InputError(
            "NashStable.blocking_rate: the blocking rate is a top-responsive (top-k) notion; for the "
            "additively separable game use is_nash_stable(phi) or is_individually_stable(phi)."
        )
