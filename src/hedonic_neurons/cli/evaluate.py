"""``hedonic evaluate``: intrinsic coalition synergy Pair(C) / Ratio(C) of partitions (App. G, DESIGN §8).

Exact on the layer-local readout of captured records (no model needed, torch only through
``valuations.pas``). Inputs follow the conventions of ``hedonic track``
(:mod:`hedonic_neurons.cli.track`). The extrinsic metrics that need the model and the OOD
data (OOD drop, alignment, predictivity) run in the study pipeline (``hedonic run``) through
:func:`hedonic_neurons.metrics.ood.ood_drop` and friends.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .track import _safe_label, discover_partitions, load_layer_records

__all__ = ["register", "run_evaluate"]

_EPILOG = """\
inputs (same conventions as 'hedonic track'):
  --records DIR      a capture directory (manifest.json) or a directory of layer{L}.safetensors
  --partitions PATH  partition JSON files or directories searched recursively for *.json;
                     layer from 'layer{L}' in the file name or parent folder, method label from
                     the rest: layer7.pac_top_cover.json -> layer 7, label 'pac_top_cover';
                     partitions/layer7/kmeans.seed0.json -> layer 7, label 'kmeans.seed0'

example:
  hedonic evaluate --records runs/llama/records/train --partitions runs/llama/partitions \\
      --min-size 2 --max-members 512 --out runs/llama/synergy

outputs:
  LABEL/synergy.L7.csv    one row per coalition: size, pair, ratio, ratio_defined, psi_sum, ...
  synergy_summary.csv/.md per (label, layer): coalitions evaluated, mean Pair and Ratio ± 95% t-CI
                          over coalitions, coalitions with an undefined Ratio (denominator ~0)
  synergy_long.csv        [method, layer, metric, value] (metric 'pair' / 'ratio': means over
                          coalitions) for the table builders (Table 6)
"""


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate partitions: Pair/Ratio synergy of coalitions (exact, local readout)",
        description="Intrinsic synergy of coalitions, Pair(C) and Ratio(C) (paper eq. 6-8), exact on "
                    "the layer-local readout of captured records (DESIGN §8).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("--records", required=True, metavar="DIR", help="layer records (see inputs below)")
    p.add_argument("--partitions", required=True, nargs="+", metavar="PATH",
                   help="partition JSON files or directories (see inputs below)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--method", default=None, help="keep only partitions with this label")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to evaluate (default: all)")
    p.add_argument("--min-size", type=int, default=2, help="skip smaller coalitions (default 2)")
    p.add_argument("--max-members", type=int, default=None,
                   help="estimate larger coalitions on a random subset of this many members")
    p.add_argument("--seed", type=int, default=0, help="seed of the member subsets (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    p.add_argument("--backend", choices=("auto", "numba", "torch"), default="auto",
                   help="inner loop of the exact PAS (default auto: numba on CPU)")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``hedonic evaluate`` from parsed arguments; returns the exit code."""
    import numpy as np
    import pandas as pd

    from ..errors import InputError
    from ..io import atomic_write
    from ..metrics.stats import mean_ci
    from ..metrics.synergy import coalition_synergy
    from ..metrics.tables import to_markdown

    groups = discover_partitions(args.partitions, args.method)
    layers = sorted({layer for g in groups.values() for layer in g})
    if args.layers is not None:
        layers = sorted(set(layers) & set(args.layers))
        if not layers:
            raise InputError(f"--layers: none of {args.layers} has a partition.")
    records = load_layer_records(args.records, layers)
    out = Path(args.out)
    summary: list[dict[str, Any]] = []
    long_rows: list[dict[str, Any]] = []
    for label, parts in sorted(groups.items()):
        for layer in sorted(k for k in parts if k in layers):
            df = coalition_synergy(records[layer], parts[layer], min_size=args.min_size,
                                   max_members=args.max_members, seed=args.seed, backend=args.backend,
                                   progress=True)
            with atomic_write(out / _safe_label(label) / f"synergy.L{layer}.csv") as fh:
                df.to_csv(fh, index=False)
            pm, pci = mean_ci(df["pair"].to_numpy(dtype=np.float64), args.confidence)
            rm, rci = mean_ci(df["ratio"].to_numpy(dtype=np.float64), args.confidence)
            n_nan = int((~df["ratio_defined"]).sum()) if len(df) else 0
            summary.append({"method": label, "layer": layer, "coalitions": len(df),
                            "pair": pm, "pair_ci": pci, "ratio": rm, "ratio_ci": rci,
                            "ratio_undefined": n_nan})
            meta = parts[layer].meta
            for metric, value in (("pair", pm), ("ratio", rm)):
                long_rows.append({"model": meta.get("model", ""), "task": meta.get("task", ""),
                                  "method": label, "seed": meta.get("seed", ""), "layer": layer,
                                  "metric": metric, "value": value})
            print(f"[{label}] layer {layer}: {len(df)} coalitions, Pair {pm:.4g} ± {pci:.2g}, "
                  f"Ratio {rm:.4g} ± {rci:.2g} ({n_nan} undefined)")
    sdf = pd.DataFrame(summary)
    with atomic_write(out / "synergy_summary.csv") as fh:
        sdf.to_csv(fh, index=False)
    shown = sdf.copy()
    shown["Pair"] = [f"{m:.4g} ± {c:.2g}" for m, c in zip(sdf["pair"], sdf["pair_ci"])]
    shown["Ratio"] = [f"{m:.4g} ± {c:.2g}" for m, c in zip(sdf["ratio"], sdf["ratio_ci"])]
    shown = shown[["method", "layer", "coalitions", "Pair", "Ratio", "ratio_undefined"]]
    with atomic_write(out / "synergy_summary.md") as fh:
        fh.write("# Coalition synergy (local readout, exact)\n\n"
                 f"Mean over coalitions of size >= {args.min_size}, ± {args.confidence:.0%} t-CI.\n\n")
        fh.write(to_markdown(shown) + "\n")
    with atomic_write(out / "synergy_long.csv") as fh:
        pd.DataFrame(long_rows, columns=["model", "task", "method", "seed", "layer", "metric", "value"]).to_csv(
            fh, index=False)
    print(to_markdown(shown))
    return 0
