"""``hedonic evaluate`` with the extrinsic metrics (OOD drop, alignment, predictivity; docs/method.md §8).

A tiny BERT with a real PEFT LoRA adapter is saved to disk (base directory + adapter), the
offline docstring corpus gives in-distribution and OOD pairs, and the partitions come from
exact Top Covering of the exact PAS on records captured in distribution. The command's
numbers are checked against direct computations (ablate + score + the metric; Pearson R²
against the LETOR features by numpy; the library's predictivity on the saved records).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from hedonic_neurons import Partition  # noqa: E402
from hedonic_neurons.cli.main import main  # noqa: E402
from tests.helpers import assert_close  # noqa: E402
from tests.tiny_models import minilm_dir, minilm_tokenizer, one_thread, tiny_model  # noqa: E402

LAYERS = (1, 2)
MAX_LENGTH = 64
BATCH = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Model on disk, pairs files, in-distribution records and partitions (hedonic_pas, random)."""
    from hedonic_neurons import game, valuations
    from hedonic_neurons.baselines import random_partition
    from hedonic_neurons.ir import build_offline_corpus, compute_targets, write_pairs_jsonl
    from hedonic_neurons.models import encode_pairs, load_scalar_model
    from hedonic_neurons.models.capture import capture

    tmp = tmp_path_factory.mktemp("extrinsic")
    corpus = build_offline_corpus(tmp / "corpus", max_queries=4)
    train, ood = corpus.pairs["train"], corpus.pairs["ood"]
    write_pairs_jsonl(train, tmp / "train.jsonl")
    write_pairs_jsonl(ood, tmp / "ood.jsonl")
    with (tmp / "qrels.ood.txt").open("w") as fh:
        for q, d, r in corpus.qrels["ood"][["qid", "docid", "relevance"]].itertuples(index=False):
            fh.write(f"{q} 0 {d} {int(r)}\n")
    with one_thread():
        model = tiny_model("bert", seed=3, n_layers=3, intermediate=16, lora_layers=LAYERS)
        model.save_pretrained(tmp / "adapter")
        model.unload().save_pretrained(tmp / "base")
        model = load_scalar_model(str(tmp / "base"), str(tmp / "adapter"))
        tok = minilm_tokenizer()
        tb = encode_pairs(tok, train["query"].tolist(), train["passage"].tolist(), max_length=MAX_LENGTH,
                          batch_size=BATCH)
        capture(model, tb, list(LAYERS), tmp / "train_records", labels=compute_targets(train, "cqtr"),
                progress=False)
        from hedonic_neurons.models.capture import load_records

        recs = load_records(tmp / "train_records")
    for layer in LAYERS:
        part = game.top_cover(valuations.pas(recs[layer]), k=3).with_meta(model="base", task="cqtr")
        part.to_json(tmp / "partitions" / f"layer{layer}.hedonic_pas.json")
        random_partition(part.sizes, seed=0).to_json(tmp / "partitions" / f"layer{layer}.random.json")
    return {"tmp": tmp, "train": train, "ood": ood, "model": model, "tok": tok}


def _model_args(tmp) -> list[str]:
    return ["--model", str(tmp / "base"), "--adapter", str(tmp / "adapter"), "--tokenizer", minilm_dir(),
            "--batch-size", str(BATCH), "--max-length", str(MAX_LENGTH)]


def _scores(model, batches) -> np.ndarray:
    from hedonic_neurons.models import score

    with torch.no_grad():
        return np.concatenate([score(model, b).double().numpy() for b in batches])


