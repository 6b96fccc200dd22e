"""Stage *partition*: a hedonic partition of one layer's φ (docs/method.md §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ... import vocab
from ...io import write_json

__all__ = ["work_partition"]


def work_partition(phi_path: str, method: str, options: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    """Write ``partition.json`` (with ``meta``) and ``summary.json``.

    ``method`` is a :data:`~hedonic_neurons.vocab.PARTITION_METHODS` name; ``options`` holds
    the common options (``k``, ``emit``, ``m``, ``omega``, ``size_range``, ``sampler``,
    ``seed``), of which the method takes the ones it declares.
    """
    from ...synergy import SynergyMatrix

    spec = vocab.PARTITION_METHODS[vocab.check("method", method)]
    opts = dict(options)
    if "size_range" in opts:
        opts["size_range"] = tuple(opts["size_range"])
    part = spec.run(SynergyMatrix.load(phi_path), **opts).with_meta(**meta)
    part.to_json(out / "partition.json")
    write_json(out / "summary.json", part.summary().to_dict())
