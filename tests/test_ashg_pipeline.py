"""The additively separable game (``nash_stable``) everywhere partition methods appear, and the
closure diagnostics of every report (docs/method.md §5.5–§5.6).

A tiny study (random 3-block BERT, a slice of the offline corpus) runs ``nash_stable`` beside
exact Top Covering; the tests check its partitions, the baselines matched to it, its stability
(Nash / individual, no blocking rate), tracking, and that the closure diagnostics in the
artifacts, in ``results.csv`` and in the report are the numbers the library functions give
when run directly.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
import torch

from hedonic_neurons import vocab
from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ConfigError
from hedonic_neurons.game import (
    closure_null_share,
    is_individually_stable,
    is_nash_stable,
    k_sweep,
    nash_stable_partition,
)
from hedonic_neurons.partition import Partition
from hedonic_neurons.pipeline import build_plan, from_dict, load_config, run_study
from hedonic_neurons.pipeline.plan import K_SWEEP
from hedonic_neurons.pipeline.stages.diagnostics import closure_options
from hedonic_neurons.synergy import SynergyMatrix
from tests.tiny_models import minilm_tokenizer

N_NEURONS = 48
NASH = ["hedonic_pas_nash", "hedonic_oca_nash"]
TOPCOVER = ["hedonic_pas_topcover", "hedonic_oca_topcover"]


# ---------------------------------------------------------------------- fast: vocabulary, config, CLI
def test_nash_stable_is_registered_with_its_own_name_and_label() -> None:
    spec = vocab.PARTITION_METHODS["nash_stable"]
    assert spec.seeded and not spec.top_responsive
    assert vocab.method_label("pas_exact", "nash_stable") == "hedonic_pas_nash"
    assert vocab.parse_method_label("hedonic_oca_nash") == ("oca", "nash_stable")
    assert vocab.display_label("hedonic_pas_nash") == "Hedonic (PAS, Nash-stable ASHG)"
    assert vocab.display_label("kmeans~hedonic_pas_nash") == "K-means ~ Hedonic (PAS, Nash-stable ASHG)"
    assert "hedonic_pas_nash" in vocab.method_order()
    assert "nash_stable" not in vocab.RESERVED_PARTITION_METHODS
    assert vocab.check("metric", "null_largest_share") == "null_largest_share"


def test_spec_run_equals_the_function() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40))
    phi = a + a.T
    got = vocab.PARTITION_METHODS["nash_stable"].run(phi, k=3, emit="smallest", seed=4, max_sweeps=50,
                                                     order="random", m=10, omega=5)
    ref = nash_stable_partition(phi, seed=4, max_sweeps=50, order="random")
    assert np.array_equal(got.labels, ref.labels)


def test_config_accepts_nash_stable_and_ashg_options_and_lists_valid_methods() -> None:
    cfg = load_config("tiny", **{"discovery.methods": ["nash_stable"], "discovery.ashg.order": "index",
                                 "discovery.ashg.max_sweeps": 7})
    assert cfg.discovery.methods == ("nash_stable",) and cfg.discovery.ashg.max_sweeps == 7
    with pytest.raises(ConfigError) as err:
        load_config("tiny", **{"discovery.methods": ["nash"]})
    for name in vocab.names("method"):
        assert repr(name) in str(err.value)
    assert "Did you mean 'nash_stable'" in str(err.value)
    with pytest.raises(ConfigError, match=r"discovery\.ashg\.max_sweeps"):
        load_config("tiny", **{"discovery.ashg.max_sweeps": 0})
    with pytest.raises(ConfigError, match=r"discovery\.ashg\.order"):
        load_config("tiny", **{"discovery.ashg.order": "sorted"})


@pytest.mark.parametrize("name", ["tiny", "llama3.1-8b_cqtr", "mistral-7b_relevance", "pythia-6.9b_meantfl"])
def test_packaged_configs_run_nash_stable(name: str) -> None:
    assert "nash_stable" in load_config(name).discovery.methods


def test_cli_partition_reads_the_vocabulary(tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 20))
    phi = a + a.T
    np.fill_diagonal(phi, 0.0)
    path = tmp_path / "phi.npy"
    np.save(path, phi)
    out = tmp_path / "nash.json"
    assert main(["partition", str(path), "--method", "nash_stable", "--seed", "2", "--max-sweeps", "30",
                 "--order", "index", "--out", str(out)]) == 0
    part = Partition.from_json(out)
    ref = nash_stable_partition(phi, seed=2, max_sweeps=30, order="index")
    assert np.array_equal(part.labels, ref.labels)
    assert part.meta["stability"] == {"nash_stable": True, "individually_stable": True}
    assert "blocking_rate" not in part.meta  # a top-k notion
    assert "Nash stable: True" in capsys.readouterr().out
    # the short name still works and is the same method
    out2 = tmp_path / "nash2.json"
    assert main(["partition", str(path), "--method", "nash", "--seed", "2", "--max-sweeps", "30",
                 "--order", "index", "--out", str(out2)]) == 0
    assert np.array_equal(Partition.from_json(out2).labels, ref.labels)
    # unknown names error listing every valid one
    with pytest.raises(SystemExit) as exc:
        main(["partition", str(path), "--method", "nash_stabel"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for name in vocab.names("method"):
        assert repr(name) in err
    assert main(["partition", str(path), "--method", "nash_stable", "--max-sweeps", "0"]) == 2
    assert "--max-sweeps: expected an integer >= 1, got 0." in capsys.readouterr().err


def test_closure_options_follow_the_method_spec() -> None:
    opts = {"k": 3, "emit": "smallest", "m": 10, "omega": 5, "size_range": [2, 4], "sampler": "uniform",
            "max_sweeps": 9, "order": "index", "seed": 1}
    assert closure_options("nash_stable", opts) == (None, {"max_sweeps": 9, "order": "index"})
    assert closure_options("top_cover", opts) == (3, {"emit": "smallest"})
    k, kw = closure_options("pac_top_cover", opts)
    assert k == 3 and kw["size_range"] == (2, 4) and "seed" not in kw


def test_plan_has_no_blocking_rate_for_nash_and_closure_units_for_every_hedonic_partition(tmp_path) -> None:
    cfg = load_config("tiny", **{"discovery.seeds": [0, 1]})
    plan = build_plan(cfg, tmp_path)
    hedonic = [k for k in plan.partitions if not k.is_baseline]
    assert set(plan.closure) == set(hedonic)
    assert {k.method for k in plan.stability} == {k.method for k in hedonic if not k.method.endswith("_nash")}
    assert set(plan.k_sweep) == {(layer, v) for layer in cfg.discovery.layers for v in cfg.discovery.valuations}
    # the ASHG options key the nash partitions (and only them)
    other = build_plan(cfg.replace(**{"discovery.ashg.max_sweeps": 5}), tmp_path)
    for key, unit in plan.hedonic.items():
        assert (other.hedonic[key].key != unit.key) == key.method.endswith("_nash")


# ---------------------------------------------------------------------- slow: a tiny study
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random 3-block BERT (d = 32, d_ff = 48) saved with the MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tinybert_ashg")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, intermediate_size=N_NEURONS, num_hidden_layers=3,
                     num_attention_heads=4, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    minilm_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def study(tiny_dir, tmp_path_factory, torch_one_thread):
    out = tmp_path_factory.mktemp("ashg_run")
    cfg = from_dict({
        "name": "ashg-test", "task": "cqtr",
        "model": {"base": str(tiny_dir), "device": "cpu", "max_length": 40, "batch_size": 24},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "layers": [1, 2]},
        "finetune": {"lr": 5e-3, "batch_size": 16, "micro_batch_size": 16, "epochs": 1, "max_steps": 1,
                     "checkpoint_every": 0},
        "data": {"source": "offline", "n_train": 32, "n_val": 16, "n_capture": 32, "n_ood": 16},
        "discovery": {"layers": [1, 2], "valuations": ["pas_exact", "oca"],
                      "methods": ["nash_stable", "top_cover"], "seeds": [0, 1], "k": 2,
                      "ashg": {"max_sweeps": 100, "order": "random"}},
        "evaluation": {"metrics": ["stability", "synergy"], "stability_samples": 200, "null_draws": 100},
        "tracking": {"sankey": False},
        "output_dir": str(out), "n_jobs": 1,
    })
    res = run_study(cfg, progress=False)
    return cfg, res


def _phi(run, layer: int, valuation: str) -> SynergyMatrix:
    return SynergyMatrix.load(run / "artifacts" / "phi" / f"layer{layer}.{valuation}.safetensors")


@pytest.mark.slow
def test_nash_partitions_are_seeded_converged_and_nash_stable(study) -> None:
    _, res = study
    keys = [k for k in res.partitions if k.method in NASH]
    assert len(keys) == 2 * 2 * 2  # layers × valuations × seeds
    for key in keys:
        part = res.partitions[key]
        assert part.meta["method"] == "nash_stable" and part.meta["label"] == key.method
        assert part.meta["seed"] == key.seed and part.meta["converged"]
        phi = _phi(res.run_dir, key.layer, part.meta["valuation"])
        ref = nash_stable_partition(phi, seed=key.seed, max_sweeps=100, order="random")
        assert np.array_equal(part.labels, ref.labels)  # the stage is the function, seeded
        assert is_nash_stable(phi, part)
    # no blocking rate for the ASHG; exact Top Covering keeps its ε̂
    assert set(res.stability["method"]) == set(TOPCOVER)
    eps = res.results[res.results["metric"] == "epsilon_hat"]
    assert not eps["method"].isin(NASH).any()


@pytest.mark.slow
def test_baselines_are_matched_to_the_nash_partition_and_everything_tracks(study) -> None:
    _, res = study
    assert res.labels[0] == "hedonic_pas_nash"  # the first method and valuation: the baselines' reference
    for key, part in res.partitions.items():
        if not key.is_baseline:
            continue
        ref = res.partitions[next(k for k in res.partitions
                                  if k.method == "hedonic_pas_nash" and k.layer == key.layer and k.seed == key.seed)]
        assert part.meta["matched_to"] == "hedonic_pas_nash"
        assert part.n_coalitions == ref.n_coalitions
        if key.method == "random":
            assert np.array_equal(np.sort(part.sizes), np.sort(ref.sizes))
    assert set(NASH) <= set(res.transitions["method"])
    table = pd.read_csv(res.run_dir / "artifacts" / "tables" / "table3_all_methods.csv")
    assert set(NASH) <= set(table["method"])


@pytest.mark.slow
def test_closure_artifacts_equal_the_library_run_directly(study) -> None:
    cfg, res = study
    run = res.run_dir
    closure = pd.read_csv(run / "artifacts" / "closure.csv")
    assert len(closure) == len([k for k in res.partitions if not k.is_baseline]) == 16
    # the artifact is the StudyResults frame (None of a field that does not apply reads back as NaN)
    pd.testing.assert_frame_equal(closure, pd.read_csv(io.StringIO(res.closure.to_csv(index=False))))
    common = {"k": cfg.discovery.k, "emit": cfg.discovery.emit, "max_sweeps": 100, "order": "random"}
    for r in closure.to_dict("records"):
        v, m = vocab.parse_method_label(r["method"])
        phi = _phi(run, r["layer"], v)
        k, kw = closure_options(m, common)
        assert r["null_largest_share"] == closure_null_share(phi, m, k, seed=int(r["seed"]), **kw)
        key = next(key for key in res.partitions if (key.layer, key.method, key.seed) == (r["layer"], r["method"],
                                                                                          r["seed"]))
        part = res.partitions[key]
        assert r["largest_share"] == part.summary().largest_share
        if m == "nash_stable":
            assert bool(r["nash_stable"]) == is_nash_stable(phi, part)
            assert bool(r["individually_stable"]) == is_individually_stable(phi, part)
            assert r["sweeps"] == part.meta["sweeps"] and pd.isna(r["k"])
        else:
            assert r["k"] == cfg.discovery.k and pd.isna(r["nash_stable"])
    # results.csv: largest_share (evaluation) and null_largest_share (diagnostics), one row per partition
    results = pd.read_csv(run / "artifacts" / "results.csv")
    for metric, col in (("largest_share", "largest_share"), ("null_largest_share", "null_largest_share")):
        rows = results[(results["metric"] == metric) & ~results["method"].isin(vocab.BASELINES)]
        merged = rows.merge(closure, on=["layer", "method", "seed"], validate="one_to_one")
        assert len(merged) == len(closure)
        np.testing.assert_allclose(merged["value"], merged[col], rtol=0, atol=0)


@pytest.mark.slow
def test_k_sweep_artifact_equals_k_sweep_run_directly(study) -> None:
    cfg, res = study
    run = res.run_dir
    sweep = pd.read_csv(run / "artifacts" / "k_sweep.csv")
    assert len(sweep) == len(cfg.discovery.layers) * len(cfg.discovery.valuations) * len(K_SWEEP)
    plan = build_plan(cfg, run)
    for (layer, v), df in sweep.groupby(["layer", "valuation"]):
        _, psi_file, kind = plan.psi_source(layer)  # held-out ψ when the study has a split, else in-sample
        assert kind in ("held-out", "in-sample") and set(df["psi"]) == {kind}
        ref = k_sweep(_phi(run, layer, v), list(K_SWEEP), heldout_psi=SynergyMatrix.load(psi_file))
        got = df.drop(columns=["layer", "valuation", "psi"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref[got.columns], check_dtype=False, rtol=1e-12)


def _md_table_after(text: str, heading: str) -> list[list[str]]:
    """Rows (cells) of the first Markdown table after ``heading``."""
    part = text.split(heading, 1)[1]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    rows, started = [], False
    for ln in part.splitlines():
        if ln.startswith("|"):
            started = True
            rows.append([c.strip() for c in ln.strip("|").split(" | ")])
        elif started:
            break
    assert lines, heading
    return rows[2:]  # header and rule


@pytest.mark.slow
def test_report_sections_show_the_artifact_numbers(study) -> None:
    _, res = study
    text = (res.run_dir / "report.md").read_text()
    html = (res.run_dir / "report.html").read_text()
    for heading in ("Closure diagnostics", "Stability of the Nash-stable ASHG partitions", "k-sweep"):
        assert heading in text and heading in html
    closure = pd.read_csv(res.run_dir / "artifacts" / "closure.csv")
    rows = _md_table_after(text, "## Closure diagnostics")
    shown = {(int(r[0]), r[1], int(r[2])): r for r in rows}
    assert len(shown) == len(closure)
    for r in closure.to_dict("records"):
        cells = shown[(r["layer"], vocab.display_label(r["method"]), r["seed"])]
        assert cells[4] == f"{r['largest_share']:.1%}" and cells[5] == f"{r['null_largest_share']:.1%}"
        assert cells[3] == ("—" if pd.isna(r["k"]) else str(int(r["k"])))
    nash = _md_table_after(text, "## Stability of the Nash-stable ASHG partitions")
    assert len(nash) == 8 and all(row[6] == "yes" and row[3] == "yes" for row in nash)
    sweep = pd.read_csv(res.run_dir / "artifacts" / "k_sweep.csv")
    for (layer, v), df in sweep.groupby(["layer", "valuation"]):
        head = f"**Layer {layer}, {vocab.VALUATIONS[v].label}** (pooled Pair on {df['psi'].iloc[0]} ψ)"
        table = {row[0]: row[1:] for row in _md_table_after(text, head)}
        df = df.sort_values("k")
        assert table["largest share"] == [f"{x:.1%}" for x in df["largest_share"]]
        assert table["coalitions"] == [str(int(x)) for x in df["n_coalitions"]]
        assert table["singletons"] == [str(int(x)) for x in df["n_singletons"]]
        assert table["pooled Pair"] == ["n/a" if pd.isna(x) else f"{x:.4g}" for x in df["pooled_pair"]]
    assert re.search(r"ψ: (held-out ψ: exact PAS on the held-out part|in-sample ψ: exact PAS on the capture set)", text)


def test_closure_null_share_of_nash_stable_is_the_dynamics_on_the_null() -> None:
    from hedonic_neurons.game import null_phi_like

    rng = np.random.default_rng(5)
    a = rng.normal(size=(60, 60))
    phi = a + a.T
    got = closure_null_share(phi, "nash_stable", seed=3, max_sweeps=50)
    ref = nash_stable_partition(null_phi_like(phi, 3), seed=3, max_sweeps=50).summary().largest_share
    assert got == ref and closure_null_share(phi, "nash_stable", 99, seed=3, max_sweeps=50) == got  # k ignored
    # a method registered later is diagnosed through the vocabulary
    spec = vocab.PartitionMethodSpec("toy_closure", "toy", "_toyc", "hedonic_neurons.game:top_cover", options=("k",))
    vocab.register_partition_method(spec)
    try:
        assert closure_null_share(phi, "toy_closure", 2, seed=1) == closure_null_share(phi, "top_cover", 2, seed=1)
    finally:
        vocab.PARTITION_METHODS.pop("toy_closure")


def test_mnist_study_dispatches_nash_stable(tmp_path) -> None:
    from hedonic_neurons.mnist.study import (
        HEDONIC_METHODS,
        METHOD_LABELS,
        MnistStudyConfig,
        _partitions,
    )

    assert HEDONIC_METHODS["hedonic_pas_nash"] == ("nash_stable", "pas_exact")
    assert HEDONIC_METHODS["hedonic_oca_nash"] == ("nash_stable", "oca")
    assert METHOD_LABELS["hedonic_pas_nash"] == "Hedonic (PAS, Nash-stable ASHG)"
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 30, 30))
    phis = {"pas_exact": a + a.T, "oca": b + b.T}
    cfg = MnistStudyConfig.quick(m=500, omega=50)
    parts = _partitions(tmp_path, phis, rng.normal(size=(30, 40)), cfg, 3,
                        ["hedonic_pas", "hedonic_pas_nash", "hedonic_oca_nash"], "key")
    for label, (_, val) in (("hedonic_pas_nash", HEDONIC_METHODS["hedonic_pas_nash"]),
                            ("hedonic_oca_nash", HEDONIC_METHODS["hedonic_oca_nash"])):
        ref = nash_stable_partition(phis[val], seed=3, max_sweeps=200, order="random")
        assert np.array_equal(parts[label].labels, ref.labels)
        assert parts[label].meta["method"] == "nash_stable" and parts[label].meta["mnist_method"] == label
