"""The scikit-learn-style estimators equal the partition functions they wrap."""

from __future__ import annotations

import numpy as np
import pytest

from hedonic_neurons import InputError
from hedonic_neurons.game import PACTopCover, TopCover, pac_top_cover, top_cover


def _phi(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return a + a.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topcover_estimator_equals_function(seed: int) -> None:
    phi = _phi(15, seed)
    est = TopCover(k=2).fit(phi)
    ref = top_cover(phi, k=2)
    assert est.partition_ == ref
    assert np.array_equal(est.labels_, ref.labels)
    assert [c.tolist() for c in est.coalitions_] == [c.tolist() for c in ref.coalitions]
    assert np.array_equal(TopCover(k=2).fit_predict(phi), ref.labels)


def test_pac_estimator_equals_function_and_params_round_trip() -> None:
    phi = _phi(20, 5)
    est = PACTopCover(k=3, m=2000, omega=200, random_state=7)
    ref = pac_top_cover(phi, k=3, m=2000, omega=200, seed=7)
    assert est.fit(phi).partition_ == ref
    params = est.get_params()
    assert params["random_state"] == 7 and params["m"] == 2000
    est.set_params(random_state=8)
    assert est.fit(phi).partition_ == pac_top_cover(phi, k=3, m=2000, omega=200, seed=8)
    assert est.blocking_rate(phi, n_samples=500).n_samples == 500
    with pytest.raises(InputError, match="unknown parameter 'seed'"):
        est.set_params(seed=1)


def test_unfitted_estimator_refuses() -> None:
    with pytest.raises(InputError, match="call fit"):
        _ = TopCover().labels_
