"""Inputs of the coalition-scoring paths of :mod:`hedonic_neurons.models.attribution` (docs/method.md §8.5).

Device and layer checks, coalition members and their membership matrix, batch iteration and the
model-state context managers shared by the attribution pass and the exact prefix replay.
Private; :mod:`hedonic_neurons.models.attribution` re-exports :func:`coalition_members` and
:func:`membership_matrix`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..partition import Partition
from .arch import ArchSpec, unwrap
from .lora import lora_factors, mlp_linears

Coalitions = Partition | Sequence[Sequence[int] | np.ndarray]
Batch = Mapping[str, Any]


# ----------------------------------------------------------------------------- validation
def _model_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    """The model's device; ``device`` (if given) must name it (models are never moved here)."""
    here = next(unwrap(model).parameters()).device
    if device is None:
        return here
    want = torch.device(device)
    if want.type != here.type or (want.index is not None and here.index is not None and want.index != here.index):
        raise InputError(f"device: the model's parameters are on {here}, got device={want}; "
                         "move the model first (model.to(device)).")
    return here


def _check_layer(spec: ArchSpec, model: torch.nn.Module, layer: int) -> int:
    if not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < spec.n_layers:
        raise InputError(f"layer: expected an int in [0, {spec.n_layers}), got {layer!r}.")
    if not any(lora_factors(m) for m in mlp_linears(spec, model, int(layer)).values()):
        raise InputError(f"layer: layer {layer} has no active LoRA on its MLP; every δ_k is zero "
                         "(nothing to revert to base, docs/method.md §1).")
    return int(layer)


def coalition_members(coalitions: Coalitions, n: int) -> list[np.ndarray]:
    """The coalitions as sorted, duplicate-free int64 index arrays over ``[0, n)``.

    Parameters
    ----------
    coalitions : Partition or sequence of sequences of int
        A :class:`~hedonic_neurons.partition.Partition` of the layer's ``n`` neurons (its
        coalitions in their canonical order), or any list of neuron-index collections
        (they may overlap and need not cover every neuron).
    n : int
        Number of neurons of the layer (``d_ff``).

    Returns
    -------
    list of numpy.ndarray of int64
        One array per coalition, ``K`` in all.

    Raises
    ------
    InputError
        If the partition has a different number of players, a coalition is empty, or an
        index is out of range.
    """
    if isinstance(coalitions, Partition):
        if coalitions.n_players != n:
            raise InputError(f"coalitions: the partition has {coalitions.n_players} players, "
                             f"the layer has {n} neurons.")
        return [np.asarray(c, dtype=np.int64) for c in coalitions.coalitions]
    if isinstance(coalitions, (str, bytes)) or not isinstance(coalitions, Sequence):
        raise InputError(f"coalitions: expected a Partition or a sequence of index sequences, "
                         f"got {type(coalitions).__name__}.")
    out = []
    for c, members in enumerate(coalitions):
        arr = np.asarray(members)
        if arr.size == 0:
            raise InputError(f"coalitions[{c}]: expected a non-empty coalition, got an empty one.")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"coalitions[{c}]: expected integer neuron indices, got dtype {arr.dtype}.")
        idx = np.unique(arr.astype(np.int64).reshape(-1))
        if idx[0] < 0 or idx[-1] >= n:
            raise InputError(f"coalitions[{c}]: expected indices in [0, {n}), got min {idx[0]}, max {idx[-1]}.")
        out.append(idx)
    if not out:
        raise InputError("coalitions: expected at least one coalition, got none.")
    return out


def membership_matrix(members: Sequence[np.ndarray], n: int) -> Any:
    """Sparse membership matrix ``M``, shape ``(n, K)``: ``M[k, c] = 1`` iff neuron ``k ∈ C_c``.

    Parameters
    ----------
    members : sequence of numpy.ndarray of int
        Output of :func:`coalition_members`.
    n : int

    Returns
    -------
    scipy.sparse.csc_matrix of float64, shape (n, K)
    """
    from scipy import sparse

    rows = np.concatenate([np.asarray(m, dtype=np.int64) for m in members]) if members else np.zeros(0, np.int64)
    cols = np.repeat(np.arange(len(members)), [len(m) for m in members])
    return sparse.csc_matrix((np.ones(rows.size), (rows, cols)), shape=(n, len(members)))


def _iterate(batches: Iterable[Batch], progress: bool, desc: str) -> Iterable[Batch]:
    if not progress:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, leave=False)


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad inside (restored after): autograd then records only the suffix."""
    params = [p for p in unwrap(model).parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    if was_training:  # dropout (incl. LoRA dropout) off: scores are deterministic
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train(True)


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x
