"""Pairwise valuations φ_ij of a layer's players (docs/method.md §3): OCA, exact and second-order PAS.

Every valuation returns a :class:`~hedonic_neurons.synergy.SynergyMatrix`. The PAS forms
work on a captured :class:`~hedonic_neurons.records.LayerRecord`; :func:`pas_brute_force`
is the slow reference through the real model. Names load lazily: the NumPy-only
:func:`null_valuation` does not import torch.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_NAMES: dict[str, str] = {
    "first_order_product": "first_order",
    "null_valuation": "null",
    "oca": "coactivation",
    "marginals": "ablation_synergy",
    "pas": "ablation_synergy",
    "pas_pairs": "ablation_synergy",
    "pas_brute_force": "brute_force",
}

__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, globals())
