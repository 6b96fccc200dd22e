"""Provenance carried by every artifact: package version, git hash, time, config hash."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = ["config_hash", "git_hash", "provenance"]


@lru_cache(maxsize=1)
def git_hash() -> str | None:
    """The git commit of the installed source tree, or ``None`` outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(obj: Any, length: int = 16) -> str:
    """A stable SHA-256 hash of a JSON-able object (keys sorted), truncated to ``length``."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def provenance(**extra: Any) -> dict[str, Any]:
    """A provenance record: package version, git hash, Python, time (UTC), plus ``extra``."""
    rec: dict[str, Any] = {
        "package": "hedonic-neurons",
        "version": __version__,
        "git": git_hash(),
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    rec.update(_jsonable(extra))
    return rec
