"""Reading PEFT LoRA layers: base weights, merged weights and the low-rank factors.

PEFT's tensor layouts (``peft.tuners.lora.Linear``): ``lora_A[name].weight`` is
``(r, in_features)``, ``lora_B[name].weight`` is ``(out_features, r)``, and the update is
``ΔW = scaling[name] · B @ A`` (``(out, in)``, the layout of ``nn.Linear.weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..errors import ArtifactError, InputError, UnsupportedModelError
from .arch import ArchSpec

__all__ = [
    "LoraFactor", "base_bias", "base_weight", "check_adapter_fits", "lora_factors", "merged_weight", "mlp_linears",
]

_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraFactor:
    """One active adapter on one linear: ``ΔW = scaling · B @ A``."""

    adapter: str
    A: torch.Tensor  # (r, in)
    B: torch.Tensor  # (out, r)
    scaling: float


def mlp_linears(spec: ArchSpec, model: Any, layer: int) -> dict[str, nn.Module]:
    """The MLP linears of ``layer``: keys ``up``/``gate`` (gated) or ``in``, and ``down``.

    Keys follow the module names: ``up_proj`` -> ``up``, ``gate_proj`` -> ``gate``,
    ``dense_h_to_4h``/``intermediate.dense`` -> ``in``.
    """
    out: dict[str, nn.Module] = {}
    if spec.gated:
        out["up"] = spec.sub(model, layer, spec.in_proj[0])
        out["gate"] = spec.sub(model, layer, spec.in_proj[1])
    else:
        out["in"] = spec.sub(model, layer, spec.in_proj[0])
    out["down"] = spec.sub(model, layer, spec.down_proj)
    return out


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "base_layer")


def lora_factors(module: nn.Module) -> list[LoraFactor]:
    """Active, unmerged LoRA adapters of a linear (empty for a plain ``nn.Linear``).

    Raises
    ------
    InputError
        If the adapter is merged into the base weights (ablation by masking would be wrong).
    UnsupportedModelError
        For LoRA variants (DoRA, ...) whose update is not ``scaling · B @ A``.
    """
    if not _is_lora(module):
        return []
    if getattr(module, "merged", False):
        raise InputError(
            "model: a LoRA adapter is merged into the base weights; load it unmerged "
            "(merging destroys the base/LoRA distinction that ablation reverts to, docs/method.md §1)."
        )
    if getattr(module, "fan_in_fan_out", False):
        raise UnsupportedModelError("model: LoRA with fan_in_fan_out (Conv1D layers) is not supported.")
    # nn.Module.__getattr__ types PEFT LoraLayer's attributes as ``Tensor | Module``;
    # give them the types PEFT actually stores.
    lora_A = cast(nn.ModuleDict, module.lora_A)
    lora_B = cast(nn.ModuleDict, module.lora_B)
    scaling = cast("dict[str, float]", module.scaling)
    variants: dict[str, Any] = getattr(module, "lora_variant", {})
    out = []
    for name in cast("list[str]", module.active_adapters):
        if name not in lora_A:
            continue
        if name in variants:
            raise UnsupportedModelError(
                f"model: adapter {name!r} is a LoRA variant ({type(variants[name]).__name__}, e.g. DoRA); "
                "only plain LoRA (ΔW = s·B·A) can be reverted neuron by neuron."
            )
        out.append(LoraFactor(name, cast(nn.Linear, lora_A[name]).weight,
                              cast(nn.Linear, lora_B[name]).weight, float(scaling[name])))
    return out


def _base_linear(module: nn.Module) -> nn.Linear:
    """The wrapped base linear of a LoRA layer, or ``module`` itself."""
    return cast(nn.Linear, module.base_layer if _is_lora(module) else module)


def base_weight(module: nn.Module) -> torch.Tensor:
    """The base (pre-LoRA) weight, ``(out, in)``."""
    return _base_linear(module).weight


def base_bias(module: nn.Module) -> torch.Tensor | None:
    """The bias (LoRA does not change it), ``(out,)`` or ``None``."""
    return _base_linear(module).bias


def merged_weight(module: nn.Module, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``W + Σ scaling · B @ A`` over the active adapters, computed without touching the module."""
    w = base_weight(module).detach()
    w = w.to(dtype) if dtype is not None else w.clone()
    for f in lora_factors(module):
        w = w + f.scaling * (f.B.detach().to(w.dtype) @ f.A.detach().to(w.dtype))
    return w


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in t)


