"""Activation capture at the pooled position: one :class:`LayerRecord` per layer (docs/method.md §1).

For each requested layer and input, at the pooled position (last non-pad token for
decoders, CLS for encoders; left or right padding):

* ``h``: the MLP input (forward pre-hook on the MLP module, i.e. after the pre-norm);
* ``a``: ``act(W'_gate h) ⊙ (W'_up h)`` (gated) or ``act(W'_in h + b)`` — the tensor that
  enters the down projection, computed from ``h`` with the LoRA-adapted weights (base
  weight plus ``s·B(A h)``, as PEFT's forward does; no merged copy is made);
* ``a_base``: the same with the base weights on the same ``h`` (no second model run);
* ``y``: the block output (pre-norm decoders; for GPT-NeoX's parallel residual that is
  ``x + attn + mlp``), or for post-norm encoders the sum entering the block's output
  LayerNorm.

Only the MLP input and the block output are hooked, and the forward pass stops after the
last requested layer. Records are float32 by default whatever the model dtype.

With ``out_dir`` the capture streams one safetensors shard per batch plus a JSON
manifest; every file is written atomically and the manifest is updated after each
shard, so an interrupted capture resumes where it stopped (same batches, same order)
with no row lost or duplicated. :func:`load_records` reassembles and verifies them.

The manifest records what produced the capture and what it holds, so nothing is reused
or read silently wrong:

* ``identity``: a fingerprint of the model (:func:`model_fingerprint`: its config, the
  LoRA factors and the captured layers' MLP weights in full, a strided sample of every
  other parameter) plus whatever the caller adds (``identity=``: the CLI adds hashes of
  the model config, the adapter files and the data file). Re-capturing into a directory
  made by another model, adapter or data is refused (``fresh=True`` discards it instead).
* per shard and per fixed file: its sha256 and row count, checked on load
  (``verify=True``); file names must be plain names inside the directory.
* ``complete``: false until the last batch is written; :func:`load_records` refuses an
  incomplete capture unless ``allow_partial=True`` (then the records' ``meta`` says
  ``complete: False`` with the row count).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import ArtifactError, InputError
from ..io import file_sha256, load_arrays, read_json, save_arrays, write_json
from ..provenance import provenance
from ..records import LayerRecord, Readout
from .arch import ArchSpec, architecture, unwrap
from .load import model_inputs, pooled_positions
from .lora import base_bias, base_weight, lora_factors, merged_weight, mlp_linears

__all__ = ["capture", "collect_pooled", "layer_readout", "load_records", "model_fingerprint"]

FORMAT = "hedonic-neurons/capture@2"
MANIFEST = "manifest.json"
_SAMPLE = 4096  # elements sampled per parameter tensor by model_fingerprint


class _Stop(Exception):
    """Raised by a hook once the last requested layer is captured (early exit)."""


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x


def collect_pooled(
    model: torch.nn.Module, batch: Mapping[str, Any], layers: Sequence[int], *, spec: ArchSpec | None = None
) -> dict[int, dict[str, torch.Tensor]]:
    """One forward pass, stopped after the last of ``layers``: pooled ``h`` and ``y`` per layer.

    Returns
    -------
    dict
        ``{layer: {"h": (B, d), "y": (B, d)}}`` in the model's dtype (detached).
    """
    spec = spec or architecture(model)
    device = next(unwrap(model).parameters()).device
    inputs = model_inputs(spec, batch, device)
    pos = pooled_positions(inputs["attention_mask"], spec.pooling)
    rows = torch.arange(pos.shape[0], device=device)
    layers = sorted({int(x) for x in layers})
    last = layers[-1]
    out: dict[int, dict[str, torch.Tensor]] = {layer: {} for layer in layers}
    handles = []

    def h_hook(layer: int):
        def fn(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = args[0] if args else next(iter(kwargs.values()))
            out[layer]["h"] = x[rows, pos].detach()
        return fn

    def y_hook(layer: int, pre: bool):
        def fn(module: Any, args: tuple[Any, ...], *rest: Any) -> None:
            x = _first(args) if pre else _first(rest[-1])
            out[layer]["y"] = x[rows, pos].detach()
            if layer == last:
                raise _Stop
        return fn

    was_training = model.training
    if was_training:  # dropout (incl. LoRA dropout) off: the record is deterministic
        model.eval()
    try:
        for layer in layers:
            block = spec.block(model, layer)
            handles.append(spec.sub(model, layer, spec.mlp_input).register_forward_pre_hook(
                h_hook(layer), with_kwargs=True))
            if spec.post_norm:
                assert spec.block_norm is not None
                handles.append(spec.sub(model, layer, spec.block_norm).register_forward_pre_hook(y_hook(layer, True)))
            else:
                handles.append(block.register_forward_hook(y_hook(layer, False)))
        try:
            with torch.no_grad():
                spec.backbone_module(model)(**inputs)
        except _Stop:
            pass
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train(True)
    missing = [layer for layer in layers if set(out[layer]) != {"h", "y"}]
    if missing:
        raise RuntimeError(f"capture: hooks did not fire for layers {missing}; unexpected module structure.")
    return out


def _layer_parts(spec: ArchSpec, model: Any, layer: int) -> dict[str, Any]:
    """References to the MLP linears of ``layer`` (no weight copies are kept)."""
    lin = mlp_linears(spec, model, layer)
    names = ["up", "gate"] if spec.gated else ["in"]
    return {"in": [lin[k] for k in names], "down": lin["down"], "act": spec.sub(model, layer, spec.act)}


def _pre_activations(module: torch.nn.Module, h: torch.Tensor, *, lora: bool) -> torch.Tensor:
    """``W h + b`` (base) or ``W h + b + Σ s·B(A h)`` (LoRA-adapted), in ``h``'s dtype.

    The LoRA term is applied through its factors, exactly as PEFT's forward does, so no
    merged ``(n, d)`` copy is ever made.
    """
    w = base_weight(module).detach()
    b = base_bias(module)
    out = torch.nn.functional.linear(h, w.to(h.dtype), None if b is None else b.detach().to(h.dtype))
    if lora:
        for f in lora_factors(module):
            out = out + f.scaling * ((h @ f.A.detach().to(h.dtype).T) @ f.B.detach().to(h.dtype).T)
    return out


def _activations(parts: dict[str, Any], h: torch.Tensor, gated: bool, *, lora: bool) -> torch.Tensor:
    pre = [_pre_activations(m, h, lora=lora) for m in parts["in"]]
    return parts["act"](pre[1]) * pre[0] if gated else parts["act"](pre[0])


def _fixed_arrays(parts: dict[str, Any], dtype: type) -> dict[str, np.ndarray]:
    """``w_down``, ``w_down_base`` (d, n), ``w_read`` (g, n, d) and the down update's factors."""
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    down = parts["down"]
    w_down_base = base_weight(down).detach().to(tdtype)
    factors = lora_factors(down)
    out: dict[str, np.ndarray] = {"w_down_base": w_down_base.cpu().numpy().astype(dtype)}
    if factors:
        left = torch.cat([f.scaling * f.B.detach().to(tdtype) for f in factors], dim=1)
        right = torch.cat([f.A.detach().to(tdtype) for f in factors], dim=0)
        out["w_down"] = (w_down_base + left @ right).cpu().numpy().astype(dtype)
        out["delta_left"] = left.cpu().numpy().astype(dtype)
        out["delta_right"] = right.cpu().numpy().astype(dtype)
    else:
        out["w_down"] = out["w_down_base"].copy()
    out["w_read"] = torch.stack([merged_weight(m, tdtype) for m in parts["in"]]).cpu().numpy().astype(dtype)
    return out


