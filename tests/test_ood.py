"""OOD drop metrics (docs/method.md §8): NDCG@10 through ir_measures on hand-checked rankings, −MSE."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons import InputError
from hedonic_neurons.metrics.ood import ndcg_at_10, neg_mse, task_metric
from tests.helpers import assert_close


def test_ndcg_hand_checked_single_query() -> None:
    # Ranking by score: d2 (rel 0), d3 (rel 1), d1 (rel 2).
    # DCG = 0/log2(2) + 1/log2(3) + 2/log2(4); ideal = 2/log2(2) + 1/log2(3) (linear gains).
    qids, docids, scores = ["q1"] * 3, ["d1", "d2", "d3"], [0.1, 0.9, 0.5]
    qrels = pd.DataFrame({"qid": ["q1"] * 3, "docid": ["d1", "d2", "d3"], "relevance": [2, 0, 1]})
    expect = (1 / math.log2(3) + 2 / 2) / (2 + 1 / math.log2(3))
    assert_close(ndcg_at_10(qids, docids, scores, qrels), expect, rtol=1e-9, atol=0)
    # Same judgements as a dict and as aligned grades.
    assert_close(ndcg_at_10(qids, docids, scores, {"q1": {"d1": 2, "d2": 0, "d3": 1}}), expect, rtol=1e-9, atol=0)
    assert_close(ndcg_at_10(qids, docids, scores, np.array([2, 0, 1])), expect, rtol=1e-9, atol=0)


def test_ndcg_mean_over_queries_and_cutoff() -> None:
    # q1: perfect ranking -> 1. q2: 12 docs, the only relevant one ranked 11th -> 0 at cutoff 10.
    qids = ["q1", "q1"] + ["q2"] * 12
    docids = ["a", "b"] + [f"x{i}" for i in range(12)]
    scores = [2.0, 1.0] + [float(12 - i) for i in range(12)]
    grades = [1, 0] + [0] * 10 + [1, 0]
    got = ndcg_at_10(qids, docids, scores, np.array(grades))
    assert_close(got, 0.5, rtol=0, atol=1e-12)
    # Perfect ranking of q2 as well -> 1.
    scores2 = list(scores)
    scores2[2 + 10] = 100.0
    assert_close(ndcg_at_10(qids, docids, scores2, np.array(grades)), 1.0, rtol=0, atol=1e-12)


def test_ndcg_errors() -> None:
    with pytest.raises(InputError, match="equal lengths"):
        ndcg_at_10(["q"], ["a", "b"], [1.0, 2.0], np.array([1, 0]))
    with pytest.raises(InputError, match="more than once"):
        ndcg_at_10(["q", "q"], ["a", "a"], [1.0, 2.0], np.array([1, 0]))
    with pytest.raises(InputError, match="no query"):
        ndcg_at_10(["q"], ["a"], [1.0], {"other": {"a": 1}})


def test_neg_mse_and_task_dispatch() -> None:
    s, t = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 1.0])
    assert_close(neg_mse(s, t), -(0 + 1 + 9) / 3, rtol=0, atol=1e-12)
    assert_close(task_metric("cqtr", s, targets=t), neg_mse(s, t), rtol=0, atol=0)
    assert_close(task_metric("Mean-TF/L", s, targets=t), neg_mse(s, t), rtol=0, atol=0)
    with pytest.raises(InputError, match="task"):
        task_metric("bleu", s, targets=t)
    with pytest.raises(InputError, match="targets"):
        task_metric("cqtr", s)


@pytest.mark.slow
def test_ood_drop_matches_direct_ablation(torch_one_thread) -> None:
    torch = torch_one_thread
    from hedonic_neurons import Partition
    from hedonic_neurons.metrics.ood import ood_drop
    from hedonic_neurons.models import score
    from hedonic_neurons.models.ablation import ablate
    from tests.tiny_models import random_batches, tiny_model

    model = tiny_model("llama", seed=3, lora_layers=(1, 2), lora_scale=4.0)
    batches = random_batches(model, 3, 4, 7, seed=5)
    n = 12
    qids = [f"q{i // 4}" for i in range(n)]
    docids = [f"d{i}" for i in range(n)]
    grades = np.array([2, 0, 1, 0, 0, 1, 0, 0, 3, 0, 0, 1])
    targets = np.linspace(-1, 1, n)
    part = Partition.from_labels(np.arange(64) % 5)

    def scores(ablated=None) -> np.ndarray:
        with torch.no_grad():
            if ablated is None:
                return torch.cat([score(model, b) for b in batches]).numpy()
            with ablate(model, {2: ablated}):
                return torch.cat([score(model, b) for b in batches]).numpy()

    full = scores()
    # Relevance: NDCG@10, batches passed as a one-shot generator (iterated once).
    rel = ood_drop(model, (b for b in batches), 2, part, task="relevance", qids=qids, docids=docids,
                   qrels=grades, coalitions=[0, 3], progress=False)
    assert list(rel["coalition"]) == [0, 3] and list(rel["size"]) == [13, 13]
    for _, row in rel.iterrows():
        abl = scores(part.coalitions[int(row["coalition"])].tolist())
        expect_full = ndcg_at_10(qids, docids, full, grades)
        expect_abl = ndcg_at_10(qids, docids, abl, grades)
        assert_close(row["metric_full"], expect_full, rtol=1e-9, atol=1e-12)
        assert_close(row["metric_ablated"], expect_abl, rtol=1e-9, atol=1e-12)
        assert_close(row["drop"], expect_full - expect_abl, rtol=1e-9, atol=1e-12)
    # Regression task: −MSE, every coalition.
    reg = ood_drop(model, batches, 2, part, task="cqtr", targets=targets, progress=False)
    assert len(reg) == 5 and (reg["metric"] == "neg_mse").all()
    abl = scores(part.coalitions[1].tolist())
    assert_close(reg.loc[1, "drop"], neg_mse(full, targets) - neg_mse(abl, targets), rtol=1e-6, atol=1e-9)
    assert np.abs(reg["drop"]).max() > 0  # the ablation changes the scores
