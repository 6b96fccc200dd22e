"""Shared preparation of the exact and second-order PAS (docs/method.md §3).

From a :class:`~hedonic_neurons.records.LayerRecord` it computes, once per layer, the
per-input scalars ``U_x = u^T y``, ``Y_x = |y|²`` and the per-player, per-input terms
``p = u^T δ``, ``q = y^T δ``, ``s = |δ|²`` (laid out (n, N)), and the factors from which
any tile of the fixed Gram matrices

    K1 = W'^T W',  K2 = W'^T W,  K3 = W^T W

is one GEMM ``W_I^T W_J`` plus rank-``R`` corrections, with ``W' = W + L R`` (the LoRA
update of the down projection). For a LayerNorm readout every vector is centred first
(the β term is a constant and cancels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError, LinearReadoutError
from ..records import LayerRecord

__all__ = ["Prep", "lowrank_factors", "prepare", "select_players"]


@dataclass
class Prep:
    """Everything the PAS kernels need for one layer (torch tensors on one device)."""

    At: torch.Tensor  # (n, N) a
    Bt: torch.Tensor  # (n, N) a_base
    Pt: torch.Tensor  # (n, N) p = u^T delta
    Qt: torch.Tensor  # (n, N) q = y^T delta
    St: torch.Tensor  # (n, N) s = |delta|^2
    U: torch.Tensor  # (N,)
    Y: torch.Tensor  # (N,)
    W0: torch.Tensor  # (d, n) base directions (centred for LayerNorm)
    Rf: torch.Tensor  # (R, n) right factor of the update
    M: torch.Tensor  # (R, n) L^T W0
    Qm: torch.Tensor  # (R, R) L^T L
    d: int
    eps: float
    F0: torch.Tensor  # (N,)  f(y) - b
    Fi: torch.Tensor  # (n, N) f(y - delta_i) - b
    W0g: torch.Tensor | None = None  # optional lower-precision copy of W0 for the K3 GEMM

    @property
    def n(self) -> int:
        return int(self.At.shape[0])

    @property
    def N(self) -> int:
        return int(self.At.shape[1])

    def k_tiles(self, rI: slice, rJ: slice) -> tuple[torch.Tensor, ...]:
        """Tiles ``K1[rI, rJ], K2[rI, rJ], K2[rJ, rI]^T, K3[rI, rJ]`` (one GEMM + rank-R corrections)."""
        W0 = self.W0 if self.W0g is None else self.W0g
        K3 = W0[:, rI].T @ W0[:, rJ]
        K3 = K3.to(self.At.dtype)
        RI, RJ, MI, MJ = self.Rf[:, rI], self.Rf[:, rJ], self.M[:, rI], self.M[:, rJ]
        c_ij = RI.T @ MJ  # W1_I . W0_J - K3
        c_ji = MI.T @ RJ  # W0_I . W1_J - K3
        K2 = K3 + c_ij
        K2t = K3 + c_ji
        K1 = K3 + c_ij + c_ji + RI.T @ (self.Qm @ RJ)
        return K1, K2, K2t, K3

    def k_pairs(self, ii: torch.Tensor, jj: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``K1, K2, K2t, K3`` at arbitrary pairs ``(ii[m], jj[m])``, shape (m,) each."""
        K3 = (self.W0[:, ii] * self.W0[:, jj]).sum(0)
        c_ij = (self.Rf[:, ii] * self.M[:, jj]).sum(0)
        c_ji = (self.M[:, ii] * self.Rf[:, jj]).sum(0)
        quad = (self.Rf[:, ii] * (self.Qm @ self.Rf[:, jj])).sum(0)
        return K3 + c_ij + c_ji + quad, K3 + c_ij, K3 + c_ji, K3


