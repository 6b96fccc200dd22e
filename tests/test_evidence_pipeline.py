"""``hedonic run`` with the evidence protocol (docs/method.md §8.5) on a tiny random BERT.

One run (module fixture, tracking on) with the null valuation as a control and PAC-Top-Cover's ``top``
sampler; checked: the held-out split (disjoint by query, φ from the discovery rows only),
the new metrics and control methods in ``artifacts/results.csv``, the relative OOD drop
against the all-LoRA rows, the verdict section first in the report and consistent with
the results and ``verdict.csv``, the explorer artifacts against their schema, and the run's own
explorer.html in headless Chromium (card numbers equal coalitions.parquet, lineage links resolve).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hedonic_neurons.pipeline import build_plan, from_dict, run_study
from tests.helpers import assert_close
from tests.test_explorer import _value, _wait, browser, r4  # noqa: F401  (browser is a fixture)
from tests.tiny_models import minilm_tokenizer

pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.slow]

LAYERS = [1, 2]
NEW_METRICS = {"pair_heldout", "ratio_heldout", "pair_pooled_heldout", "pair_pooled_excess", "frac_sig_pair",
               "ood_drop", "ood_drop_rel", "ood_drop_excess", "frac_sig_ood", "align_excess", "frac_sig_align"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from transformers import BertConfig, BertModel

    base = tmp_path_factory.mktemp("tinybert")
    bc = BertConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                    num_attention_heads=4, max_position_embeddings=64, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(bc, add_pooling_layer=False).save_pretrained(base)
    minilm_tokenizer().save_pretrained(base)
    out = tmp_path_factory.mktemp("evidence-run")
    cfg = from_dict({
        "name": "evidence-test", "task": "cqtr",
        "model": {"base": str(base), "device": "cpu", "max_length": 48, "batch_size": 24},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "layers": [1, 2]},
        "finetune": {"lr": 5e-3, "batch_size": 16, "micro_batch_size": 16, "epochs": 1, "max_steps": 2,
                     "checkpoint_every": 0},
        "data": {"source": "offline", "n_train": 64, "n_val": 16, "n_capture": 48, "n_ood": 24},
        "discovery": {"layers": LAYERS, "valuations": ["pas_exact", "null"], "methods": ["pac_top_cover"],
                      "pac": {"m": 400, "omega": 100, "sampler": "top"}, "baselines": ["random", "kmeans"],
                      "seeds": [0]},
        "evaluation": {"stability_samples": 200, "null_draws": 99, "ood_null_draws": 30, "ood_verify": 4},
        "tracking": {"enabled": True, "sankey": False},
        "output_dir": str(out), "n_jobs": 1,
    })
    study = run_study(cfg, run_dir=out, progress=False)
    return cfg, out, study


def test_heldout_split_disjoint_and_phi_from_discovery_rows_only(run) -> None:
    from hedonic_neurons.records import LayerRecord
    from hedonic_neurons.synergy import SynergyMatrix
    from hedonic_neurons.valuations import pas

    cfg, out, _ = run
    plan = build_plan(cfg, out)
    assert plan.split is not None
    from hedonic_neurons.io import read_json

    sp = read_json(plan.split.file("split.json"))
    qids = pd.read_parquet(plan.data.file("capture.parquet"))["qid"].astype(str).to_numpy()
    disc, held = np.array(sp["discovery"]), np.array(sp["heldout"])
    assert np.intersect1d(disc, held).size == 0 and disc.size + held.size == qids.size
    assert not set(qids[disc]) & set(qids[held])
    for layer in LAYERS:
        full = LayerRecord.load(plan.record_file("capture", layer))
        d = LayerRecord.load(plan.record_file("discovery", layer))
        assert np.array_equal(d.a, full.a[disc])
        phi = SynergyMatrix.load(plan.phi_file(layer, "pas_exact")).values
        assert np.array_equal(phi, pas(d, method="exact").values)
        assert not np.array_equal(phi, pas(full, method="exact").values)


def test_results_carry_new_metrics_controls_and_relative_drop(run) -> None:
    _cfg, out, study = run
    res = pd.read_csv(out / "artifacts" / "results.csv")
    assert list(res.columns) == ["model", "task", "method", "seed", "layer", "metric", "value"]
    labels = ["hedonic_pas", "hedonic_null", "random", "kmeans"]
    for lab in labels:
        have = set(res.loc[res["method"] == lab, "metric"])
        assert NEW_METRICS <= have, (lab, NEW_METRICS - have)
    al = res[res["method"] == "all_lora"]
    assert sorted(al["layer"]) == LAYERS and set(al["metric"]) == {"ood_drop"}
    ctl = res[res["metric"] == "ood_metric"].set_index("method")["value"]
    assert set(ctl.index) == {"finetuned", "no_lora", "base"}
    assert (res.loc[res["metric"] == "ood_metric", "layer"] == -1).all()
    # ood_drop_rel = ood_drop / all-LoRA drop of the same layer
    for lab in labels:
        for layer in LAYERS:
            row = res[(res["method"] == lab) & (res["layer"] == layer)].set_index("metric")["value"]
            scale = float(al[al["layer"] == layer]["value"].iloc[0])
            assert_close(row["ood_drop_rel"], row["ood_drop"] / scale, rtol=1e-9, atol=1e-15)
    # ε̂ under the top sampler's D, beside the uniform one, for the PAC partitions
    eps = res[res["metric"] == "epsilon_hat_sampler"]
    assert set(eps["method"]) == {"hedonic_pas", "hedonic_null"}
    assert set(res.loc[res["metric"] == "epsilon_hat", "method"]) == {"hedonic_pas", "hedonic_null"}
    assert study.controls is not None and study.verification["n_sample"].tolist() == [4, 4]


def test_verdict_first_and_consistent_with_the_results(run) -> None:
    from hedonic_neurons.pipeline.verdict import SIZE_MATCHED

    _, out, study = run
    md = (out / "report.md").read_text()
    h2 = [line for line in md.splitlines() if line.startswith("## ")]
    assert h2[0] == "## Verdict"
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert "**hedonic_pas**" in verdict and "**hedonic_null**" not in verdict
    assert "explorer.html" in verdict
    table = pd.read_csv(out / "artifacts" / "tables" / "verdict.csv")
    assert set(table["method"]) == {"hedonic_pas"}
    assert {"random", "kmeans", "hedonic_null", SIZE_MATCHED} <= set(table["against"])
    res = study.results
    for r in table.to_dict("records"):
        mine = res[(res["method"] == "hedonic_pas") & (res["metric"] == r["metric"])]["value"].mean()
        assert_close(r["mean"], mine, rtol=1e-9, atol=1e-15)
        if r["against"] == SIZE_MATCHED:
            excess = {"pair_pooled_heldout": "pair_pooled_excess", "ood_drop": "ood_drop_excess",
                      "align_r2": "align_excess"}[r["metric"]]
            want = res[(res["method"] == "hedonic_pas") & (res["metric"] == excess)]["value"].mean()
        else:
            other = res[(res["method"] == r["against"]) & (res["metric"] == r["metric"])]["value"].mean()
            assert_close(r["against_mean"], other, rtol=1e-9, atol=1e-15)
            want = mine - other
        assert_close(r["diff"], want, rtol=1e-9, atol=1e-15)
        word = r["verdict"]
        if r["p"] == r["p"] and r["p"] < 0.05:
            assert word == ("better" if r["diff"] > 0 else "worse")
        assert word in verdict or (word == "not distinguishable" and "not better than" in verdict)
    # the tables after the verdict show the same numbers (Table 6's held-out pooled Pair column)
    t6 = pd.read_csv(out / "artifacts" / "tables" / "table6_numeric.csv").set_index("method")
    pooled = table[(table["metric"] == "pair_pooled_heldout") & (table["against"] == SIZE_MATCHED)]["mean"].iloc[0]
    assert_close(t6.loc["hedonic_pas", "pair_pooled_heldout_mean"], pooled, rtol=1e-9, atol=1e-15)


def test_explorer_artifacts_validate_and_agree_with_results(run) -> None:
    from hedonic_neurons.explorer import read_artifacts

    cfg, out, study = run
    arts = read_artifacts(out)  # validates every table against the schema
    assert (out / "explorer.html").is_file() and study.explorer == out / "explorer.html"
    co = arts.coalitions
    n_total = sum(p.n_coalitions for p in study.partitions.values())
    assert len(co) == n_total
    assert set(arts.examples["split"]) == {"capture", "ood"}
    assert (arts.examples["query"].str.len() > 0).all()
    assert set(arts.partitions["method"]) == set(study.labels)
    res = study.results
    for (layer, method, _seed), g in co.groupby(["layer", "method", "seed"]):
        big = g[g["size"] >= cfg.evaluation.min_size]
        want = res[(res["method"] == method) & (res["layer"] == layer) & (res["metric"] == "frac_sig_pair")]["value"]
        assert_close(float(big["pair_significant"].mean()), float(want.iloc[0]), rtol=0, atol=1e-12)
        drop = res[(res["method"] == method) & (res["layer"] == layer) & (res["metric"] == "ood_drop")]["value"]
        assert_close(float(big["ood_drop"].mean()), float(drop.iloc[0]), rtol=1e-9, atol=1e-15)
        assert (big["ood_kind"] == "estimated").all()


def test_explorer_of_the_run_in_headless_chromium(run, browser, tmp_path) -> None:  # noqa: F811
    """The run's own explorer.html in a real browser: pick a layer and a method, open a coalition's
    card, compare its numbers with artifacts/coalitions.parquet, follow a lineage link, no console errors."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from hedonic_neurons.explorer import read_artifacts

    _cfg, out, _study = run
    arts = read_artifacts(out)
    co, li = arts.coalitions, arts.lineage
    drv = browser
    drv.get((out / "explorer.html").as_uri())
    _wait(drv, lambda d: d.execute_script("return document.body.dataset.ready"), "page never became ready")
    layer, method, seed = LAYERS[0], "hedonic_pas", 0
    Select(drv.find_element(By.ID, "sel-layer")).select_by_value(str(layer))
    Select(drv.find_element(By.ID, "sel-method")).select_by_value(method)
    Select(drv.find_element(By.ID, "sel-seed")).select_by_value(str(seed))
    _wait(drv, lambda d: f"layer {layer}, {method}, seed {seed}" in d.find_element(By.ID, "partition-body").text,
          "partition panel did not switch")
    part = co[(co.layer == layer) & (co.method == method) & (co.seed == seed)].set_index("coalition")
    rows = drv.find_elements(By.CSS_SELECTOR, "#coalitions tbody tr")
    assert sorted(int(r.get_attribute("data-c")) for r in rows) == sorted(part.index)
    c = int(part["size"].idxmax())  # the largest coalition: it has held-out Pair and an OOD drop
    drv.find_element(By.CSS_SELECTOR, f'#coalitions tbody tr[data-c="{c}"]').click()
    _wait(drv, lambda d: d.find_element(By.ID, "card").get_attribute("data-coalition") == str(c), "card did not open")
    ref = part.loc[c]
    checked = 0
    for col in ("pair_insample", "pair_heldout", "ratio_heldout", "pair_null_mean", "pair_q", "ood_drop",
                "ood_drop_rel", "ood_q"):
        got = _value(drv, f"card-{col}")
        want = r4(ref[col])
        assert (float(got) if got else None) == want, col
        checked += want is not None
    assert checked >= 4  # the run filled the card, not only dashes
    assert drv.find_element(By.ID, "card-size").text == str(ref["size"])
    links = drv.find_elements(By.CSS_SELECTOR, "#card-lineage-out a.lin")
    expected = li[(li.method == method) & (li.seed == seed) & (li.layer == layer) & (li.source == c) & (li.target >= 0)]
    assert {(int(a.get_attribute("data-layer")), int(a.get_attribute("data-c"))) for a in links} == set(
        zip(expected.target_layer, expected.target))
    if links:
        t_layer, t = links[0].get_attribute("data-layer"), links[0].get_attribute("data-c")
        links[0].click()
        _wait(drv, lambda d: (d.find_element(By.ID, "card").get_attribute("data-layer"),
                              d.find_element(By.ID, "card").get_attribute("data-coalition")) == (t_layer, t),
              "lineage link did not open its card")
    drv.save_screenshot(str(tmp_path / "run-explorer.png"))
    severe = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
