"""Brute-force PAS through the real model: the reference the closed forms are tested against.

Every single and pair ablation is a real forward pass of the PEFT model under
:func:`~hedonic_neurons.models.ablation.ablate` (LoRA factors masked, nothing merged); the
local readout (docs/method.md §2) is computed from the ablated layer's pooled output. Cost:
``n(n+1)/2 + 1`` forward passes over all batches, so use it on small layers.

Precision: ``y`` comes from the model's forward pass and the readout is applied by hand in
float64 (:func:`~hedonic_neurons.models.readout.local_readout`), never through the model's own
final norm, whose Hugging Face LLaMA/Mistral implementation rounds to float32 even in a
float64 model. So in a float64 model this reference has no float32 floor: on SmolLM2 (layer
15, LoRA r = 8) it matches the closed form to 8e-16 absolute (1e-11 of the largest synergy),
where reading through ``LlamaRMSNorm`` would be off by 1e-7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError, LinearReadoutError
from ..models.arch import architecture
from ..models.readout import local_readout

__all__ = ["pas_brute_force"]


def pas_brute_force(
    model: torch.nn.Module,
    batches: Sequence[Mapping[str, Any]],
    layer: int,
    pairs: np.ndarray | Sequence[tuple[int, int]] | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """PAS by explicit ablation: ``E_x[f(y) − f(y_{−i}) − f(y_{−j}) + f(y_{−ij})]`` (eq. 7).

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`~hedonic_neurons.models.load_scalar_model` with LoRA on ``layer``.
    batches : sequence of mapping
        Tokenizer batches (re-iterated for every ablation).
    layer : int
    pairs : array_like of int, shape (m, 2), optional
        Pairs to evaluate; default all pairs.

    Returns
    -------
    numpy.ndarray, float64
        Shape (n, n) (symmetric, zero diagonal) without ``pairs``, else (m,).
    """
    from tqdm.auto import tqdm

    spec = architecture(model)
    batches = list(batches)
    n = spec.d_ff
    if pairs is None:
        ii, jj = np.triu_indices(n, 1)
        arr = np.stack([ii, jj], 1)
    else:
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise InputError(f"pairs: expected indices in [0, {n}), got min {arr.min()}, max {arr.max()}.")
    from ..models.capture import layer_readout

    if layer_readout(model, layer, spec=spec).is_linear:  # pragma: no cover - models always have a norm
        raise LinearReadoutError("the local readout of this model is linear; PAS would be identically zero.")
    f0 = local_readout(model, batches, layer)
    singles: dict[int, torch.Tensor] = {}
    todo = sorted(set(arr.reshape(-1).tolist()))
    bar = tqdm(total=len(todo) + len(arr), desc=f"brute-force PAS layer {layer}", disable=not progress)
    for k in todo:
        singles[k] = local_readout(model, batches, layer, ablation={layer: [k]})
        bar.update(1)
    vals = np.zeros(len(arr), dtype=np.float64)
    for m, (i, j) in enumerate(arr.tolist()):
        if i != j:
            fij = local_readout(model, batches, layer, ablation={layer: [i, j]})
            vals[m] = float((f0 - singles[i] - singles[j] + fij).mean())
        bar.update(1)
    bar.close()
    if pairs is not None:
        return vals
    out = np.zeros((n, n), dtype=np.float64)
    out[arr[:, 0], arr[:, 1]] = vals
    out[arr[:, 1], arr[:, 0]] = vals
    return out
