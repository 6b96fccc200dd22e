"""pytest configuration: deterministic, offline, CPU-only test runs, and shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[ModuleType]:
    """torch limited to one thread for the requesting module, restored afterwards; yields ``torch``.

    Tiny models run faster on one thread, and the test machine is shared (two cores, several
    pytest processes), where torch's default thread pool oversubscribes it. Skips the test when
    torch is not installed. Use it per test (``def test_x(torch_one_thread)``) or per module
    (``pytestmark = pytest.mark.usefixtures("torch_one_thread")``); inside a test body,
    ``tests.tiny_models.one_thread()`` is the same thing as a context manager.
    """
    torch = pytest.importorskip("torch")
    from tests.tiny_models import one_thread

    with one_thread():
        yield torch
