"""Evaluation metrics (docs/method.md §8). Submodules load lazily, so importing this package is cheap
and never imports torch:

- :mod:`.stats` — mean ± t-CI, paired t-tests, summaries;
- :mod:`.tables` — the paper's Tables 1, 2, 3, 6 and Markdown/CSV/LaTeX export;
- :mod:`.alignment` — coalition activations and feature alignment R²;
- :mod:`.predictivity` — ridge predictivity R² on the OOD split;
- :mod:`.synergy`, :mod:`.ood` — Pair/Ratio synergy and OOD ablation drop.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["alignment", "ood", "predictivity", "stats", "synergy", "tables"]

_SUBMODULES = frozenset(__all__)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
