"""Pairwise ablation synergy (PAS): exact closed form and second-order GEMM form (docs/method.md §3).

``φ_PAS(i, j) = E_x[f(y) − f(y−δ_i) − f(y−δ_j) + f(y−δ_i−δ_j)]`` (paper App. G, eq. 7)
on the layer-local readout ``f(y) = u^T N(y) + b`` (docs/method.md §2). With the per-input
scalars of :mod:`._prep`,

    f(y − δ_i − δ_j) − b = (U − p_i − p_j) / sqrt((Y − 2q_i − 2q_j + s_i + s_j + 2G_ij)/d + ε),

so the exact matrix is a sum over inputs of a fused element-wise expression on ``n × n``
tiles of ``K1, K2, K3``: tiled, never materialising ``N × n × n``. The inner loop runs in
a numba kernel on CPU (:mod:`.kernels`) or by torch broadcasting (any device; the
reference the kernel is tested against).

The second-order form replaces ``f(y−δ_i−δ_j) − …`` by its Taylor term
``δ_i^T H(y) δ_j`` and is all GEMMs; its error against the exact value on a sample of
pairs is reported in ``meta["second_order_error"]``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .._validation import as_generator
from ..errors import ConfigError, InputError
from ..provenance import provenance
from ..records import LayerRecord
from ..synergy import SynergyMatrix
from . import kernels
from ._prep import Prep, prepare, select_players

__all__ = ["marginals", "pas", "pas_pairs"]

Method = Literal["exact", "second_order"]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="tile")


def _tiles(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _pair_sum_torch(pp: Prep, rI: slice, rJ: slice, K: tuple[torch.Tensor, ...], chunk_elems: int = 1 << 22) -> torch.Tensor:
    """``Σ_x f(y − δ_i − δ_j) − b`` for the tile ``I × J`` by broadcasting (torch path)."""
    K1, K2, K2t, K3 = K
    tI, tJ = K1.shape
    N = pp.N
    out = torch.empty((tI, tJ), dtype=pp.At.dtype, device=pp.At.device)
    aJ, bJ, pJ, qJ, sJ = (t[rJ][None] for t in (pp.At, pp.Bt, pp.Pt, pp.Qt, pp.St))
    step = max(1, chunk_elems // max(1, tJ * N))
    for r0 in range(0, tI, step):
        rows = slice(rI.start + r0, min(rI.start + r0 + step, rI.stop))
        loc = slice(r0, r0 + (rows.stop - rows.start))
        aI, bI, pI, qI, sI = (t[rows][:, None] for t in (pp.At, pp.Bt, pp.Pt, pp.Qt, pp.St))
        g = (aI * aJ * K1[loc, :, None] - aI * bJ * K2[loc, :, None]
             - bI * aJ * K2t[loc, :, None] + bI * bJ * K3[loc, :, None])
        num = pp.U - pI - pJ
        den = (pp.Y - 2 * (qI + qJ) + sI + sJ + 2 * g) / pp.d + pp.eps
        out[loc] = (num / torch.sqrt(den)).sum(-1)
    return out


def _store_tile(out: np.ndarray, rI: slice, rJ: slice, phi: np.ndarray) -> None:
    """Write tile ``(rI, rJ)`` and its mirror. A diagonal tile (``rI == rJ``) holds both ``(i, j)``
    and ``(j, i)``, computed in different orders: they agree up to rounding, and the tile is
    stored as their mean so that ψ is exactly symmetric (as eq. 6 is), which the games test for
    (an asymmetric φ loses the potential of the additively separable game, docs/method.md §5.6)."""
    if rI == rJ:
        phi = 0.5 * (phi + phi.T)
    out[rI, rJ] = phi
    out[rJ, rI] = phi.T


def _exact_matrix(pp: Prep, backend: str, tile: int, progress: bool) -> np.ndarray:
    n, N = pp.n, pp.N
    out = np.zeros((n, n), dtype=np.float32)
    fi_mean = pp.Fi.mean(1)
    f0_mean = pp.F0.mean()
    tiles = _tiles(n, tile)
    numpy_in = None
    if backend == "numba":
        f64 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)  # noqa: E731
        numpy_in = [f64(pp.At), f64(pp.Bt), f64(pp.U - pp.Pt), f64(pp.Pt), f64(pp.Y - 2 * pp.Qt + pp.St),
                    f64(pp.St - 2 * pp.Qt)]
    bar = _progress(len(tiles) * (len(tiles) + 1) // 2, "exact PAS", progress)
    for a, rI in enumerate(tiles):
        for rJ in tiles[a:]:
            K = pp.k_tiles(rI, rJ)
            if backend == "numba":
                assert numpy_in is not None
                Kn = [np.ascontiguousarray(k.detach().cpu().numpy()) for k in K]
                buf = np.empty((rI.stop - rI.start, rJ.stop - rJ.start), dtype=np.float64)
                At, Bt, UPt, Pt, Ct, Dt = numpy_in
                K1, K2, K2t, K3 = Kn
                kernels.pair_sum_tile(At, Bt, UPt, Pt, Ct, Dt, K1, K2, K2t, K3,
                                      rI.start, rJ.start, 1.0 / pp.d, pp.eps, buf)
                T = torch.from_numpy(buf).to(pp.At.dtype)
            else:
                T = _pair_sum_torch(pp, rI, rJ, K).cpu()
            phi = (T / N - fi_mean[rI].cpu()[:, None] - fi_mean[rJ].cpu()[None] + f0_mean.cpu()).numpy()
            _store_tile(out, rI, rJ, phi)
            bar.update(1)
    bar.close()
    return out


def _second_order_matrix(pp: Prep, tile: int, progress: bool) -> np.ndarray:
    """Tiled GEMM form of ``mean_x δ_i^T H(y) δ_j`` (docs/method.md §3).

    With ``D = U c1`` the Gram term ``Σ_x D_x G_ij(x)`` regroups, using ``K2 = K3 + c``,
    ``K2t = K3 + c'``, ``K1 = K3 + c + c' + q`` (rank-R corrections) and ``Δ = a − a_base``, as
    ``K3 ⊙ (Δ D Δ^T) + c ⊙ (A D Δ^T) + c' ⊙ (Δ D A^T) + q ⊙ (A D A^T)``; the three
    rank-one-in-x terms are one GEMM with inner dimension 3N.
    """
    n, N, d = pp.n, pp.N, pp.d
    out = np.zeros((n, n), dtype=np.float32)
    r = torch.sqrt(pp.Y / d + pp.eps)
    c1 = 1.0 / (d * r**3)
    c2 = 1.0 / (d * d * r**5)
    D = pp.U * c1
    E = 3.0 * pp.U * c2
    Dt = pp.At - pp.Bt
    left_all = torch.cat([-c1 * pp.Pt, -c1 * pp.Qt, E * pp.Qt], dim=1)  # (n, 3N)
    right_all = torch.cat([pp.Qt, pp.Pt, pp.Qt], dim=1)  # (n, 3N)
    tiles = _tiles(n, tile)
    W0 = pp.W0 if pp.W0g is None else pp.W0g
    bar = _progress(len(tiles) * (len(tiles) + 1) // 2, "second-order PAS", progress)
    for a, rI in enumerate(tiles):
        ADI, DDI = pp.At[rI] * D, Dt[rI] * D
        for rJ in tiles[a:]:
            K3 = (W0[:, rI].T @ W0[:, rJ]).to(pp.At.dtype)
            RI, RJ, MI, MJ = pp.Rf[:, rI], pp.Rf[:, rJ], pp.M[:, rI], pp.M[:, rJ]
            AJ, DJ = pp.At[rJ], Dt[rJ]
            acc = left_all[rI] @ right_all[rJ].T
            acc -= K3 * (DDI @ DJ.T)
            if RI.shape[0]:
                acc -= (RI.T @ MJ) * (ADI @ DJ.T)
                acc -= (MI.T @ RJ) * (DDI @ AJ.T)
                acc -= (RI.T @ (pp.Qm @ RJ)) * (ADI @ AJ.T)
            phi = (acc / N).cpu().numpy()
            _store_tile(out, rI, rJ, phi)
            bar.update(1)
    bar.close()
    return out


def _exact_pairs(pp: Prep, ii: np.ndarray, jj: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Exact PAS at arbitrary pairs, vectorised over pairs and inputs; shape (m,)."""
    out = np.empty(ii.shape[0], dtype=np.float64)
    fi_mean = pp.Fi.mean(1)
    for s in range(0, ii.shape[0], chunk):
        i = torch.as_tensor(ii[s : s + chunk], device=pp.At.device)
        j = torch.as_tensor(jj[s : s + chunk], device=pp.At.device)
        K1, K2, K2t, K3 = (k[:, None] for k in pp.k_pairs(i, j))
        ai, bi, aj, bj = pp.At[i], pp.Bt[i], pp.At[j], pp.Bt[j]
        g = ai * aj * K1 - ai * bj * K2 - bi * aj * K2t + bi * bj * K3
        den = (pp.Y - 2 * (pp.Qt[i] + pp.Qt[j]) + pp.St[i] + pp.St[j] + 2 * g) / pp.d + pp.eps
        f_ij = ((pp.U - pp.Pt[i] - pp.Pt[j]) / torch.sqrt(den)).mean(1)
        val = f_ij - fi_mean[i] - fi_mean[j] + pp.F0.mean()
        out[s : s + chunk] = val.cpu().double().numpy()
    return np.where(ii == jj, 0.0, out)


