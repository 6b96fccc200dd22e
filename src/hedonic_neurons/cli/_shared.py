"""Helpers several commands share (imported downward by the command modules, never sideways)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError

__all__ = ["parse_overrides", "safe_label"]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as ``{dotted key: YAML value}``.

    Raises
    ------
    ConfigError
        An item without ``=`` or without a key.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected KEY=VALUE (e.g. discovery.seeds=[0,1]), got {item!r}.")
        out[key.strip()] = yaml.safe_load(value)
    return out


def safe_label(label: str) -> str:
    """A method label as a directory name (anything but ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