def check_adapter_fits(model: nn.Module, adapter_dir: str | Path) -> None:
    """Refuse a PEFT adapter that does not fit ``model`` exactly, before PEFT loads it.

    Every tensor in ``adapter_model.safetensors`` must name a module of ``model``: a LoRA
    factor ``<module>.lora_A.weight`` of shape ``(r, in_features)`` or ``<module>.lora_B.weight``
    of shape ``(out_features, r)`` on an existing linear, or a saved module's parameter
    (the head) of the model's shape. Every full module path in ``target_modules`` must
    exist too. PEFT itself would skip LoRA for absent layers silently (capture and
    evaluation would then run without them) and report a shape mismatch as a raw traceback.

    Parameters
    ----------
    model : torch.nn.Module
        The base model the adapter is meant for (not yet wrapped by PEFT).
    adapter_dir : path
        A PEFT adapter directory (``adapter_config.json`` and ``adapter_model.safetensors``).

    Raises
    ------
    ArtifactError
        Naming the adapter, the first offending tensors or modules, and what the model has.
    """
    import json

    from safetensors import safe_open

    adir = Path(adapter_dir)
    try:
        cfg = json.loads((adir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"adapter: {adir / 'adapter_config.json'} is not readable JSON ({exc}).") from exc
    if not isinstance(cfg, dict):
        raise ArtifactError(f"adapter: {adir / 'adapter_config.json'} is not a JSON object.")
    names = dict(model.named_modules())
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    has = f" (the model has {n_layers} layers)" if n_layers is not None else ""
    targets = cfg.get("target_modules")
    if isinstance(targets, list):
        absent_t = sorted(t for t in targets if isinstance(t, str) and "." in t and t not in names)
        if absent_t:
            raise ArtifactError(
                f"adapter: {adir} targets modules absent from the model{has}: {absent_t[:4]}"
                f"{' ...' if len(absent_t) > 4 else ''}; refusing to apply it partly."
            )
    layers_tt = cfg.get("layers_to_transform")
    if n_layers is not None and layers_tt is not None:
        wanted = [layers_tt] if isinstance(layers_tt, int) else list(layers_tt)
        outside = [x for x in wanted if not (isinstance(x, int) and 0 <= x < n_layers)]
        if outside:
            raise ArtifactError(f"adapter: {adir} layers_to_transform {outside} are outside 0..{n_layers - 1}{has}.")
    weights = adir / "adapter_model.safetensors"
    if not weights.is_file():
        if (adir / "adapter_model.bin").is_file():
            raise ArtifactError(f"adapter: {adir} holds adapter_model.bin (a pickle); only safetensors adapters are "
                                "loaded. Re-save it with save_pretrained(safe_serialization=True).")
        raise ArtifactError(f"adapter: {adir} has no adapter_model.safetensors.")
    try:
        with safe_open(str(weights), framework="np") as fh:
            shapes = {k: _shape(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:
        raise ArtifactError(f"adapter: {weights} is not a readable safetensors file ({exc}).") from exc
    absent: list[str] = []
    mismatched: list[str] = []
    params = dict(model.named_parameters())
    for key, shape in sorted(shapes.items()):
        name = key.removeprefix(_PEFT_PREFIX)
        if ".lora_A." in name or ".lora_B." in name:
            mod_name = name.split(".lora_")[0]
            mod = names.get(mod_name)
            if mod is None:
                absent.append(mod_name)
                continue
            inner = cast(nn.Module, mod.base_layer) if _is_lora(mod) else mod
            fin, fout = getattr(inner, "in_features", None), getattr(inner, "out_features", None)
            if fin is None or fout is None or len(shape) != 2:
                mismatched.append(f"{key} {shape} on {type(inner).__name__} {mod_name}")
            elif ".lora_A." in name and shape[1] != fin:
                mismatched.append(f"{key} {shape}, expected (r, {fin})")
            elif ".lora_B." in name and shape[0] != fout:
                mismatched.append(f"{key} {shape}, expected ({fout}, r)")
        else:
            pname = name.replace(".modules_to_save.default.", ".").replace(".original_module.", ".")
            if pname not in params:
                absent.append(pname)
            elif _shape(params[pname].shape) != shape:
                mismatched.append(f"{key} {shape}, expected {_shape(params[pname].shape)}")
    if absent:
        uniq = sorted(set(absent))
        raise ArtifactError(
            f"adapter: {adir} has weights for modules absent from the model{has}: {uniq[:4]}"
            f"{' ...' if len(uniq) > 4 else ''}; refusing to apply it partly."
        )
    if mismatched:
        raise ArtifactError(
            f"adapter: {adir} does not fit the model: {mismatched[0]}"
            f"{f' (and {len(mismatched) - 1} more)' if len(mismatched) > 1 else ''}."
        )
