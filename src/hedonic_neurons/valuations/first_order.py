"""The released code's "PAS", under its own name: a product of first-order attributions (docs/method.md §3).

``φ_FO(i, j) = −E_x[(∂f/∂a_i · a_i)(∂f/∂a_j · a_j)]`` with ``∂f/∂a_i = ∇f(y)^T W'[:, i]``.
This is **not** the pairwise ablation synergy: it is offered only to compare with the
released code. With the released code's readout (the head on the raw hidden state,
``norm="none"``) ``∇f = w`` is constant; with a normalised readout ``∇f`` is the gradient
of ``u^T N(y)`` at each input.
"""

from __future__ import annotations

import numpy as np

from ..provenance import provenance
from ..records import LayerRecord
from ..synergy import SynergyMatrix

__all__ = ["first_order_product"]


def _readout_gradient(record: LayerRecord) -> np.ndarray:
    """``∇_y f`` per input, shape (N, d), float64."""
    ro = record.readout
    N, d = record.n_inputs, record.d
    w, _ = ro.head_rows(record.target_index, N)
    w = np.asarray(w, np.float64)
    if ro.is_linear:
        return np.broadcast_to(w, (N, d)).copy()
    gamma = np.ones(d) if ro.gamma is None else np.asarray(ro.gamma, np.float64)
    u = w * gamma
    y = np.asarray(record.y, np.float64)
    if ro.norm == "layer":
        y = y - y.mean(-1, keepdims=True)
        u = u - u.mean(-1, keepdims=True)
    r = np.sqrt((y * y).mean(-1, keepdims=True) + ro.eps)
    U = (u * y).sum(-1, keepdims=True)
    grad = u / r - U * y / (d * r**3)
    if ro.norm == "layer":  # chain rule through the centring projection
        grad = grad - grad.mean(-1, keepdims=True)
    return grad


def first_order_product(record: LayerRecord) -> SynergyMatrix:
    """The released code's pairwise quantity ``−E[(∂f/∂a_i·a_i)(∂f/∂a_j·a_j)]`` (not PAS).

    Returns
    -------
    SynergyMatrix
        ``meta["method"] == "first_order_product"``; (n, n) float32, zero diagonal.
    """
    grad = _readout_gradient(record)
    attr = np.asarray(record.a, np.float64) * (grad @ np.asarray(record.w_down, np.float64))  # (N, n)
    values = -(attr.T @ attr) / record.n_inputs
    meta = provenance(method="first_order_product", layer=record.layer, readout=record.readout.norm,
                      n_inputs=record.n_inputs, n_players=record.n_players, note="not PAS (docs/method.md §3)")
    return SynergyMatrix(values.astype(np.float32), meta)
