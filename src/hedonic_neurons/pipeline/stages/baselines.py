"""Stage *baselines*: clustering baselines matched to a hedonic partition (docs/method.md §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ... import vocab

__all__ = ["work_baselines"]


def work_baselines(ref_path: str, record_path: str, baselines: list[str], seed: int, meta: dict[str, Any],
                   out: Path) -> None:
    """Write ``{baseline}.json`` for every name in ``baselines`` (:data:`~hedonic_neurons.vocab.BASELINES`),
    matched to the partition at ``ref_path`` on the activation profiles of ``record_path``."""
    from ... import baselines as bl
    from ...partition import Partition
    from ...records import LayerRecord

    for name in baselines:
        vocab.check("baseline", name)
    ref = Partition.from_json(ref_path)
    rec = LayerRecord.load(record_path)
    parts = bl.matched_baselines(ref, np.asarray(rec.a, dtype=np.float64).T, seed=seed)
    for name in baselines:
        parts[name].with_meta(**meta, baseline=name, matched_to=ref.meta.get("label")).to_json(out / f"{name}.json")
