"""Readouts of a model under ablation: ``local`` (layer-local logit) and ``final`` (docs/method.md §2).

* ``local`` (default): ``f(y) = w^T N(y) + b`` on layer ℓ's pooled output ``y``, with ``N``
  the model's final RMSNorm/LayerNorm (decoders) or the block's own output LayerNorm
  (post-norm encoders), and ``w, b`` the task head. The forward pass stops after layer ℓ.
* ``final``: the model's own scalar output (the rest of the network runs), for extrinsic
  evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, Literal

import numpy as np
import torch

from ..errors import InputError
from ..records import Readout
from .ablation import ablate
from .arch import architecture
from .capture import collect_pooled, layer_readout
from .load import score

__all__ = ["apply_readout", "final_readout", "local_readout", "readout"]


def apply_readout(ro: Readout, y: torch.Tensor, target_index: torch.Tensor | None = None) -> torch.Tensor:
    """Torch twin of :meth:`Readout.__call__`: ``f`` on rows of ``y`` (N, d) -> (N,), in ``y``'s dtype."""
    dt, dev = y.dtype, y.device
    t = lambda v: torch.as_tensor(np.asarray(v), dtype=dt, device=dev)  # noqa: E731
    d = y.shape[-1]
    gamma = torch.ones(d, dtype=dt, device=dev) if ro.gamma is None else t(ro.gamma)
    if ro.norm == "rms":
        z = y / torch.sqrt((y * y).mean(-1, keepdim=True) + ro.eps) * gamma
    elif ro.norm == "layer":
        c = y - y.mean(-1, keepdim=True)
        z = c / torch.sqrt((c * c).mean(-1, keepdim=True) + ro.eps) * gamma
        if ro.beta is not None:
            z = z + t(ro.beta)
    else:
        z = y
    w = t(ro.weight)
    b = t(ro.bias)
    if w.ndim == 1:
        return z @ w + b.reshape(-1)[0]
    if target_index is None:
        raise InputError("target_index: a (C, d) head needs a per-input target index, got None.")
    ti = torch.as_tensor(target_index, device=dev, dtype=torch.int64)
    return (z * w[ti]).sum(-1) + (b[ti] if b.ndim else b)


def _ctx(model: torch.nn.Module, ablation: Mapping[int, Sequence[int]] | None) -> Any:
    return nullcontext() if not ablation else ablate(model, ablation)


def local_readout(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    layer: int,
    *,
    ablation: Mapping[int, Sequence[int]] | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The layer-local readout of ``layer`` over ``batches`` (docs/method.md §2), optionally ablated.

    Parameters
    ----------
    ablation : mapping, optional
        ``{layer: neurons}`` reverted to base (see :func:`~hedonic_neurons.ablation.ablate`)
        during the forward passes.

    Returns
    -------
    torch.Tensor, shape (N,)
    """
    spec = architecture(model)
    ro = layer_readout(model, layer, spec=spec)
    outs = []
    with _ctx(model, ablation), torch.no_grad():
        for batch in batches:
            y = collect_pooled(model, batch, [layer], spec=spec)[layer]["y"].to(dtype)
            outs.append(apply_readout(ro, y))
    return torch.cat(outs)


def final_readout(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    ablation: Mapping[int, Sequence[int]] | None = None,
) -> torch.Tensor:
    """The model's scalar output over ``batches`` (shape (N,)), optionally ablated."""
    with _ctx(model, ablation), torch.no_grad():
        return torch.cat([score(model, b) for b in batches])


def readout(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    layer: int,
    kind: Literal["local", "final"] = "local",
    *,
    ablation: Mapping[int, Sequence[int]] | None = None,
) -> torch.Tensor:
    """Dispatch to :func:`local_readout` (default) or :func:`final_readout`; shape (N,)."""
    if kind == "local":
        return local_readout(model, batches, layer, ablation=ablation)
    if kind == "final":
        return final_readout(model, batches, ablation=ablation)
    raise InputError(f"kind: expected 'local' or 'final', got {kind!r}.")
