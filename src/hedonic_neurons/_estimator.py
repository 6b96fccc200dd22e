"""The one scikit-learn-style partitioner base shared by the games and the baselines (not public).

``fit`` returns ``self``; ``partition_``, ``labels_`` and ``coalitions_`` read the fitted
:class:`~hedonic_neurons.partition.Partition`; ``get_params``/``set_params`` as in
scikit-learn. Subclasses are dataclasses whose ``init`` fields are their hyper-parameters and
implement ``_fit_partition``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .errors import InputError
from .partition import Partition

__all__ = ["PartitionerBase"]


@dataclass
class PartitionerBase:
    """Fitted-state handling shared by every partitioner estimator."""

    #: What ``fit`` takes, for messages: ``"phi"`` (a game's valuations) or ``"X"`` (profiles).
    _input_name: ClassVar[str] = "phi"

    partition_: Partition | None = field(default=None, init=False, repr=False)

    def _fit_partition(self, data: Any) -> Partition:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, data: Any, y: None = None) -> PartitionerBase:
        """Partition the players of ``data`` (the subclass says its shape).

        ``y`` is ignored; it is accepted so the estimator fits scikit-learn pipelines.
        """
        self.partition_ = self._fit_partition(data)
        return self

    def fit_predict(self, data: Any, y: None = None) -> np.ndarray:
        """Fit and return ``labels_``, shape (n_players,)."""
        return self.fit(data).labels_

    def _fitted(self) -> Partition:
        if self.partition_ is None:
            raise InputError(f"{type(self).__name__}: call fit({self._input_name}) before reading fitted attributes.")
        return self.partition_

    @property
    def labels_(self) -> np.ndarray:
        """Coalition index of every player, shape (n_players,) (largest coalition is 0)."""
        return self._fitted().labels

    @property
    def coalitions_(self) -> list[np.ndarray]:
        """Sorted member arrays, largest first."""
        return self._fitted().coalitions

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters, as scikit-learn's ``get_params``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def set_params(self, **params: Any) -> PartitionerBase:
        """Set hyper-parameters, as scikit-learn's ``set_params``; unknown names are refused."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"{type(self).__name__}: unknown parameter {name!r}; valid: {sorted(valid)}.")
            setattr(self, name, value)
        return self
