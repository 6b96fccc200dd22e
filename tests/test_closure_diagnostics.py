"""Closure diagnostics: null φ, the same algorithm's largest share on it, and the k-sweep (docs/method.md §5)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import (
    closure_null_share,
    k_sweep,
    null_phi_like,
    pac_top_cover,
    pooled_pair,
    top_cover,
)
from hedonic_neurons.partition import Partition


def _sym(rng: np.random.Generator, n: int, dtype: type = np.float64) -> np.ndarray:
    a = rng.standard_normal((n, n))
    phi = np.triu(a, 1)
    return (phi + phi.T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_null_phi_has_the_same_values_and_is_symmetric(dtype: type) -> None:
    rng = np.random.default_rng(0)
    n = 37
    phi = _sym(rng, n, dtype)
    phi[np.diag_indices(n)] = 9.0  # the diagonal is ignored, the null's is zero
    iu = np.triu_indices(n, 1)
    null = null_phi_like(phi, seed=3)
    assert null.dtype == dtype and null.shape == (n, n)
    assert np.array_equal(null, null.T)
    assert np.all(np.diag(null) == 0)
    assert np.array_equal(np.sort(null[iu]), np.sort(phi[iu]))
    assert not np.array_equal(null, np.where(np.eye(n, dtype=bool), 0, phi))  # it is permuted
    assert np.array_equal(null_phi_like(phi, seed=3), null)
    assert not np.array_equal(null_phi_like(phi, seed=4), null)


def test_null_phi_of_an_asymmetric_matrix_samples_its_entries() -> None:
    rng = np.random.default_rng(1)
    n = 20
    phi = rng.integers(-5, 6, size=(n, n)).astype(np.float64)
    null = null_phi_like(phi, seed=0)
    assert np.array_equal(null, null.T)
    off = phi[~np.eye(n, dtype=bool)]
    drawn = Counter(null[np.triu_indices(n, 1)].tolist())
    available = Counter(off.tolist())
    assert sum(drawn.values()) == n * (n - 1) // 2
    assert all(drawn[v] <= available[v] for v in drawn)  # a sample without replacement


def test_null_phi_small_sizes_and_errors() -> None:
    assert null_phi_like(np.zeros((1, 1)), 0).shape == (1, 1)
    assert null_phi_like(np.zeros((0, 0)), 0).shape == (0, 0)
    with pytest.raises(InputError, match="square"):
        null_phi_like(np.zeros((2, 3)), 0)
    with pytest.raises(InputError, match="seed"):
        null_phi_like(np.zeros((2, 2)), None)  # type: ignore[arg-type]


def test_closure_null_share_is_the_same_algorithm_on_the_null() -> None:
    rng = np.random.default_rng(2)
    phi = _sym(rng, 64)
    for k in (1, 3):
        share = closure_null_share(phi, "top_cover", k, seed=5)
        expected = top_cover(null_phi_like(phi, 5), k=k).summary().largest_share
        assert share == expected
    pac = closure_null_share(phi, "pac_top_cover", 3, seed=5, m=2000, omega=200)
    ref = pac_top_cover(null_phi_like(phi, 5), k=3, m=2000, omega=200, seed=5).summary().largest_share
    assert pac == ref
    assert 0 < pac <= 1


def test_closure_null_share_grows_with_k_on_a_random_game() -> None:
    # the closure effect itself: on a null game the giant grows with k
    rng = np.random.default_rng(3)
    phi = _sym(rng, 128)
    shares = [closure_null_share(phi, "top_cover", k, seed=0) for k in (1, 2, 5)]
    assert shares[0] < 0.1 and shares[0] < shares[1] < shares[2]
    assert shares[2] > 0.8


def test_closure_null_share_errors() -> None:
    phi = np.zeros((4, 4))
    with pytest.raises(InputError, match="method: expected one of"):
        closure_null_share(phi, "no_such_method", 3)
    with pytest.raises(InputError, match="k: top_cover is top-responsive"):
        closure_null_share(phi, "top_cover")
    with pytest.raises(InputError, match=r"\['omega'\] are not arguments of top_cover"):
        closure_null_share(phi, "top_cover", 3, omega=10)
    with pytest.raises(InputError, match="k"):
        closure_null_share(phi, "top_cover", 0)


def _six_player_game() -> tuple[np.ndarray, np.ndarray]:
    """Two triangles {0,1,2}, {3,4,5}; ψ_ij = 10·i + j off the diagonal (asymmetric on purpose)."""
    phi = -np.ones((6, 6))
    for a, b, c in ((0, 1, 2), (3, 4, 5)):
        phi[a, b] = phi[b, a] = 3.0
        phi[a, c] = phi[c, a] = 2.0
        phi[b, c] = phi[c, b] = 2.0
    np.fill_diagonal(phi, 0.0)
    psi = 10.0 * np.arange(6)[:, None] + np.arange(6)[None, :]
    np.fill_diagonal(psi, 100.0)  # ignored
    return phi, psi


def test_k_sweep_by_hand_on_six_players() -> None:
    phi, psi = _six_player_game()
    table = k_sweep(phi, ks=(1, 2, 3), heldout_psi=psi)
    assert list(table.columns) == ["k", "n_coalitions", "largest_share", "n_singletons", "pooled_pair"]
    assert table["k"].tolist() == [1, 2, 3]
    # k = 1: {0,1}, {3,4} (mutual best partners), 2 and 5 alone (only negative partners left)
    # pooled Pair = (ψ01 + ψ10 + ψ34 + ψ43) / 4 = (1 + 10 + 34 + 43) / 4 = 22
    # k = 2, 3: the two triangles; (1+2+10+12+20+21 + 34+35+43+45+53+54) / 12 = 330 / 12 = 27.5
    assert table["n_coalitions"].tolist() == [4, 2, 2]
    assert table["largest_share"].tolist() == pytest.approx([2 / 6, 3 / 6, 3 / 6], abs=1e-15)
    assert table["n_singletons"].tolist() == [2, 0, 0]
    assert table["pooled_pair"].tolist() == pytest.approx([22.0, 27.5, 27.5], abs=1e-12)
    assert "pooled_pair" not in k_sweep(phi, ks=(1,)).columns


def test_pooled_pair_by_hand_and_nan() -> None:
    _, psi = _six_player_game()
    part = Partition.from_coalitions([[0, 5], [1], [2, 3, 4]])
    # (ψ05 + ψ50 + ψ23 + ψ24 + ψ32 + ψ34 + ψ42 + ψ43) / 8
    expected = (5 + 50 + 23 + 24 + 32 + 34 + 42 + 43) / 8
    assert pooled_pair(psi, part) == pytest.approx(expected, abs=1e-12)
    assert pooled_pair(psi, part.labels) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(pooled_pair(psi, Partition.from_labels(np.arange(6))))


def test_k_sweep_errors() -> None:
    phi, psi = _six_player_game()
    with pytest.raises(InputError, match="heldout_psi: expected shape"):
        k_sweep(phi, heldout_psi=psi[:5, :5])
    with pytest.raises(InputError, match="ks: expected"):
        k_sweep(phi, ks=())
    with pytest.raises(InputError, match="k: expected an integer"):
        k_sweep(phi, ks=(1, 0))
    with pytest.raises(InputError, match="heldout_psi: expected finite"):
        k_sweep(phi, heldout_psi=np.full((6, 6), np.inf))


def test_accepts_a_synergy_matrix() -> None:
    from hedonic_neurons.valuations import null_valuation

    sm = null_valuation(30, seed=2)
    assert np.array_equal(null_phi_like(sm, 1), null_phi_like(sm.values, 1))
    assert closure_null_share(sm, "top_cover", 2, seed=1) == closure_null_share(sm.values, "top_cover", 2, seed=1)
    assert k_sweep(sm, ks=(2,)).equals(k_sweep(sm.values, ks=(2,)))
