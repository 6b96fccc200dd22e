"""The one evaluation core (hedonic_neurons.evaluation): checked against plain references, and
``hedonic run``'s evaluation stage and ``hedonic evaluate`` give the same numbers on the same
tiny model and partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from hedonic_neurons import Partition, vocab  # noqa: E402
from hedonic_neurons.errors import InputError  # noqa: E402
from hedonic_neurons.evaluation import (  # noqa: E402
    EvaluationOptions,
    evaluate_alignment,
    evaluate_partition,
    evaluate_predictivity,
    evaluate_synergy,
    ood_coalitions,
)
from hedonic_neurons.io import read_json  # noqa: E402
from tests.helpers import assert_close  # noqa: E402
from tests.tiny_models import minilm_dir, minilm_tokenizer, one_thread, tiny_model  # noqa: E402

LAYER = 2
MAX_LENGTH = 64
BATCH = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT + LoRA on disk, OOD pairs, their records (labels = CQTR targets), LETOR features, partitions."""
    from hedonic_neurons import game, valuations
    from hedonic_neurons.baselines import random_partition
    from hedonic_neurons.ir import (
        CorpusStats,
        build_offline_corpus,
        compute_targets,
        letor_features,
        write_pairs_jsonl,
    )
    from hedonic_neurons.models import encode_pairs, load_scalar_model
    from hedonic_neurons.models.capture import capture

    tmp = tmp_path_factory.mktemp("evalcore")
    ood = build_offline_corpus(tmp / "corpus", max_queries=4).pairs["ood"].reset_index(drop=True)
    write_pairs_jsonl(ood, tmp / "ood.jsonl")
    targets = compute_targets(ood, "cqtr").to_numpy(np.float64)
    pairs = ood.copy()
    pairs["target"] = targets
    pairs.to_parquet(tmp / "ood.parquet")
    stats = CorpusStats.from_passages(ood["passage"].astype(str).drop_duplicates().tolist())
    feats = letor_features(ood, stats).reset_index(drop=True)
    feats.to_parquet(tmp / "ood_features.parquet")
    with one_thread():
        model = tiny_model("bert", seed=5, n_layers=3, intermediate=16, lora_layers=(1, 2))
        model.save_pretrained(tmp / "adapter")
        model.unload().save_pretrained(tmp / "base")
        model = load_scalar_model(str(tmp / "base"), str(tmp / "adapter"))
        batches = encode_pairs(minilm_tokenizer(), ood["query"].tolist(), ood["passage"].tolist(),
                               max_length=MAX_LENGTH, batch_size=BATCH)
        recs = capture(model, batches, [LAYER], tmp / "records", labels=targets, progress=False)
    rec = recs[LAYER]
    rec.save(tmp / f"layer{LAYER}.safetensors")
    (tmp / "partitions").mkdir()
    hed = game.top_cover(valuations.pas(rec), k=3).with_meta(model="base", task="cqtr")
    hed.to_json(tmp / "partitions" / f"layer{LAYER}.hedonic_pas_topcover.json")
    rnd = random_partition(hed.sizes, seed=1)
    rnd.to_json(tmp / "partitions" / f"layer{LAYER}.random.json")
    return {"tmp": tmp, "ood": ood, "targets": targets, "feats": feats, "rec": rec, "model": model,
            "batches": batches, "parts": {"hedonic_pas_topcover": hed, "random": rnd}}


def test_options_fail_early_and_by_name() -> None:
    for kwargs, name in (({"min_size": 1}, "min_size"), ({"max_coalitions": 0}, "max_coalitions"),
                         ({"ridge_alpha": -1.0}, "ridge_alpha"), ({"backend": "gpu"}, "backend"),
                         ({"confidence": 1.0}, "confidence"), ({"max_members": 1}, "max_members")):
        with pytest.raises(InputError, match=name):
            EvaluationOptions(**kwargs)


def test_ood_coalitions_against_enumeration() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, rng.integers(1, 9), size=30)
        part = Partition.from_labels(labels)
        for opts in (EvaluationOptions(), EvaluationOptions(min_size=3, max_coalitions=2), EvaluationOptions(max_coalitions=None)):
            # reference: sort (−size, index) by hand, keep sizes >= min_size, cut
            ref = sorted((c for c in range(part.n_coalitions) if part.sizes[c] >= opts.min_size),
                         key=lambda c: (-part.sizes[c], c))
            if opts.max_coalitions is not None:
                ref = ref[: opts.max_coalitions]
            assert ood_coalitions(part, opts) == ref


