"""Numba CPU kernel for the inner loop of the exact PAS (docs/method.md §3).

For a tile of players ``I × J`` it sums, over inputs ``x``, the readout after ablating
both players of a pair:

    T_ij = Σ_x (U_x − p_ix − p_jx) / sqrt((Y_x − 2q_ix − 2q_jx + s_ix + s_jx + 2G_ijx)/d + ε),
    G_ijx = a_ix a_jx K1_ij − a_ix b_jx K2_ij − b_ix a_jx K2t_ij + b_ix b_jx K3_ij.

Per-player arrays are laid out (n, N) (inputs innermost, contiguous) so the loop over
inputs vectorises; tile rows run in parallel (``prange``). Accumulation is float64.
The torch path in :mod:`.pas` computes the same sum by broadcasting and is the
reference the tests compare this kernel with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["HAVE_NUMBA", "pair_sum_tile"]

try:  # numba is an optional dependency (extra "fast")
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]  # optional import; only used when HAVE_NUMBA
    HAVE_NUMBA = False


if HAVE_NUMBA:

    # reassoc lets LLVM vectorise the sum over inputs; sqrt and division stay IEEE.
    # The j range is processed in blocks of `jb` players whose rows (4 arrays x N doubles
    # each) stay in the L2 cache while every i of the tile streams past them.
    @numba.njit(parallel=True, cache=False, fastmath={"reassoc", "contract", "nsz"})
    def _pair_sum_tile_nb(At, Bt, UPt, Pt, Ct, Dt, K1, K2, K2t, K3, i0, j0, invd, eps, out, jb):
        ti, tj = out.shape
        N = At.shape[1]
        for jstart in range(0, tj, jb):
            jstop = min(jstart + jb, tj)
            for ii in numba.prange(ti):
                i = i0 + ii
                for jj in range(jstart, jstop):
                    j = j0 + jj
                    k1 = np.float64(K1[ii, jj])
                    k2 = np.float64(K2[ii, jj])
                    k2t = np.float64(K2t[ii, jj])
                    k3 = np.float64(K3[ii, jj])
                    acc = 0.0
                    for x in range(N):
                        ai = At[i, x]
                        bi = Bt[i, x]
                        aj = At[j, x]
                        bj = Bt[j, x]
                        g = ai * (aj * k1 - bj * k2) + bi * (bj * k3 - aj * k2t)
                        den = (Ct[i, x] + Dt[j, x] + 2.0 * g) * invd + eps
                        acc += (UPt[i, x] - Pt[j, x]) / np.sqrt(den)
                    out[ii, jj] = acc


def pair_sum_tile(
    At: np.ndarray, Bt: np.ndarray, UPt: np.ndarray, Pt: np.ndarray, Ct: np.ndarray, Dt: np.ndarray,
    K1: np.ndarray, K2: np.ndarray, K2t: np.ndarray, K3: np.ndarray,
    i0: int, j0: int, invd: float, eps: float, out: np.ndarray,
) -> Any:
    """Fill ``out`` (tI, tJ) with ``T_ij`` for ``i = i0 + ii``, ``j = j0 + jj`` (numba).

    Per-player arrays (n, N) float64 C-contiguous: ``At = a``, ``Bt = a_base``,
    ``UPt = U − p``, ``Pt = p``, ``Ct = Y − 2q + s``, ``Dt = s − 2q`` (so the numerator is
    ``UPt_i − Pt_j`` and the squared norm ``Ct_i + Dt_j + 2G_ij``); ``K*``: (tI, tJ) tiles;
    ``out``: (tI, tJ) float64.
    """
    if not HAVE_NUMBA:
        raise ConfigError("backend: 'numba' needs the numba package (pip install 'hedonic-neurons[fast]').")
    jb = max(4, (1 << 18) // max(1, 32 * At.shape[1]))  # ~256 KB of j rows per block
    _pair_sum_tile_nb(At, Bt, UPt, Pt, Ct, Dt, K1, K2, K2t, K3, int(i0), int(j0), float(invd), float(eps), out, jb)
    return out