def _sample_pairs(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = as_generator(seed)
    total = n * (n - 1) // 2
    if total <= m:
        ii, jj = np.triu_indices(n, 1)
        return ii.astype(np.int64), jj.astype(np.int64)
    ii = rng.integers(0, n, size=4 * m)
    jj = rng.integers(0, n, size=4 * m)
    keep = ii != jj
    return ii[keep][:m].astype(np.int64), jj[keep][:m].astype(np.int64)


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "numba", "torch"):
        raise ConfigError(f"backend: expected 'auto', 'numba' or 'torch', got {backend!r}.")
    if backend == "auto":
        return "numba" if kernels.HAVE_NUMBA and device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ConfigError(f"backend: 'numba' runs on CPU only, got device {device}.")
    return backend


def pas(
    record: LayerRecord,
    method: Method | str = "exact",
    players: np.ndarray | list[int] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    gemm_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    backend: str = "auto",
    tile: int = 1024,
    error_pairs: int = 512,
    seed: int = 0,
    progress: bool = False,
) -> SynergyMatrix:
    """Pairwise ablation synergy of one layer on its local readout (docs/method.md §3, eq. 7).

    Parameters
    ----------
    record : LayerRecord
        Captured layer; ``record.readout`` must be normalised (``"rms"`` or ``"layer"``).
        With a ``(C, d)`` head, ``record.target_index`` picks the head row per input.
    method : {"exact", "second_order"}
        ``"exact"``: the closed form (no approximation); ``"second_order"``: its Taylor
        term ``E_x[δ_i^T H(y) δ_j]`` as GEMMs (also accepted: ``"pas-exact"``,
        ``"pas-2nd"``, ``"second-order"``).
    players : array_like of int, optional
        Restrict to these players: the result is the ``|P| × |P|`` sub-matrix, in this order.
    dtype : torch.dtype
        Precision of the per-input terms and accumulation (float64 default).
    gemm_dtype : torch.dtype, optional
        Precision of the ``K3 = W^T W`` GEMM (default ``dtype``; float32 halves its cost).
    device : str or torch.device, optional
        Where to compute (default CPU). On CUDA the torch path is used.
    backend : {"auto", "numba", "torch"}
        Inner loop of the exact form: numba kernel (CPU) or torch broadcasting.
    tile : int
        Tile edge of the ``n × n`` blocks.
    error_pairs : int
        Second order only: number of sampled pairs (seeded by ``seed``) on which the
        exact value is computed to report the approximation error in ``meta``.
    progress : bool
        tqdm progress bar over tiles.

    Returns
    -------
    SynergyMatrix
        ``values`` (n, n) float32, symmetric, zero diagonal; ``meta`` with ``method``
        (``"pas_exact"`` or ``"pas_second_order"``, the names of :data:`hedonic_neurons.vocab.VALUATIONS`), ``layer``, ``readout``, ``n_inputs``.

    Raises
    ------
    LinearReadoutError
        If the readout is linear in the players (every PAS would be zero).
    """
    key = {"exact": "exact", "pas-exact": "exact", "second_order": "second_order", "second-order": "second_order",
           "pas-2nd": "second_order", "pas-second-order": "second_order", "pas_exact": "exact",
           "pas_second_order": "second_order"}.get(str(method))
    if key is None:
        raise ConfigError(f"method: expected 'exact' or 'second_order', got {method!r}.")
    if int(tile) < 1:
        raise InputError(f"tile: expected a positive integer, got {tile}.")
    idx = select_players(record, players)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    pp = prepare(record, idx, dtype=dtype, device=dev)
    if gemm_dtype is not None and gemm_dtype != dtype:
        pp.W0g = pp.W0.to(gemm_dtype)
    meta = provenance(
        method="pas_exact" if key == "exact" else "pas_second_order", layer=record.layer,
        readout=record.readout.norm, readout_kind="local", n_inputs=record.n_inputs, n_players=pp.n,
        players_subset=idx is not None, dtype=str(dtype), gemm_dtype=str(gemm_dtype or dtype),
        model=record.meta.get("model"),
    )
    if key == "exact":
        be = _resolve_backend(backend, dev)
        values = _exact_matrix(pp, be, int(tile), progress)
        meta["backend"] = be
    else:
        values = _second_order_matrix(pp, int(tile), progress)
        if error_pairs > 0 and pp.n > 1:
            ii, jj = _sample_pairs(pp.n, int(error_pairs), seed)
            # reference in float64 on the sampled players only (cheap, and not limited by `dtype`)
            used = np.unique(np.concatenate([ii, jj]))
            ref = prepare(record, used if idx is None else idx[used], dtype=torch.float64, device=dev)
            exact = _exact_pairs(ref, np.searchsorted(used, ii), np.searchsorted(used, jj))
            approx = values[ii, jj].astype(np.float64)
            err = np.abs(approx - exact)
            meta["second_order_error"] = {
                "n_pairs": int(ii.size), "seed": seed, "max_abs": float(err.max()),
                "mean_abs": float(err.mean()), "max_abs_exact": float(np.abs(exact).max()),
                "rel_l2": float(np.linalg.norm(approx - exact) / max(np.linalg.norm(exact), 1e-300)),
            }
    return SynergyMatrix(values, meta)


