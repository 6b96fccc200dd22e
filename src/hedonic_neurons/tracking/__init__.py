"""Cross-layer tracking of coalitions (paper §3.4, docs/method.md §7).

Interaction mass between the coalitions of consecutive layers (:mod:`.mass`), transfer
ratios α/β, maximum-weight matching and the persist/split/merge/vanish classification
(:mod:`.transitions`), and Sankey diagrams (:mod:`.sankey`, imports plotly lazily).
Plain NumPy/SciPy/pandas: no torch.
"""

from __future__ import annotations

from typing import Any

from .mass import coalition_write, interaction_mass, interaction_mass_arrays
from .transitions import (
    EVENTS,
    TRANSITION_RULE,
    TransitionTable,
    classify_transitions,
    match_coalitions,
    threshold_sweep,
    track,
    transfer_ratios,
    transition_table,
    transitions_long,
)

__all__ = [
    "EVENTS",
    "TRANSITION_RULE",
    "TransitionTable",
    "classify_transitions",
    "coalition_write",
    "interaction_mass",
    "interaction_mass_arrays",
    "match_coalitions",
    "sankey_figure",
    "save_sankey_html",
    "save_sankey_png",
    "threshold_sweep",
    "track",
    "transfer_ratios",
    "transition_table",
    "transitions_long",
]

_SANKEY = {"sankey_figure", "save_sankey_html", "save_sankey_png"}


def __getattr__(name: str) -> Any:
    # plotly is imported only when a Sankey function is asked for.
    if name in _SANKEY:
        from . import sankey

        return getattr(sankey, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
