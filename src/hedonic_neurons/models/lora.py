"""Reading PEFT LoRA layers: base weights, merged weights and the low-rank factors.

PEFT's tensor layouts (``peft.tuners.lora.Linear``): ``lora_A[name].weight`` is
``(r, in_features)``, ``lora_B[name].weight`` is ``(out_features, r)``, and the update is
``ΔW = scaling[name] · B @ A`` (``(out, in)``, the layout of ``nn.Linear.weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ..errors import InputError, UnsupportedModelError
from .arch import ArchSpec

__all__ = ["LoraFactor", "base_bias", "base_weight", "lora_factors", "merged_weight", "mlp_linears"]


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
