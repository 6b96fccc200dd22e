"""The driver that runs independent units of a study on this machine, a Dask or a Ray cluster.

A *job* is ``(unit, fn, args)``: ``fn(*args, unit.path)`` computes the unit into its
directory. :func:`run_units` skips finished units and hands the rest to an
:class:`Executor`, which runs :func:`~hedonic_neurons.pipeline.cache.execute_unit` for each
in some process: that function takes the unit's lease, writes the unit's files and its
marker last, and sends back a :class:`~hedonic_neurons.pipeline.cache.UnitOutcome` (status,
wall seconds, peak RSS, worker, and on failure the worker's traceback). Scheduling is the
engines' own; nothing here orders or places work beyond asking for a GPU resource.

Backends (:data:`EXECUTORS`, ``executor.backend`` in the config; docs/scaling.md):

* ``"local"`` — in this process (``n_jobs=1``) or joblib's process pool (``n_jobs > 1``).
* ``"dask"`` — ``dask.distributed.Client(address)``, or a ``LocalCluster(n_workers,
  processes=True, threads_per_worker=1)``; ``client.submit`` + ``as_completed``; units that
  need the model ask for ``resources={"GPU": gpu_units}``.
* ``"ray"`` — ``ray.init(address)`` or a local instance; ``ray.remote(execute_unit)
  .options(num_cpus=1, num_gpus=…)`` + ``ray.wait``.

Workers must see the run directory at the same path (a shared filesystem).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, HedonicError
from ..io import atomic_write
from .cache import StageCache, Unit, UnitOutcome, execute_unit

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "Job", "LocalExecutor", "RayExecutor", "UnitFailedError",
           "open_executor", "require_backend", "run_units", "save_traceback"]

Job = tuple[Unit, Callable[..., Any], tuple[Any, ...]]

#: Backend -> (module to import, extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {"dask": ("dask.distributed", "dask"), "ray": ("ray", "ray")}


class UnitFailedError(HedonicError, RuntimeError):
    """One or more units failed in their worker; ``failures`` holds their outcomes (with tracebacks).

    The message names each unit (``stage:name``), its key, the worker and the error, and
    where the worker's traceback was saved; finished units stay cached, so a re-run resumes.
    """

    def __init__(self, failures: Sequence[UnitOutcome], logs: Sequence[Path | None] = ()) -> None:
        self.failures = tuple(failures)
        self.logs = tuple(logs)
        parts = []
        for i, f in enumerate(self.failures):
            log = self.logs[i] if i < len(self.logs) else None
            where = f"; worker traceback in {log}" if log is not None else ""
            parts.append(f"unit {f.stage}:{f.name} (key {f.key}) failed on {f.worker or '?'} [{f.backend}]: "
                         f"{f.error}{where}")
        super().__init__(" | ".join(parts) + ". Finished units are cached; a re-run resumes.")


def require_backend(backend: str) -> None:
    """Import the engine of ``backend`` or raise one :class:`ConfigError` naming the extra."""
    if backend not in EXECUTORS:
        raise ConfigError(f"executor.backend: {backend!r} is not known; expected one of {', '.join(EXECUTORS)}.")
    if backend in EXTRAS:
        # found, not imported: importing Ray patches the standard library (inspect.isgenerator),
        # which the offline corpus reads; the engine is imported when the executor starts
        module, extra = EXTRAS[backend]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise ConfigError(f"executor.backend: {backend!r} needs {module}, which is not installed; "
                              f"install it with: pip install 'hedonic-neurons[{extra}]'")


class Executor:
    """Runs units somewhere; started lazily on the first :meth:`map`, stopped by :meth:`close`.

    Parameters
    ----------
    n_workers : int
        Workers of a local pool or cluster (``-1``: all cores).
    address : str or None
        Cluster address (Dask, Ray); ``None`` starts a local one.
    gpu_units : float
        GPUs asked for by units that need the model (only on a cluster given by ``address``).
    """

    name: ClassVar[str] = ""

    def __init__(self, n_workers: int = 1, address: str | None = None, gpu_units: float = 0.0) -> None:
        self.n_workers = (os.cpu_count() or 1) if n_workers == -1 else max(int(n_workers), 1)
        self.address = address
        self.gpu_units = float(gpu_units)
        self.started = False

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.started = False

    def map(self, jobs: Sequence[Job], root: Path, *, lease_timeout: float, model: bool = False
            ) -> Iterator[tuple[int, UnitOutcome]]:
        """Run ``execute_unit`` for each job; yield ``(index, outcome)`` in completion order."""
        raise NotImplementedError

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _crashed(self, unit: Unit, exc: BaseException) -> UnitOutcome:
        """The outcome of a unit whose worker process died (nothing came back)."""
        return UnitOutcome(unit.stage, unit.name, unit.key, "failed", backend=self.name, worker="(worker died)",
                           error=f"{type(exc).__name__}: {exc}",
                           traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class LocalExecutor(Executor):
    """This process (one worker or a single unit), else joblib's process pool (today's default)."""

    name = "local"

    def map(self, jobs: Sequence[Job], root: Path, *, lease_timeout: float, model: bool = False
            ) -> Iterator[tuple[int, UnitOutcome]]:
        if self.n_workers == 1 or len(jobs) == 1:
            for i, (unit, fn, args) in enumerate(jobs):
                yield i, execute_unit(root, unit, fn, args, backend=self.name, lease_timeout=lease_timeout)
            return
        from joblib import Parallel, delayed

        def indexed(i: int, unit: Unit, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[int, UnitOutcome]:
            return i, execute_unit(root, unit, fn, args, backend=self.name, lease_timeout=lease_timeout)

        seen: set[int] = set()
        try:
            for i, out in Parallel(n_jobs=self.n_workers, return_as="generator_unordered")(
                    delayed(indexed)(i, u, fn, args) for i, (u, fn, args) in enumerate(jobs)):
                seen.add(i)
                yield i, out
        except Exception as exc:  # a pool worker died (TerminatedWorkerError): nothing came back for the rest
            for i, (unit, _, _) in enumerate(jobs):
                if i not in seen:
                    yield i, self._crashed(unit, exc)


class DaskExecutor(Executor):
    """``dask.distributed``: a ``Client`` of ``address`` or a ``LocalCluster`` of worker processes."""

    name = "dask"

    def start(self) -> None:
        from dask.distributed import Client, LocalCluster

        self._cluster = None
        if self.address is None:
            self._cluster = LocalCluster(n_workers=self.n_workers, processes=True, threads_per_worker=1,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        else:
            self.client = Client(self.address)
            if self.gpu_units > 0:
                workers = self.client.scheduler_info().get("workers", {}).values()
                if not any(w.get("resources", {}).get("GPU", 0) >= self.gpu_units for w in workers):
                    self.close()
                    raise ConfigError(
                        f"executor.resources.gpu_units: {self.gpu_units} GPU per model unit, but no worker of "
                        f"{self.address} offers resources GPU>={self.gpu_units} (start them with "
                        "`dask worker --resources GPU=1`).")
        self.started = True

    def close(self) -> None:
        if self.started:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()
        self.started = False

    def map(self, jobs: Sequence[Job], root: Path, *, lease_timeout: float, model: bool = False
            ) -> Iterator[tuple[int, UnitOutcome]]:
        from dask.distributed import as_completed

        if not self.started:
            self.start()
        resources = {"GPU": self.gpu_units} if model and self.gpu_units > 0 and self.address else None
        index = {}
        for i, (unit, fn, args) in enumerate(jobs):
            fut = self.client.submit(execute_unit, root, unit, fn, args, backend=self.name,
                                     lease_timeout=lease_timeout, resources=resources, pure=False,
                                     key=f"{unit.stage}-{unit.key}-{uuid.uuid4().hex[:8]}")
            index[fut.key] = (i, fut)
        for fut in as_completed([f for _, f in index.values()]):
            i = index[fut.key][0]
            if fut.status == "error":  # the worker died (KilledWorker) or the task could not run
                yield i, self._crashed(jobs[i][0], fut.exception())
            else:
                yield i, fut.result()


class RayExecutor(Executor):
    """Ray: ``ray.init(address)`` or a local instance; ``ray.remote(execute_unit)`` tasks."""

    name = "ray"

    def start(self) -> None:
        import ray

        self._owner = not ray.is_initialized()
        if self._owner:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.n_workers
            ray.init(address=self.address, **kwargs)
        self.started = True

    def close(self) -> None:
        if self.started and self._owner:
            import ray

            ray.shutdown()
        self.started = False

    def map(self, jobs: Sequence[Job], root: Path, *, lease_timeout: float, model: bool = False
            ) -> Iterator[tuple[int, UnitOutcome]]:
        import ray

        if not self.started:
            self.start()
        gpus = self.gpu_units if model and self.address else 0.0
        task = ray.remote(_execute_positional).options(num_cpus=1, num_gpus=gpus)
        refs = {task.remote(root, unit, fn, args, self.name, lease_timeout): i
                for i, (unit, fn, args) in enumerate(jobs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = refs[done[0]]
            try:
                yield i, ray.get(done[0])
            except Exception as exc:  # the worker died (WorkerCrashedError) or the task could not run
                yield i, self._crashed(jobs[i][0], exc)


def _execute_positional(root: Path, unit: Unit, fn: Callable[..., Any], args: tuple[Any, ...], backend: str,
                        lease_timeout: float) -> UnitOutcome:
    return execute_unit(root, unit, fn, args, backend=backend, lease_timeout=lease_timeout)


#: Backend name -> executor class (``executor.backend``).
EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "dask": DaskExecutor, "ray": RayExecutor}


def open_executor(backend: str = "local", *, n_workers: int = 1, address: str | None = None,
                  gpu_units: float = 0.0) -> Executor:
    """An (unstarted) executor of ``backend``; raises :class:`ConfigError` when its extra is missing."""
    require_backend(backend)
    return EXECUTORS[backend](n_workers=n_workers, address=address, gpu_units=gpu_units)


def save_traceback(root: Path, out: UnitOutcome) -> Path | None:
    """Write a failed unit's worker traceback to ``root/.failures/<stage>-<key>.txt``; return the path."""
    path = root / ".failures" / f"{out.stage}-{out.key}.txt"
    try:
        with atomic_write(path) as fh:
            fh.write(f"unit {out.stage}:{out.name} (key {out.key}) on {out.worker} [{out.backend}]\n{out.traceback}")
    except OSError:  # pragma: no cover
        return None
    return path


