"""OOD drop of every coalition from one backward pass per batch (attribution patching, docs/method.md §8.5).

Ablating coalition ``C`` at layer ``ℓ`` reverts its neurons to their pre-LoRA weights
(:func:`~hedonic_neurons.models.ablation.ablate`). By (R1) of docs/method.md §1 that
subtracts ``Σ_{k∈C} δ_k(t)`` from the MLP output at *every* position ``t``, with

    δ_k(t) = W'_down[:,k] · a_k(t) − W_down[:,k] · a_base,k(t).

Layers before ``ℓ`` are untouched, so the change is exact at the MLP output and only its
propagation through blocks ``ℓ..L−1`` and the head is non-linear. To first order
(attribution patching, AtP: Kramár et al., 2024)

    score_{−C}(x) ≈ score(x) − Σ_{k∈C} e_k(x),
    e_k(x) = Σ_t g_t(x)^T δ_k(t)
           = Σ_t (g_t^T W_down[:,k]) (a_k(t) − a_base,k(t)) + (g_t^T ΔW_down[:,k]) a_k(t),

with ``g_t = ∂score/∂(MLP output at t)`` and ``ΔW_down = s·B·A`` the LoRA update. One
forward and one backward pass per batch give ``g``; the per-neuron attributions ``e``
(``N × n``) then cost two ``(B·T, d) @ (d, n)`` products per batch (``g @ W_down`` and
``(g @ B) @ A``), never an ``N × T × n × d`` tensor. The estimated score of every coalition
is ``score − e @ M`` with ``M`` the ``n × K`` membership matrix;
:mod:`hedonic_neurons.metrics.ood_estimate` computes the task metric (NDCG@10 or −MSE) from
those scores with the exact path's metric function.

The error is second order in the coalition's ``δ`` (it shrinks quadratically with the LoRA
scale) but it is not small when ``C`` moves the residual stream far (large coalitions,
saturated attention or norms), so every estimate is meant to be checked:
:func:`hedonic_neurons.metrics.ood_estimate.verify_estimates` runs the exact ablation on a
seeded, size-stratified sample of coalitions and reports the rank correlation and the error
of the metric drop.

**Exact ablation with prefix reuse.** :func:`exact_coalition_scores` runs the model once per
batch with forward pre-hooks on blocks ``ℓ..L−1`` that record each block's positional and
keyword arguments (hidden states, attention mask, rotary position embeddings, position ids,
exactly as the backbone built them). Each coalition then replays only blocks ``ℓ..L−1``,
the final norm, the pooling and the head under :func:`ablate`. The replay performs the same
operations on the same tensors as the full forward pass, so its scores are bit-identical
to ``score(model, batch)`` under ``ablate`` (checked on the first batch of every call, and
by the tests for all four families).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError, UnsupportedModelError
from ._attribution_inputs import (
    Batch,
    Coalitions,
    _check_layer,
    _eval_mode,
    _frozen,
    _iterate,
    _model_device,
    coalition_members,
    membership_matrix,
)
from ._replay import _exact_batch, _exact_pass, _prefix, _Suffix  # noqa: F401  (_prefix, _Suffix: re-exported for tests and benchmarks)
from .arch import ArchSpec, architecture, unwrap
from .load import score
from .lora import base_bias, base_weight, lora_factors, mlp_linears

__all__ = [
    "CoalitionScores",
    "coalition_members",
    "coalition_scores",
    "estimate_coalition_scores",
    "estimated_scores_from_attributions",
    "exact_coalition_scores",
    "membership_matrix",
    "neuron_attributions",
]


# ----------------------------------------------------------------------------- attributions
def _work_dtype(model: torch.nn.Module) -> torch.dtype:
    dtype = next(unwrap(model).parameters()).dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def _base_activations(spec: ArchSpec, model: torch.nn.Module, layer: int, h: torch.Tensor) -> torch.Tensor:
    """``a_base`` (docs/method.md §1): the MLP activations with the base in-projections on ``h``."""
    lin = mlp_linears(spec, model, layer)
    act = spec.sub(model, layer, spec.act)

    def pre(module: torch.nn.Module) -> torch.Tensor:
        b = base_bias(module)
        return torch.nn.functional.linear(h, base_weight(module).detach().to(h.dtype),
                                          None if b is None else b.detach().to(h.dtype))

    if spec.gated:
        return act(pre(lin["gate"])) * pre(lin["up"])
    return act(pre(lin["in"]))


def _attribute_batch(
    model: torch.nn.Module, spec: ArchSpec, layer: int, batch: Batch
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(B,)`` and attributions ``e`` ``(B, n)`` of one batch (one forward + one backward)."""
    seen: dict[str, torch.Tensor] = {}
    down = spec.sub(model, layer, spec.down_proj)
    mlp_in = spec.sub(model, layer, spec.mlp_input)

    def h_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["h"] = (args[0] if args else next(iter(kwargs.values()))).detach()

    def down_hook(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        seen["a"] = args[0].detach()
        # a fresh leaf: the backward pass stops here and yields g_t = ∂score/∂(MLP output at t)
        z = output.detach().requires_grad_(True)
        seen["z"] = z
        return z

    handles = [mlp_in.register_forward_pre_hook(h_hook, with_kwargs=True), down.register_forward_hook(down_hook)]
    try:
        with _frozen(model), torch.enable_grad():
            s = score(model, batch)
            if "z" not in seen or "h" not in seen:
                raise UnsupportedModelError(f"model: hooks on layer {layer}'s MLP did not fire; "
                                            "unexpected module structure.")
            (g,) = torch.autograd.grad(s.sum(), seen["z"], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        dtype = _work_dtype(model)
        g = torch.zeros_like(seen["z"]) if g is None else g
        g = g.to(dtype)
        a = seen["a"].to(dtype)
        a_base = _base_activations(spec, model, layer, seen["h"].to(dtype)).to(dtype)
        # e_k = Σ_t (g_t·W[:,k]) (a_k − a_base,k) + (g_t·ΔW[:,k]) a_k, ΔW = Σ s·B·A
        g_w = g @ base_weight(down).detach().to(dtype)
        e = (g_w * (a - a_base)).sum(dim=1)
        for f in lora_factors(down):
            g_delta = (g @ f.B.detach().to(dtype)) @ f.A.detach().to(dtype)
            e = e + f.scaling * (g_delta * a).sum(dim=1)
    return s.detach().to(torch.float64).cpu().numpy(), e.to(torch.float64).cpu().numpy()


def neuron_attributions(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    *,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """First-order effect of ablating each neuron of ``layer`` on the model's score.

    ``e_k(x) = Σ_t g_t(x)^T δ_k(t)`` (module docstring; δ from (R1), docs/method.md §1), so
    ``score_{−C}(x) ≈ score(x) − Σ_{k∈C} e_k(x)``. One forward and one backward pass per
    batch, with hooks on the layer's MLP; the score is the model's own scalar output
    (:func:`~hedonic_neurons.models.score`: last-token pooling for decoders, CLS for BERT).

    Parameters
    ----------
    model : torch.nn.Module
        A scalar model from :func:`~hedonic_neurons.models.load_scalar_model` with unmerged
        LoRA on ``layer``'s MLP; it is used in eval mode and left unchanged.
    batches : iterable of tokenizer batches
        ``input_ids`` ``(B, T)``, ``attention_mask``; iterated once.
    layer : int
        The layer whose MLP neurons are the players.
    device : str or torch.device, optional
        Must be the model's device if given (default: the model's device).
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    numpy.ndarray of float64, shape (N, n)
        ``N`` inputs in batch order, ``n = d_ff``. Computed in float64 for float64 models,
        else in float32 (the backward pass runs in the model's dtype).

    Raises
    ------
    InputError
        If the layer is out of range or has no LoRA, ``device`` is not the model's, or
        ``batches`` is empty.
    """
    return coalition_scores(model, batches, layer, device=device, progress=progress).attributions


def estimated_scores_from_attributions(
    base_scores: np.ndarray, attributions: np.ndarray, coalitions: Coalitions
) -> np.ndarray:
    """``score − e @ M``: the first-order score of every input with every coalition ablated.

    Parameters
    ----------
    base_scores : array_like, shape (N,)
        Scores of the unablated model.
    attributions : array_like, shape (N, n)
        Output of :func:`neuron_attributions` on the same inputs.
    coalitions : Partition or sequence of index sequences
        ``K`` coalitions of the ``n`` neurons (see :func:`coalition_members`).

    Returns
    -------
    numpy.ndarray of float64, shape (N, K)
    """
    s = np.asarray(base_scores, dtype=np.float64)
    e = np.asarray(attributions, dtype=np.float64)
    if e.ndim != 2 or s.shape != (e.shape[0],):
        raise InputError(f"base_scores, attributions: expected shapes (N,) and (N, n), "
                         f"got {s.shape} and {e.shape}.")
    if not (np.isfinite(s).all() and np.isfinite(e).all()):
        raise InputError("base_scores, attributions: found non-finite values.")
    members = coalition_members(coalitions, e.shape[1])
    m = membership_matrix(members, e.shape[1])
    return s[:, None] - np.asarray((m.T @ e.T).T)


def estimate_coalition_scores(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    coalitions: Coalitions,
    *,
    base_scores: np.ndarray | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """First-order scores of every input with every coalition of ``layer`` ablated.

    Parameters
    ----------
    model, batches, layer, device, progress
        As in :func:`neuron_attributions`.
    coalitions : Partition or sequence of index sequences
        ``K`` coalitions of the layer's neurons.
    base_scores : array_like, shape (N,), optional
        Unablated scores to start from (default: those of the attribution pass itself).

    Returns
    -------
    numpy.ndarray of float64, shape (N, K)
        ``score(x) − Σ_{k∈C} e_k(x)``.
    """
    spec = architecture(model)
    coalition_members(coalitions, spec.d_ff)  # bad coalitions fail before any forward pass
    res = coalition_scores(model, batches, layer, device=device, progress=progress)
    s, e = res.base_scores, res.attributions
    if base_scores is not None:
        s = np.asarray(base_scores, dtype=np.float64)
        if s.shape != (e.shape[0],):
            raise InputError(f"base_scores: expected shape ({e.shape[0]},) (one per input), got {s.shape}.")
    return estimated_scores_from_attributions(s, e, coalitions)


def exact_coalition_scores(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    coalitions: Coalitions,
    *,
    device: str | torch.device | None = None,
    progress: bool = False,
    return_base: bool = False,
    check_replay: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact scores with each coalition of ``layer`` ablated, running the prefix once per batch.

    Per batch: one full forward pass records the arguments of blocks ``ℓ..L−1``; each
    coalition then reruns only those blocks, the final norm, the pooling and the head under
    :func:`~hedonic_neurons.models.ablation.ablate`. Scores are bit-identical to
    ``score(model, batch)`` under ``ablate`` (verified on the first batch: a replay without
    ablation must equal the full pass exactly, else :class:`UnsupportedModelError`).

    Parameters
    ----------
    model, batches, layer, device, progress
        As in :func:`neuron_attributions`.
    coalitions : Partition or sequence of index sequences
        ``K`` coalitions of the layer's neurons.
    return_base : bool
        Also return the unablated scores.
    check_replay : bool
        Check on the first batch that the replay reproduces the full pass bit for bit
        (one extra suffix pass); turn off only where kernels are not deterministic.

    Returns
    -------
    numpy.ndarray of float64, shape (N, K)
        Or ``(base (N,), ablated (N, K))`` with ``return_base=True``.
    """
    spec = architecture(model)
    members = coalition_members(coalitions, spec.d_ff)
    base, ablated = _exact_pass(model, batches, layer, members, device=device, progress=progress,
                                check_replay=check_replay)
    return (base, ablated) if return_base else ablated


# ----------------------------------------------------------------------------- both, one pass
@dataclass(frozen=True)
class CoalitionScores:
    """Scores of one layer's coalitions from one pass over the data (:func:`coalition_scores`).

    Attributes
    ----------
    layer : int
    base_scores : numpy.ndarray of float64, shape (N,)
        The unablated model's scores.
    attributions : numpy.ndarray of float64, shape (N, n)
        Per-neuron first-order effects ``e_k(x)`` (:func:`neuron_attributions`).
    exact_scores : numpy.ndarray of float64, shape (N, S)
        Exact scores with each of the ``S`` coalitions passed as ``exact`` ablated (prefix
        reuse); ``(N, 0)`` when none were asked for.
    seconds_attribution : float
        Wall time of the forward + backward passes and the attribution products.
    seconds_exact : float
        Wall time of the exact ablations (including their prefix pass).
    """

    layer: int
    base_scores: np.ndarray
    attributions: np.ndarray
    exact_scores: np.ndarray
    seconds_attribution: float
    seconds_exact: float

    def estimated(self, coalitions: Coalitions) -> np.ndarray:
        """First-order scores ``(N, K)`` of ``coalitions`` (:func:`estimated_scores_from_attributions`)."""
        return estimated_scores_from_attributions(self.base_scores, self.attributions, coalitions)


def coalition_scores(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    layer: int,
    *,
    exact: Coalitions | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> CoalitionScores:
    """Attributions of every neuron and exact scores of some coalitions, reading ``batches`` once.

    Per batch: one forward + backward pass (:func:`neuron_attributions`), then, if ``exact``
    is given, one forward pass that caches the input of block ``ℓ`` and one suffix replay
    per coalition under ``ablate`` (:func:`exact_coalition_scores`). This is what
    :func:`hedonic_neurons.metrics.ood_estimate.verify_estimates` needs on a streaming
    iterator.

    Parameters
    ----------
    model, batches, layer, device, progress
        As in :func:`neuron_attributions`.
    exact : Partition or sequence of index sequences, optional
        Coalitions to ablate exactly (e.g. a verification sample).

    Returns
    -------
    CoalitionScores
    """
    spec = architecture(model)
    members = [] if exact is None else coalition_members(exact, spec.d_ff)
    layer = _check_layer(spec, model, layer)
    _model_device(model, device)
    t_attr = t_exact = 0.0
    scores, attributions, exact_scores = [], [], []
    with _eval_mode(model):
        for i, batch in enumerate(_iterate(batches, progress, f"attributions, layer {layer}")):
            t0 = time.perf_counter()
            s, e = _attribute_batch(model, spec, layer, batch)
            t1 = time.perf_counter()
            if members:
                exact_scores.append(_exact_batch(model, spec, layer, batch, members, check=i == 0)[1])
            else:
                exact_scores.append(np.zeros((s.shape[0], 0)))
            t_attr += t1 - t0
            t_exact += time.perf_counter() - t1
            scores.append(s)
            attributions.append(e)
    if not scores:
        raise InputError("batches: expected at least one batch, got none.")
    return CoalitionScores(layer, np.concatenate(scores), np.concatenate(attributions),
                           np.concatenate(exact_scores), t_attr, t_exact)