def layer_readout(model: torch.nn.Module, layer: int, *, spec: ArchSpec | None = None) -> Readout:
    """The layer-local readout of docs/method.md §2 as a :class:`Readout`.

    Decoders: the model's final RMSNorm/LayerNorm then the head; post-norm encoders: the
    block's own output LayerNorm then the head.
    """
    spec = spec or architecture(model)
    norm = spec.readout_norm_module(model, layer)
    head = spec.head_module(model)

    def f64(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    def f64_or_none(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else f64(t)

    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    if eps is None:
        raise RuntimeError(f"capture: cannot find the epsilon of {type(norm).__name__}.")
    bias = 0.0 if head.bias is None else float(head.bias.detach().double()[0])
    return Readout(
        norm=spec.norm, weight=f64(head.weight)[0], bias=bias,
        gamma=f64_or_none(cast("torch.Tensor | None", norm.weight)),
        beta=f64_or_none(getattr(norm, "bias", None)) if spec.norm == "layer" else None, eps=float(eps),
    )


def _concat_labels(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Per-batch labels concatenated, or ``None`` when any batch has none."""
    present = [x for x in parts if x is not None]
    return np.concatenate(present) if len(present) == len(parts) else None


def _fingerprint(batch: Mapping[str, Any]) -> str:
    ids = torch.as_tensor(batch["input_ids"]).detach().cpu().to(torch.int64).numpy()
    mask = torch.as_tensor(batch.get("attention_mask", torch.ones(ids.shape))).cpu().to(torch.int64).numpy()
    return hashlib.sha256(ids.tobytes() + mask.tobytes() + str(ids.shape).encode()).hexdigest()[:16]


def _check_layers(layers: Iterable[int], spec: ArchSpec) -> list[int]:
    out = sorted({int(x) for x in layers})
    if not out or out[0] < 0 or out[-1] >= spec.n_layers:
        raise InputError(f"layers: expected indices in [0, {spec.n_layers}), got {list(layers)}.")
    return out


def _batch_labels(batch: Mapping[str, Any], labels: np.ndarray | None, start: int, rows: int) -> np.ndarray | None:
    if labels is not None:
        if start + rows > labels.shape[0]:
            raise InputError(f"labels: expected at least {start + rows} values (one per input row), got {labels.shape[0]}.")
        return labels[start : start + rows]
    if batch.get("labels") is not None:
        return torch.as_tensor(batch["labels"]).detach().cpu().double().numpy().reshape(rows)
    return None


def model_fingerprint(model: torch.nn.Module, layers: Sequence[int], *, spec: ArchSpec | None = None) -> str:
    """A content fingerprint of the model behind a capture of ``layers`` (hex sha256).

    Hashes the model config; every LoRA factor (``lora_*`` parameters) and the active
    adapters' scalings in full; the MLP linears of ``layers`` (base weights) in full; and,
    for every other parameter, its name, shape, dtype and ``4096`` evenly strided values.
    Two models that differ in their adapter, their captured layers or (almost surely) any
    other weight get different fingerprints; computing it reads only a small part of a large
    model.
    """
    spec = spec or architecture(model)
    h = hashlib.sha256()
    cfg = cast(Any, unwrap(model).config)
    try:
        cfg_dict = cfg.to_dict()
    except Exception:  # pragma: no cover - configs without to_dict
        cfg_dict = dict(vars(cfg))
    cfg_dict = {k: v for k, v in cfg_dict.items() if k not in ("_name_or_path", "transformers_version", "torch_dtype",
                                                                 "dtype")}
    h.update(json.dumps(cfg_dict, sort_keys=True, default=str).encode())
    full: set[int] = set()
    for layer in sorted({int(x) for x in layers}):
        for mod in mlp_linears(spec, model, layer).values():
            full.update(id(p) for p in mod.parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = p.detach()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            flat = t.reshape(-1)
            if "lora_" not in name and id(p) not in full and flat.numel() > _SAMPLE:
                flat = flat[:: max(flat.numel() // _SAMPLE, 1)][:_SAMPLE]
            h.update(flat.to("cpu").contiguous().view(torch.uint8).numpy().tobytes())  # native bytes, no upcast
    for name, mod in model.named_modules():
        scaling = getattr(mod, "scaling", None)
        if isinstance(scaling, dict) and scaling:
            active = getattr(mod, "active_adapters", [])
            h.update(f"{name}:{sorted(scaling.items())}:{list(active)};".encode())
    return h.hexdigest()


def _plain_name(root: Path, name: Any, what: str) -> Path:
    """``root / name`` for a plain file name; refuses absolute paths, separators and ``..``."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ArtifactError(f"{root / MANIFEST}: {what} {name!r} is not a plain file name inside the capture "
                            "directory; refused.")
    return root / name


def _check_manifest(manifest: Any, mpath: Path) -> dict[str, Any]:
    """The manifest's schema: keys and types, so a damaged manifest is one clean error."""
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{mpath}: expected a JSON object, got {type(manifest).__name__}.")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        old = " (written by an older version without checksums: capture again into a new directory)" if fmt == "hedonic-neurons/capture@1" \
            else ""
        raise ArtifactError(f"{mpath}: not a {FORMAT} capture manifest (format {fmt!r}){old}.")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(x, int) and not isinstance(x, bool)
                                                             for x in layers):
        raise ArtifactError(f"{mpath}: 'layers' must be a non-empty list of integers, got {layers!r:.80}.")
    for key, typ in (("shards", list), ("complete", bool), ("record_dtype", str), ("identity", dict),
                     ("fixed", dict)):
        if not isinstance(manifest.get(key), typ):
            raise ArtifactError(f"{mpath}: {key!r} must be a {typ.__name__}, got {manifest.get(key)!r:.80}.")
    for i, e in enumerate(manifest["shards"]):
        ok = isinstance(e, dict) and all(
            isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in ("batch", "rows", "start")
        ) and all(isinstance(e.get(k), str) for k in ("file", "fingerprint", "sha256"))
        if not ok:
            raise ArtifactError(f"{mpath}: shard entry {i} is malformed ({e!r:.120}).")
    return manifest


def _identity_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _discard_capture(root: Path, manifest: Mapping[str, Any]) -> None:
    """Delete the files a (validated) manifest names, then the manifest itself."""
    names = [e["file"] for e in manifest.get("shards", [])] + [e["file"] for e in manifest.get("fixed", {}).values()]
    for name in names:
        _plain_name(root, name, "file").unlink(missing_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)


def capture(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    layers: Sequence[int],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    labels: Sequence[float] | np.ndarray | None = None,
    progress: bool = True,
    dtype: type = np.float32,
    identity: Mapping[str, Any] | None = None,
    fresh: bool = False,
) -> dict[int, LayerRecord]:
    """Capture :class:`LayerRecord` s of ``layers`` over ``batches`` (docs/method.md §1).

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`~hedonic_neurons.models.load_scalar_model` (LoRA unmerged).
    batches : iterable of mapping
        Tokenizer outputs (``input_ids``, ``attention_mask``, optionally
        ``token_type_ids`` and ``labels``). To resume, pass the same batches in the same order.
    layers : sequence of int
        Blocks to capture (0-based).
    out_dir : path, optional
        Stream shards and a manifest here and resume an interrupted capture.
    labels : array_like, shape (N,), optional
        Task target per input row, in batch order (else a batch's ``labels`` key is used).
    progress : bool
        Show a tqdm progress bar.
    dtype : numpy float dtype
        Storage dtype of the record arrays (float32 default; float64 for exact tests).
    identity : mapping of str to JSON values, optional
        What else identifies the capture (e.g. hashes of the model directory, the adapter
        and the data file); stored in the manifest with :func:`model_fingerprint` and
        compared on resume.
    fresh : bool
        With ``out_dir`` holding a capture by another model, adapter or data (or of other
        layers or dtype): discard it and start afresh instead of refusing.

    Raises
    ------
    ArtifactError
        When ``out_dir`` holds a capture that this call may not resume (another model,
        adapter, data, layers or dtype; different or extra batches) and ``fresh`` is False.

    Returns
    -------
    dict of int to LayerRecord
        Record arrays ``h`` (N, d), ``a``/``a_base`` (N, n), ``y`` (N, d), ``w_down``/
        ``w_down_base`` (d, n), ``w_read`` (g, n, d), ``delta_left``/``delta_right``.
    """
    from tqdm.auto import tqdm

    spec = architecture(model)
    layers = _check_layers(layers, spec)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    lab = None if labels is None else np.asarray(labels, dtype=np.float64).reshape(-1)
    parts_of = {layer: _layer_parts(spec, model, layer) for layer in layers}
    readouts = {layer: layer_readout(model, layer, spec=spec) for layer in layers}
    cfg = unwrap(model).config
    meta = provenance(
        model=str(getattr(cfg, "_name_or_path", "") or type(unwrap(model)).__name__), family=spec.family,
        pooling=spec.pooling, readout="local", model_dtype=str(next(unwrap(model).parameters()).dtype),
        record_dtype=np.dtype(dtype).name,
    )

    def rows_of(batch: Mapping[str, Any]) -> dict[int, dict[str, np.ndarray]]:
        pooled = collect_pooled(model, batch, layers, spec=spec)
        res = {}
        with torch.no_grad():
            for layer in layers:
                h = pooled[layer]["h"].to(tdtype)
                res[layer] = {
                    "h": h,
                    "a": _activations(parts_of[layer], h, spec.gated, lora=True),
                    "a_base": _activations(parts_of[layer], h, spec.gated, lora=False),
                    "y": pooled[layer]["y"].to(tdtype),
                }
        return {layer: {k: v.cpu().numpy().astype(dtype) for k, v in d.items()} for layer, d in res.items()}

    total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(batches, total=total, desc=f"capture layers {layers}", disable=not progress, unit="batch")

    if out_dir is None:
        parts: dict[int, dict[str, list[np.ndarray]]] = {layer: {k: [] for k in ("h", "a", "a_base", "y")} for layer in layers}
        lab_parts: list[np.ndarray | None] = []
        start = 0
        for batch in bar:
            got = rows_of(batch)
            rows = got[layers[0]]["h"].shape[0]
            lab_parts.append(_batch_labels(batch, lab, start, rows))
            start += rows
            for layer in layers:
                for k, v in got[layer].items():
                    parts[layer][k].append(v)
        if start == 0:
            raise InputError("batches: expected at least one batch, got none.")
        labels_all = _concat_labels(lab_parts)
        out = {}
        for layer in layers:
            fx = _fixed_arrays(parts_of[layer], dtype)
            out[layer] = LayerRecord(
                layer=layer, **{k: np.concatenate(v) for k, v in parts[layer].items()},
                w_down=fx["w_down"], w_down_base=fx["w_down_base"], w_read=fx["w_read"],
                delta_left=fx.get("delta_left"), delta_right=fx.get("delta_right"),
                readout=readouts[layer], labels=labels_all, meta={**meta, "layer": layer},
            )
        return out

    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"out_dir: {root} is a file, expected a directory.")
    root.mkdir(parents=True, exist_ok=True)
    mpath = root / MANIFEST
    ident = {"model": model_fingerprint(model, layers, spec=spec), **dict(identity or {})}
    ident = json.loads(json.dumps(ident, default=str))  # the form it takes in the manifest
    manifest: dict[str, Any] | None = None
    if mpath.is_file():
        manifest = _check_manifest(read_json(mpath), mpath)
        why = []
        if manifest["layers"] != layers or manifest["record_dtype"] != np.dtype(dtype).name:
            why.append(f"layers {manifest['layers']} ({manifest['record_dtype']}) vs {layers} ({np.dtype(dtype).name})")
        diff = _identity_diff(manifest["identity"], ident)
        if diff:
            why.append(f"different {', '.join(diff)} (" + "; ".join(
                f"{k}: {str(manifest['identity'].get(k))[:12]} vs {str(ident.get(k))[:12]}" for k in diff) + ")")
        if why:
            if not fresh:
                raise ArtifactError(
                    f"{root}: holds a capture that does not match this one: {'; '.join(why)}. "
                    "Use a new output directory, or discard the old capture (fresh=True, --fresh)."
                )
            _discard_capture(root, manifest)
            manifest = None
    if manifest is None:
        manifest = {"format": FORMAT, "layers": layers, "record_dtype": np.dtype(dtype).name,
                    "family": spec.family, "complete": False, "n_rows": 0, "identity": ident, "fixed": {},
                    "shards": [], "meta": meta}
        for layer in layers:
            r_arrays, r_info = readouts[layer].to_arrays()
            name = f"fixed_L{layer}.safetensors"
            save_arrays(root / name, {**_fixed_arrays(parts_of[layer], dtype), **r_arrays},
                        metadata={"readout": json.dumps(r_info, default=str)})
            manifest["fixed"][str(layer)] = {"file": name, "sha256": file_sha256(root / name)}
        write_json(mpath, manifest)
    done = manifest["shards"]
    was_complete = manifest["complete"]
    start = 0
    i = -1
    for i, batch in enumerate(bar):
        fp = _fingerprint(batch)
        rows = int(torch.as_tensor(batch["input_ids"]).shape[0])
        if i < len(done):
            entry = done[i]
            if entry["fingerprint"] != fp or entry["rows"] != rows:
                raise ArtifactError(
                    f"{mpath}: batch {i} differs from the one captured before (rows {entry['rows']} vs {rows}); "
                    "resume needs the same batches in the same order."
                )
            start += rows
            continue
        if was_complete:
            raise ArtifactError(
                f"{root}: holds a complete capture of {len(done)} batches, but more batches were given; "
                "use a new output directory, or discard the old capture (fresh=True, --fresh)."
            )
        got = rows_of(batch)
        arrays = {f"L{layer}.{k}": v for layer in layers for k, v in got[layer].items()}
        bl = _batch_labels(batch, lab, start, rows)
        if bl is not None:
            arrays["labels"] = bl.astype(np.float64)
        name = f"shard_{i:06d}.safetensors"
        save_arrays(root / name, arrays)
        done.append({"file": name, "batch": i, "rows": rows, "start": start, "fingerprint": fp,
                     "sha256": file_sha256(root / name)})
        start += rows
        manifest["n_rows"] = start
        write_json(mpath, manifest)
    if start == 0:
        raise InputError("batches: expected at least one batch, got none.")
    if len(done) > (i + 1):
        raise ArtifactError(f"{mpath}: holds {len(done)} shards but only {i + 1} batches were given.")
    manifest["complete"] = True
    manifest["n_rows"] = start
    write_json(mpath, manifest)
    return load_records(root)


