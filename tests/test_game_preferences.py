"""Preferences of the top-k responsive game (docs/method.md §4): hand cases, invariants, vectorised vs reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import choice_set, coalition_value, preference_key, top_partners, utility
from hedonic_neurons.game._sampling import sample_coalitions
from hedonic_neurons.game.pac import sample_values
from hedonic_neurons.game.preferences import (
    _coalition_tops,
    _key_columns,
    _lex_greater,
    _sample_tops,
)
from tests.helpers import assert_close

# player 0 values: 1 -> 0.5, 2 -> 0.9, 3 -> 0.5, 4 -> -1.0, 5 -> 0.0
PHI = np.array(
    [
        [0.0, 0.5, 0.9, 0.5, -1.0, 0.0],
        [0.5, 0.0, 0.2, 0.1, 0.3, 0.0],
        [0.9, 0.2, 0.0, 0.0, 0.0, 0.0],
        [0.5, 0.1, 0.0, 0.0, 0.0, 0.0],
        [-1.0, 0.3, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


def test_top_partners_hand_case() -> None:
    # largest positive first, tie 0.5/0.5 broken by the smaller index, never phi <= 0
    assert top_partners(PHI, 0, range(6), k=3).tolist() == [2, 1, 3]
    assert top_partners(PHI, 0, range(6), k=2).tolist() == [2, 1]
    assert top_partners(PHI, 0, [0, 4, 5], k=3).tolist() == []
    assert top_partners(PHI, 0, [3, 1], k=1).tolist() == [1]
    assert top_partners(PHI, 0, [0, 1, 2, 3, 4, 5], k=10).tolist() == [2, 1, 3]


def test_choice_set_utility_key_hand_case() -> None:
    assert choice_set(PHI, 0, range(6), k=2).tolist() == [0, 1, 2]
    # divide by the fixed k, not the number of partners found
    assert utility(PHI, 0, range(6), k=3) == pytest.approx((0.9 + 0.5 + 0.5) / 3, abs=1e-15)
    assert utility(PHI, 0, [0, 2], k=3) == pytest.approx(0.9 / 3, abs=1e-15)
    assert utility(PHI, 0, [0, 4], k=3) == 0.0
    key = preference_key(PHI, 0, [0, 1, 2, 4], k=3)
    assert key == ((0.9 + 0.5) / 3, -3, [(0.9, -2), (0.5, -1)], -4)
    # same choice set, smaller coalition preferred
    assert preference_key(PHI, 0, [0, 1, 2], k=3) > preference_key(PHI, 0, [0, 1, 2, 4], k=3)
    # tie in value: the smaller partner index is preferred
    assert preference_key(PHI, 0, [0, 1], k=3) > preference_key(PHI, 0, [0, 3], k=3)


def test_coalition_value_hand_case() -> None:
    S = [0, 1, 2]
    k = 3
    expected = ((0.9 + 0.5) / k + (0.5 + 0.2) / k + (0.9 + 0.2) / k) / 3
    assert coalition_value(PHI, S, k) == pytest.approx(expected, abs=1e-15)
    assert coalition_value(PHI, [], k) == 0.0
    assert coalition_value(-np.ones((3, 3)), [0, 1, 2], k) == 0.0


def test_choice_set_is_unique_best_subset() -> None:
    """ch_i(X) is the strict maximum of key_i over subsets of X containing i (top-responsiveness)."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 7))
        k = int(rng.integers(1, 4))
        phi = rng.integers(-2, 3, size=(n, n)).astype(float)  # ties and negatives
        i = int(rng.integers(n))
        X = list(range(n))
        ch = choice_set(phi, i, X, k).tolist()
        best = preference_key(phi, i, ch, k)
        others = [j for j in X if j != i]
        for r in range(len(others) + 1):
            for sub in itertools.combinations(others, r):
                Y = sorted([i, *sub])
                if Y != ch:
                    assert preference_key(phi, i, Y, k) < best


def test_asymmetric_phi_uses_row_i_only() -> None:
    phi = np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert top_partners(phi, 0, [0, 1], 3).tolist() == [1]
    assert top_partners(phi, 1, [0, 1], 3).tolist() == []


