"""Cross-layer tracking (docs/method.md §7): interaction mass against a neuron loop, planted transitions."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedonic_neurons import InputError, LayerRecord, Partition, Readout
from hedonic_neurons.tracking import (
    EVENTS,
    TRANSITION_RULE,
    TransitionTable,
    classify_transitions,
    interaction_mass,
    interaction_mass_arrays,
    match_coalitions,
    threshold_sweep,
    track,
    transfer_ratios,
    transition_table,
    transitions_long,
)
from tests.helpers import assert_close


def make_record(rng: np.random.Generator, layer: int, N: int, n: int, d: int, g: int = 2) -> LayerRecord:
    """A synthetic record with consistent shapes (values random, not from a model)."""
    h = rng.normal(size=(N, d))
    a = rng.normal(size=(N, n))
    w_down = rng.normal(size=(d, n))
    w_base = w_down + 0.1 * rng.normal(size=(d, n))
    y = h + a @ w_down.T
    return LayerRecord(
        layer=layer, h=h, a=a, a_base=a + 0.1 * rng.normal(size=(N, n)), y=y, w_down=w_down,
        w_down_base=w_base, readout=Readout("rms", rng.normal(size=d)), w_read=rng.normal(size=(g, n, d)),
    )


def mass_loop(src: Partition, dst: Partition, rs: LayerRecord, rd: LayerRecord, weighted: bool = True) -> np.ndarray:
    """The paper's formula, one neuron and one residual dimension at a time."""
    d = rs.d
    e_a = np.abs(rs.a).mean(0) if weighted else np.ones(rs.n_players)
    A = np.abs(rd.h).mean(0)
    total = sum(abs(rs.w_down[p, i]) * e_a[i] for p in range(d) for i in range(rs.n_players))
    out = np.zeros((src.n_coalitions, dst.n_coalitions))
    for ci, C in enumerate(src.coalitions):
        for cj, Cp in enumerate(dst.coalitions):
            acc = 0.0
            for q in Cp:
                for p in range(d):
                    read = sum(abs(rd.w_read[g, q, p]) for g in range(rd.w_read.shape[0]))
                    w_c = sum(abs(rs.w_down[p, i]) * e_a[i] for i in C) / total
                    acc += read * A[p] * w_c
            out[ci, cj] = acc / (len(C) * len(Cp))
    return out


@pytest.mark.parametrize("g", [1, 2])
@pytest.mark.parametrize("weighted", [True, False])
def test_mass_matches_neuron_loop(g: int, weighted: bool) -> None:
    rng = np.random.default_rng(g + 10 * weighted)
    rs, rd = make_record(rng, 3, 20, 9, 5, g), make_record(rng, 4, 20, 7, 5, g)
    src = Partition.from_labels(rng.integers(0, 4, size=9))
    dst = Partition.from_labels(rng.integers(0, 3, size=7))
    got = interaction_mass(src, dst, rs, rd, write="weighted" if weighted else "weights")
    assert got.shape == (src.n_coalitions, dst.n_coalitions)
    assert_close(got, mass_loop(src, dst, rs, rd, weighted), rtol=1e-10, atol=1e-14)


def test_mass_arrays_plain_inputs() -> None:
    rng = np.random.default_rng(7)
    d, n, n2 = 4, 6, 5
    w_down, w_read = rng.normal(size=(d, n)), rng.normal(size=(n2, d))
    h_abs, act = rng.random(d), rng.random(n)
    src, dst = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 0, 0])
    raw = interaction_mass_arrays(src, dst, w_down, w_read, h_abs, act, size_normalise=False)
    norm = interaction_mass_arrays(src, dst, w_down, w_read[None], h_abs, act)
    assert_close(norm, raw / np.outer([2, 3, 1], [3, 2]), rtol=1e-12, atol=0)
    # Loop over neurons and residual dims with the unnormalised write.
    write = np.abs(w_down) * act[None]
    expect = np.zeros((3, 2))
    for i, q, p in itertools.product(range(n), range(n2), range(d)):
        expect[src[i], dst[q]] += abs(w_read[q, p]) * h_abs[p] * write[p, i]
    assert_close(raw, expect / write.sum(), rtol=1e-12, atol=0)
    with pytest.raises(InputError, match="h_abs_mean"):
        interaction_mass_arrays(src, dst, w_down, w_read, h_abs[:2], act)
    with pytest.raises(InputError, match="labels"):  # label 3 unused: an empty coalition
        interaction_mass_arrays(np.array([0, 0, 1, 1, 4, 2]), dst, w_down, w_read, h_abs, act)


