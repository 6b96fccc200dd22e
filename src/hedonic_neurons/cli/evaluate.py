"""``hedonic evaluate``: coalition metrics of partitions (paper §4, App. G; docs/method.md §8).

Intrinsic (always available, no model): the synergy Pair(C) / Ratio(C), exact on the
layer-local readout of captured records, through :func:`hedonic_neurons.metrics.synergy.coalition_synergy`.

Extrinsic (optional, with ``--model``): for every partition

- OOD drop ``ΔM(C) = M(ℓ) − M(ℓ_{−C})`` of its largest coalitions, ablated through the whole
  model (:func:`hedonic_neurons.metrics.ood.ood_drop`; NDCG@10 via ``ir_measures`` for
  relevance, −MSE for CQTR and Mean-TF/L);
- feature alignment ``R²(C) = max_j corr²(a_C, f_j)`` against the LETOR features of the OOD
  pairs (:func:`hedonic_neurons.metrics.alignment.feature_alignment`);
- predictivity: ridge on coalition mean activations, fit in distribution, R² on the OOD pairs
  (:func:`hedonic_neurons.metrics.predictivity.predictivity`; needs ``--train-pairs``).

Every number comes from the evaluation core shared with ``hedonic run``
(:mod:`hedonic_neurons.evaluation`, options :class:`~hedonic_neurons.evaluation.EvaluationOptions`);
this module only turns arguments into inputs, calls it and writes files. The conventions
are those of the study pipeline:
long results ``[model, task, method, seed, layer, metric, value]`` with metrics ``pair``,
``ratio``, ``ood_drop``, ``align_r2``, ``predictivity_r2``, rendered as the paper's Tables 1,
2 and 6 by :mod:`hedonic_neurons.metrics.tables`. Inputs follow ``hedonic track``
(:mod:`hedonic_neurons.cli.track`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import vocab
from ..evaluation import EvaluationOptions
from ._shared import discover_partitions, load_layer_records, safe_label

__all__ = ["register", "run_evaluate"]

#: The evaluations this command computes (every one of :data:`hedonic_neurons.vocab.EVALUATIONS`
#: that is a property of a partition, not of the game).
METRICS: tuple[str, ...] = tuple(e for e in vocab.names("evaluation") if e != "stability")
LONG_COLUMNS: list[str] = ["model", "task", "method", "seed", "layer", "metric", "value"]
_DEFAULTS = EvaluationOptions()

_EPILOG = """\
inputs (same conventions as 'hedonic track'):
  --records DIR      a capture directory (manifest.json) or a directory of layer{L}.safetensors
  --partitions PATH  partition JSON files or directories searched recursively for *.json;
                     layer from 'layer{L}' in the file name or parent folder, method label from
                     the rest: layer7.pac_top_cover.json -> layer 7, label 'pac_top_cover';
                     partitions/layer7/kmeans.seed0.json -> layer 7, label 'kmeans.seed0'

example (intrinsic synergy only, no model):
  hedonic evaluate --records runs/llama/records/train --partitions runs/llama/partitions \\
      --min-size 2 --max-members 512 --out runs/llama/synergy

example (with the extrinsic metrics of docs/method.md §8):
  hedonic evaluate --partitions runs/llama/partitions --out runs/llama/eval \\
      --model ./llama-3.1-8b --adapter ./lora-cqtr --task cqtr \\
      --ood-pairs data/ood.jsonl --ood-qrels data/qrels.ood.txt \\
      --train-pairs data/capture.jsonl --train-records runs/llama/records/train \\
      --batch-size 8 --max-length 256

extrinsic mode (--model given):
  --ood-pairs FILE   JSONL or TSV pairs (query, passage, qid, docid, relevance; see
                     hedonic_neurons.ir.load_pairs_jsonl / load_pairs_tsv). Targets are computed
                     from the texts for --task (CQTR, Mean-TF/L) or are the relevance grades.
  --records DIR      here: records captured on the --ood-pairs, same rows in the same order
                     (checked by count). Without --records they are captured on the fly with
                     hedonic_neurons.models.capture.capture into OUT/records/ood (resumable).
                     Synergy, alignment and the OOD side of predictivity use these records.
  --ood-qrels FILE   TREC qrels for NDCG@10 (relevance); default: the pairs' own grades.
  --train-pairs FILE in-distribution pairs: the ridge of predictivity is fit on them, and their
                     passages join the OOD passages in the collection statistics (IDF, BM25,
                     LMIR) of the alignment features. Without it predictivity is skipped.
  --train-records DIR records captured on --train-pairs in the same order (default: captured on
                     the fly into OUT/records/train).
  OOD drop ablates the --ood-max-coalitions largest coalitions of size >= --min-size of each
  partition (one forward pass per coalition and batch).

