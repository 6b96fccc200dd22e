"""The evidence protocol's building blocks (docs/method.md §8.5) against plain references.

- the held-out split: disjoint, by query, seeded, covering every row;
- held-out Pair/Ratio with the size-matched null: per-coalition Pair and the pooled Pair from
  ψ by explicit loops, the significant share from the null table;
- the estimated OOD drop of every coalition: the membership-matrix fast path against a loop
  over coalitions, its null against the one-coalition-at-a-time null, ``drop_rel`` against a
  direct all-LoRA ablation on a tiny model;
- the verification and control stages against direct ablations through the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.evaluation import (
    EvaluationOptions,
    evaluate_heldout_synergy,
    evaluate_ood_estimated,
    evaluate_synergy,
)
from hedonic_neurons.ir.splits import heldout_split
from hedonic_neurons.partition import Partition
from tests.helpers import assert_close

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LAYER = 1


# ----------------------------------------------------------------------------- split
def test_heldout_split_is_disjoint_by_query_seeded_and_complete() -> None:
    rng = np.random.default_rng(3)
    qids = rng.integers(0, 40, size=300).astype(str)
    a = heldout_split(qids, 0.3, seed=7)
    b = heldout_split(qids, 0.3, seed=7)
    c = heldout_split(qids, 0.3, seed=8)
    assert np.array_equal(a.discovery, b.discovery) and np.array_equal(a.heldout, b.heldout)
    assert not np.array_equal(a.heldout, c.heldout)
    assert np.intersect1d(a.discovery, a.heldout).size == 0
    assert np.array_equal(np.sort(np.concatenate([a.discovery, a.heldout])), np.arange(300))
    assert not set(qids[a.discovery]) & set(qids[a.heldout])  # no query on both sides
    # whole queries move until the held-out part has at least the requested share
    share = a.heldout.size / 300
    assert share >= 0.3 - 1e-12
    largest = pd.Series(qids).value_counts().max()
    assert a.heldout.size - largest < round(0.3 * 300)
    with pytest.raises(InputError, match="fraction"):
        heldout_split(qids, 1.0)
    with pytest.raises(InputError, match="at least 2 distinct queries"):
        heldout_split(["q"] * 5, 0.5)


# ----------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny():
    from hedonic_neurons.models.capture import capture
    from tests.tiny_models import random_batches, tiny_model

    model = tiny_model("llama", seed=0, lora_layers=(1, 2), intermediate=24)
    batches = random_batches(model, 3, 8, 7, seed=1)
    n_in = sum(b["input_ids"].shape[0] for b in batches)
    targets = np.random.default_rng(0).normal(size=n_in)
    rec = capture(model, batches, [LAYER], labels=targets)[LAYER]
    part = Partition.from_labels(np.random.default_rng(1).integers(0, 5, size=rec.n_players))
    return {"model": model, "batches": batches, "record": rec, "partition": part, "targets": targets}


def _pair_loop(psi: np.ndarray, members: np.ndarray) -> float:
    tot, cnt = 0.0, 0
    for i in members:
        for j in members:
            if i != j:
                tot += psi[i, j]
                cnt += 1
    return tot / cnt


def test_heldout_synergy_against_loops(tiny) -> None:
    from hedonic_neurons.valuations import pas

    rec, part = tiny["record"], tiny["partition"]
    disc, held = rec.subset(np.arange(0, 12)), rec.subset(np.arange(12, rec.n_inputs))
    psi_h = np.asarray(pas(held, method="exact").values, dtype=np.float64)
    psi_d = np.asarray(pas(disc, method="exact").values, dtype=np.float64)
    opts = EvaluationOptions(null_draws=199, alpha=0.1, seed=4)
    ev = evaluate_heldout_synergy(held, part, psi_h, opts, psi_insample=psi_d)
    big = [c for c in range(part.n_coalitions) if part.sizes[c] >= 2]
    assert list(ev.table["coalition"]) == big
    # reference: Pair and Ratio of each coalition through the readout itself (per-coalition exact PAS
    # and marginals of the held-out records)
    ref = evaluate_synergy(held, part, opts).table.set_index("coalition")
    for row in ev.table.itertuples():
        members = part.coalitions[row.coalition]
        assert_close(row.pair, _pair_loop(psi_h, members), rtol=1e-9, atol=1e-15)
        assert_close(row.pair, ref.loc[row.coalition, "pair"], rtol=1e-5, atol=1e-12)
        assert_close(row.ratio, ref.loc[row.coalition, "ratio"], rtol=1e-5, atol=1e-12)
        assert_close(row.pair_insample, _pair_loop(psi_d, members), rtol=1e-9, atol=1e-15)
        assert 1 / 200 <= row.p_value <= 1.0
    num = sum(_pair_loop(psi_h, part.coalitions[c]) * part.sizes[c] * (part.sizes[c] - 1) for c in big)
    den = sum(part.sizes[c] * (part.sizes[c] - 1) for c in big)
    assert_close(ev.pair_pooled, num / den, rtol=1e-9, atol=1e-15)
    assert_close(ev.frac_sig, float((ev.table["q_value"] <= 0.1).mean()), rtol=0, atol=0)
    m = ev.metrics()
    assert set(m) == {"pair_heldout", "ratio_heldout", "pair_pooled_heldout", "pair_pooled_excess",
                      "frac_sig_pair", "pair_pooled"}
    assert_close(m["pair_pooled_excess"], ev.pair_pooled - ev.pair_pooled_null, rtol=0, atol=0)


def _ood_setup(tiny):
    from hedonic_neurons.models.attribution import neuron_attributions
    from hedonic_neurons.pipeline.stages.controls import _scores

    model, batches = tiny["model"], tiny["batches"]
    s = _scores(model, batches)
    e = neuron_attributions(model, batches, LAYER)
    n = len(s)
    pairs = pd.DataFrame({"qid": [f"q{i // 3}" for i in range(n)], "docid": [f"d{i}" for i in range(n)],
                          "target": tiny["targets"]})
    return s, e, pairs


def test_synergy_from_psi_equals_one_exact_pas_per_coalition(tiny) -> None:
    """evaluate_synergy(psi=...) reads Pair/Ratio from the layer's ψ and marginals; it equals the
    per-coalition exact PAS through the readout up to ψ's float32 storage, on every row, including
    a coalition of more than half the players (summed through its complement)."""
    from hedonic_neurons.synergy import SynergyMatrix
    from hedonic_neurons.valuations import pas

    rec = tiny["record"]
    labels = np.zeros(rec.n_players, dtype=np.int64)
    labels[: rec.n_players // 4] = np.arange(rec.n_players // 4) % 3 + 1  # a giant and three small ones
    for part in (tiny["partition"], Partition.from_labels(labels)):
        opts = EvaluationOptions(min_size=2)
        ref = evaluate_synergy(rec, part, opts).table
        psi = pas(rec, method="exact")
        assert isinstance(psi, SynergyMatrix) and psi.values.dtype == np.float32
        fast = evaluate_synergy(rec, part, opts, psi=psi).table
        assert list(fast.columns) == list(ref.columns) and list(fast["coalition"]) == list(ref["coalition"])
        assert fast["exact"].all() and (fast["n_members_used"] == fast["size"]).all()
        for col in ("pair", "ratio", "psi_sum"):
            assert_close(fast[col].to_numpy(), ref[col].to_numpy(), rtol=1e-5, atol=1e-12)
        for col in ("marginal_sum", "marginal_abs_sum"):
            assert_close(fast[col].to_numpy(), ref[col].to_numpy(), rtol=1e-12, atol=0)
    with pytest.raises(InputError, match="marginals"):
        from hedonic_neurons.metrics.synergy import coalition_synergy_from_psi

        coalition_synergy_from_psi(psi, np.zeros(3), part)


def test_estimated_ood_drop_against_a_loop_and_the_single_coalition_null(tiny) -> None:
    from hedonic_neurons.metrics.nulls import size_matched_null
    from hedonic_neurons.metrics.ood import task_metric

    s, e, pairs = _ood_setup(tiny)
    part = tiny["partition"]
    y = pairs["target"].to_numpy()
    opts = EvaluationOptions(ood_null_draws=60, seed=2)
    res = evaluate_ood_estimated(s, e, part, task="cqtr", pairs=pairs, targets=y, all_lora_drop=0.25, options=opts)
    full = task_metric("cqtr", s, targets=y)
    for row in res.table.itertuples():
        members = part.coalitions[row.coalition]
        est = s - e[:, members].sum(axis=1)
        assert_close(row.drop, full - task_metric("cqtr", est, targets=y), rtol=1e-9, atol=1e-12)
        assert_close(row.drop_rel, row.drop / 0.25, rtol=1e-12, atol=0)

    def one(members: np.ndarray) -> float:
        return full - task_metric("cqtr", s - e[:, members].sum(axis=1), targets=y)

    ref = size_matched_null(pd.Series(res.table["drop"].to_numpy(), index=res.table["coalition"]),
                            pd.Series(res.table["size"].to_numpy(), index=res.table["coalition"]), one,
                            n_players=part.n_players, draws_per_size=60, seed=2, metric="drop")
    for col in ("null_mean", "null_sd", "p_value", "q_value"):
        assert_close(res.table[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=1e-12)
    assert_close(res.drop_rel, res.drop / 0.25, rtol=1e-12, atol=0)
    assert_close(res.excess, float((res.table["drop"] - res.table["null_mean"]).mean()), rtol=1e-12, atol=1e-15)
    with pytest.raises(InputError, match="attributions"):
        evaluate_ood_estimated(s, e[:, :3], part, task="cqtr", pairs=pairs, targets=y, all_lora_drop=1.0)


def test_attribution_verify_and_controls_stages_against_direct_ablations(tiny, tmp_path) -> None:
    """all_lora.json, verify.csv and controls.json equal drops computed by ablating through the model."""
    import torch

    from hedonic_neurons.io import load_arrays, read_json
    from hedonic_neurons.metrics.ood import task_metric
    from hedonic_neurons.models import ablate, score
    from hedonic_neurons.pipeline.stages.controls import (
        stage_attribution,
        stage_controls,
        stage_verify,
    )

    model, batches = tiny["model"], tiny["batches"]
    s, e, pairs = _ood_setup(tiny)
    pairs_path = tmp_path / "ood.parquet"
    pairs.to_parquet(pairs_path)
    y = pairs["target"].to_numpy()

    def direct(neurons: dict[int, np.ndarray]) -> float:
        with torch.no_grad(), ablate(model, neurons):
            sc = np.concatenate([score(model, b).double().numpy() for b in batches])
        return task_metric("cqtr", sc, targets=y)

    full = task_metric("cqtr", s, targets=y)
    n = e.shape[1]
    (tmp_path / "attr").mkdir()
    stage_attribution(model, batches, LAYER, pairs_path, None, "cqtr", tmp_path / "attr")
    al = read_json(tmp_path / "attr" / "all_lora.json")
    assert_close(al["drop"], full - direct({LAYER: np.arange(n)}), rtol=1e-6, atol=1e-9)
    arrays, _ = load_arrays(tmp_path / "attr" / "attributions.safetensors")
    assert_close(arrays["attributions"], e, rtol=1e-6, atol=1e-9)
    # the per-partition relative drop uses exactly that all-LoRA drop as its scale
    part = tiny["partition"]
    res = evaluate_ood_estimated(arrays["scores"], arrays["attributions"], part, task="cqtr", pairs=pairs,
                                 targets=y, all_lora_drop=al["drop"], options=EvaluationOptions(ood_null_draws=5))
    assert_close(res.drop_rel, res.drop / (full - direct({LAYER: np.arange(n)})), rtol=1e-5, atol=1e-9)

    part_path = tmp_path / "part.json"
    part.to_json(part_path)
    (tmp_path / "verify").mkdir()
    stage_verify(model, batches, LAYER, tmp_path / "attr" / "attributions.safetensors", [part_path], pairs_path,
                 None, "cqtr", 3, 0, 2, tmp_path / "verify")
    ver = pd.read_csv(tmp_path / "verify" / "verify.csv")
    assert len(ver) == 3
    for row in ver.itertuples():
        members = np.array([int(x) for x in str(row.coalition).split()])
        assert_close(row.drop_exact, full - direct({LAYER: members}), rtol=1e-6, atol=1e-9)
        assert_close(row.drop_estimated, full - task_metric("cqtr", s - e[:, members].sum(axis=1), targets=y),
                     rtol=1e-6, atol=1e-9)
    vj = read_json(tmp_path / "verify" / "verify.json")
    assert_close(vj["abs_error"], float(np.mean(np.abs(ver["drop_estimated"] - ver["drop_exact"]))),
                 rtol=1e-9, atol=1e-15)

    (tmp_path / "ctl").mkdir()
    stage_controls(model, batches, pairs_path, None, "cqtr", tmp_path / "ctl", before=lambda: model)
    ctl = read_json(tmp_path / "ctl" / "controls.json")
    assert ctl["lora_layers"] == [1, 2]
    assert_close(ctl["finetuned"], full, rtol=1e-9, atol=1e-12)
    assert_close(ctl["no_lora"], direct({1: np.arange(n), 2: np.arange(n)}), rtol=1e-9, atol=1e-12)
    assert_close(ctl["base"], full, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- ε̂ under the sampler's D
def test_blocking_rate_under_the_top_sampler_against_a_preference_loop() -> None:
    """One round of m candidates from D, the omega with the largest Φ(S) kept, blocking checked by
    every member's preference key (docs/method.md §4, §5.3)."""
    from hedonic_neurons.game import blocking_rate
    from hedonic_neurons.game._sampling import sample_coalitions
    from hedonic_neurons.game.preferences import coalition_value, preference_key

    rng = np.random.default_rng(3)
    phi = rng.normal(size=(12, 12))
    part = Partition.from_labels(rng.integers(0, 4, size=12))
    m, omega, k = 120, 40, 2
    got = blocking_rate(phi, part, k=k, n_samples=omega, size_range=(2, 5), seed=11, sampler="top", m=m,
                        omega=omega)
    cand = sample_coalitions(np.arange(12), m, (2, 5), np.random.default_rng(11))
    rows = [r[r >= 0] for r in cand]
    val = np.array([coalition_value(phi, r, k) for r in rows])
    order = np.lexsort((np.arange(m), -val))[:omega]
    own = {i: part.coalitions[c] for c in range(part.n_coalitions) for i in part.coalitions[c]}
    blocking = sum(all(preference_key(phi, int(i), r, k) > preference_key(phi, int(i), own[int(i)], k) for i in r)
                   for r in (rows[j] for j in order))
    assert got.n_samples == omega and got.n_blocking == blocking > 0
    uniform = blocking_rate(phi, part, k=k, n_samples=omega, size_range=(2, 5), seed=11)
    assert uniform.n_samples == omega
    with pytest.raises(InputError, match="omega"):
        blocking_rate(phi, part, k=k, n_samples=10, sampler="top", m=5, omega=10)


