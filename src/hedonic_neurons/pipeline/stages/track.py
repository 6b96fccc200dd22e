"""Stage *tracking*: coalition transitions across consecutive layers and the Sankey diagram (docs/method.md §7)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...io import write_json

__all__ = ["work_tracking"]


def work_tracking(part_paths: list[str], rec_paths: list[str], layers: list[int], alpha_hi: float,
                  alpha_lo: float, sankey: bool, label: str, out: Path) -> None:
    """Write ``transitions.csv``, ``events.csv``, ``threshold_sweep.csv`` and (with ``sankey``)
    ``sankey.html`` / ``sankey.png`` for one method's partitions across ``layers``."""
    from ... import tracking
    from ...partition import Partition
    from ...records import LayerRecord

    parts = {layer: Partition.from_json(p) for layer, p in zip(layers, part_paths)}
    recs = {layer: LayerRecord.load(p) for layer, p in zip(layers, rec_paths)}
    tables = tracking.track(parts, recs, alpha_hi=alpha_hi, alpha_lo=alpha_lo)
    pd.concat([t.to_dataframe() for t in tables.values()]).to_csv(out / "transitions.csv", index=False)
    tracking.transitions_long(tables).to_csv(out / "events.csv", index=False)
    tracking.threshold_sweep(tables).to_csv(out / "threshold_sweep.csv", index=False)
    if sankey:
        fig = tracking.sankey_figure(tables, parts, top=30, title=f"{label}: coalition flow across layers")
        tracking.save_sankey_html(fig, out / "sankey.html")
        try:
            tracking.save_sankey_png(fig, out / "sankey.png")
        except Exception as exc:  # the static image needs kaleido (or matplotlib); the HTML is always there
            write_json(out / "sankey_png_error.json", {"error": f"{type(exc).__name__}: {exc}"})
