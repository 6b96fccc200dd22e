"""A content-addressed stage cache: each unit of work is stored under a hash of its inputs.

A *unit* is one piece of a stage (one layer's capture, one φ, one partition ...). Its key
is :func:`~hedonic_neurons.provenance.config_hash` of the config subset it reads plus the
keys of the units it consumes, so changing one parameter changes the keys of exactly the
units downstream of it. Input files and model/adapter directories enter a key by content
(:meth:`StageCache.contents`: sha256 of every file, recorded once per ``(path, size,
mtime)`` in ``cache/.fingerprints.json``), so editing a data file in place reruns the stages
that read it.

A unit lives in ``root/<stage>/<key>/``; :func:`execute_unit` computes it wherever it runs
(this process, a joblib, Dask or Ray worker): it takes the unit's lease
(:class:`~hedonic_neurons.pipeline.lock.UnitLease`), clears a crashed attempt, lets the
stage write its files atomically and writes the marker ``_DONE.json`` last, with the unit's
wall time and peak RSS. A crash leaves a directory without a marker, which the next run
clears and redoes; a directory without a marker is never read.
"""

from __future__ import annotations

import datetime as _dt
import os
import resource
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import file_sha256, read_json, write_json
from ..provenance import config_hash, provenance

__all__ = ["MARKER", "StageCache", "Unit", "UnitOutcome", "execute_unit", "move_aside_stale", "write_marker"]

MARKER = "_DONE.json"
FINGERPRINTS = ".fingerprints.json"


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

    @property
    def label(self) -> str:
        """``"stage:name"`` as in ``executed`` / ``reused`` and the error messages."""
        return f"{self.stage}:{self.name}"

    def file(self, name: str) -> Path:
        return self.path / name


@dataclass(frozen=True)
class UnitOutcome:
    """What happened to one unit, as reported by the process that ran it.

    Attributes
    ----------
    stage, name, key : str
    status : {"computed", "reused", "failed"}
        ``"reused"``: another worker or run finished it while this one waited for its lease.
    wall_s : float
        Wall seconds of the stage function (0 unless computed).
    peak_rss_gb : float
        ``ru_maxrss`` of the process that ran the unit, read after it: the high-water RSS of
        that process so far (a pooled worker's includes the units it ran before).
    rss_growth_gb : float
        Growth of that high-water mark during the unit (0 when an earlier unit peaked higher).
    backend : str
    worker : str
        ``host:pid`` of the process that ran it.
    error : str
        ``"ExcType: message"`` of a failure, else ``""``.
    traceback : str
        The worker's formatted traceback of a failure, else ``""``.
    """

    stage: str
    name: str
    key: str
    status: str
    wall_s: float = 0.0
    peak_rss_gb: float = 0.0
    rss_growth_gb: float = 0.0
    backend: str = "local"
    worker: str = ""
    error: str = ""
    traceback: str = ""

    def timing(self) -> dict[str, Any]:
        """The ``artifacts/timings.json`` record (unit, stage, wall_s, peak_rss_gb, backend, worker)."""
        return {"unit": f"{self.stage}:{self.name}", "key": self.key, "stage": self.stage,
                "wall_s": round(self.wall_s, 4), "peak_rss_gb": round(self.peak_rss_gb, 4),
                "rss_growth_gb": round(self.rss_growth_gb, 4), "backend": self.backend, "worker": self.worker}


def _maxrss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0**3 if sys.platform == "darwin" else 1024.0**2)  # bytes on macOS, KiB on Linux


def write_marker(unit: Unit, *, seconds: float, **info: Any) -> None:
    """Write ``unit``'s marker (last, atomically): from now on ``unit.done`` is true."""
    write_json(
        unit.path / MARKER,
        {"stage": unit.stage, "name": unit.name, "key": unit.key, "seconds": round(seconds, 4),
         "params": unit.params, "info": info, **provenance()},
    )


def _clear(unit: Unit) -> None:
    if unit.path.exists():
        shutil.rmtree(unit.path)
    unit.path.mkdir(parents=True, exist_ok=True)


