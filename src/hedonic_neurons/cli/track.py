"""``hedonic track``: coalition transitions across consecutive layers (paper §3.4, docs/method.md §7).

Reads layer records and partitions, writes per-layer-pair transition tables (CSV, JSON),
a Markdown summary (Table 3 layout), a long-format CSV for the table builders, a
threshold-sensitivity sweep, and the Sankey diagram (HTML with plotly.js embedded, PNG).

The input conventions (shared with ``hedonic evaluate``; implemented in ``cli/_shared.py``):

- **records** ``--records DIR``: a capture directory (``manifest.json`` written by
  ``hedonic capture`` / :func:`hedonic_neurons.models.capture.capture`) or a directory of
  ``layer{L}.safetensors`` files (:meth:`LayerRecord.save`).
- **partitions** ``--partitions PATH [PATH ...]``: JSON files or directories searched
  recursively for ``*.json``. The layer is the number in ``layer{L}`` in the file name or
  in its parent directory; the *label* (the method) is the rest of the name:
  ``layer7.pac_top_cover.json`` -> (7, "pac_top_cover"), ``layer7/hedonic_pas.seed0.json``
  -> (7, "hedonic_pas.seed0"). Each label is processed separately; ``--method`` keeps one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._shared import discover_partitions, load_layer_records, safe_label

__all__ = ["register", "run_track"]

_EPILOG = """\
inputs:
  --records DIR      a capture directory (manifest.json from 'hedonic capture') or a directory
                     of layer{L}.safetensors record files
  --partitions PATH  partition JSON files, or directories searched recursively for *.json.
                     The layer is read from 'layer{L}' in the file name or its parent folder,
                     the method label from the rest of the name:
                       layer7.pac_top_cover.json        -> layer 7, label 'pac_top_cover'
                       partitions/layer7/kmeans.seed0.json -> layer 7, label 'kmeans.seed0'
                     Every label is tracked separately (outputs in OUT/LABEL/); --method keeps one.

example:
  hedonic track --records runs/llama/records/train --partitions runs/llama/partitions \\
      --method pac_top_cover --alpha-hi 0.7 --alpha-lo 0.1 --out runs/llama/tracking

outputs (per label):
  transitions.L7-8.csv / .json   one row per source coalition (event, target, alpha, beta, matched)
  transitions.md / .csv          event percentages per layer pair (Table 3 layout)
  transitions_long.csv           [method, src_layer, dst_layer, event, percent, count, n_src]
  threshold_sweep.csv            event percentages over the --sweep-hi x --sweep-lo grid
  sankey.html / sankey.png       coalition flow (green persist, orange split, blue merge, grey vanish)