@pytest.mark.slow
def test_extrinsic_cqtr_end_to_end(setup, capsys) -> None:
    from hedonic_neurons.ir import CorpusStats, compute_targets, letor_features
    from hedonic_neurons.metrics.alignment import coalition_activations
    from hedonic_neurons.metrics.predictivity import predictivity
    from hedonic_neurons.models import encode_pairs
    from hedonic_neurons.models.ablation import ablate
    from hedonic_neurons.models.capture import load_records

    tmp, ood, train = setup["tmp"], setup["ood"], setup["train"]
    out = tmp / "eval_cqtr"
    with one_thread():
        code = main(["evaluate", "--partitions", str(tmp / "partitions"), "--out", str(out), "--task", "cqtr",
                     "--ood-pairs", str(tmp / "ood.jsonl"), "--train-pairs", str(tmp / "train.jsonl"),
                     "--train-records", str(tmp / "train_records"), "--backend", "torch",
                     *_model_args(tmp)])
    assert code == 0
    text = capsys.readouterr().out
    assert "capturing layers [1, 2] over 20 pairs" in text  # OOD records captured on the fly

    parts = {(label, layer): Partition.from_json(tmp / "partitions" / f"layer{layer}.{label}.json")
             for label in ("hedonic_pas", "random") for layer in LAYERS}
    for (label, layer), part in parts.items():
        d = out / label
        ood_df = pd.read_csv(d / f"ood.L{layer}.csv")
        multi = int((part.sizes >= 2).sum())
        assert len(ood_df) == min(multi, 20) and (ood_df["size"] >= 2).all()
        assert np.isfinite(ood_df[["metric_full", "metric_ablated", "drop"]].to_numpy()).all()
        assert (ood_df["metric"] == "neg_mse").all()
        al = pd.read_csv(d / f"alignment.L{layer}.csv")
        assert len(al) == part.n_coalitions and al["r2"].between(0, 1).all()
        assert list(al["size"]) == list(part.sizes)
        syn = pd.read_csv(d / f"synergy.L{layer}.csv")
        assert len(syn) == multi
        assert (d / "sizes.png").read_bytes()[:4] == b"\x89PNG"

    summary = pd.read_csv(out / "extrinsic_summary.csv")
    assert len(summary) == 4 and set(summary["method"]) == {"hedonic_pas", "random"}
    assert np.isfinite(summary[["ood_drop", "align_r2", "predictivity_r2"]].to_numpy()).all()
    long = pd.read_csv(out / "results_long.csv")
    assert list(long.columns) == ["model", "task", "method", "seed", "layer", "metric", "value"]
    for metric in ("ood_drop", "align_r2", "predictivity_r2", "pair"):
        sub = long[long["metric"] == metric]
        assert len(sub) == 4 and np.isfinite(sub["value"]).all(), metric
    assert set(long["model"]) == {"base"} and set(long["task"]) == {"cqtr"}
    assert (long.loc[long["method"] == "random", "seed"] == 0).all()  # from the partition's meta params

    # One coalition's OOD drop against a direct computation: ablate + score + (−MSE).
    model, tok = setup["model"], setup["tok"]
    part = parts[("hedonic_pas", 2)]
    row = pd.read_csv(out / "hedonic_pas" / "ood.L2.csv").iloc[0]
    members = part.coalitions[int(row["coalition"])]
    batches = encode_pairs(tok, ood["query"].tolist(), ood["passage"].tolist(), max_length=MAX_LENGTH,
                           batch_size=BATCH)
    target = compute_targets(ood, "cqtr").to_numpy()
    with one_thread():
        full = _scores(model, batches)
        with ablate(model, {2: members.tolist()}):
            abl = _scores(model, batches)
    expect = -np.mean((full - target) ** 2) + np.mean((abl - target) ** 2)
    assert abs(expect) > 0
    assert_close(row["drop"], expect, rtol=1e-5, atol=1e-7)

    # Alignment: max_j corr² of the coalition mean activation with the LETOR features, by numpy.
    recs = load_records(out / "records" / "ood")
    assert recs[2].n_inputs == len(ood)
    a_c = recs[2].a[:, members].astype(np.float64).mean(axis=1)
    stats = CorpusStats.from_passages(pd.concat([train["passage"], ood["passage"]]).drop_duplicates().tolist())
    feats = letor_features(ood, stats).to_numpy(np.float64)
    r2 = [np.corrcoef(a_c, f)[0, 1] ** 2 for f in feats.T if f.std() > 0]
    al = pd.read_csv(out / "hedonic_pas" / "alignment.L2.csv")
    assert_close(al.loc[int(row["coalition"]), "r2"], max(r2), rtol=1e-6, atol=1e-9)
    big = al[al["size"] >= 2]
    got = summary.set_index(["method", "layer"]).loc[("hedonic_pas", 2)]
    assert_close(got["align_r2"], big["r2"].mean(), rtol=1e-9, atol=0)

    # Predictivity equals the library function on the saved records.
    train_recs = load_records(tmp / "train_records")
    expect_r2 = predictivity(coalition_activations(train_recs[2].a, part), compute_targets(train, "cqtr"),
                             coalition_activations(recs[2].a, part), target, alpha=1.0)
    assert_close(got["predictivity_r2"], expect_r2, rtol=1e-9, atol=1e-12)

    # Tables in the paper layouts.
    md = (out / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 6"):
        assert title in md
    t1 = pd.read_csv(out / "table1_extrinsic.csv")
    assert len(t1) == 2 and set(t1["Method"]) == {"Hedonic (PAS)", "Random"}
    assert "base / OOD Drop" in t1.columns and "base / Align R2" in t1.columns
    t2 = pd.read_csv(out / "table2_predictivity.csv")
    assert list(t2.columns) == ["Method", "CQTR"] and len(t2) == 2
    assert (out / "table6_synergy.csv").is_file()


@pytest.mark.slow
def test_extrinsic_relevance_with_given_records(setup, capsys) -> None:
    """NDCG@10 with qrels, OOD records passed in, predictivity skipped without train pairs."""
    import ir_measures
    from ir_measures import Qrel, ScoredDoc, nDCG

    from hedonic_neurons.ir import load_qrels
    from hedonic_neurons.models import encode_pairs
    from hedonic_neurons.models.ablation import ablate
    from hedonic_neurons.models.capture import capture

    tmp, ood = setup["tmp"], setup["ood"]
    model, tok = setup["model"], setup["tok"]
    batches = encode_pairs(tok, ood["query"].tolist(), ood["passage"].tolist(), max_length=MAX_LENGTH,
                           batch_size=BATCH)
    with one_thread():
        capture(model, batches, [2], tmp / "ood_records", progress=False)
        out = tmp / "eval_rel"
        code = main(["evaluate", "--partitions", str(tmp / "partitions"), "--method", "hedonic_pas",
                     "--layers", "2", "--out", str(out), "--task", "relevance", "--records",
                     str(tmp / "ood_records"), "--ood-pairs", str(tmp / "ood.jsonl"), "--ood-qrels",
                     str(tmp / "qrels.ood.txt"), "--metrics", "ood", "predictivity", "--ood-max-coalitions", "2",
                     *_model_args(tmp)])
    assert code == 0
    text = capsys.readouterr().out
    assert "predictivity: skipped" in text and "capturing" not in text
    assert not (out / "synergy_summary.csv").exists()
    df = pd.read_csv(out / "hedonic_pas" / "ood.L2.csv")
    assert len(df) == 2 and (df["metric"] == "ndcg@10").all()
    long = pd.read_csv(out / "results_long.csv")
    assert list(long["metric"]) == ["ood_drop"]
    # OOD drop alone needs neither records nor a capture
    out2 = tmp / "eval_rel_ood_only"
    with one_thread():
        assert main(["evaluate", "--partitions", str(tmp / "partitions"), "--method", "hedonic_pas",
                     "--layers", "2", "--out", str(out2), "--task", "relevance", "--ood-pairs",
                     str(tmp / "ood.jsonl"), "--metrics", "ood", "--ood-max-coalitions", "1",
                     *_model_args(tmp)]) == 0
    assert not (out2 / "records").exists()
    assert len(pd.read_csv(out2 / "hedonic_pas" / "ood.L2.csv")) == 1

    part = Partition.from_json(tmp / "partitions" / "layer2.hedonic_pas.json")
    members = part.coalitions[int(df.loc[0, "coalition"])]
    qrels = [Qrel(q, d, int(r)) for q, d, r in load_qrels(tmp / "qrels.ood.txt").itertuples(index=False)]

    def ndcg(scores: np.ndarray) -> float:
        run = [ScoredDoc(str(q), str(d), float(s)) for q, d, s in zip(ood["qid"], ood["docid"], scores)]
        return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])

    with one_thread():
        full = _scores(model, batches)
        with ablate(model, {2: members.tolist()}):
            abl = _scores(model, batches)
    assert_close(df.loc[0, "metric_full"], ndcg(full), rtol=1e-9, atol=1e-12)
    assert_close(df.loc[0, "drop"], ndcg(full) - ndcg(abl), rtol=1e-9, atol=1e-12)