def test_mass_invariant_to_neuron_order() -> None:
    rng = np.random.default_rng(1)
    rs, rd = make_record(rng, 0, 10, 8, 6), make_record(rng, 1, 10, 6, 6)
    src = Partition.from_labels(np.array([0, 0, 1, 1, 1, 2, 2, 3]))
    dst = Partition.from_labels(np.array([0, 1, 1, 2, 2, 2]))
    base = interaction_mass(src, dst, rs, rd)
    perm = rng.permutation(8)
    # Same coalitions, neurons renumbered: labels and record columns permuted together.
    from dataclasses import replace

    rs_p = replace(rs, a=rs.a[:, perm], a_base=rs.a_base[:, perm], w_down=rs.w_down[:, perm],
                   w_down_base=rs.w_down_base[:, perm], w_read=rs.w_read[:, perm])
    src_p = Partition.from_labels(src.labels[perm])
    got = interaction_mass(src_p, dst, rs_p, rd)
    # Coalitions keep sizes, so canonical order maps each coalition to the same-size one;
    # compare through a membership-based alignment.
    order = [int(np.flatnonzero([set(perm[c].tolist()) == set(c0.tolist()) for c0 in src.coalitions])[0])
             for c in src_p.coalitions]
    assert_close(got, base[order], rtol=1e-12, atol=1e-15)


def test_mass_errors_name_arguments() -> None:
    rng = np.random.default_rng(2)
    rs, rd = make_record(rng, 0, 5, 4, 3), make_record(rng, 1, 5, 4, 3)
    with pytest.raises(InputError, match="src"):
        interaction_mass(Partition.from_labels([0, 1, 1]), Partition.from_labels([0, 0, 1, 1]), rs, rd)
    from dataclasses import replace

    with pytest.raises(InputError, match="w_read"):
        interaction_mass(Partition.from_labels([0, 0, 1, 1]), Partition.from_labels([0, 0, 1, 1]), rs,
                         replace(rd, w_read=None))
    with pytest.raises(InputError, match="write"):
        interaction_mass(Partition.from_labels([0, 0, 1, 1]), Partition.from_labels([0, 0, 1, 1]), rs, rd,
                         write="bogus")  # type: ignore[arg-type]