# ----------------------------------------------------------------------------- verdict
def test_verdict_table_against_scipy() -> None:
    """Size-matched rows: one-sample t-test of the excess; baseline rows: paired t-test over (seed, layer)."""
    from scipy import stats

    from hedonic_neurons.pipeline.verdict import SIZE_MATCHED, verdict_sentences, verdict_table

    rng = np.random.default_rng(0)
    rows = []
    units = [(s, layer) for s in (0, 1) for layer in (3, 4, 5)]
    for method, shift in (("hedonic_pas", 1.0), ("random", 0.0), ("kmeans", 0.9), ("hedonic_null", 0.0)):
        for s, layer in units:
            for metric in ("pair_pooled_heldout", "pair_pooled_excess", "frac_sig_pair", "ood_drop",
                           "ood_drop_excess", "frac_sig_ood", "align_r2"):
                rows.append({"model": "m", "task": "cqtr", "method": method, "seed": s, "layer": layer,
                             "metric": metric, "value": shift + rng.normal(scale=0.3)})
    res = pd.DataFrame(rows)
    table = verdict_table(res, ["hedonic_pas", "hedonic_null", "random", "kmeans"], alpha=0.05)
    assert set(table["method"]) == {"hedonic_pas"}
    assert set(table["against"]) == {SIZE_MATCHED, "random", "kmeans", "hedonic_null"}

    def vals(method: str, metric: str) -> np.ndarray:
        sub = res[(res["method"] == method) & (res["metric"] == metric)].sort_values(["seed", "layer"])
        return sub["value"].to_numpy()

    for r in table.to_dict("records"):
        if r["against"] == SIZE_MATCHED:
            x = vals("hedonic_pas", {"pair_pooled_heldout": "pair_pooled_excess", "ood_drop": "ood_drop_excess"}[
                r["metric"]])
            want_p = stats.ttest_1samp(x, 0.0).pvalue
            want_d = x.mean()
        else:
            a, b = vals("hedonic_pas", r["metric"]), vals(r["against"], r["metric"])
            want_p = stats.ttest_rel(a, b).pvalue
            want_d = (a - b).mean()
        assert r["n"] == 6
        assert_close(r["diff"], want_d, rtol=1e-12, atol=1e-14)
        assert_close(r["p"], want_p, rtol=1e-9, atol=1e-14)
        word = ("better" if want_d > 0 else "worse") if want_p < 0.05 else "not distinguishable"
        assert r["verdict"] == word
    text = " ".join(verdict_sentences(table))
    assert "**hedonic_pas**" in text and "vs kmeans" in text


