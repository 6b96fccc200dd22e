"""Residual coordinates as players: layer records, ablated forward passes, loss deltas.

The players of layer ``l`` are the ``d_model`` coordinates of the residual stream ``h_l``
(App. I.4; docs/method.md §1, §8). Ablating a set ``S`` sets those coordinates to a baseline
(zero by default, or the training-set mean), i.e. ``delta_k = (h_k - baseline_k) e_k``: the
record form of docs/method.md (R1) with ``a = h_l``, ``a_base = baseline``, ``W' = W = I``,
``y = h_l``.

The **layer-local readout** (App. I.3; docs/method.md §2, §8) clones the classifier head and
applies it to ``h_l`` *after the final LayerNorm*, read at the true label::

    f_l(x) = W_out[y(x)] . LayerNorm(h_l(x)) + b_out[y(x)]

Applied to the raw ``h_l`` it would be linear in the players and every pairwise ablation
synergy would vanish (docs/method.md §2). For the last layer ``h_{B+1}`` this is exactly the
model's logit at the true label; for earlier layers it is the logit lens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import InputError
from ..records import LayerRecord, Readout
from .model import GatedResidualMLP

__all__ = [
    "ablated_logits",
    "baseline_vector",
    "layer_activations",
    "layer_record",
    "local_readout",
    "loss_deltas",
    "ablation_accuracy",
]

BaselineKind = Literal["zero", "mean"]


@torch.no_grad()
def layer_activations(model: GatedResidualMLP, x: np.ndarray, batch_size: int = 4096) -> list[np.ndarray]:
    """``[h_1, ..., h_{B+1}]`` on images ``x`` (N, 784), each float32 of shape (N, d_model)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    chunks: list[list[np.ndarray]] = []
    for start in range(0, xt.shape[0], batch_size):
        chunks.append([h.numpy() for h in model.residuals(xt[start : start + batch_size])])
    return [np.concatenate([c[i] for c in chunks]) for i in range(model.config.n_layers)]


def baseline_vector(
    model: GatedResidualMLP, layer: int, kind: BaselineKind = "zero", x_train: np.ndarray | None = None
) -> np.ndarray:
    """The ablation value of each coordinate of ``h_layer``, shape (d_model,).

    ``"zero"``: zeros. ``"mean"``: the training-set mean of ``h_layer`` (needs ``x_train``).
    """
    d = model.config.d_model
    if kind == "zero":
        return np.zeros(d, dtype=np.float32)
    if kind == "mean":
        if x_train is None:
            raise InputError("x_train: mean ablation needs the training images, got None.")
        return layer_activations(model, x_train)[layer - 1].mean(0).astype(np.float32)
    raise InputError(f"baseline: expected 'zero' or 'mean', got {kind!r}.")


def local_readout(model: GatedResidualMLP) -> Readout:
    """The cloned head after the final LayerNorm (a (10, d) head, picked per input by label)."""
    return Readout(
        norm="layer",
        weight=model.head.weight.detach().numpy().astype(np.float64),
        bias=model.head.bias.detach().numpy().astype(np.float64),
        gamma=model.norm.weight.detach().numpy().astype(np.float64),
        beta=model.norm.bias.detach().numpy().astype(np.float64),
        eps=float(model.norm.eps),
    )


