"""The null valuation: a random symmetric φ, the paper's "random pairwise valuations" control (docs/method.md §3)."""

from __future__ import annotations

import numpy as np

from .._validation import as_generator, check_positive_int
from ..provenance import provenance
from ..synergy import SynergyMatrix

__all__ = ["null_valuation"]


def null_valuation(n: int, seed: int | np.random.Generator) -> SynergyMatrix:
    """A random symmetric ``n × n`` valuation with standard-normal entries and zero diagonal.

    Parameters
    ----------
    n : int
        Number of players.
    seed : int or numpy.random.Generator
        Explicit randomness (same seed, same matrix).

    Returns
    -------
    SynergyMatrix
        ``meta["method"] == "null"``.
    """
    n = check_positive_int(n, "n")
    rng = as_generator(seed)
    upper = np.triu(rng.standard_normal((n, n)), 1)
    values = (upper + upper.T).astype(np.float32)
    return SynergyMatrix(values, provenance(method="null", n_players=n, seed=seed if isinstance(seed, int) else None))