"""


def register(subparsers: Any) -> None:
    """Add the ``track`` sub-command."""
    p = subparsers.add_parser(
        "track",
        help="track coalitions across consecutive layers (interaction mass, transitions, Sankey)",
        description="Track coalitions across consecutive layers: interaction mass, alpha/beta, "
                    "maximum-weight matching, persist/split/merge/vanish (paper §3.4, docs/method.md §7).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("--records", required=True, metavar="DIR", help="layer records (see inputs below)")
    p.add_argument("--partitions", required=True, nargs="+", metavar="PATH",
                   help="partition JSON files or directories (see inputs below)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--method", default=None, help="keep only partitions with this label")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to use (default: all found)")
    p.add_argument("--alpha-hi", type=float, default=0.7, help="high threshold (default 0.7)")
    p.add_argument("--alpha-lo", type=float, default=0.1, help="low threshold (default 0.1)")
    p.add_argument("--write", choices=("weighted", "weights"), default="weighted",
                   help="source write: |W'_down|·E|a| (weighted, default) or |W'_down| (weights)")
    p.add_argument("--sweep-hi", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9],
                   help="alpha_hi grid of the threshold sweep")
    p.add_argument("--sweep-lo", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.3],
                   help="alpha_lo grid of the threshold sweep")
    p.add_argument("--top", type=int, default=None,
                   help="Sankey: keep the TOP largest coalitions per layer, pool the rest")
    p.add_argument("--no-png", action="store_true", help="skip the static Sankey image")
    p.set_defaults(func=run_track)


def _summary_table(tables: dict[tuple[int, int], Any]) -> Any:
    import pandas as pd

    rows = []
    for (sl, dl), t in sorted(tables.items()):
        pct, cnt = t.percentages(), t.counts()
        rows.append({"Layer→": f"{sl}→{dl}", "coalitions": t.n_src, "targets": t.n_dst,
                     **{e.capitalize(): f"{pct[e]:.1f}% ({cnt[e]})" for e in ("persist", "merge", "split", "vanish")}})
    return pd.DataFrame(rows)


def _check_track_args(args: argparse.Namespace) -> None:
    """Cheap checks before anything is read: thresholds, sweep grids, --top, and --out (never an input)."""
    from ..io import check_output_path

    if not 0 <= args.alpha_lo <= args.alpha_hi <= 1:
        raise InputError(f"--alpha-lo, --alpha-hi: expected 0 <= alpha_lo <= alpha_hi <= 1, got "
                         f"{args.alpha_lo} and {args.alpha_hi}.")
    for name, grid in (("--sweep-hi", args.sweep_hi), ("--sweep-lo", args.sweep_lo)):
        bad = [v for v in grid if not 0 <= v <= 1]
        if bad:
            raise InputError(f"{name}: expected values in [0, 1], got {bad}.")
    if args.top is not None and args.top < 1:
        raise InputError(f"--top: expected an integer >= 1, got {args.top}.")
    if args.layers is not None and any(layer < 0 for layer in args.layers):
        raise InputError(f"--layers: expected non-negative layers, got {args.layers}.")
    files = [p for p in args.partitions if Path(p).is_file()]
    dirs = [p for p in args.partitions if Path(p).is_dir()] + [args.records]
    check_output_path(args.out, "--out", inputs=files, input_dirs=dirs, kind="dir")


def run_track(args: argparse.Namespace) -> int:
    """Run ``hedonic track`` from parsed arguments; returns the exit code."""
    import pandas as pd

    from ..io import atomic_write
    from ..metrics.tables import to_markdown
    from ..tracking import (
        TRANSITION_RULE,
        sankey_figure,
        save_sankey_html,
        save_sankey_png,
        threshold_sweep,
        track,
        transitions_long,
    )

    _check_track_args(args)
    groups = discover_partitions(args.partitions, args.method)
    needed = sorted({layer for g in groups.values() for layer in g})
    if args.layers is not None:
        needed = sorted(set(needed) & set(args.layers))
    records = load_layer_records(args.records, needed)
    out = Path(args.out)
    for label, parts in sorted(groups.items()):
        parts_l = {k: v for k, v in parts.items() if args.layers is None or k in args.layers}
        tables = track(parts_l, records, alpha_hi=args.alpha_hi, alpha_lo=args.alpha_lo, write=args.write)
        d = out / safe_label(label)
        for (sl, dl), t in tables.items():
            t.save(d / f"transitions.L{sl}-{dl}.csv")
            t.save(d / f"transitions.L{sl}-{dl}.json", include_mass=True)
        summary = _summary_table(tables)
        with atomic_write(d / "transitions.md") as fh:
            fh.write(f"# Coalition transitions: {label}\n\n")
            fh.write(f"alpha_hi = {args.alpha_hi}, alpha_lo = {args.alpha_lo}, write = {args.write}; "
                     "percent of the source layer's coalitions (count).\n\n")
            fh.write(to_markdown(summary) + "\n\n## Rule\n\n```\n" + TRANSITION_RULE + "\n```\n")
        with atomic_write(d / "transitions.csv") as fh:
            pd.concat([t.summary() for t in tables.values()], ignore_index=True).to_csv(fh, index=False)
        with atomic_write(d / "transitions_long.csv") as fh:
            transitions_long(tables, method=label).to_csv(fh, index=False)
        with atomic_write(d / "threshold_sweep.csv") as fh:
            threshold_sweep(tables, args.sweep_hi, args.sweep_lo).to_csv(fh, index=False)
        fig = sankey_figure(tables, parts_l, top=args.top, title=f"Coalition flow ({label})")
        save_sankey_html(fig, d / "sankey.html")
        if not args.no_png:
            save_sankey_png(fig, d / "sankey.png")
        print(f"[{label}] {len(tables)} layer pairs -> {d}")
        print(to_markdown(summary))
    return 0

