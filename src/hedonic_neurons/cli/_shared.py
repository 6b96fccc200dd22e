"""Helpers several commands share (imported downward by the command modules, never sideways)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, ConfigError, InputError
from ..partition import Partition
from ..records import LayerRecord

__all__ = ["discover_partitions", "load_layer_records", "parse_overrides", "safe_label"]

_LAYER_RE = re.compile(r"layer(\d+)")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as ``{dotted key: YAML value}``.

    Raises
    ------
    ConfigError
        An item without ``=``, without a key, or whose value is not valid YAML.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE (e.g. discovery.seeds=[0,1]), got {item!r}.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"--set {key.strip()}: the value {value!r} is not valid YAML ({reason}).") from None
    return out


def safe_label(label: str) -> str:
    """A method label as a directory name (anything but ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def load_layer_records(path: str | Path, layers: Sequence[int] | None = None) -> dict[int, LayerRecord]:
    """Load records from a capture directory or a directory of ``layer{L}.safetensors``."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: records directory not found.")
    files = sorted(root.glob("layer*.safetensors"))
    if files:
        out: dict[int, LayerRecord] = {}
        for f in files:
            m = _LAYER_RE.search(f.name)
            if m is None:
                continue
            layer = int(m.group(1))
            if layers is None or layer in layers:
                out[layer] = LayerRecord.load(f)
        if layers is not None and set(layers) - set(out):
            raise InputError(f"layers: {sorted(set(layers) - set(out))} have no record file in {root}.")
        return out
    if (root / "manifest.json").is_file():
        from ..models.capture import load_records

        return load_records(root, layers)
    raise ArtifactError(
        f"{root}: neither a capture directory (manifest.json) nor a directory of layer{{L}}.safetensors files."
    )


def _label_of(path: Path, root: Path | None) -> tuple[int, str] | None:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    stem = path.name[: -len(".json")]
    m = _LAYER_RE.match(stem)
    if m is not None:
        label = stem[m.end():].lstrip("._-") or "partition"
        return int(m.group(1)), label
    for part in reversed(rel.parts[:-1] if root is not None else path.parent.parts[-1:]):
        pm = _LAYER_RE.fullmatch(part)
        if pm is not None:
            return int(pm.group(1)), stem
    return None


def discover_partitions(
    paths: Sequence[str | Path], method: str | None = None
) -> dict[str, dict[int, Partition]]:
    """Find partitions and group them by label, then layer (convention in the module docstring).

    Returns
    -------
    dict label -> {layer: Partition}

    Raises
    ------
    InputError
        If a named file has no layer in its name, two files give the same (label, layer),
        or nothing matches ``method``.
    """
    found: dict[str, dict[int, Partition]] = {}
    sources: dict[tuple[str, int], Path] = {}
    for raw in paths:
        p = Path(raw)
        candidates: list[tuple[Path, Path | None]]
        if p.is_dir():
            candidates = [(f, p) for f in sorted(p.rglob("*.json"))]
            explicit = False
        elif p.is_file():
            candidates = [(p, None)]
            explicit = True
        else:
            raise ArtifactError(f"{p}: partition file or directory not found.")
        for f, root in candidates:
            key = _label_of(f, root)
            if key is None:
                if explicit:
                    raise InputError(
                        f"--partitions: cannot tell the layer of {f} (expected 'layer{{L}}' in the file "
                        "name, e.g. layer7.pac_top_cover.json, or a parent folder named layer{L})."
                    )
                continue
            try:
                part = Partition.from_json(f)
            except ArtifactError:
                if explicit:
                    raise
                continue  # some other JSON file in the tree
            layer, label = key
            if method is not None and label != method:
                continue
            if (label, layer) in sources:
                raise InputError(
                    f"--partitions: two partitions for layer {layer}, label {label!r}: "
                    f"{sources[(label, layer)]} and {f}."
                )
            sources[(label, layer)] = f
            found.setdefault(label, {})[layer] = part
    if not found:
        what = f" with label {method!r}" if method else ""
        raise InputError(f"--partitions: no partition{what} found in {[str(p) for p in paths]}.")
    return found