def test_core_against_plain_references(setup) -> None:
    rec, part, feats = setup["rec"], setup["parts"]["hedonic_pas_topcover"], setup["feats"]
    a = np.asarray(rec.a, np.float64)
    syn = evaluate_synergy(rec, part, EvaluationOptions(backend="torch"))
    assert syn.n_coalitions == int((part.sizes >= 2).sum()) == len(syn.table)
    pair = syn.table["pair"].to_numpy()
    assert_close(syn.pair, pair[np.isfinite(pair)].mean(), rtol=1e-12, atol=0)
    al = evaluate_alignment(rec, part, feats)
    f = feats.to_numpy(np.float64)
    r2 = []
    for members in part.coalitions:
        a_c = a[:, members].mean(axis=1)
        r2.append(max(np.corrcoef(a_c, col)[0, 1] ** 2 for col in f.T if col.std() > 0 and a_c.std() > 0))
    big = [r for r, s in zip(r2, part.sizes) if s >= 2]
    assert_close(al.table["r2"].to_numpy(), np.array(r2), rtol=1e-6, atol=1e-9)
    assert_close(al.r2, np.mean(big), rtol=1e-6, atol=1e-9)
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    x = np.stack([a[:, m].mean(axis=1) for m in part.coalitions], axis=1)
    pred = evaluate_predictivity(rec, rec, part, EvaluationOptions(ridge_alpha=0.5))
    from hedonic_neurons.metrics.predictivity import predictivity

    assert_close(pred.r2, predictivity(x, setup["targets"], x, setup["targets"], alpha=0.5), rtol=1e-9, atol=1e-12)
    assert np.isfinite(pred.r2) and pred.r2 <= 1.0
    assert Ridge and r2_score  # the library call above is itself tested against sklearn in test_ood.py
    ev = evaluate_partition(part, EvaluationOptions(backend="torch"), record=rec, ood_record=rec, train_record=rec,
                            features=feats)
    assert set(ev.metrics()) == {"pair", "ratio", "align_r2", "predictivity_r2", "n_coalitions", "largest_share",
                                 "singleton_share"}
    assert all(vocab.check("metric", m) for m in ev.metrics())
    with pytest.raises(InputError, match="features"):
        evaluate_partition(part, record=rec, ood_record=rec, metrics=("alignment",))
    with pytest.raises(InputError, match="features: 3 rows"):
        evaluate_alignment(rec, part, feats.iloc[:3])


@pytest.mark.slow
def test_pipeline_stage_and_cli_give_the_same_metrics(setup, tmp_path) -> None:
    """Both doors, one core: the study's evaluation/OOD stages and `hedonic evaluate`, same inputs."""
    from hedonic_neurons.cli.main import main
    from hedonic_neurons.pipeline.stages.evaluate import stage_ood, work_evaluation

    tmp = setup["tmp"]
    opts = EvaluationOptions(min_size=2, max_coalitions=3, ridge_alpha=1.0, backend="torch")
    stage: dict[str, dict[str, float]] = {}
    with one_thread():
        for label in setup["parts"]:
            part_path = tmp / "partitions" / f"layer{LAYER}.{label}.json"
            d1, d2 = tmp_path / "stage" / label / "ev", tmp_path / "stage" / label / "ood"
            d1.mkdir(parents=True)
            d2.mkdir(parents=True)
            rec_path = str(tmp / f"layer{LAYER}.safetensors")
            work_evaluation(str(part_path), rec_path, rec_path, str(tmp / "ood_features.parquet"),
                            ["synergy", "alignment", "predictivity"],
                            {"min_size": 2, "ridge_alpha": 1.0, "backend": "torch"},
                            (str(tmp / "ood.parquet"), str(tmp / "ood.parquet")), d1)
            stage_ood(setup["model"], setup["batches"], LAYER, part_path, tmp / "ood.parquet", None, "cqtr", opts, d2)
            stage[label] = {**read_json(d1 / "metrics.json"), "ood_drop": read_json(d2 / "metrics.json")["ood_drop"]}
        out = tmp_path / "cli"
        assert main(["evaluate", "--partitions", str(tmp / "partitions"), "--out", str(out), "--task", "cqtr",
                     "--records", str(tmp / "records"), "--ood-pairs", str(tmp / "ood.jsonl"),
                     "--train-pairs", str(tmp / "ood.jsonl"), "--train-records", str(tmp / "records"),
                     "--ood-max-coalitions", "3", "--backend", "torch", "--model", str(tmp / "base"),
                     "--adapter", str(tmp / "adapter"), "--tokenizer", minilm_dir(), "--batch-size", str(BATCH),
                     "--max-length", str(MAX_LENGTH)]) == 0
    long = pd.read_csv(out / "results_long.csv")
    assert set(long["model"]) == {"base"}
    checked = 0
    for label in setup["parts"]:
        for metric in ("pair", "ratio", "align_r2", "predictivity_r2", "ood_drop"):
            got = long[(long["method"] == label) & (long["metric"] == metric)]["value"]
            assert len(got) == 1, (label, metric)
            want = stage[label][metric]
            if np.isnan(want):
                assert np.isnan(got.iloc[0])
            else:
                assert_close(got.iloc[0], want, rtol=1e-9, atol=1e-12)
            checked += 1
    assert checked == 10
    assert np.isfinite(stage["hedonic_pas_topcover"]["ood_drop"])


def test_missing_pairs_file_is_the_same_error_for_run_and_evaluate(tmp_path) -> None:
    from hedonic_neurons.ir import read_pairs_file
    from hedonic_neurons.pipeline import from_dict
    from hedonic_neurons.pipeline.stages.data import stage_data

    with pytest.raises(InputError, match="--ood-pairs: file not found"):
        read_pairs_file(tmp_path / "nope.jsonl", "--ood-pairs")
    cfg = from_dict({"data": {"source": "files", "train": str(tmp_path / "nope.jsonl"),
                              "ood": str(tmp_path / "nope2.jsonl")}})
    with pytest.raises(InputError, match=r"data\.train: file not found"):
        stage_data(cfg, tmp_path)
