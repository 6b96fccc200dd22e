"""Figures shared by the reports: functions that take results and return a matplotlib figure,
and the one way to save a figure as PNG (atomically, then closed)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path
from .partition import Partition

__all__ = ["plot_size_distribution", "save_png"]


def save_png(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically and close it; return the path."""
    import matplotlib.pyplot as plt

    p = Path(path)
    try:
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return p


def plot_size_distribution(partitions: Mapping[str, Partition], title: str) -> Any:
    """Coalition size distribution on log-log axes, as the complementary cumulative count.

    For each size ``s`` the curve gives the number of coalitions with ``|C| >= s``: a
    straight line means a power (Zipf-like) law, the heavy tail the paper reports (App. G);
    a giant coalition shows as a long flat step at the right.

    Parameters
    ----------
    partitions : mapping label -> Partition
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    markers = "os^vD<>px*"
    for i, (label, part) in enumerate(partitions.items()):
        sizes, counts = np.unique(part.sizes, return_counts=True)
        at_least = counts[::-1].cumsum()[::-1]  # coalitions with |C| >= s
        ax.step(sizes, at_least, where="post", marker=markers[i % len(markers)], markersize=4, alpha=0.8,
                label=f"{label} (K={part.n_coalitions})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("coalition size s")
    ax.set_ylabel("number of coalitions with |C| ≥ s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