def pas_pairs(
    record: LayerRecord, pairs: np.ndarray, *, dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Exact PAS at the given pairs only: ``pairs`` (m, 2) int -> (m,) float64 (docs/method.md §3)."""
    arr = np.asarray(pairs, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"pairs: expected shape (m, 2), got {arr.shape}.")
    if arr.size and (arr.min() < 0 or arr.max() >= record.n_players):
        raise InputError(f"pairs: expected indices in [0, {record.n_players}), got min {arr.min()}, max {arr.max()}.")
    pp = prepare(record, None, dtype=dtype, device=device)
    return _exact_pairs(pp, arr[:, 0], arr[:, 1])


def marginals(
    record: LayerRecord, players: np.ndarray | list[int] | None = None, *, dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Exact marginals ``ψ(i) = E_x[f(y) − f(y − δ_i)]`` on the local readout (eq. 6).

    Returns
    -------
    numpy.ndarray, shape (n,) or (|P|,), float64
    """
    idx = select_players(record, players)
    if record.readout.is_linear:  # f(y) - f(y - δ_i) = w^T δ_i
        sel = slice(None) if idx is None else idx
        w, _ = record.readout.head_rows(record.target_index, record.n_inputs)
        w = np.asarray(w, np.float64)
        p = (record.a[:, sel] * (w @ record.w_down[:, sel].astype(np.float64))
             - record.a_base[:, sel] * (w @ record.w_down_base[:, sel].astype(np.float64)))
        return p.mean(0)
    pp = prepare(record, idx, dtype=dtype, device=device, what="marginal")
    return (pp.F0.mean() - pp.Fi.mean(1)).cpu().double().numpy()
