"""Pair(C) and Ratio(C) (paper eq. 6–8): hand cases, exact vs brute-force ablation, final readout."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hedonic_neurons import InputError, LayerRecord, Partition, Readout
from hedonic_neurons.metrics.synergy import coalition_synergy, coalition_synergy_final, pair_ratio
from tests.helpers import assert_close

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def test_pair_ratio_hand_computed() -> None:
    psi_pair = np.array([[9.0, 1.0, 2.0], [1.0, 9.0, 3.0], [2.0, 3.0, 9.0]])  # diagonal ignored
    pair, ratio = pair_ratio(psi_pair, np.array([1.0, 2.0, 3.0]))
    # Ordered off-diagonal sum = 2·(1 + 2 + 3) = 12 over 3·2 = 6 ordered pairs.
    assert pair == 2.0 and ratio == 12.0 / 6.0
    # Asymmetric input: both ordered pairs counted as given.
    pair, ratio = pair_ratio(np.array([[0.0, 1.0], [3.0, 0.0]]), np.array([2.0, 2.0]))
    assert pair == 2.0 and ratio == 1.0


def test_ratio_denominator_cancellation_is_nan() -> None:
    pair, ratio = pair_ratio(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1.0, -1.0]))
    assert pair == 1.0 and math.isnan(ratio)
    assert math.isnan(pair_ratio(np.zeros((2, 2)), np.zeros(2))[1])
    # Negative denominator keeps its sign (eq. 8 as defined).
    assert pair_ratio(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([-1.0, -1.0]))[1] == -1.0
    assert math.isnan(pair_ratio(np.zeros((1, 1)), np.array([1.0]))[0])
    with pytest.raises(InputError, match="psi_pair"):
        pair_ratio(np.zeros((2, 3)), np.zeros(2))


def make_record(seed: int, N: int = 16, n: int = 7, d: int = 5, norm: str = "rms") -> LayerRecord:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, n))
    w_down = rng.normal(size=(d, n))
    return LayerRecord(
        layer=2, h=rng.normal(size=(N, d)), a=a, a_base=a + 0.3 * rng.normal(size=(N, n)),
        y=rng.normal(size=(N, d)) * 2, w_down=w_down, w_down_base=w_down + 0.2 * rng.normal(size=(d, n)),
        readout=Readout(norm, rng.normal(size=d), bias=0.3, gamma=rng.uniform(0.5, 1.5, size=d)),
    )


def brute_force_pair_ratio(record: LayerRecord, members: np.ndarray) -> tuple[float, float]:
    """Eq. 6–8 from the record's reference ablation, one pair at a time."""
    f = record.ablated_readout([])
    single = {int(i): float(np.mean(f - record.ablated_readout([i]))) for i in members}
    total = 0.0
    for i, j in itertools.permutations(members.tolist(), 2):
        total += float(np.mean(f - record.ablated_readout([i]) - record.ablated_readout([j])
                               + record.ablated_readout([i, j])))
    m = members.size
    return total / (m * (m - 1)), total / sum(single.values())


@pytest.mark.parametrize("norm", ["rms", "layer"])
def test_coalition_synergy_matches_brute_force(norm: str) -> None:
    record = make_record(0, norm=norm)
    part = Partition.from_coalitions([[0, 3, 5], [1, 2], [4], [6]])
    df = coalition_synergy(record, part, backend="torch")
    assert list(df["coalition"]) == [0, 1]  # singletons skipped by min_size=2
    assert list(df["size"]) == [3, 2]
    for _, row in df.iterrows():
        members = part.coalitions[int(row["coalition"])]
        pair, ratio = brute_force_pair_ratio(record, members)
        # pas() stores float32 values: compare at float32 precision.
        assert_close(row["pair"], pair, rtol=1e-5, atol=1e-6)
        assert_close(row["ratio"], ratio, rtol=1e-4, atol=1e-5)
        assert row["exact"] and row["n_members_used"] == members.size


