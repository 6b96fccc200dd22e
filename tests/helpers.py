"""Shared test helpers: one ``assert_close`` with explicit tolerances, tiny model builders."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_close(actual: Any, expected: Any, *, rtol: float, atol: float, msg: str = "") -> None:
    """Assert element-wise closeness with explicit tolerances (no defaults on purpose)."""
    a = np.asarray(actual.detach().cpu().numpy() if hasattr(actual, "detach") else actual, dtype=np.float64)
    e = np.asarray(expected.detach().cpu().numpy() if hasattr(expected, "detach") else expected, dtype=np.float64)
    assert a.shape == e.shape, f"{msg} shape mismatch: {a.shape} vs {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=msg)


def real_smollm2_dir() -> Any:
    """The converted SmolLM2 directory (``hedonic fetch-model smollm2``), or None when it is not fetched."""
    from hedonic_neurons.errors import ArtifactError
    from hedonic_neurons.models import smollm2

    try:
        return smollm2.path()
    except ArtifactError:
        return None