def lowrank_factors(delta: torch.Tensor, *, seed: int = 0, tol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact factorisation ``delta = L @ R`` of a low-rank matrix (d, n).

    A randomised range finder with doubling sketch size; the result is accepted only when
    ``|delta - L R|_F <= tol^(1/2) |delta|_F`` (in the working precision). If the rank is
    not small (sketch above ``min(d, n) / 4``) it falls back to ``L = I_d, R = delta``,
    which is exact at the cost of a rank-``d`` correction.
    """
    d, n = delta.shape
    norm = torch.linalg.norm(delta)
    if float(norm) == 0.0:
        return delta.new_zeros((d, 0)), delta.new_zeros((0, n))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    k = 16
    limit = max(16, min(d, n) // 4)
    thresh = (tol if delta.dtype == torch.float64 else 1e-10) ** 0.5
    while k <= limit:
        omega = torch.randn((n, k), generator=gen, dtype=delta.dtype).to(delta.device)
        q, _ = torch.linalg.qr(delta @ omega)
        right = q.T @ delta
        if float(torch.linalg.norm(delta - q @ right)) <= thresh * float(norm):
            return q, right
        k *= 2
    return torch.eye(d, dtype=delta.dtype, device=delta.device), delta.clone()


def select_players(record: LayerRecord, players: np.ndarray | list[int] | None) -> np.ndarray | None:
    """Validate a ``players`` index array against ``record.n_players``."""
    if players is None:
        return None
    idx = np.asarray(players, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise InputError("players: expected at least one player index, got an empty array.")
    if idx.min() < 0 or idx.max() >= record.n_players:
        raise InputError(f"players: expected indices in [0, {record.n_players}), got min {idx.min()}, max {idx.max()}.")
    if np.unique(idx).size != idx.size:
        raise InputError("players: indices must be distinct.")
    return idx


def prepare(
    record: LayerRecord,
    players: np.ndarray | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    what: str = "PAS",
) -> Prep:
    """Per-layer preparation for the PAS formulas of docs/method.md §3 (see module docstring).

    Raises
    ------
    LinearReadoutError
        If the record's readout has no normalisation (every PAS would be exactly zero).
    """
    ro = record.readout
    if ro.is_linear:
        raise LinearReadoutError(
            f"record.readout: norm='none' is linear in the players, so by (R1) of docs/method.md "
            f"f(y) - f(y-δi) - f(y-δj) + f(y-δi-δj) = 0 for every pair and the {what} would be "
            "identically zero (floating-point noise). Capture the readout with the model's "
            "RMSNorm/LayerNorm (docs/method.md §2)."
        )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    t = lambda v: torch.as_tensor(np.asarray(v), dtype=dtype, device=dev)  # noqa: E731
    sel = slice(None) if players is None else players
    A, B = t(record.a[:, sel]), t(record.a_base[:, sel])
    y = t(record.y)
    W1_full, W0 = t(record.w_down[:, sel]), t(record.w_down_base[:, sel])
    if record.delta_left is not None and record.delta_right is not None:
        L, Rf = t(record.delta_left), t(record.delta_right[:, sel])
    else:
        L, Rf = lowrank_factors(W1_full - W0)
    N, d = y.shape
    w, _ = ro.head_rows(record.target_index, N)
    gamma = np.ones(d) if ro.gamma is None else np.asarray(ro.gamma, np.float64)
    per_input = np.ndim(ro.weight) == 2
    u = t(np.asarray(w) * gamma) if per_input else t(np.asarray(ro.weight, np.float64) * gamma)
    if ro.norm == "layer":
        y = y - y.mean(-1, keepdim=True)
        u = u - u.mean(-1, keepdim=True)
        W0 = W0 - W0.mean(0, keepdim=True)
        L = L - L.mean(0, keepdim=True)
    W1 = W0 + L @ Rf
    U = (y * u).sum(-1) if per_input else y @ u
    Y = (y * y).sum(-1)
    if per_input:
        uW1, uW0 = u @ W1, u @ W0
    else:
        uW1, uW0 = (u @ W1)[None], (u @ W0)[None]
    P = A * uW1 - B * uW0
    Q = A * (y @ W1) - B * (y @ W0)
    k1d, k2d, k3d = (W1 * W1).sum(0), (W1 * W0).sum(0), (W0 * W0).sum(0)
    S = A * A * k1d - 2 * A * B * k2d + B * B * k3d
    eps = float(ro.eps)
    F0 = U / torch.sqrt(Y / d + eps)
    Fi = (U[:, None] - P) / torch.sqrt((Y[:, None] - 2 * Q + S) / d + eps)
    c = lambda m: m.T.contiguous()  # noqa: E731
    return Prep(
        At=c(A), Bt=c(B), Pt=c(P), Qt=c(Q), St=c(S), U=U, Y=Y, W0=W0, Rf=Rf, M=L.T @ W0, Qm=L.T @ L,
        d=int(d), eps=eps, F0=F0, Fi=c(Fi),
    )
