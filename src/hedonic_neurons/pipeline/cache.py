"""A content-addressed stage cache: each unit of work is stored under a hash of its inputs.

A *unit* is one piece of a stage (one layer's capture, one φ, one partition ...). Its key
is :func:`~hedonic_neurons.provenance.config_hash` of the config subset it reads plus the
keys of the units it consumes, so changing one parameter changes the keys of exactly the
units downstream of it. A unit lives in ``root/<stage>/<key>/``; its files are written
atomically and the marker ``_DONE.json`` is written last, so a crash leaves a directory
without a marker, which the next run clears and redoes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import read_json, write_json
from ..provenance import config_hash, provenance

__all__ = ["StageCache", "Unit"]

MARKER = "_DONE.json"


@dataclass(frozen=True)
class Unit:
    """One cached unit of work.

    Attributes
    ----------
    stage : str
        Stage name (``"capture"``, ``"valuation"``, ``"partition"`` ...).
    name : str
        Human-readable label (``"layer3/oca"``) for plans and logs.
    key : str
        Hash of the unit's inputs.
    path : pathlib.Path
        Directory holding the unit's files.
    params : dict
        The inputs that were hashed (config subset and upstream keys).
    """

    stage: str
    name: str
    key: str
    path: Path
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return (self.path / MARKER).is_file()

    def file(self, name: str) -> Path:
        return self.path / name


class StageCache:
    """Content-addressed storage of stage outputs under ``root``.

    Parameters
    ----------
    root : path-like
        Cache directory (``<run dir>/cache`` by default; several runs may share one).

    Examples
    --------
    >>> cache = StageCache(tmp)                                       # doctest: +SKIP
    >>> unit = cache.unit("valuation", "layer3/oca", {"method": "oca", "capture": ck})
    >>> if not unit.done:
    ...     phi.save(cache.begin(unit) / "phi.safetensors"); cache.finish(unit, seconds=1.2)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.executed: list[str] = []
        self.reused: list[str] = []

    def unit(self, stage: str, name: str, params: dict[str, Any]) -> Unit:
        """The unit of ``stage`` whose inputs are ``params`` (JSON-able)."""
        key = config_hash({"stage": stage, "params": params})
        return Unit(stage, name, key, self.root / stage / key, params)

    def begin(self, unit: Unit) -> Path:
        """Prepare an empty directory for ``unit`` (clearing a crashed attempt); return it."""
        if unit.path.exists():
            shutil.rmtree(unit.path)
        unit.path.mkdir(parents=True, exist_ok=True)
        return unit.path

    def finish(self, unit: Unit, *, seconds: float, **info: Any) -> None:
        """Write the marker last: from now on ``unit.done`` is true."""
        write_json(
            unit.path / MARKER,
            {"stage": unit.stage, "name": unit.name, "key": unit.key, "seconds": round(seconds, 4),
             "params": unit.params, "info": info, **provenance()},
        )
        self.executed.append(f"{unit.stage}:{unit.name}")

    def note_reused(self, unit: Unit) -> None:
        self.reused.append(f"{unit.stage}:{unit.name}")

    def seconds(self, unit: Unit) -> float:
        """Time the unit took when it was computed (0 if unknown)."""
        try:
            return float(read_json(unit.path / MARKER).get("seconds", 0.0))
        except Exception:
            return 0.0

    def run(self, unit: Unit, compute: Any) -> bool:
        """Run ``compute(directory)`` unless ``unit`` is done; return True when it ran."""
        if unit.done:
            self.note_reused(unit)
            return False
        out = self.begin(unit)
        t0 = time.perf_counter()
        compute(out)
        self.finish(unit, seconds=time.perf_counter() - t0)
        return True