def test_coalition_synergy_subsampled_members() -> None:
    record = make_record(1, n=9)
    part = Partition.from_coalitions([list(range(9))])
    full = coalition_synergy(record, part, backend="torch")
    sub = coalition_synergy(record, part, max_members=4, seed=3, backend="torch")
    assert not sub.loc[0, "exact"] and sub.loc[0, "n_members_used"] == 4
    # The subset estimate is the brute-force value on the sampled members.
    rng = np.random.default_rng(3)
    used = np.sort(rng.choice(part.coalitions[0], size=4, replace=False))
    pair, _ = brute_force_pair_ratio(record, used)
    assert_close(sub.loc[0, "pair"], pair, rtol=1e-5, atol=1e-6)
    assert full.loc[0, "exact"]
    with pytest.raises(InputError, match="min_size"):
        coalition_synergy(record, part, min_size=1)
    with pytest.raises(InputError, match="partition"):
        coalition_synergy(record, Partition.from_labels([0, 1]))


# ---------------------------------------------------------------- final readout, tiny model
@pytest.mark.slow
def test_final_readout_equals_local_at_last_layer() -> None:
    """At the last block the local readout *is* the model output (final norm + head), so the
    sampled final-readout estimate with every pair must equal the exact local value."""
    torch = pytest.importorskip("torch")
    from hedonic_neurons.models.capture import capture
    from tests.tiny_models import random_batches, tiny_model

    torch.manual_seed(0)
    model = tiny_model("llama", seed=0, lora_layers=(3,), n_layers=4, intermediate=16, lora_scale=4.0)
    model = model.double()
    batches = random_batches(model, 2, 4, 6, seed=2)
    rec = capture(model, batches, [3], progress=False, dtype=np.float64)[3]
    part = Partition.from_coalitions([[0, 4, 9], [1, 2], *[[i] for i in (3, 5, 6, 7, 8, *range(10, 16))]])
    local = coalition_synergy(rec, part, backend="torch")
    final = coalition_synergy_final(model, batches, 3, part, n_pairs=10, progress=False, seed=0)
    assert list(final["exact"]) == [True, True]
    assert (final["pair_ci"] == 0).all()
    scale = float(np.abs(local["pair"]).max())
    assert scale > 0
    assert_close(final["pair"].to_numpy(), local["pair"].to_numpy(), rtol=1e-4, atol=1e-6 * scale)
    assert_close(final["ratio"].to_numpy(), local["ratio"].to_numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_final_readout_sampled_pairs_match_direct_ablation() -> None:
    torch = pytest.importorskip("torch")
    from hedonic_neurons.models import score
    from hedonic_neurons.models.ablation import ablate
    from tests.tiny_models import random_batches, tiny_model

    model = tiny_model("gpt_neox", seed=1, lora_layers=(1,), intermediate=32)
    batches = random_batches(model, 1, 4, 6, seed=3)
    part = Partition.from_coalitions([list(range(12)), list(range(12, 32))])
    df = coalition_synergy_final(model, batches, 1, part, n_pairs=5, max_singles=4, n_boot=200,
                                 progress=False, seed=7, coalitions=[0])
    assert len(df) == 1 and df.loc[0, "n_pairs"] == 5 and df.loc[0, "n_singles"] == 4
    assert not df.loc[0, "exact"] and df.loc[0, "pair_ci"] > 0
    assert df.loc[0, "ratio_ci_low"] <= df.loc[0, "ratio_ci_high"]

    # Re-draw the same pairs (same seed, same order of draws) and evaluate them directly.
    rng = np.random.default_rng(7)
    members = part.coalitions[0]
    m = members.size
    flat = np.sort(rng.choice(m * (m - 1) // 2, size=5, replace=False))
    iu = np.triu_indices(m, 1)

    def mean_score(ablated: list[int]) -> float:
        with torch.no_grad():
            if not ablated:
                return float(torch.cat([score(model, b) for b in batches]).double().mean())
            with ablate(model, {1: ablated}):
                return float(torch.cat([score(model, b) for b in batches]).double().mean())

    f0 = mean_score([])
    psi = []
    for k in flat:
        i, j = int(members[iu[0][k]]), int(members[iu[1][k]])
        psi.append(f0 - mean_score([i]) - mean_score([j]) + mean_score([i, j]))
    assert_close(df.loc[0, "pair"], np.mean(psi), rtol=1e-6, atol=1e-7)
