"""The game core: preferences, exact and PAC Top Covering, stability checks (docs/method.md §4–§5).

Pure NumPy/SciPy; importing it never imports torch.
"""

from __future__ import annotations

from .estimators import PACTopCover, TopCover
from .pac import SAMPLERS, pac_top_cover, sample_values
from .preferences import (
    PreferenceKey,
    choice_set,
    coalition_value,
    preference_key,
    top_partners,
    utility,
)
from .stability import (
    BlockingRate,
    blocking_rate,
    find_blocking_coalition,
    internally_stable,
    internally_unstable_coalitions,
    is_core_stable,
)
from .top_cover import top_cover

__all__ = [
    "SAMPLERS",
    "PACTopCover",
    "TopCover",
    "BlockingRate",
    "PreferenceKey",
    "blocking_rate",
    "find_blocking_coalition",
    "internally_stable",
    "internally_unstable_coalitions",
    "is_core_stable",
    "pac_top_cover",
    "sample_values",
    "choice_set",
    "coalition_value",
    "preference_key",
    "top_cover",
    "top_partners",
    "utility",
]