def test_extrinsic_argument_errors(setup, capsys) -> None:
    tmp = setup["tmp"]
    parts = str(tmp / "partitions")
    # extrinsic options without --model
    assert main(["evaluate", "--partitions", parts, "--out", str(tmp / "x"), "--records", str(tmp / "train_records"),
                 "--task", "cqtr"]) == 2
    assert "need --model" in capsys.readouterr().err
    # no records and no model
    assert main(["evaluate", "--partitions", parts, "--out", str(tmp / "x")]) == 2
    assert "--records" in capsys.readouterr().err
    # --model without --ood-pairs
    assert main(["evaluate", "--partitions", parts, "--out", str(tmp / "x"), "--task", "cqtr",
                 *_model_args(tmp)]) == 2
    assert "--ood-pairs" in capsys.readouterr().err
    # records captured on other pairs (20 in-distribution rows vs 19 OOD pairs)
    short = tmp / "ood19.jsonl"
    short.write_text("".join(json.dumps(r) + "\n" for r in setup["ood"].iloc[:19].to_dict("records")))
    with one_thread():
        code = main(["evaluate", "--partitions", parts, "--out", str(tmp / "x"), "--task", "cqtr", "--records",
                     str(tmp / "train_records"), "--ood-pairs", str(short), "--metrics", "alignment",
                     *_model_args(tmp)])
    assert code == 2 and "must be captured on those pairs" in capsys.readouterr().err
    assert main(["evaluate", "--partitions", parts, "--out", str(tmp / "x"), "--task", "cqtr", "--ood-pairs",
                 str(tmp / "ood.jsonl"), "--ridge-alpha", "-1", *_model_args(tmp)]) == 2
    assert "--ridge-alpha" in capsys.readouterr().err


def test_help_documents_extrinsic_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for opt in ("--model", "--adapter", "--task", "--ood-pairs", "--ood-qrels", "--train-records", "--train-pairs",
                "--batch-size", "--max-length", "OUT/records/ood", "results_long.csv", "example (with the extrinsic"):
        assert opt in text, opt