def test_planted_weights_give_block_mass_and_persist() -> None:
    """Source coalition c writes only residual dims D_c; target coalition c reads only D_c."""
    rng = np.random.default_rng(3)
    K, per, d = 3, 2, 6
    n = K * per
    labels = np.repeat(np.arange(K), per)
    dims = np.repeat(np.arange(K), d // K)
    w_down = np.zeros((d, n))
    w_read = np.zeros((2, n, d))
    for i in range(n):
        w_down[dims == labels[i], i] = rng.uniform(0.5, 1.5, size=d // K)
        w_read[:, i, dims == labels[i]] = rng.uniform(0.5, 1.5, size=(2, d // K))
    rs = make_record(rng, 0, 12, n, d)
    from dataclasses import replace

    rs = replace(rs, w_down=w_down, w_down_base=w_down)
    rd = replace(make_record(rng, 1, 12, n, d), w_read=w_read)
    part = Partition.from_labels(labels)
    m = interaction_mass(part, part, rs, rd)
    assert np.count_nonzero(m - np.diag(np.diag(m))) == 0 and (np.diag(m) > 0).all()
    tables = track({0: part, 1: part}, {0: rs, 1: rd})
    t = tables[(0, 1)]
    assert list(t.event) == ["persist"] * K
    assert list(t.target) == [0, 1, 2] and list(t.matched) == [0, 1, 2]


# ---------------------------------------------------------------- planted transitions
PLANTED = np.array([
    # targets:  T0   T1   T2   T3   T4   T5
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # S0 feeds exactly T0 (and T0 only hears S0)  -> persist
    [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # S1 spreads evenly over T1, T2 (each only S1) -> split
    [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],  # S2 and S3 both feed only T3                 -> merge, merge
    [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # S4 feeds nothing                            -> vanish
    [0.0, 0.0, 0.0, 0.0, 0.5, 0.5],  # S5: α=0.5 each onto T4/T5 whose input is    -> vanish (band)
    [0.0, 0.0, 0.0, 0.0, 2.0, 0.0],  #     mostly from S6 / S7 (β(S5→T4)=0.2);
    [0.0, 0.0, 0.0, 0.0, 0.0, 2.0],  #     S6, S7: α=1, β=0.8                      -> persist
])


def test_planted_transitions() -> None:
    df = classify_transitions(PLANTED)
    assert list(df["event"]) == ["persist", "split", "merge", "merge", "vanish", "vanish", "persist", "persist"]
    assert df.loc[0, "target"] == 0 and df.loc[0, "alpha"] == 1.0 and df.loc[0, "beta"] == 1.0
    assert df.loc[1, "targets"] == "1;2" and df.loc[1, "alpha"] == 0.5 and df.loc[1, "beta"] == 1.0
    assert df.loc[2, "target"] == 3 and df.loc[3, "target"] == 3
    assert df.loc[2, "beta"] == 0.5 and df.loc[3, "alpha"] == 1.0
    assert df.loc[4, "target"] == -1 and df.loc[4, "targets"] == ""


@pytest.mark.parametrize(
    ("row", "event"),
    [
        ([1.0, 0.0, 0.0], "persist"),
        ([0.5, 0.5, 0.0], "split"),
        ([0.0, 0.0, 0.0], "vanish"),
    ],
)
def test_single_source_events(row: list[float], event: str) -> None:
    # Targets fed by nobody else, so β = 1 wherever the row is positive.
    t = transition_table(np.array([row]))
    assert t.event[0] == event


def test_split_needs_non_negligible_piece() -> None:
    # S0 sends 5% to T0 (which only it feeds) and 95% spread over targets dominated by others.
    m = np.array([[0.05] + [0.95 / 19] * 19, [0.0] + [1.0] * 19])
    assert classify_transitions(m)["event"][0] == "vanish"
    assert classify_transitions(m, alpha_lo=0.04)["event"][0] == "split"


def test_percentages_relative_to_source_layer() -> None:
    t = transition_table(PLANTED, src_sizes=np.arange(1, 9))
    counts = t.counts()
    assert counts == {"persist": 3, "merge": 2, "split": 1, "vanish": 2}
    pct = t.percentages()
    assert_close(sum(pct.values()), 100.0, rtol=0, atol=1e-9)
    assert_close(pct["merge"], 25.0, rtol=0, atol=1e-12)
    summary = t.summary()
    assert summary.loc[0, "vanish_count"] == 2 and summary.loc[0, "n_dst"] == 6
    assert summary.loc[0, "merged_targets"] == 1  # S2 and S3 merge into the one target T3


def test_ratios_and_matching() -> None:
    rng = np.random.default_rng(4)
    m = rng.random((5, 4))
    alpha, beta = transfer_ratios(m)
    assert_close(alpha.sum(1), np.ones(5), rtol=0, atol=1e-12)
    assert_close(beta.sum(0), np.ones(4), rtol=0, atol=1e-12)
    assert_close(transfer_ratios(3.0 * m)[0], alpha, rtol=1e-12, atol=0)
    matched = match_coalitions(m)
    # Brute force: the best injective assignment of the 4 targets to 5 sources.
    best = max(itertools.permutations(range(5), 4), key=lambda rows: sum(m[r, c] for c, r in enumerate(rows)))
    expect = np.full(5, -1)
    for c, r in enumerate(best):
        expect[r] = c
    assert list(matched) == list(expect)


def test_threshold_validation() -> None:
    with pytest.raises(InputError, match="alpha_hi"):
        transition_table(PLANTED, alpha_hi=0.1, alpha_lo=0.2)
    with pytest.raises(InputError, match="non-negative"):
        transition_table(-PLANTED)


def test_threshold_sweep() -> None:
    df = threshold_sweep({(7, 8): PLANTED}, alpha_hi_grid=[0.4, 0.7, 0.9], alpha_lo_grid=[0.1, 0.5])
    assert set(df.columns) >= {"src_layer", "dst_layer", "alpha_hi", "alpha_lo", *EVENTS}
    # lo < hi only: (0.4,0.1), (0.7,0.1), (0.7,0.5), (0.9,0.1), (0.9,0.5)
    assert len(df) == 5
    assert_close(df[list(EVENTS)].sum(axis=1).to_numpy(), np.full(5, 100.0), rtol=0, atol=1e-9)
    paper = df[(df.alpha_hi == 0.7) & (df.alpha_lo == 0.1)].iloc[0]
    pct = transition_table(PLANTED).percentages()
    for e in EVENTS:
        assert_close(paper[e], pct[e], rtol=0, atol=1e-12)
    # At alpha_hi = 0.4 the even split (α = 0.5) becomes ... S1 has α >= hi and β >= hi: persist.
    low = df[(df.alpha_hi == 0.4)].iloc[0]
    assert low["persist"] > paper["persist"]


def test_table_roundtrip(tmp_path) -> None:
    t = transition_table(PLANTED, src_layer=7, dst_layer=8, src_sizes=np.arange(1, 9))
    t.save(tmp_path / "t.json", include_mass=True)
    back = TransitionTable.load(tmp_path / "t.json")
    assert back == t
    assert_close(back.mass, PLANTED, rtol=0, atol=0)
    assert back.targets == t.targets
    t.save(tmp_path / "t.csv")
    t.save(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv", keep_default_na=False), t.to_dataframe(),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), t.to_dataframe())
    with pytest.raises(InputError, match="path"):
        t.save(tmp_path / "t.txt")


def test_transitions_long_and_rule_text() -> None:
    tables = {(7, 8): transition_table(PLANTED, src_layer=7, dst_layer=8),
              (8, 9): transition_table(np.eye(3), src_layer=8, dst_layer=9)}
    df = transitions_long(tables, model="tiny", task="cqtr", seed=0)
    assert list(df.columns[:3]) == ["model", "task", "seed"]
    assert len(df) == 8
    sub = df[(df.src_layer == 8)].set_index("event")["percent"]
    assert sub["persist"] == 100.0 and sub["vanish"] == 0.0
    assert "persist" in TRANSITION_RULE and "in-between band" in TRANSITION_RULE


def test_track_requires_two_layers() -> None:
    rng = np.random.default_rng(5)
    r = make_record(rng, 0, 4, 3, 2)
    with pytest.raises(InputError, match="two layers"):
        track({0: Partition.from_labels([0, 1, 1])}, {0: r})


# ---------------------------------------------------------------- tiny real model
def _merged_mlp(model, family: str, layer: int) -> dict[str, np.ndarray]:
    """LoRA-merged MLP weights read from a merged deep copy (independent of the capture code)."""
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    if family == "llama":
        mlp = merged.model.layers[layer].mlp
        return {"up": mlp.up_proj.weight, "gate": mlp.gate_proj.weight, "down": mlp.down_proj.weight}
    mlp = merged.gpt_neox.layers[layer].mlp
    return {"in": mlp.dense_h_to_4h.weight, "down": mlp.dense_4h_to_h.weight}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_mass_on_tiny_model_matches_neuron_loop(family: str, torch_one_thread) -> None:
    _check_tiny(torch_one_thread, family)


def _check_tiny(torch, family: str) -> None:
    from hedonic_neurons.models.capture import capture
    from tests.tiny_models import random_batches, tiny_model

    model = tiny_model(family, seed=0, lora_layers=(1, 2))
    recs = capture(model, random_batches(model, 2, 3, 6, seed=1), [1, 2], progress=False, dtype=np.float64)
    rng = np.random.default_rng(0)
    src = Partition.from_labels(rng.integers(0, 6, size=recs[1].n_players))
    dst = Partition.from_labels(rng.integers(0, 5, size=recs[2].n_players))
    got = interaction_mass(src, dst, recs[1], recs[2])

    with torch.no_grad():
        w_src = {k: v.double().numpy() for k, v in _merged_mlp(model, family, 1).items()}
        w_dst = {k: v.double().numpy() for k, v in _merged_mlp(model, family, 2).items()}
    reads = [w_dst["up"], w_dst["gate"]] if family == "llama" else [w_dst["in"]]
    read = sum(np.abs(r) for r in reads)  # (n', d): read[q, p]
    e_a = np.abs(recs[1].a).mean(0)
    A = np.abs(recs[2].h).mean(0)
    write = np.abs(w_src["down"]) * e_a[None, :]  # (d, n)
    total = write.sum()
    expect = np.zeros((src.n_coalitions, dst.n_coalitions))
    for ci, C in enumerate(src.coalitions):
        w_c = write[:, C].sum(1) / total
        for cj, Cp in enumerate(dst.coalitions):
            acc = 0.0
            for q in Cp:
                for p in range(read.shape[1]):
                    acc += read[q, p] * A[p] * w_c[p]
            expect[ci, cj] = acc / (len(C) * len(Cp))
    # PEFT merges in float32 (the model's dtype); capture merges in float64.
    assert_close(got, expect, rtol=1e-6, atol=1e-12)
    assert_close(recs[1].w_down, w_src["down"], rtol=1e-6, atol=1e-7)


def test_mass_float32_inputs_close_to_float64() -> None:
    rng = np.random.default_rng(11)
    d, n, n2 = 16, 40, 30
    args = (rng.integers(0, 5, n), rng.integers(0, 4, n2), rng.normal(size=(d, n)), rng.normal(size=(2, n2, d)),
            rng.random(d), rng.random(n))
    ref = interaction_mass_arrays(*args)
    f32 = interaction_mass_arrays(args[0], args[1], args[2].astype(np.float32), args[3].astype(np.float32),
                                  args[4], args[5])
    assert f32.dtype == np.float64
    assert_close(f32, ref, rtol=1e-5, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-6, 1e6),
)
def test_events_invariant_to_relabelling_and_scale(shape: tuple[int, int], seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    m = rng.random(shape) ** 4 * (rng.random(shape) < 0.6)
    base = classify_transitions(m)
    pr, pc = rng.permutation(shape[0]), rng.permutation(shape[1])
    perm = classify_transitions(scale * m[pr][:, pc])
    assert list(perm["event"]) == list(base["event"].to_numpy()[pr])
    # Events partition the source coalitions.
    t = transition_table(m)
    assert sum(t.counts().values()) == shape[0]
    # With alpha_hi > 2/3 a persisting coalition is always matched to its persist target.
    is_p = t.event == "persist"
    assert (t.target[is_p] == t.matched[is_p]).all()
