"""Stages *split* and *psi*: the held-out split of the capture set and ψ(i, j) on each part
(docs/method.md §8.5).

The capture set is divided by query (:func:`hedonic_neurons.ir.splits.heldout_split`) into a
discovery part, the only rows the valuations, the partitions and the baselines see, and a
held-out part on which Pair and Ratio are measured. ψ(i, j) of a part is the exact pairwise
ablation synergy on the layer-local readout (the exact PAS of docs/method.md §3, which is
eq. 7 averaged over that part's inputs): the size-matched null of the held-out Pair and the
pooled Pair read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ...io import write_json

__all__ = ["SPLITS", "work_psi", "work_split"]

#: The two parts of the capture set.
SPLITS: tuple[str, str] = ("discovery", "heldout")


def work_split(pairs_path: str, record_paths: Sequence[str], layers: Sequence[int], fraction: float, seed: int,
               out: Path) -> None:
    """Write ``split.json`` (row positions of both parts, query counts) and the records of each part,
    ``discovery/layer{L}.safetensors`` and ``heldout/layer{L}.safetensors``.

    Parameters
    ----------
    pairs_path : str
        ``capture.parquet`` of the data stage (``qid`` per row, the records' row order).
    record_paths : sequence of str
        The capture record of each layer, in ``layers`` order.
    layers : sequence of int
    fraction : float
        Held-out share of the rows (by whole queries).
    seed : int
    out : pathlib.Path
    """
    from ...errors import ArtifactError
    from ...ir.splits import heldout_split
    from ...records import LayerRecord

    qids = pd.read_parquet(pairs_path, columns=["qid"])["qid"].astype(str)
    split = heldout_split(qids, fraction, seed=seed)
    for layer, path in zip(layers, record_paths):
        rec = LayerRecord.load(path)
        if rec.n_inputs != len(qids):
            raise ArtifactError(f"{path}: {rec.n_inputs} inputs but {pairs_path} has {len(qids)} pairs; "
                                "expected the capture records of those pairs, in order.")
        for name, rows in zip(SPLITS, (split.discovery, split.heldout)):
            (out / name).mkdir(parents=True, exist_ok=True)
            rec.subset(rows).save(out / name / f"layer{layer}.safetensors")
    write_json(out / "split.json", {
        **split.to_dict(), "n_discovery": int(split.discovery.size), "n_heldout": int(split.heldout.size),
        "queries_discovery": int(qids.iloc[split.discovery].nunique()),
        "queries_heldout": int(qids.iloc[split.heldout].nunique())})


def work_psi(record_path: str, out: Path) -> None:
    """Write ``psi.safetensors``: ψ(i, j) of one layer on one part (exact PAS, docs/method.md §3, §8.5)."""
    from ...records import LayerRecord
    from ...valuations import pas

    pas(LayerRecord.load(record_path), method="exact").save(out / "psi.safetensors")
