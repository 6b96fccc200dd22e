"""The capture directory's manifest: identity, schema, verification and reassembly (docs/method.md §1).

:func:`model_fingerprint` identifies the model behind a capture; the manifest's schema check, the
plain-file-name guard and :func:`load_records` (checksums, shapes, row counts) make a damaged or
foreign capture one clean :class:`~hedonic_neurons.errors.ArtifactError`. Private;
:mod:`hedonic_neurons.models.capture` re-exports the public names and documents the layout.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import ArtifactError, InputError
from ..io import file_sha256, load_arrays, read_json
from ..records import LayerRecord, Readout
from .arch import ArchSpec, architecture, unwrap
from .lora import mlp_linears

FORMAT = "hedonic-neurons/capture@2"
MANIFEST = "manifest.json"
_SAMPLE = 4096  # elements sampled per parameter tensor by model_fingerprint


def _concat_labels(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Per-batch labels concatenated, or ``None`` when any batch has none."""
    present = [x for x in parts if x is not None]
    return np.concatenate(present) if len(present) == len(parts) else None


def _fingerprint(batch: Mapping[str, Any]) -> str:
    ids = torch.as_tensor(batch["input_ids"]).detach().cpu().to(torch.int64).numpy()
    mask = torch.as_tensor(batch.get("attention_mask", torch.ones(ids.shape))).cpu().to(torch.int64).numpy()
    return hashlib.sha256(ids.tobytes() + mask.tobytes() + str(ids.shape).encode()).hexdigest()[:16]


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
