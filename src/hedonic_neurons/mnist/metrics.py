"""Per-coalition metrics of the MNIST study (App. I.6; docs/method.md §8). Plain NumPy/SciPy.

For a coalition ``C`` of residual coordinates in layer ``h_l`` and ``N`` evaluation
images:

* ``a_C(n) = mean_{i in C} h_l(n, i)`` — the coalition activation (App. I.6 (3)).
* :func:`accuracy_drop` — ``ΔAcc(C) = Acc_base - Acc_{-C}`` in percentage points.
* :func:`pair_ratio` — ``Pair(C)`` (mean ``psi(i, j)`` over ordered pairs ``i != j``) and
  ``Ratio(C) = sum_{i != j} psi(i, j) / sum_i psi(i)`` (eq. 8) from a pairwise-interaction
  matrix and the marginals (both exact on the layer-local readout).
* :func:`digit_purity` — ``max_d Pr[digit = d | n in top-K by a_C]`` (K = 128).
* :func:`digit_selectivity` — ``max_d alpha_d - max_{d' != d} alpha_{d'}`` where
  ``alpha_d = E[a_C(n) | digit(n) = d]`` is computed on ``a_C`` **min-max rescaled to
  [0, 1] over the evaluation images**, so selectivity lies in [0, 1] and is comparable
  across coalitions and layers (the paper leaves the scale open).
* :func:`activation_sparsity` — ``||a_C||_1 / (||a_C||_2 sqrt(N))`` over the ``N`` images:
  the paper's ``||a_C||_1 / ||a_C||_2`` **divided by sqrt(N)**, so it lies in
  ``[1/sqrt(N), 1]`` (1 = constant magnitude on every image; lower = sparser).
* :func:`stroke_scores` / :func:`stroke_alignment` — Sobel-gradient stroke templates
  (App. I.6 (4)); see :data:`STROKE_TEMPLATES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = [
    "STROKE_TEMPLATES",
    "StrokeTemplate",
    "accuracy_drop",
    "activation_sparsity",
    "coalition_activation",
    "digit_purity",
    "digit_selectivity",
    "pair_ratio",
    "raw_stroke_scores",
    "stroke_alignment",
    "stroke_scores",
    "template_masks",
    "template_scale",
    "top_k_indices",
]

SIDE = 28


def _vector(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-d array, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: expected finite values ({int((~np.isfinite(arr)).sum())} non-finite).")
    return arr


def _digits(digits: np.ndarray, n: int) -> np.ndarray:
    d = np.asarray(digits)
    if d.shape != (n,) or not np.issubdtype(d.dtype, np.integer) or (d.size and d.min() < 0):
        raise InputError(f"digits: expected non-negative integer labels of shape ({n},), got {d.dtype} {d.shape}.")
    return d.astype(np.int64)


def coalition_activation(h: np.ndarray, members: Sequence[int] | np.ndarray) -> np.ndarray:
    """``a_C(n) = (1/|C|) sum_{i in C} h(n, i)``; ``h`` (N, d) -> shape (N,)."""
    h = np.asarray(h)
    idx = np.asarray(members, dtype=np.int64).reshape(-1)
    if h.ndim != 2:
        raise InputError(f"h: expected shape (N, d), got {h.shape}.")
    if idx.size == 0 or idx.min() < 0 or idx.max() >= h.shape[1]:
        raise InputError(f"members: expected a non-empty set of indices in 0..{h.shape[1] - 1}, got {idx.tolist()[:8]}.")
    return h[:, idx].astype(np.float64).mean(1)


def top_k_indices(a_c: np.ndarray, k: int = 128) -> np.ndarray:
    """Indices of the ``k`` largest entries of ``a_c``, largest first (ties: smaller index first)."""
    a = _vector(a_c, "a_c")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k: expected a positive integer, got {k!r}.")
    k = min(int(k), a.size)
    return np.lexsort((np.arange(a.size), -a))[:k]


def digit_purity(a_c: np.ndarray, digits: np.ndarray, k: int = 128) -> float:
    """``max_d Pr[digit = d | n in top-k by a_C]`` (App. I.6 (3)); in [1/10, 1] for balanced data."""
    a = _vector(a_c, "a_c")
    d = _digits(digits, a.size)
    top = d[top_k_indices(a, k)]
    return float(np.bincount(top).max() / top.size)


def digit_selectivity(a_c: np.ndarray, digits: np.ndarray, n_classes: int = 10) -> float:
    """``max_d alpha_d - second-largest alpha_d`` on ``a_C`` min-max rescaled to [0, 1].

    ``alpha_d`` is the mean rescaled activation over images of digit ``d``; digits absent
    from ``digits`` are skipped. A constant ``a_C`` has selectivity 0.
    """
    a = _vector(a_c, "a_c")
    d = _digits(digits, a.size)
    if d.max() >= n_classes:
        raise InputError(f"digits: labels must be < n_classes={n_classes}, got max {d.max()}.")
    span = a.max() - a.min()
    if span <= 0:
        return 0.0
    scaled = (a - a.min()) / span
    counts = np.bincount(d, minlength=n_classes)
    present = counts > 0
    if present.sum() < 2:
        raise InputError("digits: selectivity needs images of at least two different digits.")
    alpha = np.bincount(d, weights=scaled, minlength=n_classes)[present] / counts[present]
    top2 = np.sort(alpha)[-2:]
    return float(top2[1] - top2[0])


def activation_sparsity(a_c: np.ndarray) -> float:
    """``||a_C||_1 / (||a_C||_2 sqrt(N))`` in ``[1/sqrt(N), 1]``; NaN for an all-zero vector."""
    a = _vector(a_c, "a_c")
    l2 = float(np.linalg.norm(a))
    if l2 == 0:
        return float("nan")
    return float(np.abs(a).sum() / (l2 * np.sqrt(a.size)))


def accuracy_drop(acc_base: float, acc_ablated: float | np.ndarray) -> float | np.ndarray:
    """``ΔAcc = Acc_base - Acc_{-C}`` in percentage points (accuracies as fractions in [0, 1])."""
    for v, name in ((acc_base, "acc_base"), (acc_ablated, "acc_ablated")):
        arr = np.asarray(v, dtype=np.float64)
        if not (np.isfinite(arr).all() and (arr >= 0).all() and (arr <= 1).all()):
            raise InputError(f"{name}: expected accuracies in [0, 1], got {v}.")
    out = 100.0 * (float(acc_base) - np.asarray(acc_ablated, dtype=np.float64))
    return float(out) if np.ndim(out) == 0 else out


def pair_ratio(psi_pair: np.ndarray, psi: np.ndarray, members: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """``(Pair(C), Ratio(C))`` of eq. 8 for the coalition ``members`` of a whole layer.

    Slices the layer's matrices to ``C`` and calls the shared
    :func:`hedonic_neurons.metrics.synergy.pair_ratio`.

    Parameters
    ----------
    psi_pair : numpy.ndarray, shape (n, n)
        ``psi(i, j)`` (the exact PAS matrix on the layer-local readout; diagonal ignored).
    psi : numpy.ndarray, shape (n,)
        Marginals ``psi(i) = E[f - f_{-i}]``.
    members : index array of C

    Returns
    -------
    (float, float)
        ``Pair = sum_{i != j in C} psi(i, j) / (|C|(|C|-1))`` (ordered pairs) and
        ``Ratio = sum_{i != j in C} psi(i, j) / sum_{i in C} psi(i)``. Both NaN for a
        singleton; Ratio is NaN when the marginal sum is cancellation noise (shared rule).
    """
    from ..metrics.synergy import pair_ratio as shared_pair_ratio

    m = np.asarray(psi_pair, dtype=np.float64)
    p = np.asarray(psi, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or p.shape != (m.shape[0],):
        raise InputError(f"psi_pair, psi: expected shapes (n, n) and (n,), got {m.shape} and {p.shape}.")
    idx = np.asarray(members, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= p.size:
        raise InputError(f"members: expected indices in 0..{p.size - 1}, got {idx.tolist()[:8]}.")
    if idx.size < 2:
        return float("nan"), float("nan")
    return shared_pair_ratio(m[np.ix_(idx, idx)], p[idx])


# ---------------------------------------------------------------------------- strokes
@dataclass(frozen=True)
class StrokeTemplate:
    """A stroke template: a spatial window and the gradient component scored inside it.

    ``component``: ``"horizontal"`` = |d/d row| (horizontal edges, i.e. bars),
    ``"vertical"`` = |d/d col| (vertical edges, i.e. stems), ``"magnitude"`` =
    sqrt of the sum of squares of both, ``"diagonal"`` = |d/d row + d/d col| / sqrt(2)
    (edges of strokes running from top-right to bottom-left, as in 7 and 2).
    ``rows``/``cols``: half-open pixel windows on the 28x28 canvas (row 0 = top).
    """

    name: str
    component: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    shape: str = "box"  # "box", "annulus" (radii in rows), "antidiagonal" (half-width in cols[0])


#: The six templates of App. I.6 (4). Windows on the 28x28 canvas (row 0 = top):
#: top bar rows 2-9, bottom bar rows 18-25 (cols 4-23, horizontal edges);
#: left stem cols 3-11, right stem cols 16-24 (rows 4-23, vertical edges);
#: central loop: annulus 3 <= r <= 8 px around the centre (13.5, 13.5), gradient magnitude;
#: diagonal: band |row + col - 27| <= 3, rows 6-21, gradient along (1, 1)/sqrt(2).
STROKE_TEMPLATES: tuple[StrokeTemplate, ...] = (
    StrokeTemplate("top bar", "horizontal", (2, 10), (4, 24)),
    StrokeTemplate("bottom bar", "horizontal", (18, 26), (4, 24)),
    StrokeTemplate("left stem", "vertical", (4, 24), (3, 12)),
    StrokeTemplate("right stem", "vertical", (4, 24), (16, 25)),
    StrokeTemplate("central loop", "magnitude", (3, 9), (0, 0), shape="annulus"),
    StrokeTemplate("diagonal", "diagonal", (6, 22), (3, 0), shape="antidiagonal"),
)


@cache
def template_masks() -> np.ndarray:
    """Boolean masks of :data:`STROKE_TEMPLATES`, shape (6, 28, 28)."""
    r, c = np.mgrid[:SIDE, :SIDE]
    masks = []
    for t in STROKE_TEMPLATES:
        if t.shape == "box":
            m = (r >= t.rows[0]) & (r < t.rows[1]) & (c >= t.cols[0]) & (c < t.cols[1])
        elif t.shape == "annulus":
            dist = np.hypot(r - (SIDE - 1) / 2, c - (SIDE - 1) / 2)
            m = (dist >= t.rows[0]) & (dist <= t.rows[1] - 1)
        else:
            m = (np.abs(r + c - (SIDE - 1)) <= t.cols[0]) & (r >= t.rows[0]) & (r < t.rows[1])
        masks.append(m)
    out = np.stack(masks)
    out.setflags(write=False)
    return out


def raw_stroke_scores(images: np.ndarray) -> np.ndarray:
    """Uncalibrated template scores: mean gradient component inside each window, shape (K, 6).

    Each image is normalised to [0, 1] by its maximum; Sobel filters
    (``scipy.ndimage.sobel``, zero padding) give the gradients along rows and columns.

    Parameters
    ----------
    images : numpy.ndarray, shape (K, 784) or (K, 28, 28)
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == SIDE * SIDE:
        x = x.reshape(-1, SIDE, SIDE)
    if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
        raise InputError(f"images: expected shape (K, 784) or (K, 28, 28), got {np.shape(images)}.")
    peak = x.reshape(len(x), -1).max(1)
    x = x / np.where(peak > 0, peak, 1.0)[:, None, None]
    g_r = ndimage.sobel(x, axis=1, mode="constant")
    g_c = ndimage.sobel(x, axis=2, mode="constant")
    comps = {
        "horizontal": np.abs(g_r),
        "vertical": np.abs(g_c),
        "magnitude": np.hypot(g_r, g_c),
        "diagonal": np.abs(g_r + g_c) / np.sqrt(2.0),
    }
    masks = template_masks()
    return np.stack(
        [(comps[t.component] * m).sum((1, 2)) / m.sum() for t, m in zip(STROKE_TEMPLATES, masks)], axis=1
    )