def _ref_key_vector(phi: np.ndarray, i: int, members: list[int], k: int, width: int) -> list[float]:
    u, negch, pairs, negx = preference_key(phi, i, members, k)
    flat: list[float] = [u, float(negch)]
    for v, j in pairs:
        flat += [v, float(j)]
    flat += [0.0] * (width - 3 - len(flat) + 2)
    return [*flat, float(negx)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_vectorised_keys_match_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 15
    phi = np.round(rng.normal(size=(n, n)), 1).astype(np.float32)  # many ties
    S = sample_coalitions(np.arange(n), 200, (1, 7), rng)
    tops, vals = _sample_tops(phi, S, k)
    size = (S >= 0).sum(axis=1)
    keys = _key_columns(tops, vals, size[:, None], k)
    width = keys.shape[-1]
    for t in range(S.shape[0]):
        mem = S[t][S[t] >= 0].tolist()
        for p, i in enumerate(mem):
            ref = top_partners(phi, i, mem, k).tolist()
            assert tops[t, p][tops[t, p] >= 0].tolist() == ref
            assert keys[t, p].tolist() == _ref_key_vector(phi, i, mem, k, width)
    assert_close(sample_values(phi, S, k), [coalition_value(phi, S[t][S[t] >= 0], k) for t in range(S.shape[0])],
                 rtol=0, atol=1e-12)


def test_lex_greater_matches_python_order() -> None:
    rng = np.random.default_rng(3)
    n, k = 9, 2
    phi = rng.integers(-1, 3, size=(n, n)).astype(float)
    subsets = [list(c) for r in range(1, 5) for c in itertools.combinations(range(n), r) if 0 in c]
    width = 2 * k + 3
    vec = np.array([_ref_key_vector(phi, 0, s, k, width) for s in subsets])
    for a in range(0, len(subsets), 7):
        for b in range(0, len(subsets), 5):
            got = bool(_lex_greater(vec[a], vec[b]))
            assert got == (preference_key(phi, 0, subsets[a], k) > preference_key(phi, 0, subsets[b], k))


def test_coalition_tops_match_reference() -> None:
    rng = np.random.default_rng(4)
    n, k = 20, 3
    phi = np.round(rng.normal(size=(n, n)), 1)
    C = np.sort(rng.choice(n, size=12, replace=False))
    tops, vals = _coalition_tops(phi, C, k, chunk_elems=30)  # several chunks
    for r, i in enumerate(C):
        ref = top_partners(phi, int(i), C, k)
        assert tops[r][tops[r] >= 0].tolist() == ref.tolist()
        assert_close(vals[r][: ref.size], phi[i, ref], rtol=0, atol=0)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="square"):
        top_partners(np.zeros((2, 3)), 0, [0, 1], 3)
    with pytest.raises(InputError, match="k"):
        top_partners(PHI, 0, [0, 1], 0)
    with pytest.raises(InputError, match="i"):
        top_partners(PHI, 9, [0, 1], 3)
    with pytest.raises(InputError, match="does not contain"):
        preference_key(PHI, 0, [1, 2], 3)
    with pytest.raises(InputError, match="distinct"):
        utility(PHI, 0, [0, 1, 1], 3)
    with pytest.raises(InputError, match=r"0\.\.5"):
        choice_set(PHI, 0, [0, 7], 3)
    with pytest.raises(InputError, match="numeric"):
        utility(np.array([["a", "b"], ["c", "d"]]), 0, [0, 1], 1)


def test_public_api_and_no_torch() -> None:
    """The agreed names are exported, and the game core imports without torch."""
    import subprocess
    import sys

    import hedonic_neurons.baselines as baselines
    import hedonic_neurons.game as game

    for name in ("top_cover", "pac_top_cover", "blocking_rate", "is_core_stable", "BlockingRate",
                 "top_partners", "choice_set", "utility", "preference_key", "coalition_value",
                 "internally_stable", "find_blocking_coalition"):
        assert name in game.__all__ and callable(getattr(game, name))
    for name in ("random_partition", "spherical_kmeans", "hierarchical", "matched_baselines"):
        assert name in baselines.__all__
    code = ("import sys; import hedonic_neurons.game, hedonic_neurons.baselines, hedonic_neurons.cli.partition; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
