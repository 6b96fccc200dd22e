"""Exact coalition ablation with prefix reuse (docs/method.md §8.5).

One forward pass per batch records the arguments of blocks ``ℓ..L−1``; each coalition then replays
only those blocks, the final norm, the pooling and the head under
:func:`~hedonic_neurons.models.ablation.ablate`, bit-identical to the full forward pass. Private;
:func:`hedonic_neurons.models.attribution.exact_coalition_scores` is the public entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError, UnsupportedModelError
from ._attribution_inputs import (
    Batch,
    _check_layer,
    _eval_mode,
    _first,
    _iterate,
    _model_device,
)
from .ablation import ablate
from .arch import ArchSpec, architecture, unwrap
from .load import model_inputs, pooled_positions, score


# ----------------------------------------------------------------------------- exact, prefix reuse
@dataclass
class _Suffix:
    """Blocks ``ℓ..L−1`` with the arguments the backbone gave them, and the pooling rows."""

    blocks: list[torch.nn.Module]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]]
    hidden_in_kwargs: list[bool]
    final_norm: torch.nn.Module | None
    head: torch.nn.Module
    rows: torch.Tensor
    pos: torch.Tensor

    def run(self) -> torch.Tensor:
        """Scores ``(B,)`` from the cached input of block ``ℓ`` (the model's current weights)."""
        hidden: torch.Tensor | None = None
        for block, (args, kwargs), as_kw in zip(self.blocks, self.calls, self.hidden_in_kwargs):
            if hidden is not None:
                if as_kw:
                    kwargs = {**kwargs, "hidden_states": hidden}
                else:
                    args = (hidden, *args[1:])
            hidden = _first(block(*args, **kwargs))
        assert hidden is not None
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return self.head(hidden[self.rows, self.pos])[:, 0]


def _prefix(model: torch.nn.Module, spec: ArchSpec, layer: int, batch: Batch) -> tuple[torch.Tensor, _Suffix]:
    """One full forward pass (the unablated scores) recording the arguments of blocks ``ℓ..L−1``."""
    blocks = list(spec.layer_modules(model))[layer:]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    as_kw: list[bool] = []

    def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append((args, dict(kwargs)))
        as_kw.append(not args)

    handles = [b.register_forward_pre_hook(pre_hook, with_kwargs=True) for b in blocks]
    try:
        full = score(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    if len(calls) != len(blocks):
        raise UnsupportedModelError(f"model: expected blocks {layer}..{spec.n_layers - 1} to run once each, "
                                    f"saw {len(calls)} calls for {len(blocks)} blocks.")
    device = full.device
    mask = model_inputs(spec, batch, device)["attention_mask"]
    pos = pooled_positions(mask, spec.pooling)
    norm = None if spec.final_norm is None else getattr(spec.backbone_module(model), spec.final_norm)
    suffix = _Suffix(blocks, calls, as_kw, norm, spec.head_module(model),
                     torch.arange(pos.shape[0], device=device), pos)
    return full, suffix


def _exact_batch(
    model: torch.nn.Module, spec: ArchSpec, layer: int, batch: Batch, members: Sequence[np.ndarray], check: bool
) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        full, suffix = _prefix(model, spec, layer, batch)
        if check and not torch.equal(suffix.run(), full):
            raise UnsupportedModelError(
                f"model: replaying blocks {layer}..{spec.n_layers - 1} from the cached block input does not "
                f"reproduce the forward pass of this {type(unwrap(model)).__name__}; use "
                "hedonic_neurons.metrics.ood.ood_drop (full forward per coalition) instead.")
        out = torch.empty((full.shape[0], len(members)), dtype=torch.float64)
        for c, m in enumerate(members):
            with ablate(model, {layer: m}):
                out[:, c] = suffix.run().to(torch.float64).cpu()
    return full.to(torch.float64).cpu().numpy(), out.numpy()


def _exact_pass(
    model: torch.nn.Module, batches: Iterable[Batch], layer: int, members: Sequence[np.ndarray], *,
    device: str | torch.device | None, progress: bool, check_replay: bool,
) -> tuple[np.ndarray, np.ndarray]:
    spec = architecture(model)
    layer = _check_layer(spec, model, layer)
    _model_device(model, device)
    full, ablated = [], []
    with _eval_mode(model):
        for i, batch in enumerate(_iterate(batches, progress, f"exact ablations, layer {layer}")):
            s, a = _exact_batch(model, spec, layer, batch, members, check=check_replay and i == 0)
            full.append(s)
            ablated.append(a)
    if not full:
        raise InputError("batches: expected at least one batch, got none.")
    return np.concatenate(full), np.concatenate(ablated)
