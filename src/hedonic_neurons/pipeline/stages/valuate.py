"""Stage *valuation*: the pairwise synergy matrix φ of one layer (docs/method.md §3)."""

from __future__ import annotations

from pathlib import Path

from ... import vocab

__all__ = ["work_valuation"]


def work_valuation(record_path: str, valuation: str, seed: int, out: Path) -> None:
    """Write ``phi.safetensors``: the :data:`~hedonic_neurons.vocab.VALUATIONS` entry ``valuation`` of the record."""
    from ...records import LayerRecord

    spec = vocab.VALUATIONS[vocab.check("valuation", valuation)]
    spec.compute(LayerRecord.load(record_path), seed).save(out / "phi.safetensors")
