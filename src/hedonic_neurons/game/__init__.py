"""The game core: preferences, exact and PAC Top Covering, the additively separable game,
stability checks and closure diagnostics (docs/method.md §4–§5).

Pure NumPy/SciPy; importing it never imports torch.
"""

from __future__ import annotations

from .ashg import is_individually_stable, is_nash_stable, nash_stable_partition
from .diagnostics import closure_null_share, k_sweep, null_phi_like, pooled_pair
from .estimators import NashStable, PACTopCover, TopCover
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
    "NashStable",
    "PACTopCover",
    "TopCover",
    "BlockingRate",
    "PreferenceKey",
    "blocking_rate",
    "closure_null_share",
    "find_blocking_coalition",
    "internally_stable",
    "internally_unstable_coalitions",
    "is_core_stable",
    "is_individually_stable",
    "is_nash_stable",
    "k_sweep",
    "nash_stable_partition",
    "null_phi_like",
    "pac_top_cover",
    "pooled_pair",
    "sample_values",
    "choice_set",
    "coalition_value",
    "preference_key",
    "top_cover",
    "top_partners",
    "utility",
]
