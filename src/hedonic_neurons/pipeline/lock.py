"""Locks in a run directory: one for the whole run, one lease per unit being computed.

Both are a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on a local or a POSIX
shared filesystem), holding the owner's ``pid``, ``host``, start ``time`` and a random
``token``. While held, a daemon thread refreshes the file's mtime every quarter of the
timeout (a heartbeat), so a holder on another machine that died is recognised by a stale
mtime. A lock is **stale** when its owner runs on this host and its pid is dead, or when its
heartbeat is older than ``timeout`` seconds; a stale lock is moved aside (atomic rename,
checked by its token) and taken over. Locks are released in ``finally``.

* :class:`RunLock` — ``run_study`` holds ``<run>/.lock``; a second study on the same
  directory refuses with ``run directory D is in use by pid P on host H since T``.
* :class:`UnitLease` — the executor holds ``<run>/cache/.leases/<stage>-<key>.lock`` while a
  unit is computed, so two workers (or two runs sharing a cache) never compute the same
  unit at once; a second one waits, then finds the unit done and reuses it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import ArtifactError

__all__ = ["FileLock", "LockHeld", "RunLock", "UnitLease", "pid_alive"]


class LockHeld(ArtifactError):
    """The lock is held by a live owner (the message names it)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class FileLock:
    """An exclusive lock file with a heartbeat and stale-owner recovery (see the module doc).

    Parameters
    ----------
    path : path-like
        The lock file.
    timeout : float
        Seconds without a heartbeat after which the lock is stale.
    what : str
        How the message names the locked thing (``"run directory /x"``).
    info : dict, optional
        Extra JSON fields stored in the file (``{"unit": key}``).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 600.0, what: str = "",
                 info: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.what = what or str(self.path)
        self.info = dict(info or {})
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.held = False

    # ------------------------------------------------------------------ owner
    def owner(self) -> dict[str, Any] | None:
        """The current owner record (``pid``, ``host``, ``time``, ``token``), or None if free."""
        return _read(self.path)

    def is_stale(self, rec: dict[str, Any] | None) -> bool:
        """Owner dead on this host, or no heartbeat for ``timeout`` seconds."""
        if rec is None:  # unreadable (being written, or truncated by a crash): judge by age
            try:
                return time.time() - self.path.stat().st_mtime > min(self.timeout, 30.0)
            except FileNotFoundError:
                return True
        if rec.get("host") == socket.gethostname() and not pid_alive(int(rec.get("pid", -1))):
            return True
        try:
            return time.time() - self.path.stat().st_mtime > self.timeout
        except FileNotFoundError:
            return True

    def message(self, rec: dict[str, Any] | None) -> str:
        rec = rec or {}
        return (f"{self.what} is in use by pid {rec.get('pid', '?')} on host {rec.get('host', '?')} "
                f"since {rec.get('time', '?')}")

    # ------------------------------------------------------------------ acquire / release
    def try_acquire(self) -> bool:
        """Take the lock if free or stale; False when a live owner holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                rec = self.owner()
                if not self.is_stale(rec):
                    return False
                self._break(rec)
                continue
            rec = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token,
                   "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **self.info}
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(rec, fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
            self._start_heartbeat()
            return True
        return False

    def acquire(self, wait: float = 0.0, poll: float = 0.2) -> FileLock:
        """Take the lock, waiting up to ``wait`` seconds; else raise :class:`LockHeld`."""
        deadline = time.monotonic() + wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockHeld(self.message(self.owner()) + f"; remove {self.path} if that process is gone.")
            time.sleep(poll)
        return self

    def release(self) -> None:
        """Stop the heartbeat and remove the file (only if it is still ours)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self.held:
            rec = self.owner()
            if rec is not None and rec.get("token") == self.token:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False

    def _break(self, seen: dict[str, Any] | None) -> None:
        """Move a stale lock aside; restore it if it turned out to be a fresh one (race)."""
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        got = _read(aside)
        if seen is not None and got is not None and got.get("token") != seen.get("token"):
            # someone else broke it and took it between our read and our rename: give it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        period = max(self.timeout / 4.0, 0.05)

        def beat() -> None:
            while not self._stop.wait(period):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._beat = threading.Thread(target=beat, name=f"lease:{self.path.name}", daemon=True)
        self._beat.start()

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class RunLock(FileLock):
    """The lock of a run directory (``<run>/.lock``), held by ``run_study`` for the whole run.

    Examples
    --------
    >>> with RunLock(run_dir):                                        # doctest: +SKIP
    ...     ...   # a second study on run_dir raises LockHeld: "run directory ... is in use by pid ..."
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, timeout: float = 600.0) -> None:
        super().__init__(Path(run_dir) / ".lock", timeout=timeout, what=f"run directory {run_dir}")


class UnitLease(FileLock):
    """The lease of one unit (``<cache>/.leases/<stage>-<key>.lock``) while it is computed."""

    def __init__(self, cache_root: str | os.PathLike[str], stage: str, key: str, *, timeout: float = 600.0) -> None:
        super().__init__(Path(cache_root) / ".leases" / f"{stage}-{key}.lock", timeout=timeout,
                         what=f"unit {stage}:{key}", info={"unit": f"{stage}:{key}"})
