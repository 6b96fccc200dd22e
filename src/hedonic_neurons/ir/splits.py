"""Reading pair files, filtering queries and splitting pairs for a study (docs/method.md §8.2).

A study needs four disjoint-ish sets of query–passage pairs: fine-tuning (``train``),
validation (``val``, whole queries so NDCG@10 is meaningful), activation capture
(``capture``, in distribution, preferably not trained on) and the out-of-distribution set
(``ood``). :func:`split_pairs` draws them from a pool with one seeded generator;
:func:`drop_long_queries` removes pairs whose query leaves no room for the passage;
:func:`heldout_split` divides the capture set by query into a discovery part (φ and the
partitions are built from it) and a held-out part (Pair and Ratio are measured on it,
docs/method.md §8.5).
Plain pandas/NumPy: the tokenizer is passed in as a token-counting function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["HeldoutSplit", "PairSplits", "drop_long_queries", "heldout_split", "read_pairs_file", "split_pairs",
           "subsample_queries"]


def read_pairs_file(path: str | os.PathLike[str], option: str, *, min_pairs: int = 1) -> pd.DataFrame:
    """Pairs (``qid, docid, query, passage, relevance``) from a ``.jsonl``/``.json`` or TSV file.

    Parameters
    ----------
    path : path-like
    option : str
        The argument or config key that named the file (``"--ood-pairs"``, ``"data.train"``),
        quoted in errors.
    min_pairs : int
        Fewer pairs than this is an error.

    Raises
    ------
    InputError
        The file does not exist or holds too few pairs.
    """
    from .loaders import load_pairs_jsonl, load_pairs_tsv

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{option}: file not found: {p} (expected a pairs file, .jsonl or .tsv).")
    pairs = load_pairs_jsonl(p) if p.suffix.lower() in (".jsonl", ".json") else load_pairs_tsv(p)
    if len(pairs) < min_pairs:
        raise InputError(f"{option}: expected at least {min_pairs} pairs, got {len(pairs)} in {p}.")
    return pairs.reset_index(drop=True)


def drop_long_queries(pairs: pd.DataFrame, count_tokens: Callable[[str], int], budget: int) -> tuple[pd.DataFrame, int]:
    """Drop pairs whose query alone takes more than ``budget`` tokens.

    Such a query leaves almost no room for the passage (the passage is what gets
    truncated), so the pair carries no signal for the lexical targets.

    Parameters
    ----------
    pairs : pandas.DataFrame with a ``query`` column
    count_tokens : callable str -> int
        Tokens of one query (called once per distinct query).
    budget : int

    Returns
    -------
    (kept pairs with a fresh index, number dropped)
    """
    queries = pairs["query"].astype(str)
    lengths = {q: int(count_tokens(q)) for q in queries.unique()}
    keep = queries.map(lengths).to_numpy() <= budget
    return pairs[keep].reset_index(drop=True), int((~keep).sum())


def subsample_queries(pairs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Whole queries in random order until at least ``n`` pairs (so NDCG@10 stays meaningful)."""
    uniq = pairs["qid"].astype(str).unique().tolist()
    qids = [uniq[i] for i in rng.permutation(len(uniq))]
    keep, total = [], 0
    sizes = pairs.groupby(pairs["qid"].astype(str)).size()
    for q in qids:
        if total >= n:
            break
        keep.append(q)
        total += int(sizes[q])
    return pairs[pairs["qid"].astype(str).isin(keep)].reset_index(drop=True)


@dataclass(frozen=True)
class PairSplits:
    """The four pair sets of a study (each with a fresh index)."""

    train: pd.DataFrame
    val: pd.DataFrame
    capture: pd.DataFrame
    ood: pd.DataFrame


