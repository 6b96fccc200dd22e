"""End to end: ``hedonic run`` on a tiny random BERT and a slice of the offline corpus.

Checks every artifact exists, parses and is consistent; the stage cache (a second run
does no work; changing one parameter redoes only the stages downstream of it).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hedonic_neurons.cli.main import main
from hedonic_neurons.partition import Partition
from hedonic_neurons.pipeline import build_plan, describe_plan, from_dict, load_config, run_study
from hedonic_neurons.pipeline.cache import MARKER, StageCache
from hedonic_neurons.records import LayerRecord
from hedonic_neurons.synergy import SynergyMatrix
from tests.tiny_models import minilm_tokenizer

N_NEURONS = 64
LABELS = ["hedonic_pas", "hedonic_pas_topcover", "hedonic_oca", "hedonic_oca_topcover", "random", "kmeans",
          "hierarchical"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random 3-block BERT (d = 32, d_ff = 64) saved with the MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tinybert")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, intermediate_size=N_NEURONS, num_hidden_layers=3,
                     num_attention_heads=4, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    minilm_tokenizer().save_pretrained(d)
    return d


def tiny_config(base, out) -> dict:
    return {
        "name": "tiny-test", "task": "cqtr",
        "model": {"base": str(base), "device": "cpu", "max_length": 48, "batch_size": 24},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "layers": [1, 2]},
        "finetune": {"lr": 5e-3, "batch_size": 16, "micro_batch_size": 16, "epochs": 1, "max_steps": 2,
                     "checkpoint_every": 0},
        "data": {"source": "offline", "n_train": 64, "n_val": 16, "n_capture": 48, "n_ood": 24},
        "discovery": {"layers": [1, 2], "valuations": ["pas_exact", "oca"],
                      "methods": ["pac_top_cover", "top_cover"], "pac": {"m": 400, "omega": 100},
                      "seeds": [0, 1]},
        "evaluation": {"stability_samples": 300, "ood_max_coalitions": 2},
        "tracking": {"sankey": True},
        "output_dir": str(out), "n_jobs": 1,
    }


@pytest.fixture(scope="module")
def first_run(tiny_dir, tmp_path_factory):
    """``hedonic run study.yaml`` through the CLI; returns the config and the run directory."""
    out = tmp_path_factory.mktemp("run")
    cfg = from_dict(tiny_config(tiny_dir, out))
    path = out.parent / f"{out.name}-study.yaml"
    cfg.to_yaml(path)
    assert main(["run", str(path), "--quiet"]) == 0
    return cfg, out


@pytest.mark.slow
def test_artifacts_exist_parse_and_are_consistent(first_run) -> None:
    cfg, run = first_run
    # config and provenance
    assert from_dict(yaml.safe_load((run / "config.yaml").read_text())) == cfg
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config_hash"] == cfg.hash() and prov["seeds"] == [0, 1] and prov["version"]
    assert {"data", "model", "capture", "valuations", "partitions", "evaluation", "tracking"} <= set(prov["timings_s"])
    # records and φ
    for layer in (1, 2):
        for split in ("capture", "ood"):
            rec = LayerRecord.load(run / "artifacts" / "records" / split / f"layer{layer}.safetensors")
            assert rec.n_players == N_NEURONS and rec.labels is not None and np.isfinite(rec.a).all()
        for v in ("pas_exact", "oca"):
            phi = SynergyMatrix.load(run / "artifacts" / "phi" / f"layer{layer}.{v}.safetensors")
            assert phi.n == N_NEURONS and np.isfinite(phi.values).all()
    # every partition covers every neuron exactly once
    for layer in (1, 2):
        for seed in (0, 1):
            for label in LABELS:
                part = Partition.from_json(run / "artifacts" / "partitions" / f"layer{layer}" / f"{label}.seed{seed}.json")
                assert part.n_players == N_NEURONS
                assert np.array_equal(np.sort(np.concatenate(part.coalitions)), np.arange(N_NEURONS))
            hed = Partition.from_json(run / "artifacts" / "partitions" / f"layer{layer}" / f"hedonic_pas.seed{seed}.json")
            km = Partition.from_json(run / "artifacts" / "partitions" / f"layer{layer}" / f"kmeans.seed{seed}.json")
            rnd = Partition.from_json(run / "artifacts" / "partitions" / f"layer{layer}" / f"random.seed{seed}.json")
            assert km.n_coalitions == hed.n_coalitions  # baselines matched to the first hedonic partition
            assert sorted(rnd.sizes.tolist()) == sorted(hed.sizes.tolist())
    # long results: one row per (method, seed, layer, metric), finite numbers
    results = pd.read_parquet(run / "artifacts" / "results.parquet")
    assert list(results.columns) == ["model", "task", "method", "seed", "layer", "metric", "value"]
    controls = {"all_lora", "finetuned", "no_lora", "base"}  # docs/method.md §8.5: bound and control models
    assert set(results["method"]) == set(LABELS) | controls
    results_all, results = results, results[~results["method"].isin(controls)]
    for metric in ("pair", "ratio", "align_r2", "predictivity_r2", "ood_drop"):
        sub = results[results["metric"] == metric]
        assert sorted(set(sub["method"])) == sorted(LABELS), metric
        assert len(sub) == len(LABELS) * 2 * 2, metric
    finite_metrics = ("align_r2", "predictivity_r2", "ood_drop", "epsilon_hat", "epsilon_upper", "n_coalitions")
    assert np.isfinite(results[results["metric"].isin(finite_metrics)]["value"]).all()
    eps = results[results["metric"] == "epsilon_hat"]
    assert len(eps) == 4 * 2 * 2 and ((eps["value"] >= 0) & (eps["value"] <= 1)).all()
    al = results[results["metric"] == "align_r2"]["value"]
    assert ((al >= 0) & (al <= 1)).all()
    pd.testing.assert_frame_equal(results_all, pd.read_csv(run / "artifacts" / "results.csv"), check_dtype=False)
    # tables: a row per method, the numeric ones finite
    for name in ("table1_numeric", "table2_numeric", "table6_numeric"):
        tab = pd.read_csv(run / "artifacts" / "tables" / f"{name}.csv")
        assert list(tab["method"]) == LABELS, name
        means = tab[[c for c in tab.columns if c.endswith("_mean") and "ratio" not in c and "pair" not in c]]
        assert np.isfinite(means.to_numpy()).all(), name
    for name in ("table1", "table2", "table6", "table3", "stability"):
        assert (run / "artifacts" / "tables" / f"{name}.csv").is_file()
        assert (run / "artifacts" / "tables" / f"{name}.parquet").is_file()
    stab = pd.read_csv(run / "artifacts" / "tables" / "stability.csv")
    assert len(stab) == 4 * 2 * 2  # one ε̂ per (layer, hedonic method, seed), fresh draws per seed
    assert np.isfinite(stab["ε̂"]).all() and (stab["ε upper (95%)"] >= stab["ε̂"]).all()
    # transitions: percentages of each (method, seed, layer pair) sum to 100
    tr = pd.read_parquet(run / "artifacts" / "transitions.parquet")
    assert set(tr["method"]) == set(LABELS)
    sums = tr.groupby(["method", "seed", "src_layer"])["percent"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 100.0, rtol=0, atol=1e-6)
    # report with embedded images and Sankey diagrams
    md = (run / "report.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Table 6", "blocking rate", "size distributions", "Sankey"):
        assert heading in md, heading
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table" in html
    assert (run / "figures" / "sizes.layer1.png").is_file()
    assert (run / "figures" / "sankey.hedonic_pas.seed0.html").is_file()
    assert (run / "figures" / "sankey.hedonic_pas.seed0.png").is_file()
    # fine-tuned adapter in PEFT format
    adapters = list((run / "cache" / "model").glob("*/adapter/adapter_config.json"))
    assert len(adapters) == 1


@pytest.mark.slow
def test_stage_cache_reuses_and_redoes_only_downstream(first_run) -> None:
    cfg, run = first_run
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["executed"] and not prov["reused"]
    again = run_study(cfg, progress=False, report=False)
    assert list(again.executed) == [], again.executed  # a second run does no work
    assert set(again.reused) == set(prov["executed"])
    pd.testing.assert_frame_equal(again.results.reset_index(drop=True),
                                  pd.read_parquet(run / "artifacts" / "results.parquet"))
    plan_text = describe_plan(build_plan(cfg))
    assert "0 unit(s) to run" in plan_text

    changed = cfg.replace(**{"discovery.pac.m": 300})
    third = run_study(changed, progress=False, report=False)
    stages = {u.split(":")[0] for u in third.executed}
    # verify: the OOD estimator's exact check samples the coalitions of every partition of the layer
    assert stages <= {"partition", "stability", "baselines", "evaluation", "ood", "verify", "diagnostics",
                      "tracking"}, stages
    assert not any(u.startswith(("data:", "model:", "capture:", "valuation:")) for u in third.executed)
    # exact Top Covering does not read the PAC parameters: reused
    assert not any("topcover" in u for u in third.executed), third.executed
    assert any(u.startswith("partition:") and "hedonic_pas/" in u for u in third.executed)


def test_crashed_unit_is_redone(tmp_path) -> None:
    cache = StageCache(tmp_path)
    unit = cache.unit("valuation", "layer0/oca", {"x": 1})
    out = cache.begin(unit)
    (out / "phi.safetensors").write_bytes(b"partial")
    assert not unit.done  # no marker: a crash leaves the unit undone
    ran = cache.run(unit, lambda d: (d / "phi.safetensors").write_bytes(b"ok"))
    assert ran and unit.done and (unit.path / MARKER).is_file()
    assert (unit.path / "phi.safetensors").read_bytes() == b"ok"
    assert not cache.run(unit, lambda d: pytest.fail("a finished unit must not run again"))
    assert cache.unit("valuation", "layer0/oca", {"x": 2}).key != unit.key


def test_dry_run_plan_lists_every_stage(tmp_path) -> None:
    cfg = load_config("demo", output_dir=str(tmp_path))
    text = describe_plan(build_plan(cfg))
    for stage in ("data", "model", "capture", "valuation", "partition", "stability", "baselines", "evaluation",
                  "ood", "tracking"):
        assert stage in text
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_plan_keys_every_partition_with_one_key_type(tmp_path) -> None:
    """PartitionKey names hedonic and baseline partitions alike; exact Top Covering is one unit for all seeds;
    with match_baselines: all, baselines are labelled by the partition they are matched to."""
    from hedonic_neurons import vocab
    from hedonic_neurons.pipeline import PartitionKey

    cfg = load_config("demo", output_dir=str(tmp_path), **{"discovery.seeds": [0, 1],
                                                             "discovery.match_baselines": "all"})
    plan = build_plan(cfg)
    d = cfg.discovery
    hedonic = [vocab.method_label(v, m) for v in d.valuations for m in d.methods]
    baselines = [vocab.baseline_label(b, ref) for ref in hedonic for b in d.baselines]
    assert plan.labels() == hedonic + baselines
    assert len(plan.partitions) == len(d.layers) * len(d.seeds) * (len(hedonic) + len(baselines))
    assert all(isinstance(k, PartitionKey) for k in plan.partitions)
    layer = d.layers[0]
    km = plan.key_of(layer, "kmeans~hedonic_oca", 1)
    assert km.is_baseline and km.matched_to == "hedonic_oca" and km.method == "kmeans"
    assert plan.partition_file(km).name == "kmeans.json"
    assert plan.partition_file(km).parent == plan.baselines[PartitionKey(layer, "hedonic_oca", 1)].path
    tc0, tc1 = (plan.hedonic[PartitionKey(layer, "hedonic_pas_topcover", s)] for s in (0, 1))
    assert tc0.key == tc1.key  # deterministic: computed once
    pac0, pac1 = (plan.hedonic[PartitionKey(layer, "hedonic_pas", s)] for s in (0, 1))
    assert pac0.key != pac1.key
    assert set(plan.evaluation) == set(plan.partitions) == set(plan.ood)
    top_responsive = {k for k in plan.hedonic if vocab.PARTITION_METHODS[vocab.parse_method_label(k.method)[1]].top_responsive}
    assert set(plan.stability) == top_responsive  # the ASHG has no top-k blocking rate
    assert top_responsive and top_responsive != set(plan.hedonic)
    with pytest.raises(KeyError):
        plan.key_of(layer, "kmeans", 0)  # no unmatched label in this mode