def execute_unit(root: str | os.PathLike[str], unit: Unit, fn: Callable[..., Any], args: tuple[Any, ...], *,
                 backend: str = "local", lease_timeout: float = 600.0) -> UnitOutcome:
    """Compute ``unit`` with ``fn(*args, unit.path)`` under its lease, marker last; never raises.

    Runs in whichever process the executor chose. Holds the unit's lease
    (:class:`~hedonic_neurons.pipeline.lock.UnitLease` under ``root/.leases``) while it works;
    if another process holds it, waits, and then reuses the unit when that one finished it.

    Returns
    -------
    UnitOutcome
        ``status="failed"`` carries the exception and this process's traceback (the driver
        reports them with the unit key).
    """
    from .lock import UnitLease

    worker = f"{socket.gethostname()}:{os.getpid()}"
    base: dict[str, Any] = {"stage": unit.stage, "name": unit.name, "key": unit.key, "backend": backend, "worker": worker}
    lease = UnitLease(root, unit.stage, unit.key, timeout=lease_timeout)
    try:
        lease.acquire(wait=float("inf"))
    except Exception as exc:  # pragma: no cover - filesystem trouble
        return UnitOutcome(**base, status="failed", error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc())
    try:
        if unit.done:
            return UnitOutcome(**base, status="reused")
        _clear(unit)
        rss0 = _maxrss_gb()
        t0 = time.perf_counter()
        try:
            fn(*args, unit.path)
        except Exception as exc:
            return UnitOutcome(**base, status="failed", wall_s=time.perf_counter() - t0,
                               error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        wall = time.perf_counter() - t0
        rss1 = _maxrss_gb()
        out = UnitOutcome(**base, status="computed", wall_s=wall, peak_rss_gb=rss1, rss_growth_gb=max(rss1 - rss0, 0.0))
        write_marker(unit, seconds=wall, timing=out.timing())
        return out
    finally:
        lease.release()


class StageCache:
    """Content-addressed storage of stage outputs under ``root``.

    Parameters
    ----------
    root : path-like
        Cache directory (``<run dir>/cache`` by default; several runs may share one).
    lease_timeout : float
        Seconds without a heartbeat after which a unit lease is stale.

    Examples
    --------
    >>> cache = StageCache(tmp)                                       # doctest: +SKIP
    >>> unit = cache.unit("valuation", "layer3/oca", {"method": "oca", "capture": ck})
    >>> cache.run(unit, lambda out: phi.save(out / "phi.safetensors"))
    """

    def __init__(self, root: str | os.PathLike[str], *, lease_timeout: float = 600.0) -> None:
        self.root = Path(root)
        self.lease_timeout = lease_timeout
        self.executed: list[str] = []
        self.reused: list[str] = []
        self._prints: dict[str, dict[str, Any]] | None = None
        self._prints_dirty = False

    def unit(self, stage: str, name: str, params: dict[str, Any]) -> Unit:
        """The unit of ``stage`` whose inputs are ``params`` (JSON-able)."""
        key = config_hash({"stage": stage, "params": params})
        return Unit(stage, name, key, self.root / stage / key, params)

    # ------------------------------------------------------------------ content fingerprints
    def _db(self) -> dict[str, dict[str, Any]]:
        if self._prints is None:
            f = self.root / FINGERPRINTS
            try:
                data = read_json(f) if f.is_file() else {}
            except Exception:
                data = {}
            self._prints = data if isinstance(data, dict) else {}
        return self._prints

    def file_sha256(self, path: str | os.PathLike[str]) -> str:
        """sha256 of a file, computed once per ``(path, size, mtime_ns)`` and remembered."""
        p = Path(path).resolve()
        st = p.stat()
        db = self._db()
        rec = db.get(str(p))
        if rec and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            return str(rec["sha256"])
        digest = file_sha256(p)
        db[str(p)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self._prints_dirty = True
        return digest

    def fingerprint(self, path: str | os.PathLike[str]) -> str:
        """Content hash of a file, or of a directory (every file below it: relative path and sha256)."""
        p = Path(path)
        if p.is_file():
            return self.file_sha256(p)
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return config_hash([[f.relative_to(p).as_posix(), self.file_sha256(f)] for f in files], length=64)

    def contents(self, paths: Iterable[str | None]) -> dict[str, str]:
        """``{path: content hash}`` of those ``paths`` that exist locally (names, hub ids and
        ``None`` are skipped: they enter keys by name)."""
        out: dict[str, str] = {}
        for s in paths:
            if s and Path(s).exists():
                out[str(s)] = self.fingerprint(s)
        return out

    def save_fingerprints(self) -> None:
        """Persist new file hashes (merged with what other processes recorded meanwhile)."""
        if not self._prints_dirty or self._prints is None:
            return
        f = self.root / FINGERPRINTS
        try:
            on_disk = read_json(f) if f.is_file() else {}
        except Exception:
            on_disk = {}
        merged = {**(on_disk if isinstance(on_disk, dict) else {}), **self._prints}
        write_json(f, merged)
        self._prints_dirty = False

    # ------------------------------------------------------------------ running units
    def begin(self, unit: Unit) -> Path:
        """Prepare an empty directory for ``unit`` (clearing a crashed attempt); return it."""
        _clear(unit)
        return unit.path

    def finish(self, unit: Unit, *, seconds: float, **info: Any) -> None:
        """Write the marker last: from now on ``unit.done`` is true."""
        write_marker(unit, seconds=seconds, **info)
        self.executed.append(unit.label)

    def note_reused(self, unit: Unit) -> None:
        self.reused.append(unit.label)

    def record(self, unit: Unit, outcome: UnitOutcome) -> None:
        """Count an outcome of :func:`execute_unit` as executed or reused."""
        if outcome.status == "computed":
            self.executed.append(unit.label)
        elif outcome.status == "reused":
            self.reused.append(unit.label)

    def seconds(self, unit: Unit) -> float:
        """Time the unit took when it was computed (0 if unknown)."""
        try:
            return float(read_json(unit.path / MARKER).get("seconds", 0.0))
        except Exception:
            return 0.0

    def timing(self, unit: Unit) -> dict[str, Any] | None:
        """The unit's timing record from its marker (``None`` for units made before timings)."""
        try:
            t = read_json(unit.path / MARKER).get("info", {}).get("timing")
        except Exception:
            return None
        return t if isinstance(t, dict) else None

    def run(self, unit: Unit, compute: Callable[[Path], Any], *, backend: str = "local") -> bool:
        """Run ``compute(directory)`` here unless ``unit`` is done; return True when it ran.

        Raises
        ------
        UnitFailedError
            Naming the unit and key, with the traceback.
        """
        from .executor import UnitFailedError, save_traceback

        if unit.done:
            self.note_reused(unit)
            return False
        out = execute_unit(self.root, unit, compute, (), backend=backend, lease_timeout=self.lease_timeout)
        self.record(unit, out)
        if out.status == "failed":
            raise UnitFailedError([out], [save_traceback(self.root, out)])
        return out.status == "computed"


def move_aside_stale(run_dir: str | os.PathLike[str], keep: Iterable[str | os.PathLike[str]],
                     patterns: Iterable[str]) -> Path | None:
    """Move every file of ``run_dir`` matching a glob of ``patterns`` that is not in ``keep`` to
    ``run_dir/artifacts/.stale/<UTC time>/<same relative path>``; return that directory (or None).

    Used after an export (``patterns`` such as ``"artifacts/partitions/**/*"``), so the
    artifacts tree holds exactly the files of the current plan; nothing is deleted.
    """
    run = Path(run_dir)
    kept = {os.path.abspath(k) for k in keep}
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = run / "artifacts" / ".stale" / stamp
    moved: list[Path] = []
    for pat in patterns:
        for f in sorted(run.glob(pat)):
            if not f.is_file() or ".stale" in f.relative_to(run).parts or os.path.abspath(f) in kept:
                continue
            target = dest / f.relative_to(run)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            moved.append(f)
    for d in sorted({p for f in moved for p in f.parents if run in p.parents}, key=lambda p: -len(p.parts)):
        if d.is_dir() and not any(d.iterdir()):  # drop directories the move emptied
            d.rmdir()
    return dest if moved else None
