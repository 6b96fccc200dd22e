"""Synthetic explorer artifacts: random but schema-valid tables, for tests, benchmarks and a look
at the page without a run (docs/explorer.md). Nothing here is a measurement."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._validation import check_positive_int
from .artifacts import ExplorerArtifacts
from .schema import EXAMPLE_KINDS, EXAMPLE_SPLITS

__all__ = ["synthetic_artifacts"]

_WORDS = ("query", "term", "document", "ranking", "passage", "neuron", "layer", "retrieval", "index",
          "score", "relevance", "python", "function", "returns", "value", "list", "string", "token")
_FEATURES = ("bm25", "idf_sum", "tf_mean", "tf_max", "covered_query_term_ratio", "stream_length", "lmir_dir")


def _sizes(rng: np.random.Generator, n: int, n_coalitions: int) -> np.ndarray:
    """Random coalition sizes summing to n, with n_coalitions parts (at least one neuron each)."""
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_coalitions - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [n]]))


def synthetic_artifacts(
    *,
    layers: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = ("hedonic_pas_exact_top_cover", "random"),
    seeds: Sequence[int] = (0, 1),
    n_neurons: int = 40,
    n_coalitions: int = 8,
    n_examples: int = 3,
    n_texts: int = 50,
    hist_bins: int = 20,
    seed: int = 0,
) -> ExplorerArtifacts:
    """Random, schema-valid explorer tables for every (layer, method, seed).

    Parameters
    ----------
    layers, methods, seeds : sequences
        The partitions to make; lineage links each layer to the next in ``layers``.
    n_neurons : int
        Neurons per layer (each partition covers ``range(n_neurons)`` exactly once).
    n_coalitions : int
        Coalitions per partition (``<= n_neurons``).
    n_examples : int
        Examples per (coalition, split, kind); ``0`` for none.
    n_texts : int
        Number of distinct inputs (query, passage, target) the examples are drawn from.
    hist_bins : int
        Bins of each activation histogram.
    seed : int
        Seed of every random draw.

    Returns
    -------
    ExplorerArtifacts
        Validated tables; ``root`` is None (no image grids).
    """
    n_neurons = check_positive_int(n_neurons, "n_neurons", minimum=2)
    n_coalitions = check_positive_int(n_coalitions, "n_coalitions", minimum=2)
    if n_coalitions > n_neurons:
        from ..errors import InputError

        raise InputError(f"n_coalitions: expected at most n_neurons = {n_neurons}, got {n_coalitions}.")
    rng = np.random.default_rng(seed)
    queries = [" ".join(rng.choice(_WORDS, size=rng.integers(2, 6))) for _ in range(n_texts)]
    passages = [" ".join(rng.choice(_WORDS, size=rng.integers(20, 60))) for _ in range(n_texts)]
    # An input is a (query, passage) pair with its target, as in a capture set.
    input_q = rng.integers(0, n_texts, n_texts)
    input_p = rng.permutation(n_texts)
    input_target = rng.uniform(0, 1, n_texts)
    layers = sorted(int(x) for x in layers)
    co_parts, ex_parts, li_parts, pa_rows = [], [], [], []
    sizes_of: dict[tuple[int, str, int], int] = {}
    for method in methods:
        baseline = not method.startswith("hedonic")
        for s in seeds:
            for layer in layers:
                k = n_coalitions
                sizes = _sizes(rng, n_neurons, k)
                perm = rng.permutation(n_neurons).astype(np.int32)
                members = np.split(perm, np.cumsum(sizes)[:-1])
                pair = rng.normal(0.02, 0.05, k)
                null_mean = rng.normal(0.0, 0.01, k)
                null_sd = rng.uniform(0.005, 0.02, k)
                pair_q = rng.uniform(0, 1, k) ** 2
                ood_q = rng.uniform(0, 1, k)
                drop = rng.normal(0.01, 0.02, k)
                lo = rng.normal(-1, 0.3, k)
                edges = lo[:, None] + np.linspace(0, 1, hist_bins + 1)[None, :] * rng.uniform(1, 4, k)[:, None]
                counts = rng.integers(0, 200, (k, hist_bins))
                co_parts.append(pd.DataFrame({
                    "model": "synthetic-model", "task": "cqtr", "layer": layer, "method": method, "seed": s,
                    "coalition": np.arange(k), "size": sizes, "members": members,
                    "pair_insample": pair, "ratio_insample": rng.normal(0.5, 0.3, k),
                    "pair_heldout": np.where(rng.uniform(size=k) < 0.1, np.nan, pair * rng.uniform(0.5, 1.0, k)),
                    "ratio_heldout": rng.normal(0.4, 0.3, k),
                    "pair_null_mean": null_mean, "pair_null_sd": null_sd, "pair_q": pair_q,
                    "pair_significant": pair_q < 0.05,
                    "ood_drop": drop, "ood_drop_rel": drop / 0.2,
                    "ood_kind": rng.choice(["exact", "estimated"], size=k), "ood_q": ood_q,
                    "ood_significant": ood_q < 0.05,
                    "best_feature": rng.choice(_FEATURES, size=k), "best_feature_r2": rng.uniform(0, 0.6, k),
                    "act_hist_counts": list(counts), "act_hist_edges": list(edges), "image_grid": "",
                }))
                sizes_of[(layer, method, s)] = k
                pa_rows.append({"layer": layer, "method": method, "seed": s, "n_coalitions": k,
                                "largest_share": sizes.max() / n_neurons, "n_singletons": int((sizes == 1).sum()),
                                "null_largest_share": np.nan if baseline else rng.uniform(0.0, 0.3)})
                if n_examples:
                    m = k * len(EXAMPLE_SPLITS) * len(EXAMPLE_KINDS) * n_examples
                    grid = np.array(np.meshgrid(np.arange(k), np.arange(len(EXAMPLE_SPLITS)),
                                                np.arange(len(EXAMPLE_KINDS)), np.arange(n_examples),
                                                indexing="ij")).reshape(4, -1)
                    # top examples activate more than bottom ones, rank 0 the most extreme
                    spread = np.abs(rng.normal(0, 0.05, m)) + 0.1 * grid[3]
                    act = np.where(grid[2] == 0, 3 - spread, -3 + spread)
                    inputs = rng.integers(0, n_texts, m)
                    ex_parts.append(pd.DataFrame({
                        "layer": layer, "method": method, "seed": s, "coalition": grid[0],
                        "split": np.asarray(EXAMPLE_SPLITS)[grid[1]], "kind": np.asarray(EXAMPLE_KINDS)[grid[2]],
                        "rank": grid[3], "query": np.asarray(queries, dtype=object)[input_q[inputs]],
                        "passage": np.asarray(passages, dtype=object)[input_p[inputs]],
                        "activation": act, "target": input_target[inputs],
                    }))
            for src, dst in itertools.pairwise(layers):
                k, k2 = sizes_of[(src, method, s)], sizes_of[(dst, method, s)]
                event = rng.choice(["persist", "split", "merge", "vanish"], size=k, p=[0.4, 0.2, 0.2, 0.2])
                target = np.where(event == "vanish", -1, rng.integers(0, k2, k))
                rows = pd.DataFrame({"layer": src, "method": method, "seed": s, "source": np.arange(k),
                                     "target_layer": dst, "target": target, "alpha": rng.uniform(0, 1, k),
                                     "beta": rng.uniform(0, 1, k), "event": event})
                splits = rows[(rows["event"] == "split") & (k2 > 1)].copy()
                splits["target"] = (splits["target"] + 1) % k2  # a second piece
                li_parts.append(pd.concat([rows, splits], ignore_index=True))
    return ExplorerArtifacts.from_frames(
        pd.concat(co_parts, ignore_index=True),
        pd.concat(ex_parts, ignore_index=True) if ex_parts else None,
        pd.concat(li_parts, ignore_index=True) if li_parts else None,
        pd.DataFrame(pa_rows),
    )