outputs:
  LABEL/synergy.L7.csv      one row per coalition: size, pair, ratio, ratio_defined, psi_sum, ...
  LABEL/ood.L7.csv          one row per ablated coalition: size, metric, metric_full,
                            metric_ablated, drop
  LABEL/alignment.L7.csv    one row per coalition: size, r2, best_feature, corr
  LABEL/sizes.png           coalition size distribution per layer (log-log, |C| >= s counts)
  synergy_summary.csv/.md   per (label, layer): mean Pair and Ratio ± 95% t-CI over coalitions
  synergy_long.csv          [model, task, method, seed, layer, metric, value], metrics pair/ratio
  extrinsic_summary.csv     per (label, layer): ood_drop, ood_coalitions, align_r2,
                            predictivity_r2 (means over coalitions of size >= --min-size)
  results_long.csv          every metric in the long format of the study pipeline
  tables.md, table1_extrinsic.csv, table2_predictivity.csv, table6_synergy.csv
                            the paper's Table 1 / 2 / 6 layouts (hedonic_neurons.metrics.tables)
"""


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate partitions: Pair/Ratio synergy; with --model also OOD drop, alignment, predictivity",
        description="Coalition metrics of docs/method.md §8: intrinsic synergy Pair(C) and Ratio(C) (paper eq. 6-8), "
                    "exact on the layer-local readout of captured records; with --model also the OOD drop "
                    "(coalition ablated through the whole model), LETOR feature alignment R²(C) and ridge "
                    "predictivity (paper §4, Tables 1, 2, 6).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("--records", default=None, metavar="DIR",
                   help="layer records (required without --model; see inputs below)")
    p.add_argument("--partitions", required=True, nargs="+", metavar="PATH",
                   help="partition JSON files or directories (see inputs below)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--method", default=None, help="keep only partitions with this label")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to evaluate (default: all)")
    p.add_argument("--metrics", nargs="+", choices=METRICS, default=None, metavar="METRIC",
                   help="any of synergy, ood, alignment, predictivity (default: synergy; with --model all four)")
    p.add_argument("--min-size", type=int, default=_DEFAULTS.min_size,
                   help=f"skip smaller coalitions (default {_DEFAULTS.min_size}, as evaluation.min_size of 'hedonic run')")
    p.add_argument("--max-members", type=int, default=None,
                   help="estimate larger coalitions' synergy on a random subset of this many members")
    p.add_argument("--seed", type=int, default=0, help="seed of the member subsets (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    p.add_argument("--backend", choices=("auto", "numba", "torch"), default="auto",
                   help="inner loop of the exact PAS (default auto: numba on CPU)")
    g = p.add_argument_group("extrinsic metrics (need --model)")
    g.add_argument("--model", default=None, metavar="PATH", help="local base model directory")
    g.add_argument("--adapter", default=None, metavar="PATH", help="PEFT adapter directory (LoRA)")
    g.add_argument("--tokenizer", default=None, metavar="PATH", help="tokenizer directory (default: --model)")
    g.add_argument("--task", choices=vocab.names("task"), default=None,
                   help="task of the model: selects the targets and the metric M")
    g.add_argument("--ood-pairs", default=None, metavar="FILE", help="OOD pairs, JSONL or TSV")
    g.add_argument("--ood-qrels", default=None, metavar="FILE", help="TREC qrels of the OOD pairs (relevance)")
    g.add_argument("--train-pairs", default=None, metavar="FILE",
                   help="in-distribution pairs, JSONL or TSV (predictivity, collection statistics)")
    g.add_argument("--train-records", default=None, metavar="DIR",
                   help="records captured on --train-pairs (default: captured on the fly)")
    g.add_argument("--ood-max-coalitions", type=int, default=_DEFAULTS.max_coalitions, metavar="N",
                   help=f"ablate only the largest N coalitions of size >= --min-size (default "
                        f"{_DEFAULTS.max_coalitions}; 0: all)")
    g.add_argument("--ridge-alpha", default="1.0", metavar="ALPHA",
                   help="ridge penalty of predictivity, a float or 'cv' (default 1.0)")
    g.add_argument("--batch-size", type=int, default=16, metavar="B", help="pairs per forward pass (default 16)")
    g.add_argument("--max-length", type=int, default=256, metavar="T", help="truncation length in tokens (default 256)")
    g.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: CPU)")
    p.set_defaults(func=run_evaluate)


@dataclass
class _Extrinsic:
    """What the extrinsic metrics share across partitions (loaded once)."""

    model: Any
    batches: list[dict[str, Any]]
    pairs: Any  # pandas.DataFrame, the OOD pairs (N rows)
    targets: Any  # numpy (N,), the OOD targets of the task
    qrels: Any  # pandas.DataFrame or None
    features: Any  # pandas.DataFrame (N, F), LETOR features of the OOD pairs
    train_records: dict[int, Any] | None
    train_targets: Any  # numpy (N_train,) or None


def _metrics_of(args: argparse.Namespace) -> list[str]:
    """Check the option combination and return the metrics to compute (subset of :data:`METRICS`)."""
    from ..errors import InputError

    extrinsic_opts = {"--adapter": args.adapter, "--task": args.task, "--ood-pairs": args.ood_pairs,
                      "--ood-qrels": args.ood_qrels, "--train-pairs": args.train_pairs,
                      "--train-records": args.train_records}
    if args.model is None:
        given = [k for k, v in extrinsic_opts.items() if v is not None]
        if given:
            raise InputError(f"{', '.join(given)}: extrinsic options need --model (the model to ablate).")
        if args.records is None:
            raise InputError("--records: required without --model (the synergy is computed on records).")
        metrics = list(args.metrics) if args.metrics else ["synergy"]
        needs = [m for m in metrics if m != "synergy"]
        if needs:
            raise InputError(f"--metrics: {needs} need --model, --task and --ood-pairs.")
        return metrics
    missing = [k for k in ("--task", "--ood-pairs") if extrinsic_opts[k] is None]
    if missing:
        raise InputError(f"{', '.join(missing)}: required with --model (extrinsic evaluation).")
    if args.train_records is not None and args.train_pairs is None:
        raise InputError("--train-records: needs --train-pairs (the in-distribution targets).")
    if args.ood_max_coalitions < 0:
        raise InputError(f"--ood-max-coalitions: expected >= 0, got {args.ood_max_coalitions}.")
    return list(args.metrics) if args.metrics else list(METRICS)


def _ridge_alpha(text: str) -> float | str:
    """``--ridge-alpha``: a non-negative float, or ``"cv"`` (leave-one-out ``RidgeCV``)."""
    from ..errors import InputError

    if text == "cv":
        return "cv"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise InputError(f"--ridge-alpha: expected a non-negative float or 'cv', got {text!r}.")
    return value


def _load_pairs(path: str, option: str) -> Any:
    """Pairs DataFrame (``qid, docid, query, passage, relevance``) from JSONL (.jsonl/.json) or TSV."""
    from ..ir import read_pairs_file

    return read_pairs_file(path, option, min_pairs=2)


def _records_for(
    model: Any, batches: list[dict[str, Any]], layers: Sequence[int], given: str | None, captured_dir: Path,
    n_rows: int, option: str, pairs_option: str, labels: Any,
) -> dict[int, Any]:
    """Records of ``layers`` over the pairs behind ``batches``: loaded from ``given`` or captured."""
    from ..errors import InputError
    from ..models.capture import capture

    if given is not None:
        recs = load_layer_records(given, layers)
    else:
        print(f"capturing layers {list(layers)} over {n_rows} pairs of {pairs_option} into {captured_dir}")
        recs = capture(model, batches, list(layers), captured_dir, labels=labels, progress=True)
    for layer, rec in recs.items():
        if rec.n_inputs != n_rows:
            raise InputError(f"{option}: layer {layer} holds {rec.n_inputs} inputs but {pairs_option} has "
                             f"{n_rows} pairs; the records must be captured on those pairs, in order.")
    return recs


def _load_extrinsic(args: argparse.Namespace, layers: list[int], metrics: list[str],
                    out: Path) -> tuple[_Extrinsic, dict[int, Any]]:
    """Model, OOD batches, targets, features and records (OOD and, if possible, in-distribution)."""
    import numpy as np
    import pandas as pd

    from ..ir import CorpusStats, compute_targets, letor_features, load_qrels
    from ..models import encode_pairs, load_scalar_model, load_tokenizer

    model = load_scalar_model(args.model, args.adapter, device=args.device)
    tok = load_tokenizer(args.tokenizer or args.model)
    pairs = _load_pairs(args.ood_pairs, "--ood-pairs")
    targets = compute_targets(pairs, args.task).to_numpy(dtype=np.float64)
    batches = encode_pairs(tok, pairs["query"].astype(str).tolist(), pairs["passage"].astype(str).tolist(),
                           max_length=args.max_length, batch_size=args.batch_size)
    qrels = None
    if args.ood_qrels is not None:
        if args.task != "relevance":
            print(f"note: --ood-qrels is ignored for task {args.task!r} (−MSE against the targets).")
        else:
            qrels = load_qrels(args.ood_qrels)
    train_pairs = _load_pairs(args.train_pairs, "--train-pairs") if args.train_pairs is not None else None
    features = None
    if "alignment" in metrics:
        # the pipeline's convention: collection statistics over the train and OOD passages
        texts = pairs["passage"] if train_pairs is None else pd.concat([train_pairs["passage"], pairs["passage"]])
        stats = CorpusStats.from_passages(texts.astype(str).drop_duplicates().tolist())
        features = letor_features(pairs, stats).reset_index(drop=True)
    records: dict[int, Any] = {}
    if {"synergy", "alignment", "predictivity"} & set(metrics):  # OOD drop alone needs no records
        records = _records_for(model, batches, layers, args.records, out / "records" / "ood", len(pairs),
                               "--records", "--ood-pairs", targets)
    train_records = train_targets = None
    if "predictivity" in metrics:
        if train_pairs is None:
            print("predictivity: skipped (needs --train-pairs, the in-distribution pairs the ridge is fit on).")
        else:
            train_targets = compute_targets(train_pairs, args.task).to_numpy(dtype=np.float64)
            tb = encode_pairs(tok, train_pairs["query"].astype(str).tolist(),
                              train_pairs["passage"].astype(str).tolist(), max_length=args.max_length,
                              batch_size=args.batch_size)
            train_records = _records_for(model, tb, layers, args.train_records, out / "records" / "train",
                                         len(train_pairs), "--train-records", "--train-pairs", train_targets)
    return _Extrinsic(model, batches, pairs, targets, qrels, features, train_records, train_targets), records


def _seed_of(meta: dict[str, Any]) -> Any:
    """The partition's seed: ``meta["seed"]`` (pipeline) or ``meta["params"]["seed"]`` (library), else ""."""
    if meta.get("seed") is not None:
        return meta["seed"]
    params = meta.get("params")
    if isinstance(params, dict) and params.get("seed") is not None:
        return params["seed"]
    return ""