def test_alignment_null_against_one_coalition_at_a_time(tiny) -> None:
    from hedonic_neurons.evaluation import evaluate_alignment_null
    from hedonic_neurons.metrics.alignment import coalition_activations, feature_alignment
    from hedonic_neurons.metrics.nulls import size_matched_null

    rec, part = tiny["record"], tiny["partition"]
    feats = pd.DataFrame(np.random.default_rng(2).normal(size=(rec.n_inputs, 4)), columns=list("abcd"))
    opts = EvaluationOptions(ood_null_draws=40, seed=3)
    table, excess, frac = evaluate_alignment_null(rec, part, feats, opts)
    a = np.asarray(rec.a, dtype=np.float64)
    full = feature_alignment(coalition_activations(a, part), feats).set_index("coalition")["r2"]

    def one(members: np.ndarray) -> float:
        x = a[:, members].mean(axis=1)
        return float(max(np.corrcoef(x, feats[c])[0, 1] ** 2 for c in feats.columns))

    ids = table["coalition"].to_numpy()
    for c in ids:  # observed R² by hand
        assert_close(full[c], one(part.coalitions[c]), rtol=1e-9, atol=1e-12)
    ref = size_matched_null(pd.Series(full[ids].to_numpy(), index=ids), pd.Series(table["size"].to_numpy(), index=ids),
                            one, n_players=part.n_players, draws_per_size=40, seed=3, metric="r2")
    for col in ("r2", "null_mean", "null_sd", "p_value", "q_value"):
        assert_close(table[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=1e-12)
    assert_close(excess, float((ref["r2"] - ref["null_mean"]).mean()), rtol=1e-9, atol=1e-12)
    assert frac == float(ref["significant"].mean())
