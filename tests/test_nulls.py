"""Size-matched null tests (docs/method.md §8): validity, power, hand-computed cases, the
vectorised paths against loops, determinism, edge cases and input validation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hedonic_neurons.errors import InputError
from hedonic_neurons.metrics import nulls
from hedonic_neurons.metrics.nulls import (
    benjamini_hochberg,
    pair_null_test,
    pooled_pair,
    pooled_pair_null,
    size_matched_null,
    size_matched_null_batch,
)
from hedonic_neurons.partition import Partition
from hedonic_neurons.synergy import SynergyMatrix
from tests.helpers import assert_close

COLUMNS = ["coalition", "size", "pair", "null_mean", "null_sd", "z", "p_value", "q_value", "significant"]


def sym_noise(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=scale, size=(n, n))
    return (a + a.T) / 2


def pair_loop(phi: np.ndarray, members: np.ndarray) -> float:
    """Pair by the definition: mean of φ_ij over ordered pairs i ≠ j."""
    vals = [phi[i, j] for i in members for j in members if i != j]
    return float(np.mean(vals))


# ----------------------------------------------------------------------------- hand-computed
PHI6 = np.array([
    [9.0, 1.0, 2.0, 0.0, 5.0, 1.0],
    [3.0, 9.0, 4.0, 1.0, 0.0, 2.0],
    [5.0, 6.0, 9.0, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, 9.0, 7.0, 3.0],
    [2.0, 0.0, 1.0, 1.0, 9.0, 0.0],
    [1.0, 1.0, 0.0, 2.0, 0.0, 9.0],
])  # asymmetric on purpose; the diagonal (9) must be ignored
PART6 = Partition.from_coalitions([[0, 1, 2], [3, 4], [5]])


def test_pair_and_pooled_pair_by_hand_on_six_players() -> None:
    # {0,1,2}: φ01+φ02+φ10+φ12+φ20+φ21 = 1+2+3+4+5+6 = 21 over 6 ordered pairs -> 3.5
    # {3,4}:   φ34+φ43 = 7+1 = 8 over 2 -> 4.0;  {5}: no pair, no row
    # pooled = (21 + 8) / (6 + 2) = 3.625 (not the mean of 3.5 and 4.0 = 3.75)
    df = pair_null_test(PHI6, PART6, n_draws=50, seed=0)
    assert list(df.columns) == COLUMNS
    assert df["size"].tolist() == [3, 2]
    assert df["coalition"].tolist() == [0, 1]
    assert_close(df["pair"], [3.5, 4.0], rtol=0, atol=1e-12)
    assert pooled_pair(PHI6, PART6) == pytest.approx(3.625, abs=1e-12)
    assert pooled_pair(SynergyMatrix(PHI6.astype(np.float32)), PART6) == pytest.approx(3.625, abs=1e-6)
    from_matrix = pair_null_test(SynergyMatrix(PHI6.astype(np.float32)), PART6, n_draws=50, seed=0)
    pd.testing.assert_frame_equal(from_matrix, df)  # integers are exact in float32


def test_pooled_pair_is_the_pair_count_weighted_mean() -> None:
    phi = sym_noise(30, 3)
    part = Partition.from_labels(np.random.default_rng(1).integers(0, 5, 30))
    df = pair_null_test(phi, part, n_draws=5, seed=0)
    w = df["size"] * (df["size"] - 1)
    assert pooled_pair(phi, part) == pytest.approx(float((df["pair"] * w).sum() / w.sum()), rel=1e-12)


def test_pooled_pair_of_all_singletons_is_nan() -> None:
    part = Partition.from_labels(np.arange(5))
    assert np.isnan(pooled_pair(sym_noise(5, 0), part))
    res = pooled_pair_null(sym_noise(5, 0), part, n_draws=10)
    assert np.isnan(res.observed) and np.isnan(res.p_value)


def test_benjamini_hochberg_against_hand_computation() -> None:
    # sorted p 0.01, 0.03, 0.04, 0.20 -> m·p/rank = 0.04, 0.06, 0.0533.., 0.20 -> step-up minimum
    p = np.array([0.01, 0.04, 0.03, 0.20])
    expected = [0.04, 0.16 / 3, 0.16 / 3, 0.20]
    assert_close(benjamini_hochberg(p), expected, rtol=0, atol=1e-12)
    assert_close(nulls._bh_numpy(p), expected, rtol=0, atol=1e-12)
    with_nan = benjamini_hochberg([0.01, np.nan, 0.04, 0.03, 0.20])
    assert np.isnan(with_nan[1])
    assert_close(np.delete(with_nan, 1), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_numpy_bh_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=37) ** 3
    p[:4] = p[4]  # ties
    assert_close(nulls._bh_numpy(p), stats.false_discovery_control(p, method="bh"), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- validity and power
def test_p_values_are_valid_on_a_null_phi() -> None:
    """Under an exchangeable φ the fixed coalition's Pair is exchangeable with the random draws:
    P(p ≤ 0.05) = 5/100 exactly with 99 draws. One coalition per seed keeps the trials
    independent; the count must lie inside the central 99.8% of Binomial(N, 0.05)."""
    n_trials = 300
    part = Partition.from_labels(np.repeat(np.arange(5), [8, 6, 6, 5, 5]))
    hits = 0
    for seed in range(n_trials):
        df = pair_null_test(sym_noise(30, 1000 + seed), part, n_draws=99, seed=seed)
        hits += int(df["p_value"].iloc[0] <= 0.05)
    lo, hi = stats.binom.ppf([0.001, 0.999], n_trials, 0.05)
    assert lo <= hits <= hi, (hits, lo, hi)


def planted(n: int = 40, groups: int = 4, size: int = 5, seed: int = 0) -> tuple[np.ndarray, Partition]:
    phi = sym_noise(n, seed, scale=0.3)
    labels = np.arange(n) + groups  # singletons after the planted groups
    for g in range(groups):
        members = np.arange(g * size, (g + 1) * size)
        phi[np.ix_(members, members)] += 1.0
        labels[members] = g
    return phi, Partition.from_labels(labels)


def test_power_on_planted_synergistic_groups() -> None:
    phi, part = planted()
    df = pair_null_test(phi, part, n_draws=999, seed=0)
    assert len(df) == 4 and (df["size"] == 5).all()  # singletons get no row
    assert df["significant"].all()
    assert (df["p_value"] == 1 / 1000).all()
    assert (df["z"] > 5).all()
    pooled = pooled_pair_null(phi, part, n_draws=500, seed=0)
    assert pooled.p_value == 1 / 501 and pooled.z > 5


def test_null_mean_is_the_mean_off_diagonal_phi() -> None:
    """E[Pair of a uniform random s-subset] = mean of φ over all ordered pairs, for every s."""
    phi = sym_noise(40, 7) + 0.3
    mu = phi[~np.eye(40, dtype=bool)].mean()
    part = Partition.from_labels(np.repeat(np.arange(4), [20, 10, 6, 4]))  # gather and GEMM paths
    df = pair_null_test(phi, part, n_draws=2000, seed=3)
    for _, row in df.iterrows():
        assert abs(row["null_mean"] - mu) <= 4 * row["null_sd"] / np.sqrt(2000), row


def test_giant_coalition_of_random_synergy_is_not_significant_when_pooled() -> None:
    """The issue's failure mode: small planted groups plus one giant coalition of random-level
    synergy. Per coalition the giant is not significant; pooled, it drags Pair to the null."""
    n = 80
    phi = sym_noise(n, 11, scale=0.3)
    labels = np.zeros(n, dtype=np.int64)  # players 8.. form the giant
    for g in range(2):
        members = np.arange(g * 4, (g + 1) * 4)
        phi[np.ix_(members, members)] += 1.0
        labels[members] = g + 1
    part = Partition.from_labels(labels)
    df = pair_null_test(phi, part, n_draws=499, seed=0)
    giant = df[df["size"] == 72].iloc[0]
    assert not giant["significant"] and (df[df["size"] == 4]["significant"]).all()
    # the mean over coalitions is dominated by the two small groups, the pooled value is not
    assert df["pair"].mean() > 0.5
    assert abs(pooled_pair(phi, part)) < 0.1


# ----------------------------------------------------------------------------- fast paths vs loops
@pytest.mark.parametrize("s", [2, 3, 10, 11, 40, 100, 101, 150, 199, 200])
def test_within_sums_match_a_loop_on_both_paths(s: int) -> None:
    """Gather (s ≤ n/20), GEMM (n/20 < s ≤ n/2) and complement (s > n/2) paths against a double
    loop, on an asymmetric φ; s = 199, 200 leave a complement without a pair or empty."""
    n = 200
    phi0 = np.asarray(sym_noise(n, s), dtype=np.float64) + np.random.default_rng(s).normal(size=(n, n))
    np.fill_diagonal(phi0, 0.0)
    idx = nulls._draw_subsets(np.random.default_rng(s), n, s, 5)
    assert idx.shape == (5, s) and all(np.unique(r).size == s for r in idx)
    assert nulls._gemm_path(n, s) == (s > 10)
    expected = [sum(phi0[i, j] for i in r for j in r) for r in idx]
    assert_close(nulls._within_sums(phi0, idx), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("s", [8, 60, 150])
def test_within_sums_of_a_float32_phi_stay_within_the_float32_bound(s: int) -> None:
    """A float32 φ (ψ's storage) is multiplied in float32 on the GEMM path; the error of each
    sum is under s · 2⁻²³ · Σ|φ_ij| and a tiny fraction of the null's spread."""
    n = 400
    phi32 = (np.random.default_rng(s).normal(size=(n, n)) * 1e-7 + 2e-9).astype(np.float32)
    np.fill_diagonal(phi32, 0.0)
    phi64 = phi32.astype(np.float64)  # the same numbers, summed exactly (to float64)
    idx = nulls._draw_subsets(np.random.default_rng(1), n, s, 40)
    p32, p64 = nulls.prepare_phi(phi32), nulls.prepare_phi(phi64)
    assert p32.values.dtype == np.float32 and p64.values.dtype == np.float64
    w32, w64 = nulls._within_sums(p32.values, idx, p32.pair), nulls._within_sums(p64.values, idx, p64.pair)
    abs_sum = np.array([np.abs(phi64[np.ix_(r, r)]).sum() for r in idx])
    assert np.all(np.abs(w32 - w64) <= s * 2.0**-23 * abs_sum)
    assert np.abs(w32 - w64).max() < 1e-5 * w64.std()
    if not nulls._gemm_path(n, s):  # gathered blocks are summed in float64: exact
        assert_close(w32, w64, rtol=1e-12, atol=0)


def test_prepare_phi_uses_a_float32_matrix_in_place_when_its_diagonal_is_zero() -> None:
    phi = np.random.default_rng(0).normal(size=(10, 10)).astype(np.float32)
    np.fill_diagonal(phi, 0.0)
    m = SynergyMatrix(phi)
    prepared = nulls.prepare_phi(m)
    assert prepared.values.dtype == np.float32 and np.shares_memory(prepared.values, m.values)
    assert not prepared.values.flags.writeable
    phi[0, 0] = 5.0  # a non-zero diagonal is zeroed on a copy; the caller's array is untouched
    prepared = nulls.prepare_phi(phi)
    assert not np.shares_memory(prepared.values, phi) and phi[0, 0] == 5.0 and prepared.values[0, 0] == 0.0
    assert nulls.prepare_phi(phi.astype(np.float16)).values.dtype == np.float64


@pytest.mark.parametrize("s", [9, 16, 25])
def test_within_sums_given_margins_equal_the_computed_ones(s: int) -> None:
    n = 32
    phi0 = np.random.default_rng(s).normal(size=(n, n))
    np.fill_diagonal(phi0, 0.0)
    idx = nulls._draw_subsets(np.random.default_rng(1), n, s, 9)
    margins = (float(phi0.sum()), phi0.sum(axis=0) + phi0.sum(axis=1))
    np.testing.assert_array_equal(nulls._within_sums(phi0, idx, margins), nulls._within_sums(phi0, idx))


def test_prepare_phi_copies_zeroes_the_diagonal_and_is_reused() -> None:
    phi = np.random.default_rng(0).normal(size=(12, 12))
    before = phi.copy()
    prepared = nulls.prepare_phi(phi)
    np.testing.assert_array_equal(phi, before)  # the caller's matrix is untouched
    assert np.all(np.diag(prepared.values) == 0.0) and prepared.values.dtype == np.float64
    off = phi - np.diag(np.diag(phi))
    assert_close(prepared.total, off.sum(), rtol=1e-12, atol=1e-12)
    assert_close(prepared.margins, off.sum(axis=0) + off.sum(axis=1), rtol=1e-12, atol=1e-12)
    assert nulls.prepare_phi(prepared) is prepared
    for members in ([0, 3, 5], list(range(1, 11))):  # gather path and complement path
        assert_close(prepared.within(members), sum(off[i, j] for i in members for j in members), rtol=1e-12, atol=1e-12)
    part = Partition.from_labels(np.repeat(np.arange(3), 4))
    a = pair_null_test(phi, part, n_draws=99, seed=3)
    b = pair_null_test(prepared, part, n_draws=99, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert pooled_pair_null(phi, part, n_draws=50).p_value == pooled_pair_null(prepared, part, n_draws=50).p_value


def test_pair_null_test_matches_the_generic_loop_reference() -> None:
    """The vectorised Pair null equals size_matched_null with Pair computed by a double loop:
    same draws (same seed), same p-values, z and q-values."""
    n = 32
    phi = sym_noise(n, 5) + np.random.default_rng(2).normal(scale=0.2, size=(n, n))  # asymmetric
    part = Partition.from_labels(np.repeat(np.arange(6), [12, 6, 5, 4, 3, 2]))
    fast = pair_null_test(phi, part, n_draws=120, seed=9)
    obs = {c: pair_loop(phi, part.coalitions[c]) for c in range(part.n_coalitions)}
    sizes = {c: int(part.sizes[c]) for c in range(part.n_coalitions)}
    slow = size_matched_null(obs, sizes, lambda m: pair_loop(phi, m), n_players=n, draws_per_size=120, seed=9,
                             metric="pair")
    pd.testing.assert_frame_equal(fast.reset_index(drop=True), slow.reset_index(drop=True), check_exact=False,
                                  rtol=1e-10, atol=1e-12)


def test_batch_and_loop_versions_agree_and_chunking_does_not_matter() -> None:
    n = 25
    e = np.random.default_rng(4).normal(size=n)
    values = {"a": 1.5, "b": -0.2, "c": 0.7, "solo": 3.0}
    sizes = {"a": 5, "b": 5, "c": 9, "solo": 1}
    loop = size_matched_null(values, sizes, lambda m: float(e[m].sum()), n_players=n, draws_per_size=70, seed=2,
                             metric="ood_drop")
    calls: list[int] = []

    def batch(m: np.ndarray) -> np.ndarray:
        assert m.shape[0] == n and set(np.unique(m)) <= {0.0, 1.0}
        calls.append(m.shape[1])
        return e @ m

    vec = size_matched_null_batch(values, sizes, batch, n_players=n, draws_per_size=70, batch_size=16, seed=2,
                                  metric="ood_drop")
    assert list(vec.columns) == ["coalition", "size", "ood_drop", *COLUMNS[3:]]
    assert vec["coalition"].tolist() == ["a", "b", "c"]  # the singleton is not tested
    assert max(calls) == 16 and sum(calls) == 2 * 70
    pd.testing.assert_frame_equal(loop, vec, check_exact=False, rtol=1e-12, atol=1e-12)
    # a and b share the size-5 draws
    assert vec.loc[0, "null_mean"] == vec.loc[1, "null_mean"]


def test_pooled_null_values_match_random_partitions_built_one_by_one() -> None:
    n = 20
    phi0 = sym_noise(n, 8)
    np.fill_diagonal(phi0, 0.0)
    sizes = [7, 4, 4, 2, 1, 1, 1]
    perms = np.argsort(np.random.default_rng(0).random((6, n)), axis=1)
    fast = nulls._pooled_null_values(phi0, sizes, perms)
    for b, perm in enumerate(perms):
        labels = np.empty(n, dtype=np.int64)
        labels[perm] = np.repeat(np.arange(len(sizes)), sizes)
        part = Partition.from_labels(labels)
        assert sorted(part.sizes.tolist(), reverse=True) == sizes
        assert fast[b] == pytest.approx(pooled_pair(phi0, part), rel=1e-12)


def test_pooled_null_is_valid_on_a_null_phi() -> None:
    n_trials = 200
    part = Partition.from_labels(np.repeat(np.arange(4), [6, 6, 4, 4]))
    hits = sum(pooled_pair_null(sym_noise(20, 500 + s), part, n_draws=99, seed=s).p_value <= 0.05
               for s in range(n_trials))
    lo, hi = stats.binom.ppf([0.001, 0.999], n_trials, 0.05)
    assert lo <= hits <= hi


def test_pair_nulls_draw_both_tests_from_the_same_random_partitions() -> None:
    """pair_nulls: the pooled test equals pooled_pair_null (same seed); each coalition's null is
    the Pair of the first block of its size in each of those random partitions, by a loop."""
    n = 60
    phi = sym_noise(n, 3) + np.random.default_rng(4).normal(scale=0.3, size=(n, n))  # asymmetric
    phi[:8, :8] += 1.0  # one planted block
    labels = np.repeat(np.arange(7), [20, 8, 8, 8, 7, 5, 4])
    part = Partition.from_labels(labels)
    res = nulls.pair_nulls(phi, part, n_draws=150, alpha=0.1, seed=11)
    ref = pooled_pair_null(phi, part, n_draws=150, seed=11)
    assert res.pooled.to_dict() == ref.to_dict()
    np.testing.assert_array_equal(res.pooled.null, ref.null)
    # rebuild the random partitions: same generator, same chunks, blocks largest first
    rng = np.random.default_rng(11)
    perms = np.argsort(rng.random((150, n)), axis=1)  # one chunk: 150 ≤ _BLOCK_ELEMENTS // n
    order = sorted(part.sizes.tolist(), reverse=True)
    starts = np.concatenate([[0], np.cumsum(order)[:-1]])
    first = {s: int(starts[order.index(s)]) for s in set(order)}
    table = res.table.set_index("coalition")
    assert list(res.table.columns) == COLUMNS and len(table) == part.n_coalitions
    p_values = {}
    for c in range(part.n_coalitions):
        s = int(part.sizes[c])
        null = np.array([pair_loop(phi, np.sort(perm[first[s]:first[s] + s])) for perm in perms])
        obs = pair_loop(phi, part.coalitions[c])
        row = table.loc[c]
        assert_close(row["pair"], obs, rtol=1e-10, atol=1e-12)
        assert_close(row["null_mean"], null.mean(), rtol=1e-10, atol=1e-12)
        assert_close(row["null_sd"], null.std(ddof=1), rtol=1e-8, atol=1e-12)
        p_values[c] = (1 + np.count_nonzero(null >= row["pair"])) / 151
        assert row["p_value"] == pytest.approx(p_values[c], abs=1e-12)
    assert_close(table["q_value"].to_numpy(), benjamini_hochberg(list(p_values.values())), rtol=1e-12, atol=0)
    assert bool(table.loc[part.labels[0], "significant"])  # the planted block is found
    # the per-coalition observed values are those of pair_null_test
    direct = pair_null_test(phi, part, n_draws=20, seed=0)
    np.testing.assert_array_equal(direct["pair"].to_numpy(), res.table["pair"].to_numpy())


def test_pair_nulls_are_valid_on_a_null_phi() -> None:
    n_trials = 150
    part = Partition.from_labels(np.repeat(np.arange(4), [8, 6, 4, 2]))
    p = np.concatenate([nulls.pair_nulls(sym_noise(20, 900 + t), part, n_draws=99, seed=t).table["p_value"]
                        for t in range(n_trials)])
    hits = int((p <= 0.05).sum())
    lo, hi = stats.binom.ppf([0.001, 0.999], p.size, 0.05)
    assert hits <= hi and hits >= lo * 0.5  # coalitions of one trial share a φ: allow some dependence


def test_pair_nulls_edge_cases() -> None:
    phi = sym_noise(8, 0)
    whole = nulls.pair_nulls(phi, Partition.from_labels(np.zeros(8, dtype=np.int64)), n_draws=30)
    assert whole.table["p_value"].tolist() == [1.0] and whole.pooled.p_value == 1.0
    singles = nulls.pair_nulls(phi, Partition.from_labels(np.arange(8)), n_draws=30)
    assert singles.table.empty and math.isnan(singles.pooled.observed)
    with pytest.raises(InputError, match="n_draws"):
        nulls.pair_nulls(phi, Partition.from_labels(np.arange(8)), n_draws=0)


# ----------------------------------------------------------------------------- determinism and edge cases
def test_same_seed_same_table_other_seed_other_draws() -> None:
    phi = sym_noise(30, 1)
    part = Partition.from_labels(np.repeat(np.arange(3), [10, 10, 10]))
    a = pair_null_test(phi, part, n_draws=200, seed=5)
    pd.testing.assert_frame_equal(a, pair_null_test(phi, part, n_draws=200, seed=5))
    b = pair_null_test(phi, part, n_draws=200, seed=6)
    assert not np.array_equal(a["null_mean"].to_numpy(), b["null_mean"].to_numpy())
    r1 = pooled_pair_null(phi, part, n_draws=50, seed=np.random.default_rng(3))
    r2 = pooled_pair_null(phi, part, n_draws=50, seed=np.random.default_rng(3))
    assert np.array_equal(r1.null, r2.null) and r1 == r1


def test_draws_of_one_size_do_not_depend_on_the_other_sizes() -> None:
    phi = sym_noise(30, 2)
    p1 = Partition.from_labels(np.repeat(np.arange(3), [10, 10, 10]))
    p2 = Partition.from_labels(np.repeat(np.arange(4), [10, 10, 6, 4]))
    a = pair_null_test(phi, p1, n_draws=100, seed=1)
    b = pair_null_test(phi, p2, n_draws=100, seed=1)
    assert_close(a["null_mean"].iloc[:2], b["null_mean"].iloc[:2], rtol=0, atol=0)


def test_coalition_of_all_players_gets_p_value_one() -> None:
    phi = sym_noise(8, 0) + 5.0
    df = pair_null_test(phi, Partition.from_labels(np.zeros(8, dtype=np.int64)), n_draws=100)
    row = df.iloc[0]
    assert row["size"] == 8 and row["p_value"] == 1.0 and row["null_sd"] == 0.0 and np.isnan(row["z"])
    assert row["null_mean"] == row["pair"] and not row["significant"]
    pooled = pooled_pair_null(phi, Partition.from_labels(np.zeros(8, dtype=np.int64)), n_draws=10)
    assert pooled.p_value == 1.0 and pooled.null.size == 0


def test_partition_without_pairs_gives_an_empty_table() -> None:
    df = pair_null_test(sym_noise(4, 0), Partition.from_labels(np.arange(4)), n_draws=10)
    assert df.empty and list(df.columns) == COLUMNS


def test_nan_observed_value_is_reported_and_left_out_of_bh() -> None:
    df = size_matched_null([0.0, np.nan, 5.0], [3, 3, 3], lambda m: float(m.sum()), n_players=10,
                           draws_per_size=50, seed=0)
    assert np.isnan(df.loc[1, "p_value"]) and np.isnan(df.loc[1, "q_value"]) and not df.loc[1, "significant"]
    assert_close(df.loc[[0, 2], "q_value"], benjamini_hochberg(df.loc[[0, 2], "p_value"]), rtol=0, atol=1e-15)


def test_p_value_formula_counts_ties_as_at_least_as_large() -> None:
    """A constant null (ties everywhere) gives p = 1 for an observed value equal to it."""
    df = size_matched_null([2.0, 2.5], [2, 2], lambda m: 2.0, n_players=6, draws_per_size=9, seed=0)
    assert df["p_value"].tolist() == [1.0, 0.1]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_draws": 0}, "n_draws"),
    ({"n_draws": 2.5}, "n_draws"),
    ({"alpha": 0.0}, "alpha"),
    ({"alpha": 1.5}, "alpha"),
    ({"seed": None}, "seed"),
    ({"seed": -1}, "seed"),
])
def test_pair_null_test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        pair_null_test(PHI6, PART6, **kwargs)