def _options(args: argparse.Namespace) -> EvaluationOptions:
    """The evaluation options of the command line (checked before any heavy work)."""
    from ..errors import InputError

    if args.min_size < 2:
        raise InputError(f"--min-size: expected an integer >= 2 (Pair needs two members), got {args.min_size}.")
    if args.max_members is not None and args.max_members < 2:
        raise InputError(f"--max-members: expected an integer >= 2, got {args.max_members}.")
    if not 0.0 < args.confidence < 1.0:
        raise InputError(f"--confidence: expected a value in (0, 1), got {args.confidence}.")
    return EvaluationOptions(min_size=args.min_size, max_coalitions=args.ood_max_coalitions or None,
                       ridge_alpha=_ridge_alpha(args.ridge_alpha), max_members=args.max_members, seed=args.seed,
                       backend=args.backend, confidence=args.confidence)


def _evaluate_extrinsic(ext: _Extrinsic, args: argparse.Namespace, opts: EvaluationOptions, metrics: list[str],
                        part: Any, layer: int, record: Any, out_dir: Path) -> dict[str, Any]:
    """OOD drop, alignment and predictivity of one partition through the evaluation core;
    per-coalition CSVs into ``out_dir``.

    Returns the per-partition summary: ``ood_drop``, ``ood_coalitions``, ``align_r2`` and
    ``predictivity_r2`` (:mod:`hedonic_neurons.evaluation`).
    """
    from ..evaluation import evaluate_alignment, evaluate_ood, evaluate_predictivity
    from ..io import atomic_write

    row: dict[str, Any] = {}
    if "ood" in metrics:
        ood = evaluate_ood(ext.model, ext.batches, layer, part, task=args.task, pairs=ext.pairs,
                           targets=ext.targets, qrels=ext.qrels, options=opts, progress=True)
        if ood.n_evaluated:
            with atomic_write(out_dir / f"ood.L{layer}.csv") as fh:
                ood.table.to_csv(fh, index=False)
        row["ood_drop"], row["ood_coalitions"] = ood.drop, ood.n_evaluated
    if "alignment" in metrics:
        al = evaluate_alignment(record, part, ext.features, opts)
        table = al.table.copy()
        table.insert(0, "layer", layer)
        with atomic_write(out_dir / f"alignment.L{layer}.csv") as fh:
            table.to_csv(fh, index=False)
        row["align_r2"] = al.r2
    if "predictivity" in metrics and ext.train_records is not None:
        row["predictivity_r2"] = evaluate_predictivity(ext.train_records[layer], record, part, opts,
                                                       train_targets=ext.train_targets, ood_targets=ext.targets).r2
    return row


