"""Stage *capture*: layer records over the capture (in-distribution) and OOD pairs (docs/method.md §1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["encode", "stage_capture"]


def encode(tok: Any, pairs: pd.DataFrame, batch_size: int, max_length: int) -> list[dict[str, Any]]:
    """The pairs as tokenizer batches, in order."""
    from ...models import encode_pairs

    return encode_pairs(tok, pairs["query"].astype(str).tolist(), pairs["passage"].astype(str).tolist(),
                        max_length=max_length, batch_size=batch_size)


def stage_capture(model: Any, tok: Any, pairs_path: Path, layers: Sequence[int], out: Path, *, batch_size: int,
                  max_length: int, progress: bool = False) -> None:
    """Write ``layer{L}.safetensors`` (a :class:`~hedonic_neurons.records.LayerRecord` whose labels are
    the pairs' targets) for every layer into ``out``."""
    from ...models.capture import capture

    pairs = pd.read_parquet(pairs_path)
    records = capture(model, encode(tok, pairs, batch_size, max_length), list(layers),
                      labels=pairs["target"].to_numpy(np.float64), progress=progress)
    for layer, rec in records.items():
        rec.save(out / f"layer{layer}.safetensors")
