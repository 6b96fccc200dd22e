"""MNIST coalition metrics on hand-built inputs with known answers (App. I.6)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.mnist.metrics import (
    STROKE_TEMPLATES,
    accuracy_drop,
    activation_sparsity,
    coalition_activation,
    digit_purity,
    digit_selectivity,
    pair_ratio,
    stroke_alignment,
    stroke_scores,
    template_masks,
    template_scale,
    top_k_indices,
)
from tests.helpers import assert_close

DIGITS = np.repeat(np.arange(10), 30)  # 300 images, 30 per digit


def test_coalition_that_fires_only_on_sevens_has_purity_one() -> None:
    rng = np.random.default_rng(0)
    h = rng.normal(0, 0.1, (300, 6))
    h[DIGITS == 7, 2] += 5.0
    h[DIGITS == 7, 4] += 5.0
    a_c = coalition_activation(h, [2, 4])
    assert digit_purity(a_c, DIGITS, k=30) == 1.0
    # with K = 60 only half of the top images can be 7s
    assert digit_purity(a_c, DIGITS, k=60) == 0.5
    assert_close(a_c, h[:, [2, 4]].mean(1), rtol=0, atol=1e-12)


def test_purity_hand_count() -> None:
    a = np.array([9.0, 8, 7, 6, 5, 4, 0, 0])
    digits = np.array([1, 1, 2, 1, 3, 3, 0, 0])
    assert digit_purity(a, digits, k=4) == 0.75  # top-4 digits 1,1,2,1
    assert digit_purity(a, digits, k=6) == 0.5


def test_top_k_order_and_ties() -> None:
    a = np.array([1.0, 3.0, 3.0, 2.0])
    assert top_k_indices(a, 3).tolist() == [1, 2, 3]
    assert top_k_indices(a, 10).tolist() == [1, 2, 3, 0]
    with pytest.raises(InputError, match="k"):
        top_k_indices(a, 0)


def test_selectivity_known_vectors() -> None:
    one_digit = (DIGITS == 3).astype(float)
    assert digit_selectivity(one_digit, DIGITS) == pytest.approx(1.0, abs=1e-12)
    two_digits = np.isin(DIGITS, [3, 8]).astype(float)
    assert digit_selectivity(two_digits, DIGITS) == pytest.approx(0.0, abs=1e-12)
    # alpha after min-max scaling: digit d -> d / 9; best minus second = 1/9
    assert digit_selectivity(DIGITS.astype(float) * 2.0 + 1.0, DIGITS) == pytest.approx(1 / 9, abs=1e-12)
    assert digit_selectivity(np.ones(300), DIGITS) == 0.0
    # scale and shift invariant
    v = np.random.default_rng(1).normal(size=300)
    assert digit_selectivity(v, DIGITS) == pytest.approx(digit_selectivity(3 * v - 7, DIGITS), abs=1e-12)


def test_selectivity_slow_reference() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    s = (a - a.min()) / (a.max() - a.min())
    alpha = sorted(float(np.mean([s[n] for n in range(300) if DIGITS[n] == d])) for d in range(10))
    assert digit_selectivity(a, DIGITS) == pytest.approx(alpha[-1] - alpha[-2], abs=1e-12)


def test_sparsity_known_vectors() -> None:
    assert activation_sparsity(np.full(100, -2.0)) == pytest.approx(1.0, abs=1e-12)
    one_hot = np.zeros(100)
    one_hot[7] = 3.0
    assert activation_sparsity(one_hot) == pytest.approx(0.1, abs=1e-12)  # 1/sqrt(N)
    assert activation_sparsity(np.array([3.0, 4.0])) == pytest.approx(7 / (5 * np.sqrt(2)), abs=1e-12)
    assert np.isnan(activation_sparsity(np.zeros(5)))


def test_accuracy_drop_in_points() -> None:
    assert accuracy_drop(0.95, 0.90) == pytest.approx(5.0)
    assert_close(accuracy_drop(0.5, np.array([0.5, 0.25])), [0.0, 25.0], rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="acc_base"):
        accuracy_drop(95.0, 0.9)


def test_pair_ratio_against_loops() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(size=(7, 7))
    psi = rng.normal(size=7) + 3
    members = [1, 4, 5, 6]
    pairs = [m[i, j] for i, j in itertools.permutations(members, 2)]
    pair, ratio = pair_ratio(m, psi, members)
    assert pair == pytest.approx(np.mean(pairs), abs=1e-12)
    assert ratio == pytest.approx(np.sum(pairs) / psi[members].sum(), abs=1e-12)
    assert all(np.isnan(v) for v in pair_ratio(m, psi, [2]))
    with pytest.raises(InputError, match="psi"):
        pair_ratio(m, psi[:3], members)


def _bar(rows: slice, cols: slice) -> np.ndarray:
    img = np.zeros((28, 28))
    img[rows, cols] = 1.0
    return img


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (_bar(slice(5, 8), slice(6, 22)), "top bar"),
        (_bar(slice(20, 23), slice(6, 22)), "bottom bar"),
        (_bar(slice(6, 22), slice(6, 9)), "left stem"),
        (_bar(slice(6, 22), slice(19, 22)), "right stem"),
    ],
)
def test_single_stroke_picks_its_template(image: np.ndarray, expected: str) -> None:
    score, name = stroke_alignment(image[None])
    assert name == expected
    assert score > 0.4  # well above the chance level 1/6
    assert_close(stroke_scores(image.reshape(1, 784)).sum(1), [1.0], rtol=0, atol=1e-12)


def test_loop_and_diagonal_templates() -> None:
    r, c = np.mgrid[:28, :28]
    ring = ((np.hypot(r - 13.5, c - 13.5) >= 5) & (np.hypot(r - 13.5, c - 13.5) <= 7)).astype(float)
    diag = ((np.abs(r + c - 27) <= 1) & (r >= 5) & (r < 23)).astype(float)
    assert stroke_alignment(ring[None])[1] == "central loop"
    assert stroke_alignment(diag[None])[1] == "diagonal"


def test_stroke_calibration_and_blank_images() -> None:
    rng = np.random.default_rng(4)
    images = rng.random((20, 784))
    scale = template_scale(images)
    calibrated = stroke_scores(images, scale)
    assert_close(calibrated.mean(0), np.full(6, 1 / 6), rtol=0, atol=0.02)
    assert_close(stroke_scores(np.zeros((1, 784))), np.full((1, 6), 1 / 6), rtol=0, atol=1e-12)
    masks = template_masks()
    assert masks.shape == (len(STROKE_TEMPLATES), 28, 28) and masks.sum((1, 2)).min() > 20
    with pytest.raises(InputError, match="images"):
        stroke_scores(np.zeros((2, 10)))