def template_scale(images: np.ndarray) -> np.ndarray:
    """Mean raw score of each template over a reference set (e.g. all test images), shape (6,)."""
    return raw_stroke_scores(images).mean(0)


def stroke_scores(images: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Per-image, per-template stroke scores ``s_tau(n)``, shape (K, 6), rows summing to 1.

    Steps (App. I.6 (4)): :func:`raw_stroke_scores`; with ``scale`` (from
    :func:`template_scale` on the whole evaluation set) each raw score is divided by its
    template's population mean, so a template with a large window in the ink-heavy centre
    (the central loop) does not win on every image; finally the scores are normalised per
    image to sum to 1 over the six templates (a blank image scores 1/6 everywhere). With
    ``scale`` the average image scores about 1/6 on every template, so chance level of
    :func:`stroke_alignment` is about 1/6.

    Parameters
    ----------
    images : numpy.ndarray, shape (K, 784) or (K, 28, 28)
    scale : numpy.ndarray, shape (6,), optional
        Positive per-template calibration (``None``: no calibration).
    """
    raw = raw_stroke_scores(images)
    if scale is not None:
        sc = np.asarray(scale, dtype=np.float64)
        if sc.shape != (len(STROKE_TEMPLATES),) or not (sc > 0).all():
            raise InputError(f"scale: expected {len(STROKE_TEMPLATES)} positive values, got {sc}.")
        raw = raw / sc
    total = raw.sum(1, keepdims=True)
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), 1.0 / len(STROKE_TEMPLATES))


def stroke_alignment(images: np.ndarray, scale: np.ndarray | None = None) -> tuple[float, str]:
    """``Stroke(C) = max_tau mean_{n in top-K} s_tau(n)`` and the winning template's name.

    ``images`` are the coalition's top-K activating images, shape (K, 784) or (K, 28, 28);
    ``scale`` as in :func:`stroke_scores`.
    """
    scores = stroke_scores(images, scale).mean(0)
    best = int(np.argmax(scores))
    return float(scores[best]), STROKE_TEMPLATES[best].name