def layer_record(
    model: GatedResidualMLP,
    x: np.ndarray,
    labels: np.ndarray,
    layer: int,
    *,
    baseline: np.ndarray | None = None,
    h: np.ndarray | None = None,
    meta: dict | None = None,
) -> LayerRecord:
    """The :class:`~hedonic_neurons.records.LayerRecord` of layer ``h_layer`` (docs/method.md §1, §8).

    Parameters
    ----------
    model : GatedResidualMLP
    x : numpy.ndarray, shape (N, 784)
        Images (ignored when ``h`` is given).
    labels : numpy.ndarray of int, shape (N,)
        True digits: the readout's ``target_index``.
    layer : int
        1-based layer ``l`` of ``h_l``.
    baseline : numpy.ndarray, shape (d_model,), optional
        Ablation values (default zeros); see :func:`baseline_vector`.
    h : numpy.ndarray, shape (N, d_model), optional
        Precomputed ``h_layer``.

    Returns
    -------
    LayerRecord
        ``a = h = y = h_l``, ``a_base`` = baseline broadcast to (N, d), ``w_down =
        w_down_base = I`` (d x d), ``readout`` = :func:`local_readout`.
    """
    if h is None:
        h = layer_activations(model, x)[layer - 1]
    h = np.asarray(h, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n, d = h.shape
    if labels.shape != (n,):
        raise InputError(f"labels: expected shape ({n},) to match h_{layer}, got {labels.shape}.")
    base = np.zeros(d, np.float32) if baseline is None else np.asarray(baseline, np.float32)
    if base.shape != (d,):
        raise InputError(f"baseline: expected shape ({d},), got {base.shape}.")
    eye = np.eye(d, dtype=np.float32)
    return LayerRecord(
        layer=int(layer), h=h, a=h, a_base=np.broadcast_to(base, (n, d)).copy(), y=h,
        w_down=eye, w_down_base=eye, readout=local_readout(model),
        target_index=labels, labels=labels.astype(np.float32),
        meta={"setting": "mnist", "players": "residual coordinates", "layer_name": f"h{layer}", **(meta or {})},
    )


@torch.no_grad()
def ablated_logits(
    model: GatedResidualMLP,
    h: np.ndarray | torch.Tensor,
    layer: int,
    coalitions: Sequence[Sequence[int] | np.ndarray],
    baseline: np.ndarray | None = None,
    batch_size: int = 8192,
) -> torch.Tensor:
    """Logits after setting each coalition's coordinates of ``h_layer`` to the baseline.

    Parameters
    ----------
    h : array, shape (N, d_model)
        ``h_layer`` on the evaluation images.
    coalitions : sequence of index arrays
        One ablation per entry (an empty entry gives the unablated logits).

    Returns
    -------
    torch.Tensor, shape (len(coalitions), N, n_classes)
        The rest of the network run from the ablated ``h_layer`` (App. I.6 (1)).
    """
    ht = torch.as_tensor(np.asarray(h, dtype=np.float32))
    n, d = ht.shape
    base = torch.zeros(d) if baseline is None else torch.as_tensor(np.asarray(baseline, np.float32))
    out = torch.empty(len(coalitions), n, model.config.n_classes)
    per_batch = max(1, batch_size // max(1, n))
    for start in range(0, len(coalitions), per_batch):
        group = coalitions[start : start + per_batch]
        stack = ht.unsqueeze(0).repeat(len(group), 1, 1)
        for g, members in enumerate(group):
            idx = torch.as_tensor(np.array(members, dtype=np.int64).reshape(-1))
            stack[g][:, idx] = base[idx]
        out[start : start + len(group)] = model.forward_from(stack.reshape(-1, d), layer).reshape(len(group), n, -1)
    return out


def ablation_accuracy(
    model: GatedResidualMLP,
    h: np.ndarray,
    labels: np.ndarray,
    layer: int,
    coalitions: Sequence[Sequence[int] | np.ndarray],
    baseline: np.ndarray | None = None,
) -> np.ndarray:
    """Test accuracy with each coalition ablated in ``h_layer``, shape (len(coalitions),)."""
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logits = ablated_logits(model, h, layer, coalitions, baseline)
    return (logits.argmax(-1) == y).float().mean(-1).numpy().astype(np.float64)


@torch.no_grad()
def loss_deltas(
    model: GatedResidualMLP,
    h: np.ndarray,
    labels: np.ndarray,
    layer: int,
    baseline: np.ndarray | None = None,
    *,
    progress: bool = False,
    chunk: int = 32,
) -> np.ndarray:
    """Per-coordinate importance ``Delta_i = L(h_{l,-i}) - L(h_l)`` (App. I.3), shape (d_model,).

    ``L`` is the mean cross-entropy at the true labels of the full network run from
    ``h_l`` with coordinate ``i`` set to its baseline (propagated through the remaining
    blocks, the final LayerNorm and the classifier).
    """
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    ht = torch.as_tensor(np.asarray(h, dtype=np.float32))
    base_loss = float(F.cross_entropy(model.forward_from(ht, layer), y))
    d = ht.shape[1]
    out = np.empty(d)
    for start in tqdm(range(0, d, chunk), desc=f"loss deltas h{layer}", disable=not progress, leave=False):
        players = [[i] for i in range(start, min(d, start + chunk))]
        logits = ablated_logits(model, ht, layer, players, baseline)
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(len(players)), reduction="none")
        out[start : start + len(players)] = losses.reshape(len(players), -1).mean(-1).numpy() - base_loss
    return out
