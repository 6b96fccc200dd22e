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

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import ArtifactError, InputError
from ..io import file_sha256, read_json, save_arrays, write_json
from ..provenance import provenance
from ..records import LayerRecord, Readout
from ._manifest import (
    FORMAT,
    MANIFEST,
    _check_manifest,
    _concat_labels,
    _discard_capture,
    _fingerprint,
    _identity_diff,
    load_records,
    model_fingerprint,
)
from .arch import ArchSpec, architecture, unwrap
from .load import model_inputs, pooled_positions
from .lora import base_bias, base_weight, lora_factors, merged_weight, mlp_linears

__all__ = ["capture", "collect_pooled", "layer_readout", "load_records", "model_fingerprint"]


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