def run_units(jobs: Sequence[Job], cache: StageCache, *, executor: Executor | None = None, n_jobs: int = 1,
              desc: str = "", progress: bool = False, model: bool = False) -> list[Unit]:
    """Run the not-yet-done ``jobs`` (duplicates by key run once); return the units computed here.

    Parameters
    ----------
    jobs : sequence of (unit, fn, args)
        ``fn(*args, unit.path)`` writes the unit's files (in the worker).
    cache : StageCache
    executor : Executor, optional
        Where to run them (default: :class:`LocalExecutor` with ``n_jobs`` workers).
    n_jobs : int
        Workers of the default executor (``-1``: all cores).
    desc : str
        Progress-bar label.
    progress : bool
    model : bool
        The units need the model: on a cluster they ask for ``gpu_units`` GPUs.

    Raises
    ------
    UnitFailedError
        After every unit has finished or failed, naming each failed unit and key; the
        worker's traceback is in ``cache.root/.failures/<stage>-<key>.txt``.
    """
    from tqdm.auto import tqdm

    executor = executor or LocalExecutor(n_workers=n_jobs)
    todo: list[Job] = []
    seen: set[str] = set()
    for unit, fn, args in jobs:
        if unit.key in seen:
            continue
        seen.add(unit.key)
        if unit.done:
            cache.note_reused(unit)
        else:
            todo.append((unit, fn, args))
    if not todo:
        return []
    computed: list[Unit] = []
    failed: list[UnitOutcome] = []
    with tqdm(total=len(todo), desc=desc, unit="unit", disable=not progress) as bar:
        for i, out in executor.map(todo, cache.root, lease_timeout=cache.lease_timeout, model=model):
            unit = todo[i][0]
            cache.record(unit, out)
            if out.status == "computed":
                computed.append(unit)
            elif out.status == "failed":
                failed.append(out)
            bar.update(1)
    if failed:
        raise UnitFailedError(failed, [save_traceback(cache.root, f) for f in failed])
    return computed
