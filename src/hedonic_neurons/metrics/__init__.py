"""Evaluation metrics (docs/method.md §8). Submodules load lazily, so importing this package is cheap
and never imports torch:

- :mod:`.stats` — mean ± t-CI, paired t-tests, summaries;
- :mod:`.tables` — the paper's Tables 1, 2, 3, 6 and Markdown/CSV/LaTeX export;
- :mod:`.alignment` — coalition activations and feature alignment R²;
- :mod:`.predictivity` — ridge predictivity R² on the OOD split;
- :mod:`.synergy`, :mod:`.ood` — Pair/Ratio synergy and OOD ablation drop;
- :mod:`.nulls` — size-matched null tests (per-coalition and pooled Pair, any extrinsic metric);
- :mod:`.crossrun` — the paper's tables and paired tests across finished runs (``hedonic tables``).

:func:`pair_null_test` (from :mod:`.nulls`) is also available here.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["alignment", "crossrun", "nulls", "ood", "pair_null_test", "predictivity", "stats", "synergy", "tables"]

_SUBMODULES = frozenset(__all__) - {"pair_null_test"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name == "pair_null_test":
        from .nulls import pair_null_test

        return pair_null_test
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
