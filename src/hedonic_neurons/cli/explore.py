"""``hedonic explore``: build (and open) a run's coalition explorer page (docs/explorer.md).

Reads ``RUN_DIR/artifacts/{coalitions,coalition_examples,lineage,partitions_summary}.parquet``
and writes one self-contained, offline ``explorer.html``.
"""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

__all__ = ["register", "run_explore"]

_EPILOG = """\
inputs (in RUN_DIR/artifacts/, written by hedonic_neurons.explorer.write_artifacts):
  coalitions.parquet           one row per coalition: members, Pair/Ratio (in-sample, held-out),
                               size-matched null and q-value, OOD drop, best feature, histogram
  coalition_examples.parquet   top/bottom-activating inputs per coalition (capture and OOD sets)
  lineage.parquet              links to the coalitions of the next layer (alpha, beta, event)
  partitions_summary.parquet   one row per partition (sizes, largest share, null largest share)

example:
  hedonic explore runs/llama3.1-8b_cqtr --open
  hedonic explore runs/demo --out /tmp/demo_explorer.html

output:
  RUN_DIR/explorer.html (or --out): one HTML file, no network access needed; pick a layer,
  a method and a seed, sort the coalition table, click a coalition to open its card.
"""


def register(subparsers: Any) -> None:
    """Add the ``explore`` sub-command."""
    p = subparsers.add_parser(
        "explore",
        help="build the coalition explorer page of a run (one offline HTML file) and optionally open it",
        description="Build RUN_DIR/explorer.html from the run's per-coalition artifacts (docs/explorer.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory holding artifacts/*.parquet")
    p.add_argument("--out", default=None, metavar="PATH", help="output HTML file (default RUN_DIR/explorer.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--no-compress", action="store_true",
                   help="embed the data as plain JSON (larger file, readable source)")
    p.set_defaults(func=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    """Run ``hedonic explore`` from parsed arguments; returns the exit code."""
    from ..explorer import build_explorer

    page = build_explorer(args.run_dir, args.out, compress=not args.no_compress)
    size = page.stat().st_size
    print(f"explorer: {page} ({size / 1e6:.1f} MB)")
    if args.open:
        webbrowser.open(Path(page).resolve().as_uri())
    return 0
