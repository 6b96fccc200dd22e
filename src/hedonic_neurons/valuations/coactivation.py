"""Orthogonality-correlation alignment (OCA), docs/method.md §3 (paper §3.2).

``φ_OCA(i, j) = (1 − |cos(w_i, w_j)|) · ρ(a_i, a_j)`` with ``w_i`` the player's direction
(column ``i`` of ``W'_down`` by default) and ``ρ`` Pearson's correlation of the two
activations over the captured inputs. A constant neuron (or a zero direction, whose
cosine is taken as 0) has ``ρ = 0``, never NaN. Diagonal 0. Two Gram products, tiled.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..provenance import provenance
from ..records import LayerRecord
from ..synergy import SynergyMatrix

__all__ = ["oca"]


def oca(
    record: LayerRecord,
    weights: np.ndarray | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    tile: int = 2048,
) -> SynergyMatrix:
    """OCA valuation of one layer.

    Parameters
    ----------
    record : LayerRecord
        Supplies the activations ``a`` (N, n).
    weights : numpy.ndarray, shape (d', n), optional
        Player vectors as columns; default ``record.w_down`` (the LoRA-merged down
        projection). The MNIST study passes the next block's reading weights.
    dtype : torch.dtype
        Precision of the Gram products (float32 default).
    device : str or torch.device, optional
    tile : int
        Row-tile size of the output.

    Returns
    -------
    SynergyMatrix
        ``values`` (n, n) float32, symmetric, zero diagonal, in ``[-1, 1]``.
    """
    n = record.n_players
    w = record.w_down if weights is None else np.asarray(weights)
    if w.ndim != 2 or w.shape[1] != n:
        raise InputError(f"weights: expected shape (d, {n}) (columns = player vectors), got {w.shape}.")
    if not np.isfinite(w).all():
        raise InputError("weights: expected finite values, found NaN or inf.")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    W = torch.as_tensor(np.asarray(w), device=dev).to(dtype)
    norms = torch.linalg.norm(W.double(), dim=0)
    Wn = W / torch.where(norms > 0, norms, torch.ones_like(norms)).to(dtype)
    A = torch.as_tensor(np.asarray(record.a), device=dev).to(torch.float64)
    Ac = A - A.mean(0, keepdim=True)
    sd = torch.linalg.norm(Ac, dim=0)
    scale = float(torch.abs(A).max()) if A.numel() else 0.0
    const = sd <= 1e-12 * max(scale, 1e-300) * np.sqrt(max(A.shape[0], 1))
    An = torch.where(const, torch.zeros_like(sd), 1.0 / torch.where(const, torch.ones_like(sd), sd))
    An = (Ac * An).to(dtype)
    out = np.zeros((n, n), dtype=np.float32)
    edges = [slice(s, min(s + int(tile), n)) for s in range(0, n, int(tile))]
    for a, rows in enumerate(edges):  # upper-triangular tiles: half the Gram work
        for cols in edges[a:]:
            cos = Wn[:, rows].T @ Wn[:, cols]
            rho = An[:, rows].T @ An[:, cols]
            block = ((1 - torch.abs(cos).clamp(max=1)) * rho.clamp(-1, 1)).cpu().numpy()
            out[rows, cols] = block
            out[cols, rows] = block.T
    np.fill_diagonal(out, 0.0)
    meta = provenance(method="oca", layer=record.layer, n_inputs=record.n_inputs, n_players=n,
                      weights="w_down" if weights is None else "given", model=record.meta.get("model"))
    return SynergyMatrix(out, meta)
