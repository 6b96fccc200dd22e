"""Interaction mass between the coalitions of two consecutive layers (paper §3.4, docs/method.md §7).

For a source coalition ``C`` of layer ``ℓ`` and a target coalition ``C'`` of layer ``ℓ+1``

    M(C, C') = 1 / (|C| |C'|) · Σ_{q ∈ C'} Σ_p R[q, p] · A_p · w_C(p)

with

- ``R[q, p] = Σ_g |W_read^{(ℓ+1)}[g, q, p]|`` — the LoRA-adapted input projections of layer
  ``ℓ+1`` (``g = 2``: up and gate of a gated MLP; ``g = 1``: the single input projection),
- ``A_p = E_x |h_p(x)|`` — mean absolute MLP input of layer ``ℓ+1`` on residual dimension
  ``p`` (the paper's footnote 4),
- ``w_C(p)`` — coalition ``C``'s aggregated write onto residual dimension ``p``
  (footnote 4: "we aggregate each source coalition's outgoing contribution onto the residual
  stream"): ``Σ_{i ∈ C} |W'^{(ℓ)}_down[p, i]| · E_x|a_i(x)|``.

**Normalisation of the write** (the paper says only "normalised"): ``w`` is divided by one
layer-wide constant, the total write ``Σ_p Σ_i |W'_down[p, i]| E|a_i|``, so that
``Σ_C Σ_p w_C(p) = 1``. A per-layer constant keeps the relative magnitude of the coalitions
(which the target share β compares) and makes ``M`` free of the layer's overall activation
scale; α and β are invariant to it (both are ratios of ``M`` entries of one layer pair).
A per-coalition normalisation would instead make β compare write *profiles* only and
double-count the ``1/|C|`` size normalisation, so it is not used.

Everything is a matrix product with the sparse membership matrices
(:meth:`~hedonic_neurons.partition.Partition.membership`): with ``S`` (K, n) and ``S'`` (K', n')

    W_C = S · (|W'_down| diag(E|a|))^T     (K, d)
    T   = S' · R                            (K', d)
    M   = (W_C diag(A)) T^T / (|C| |C'|)    (K, K')

so the cost is ``O(n·d + n'·d + K·K'·d)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._validation import check_labels
from ..errors import InputError
from ..partition import Partition
from ..records import LayerRecord

__all__ = ["WriteKind", "coalition_write", "interaction_mass", "interaction_mass_arrays"]

WriteKind = Literal["weighted", "weights"]


def _membership(labels: np.ndarray, n: int, name: str) -> Any:
    from scipy import sparse

    labels = check_labels(labels, n, name)  # integers 0..K-1, every coalition non-empty
    k = int(labels.max()) + 1 if labels.size else 0
    return sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))


def _work_dtype(arr: np.ndarray) -> type:
    return np.float32 if arr.dtype in (np.float16, np.float32) or arr.dtype.name == "bfloat16" else np.float64


def coalition_write(
    labels: np.ndarray, w_down: np.ndarray, act_abs_mean: np.ndarray | None = None
) -> np.ndarray:
    """Normalised aggregated write ``w_C(p)`` of each coalition onto the residual stream.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n,)
        Coalition index of each source neuron (``0..K-1``).
    w_down : numpy.ndarray, shape (d, n)
        LoRA-merged down projection ``W'^{(ℓ)}_down`` (columns = neuron write directions).
    act_abs_mean : numpy.ndarray, shape (n,), optional
        ``E_x |a_i(x)|``; ``None`` weighs every neuron by 1 (write ``"weights"``).

    Returns
    -------
    numpy.ndarray, shape (K, d)
        ``w_C(p) = Σ_{i∈C} |W'[p, i]| E|a_i| / Σ_{p,i} |W'[p, i]| E|a_i|``; all zeros when
        the layer writes nothing.
    """
    w = np.asarray(w_down)
    if w.ndim != 2:
        raise InputError(f"w_down: expected shape (d, n), got {w.shape}.")
    # Keep float32 inputs in float32 (an LLaMA-size W'_down is 235 MB); sums are float64.
    w = np.abs(w.astype(_work_dtype(w), copy=False))
    n = w.shape[1]
    if act_abs_mean is not None:
        act = np.asarray(act_abs_mean, dtype=np.float64).reshape(-1)
        if act.shape != (n,):
            raise InputError(f"act_abs_mean: expected shape ({n},) (one per neuron of w_down), got {act.shape}.")
        w = w * act.astype(w.dtype)[None, :]
    s = _membership(labels, n, "labels")
    out = np.asarray(s.astype(w.dtype) @ w.T, dtype=np.float64)  # (K, d)
    total = out.sum()
    return out / total if total > 0 else out


def interaction_mass_arrays(
    src_labels: np.ndarray,
    dst_labels: np.ndarray,
    w_down: np.ndarray,
    w_read: np.ndarray,
    h_abs_mean: np.ndarray,
    act_abs_mean: np.ndarray | None = None,
    *,
    size_normalise: bool = True,
) -> np.ndarray:
    """Interaction mass from plain arrays (docs/method.md §7); the engine of :func:`interaction_mass`.

    Parameters
    ----------
    src_labels : numpy.ndarray of int, shape (n,)
        Coalition index of each neuron of layer ``ℓ``.
    dst_labels : numpy.ndarray of int, shape (n',)
        Coalition index of each neuron of layer ``ℓ+1``.
    w_down : numpy.ndarray, shape (d, n)
        ``W'^{(ℓ)}_down``, LoRA-merged.
    w_read : numpy.ndarray, shape (g, n', d) or (n', d)
        LoRA-adapted input projections of layer ``ℓ+1`` (up and gate when ``g = 2``).
    h_abs_mean : numpy.ndarray, shape (d,)
        ``A_p = E_x|h^{(ℓ+1)}_p(x)|``.
    act_abs_mean : numpy.ndarray, shape (n,), optional
        ``E_x|a^{(ℓ)}_i(x)|``; ``None`` weighs every source neuron by 1.
    size_normalise : bool
        Divide by ``|C|·|C'|`` (the paper's definition). ``False`` gives the raw sums.

    Returns
    -------
    numpy.ndarray, shape (K, K'), float64, non-negative
    """
    wr = np.asarray(w_read)
    if wr.ndim == 2:
        wr = wr[None]
    if wr.ndim != 3:
        raise InputError(f"w_read: expected shape (g, n', d) or (n', d), got {np.shape(w_read)}.")
    d = wr.shape[2]
    wd = np.asarray(w_down)
    if wd.ndim != 2 or wd.shape[0] != d:
        raise InputError(
            f"w_down: expected shape ({d}, n) (d from w_read of shape {wr.shape}), got {wd.shape}."
        )
    a_p = np.asarray(h_abs_mean, dtype=np.float64).reshape(-1)
    if a_p.shape != (d,):
        raise InputError(f"h_abs_mean: expected shape ({d},), got {a_p.shape}.")
    write = coalition_write(src_labels, wd, act_abs_mean)  # (K, d)
    s_dst = _membership(dst_labels, wr.shape[1], "dst_labels")
    t = np.zeros((s_dst.shape[0], d))
    for g in range(wr.shape[0]):  # one (n', d) slab at a time: no (g, n', d) temporary
        slab = np.abs(wr[g].astype(_work_dtype(wr), copy=False))
        t += np.asarray(s_dst.astype(slab.dtype) @ slab, dtype=np.float64)  # (K', d)
    mass = (write * a_p[None, :]) @ t.T  # (K, K')
    if size_normalise:
        k_src = np.bincount(np.asarray(src_labels, np.int64), minlength=mass.shape[0]).astype(np.float64)
        k_dst = np.bincount(np.asarray(dst_labels, np.int64), minlength=mass.shape[1]).astype(np.float64)
        mass = mass / np.outer(k_src, k_dst)
    return mass


def interaction_mass(
    src: Partition,
    dst: Partition,
    src_record: LayerRecord,
    dst_record: LayerRecord,
    *,
    write: WriteKind = "weighted",
    size_normalise: bool = True,
) -> np.ndarray:
    """Interaction mass ``M(C, C')`` between coalitions of layers ``ℓ`` and ``ℓ+1`` (paper §3.4).

    Parameters
    ----------
    src : Partition
        Partition of layer ``ℓ``'s ``n`` neurons into ``K`` coalitions.
    dst : Partition
        Partition of layer ``ℓ+1``'s ``n'`` neurons into ``K'`` coalitions.
    src_record : LayerRecord
        Record of layer ``ℓ``: ``w_down`` (d, n) and ``a`` (N, n) give the write ``w_C``.
    dst_record : LayerRecord
        Record of layer ``ℓ+1``: ``w_read`` (g, n', d) gives the read weights and ``h``
        (N', d) gives ``A_p = E|h_p|``.
    write : {"weighted", "weights"}
        ``"weighted"``: ``w_C(p) = Σ_{i∈C}|W'_down[p,i]|·E|a_i|`` (default, footnote 4);
        ``"weights"``: ``Σ_{i∈C}|W'_down[p,i]|`` (weights only). Either is normalised by
        the layer's total write (module docstring).
    size_normalise : bool
        Divide by ``|C|·|C'|`` as in the paper.

    Returns
    -------
    numpy.ndarray, shape (K, K')
        Coalitions in the partitions' canonical order (``Partition.coalitions``).

    Raises
    ------
    InputError
        If a partition does not match its record's width, the residual widths differ, or
        ``dst_record.w_read`` is missing.
    """
    if write not in ("weighted", "weights"):
        raise InputError(f"write: expected 'weighted' or 'weights', got {write!r}.")
    if src.n_players != src_record.n_players:
        raise InputError(
            f"src: partition has {src.n_players} players but src_record (layer {src_record.layer}) "
            f"has n={src_record.n_players} neurons."
        )
    if dst.n_players != dst_record.n_players:
        raise InputError(
            f"dst: partition has {dst.n_players} players but dst_record (layer {dst_record.layer}) "
            f"has n={dst_record.n_players} neurons."
        )
    if dst_record.w_read is None:
        raise InputError(
            f"dst_record: layer {dst_record.layer} has no w_read (the MLP input projections, "
            "shape (g, n', d)); capture it to track coalitions."
        )
    if src_record.d != dst_record.h.shape[1]:
        raise InputError(
            f"src_record/dst_record: residual widths differ (d={src_record.d} vs h of shape "
            f"{dst_record.h.shape})."
        )
    act = np.abs(np.asarray(src_record.a, dtype=np.float64)).mean(axis=0) if write == "weighted" else None
    h_abs = np.abs(np.asarray(dst_record.h, dtype=np.float64)).mean(axis=0)
    return interaction_mass_arrays(
        src.labels, dst.labels, src_record.w_down, dst_record.w_read, h_abs, act,
        size_normalise=size_normalise,
    )