def test_shape_mismatch_and_wrong_types_are_input_errors() -> None:
    with pytest.raises(InputError, match="partition: has 6 players but phi is 5 x 5"):
        pair_null_test(PHI6[:5, :5], PART6)
    with pytest.raises(InputError, match="phi"):
        pair_null_test(PHI6[:, :5], PART6)
    with pytest.raises(InputError, match="partition"):
        pair_null_test(PHI6, [0, 0, 0, 1, 1, 2])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="phi"):
        pooled_pair(np.full((6, 6), np.nan), PART6)
    with pytest.raises(InputError, match="n_draws"):
        pooled_pair_null(PHI6, PART6, n_draws=0)


def test_generic_null_validation() -> None:
    f = lambda m: 0.0  # noqa: E731
    with pytest.raises(InputError, match="sizes: expected 2 sizes"):
        size_matched_null([1.0, 2.0], [3], f, n_players=5)
    with pytest.raises(InputError, match=r"sizes: expected integers in 1\.\.n_players=5"):
        size_matched_null([1.0], [6], f, n_players=5)
    with pytest.raises(InputError, match="draws_per_size"):
        size_matched_null([1.0], [2], f, n_players=5, draws_per_size=0)
    with pytest.raises(InputError, match="null_fn"):
        size_matched_null([1.0], [2], "not callable", n_players=5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="metric"):
        size_matched_null([1.0], [2], f, n_players=5, metric="p_value")
    with pytest.raises(InputError, match="non-finite"):
        size_matched_null([1.0], [2], lambda m: float("nan"), n_players=5, draws_per_size=3)
    with pytest.raises(InputError, match="expected 4 values"):
        size_matched_null_batch([1.0], [2], lambda m: np.zeros(3), n_players=5, draws_per_size=4)
    with pytest.raises(InputError, match="sizes: no size for coalition"):
        size_matched_null({"a": 1.0}, {"b": 2}, f, n_players=5)


@pytest.mark.parametrize(("n", "s"), [(6, 2), (9, 3), (6, 3), (7, 5)])  # rejection sampler, then key sampler
def test_all_subsets_are_reachable_and_uniform(n: int, s: int) -> None:
    """The draws are uniform over the C(n, s) subsets (chi-square, fixed seed), rows sorted."""
    draws = 400 * math.comb(n, s)
    idx = nulls._draw_subsets(np.random.default_rng(0), n, s, draws)
    assert (np.diff(idx, axis=1) > 0).all()
    subsets = {c: k for k, c in enumerate(itertools.combinations(range(n), s))}
    counts = np.bincount([subsets[tuple(r)] for r in idx.tolist()], minlength=len(subsets))
    assert counts.sum() == draws and (counts > 0).all()
    assert stats.chisquare(counts).pvalue > 1e-4


def test_key_sampler_rows_do_not_depend_on_chunking() -> None:
    a = nulls._draw_subsets(np.random.default_rng(1), 10, 6, 50)
    rng = np.random.default_rng(1)
    b = np.concatenate([nulls._draw_subsets(rng, 10, 6, k) for k in (7, 20, 23)])
    assert np.array_equal(a, b)
