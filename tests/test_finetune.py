"""LoRA fine-tuning: the loss goes down, only LoRA + head train, checkpoints resume exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from hedonic_neurons.errors import InputError
from hedonic_neurons.models import score
from hedonic_neurons.models.finetune import _predict, finetune, regression_targets, relevance_groups
from hedonic_neurons.pipeline.config import FinetuneConfig
from tests.helpers import assert_close
from tests.tiny_models import minilm_tokenizer, tiny_model

WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega rho tau phi chi psi "
         "river mountain forest ocean desert valley island canyon").split()


def _pairs(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        q = rng.choice(WORDS, 3, replace=False)
        overlap = int(rng.integers(0, 4))
        p = list(q[:overlap]) + list(rng.choice(WORDS, 6))
        rng.shuffle(p)
        rows.append({"qid": f"q{i // 4}", "docid": f"d{i}", "query": " ".join(q), "passage": " ".join(p),
                     "relevance": int(i % 4 == 0)})
    return pd.DataFrame(rows)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tok():
    return minilm_tokenizer()


def _fresh() -> torch.nn.Module:
    model = tiny_model("bert", seed=0, lora_layers=(1, 2), r=4)
    return model


def _train_mse(model, tok, pairs) -> float:
    enc = lambda q, p: dict(tok(q, p, truncation=True, padding=True, max_length=32, return_tensors="pt"))  # noqa: E731
    pred = _predict(model, enc, score, list(pairs["query"]), list(pairs["passage"]), 16, torch.device("cpu"))
    return float(np.mean((pred - regression_targets(pairs, "cqtr")) ** 2))


def test_finetune_lowers_training_loss_and_trains_only_lora_and_head(tmp_path, tok) -> None:
    train, val = _pairs(48, 0), _pairs(16, 1)
    model = _fresh()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mse0 = _train_mse(model, tok, train)
    cfg = FinetuneConfig(lr=5e-3, batch_size=16, micro_batch_size=8, epochs=4, checkpoint_every=0, seed=0)
    res = finetune(model, tok, train, val, "cqtr", cfg, tmp_path / "ft", max_length=32, progress=False)
    mse1 = _train_mse(model, tok, train)
    assert mse1 < 0.5 * mse0, (mse0, mse1)
    assert res.steps == 12 and len(res.train_loss) == 12
    assert res.final_val["loss"] < res.initial_val["loss"]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "nothing trained"
    assert all("lora_" in n or ".modules_to_save." in n for n in changed), sorted(changed)
    assert any("modules_to_save" in n for n in changed), "the scalar head must train"
    # adapter in PEFT format, reloadable, same scores
    adapter = res.adapter_dir
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "head.safetensors").is_file()
    lines = [json.loads(x) for x in res.log_path.read_text().splitlines()]
    assert lines[0]["event"] == "init" and lines[-1]["event"] == "final"
    assert [x["step"] for x in lines if "loss" in x and "event" not in x] == list(range(1, 13))
    # nothing pickled: checkpoints are safetensors + JSON only
    for _root, _, files in os.walk(tmp_path / "ft" / "checkpoints"):
        for f in files:
            assert f.endswith((".safetensors", ".json")), f


def test_head_lr_sets_the_heads_own_learning_rate(tmp_path, tok) -> None:
    """AdamW moves each parameter by about its learning rate per step: with head_lr 1000× below lr
    the head moves ~1000× less than with head_lr = lr, while the LoRA factors move as before."""
    train, val = _pairs(32, 4), _pairs(8, 5)
    moved: dict[str, dict[str, float]] = {}
    for label, head_lr in (("same", None), ("slow", 5e-6)):
        model = _fresh()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = FinetuneConfig(lr=5e-3, head_lr=head_lr, batch_size=8, micro_batch_size=8, epochs=1, max_steps=3,
                             checkpoint_every=0)
        finetune(model, tok, train, val, "cqtr", cfg, tmp_path / label, max_length=32, progress=False)
        delta = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters() if p.requires_grad}
        moved[label] = {"head": max(v for n, v in delta.items() if "lora_" not in n),
                        "lora": max(v for n, v in delta.items() if "lora_" in n)}
    assert moved["same"]["head"] > 1e-3 and moved["slow"]["head"] < 3 * 5e-6 * 3
    assert moved["slow"]["lora"] > 0.5 * moved["same"]["lora"]


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, tok) -> None:
    train, val = _pairs(32, 2), _pairs(8, 3)
    cfg4 = FinetuneConfig(lr=5e-3, batch_size=8, micro_batch_size=4, epochs=1, max_steps=4, checkpoint_every=2)
    full = _fresh()
    finetune(full, tok, train, val, "cqtr", cfg4, tmp_path / "full", max_length=32, progress=False)
    # "crash" after 2 steps (the run ends and leaves its checkpoint), then resume to 4
    part = _fresh()
    cfg2 = FinetuneConfig(lr=5e-3, batch_size=8, micro_batch_size=4, epochs=1, max_steps=2, checkpoint_every=2)
    finetune(part, tok, train, val, "cqtr", cfg2, tmp_path / "part", max_length=32, progress=False)
    resumed_model = _fresh()
    res = finetune(resumed_model, tok, train, val, "cqtr", cfg4, tmp_path / "part", max_length=32, progress=False)
    assert res.resumed_from == 2 and len(res.train_loss) == 2
    a = dict(full.named_parameters())
    for n, p in resumed_model.named_parameters():
        if p.requires_grad:
            assert_close(p.detach(), a[n].detach(), rtol=1e-5, atol=1e-6, msg=n)


def test_relevance_loss_decreases(tmp_path, tok) -> None:
    train = _pairs(48, 4)
    # make relevance learnable: relevant pairs contain every query term
    q = train["query"].str.split()
    train.loc[train["relevance"] > 0, "passage"] = [" ".join(x * 2) for x in q[train["relevance"] > 0]]
    cfg = FinetuneConfig(lr=5e-3, batch_size=4, micro_batch_size=2, epochs=6, n_negatives=3, checkpoint_every=0)
    res = finetune(_fresh(), tok, train, train, "relevance", cfg, tmp_path / "rel", max_length=32, progress=False)
    first, last = np.mean(res.train_loss[:3]), np.mean(res.train_loss[-3:])
    assert last < first, (first, last)
    assert res.final_val["ndcg@10"] is not None and res.final_val["ndcg@10"] >= res.initial_val["ndcg@10"]


def test_relevance_groups_hard_negatives() -> None:
    pairs = _pairs(40, 5)
    groups = relevance_groups(pairs, n_negatives=3, seed=0)
    assert len(groups) == int((pairs["relevance"] > 0).sum())
    for pos, negs in groups:
        assert pairs["relevance"][pos] > 0 and len(negs) == 3
        assert all(pairs["relevance"][j] == 0 or pairs["qid"][j] != pairs["qid"][pos] for j in negs)
        own = [j for j in negs if pairs["qid"][j] == pairs["qid"][pos]]
        assert len(own) == 3  # each query has 3 judged negatives: all of them are used first
    with pytest.raises(InputError, match="relevance > 0"):
        relevance_groups(pairs.assign(relevance=0), 3, 0)


def test_bad_inputs(tmp_path, tok) -> None:
    with pytest.raises(InputError, match="task: expected one of cqtr, mean_tf_l, relevance"):
        finetune(_fresh(), tok, _pairs(4, 0), _pairs(4, 0), "bm25", None, tmp_path)
    with pytest.raises(InputError, match=r"train_pairs: missing columns \['query'\]"):
        finetune(_fresh(), tok, _pairs(4, 0).drop(columns="query"), _pairs(4, 0), "cqtr", None, tmp_path)
