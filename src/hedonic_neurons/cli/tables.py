"""``hedonic tables``: the paper's Tables 1, 2, 3 and 6 and the paired tests across finished runs
(docs/method.md §8). A thin door onto :mod:`hedonic_neurons.metrics.crossrun`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

_EPILOG = """\
inputs:
  RUN_DIR    a finished 'hedonic run' directory: artifacts/results.csv (long format
             model, task, method, seed, layer, metric, value), config.yaml (model and task when the
             CSV lacks them) and, for Table 3, artifacts/transitions.csv

example:
  hedonic tables runs/llama3.1-8b_cqtr runs/llama3.1-8b_meantfl runs/mistral-7b_cqtr --out paper_tables
  hedonic tables runs/* --out paper_tables --reference hedonic_pas --digits 2

outputs (in --out):
  table1.{md,csv,tex}   extrinsic: OOD drop, alignment R² (relative drop, significant fraction when present)
  table2.{md,csv,tex}   predictivity R²
  table3.{md,csv,tex}   transitions: persist / merge / split / vanish, % of the source layer's coalitions
  table3_layers.*       the same with one row per source layer (the paper's layout of Table 3)
  table6.{md,csv,tex}   intrinsic synergy: Pair, Ratio (held-out and pooled variants when present)
  paired_tests.{md,csv,tex}  each hedonic method vs every other method, paired over (seed, layer),
                        per model x task and pooled: mean difference with 95% CI, t, p, Cohen's d_z
  tables.md             all of the above

Models are column groups, tasks row groups, methods rows. Each cell is the mean over the
(seed, layer) units ± the half-width of the 95% t-interval; a single unit has no interval;
'—' marks a metric the run does not have.
"""


def register(subparsers: Any) -> None:
    """Add the ``tables`` sub-command to ``subparsers``."""
    p = subparsers.add_parser(
        "tables",
        help="the paper's Tables 1, 2, 3, 6 and paired tests across finished runs (Markdown, CSV, LaTeX)",
        description="Combine finished runs (one model x one task each) into the paper's table layouts: "
        "models as column groups, tasks as row groups, methods as rows; plus paired t-tests of each "
        "hedonic method against every other method.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--reference", action="append", default=None, metavar="METHOD",
                   help="method to test against every other one (repeatable; default: every hedonic_* "
                   "method except the null-valuation control)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the t-intervals (default 0.95)")
    p.add_argument("--digits", type=int, default=3, help="significant digits of the means (default 3)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..metrics.crossrun import load_runs, write_tables

    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence: expected a number in (0, 1), got {args.confidence}.")
    if args.digits < 1:
        raise InputError(f"--digits: expected an integer >= 1, got {args.digits}.")
    df = load_runs(args.runs)
    files = write_tables(df, args.out, references=args.reference, confidence=args.confidence, digits=args.digits)
    pairs = df[["model", "task"]].drop_duplicates()
    print(f"{len(args.runs)} run(s), {len(pairs)} model x task combination(s), {df['method'].nunique()} method(s); "
          f"wrote {len(files)} files to {args.out}:")
    for f in files:
        print(f"  {f}")
    return 0
