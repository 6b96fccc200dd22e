"""Coalition predictivity (paper §4 "Coalition Predictivity", Table 2; docs/method.md §8).

Coalitions become macro-features ``A(x) ∈ R^K`` (their mean activations); a ridge
regression ``ŷ = wᵀA(x) + b`` is fit in distribution and scored by R² on the OOD split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["DEFAULT_ALPHAS", "predictivity"]

#: The ridge penalties searched when ``alpha="cv"``.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 3, 13))


def _xy(x: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    if xa.ndim == 1:
        xa = xa[:, None]
    if xa.ndim != 2:
        raise InputError(f"{name}_acts: expected shape (N, K), got {xa.shape}.")
    if xa.shape[0] != ya.shape[0]:
        raise InputError(f"{name}_acts has {xa.shape[0]} rows but {name}_y has {ya.shape[0]} values.")
    if xa.shape[0] < 2:
        raise InputError(f"{name}_acts: need at least 2 inputs, got {xa.shape[0]}.")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise InputError(f"{name}_acts / {name}_y: contain NaN or inf values.")
    return xa, ya


def predictivity(
    train_acts: Any,
    train_y: Any,
    test_acts: Any,
    test_y: Any,
    alpha: float | str = 1.0,
    standardize: bool = True,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
) -> float:
    """OOD R² of a ridge regression on coalition macro-features.

    Parameters
    ----------
    train_acts : array_like, shape (N_train, K)
        In-distribution coalition activations (:func:`~.alignment.coalition_activations`).
    train_y : array_like, shape (N_train,)
        Task targets (CQTR, Mean-TF/L, or relevance grades).
    test_acts : array_like, shape (N_test, K)
        OOD activations of the same K coalitions.
    test_y : array_like, shape (N_test,)
    alpha : float or "cv"
        Ridge penalty (default 1.0). ``"cv"`` picks it from ``alphas`` by efficient
        leave-one-out cross-validation on the training split (``sklearn.linear_model.RidgeCV``).
    standardize : bool
        Standardise the features with the training split's mean and std first (default
        ``True``; makes one ``alpha`` comparable across coalitions of different scales).
    alphas : tuple of float
        Candidates for ``alpha="cv"``.

    Returns
    -------
    float
        ``sklearn.metrics.r2_score(test_y, ŷ)`` — can be negative; with a constant ``test_y``
        it is 1.0 for a perfect prediction and 0.0 otherwise (scikit-learn's convention).
    """
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = _xy(train_acts, train_y, "train")
    xte, yte = _xy(test_acts, test_y, "test")
    if xtr.shape[1] != xte.shape[1]:
        raise InputError(f"train_acts has {xtr.shape[1]} columns but test_acts has {xte.shape[1]}; "
                         "both must hold the same coalitions.")
    if isinstance(alpha, str):
        if alpha != "cv":
            raise InputError(f"alpha: expected a non-negative float or 'cv', got {alpha!r}.")
        reg: Any = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64))
    else:
        if not np.isfinite(alpha) or alpha < 0:
            raise InputError(f"alpha: expected a non-negative float or 'cv', got {alpha!r}.")
        reg = Ridge(alpha=float(alpha))
    model = make_pipeline(StandardScaler(), reg) if standardize else reg
    model.fit(xtr, ytr)
    return float(r2_score(yte, model.predict(xte)))