def split_pairs(train_pool: pd.DataFrame, ood_pool: pd.DataFrame, *, n_train: int, n_val: int, n_capture: int,
                n_ood: int, seed: int | np.random.Generator, val_pool: pd.DataFrame | None = None) -> PairSplits:
    """Draw train / val / capture / OOD pairs from the in-distribution and OOD pools.

    Validation holds out whole queries from ``train_pool`` unless ``val_pool`` is given
    (then its first ``n_val`` pairs). Capture pairs come from what fine-tuning does not use
    when enough remain, else from the whole pool. OOD keeps whole queries when the pool is
    larger than ``n_ood``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    train_all = train_pool.reset_index(drop=True)
    order = rng.permutation(len(train_all))
    if val_pool is None:
        n_v = min(n_val, max(1, len(train_all) // 5))
        val = subsample_queries(train_all, n_v, rng)
        held = set(val["qid"].astype(str))
        rest = order[~train_all["qid"].astype(str).iloc[order].isin(held).to_numpy()]
    else:
        val = val_pool.iloc[:n_val]
        rest = order
    train = train_all.iloc[rest[:n_train]]
    pool = rest[n_train:] if len(rest) - n_train >= n_capture else rest
    capture = train_all.iloc[np.sort(rng.choice(pool, size=min(n_capture, len(pool)), replace=False))]
    ood = (ood_pool.reset_index(drop=True).iloc[:n_ood] if len(ood_pool) <= n_ood
           else subsample_queries(ood_pool, n_ood, rng))
    return PairSplits(*(df.reset_index(drop=True) for df in (train, val, capture, ood)))


@dataclass(frozen=True)
class HeldoutSplit:
    """Row indices of the capture set's discovery and held-out parts (docs/method.md §8.5).

    Attributes
    ----------
    discovery : numpy.ndarray of int64, shape (N_d,)
        Sorted row positions φ and the partitions are built from.
    heldout : numpy.ndarray of int64, shape (N_h,)
        Sorted row positions Pair and Ratio are evaluated on; no query has rows in both.
    seed : int
    fraction : float
        The requested held-out share of the rows.
    """

    discovery: np.ndarray
    heldout: np.ndarray
    seed: int
    fraction: float

    def to_dict(self) -> dict[str, object]:
        return {"discovery": self.discovery.tolist(), "heldout": self.heldout.tolist(), "seed": self.seed,
                "fraction": self.fraction}


def heldout_split(qids: pd.Series | np.ndarray | list[object], fraction: float = 0.5, *,
                  seed: int = 0) -> HeldoutSplit:
    """Split rows by query into a discovery and a held-out part (seeded; docs/method.md §8.5).

    Rule: the distinct query ids are put in a random order (``numpy.random.default_rng(seed)``
    permutation of the ids in order of first appearance); whole queries are moved to the
    held-out part in that order until it holds at least ``round(fraction · N)`` rows. Both parts
    are kept non-empty: at least one query goes to each side.

    Parameters
    ----------
    qids : array_like, shape (N,)
        Query id of each row (compared as strings).
    fraction : float in (0, 1)
        Held-out share of the rows (reached by whole queries, so approximately).
    seed : int

    Returns
    -------
    HeldoutSplit

    Raises
    ------
    InputError
        ``fraction`` outside (0, 1), or fewer than two distinct queries.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise InputError(f"fraction: expected a number in (0, 1), got {fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed: expected an int, got {seed!r}.")
    q = pd.Series(np.asarray(qids, dtype=object)).astype(str).to_numpy()
    uniq = pd.unique(q)
    if uniq.size < 2:
        raise InputError(f"qids: expected at least 2 distinct queries to split by query, got {uniq.size} "
                         f"over {q.size} rows.")
    order = uniq[np.random.default_rng(int(seed)).permutation(uniq.size)]
    counts = pd.Series(q).value_counts()
    want = max(1, round(float(fraction) * q.size))
    held: list[str] = []
    total = 0
    for name in order[:-1]:  # the last query always stays in discovery
        if total >= want:
            break
        held.append(str(name))
        total += int(counts[name])
    mask = np.isin(q, np.asarray(held, dtype=object))
    return HeldoutSplit(np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64),
                        int(seed), float(fraction))