def _size_figure(parts: dict[int, Any], label: str, path: Path) -> None:
    """Coalition size distribution of one method, one curve per layer (log-log)."""
    from ..figures import plot_size_distribution, save_png

    save_png(plot_size_distribution({f"layer {layer}": parts[layer] for layer in sorted(parts)},
                                    f"{label}: coalition sizes"), path)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``hedonic evaluate`` from parsed arguments; returns the exit code."""
    import pandas as pd

    from ..errors import InputError
    from ..evaluation import evaluate_synergy
    from ..io import atomic_write
    from ..metrics.tables import format_cell, to_markdown

    metrics = _metrics_of(args)
    opts = _options(args)  # fail before any heavy work
    groups = discover_partitions(args.partitions, args.method)
    layers = sorted({layer for g in groups.values() for layer in g})
    if args.layers is not None:
        layers = sorted(set(layers) & set(args.layers))
        if not layers:
            raise InputError(f"--layers: none of {args.layers} has a partition.")
    out = Path(args.out)
    ext: _Extrinsic | None = None
    if args.model is not None:
        ext, records = _load_extrinsic(args, layers, metrics, out)
    else:
        records = load_layer_records(args.records, layers)
    summary: list[dict[str, Any]] = []
    ext_rows: list[dict[str, Any]] = []
    long_rows: list[dict[str, Any]] = []
    syn_long: list[dict[str, Any]] = []
    for label, parts in sorted(groups.items()):
        for layer in sorted(k for k in parts if k in layers):
            part = parts[layer]
            meta = part.meta
            base = {"model": vocab.model_label(args.model if args.model is not None else meta.get("model") or ""),
                    "task": args.task or meta.get("task", ""), "method": label, "seed": _seed_of(meta),
                    "layer": layer}
            if "synergy" in metrics:
                syn = evaluate_synergy(records[layer], part, opts, progress=True)
                with atomic_write(out / safe_label(label) / f"synergy.L{layer}.csv") as fh:
                    syn.table.to_csv(fh, index=False)
                summary.append({"method": label, "layer": layer, "coalitions": syn.n_coalitions,
                                "pair": syn.pair, "pair_ci": syn.pair_ci, "ratio": syn.ratio,
                                "ratio_ci": syn.ratio_ci, "ratio_undefined": syn.n_ratio_undefined})
                for metric, value in syn.metrics().items():
                    syn_long.append({**base, "metric": metric, "value": value})
                print(f"[{label}] layer {layer}: {syn.n_coalitions} coalitions, "
                      f"Pair {format_cell(syn.pair, syn.pair_ci, 4, significant=True, sep=' ± ')}, "
                      f"Ratio {format_cell(syn.ratio, syn.ratio_ci, 4, significant=True, sep=' ± ')} "
                      f"({syn.n_ratio_undefined} undefined)")
            if ext is not None:
                row = _evaluate_extrinsic(ext, args, opts, metrics, part, layer, records.get(layer),
                                          out / safe_label(label))
                ext_rows.append({"method": label, "layer": layer, **row})
                for metric in ("ood_drop", "align_r2", "predictivity_r2"):
                    if metric in row:
                        long_rows.append({**base, "metric": metric, "value": float(row[metric])})
                print(f"[{label}] layer {layer}: " + ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        _size_figure({layer: parts[layer] for layer in parts if layer in layers}, label,
                     out / safe_label(label) / "sizes.png")
    long_df = pd.DataFrame(syn_long + long_rows, columns=LONG_COLUMNS)
    if "synergy" in metrics:
        sdf = pd.DataFrame(summary)
        with atomic_write(out / "synergy_summary.csv") as fh:
            sdf.to_csv(fh, index=False)
        shown = sdf[["method", "layer", "coalitions"]].copy()
        shown["Pair"] = [format_cell(m, c, 4, significant=True, sep=" ± ") for m, c in zip(sdf["pair"], sdf["pair_ci"])]
        shown["Ratio"] = [format_cell(m, c, 4, significant=True, sep=" ± ")
                          for m, c in zip(sdf["ratio"], sdf["ratio_ci"])]
        shown["ratio_undefined"] = sdf["ratio_undefined"]
        with atomic_write(out / "synergy_summary.md") as fh:
            fh.write("# Coalition synergy (local readout, exact)\n\n"
                     f"Mean over coalitions of size >= {opts.min_size}, ± {opts.confidence:.0%} t-CI.\n\n")
            fh.write(to_markdown(shown, index=False) + "\n")
        with atomic_write(out / "synergy_long.csv") as fh:
            pd.DataFrame(syn_long, columns=LONG_COLUMNS).to_csv(fh, index=False)
        print(to_markdown(shown, index=False))
    if ext is not None:
        with atomic_write(out / "extrinsic_summary.csv") as fh:
            pd.DataFrame(ext_rows).to_csv(fh, index=False)
        with atomic_write(out / "results_long.csv") as fh:
            long_df.to_csv(fh, index=False)
        _write_tables(long_df, out, opts.confidence)
    return 0


def _write_tables(long_df: Any, out: Path, confidence: float) -> None:
    """Tables 1, 2 and 6 (paper layouts, :mod:`hedonic_neurons.metrics.tables`) as Markdown and CSV.

    ``long_df`` holds the long results ``[model, task, method, seed, layer, metric, value]``;
    a table is written only when one of its metrics is present.
    """
    from ..io import atomic_write
    from ..metrics.tables import (
        table_extrinsic,
        table_predictivity,
        table_synergy,
        to_csv,
        to_markdown,
    )

    present = set(long_df["metric"])
    blocks = [("Table 1: OOD drop and feature alignment", "table1_extrinsic", table_extrinsic,
               {"ood_drop", "align_r2"}),
              ("Table 2: coalition predictivity (OOD R²)", "table2_predictivity", table_predictivity,
               {"predictivity_r2"}),
              ("Table 6: coalition synergy", "table6_synergy", table_synergy, {"pair", "ratio"})]
    text = ["# Coalition evaluation", "",
            f"Cells: per-seed mean over layers (and coalitions), ± {confidence:.0%} t-CI over seeds when "
            "there are several seeds (docs/method.md §8).", ""]
    for title, stem, fn, needed in blocks:
        if not needed & present:
            continue
        table = fn(long_df, confidence=confidence)
        to_csv(table, out / f"{stem}.csv")
        text += [f"## {title}", "", to_markdown(table), ""]
        print(f"\n{title}\n{to_markdown(table)}")
    with atomic_write(out / "tables.md") as fh:
        fh.write("\n".join(text))
