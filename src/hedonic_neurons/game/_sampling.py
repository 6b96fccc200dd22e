"""The coalition distribution D of paper §3.3, drawn as padded integer arrays.

A batch of coalitions is an ``int64`` array of shape ``(b, k_max)``: one coalition per
row, members sorted ascending, padded with ``-1`` at the end.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["all_coalitions", "sample_coalitions"]


def sample_coalitions(
    players: np.ndarray, count: int, size_range: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Draw ``count`` coalitions from D restricted to ``players``.

    D (paper §3.3): size ``s ~ Uniform{k_min, ..., k_max}``, then ``s`` distinct members
    uniformly from ``players``. Sizes are clipped to ``len(players)`` (a pool smaller than
    ``k_min`` yields coalitions of the whole pool). Draw order: one ``rng.integers`` call
    for the sizes, then member draws (rejection of rows with repeated members when the
    pool is large, a random permutation per row when it is small).

    Parameters
    ----------
    players : numpy.ndarray of int, shape (r,)
        The pool (e.g. the remaining players R).
    count : int
    size_range : (int, int)
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int64, shape (count, min(k_max, r))
        Sorted rows padded with ``-1``; no rows when ``r == 0`` or ``count <= 0``.
    """
    r = int(players.size)
    lo, hi = size_range
    hi_c, lo_c = min(hi, r), min(lo, r)
    if r == 0 or count <= 0:
        return np.zeros((0, min(hi, r)), dtype=np.int64)
    sizes = rng.integers(lo_c, hi_c + 1, size=count)
    w = hi_c
    cols = np.arange(w)[None, :]
    if r <= 4 * w:
        pos = np.empty((count, w), dtype=np.int64)
        step = max(1, 4_000_000 // r)
        for s in range(0, count, step):
            keys = rng.random((min(step, count - s), r))
            pos[s : s + step] = np.argpartition(keys, w - 1, axis=1)[:, :w]
    else:
        pos = rng.integers(0, r, size=(count, w))
        while True:
            srt = np.sort(np.where(cols < sizes[:, None], pos, r + cols), axis=1)
            dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
            if not dup.any():
                break
            bad = np.flatnonzero(dup)
            pos[bad] = rng.integers(0, r, size=(bad.size, w))
    mem = np.where(cols < sizes[:, None], players[pos], np.iinfo(np.int64).max)
    mem = np.sort(mem, axis=1)
    mem[mem == np.iinfo(np.int64).max] = -1
    return mem.astype(np.int64)


def all_coalitions(players: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Every subset of ``players`` with at least ``min_size`` members, as a padded array.

    Order: by size, then lexicographically. Only sensible for small pools (``2^r`` rows).
    """
    r = int(players.size)
    players = np.sort(players)
    rows: list[list[int]] = []
    for s in range(min_size, r + 1):
        rows.extend([list(c) for c in itertools.combinations(players.tolist(), s)])
    out = np.full((len(rows), r), -1, dtype=np.int64)
    for t, row in enumerate(rows):
        out[t, : len(row)] = row
    return out
