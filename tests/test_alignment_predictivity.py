"""Coalition activations, feature alignment R² and ridge predictivity, against slow references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.metrics.alignment import (
    coalition_activations,
    correlation_matrix,
    feature_alignment,
)
from hedonic_neurons.metrics.predictivity import predictivity
from hedonic_neurons.partition import Partition
from tests.helpers import assert_close


def test_coalition_activations_match_loop() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 7))
    part = Partition.from_labels([0, 1, 0, 2, 1, 0, 3])
    got = coalition_activations(a, part)
    assert got.shape == (20, part.n_coalitions)
    slow = np.stack([a[:, c].mean(axis=1) for c in part.coalitions], axis=1)
    assert_close(got, slow, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="7 players"):
        coalition_activations(a[:, :5], part)


def test_feature_alignment_matches_corrcoef_loop() -> None:
    rng = np.random.default_rng(1)
    n = 50
    feats = pd.DataFrame({"f0": rng.normal(size=n), "f1": rng.normal(size=n), "const": np.full(n, 3.0),
                          "f3": rng.normal(size=n)})
    acts = np.stack([
        -2.0 * feats["f3"].to_numpy() + 1.0,                      # planted: exactly aligned with f3 (negatively)
        feats["f0"].to_numpy() + 0.5 * rng.normal(size=n),          # mostly f0
        np.full(n, 0.7),                                            # constant coalition
        rng.normal(size=n),
    ], axis=1)
    out = feature_alignment(acts, feats)
    assert list(out.columns) == ["coalition", "r2", "best_feature", "corr"]
    assert_close(out["r2"].iloc[0], 1.0, rtol=0, atol=1e-12)
    assert out["best_feature"].iloc[0] == "f3" and out["corr"].iloc[0] < 0
    assert out["best_feature"].iloc[1] == "f0"
    assert out["r2"].iloc[2] == 0.0 and out["best_feature"].iloc[2] == "f0"  # constant -> 0, never NaN
    for k in range(acts.shape[1]):
        if np.std(acts[:, k]) == 0:
            continue
        r = [np.corrcoef(acts[:, k], feats[c])[0, 1] if np.std(feats[c]) > 0 else 0.0 for c in feats]
        assert_close(out["r2"].iloc[k], max(x * x for x in r), rtol=1e-10, atol=1e-12)
    assert not out["r2"].isna().any()
    slow = np.array([[np.corrcoef(acts[:, k], feats[c])[0, 1] for c in ("f0", "f1", "f3")] for k in (0, 1, 3)])
    assert_close(correlation_matrix(acts[:, [0, 1, 3]], feats[["f0", "f1", "f3"]].to_numpy()), slow,
                 rtol=1e-10, atol=1e-12)
    with pytest.raises(InputError, match="rows"):
        feature_alignment(acts[:10], feats)


def test_predictivity_matches_closed_form_ridge() -> None:
    rng = np.random.default_rng(2)
    xtr, xte = rng.normal(size=(80, 5)) * [1, 10, 0.1, 1, 3], rng.normal(size=(40, 5)) * [1, 10, 0.1, 1, 3]
    w = np.array([1.0, -0.2, 5.0, 0.0, 0.3])
    ytr = xtr @ w + 0.1 * rng.normal(size=80)
    yte = xte @ w + 0.1 * rng.normal(size=40)
    alpha = 3.0
    got = predictivity(xtr, ytr, xte, yte, alpha=alpha)
    # reference: standardise with the training moments, centre y, solve (XᵀX + αI) β = Xᵀy
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    z = (xtr - mu) / sd
    beta = np.linalg.solve(z.T @ z + alpha * np.eye(5), z.T @ (ytr - ytr.mean()))
    pred = ((xte - mu) / sd) @ beta + ytr.mean()
    r2 = 1 - np.sum((yte - pred) ** 2) / np.sum((yte - yte.mean()) ** 2)
    assert_close(got, r2, rtol=1e-10, atol=1e-12)
    assert got > 0.95
    assert predictivity(xtr, ytr, xte, yte, alpha="cv") > 0.95
    noise = predictivity(xtr, rng.normal(size=80), xte, rng.normal(size=40))
    assert noise < 0.2
    with pytest.raises(InputError, match="alpha"):
        predictivity(xtr, ytr, xte, yte, alpha="auto")
    with pytest.raises(InputError, match="columns"):
        predictivity(xtr, ytr, xte[:, :3], yte)
