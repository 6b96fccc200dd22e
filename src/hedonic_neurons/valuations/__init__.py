"""Pairwise valuations φ_ij of a layer's players (DESIGN §3): OCA, exact and second-order PAS.

Every valuation returns a :class:`~hedonic_neurons.synergy.SynergyMatrix`. The PAS forms
work on a captured :class:`~hedonic_neurons.records.LayerRecord`; :func:`pas_brute_force`
is the slow reference through the real model.
"""

from __future__ import annotations

from .first_order import first_order_product
from .null import null_valuation
from .oca import oca
from .pas import marginals, pas, pas_pairs

__all__ = ["first_order_product", "marginals", "null_valuation", "oca", "pas", "pas_brute_force", "pas_pairs"]


def __getattr__(name: str):
    if name == "pas_brute_force":
        from .brute_force import pas_brute_force

        return pas_brute_force
    raise AttributeError(name)
