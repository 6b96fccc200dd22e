"""Stage *stability*: the measured blocking rate ε̂ of a hedonic partition and the PAC check (docs/method.md §5.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...io import write_json

__all__ = ["pac_upper_bound", "work_stability"]


def pac_upper_bound(n_blocking: int, n_samples: int, delta: float) -> float:
    """One-sided ``1 − delta`` Clopper–Pearson upper bound of a blocking probability from
    ``n_blocking`` blocking coalitions among ``n_samples`` fresh draws."""
    from scipy.stats import beta

    if n_blocking >= n_samples:
        return 1.0
    return float(beta.ppf(1.0 - delta, n_blocking + 1, n_samples - n_blocking))


def work_stability(phi_path: str, part_path: str, k: int, size_range: list[int], n_samples: int, seed: int,
                   epsilon: float, delta: float, sampler: dict[str, Any] | None, out: Path) -> None:
    """Write ``stability.json``: ε̂, its 95% upper bound, the ``1 − delta`` bound and whether it is ≤ ``epsilon``;
    with ``sampler`` (``{"sampler": "top" | "weighted", "m", "omega"}``) also ε̂ under that sampler's D
    (``epsilon_sampler``, ``upper_sampler``; docs/method.md §5.3)."""
    from ... import game
    from ...partition import Partition
    from ...synergy import SynergyMatrix

    phi = SynergyMatrix.load(phi_path)
    part = Partition.from_json(part_path)
    # an independent stream: the seed is shifted so ε̂ never reuses the algorithm's draws
    br = game.blocking_rate(phi, part, k=k, n_samples=n_samples, size_range=(size_range[0], size_range[1]),
                            seed=int(np.random.default_rng([seed, 7]).integers(2**31)))
    bound = pac_upper_bound(int(br.n_blocking), int(br.n_samples), delta)
    own: dict[str, Any] = {}
    if sampler is not None and sampler.get("sampler") in ("top", "weighted"):
        bs = game.blocking_rate(phi, part, k=k, n_samples=n_samples, size_range=(size_range[0], size_range[1]),
                                seed=int(np.random.default_rng([seed, 8]).integers(2**31)), **sampler)
        own = {"sampler": sampler["sampler"], "epsilon_sampler": float(bs.epsilon), "upper_sampler": float(bs.upper)}
    write_json(out / "stability.json", {"epsilon": float(br.epsilon), "upper": float(br.upper),
                                        "n_samples": int(br.n_samples), "n_blocking": int(br.n_blocking),
                                        "pac_epsilon": epsilon, "pac_delta": delta, "pac_upper": bound,
                                        "pac_met": bool(bound <= epsilon), **own})
