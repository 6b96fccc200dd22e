"""Ablation = revert neurons to their pre-LoRA parameters by masking LoRA factors (docs/method.md §1).

Ablating neuron ``k`` of layer ``ℓ`` restores row ``k`` of the in-projections
(``W_up``/``W_gate`` or ``W_in``) and column ``k`` of ``W_down`` to their base values. With
PEFT's factors ``ΔW = s·B·A`` (``lora_A.weight`` is ``(r, in)``, ``lora_B.weight`` is
``(out, r)``) that is: zero row ``k`` of ``lora_B`` of the in-projections and column ``k``
of ``lora_A`` of the down projection. Nothing is merged; the masked entries are copied
aside and written back bit for bit on exit, also when the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .arch import architecture
from .lora import lora_factors, mlp_linears

__all__ = ["ablate"]


def _neuron_index(neurons: Any, n: int, layer: int) -> torch.Tensor:
    idx = np.unique(np.asarray(neurons, dtype=np.int64).reshape(-1))
    if idx.size and (idx[0] < 0 or idx[-1] >= n):
        raise InputError(f"neurons[{layer}]: expected indices in [0, {n}), got min {idx[0]}, max {idx[-1]}.")
    return torch.from_numpy(idx)


@contextmanager
def ablate(model: torch.nn.Module, neurons: Mapping[int, Sequence[int] | np.ndarray]) -> Iterator[None]:
    """Context manager: revert the given neurons' LoRA parameters to base (docs/method.md §1, App. G).

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`~hedonic_neurons.models.load_scalar_model` with unmerged LoRA.
    neurons : mapping of int to sequence of int
        ``{layer: neuron indices}``; indices are MLP channels in ``[0, d_ff)``.

    Raises
    ------
    InputError
        If a layer carries no LoRA on its MLP, or an index is out of range.

    Examples
    --------
    >>> with ablate(model, {12: [3, 17]}):  # doctest: +SKIP
    ...     s = score(model, batch)
    """
    spec = architecture(model)
    saved: list[tuple[torch.Tensor, tuple[Any, ...], torch.Tensor]] = []
    plan: list[tuple[torch.Tensor, tuple[Any, ...]]] = []
    for layer, ks in neurons.items():
        if not 0 <= int(layer) < spec.n_layers:
            raise InputError(f"neurons: layer {layer} is out of range; the model has layers 0..{spec.n_layers - 1}.")
        idx = _neuron_index(ks, spec.d_ff, int(layer))
        if idx.numel() == 0:
            continue
        linears = mlp_linears(spec, model, int(layer))
        found = False
        for role, module in linears.items():
            for f in lora_factors(module):
                found = True
                if role == "down":
                    plan.append((f.A, (slice(None), idx.to(f.A.device))))
                else:
                    plan.append((f.B, (idx.to(f.B.device), slice(None))))
        if not found:
            raise InputError(f"neurons: layer {layer} has no active LoRA on its MLP; nothing to revert to base.")
    try:
        with torch.no_grad():
            for tensor, where in plan:
                saved.append((tensor, where, tensor[where].clone()))
                tensor[where] = 0
        yield
    finally:
        with torch.no_grad():
            for tensor, where, values in reversed(saved):
                tensor[where] = values
