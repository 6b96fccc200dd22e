"""The MNIST study's evidence protocol (docs/method.md §8.5): held-out split, size-matched nulls,
pooled Pair, and the verdict section against the tables it summarises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hedonic_neurons.errors import ConfigError, InputError
from hedonic_neurons.metrics.nulls import pair_null_test
from hedonic_neurons.mnist.coalitions import heldout_pair_tests, partition_evidence
from hedonic_neurons.mnist.report import SIZE_MATCHED, verdict, verdict_lines
from hedonic_neurons.mnist.study import MnistStudyConfig, heldout_split
from hedonic_neurons.partition import Partition


# ----------------------------------------------------------------------------- held-out split
def test_heldout_split_disjoint_complete_seeded_and_stratified() -> None:
    y = np.repeat(np.arange(10), [30, 31, 32, 33, 34, 35, 36, 37, 38, 39])
    np.random.default_rng(0).shuffle(y)
    disc, held = heldout_split(y, fraction=0.5, seed=3)
    assert np.intersect1d(disc, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([disc, held])), np.arange(y.size))
    assert np.all(np.diff(disc) > 0) and np.all(np.diff(held) > 0)
    assert abs(held.size - y.size / 2) <= 1
    # stratified: each digit split in half (within one image)
    assert np.all(np.abs(np.bincount(y[held], minlength=10) - np.bincount(y, minlength=10) / 2) <= 1)
    again = heldout_split(y, fraction=0.5, seed=3)
    assert np.array_equal(again[0], disc) and np.array_equal(again[1], held)
    other = heldout_split(y, fraction=0.5, seed=4)
    assert not np.array_equal(other[1], held)
    _d30, h30 = heldout_split(y, fraction=0.3, seed=3)
    assert abs(h30.size - 0.3 * y.size) <= 1


def test_heldout_split_errors() -> None:
    with pytest.raises(InputError, match="fraction"):
        heldout_split(np.arange(10) % 2, fraction=1.0)
    with pytest.raises(InputError, match="labels"):
        heldout_split(np.zeros((4, 2), dtype=int))
    with pytest.raises(ConfigError, match="heldout_fraction"):
        MnistStudyConfig(heldout_fraction=0.0)
    with pytest.raises(ConfigError, match="null_draws"):
        MnistStudyConfig(null_draws=0)


# ----------------------------------------------------------------------------- nulls on a coalition table
def _planted(n: int = 24, seed: int = 0) -> tuple[np.ndarray, Partition]:
    rng = np.random.default_rng(seed)
    phi = rng.normal(0.0, 1.0, (n, n))
    phi = (phi + phi.T) / 2
    block = np.arange(6)
    phi[np.ix_(block, block)] += 4.0  # a planted synergistic group
    labels = np.concatenate([np.zeros(6, int), np.repeat(np.arange(1, 7), 3)[: n - 7], [99]])
    return phi, Partition.from_labels(labels)


def _loop_pooled(phi: np.ndarray, part: Partition) -> float:
    total, pairs = 0.0, 0
    for c in part.coalitions:
        for i in c:
            for j in c:
                if i != j:
                    total += phi[i, j]
                    pairs += 1
    return total / pairs


def test_heldout_pair_tests_and_partition_evidence_against_loops() -> None:
    phi, part = _planted()
    phi_in = phi + 0.5
    table = pd.DataFrame({"coalition": range(part.n_coalitions), "size": part.sizes,
                          "pair": [np.nan if len(c) < 2 else float(phi[np.ix_(c, c)][~np.eye(len(c), dtype=bool)].mean())
                                   for c in part.coalitions],
                          "ratio": 1.0})
    out = heldout_pair_tests(table, phi, part, n_draws=300, alpha=0.05, seed=7)
    assert list(out["coalition"]) == list(table["coalition"])  # same rows, same order
    direct = pair_null_test(phi, part, n_draws=300, alpha=0.05, seed=7).set_index("coalition")
    multi = out[out["size"] >= 2].set_index("coalition")
    np.testing.assert_allclose(multi["pair_p"], direct.loc[multi.index, "p_value"])
    np.testing.assert_allclose(multi["pair"], direct.loc[multi.index, "pair"])
    single = out[out["size"] < 2]
    assert len(single) == 1 and not single["pair_significant"].any() and single["pair_p"].isna().all()
    assert bool(multi.loc[0, "pair_significant"])  # the planted block is found
    ev = partition_evidence(out, phi, part, psi_insample=phi_in, n_draws=300, seed=7)
    assert ev["pair_pooled_heldout"] == pytest.approx(_loop_pooled(phi, part))
    assert ev["pair_pooled"] == pytest.approx(_loop_pooled(phi_in, part))
    assert ev["pair_heldout"] == pytest.approx(float(multi["pair"].mean()))
    assert ev["frac_sig_pair"] == pytest.approx(float(multi["pair_significant"].mean()))
    assert ev["pair_pooled_excess"] == pytest.approx(ev["pair_pooled_heldout"] - ev["pair_pooled_null"])
    assert ev["n_tested"] == len(multi) and ev["n_coalitions"] == part.n_coalitions


# ----------------------------------------------------------------------------- verdict
def _partitions_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for seed in (0, 1):
        for layer in (2, 3, 4):
            null = rng.normal(0.0, 0.01)
            for method, shift in (("hedonic_pas", 1.0), ("hedonic_oca", 0.0), ("random", 0.0), ("kmeans", 0.5)):
                val = null + shift + rng.normal(0.0, 0.05)
                rows.append({"seed": seed, "setting": "trained", "layer": layer, "method": method,
                             "pair_pooled_heldout": val, "pair_pooled_null": null, "pair_heldout": val + 0.1,
                             "pair_heldout_null": null, "frac_sig_pair": 0.5 if shift else 0.0})
    rows.append({"seed": 0, "setting": "shuffled", "layer": 3, "method": "hedonic_pas", "pair_pooled_heldout": 99.0,
                 "pair_pooled_null": 0.0, "pair_heldout": 99.0, "pair_heldout_null": 0.0, "frac_sig_pair": 1.0})
    return pd.DataFrame(rows)


def test_verdict_matches_hand_computed_paired_tests() -> None:
    parts = _partitions_frame()
    v = verdict(parts)
    assert set(v["method"]) == {"hedonic_pas", "hedonic_oca"}
    assert set(v["baseline"]) == {SIZE_MATCHED, "random", "kmeans"}
    trained = parts[parts["setting"] == "trained"].set_index(["seed", "layer", "method"])
    for (method, metric, other), row in v.set_index(["method", "metric", "baseline"]).iterrows():
        a = trained.xs(method, level="method")[metric]
        b = (trained.xs(method, level="method")[metric.replace("heldout", "null") if metric == "pair_pooled_heldout"
                                                 else "pair_heldout_null"]
             if other == SIZE_MATCHED else trained.xs(other, level="method")[metric])
        d = (a - b.loc[a.index]).to_numpy()
        half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
        assert row["n"] == 6
        assert row["diff"] == pytest.approx(d.mean())
        assert row["diff_ci_low"] == pytest.approx(d.mean() - half)
        assert row["p"] == pytest.approx(stats.ttest_rel(a, b.loc[a.index]).pvalue)
        expected = "better" if d.mean() - half > 0 else "worse" if d.mean() + half < 0 else "no detectable difference"
        assert row["answer"] == expected
    pas = v[(v["method"] == "hedonic_pas") & (v["metric"] == "pair_pooled_heldout")].set_index("baseline")
    assert (pas["answer"] == "better").all()  # planted: +1 over null and random, +0.5 over k-means
    oca = v[(v["method"] == "hedonic_oca") & (v["metric"] == "pair_pooled_heldout")].set_index("baseline")
    assert oca.loc["kmeans", "answer"] == "worse"
    lines = verdict_lines(v)
    assert len(lines) == 2 and lines[0].startswith("- **Hedonic (PAS)**") and "better than size-matched random" in lines[0]


def test_verdict_single_unit_is_undetermined_and_missing_columns_fail() -> None:
    one = _partitions_frame()
    one = one[(one["seed"] == 0) & (one["layer"] == 2)]
    v = verdict(one)
    assert (v["answer"] == "undetermined (n < 2)").all()
    with pytest.raises(InputError, match="pair_pooled_null"):
        verdict(one.drop(columns=["pair_pooled_null"]))


# ----------------------------------------------------------------------------- end to end
ARGS = ["mnist", "--quick", "--n-train", "400", "--n-test", "160", "--layers", "2", "3", "--epochs", "1",
        "--d-model", "24", "--d-hidden", "24", "--blocks", "3", "--top-k", "16", "--m", "2000", "--omega", "200",
        "--no-progress", "--no-controls"]


@pytest.mark.slow
@pytest.mark.usefixtures("torch_one_thread")
def test_study_reports_the_verdict_first_consistent_with_its_tables(tmp_path: Path) -> None:
    from hedonic_neurons.cli.main import main
    from hedonic_neurons.records import LayerRecord

    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    layer_dir = out / "seed0" / "trained" / "h2"
    disc = LayerRecord.load(layer_dir / "discovery" / "record.safetensors")
    held = LayerRecord.load(layer_dir / "heldout" / "record.safetensors")
    assert disc.a.shape[0] + held.a.shape[0] == 160 and abs(disc.a.shape[0] - held.a.shape[0]) <= 1
    coalitions = pd.read_csv(out / "coalitions.csv")
    parts = pd.read_csv(out / "partitions.csv")
    assert {"pair_insample", "ratio_insample", "pair_p", "pair_q", "pair_significant"} <= set(coalitions.columns)
    # the partition table summarises the coalition table
    for (seed, layer, method), grp in coalitions.groupby(["seed", "layer", "method"]):
        prow = parts[(parts["seed"] == seed) & (parts["layer"] == layer) & (parts["method"] == method)].iloc[0]
        multi = grp[grp["size"] >= 2]
        assert prow["n_tested"] == len(multi)
        assert prow["frac_sig_pair"] == pytest.approx(multi["pair_significant"].mean(), nan_ok=True)
        assert prow["pair_heldout"] == pytest.approx(multi["pair"].mean(), nan_ok=True)
        w = multi["size"] * (multi["size"] - 1)
        # the pooled sums multiply the float32 ψ in float32 (metrics._sampling._within_sums): ψ's own precision
        assert prow["pair_pooled_heldout"] == pytest.approx((multi["pair"] * w).sum() / w.sum(), rel=1e-6,
                                                            nan_ok=True)
    # the verdict is first, and its numbers are those of the partition table
    md = (out / "report.md").read_text(encoding="utf-8")
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Verdict"
    v = pd.read_csv(out / "verdict.csv")
    assert set(v["method"]) >= {"hedonic_pas", "hedonic_oca", "hedonic_pas_topcover"}
    for _, row in v[v["metric"] == "pair_pooled_heldout"].iterrows():
        own = parts[parts["method"] == row["method"]]
        assert row["mean"] == pytest.approx(own["pair_pooled_heldout"].mean())
        other = (own["pair_pooled_null"] if row["baseline"] == SIZE_MATCHED
                 else parts[parts["method"] == row["baseline"]]["pair_pooled_heldout"])
        assert row["baseline_mean"] == pytest.approx(other.mean())
        assert row["n"] == 2
    for line in verdict_lines(v):
        assert line in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.index("Verdict") < html.index("Table 7")
