"""``hedonic corpus``: build the offline docstring corpus (no download)."""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["register"]

_EPILOG = """\
example:
  hedonic corpus --out data/docstrings
  hedonic corpus --out /tmp/tiny --max-queries 50 --seed 1

Writes collection.tsv, queries.{train,ood}.tsv, qrels.{train,ood}.txt (TREC),
run.{train,ood}.tsv (MS MARCO), pairs.{train,ood}.jsonl, sources.tsv and manifest.json.
The same Python version and options give byte-identical files.
"""


def register(subparsers: Any) -> None:
    """Add the ``corpus`` sub-command to ``subparsers``."""
    p = subparsers.add_parser(
        "corpus",
        help="build the offline docstring corpus (MS MARCO-style files, no download)",
        description="Build query-passage pairs from Python standard-library docstrings: summary line as "
        "query, docstring body as relevant passage (grade 2), BM25 and random negatives (grade 1 "
        "when from the same module, else 0); split in-distribution / OOD by top-level package.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--max-queries", type=int, default=None, metavar="N",
                   help="at most N queries per split (seeded subsample; default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample and random negatives (default 0)")
    p.add_argument("--n-negatives", type=int, default=3, metavar="K", help="BM25 negatives per query (default 3)")
    p.add_argument("--n-random", type=int, default=1, metavar="R", help="random negatives per query (default 1)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..ir.corpus import SPLITS, build_offline_corpus

    t0 = time.perf_counter()
    corpus = build_offline_corpus(args.out, seed=args.seed, n_negatives=args.n_negatives,
                                  n_random=args.n_random, max_queries=args.max_queries)
    elapsed = time.perf_counter() - t0
    print(f"offline corpus written to {corpus.root} in {elapsed:.1f} s "
          f"(Python {corpus.manifest['python']}): {len(corpus.collection)} passages")
    for split in SPLITS:
        pairs = corpus.pairs[split]
        grades = pairs["relevance"].value_counts().sort_index()
        hist = ", ".join(f"grade {g}: {n}" for g, n in grades.items())
        print(f"  {split:<5} {len(corpus.queries[split]):>5} queries  {len(pairs):>6} pairs  ({hist})")
    return 0