def load_records(
    out_dir: str | os.PathLike[str],
    layers: Sequence[int] | None = None,
    *,
    verify: bool = True,
    allow_partial: bool = False,
) -> dict[int, LayerRecord]:
    """Reassemble the records of a streamed capture, verifying checksums, shapes and row counts.

    Parameters
    ----------
    out_dir : path
        A directory written by :func:`capture` with ``out_dir``.
    layers : sequence of int, optional
        Subset of the captured layers to load.
    verify : bool
        Check every file's sha256 against the manifest (default). ``False`` skips only the
        checksums (faster on large captures); names, shapes and row counts are always checked.
    allow_partial : bool
        Accept an interrupted capture (``complete: false``) and return the rows it holds;
        the records' ``meta`` then has ``complete: False`` and ``n_rows``.

    Raises
    ------
    ArtifactError
        On a missing, malformed or inconsistent manifest or file, a checksum mismatch, a
        file name outside the directory, or an incomplete capture without ``allow_partial``.
    InputError
        When ``layers`` names a layer that was not captured.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise ArtifactError(f"{root}: capture directory not found." if not root.exists()
                            else f"{root}: is a file, expected a capture directory.")
    mpath = root / MANIFEST
    manifest = _check_manifest(read_json(mpath), mpath)
    captured = manifest["layers"]
    want = captured if layers is None else sorted({int(x) for x in layers})
    absent = sorted(set(want) - set(captured))
    if absent:
        raise InputError(f"layers: {absent} were not captured in {root} (captured: {captured}).")
    shards = manifest["shards"]
    n_rows = sum(e["rows"] for e in shards)
    if not manifest["complete"] and not allow_partial:
        raise ArtifactError(
            f"{root}: the capture is incomplete ({len(shards)} batches, {n_rows} rows written before it stopped); "
            "re-run the capture to finish it, or accept the partial data explicitly (allow_partial=True, "
            "--allow-partial)."
        )
    if not shards:
        raise ArtifactError(f"{root}: the capture holds no shard yet.")

    def checked(name: Any, sha: Any, what: str) -> Path:
        path = _plain_name(root, name, what)
        if not path.is_file():
            raise ArtifactError(f"{path}: {what} named in the manifest is missing.")
        if verify and file_sha256(path) != sha:
            raise ArtifactError(f"{path}: sha256 does not match the manifest (corrupt, replaced or swapped file); "
                                "re-capture, or pass verify=False / --no-verify to skip the check.")
        return path

    parts: dict[int, dict[str, list[np.ndarray]]] = {layer: {k: [] for k in ("h", "a", "a_base", "y")} for layer in want}
    lab_parts: list[np.ndarray | None] = []
    expected_start = 0
    seen: set[str] = set()
    for i, entry in enumerate(shards):
        if entry["batch"] != i or entry["start"] != expected_start or entry["rows"] < 1:
            raise ArtifactError(f"{root}: shard list is not contiguous at entry {i} ({entry}).")
        if entry["file"] in seen:
            raise ArtifactError(f"{mpath}: shard file {entry['file']!r} is listed twice.")
        seen.add(entry["file"])
        arrays, _ = load_arrays(checked(entry["file"], entry["sha256"], "shard"))
        for layer in want:
            for k in parts[layer]:
                key = f"L{layer}.{k}"
                if key not in arrays or arrays[key].shape[0] != entry["rows"]:
                    got = arrays[key].shape if key in arrays else None
                    raise ArtifactError(f"{root / entry['file']}: tensor {key} should have {entry['rows']} rows, got {got}.")
                parts[layer][k].append(arrays[key])
        lab = arrays.get("labels")
        if lab is not None and lab.shape != (entry["rows"],):
            raise ArtifactError(f"{root / entry['file']}: labels should have shape ({entry['rows']},), got {lab.shape}.")
        lab_parts.append(lab)
        expected_start += entry["rows"]
    if manifest.get("n_rows", expected_start) != expected_start:
        raise ArtifactError(f"{root}: manifest says {manifest['n_rows']} rows, shards hold {expected_start}.")
    labels = _concat_labels(lab_parts)
    out = {}
    for layer in want:
        entry = manifest["fixed"].get(str(layer))
        if not isinstance(entry, dict):
            raise ArtifactError(f"{mpath}: no fixed-matrix entry for layer {layer}.")
        fixed, md = load_arrays(checked(entry.get("file"), entry.get("sha256"), "fixed-matrix file"))
        try:
            readout = Readout.from_arrays(fixed, json.loads(md["readout"]))
        except (KeyError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{root / entry['file']}: no valid readout metadata ({exc}).") from exc
        out[layer] = LayerRecord(
            layer=layer, **{k: np.concatenate(v) for k, v in parts[layer].items()},
            w_down=fixed["w_down"], w_down_base=fixed["w_down_base"], w_read=fixed.get("w_read"),
            delta_left=fixed.get("delta_left"), delta_right=fixed.get("delta_right"), readout=readout,
            labels=labels, meta={**manifest.get("meta", {}), "layer": layer, "complete": manifest["complete"],
                                 "n_rows": expected_start, "identity": manifest["identity"]},
        )
    return out
