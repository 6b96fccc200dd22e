"""The driver that runs independent units of work through the stage cache.

A *job* is ``(unit, fn, args)``: ``fn(*args, unit.path)`` computes the unit into its
directory. :func:`run_units` skips finished units, clears crashed ones, runs the rest and
writes each unit's marker last (:class:`~hedonic_neurons.pipeline.cache.StageCache`).

The parallel backend is pluggable: :data:`BACKENDS` maps a name to a function
``backend(calls, n_jobs) -> iterator of seconds`` that runs the ``(fn, args)`` calls
(in any worker) and yields each call's seconds *in order*. ``"joblib"`` is the default;
wrap a call in ``joblib.parallel_config(backend="ray" | "dask")`` to reach a cluster, or
register another backend here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .cache import StageCache, Unit

__all__ = ["BACKENDS", "Job", "run_units", "timed_call"]

Job = tuple[Unit, Callable[..., Any], tuple[Any, ...]]
Call = tuple[Callable[..., Any], tuple[Any, ...]]


def timed_call(fn: Callable[..., Any], *args: Any) -> float:
    """Run ``fn(*args)``; return its wall seconds (what a worker sends back)."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _serial(calls: Sequence[Call], n_jobs: int) -> Iterator[float]:
    for fn, args in calls:
        yield timed_call(fn, *args)


def _joblib(calls: Sequence[Call], n_jobs: int) -> Iterator[float]:
    if n_jobs == 1 or len(calls) == 1:
        yield from _serial(calls, n_jobs)
        return
    from joblib import Parallel, delayed

    yield from Parallel(n_jobs=n_jobs, return_as="generator")(delayed(timed_call)(fn, *args) for fn, args in calls)


#: Backend name -> ``backend(calls, n_jobs)`` yielding each call's seconds in order.
BACKENDS: dict[str, Callable[[Sequence[Call], int], Iterator[float]]] = {"serial": _serial, "joblib": _joblib}


def run_units(jobs: Sequence[Job], cache: StageCache, *, n_jobs: int = 1, desc: str = "",
              progress: bool = False, backend: str = "joblib") -> list[Unit]:
    """Run the not-yet-done ``jobs`` (duplicates by key run once); return the units computed.

    Parameters
    ----------
    jobs : sequence of (unit, fn, args)
        ``fn(*args, unit.path)`` writes the unit's files.
    cache : StageCache
    n_jobs : int
        Parallel workers (``-1``: all cores).
    desc : str
        Progress-bar label.
    progress : bool
    backend : str
        A key of :data:`BACKENDS`.
    """
    from tqdm.auto import tqdm

    from ..errors import ConfigError

    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not known; expected one of {', '.join(BACKENDS)}.")
    todo: list[Job] = []
    seen: set[str] = set()
    for unit, fn, args in jobs:
        if unit.key in seen:
            continue
        seen.add(unit.key)
        if unit.done:
            cache.note_reused(unit)
        else:
            cache.begin(unit)
            todo.append((unit, fn, args))
    if not todo:
        return []
    with tqdm(total=len(todo), desc=desc, unit="unit", disable=not progress) as bar:
        seconds = BACKENDS[backend]([(fn, (*args, unit.path)) for unit, fn, args in todo], n_jobs)
        for (unit, _, _), secs in zip(todo, seconds):
            cache.finish(unit, seconds=secs)
            bar.update(1)
    return [u for u, _, _ in todo]
