"""First-order OOD drop of every coalition (attribution patching) and exact ablation with prefix reuse
(models/attribution.py, metrics/ood_estimate.py).

References are slow and obvious: the full forward pass under ``ablate`` per coalition, the
per-neuron ``δ_k(t)`` read off the real MLP output with and without ``ablate``, a loop over
coalitions, and the metric functions of ``metrics/ood.py`` called directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import torch

from hedonic_neurons.errors import InputError
from hedonic_neurons.metrics.ood import ndcg_at_10, neg_mse, task_metric
from hedonic_neurons.metrics.ood_estimate import (
    VerificationResult,
    estimated_ood_drop,
    metric_drops,
    stratified_coalition_sample,
    verify_estimates,
)
from hedonic_neurons.models import architecture, score
from hedonic_neurons.models.ablation import ablate
from hedonic_neurons.models.attribution import (
    coalition_scores,
    estimate_coalition_scores,
    estimated_scores_from_attributions,
    exact_coalition_scores,
    membership_matrix,
    neuron_attributions,
)
from hedonic_neurons.partition import Partition
from tests.helpers import assert_close
from tests.tiny_models import FAMILIES, one_thread, random_batches, tiny_model

LAYER = 1
COALITIONS = [[0], [1, 2, 3], list(range(10, 30)), [5, 40, 63], list(range(64))]


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _full_forward_ablation(model: Any, batches: list[dict[str, torch.Tensor]], layer: int,
                           coalitions: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The obvious reference: the whole model under ``ablate`` once per coalition and batch."""
    with torch.no_grad():
        base = np.concatenate([score(model, b).double().numpy() for b in batches])
        out = np.empty((base.size, len(coalitions)))
        for c, members in enumerate(coalitions):
            with ablate(model, {layer: members}):
                out[:, c] = np.concatenate([score(model, b).double().numpy() for b in batches])
    return base, out


# ----------------------------------------------------------------------------- exact, prefix reuse
@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_reuse_is_bit_identical_to_full_forward(family: str) -> None:
    model = tiny_model(family, dtype=torch.float64)
    batches = random_batches(model, 2, 4, 7, seed=3)
    base_ref, ref = _full_forward_ablation(model, batches, LAYER, COALITIONS)
    base, got = exact_coalition_scores(model, batches, LAYER, COALITIONS, return_base=True)
    assert np.array_equal(base, base_ref)
    assert np.array_equal(got, ref)
    assert not np.allclose(got, base[:, None])  # the ablations do change the scores


@pytest.mark.parametrize(("family", "padding_side", "layer"), [("llama", "left", 2), ("gpt_neox", "right", 0),
                                                               ("bert", "right", 2)])
def test_prefix_reuse_bit_identical_float32_other_layers_and_padding(family: str, padding_side: str,
                                                                       layer: int) -> None:
    model = tiny_model(family, lora_layers=(0, 1, 2))
    batches = random_batches(model, 2, 5, 6, seed=4, padding_side=padding_side)
    _, ref = _full_forward_ablation(model, batches, layer, COALITIONS)
    assert np.array_equal(exact_coalition_scores(model, batches, layer, COALITIONS), ref)


# ----------------------------------------------------------------------------- attributions
def _per_neuron_reference(model: Any, batch: dict[str, torch.Tensor], layer: int) -> np.ndarray:
    """``e_k = Σ_t g_t^T δ_k(t)``, δ_k(t) read off the real MLP output with neuron k ablated alone."""
    spec = architecture(model)
    down = spec.sub(model, layer, spec.down_proj)
    seen: dict[str, torch.Tensor] = {}

    def keep_output(module: Any, args: Any, output: torch.Tensor) -> None:
        seen["out"] = output.detach().clone()

    def keep_grad(module: Any, args: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        seen["z"] = output

    handle = down.register_forward_hook(keep_grad)
    try:
        score(model, batch).sum().backward()
    finally:
        handle.remove()
    model.zero_grad(set_to_none=True)
    g = seen["z"].grad.detach()  # (B, T, d)
    handle = down.register_forward_hook(keep_output)
    try:
        with torch.no_grad():
            score(model, batch)
            out = seen["out"]
            e = np.empty((g.shape[0], spec.d_ff))
            for k in range(spec.d_ff):
                with ablate(model, {layer: [k]}):
                    score(model, batch)
                delta = out - seen["out"]  # δ_k(t) at every position, (B, T, d)
                e[:, k] = (g * delta).sum(dim=(1, 2)).numpy()
    finally:
        handle.remove()
    return e


@pytest.mark.parametrize("family", FAMILIES)
def test_attributions_equal_per_neuron_loop(family: str) -> None:
    model = tiny_model(family, dtype=torch.float64)
    batches = random_batches(model, 2, 3, 6, seed=5)
    ref = np.concatenate([_per_neuron_reference(model, b, LAYER) for b in batches])
    got = neuron_attributions(model, batches, LAYER)
    assert got.shape == (6, architecture(model).d_ff) and got.dtype == np.float64
    assert_close(got, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max(), msg=family)
    assert np.abs(ref).max() > 1e-4  # not a trivially zero comparison


def test_estimate_is_base_minus_sum_of_member_attributions() -> None:
    model = tiny_model("llama", dtype=torch.float64)
    batches = random_batches(model, 2, 3, 6, seed=6)
    e = neuron_attributions(model, batches, LAYER)
    base, _ = _full_forward_ablation(model, batches, LAYER, [])
    est = estimate_coalition_scores(model, batches, LAYER, COALITIONS)
    loop = np.stack([base - e[:, members].sum(axis=1) for members in COALITIONS], axis=1)
    assert_close(est, loop, rtol=0, atol=1e-12)
    # overlapping coalitions and duplicated indices: each neuron counts once
    assert_close(estimated_scores_from_attributions(base, e, [[3, 3, 4]]), (base - e[:, 3] - e[:, 4])[:, None],
                 rtol=0, atol=1e-12)
    m = membership_matrix([np.array([0, 2]), np.array([2])], 4).toarray()
    assert np.array_equal(m, [[1, 0], [0, 0], [1, 1], [0, 0]])


# ----------------------------------------------------------------------------- first order
def _first_order_error(family: str, scale: float) -> tuple[float, float]:
    model = tiny_model(family, dtype=torch.float64, lora_scale=scale)
    batches = random_batches(model, 1, 4, 6, seed=7)
    est = estimate_coalition_scores(model, batches, LAYER, COALITIONS)
    base, exact = exact_coalition_scores(model, batches, LAYER, COALITIONS, return_base=True)
    return float(np.abs(est - exact).max()), float(np.abs(base[:, None] - exact).max())


@pytest.mark.parametrize(("family", "scales"), [("gpt_neox", (1e-1, 1e-2, 1e-3)), ("bert", (1e-1, 1e-2, 1e-3)),
                                                ("llama", (1e-1, 1e-2))])
def test_first_order_error_shrinks_quadratically(family: str, scales: tuple[float, ...]) -> None:
    """Score changes scale like s, the estimate's error like s² (δ_k is linear in the LoRA scale s).

    LLaMA stops at 1e-2: Hugging Face's RMSNorm computes in float32 even in a float64 model,
    so below ~1e-8 the exact scores themselves are float32 rounding.
    """
    errors, changes = zip(*(_first_order_error(family, s) for s in scales))
    for (e0, e1), (c0, c1) in zip(pairwise(errors), pairwise(changes)):
        assert 5 < c0 / c1 < 20  # changes are first order in s
        assert 30 < e0 / e1 < 300, (family, errors)  # errors are second order
    assert errors[-1] < 1e-2 * changes[-1]


# ----------------------------------------------------------------------------- metric
def _ranking_data(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    qids = [f"q{i // 4}" for i in range(n)]
    return {"qids": qids, "docids": [f"d{i}" for i in range(n)], "targets": rng.integers(0, 3, n)}


def test_metric_from_estimated_scores_equals_metric_function() -> None:
    model = tiny_model("gpt_neox", dtype=torch.float64)
    batches = random_batches(model, 3, 4, 6, seed=8)
    est = estimate_coalition_scores(model, batches, LAYER, COALITIONS)
    base, _ = _full_forward_ablation(model, batches, LAYER, [])
    data = _ranking_data(12, seed=1)
    frame = estimated_ood_drop(model, batches, LAYER, COALITIONS, task="relevance", **data)
    assert list(frame.columns) == ["layer", "coalition", "size", "metric", "metric_full", "metric_ablated", "drop"]
    assert frame["size"].tolist() == [len(set(c)) for c in COALITIONS]
    full = ndcg_at_10(data["qids"], data["docids"], base, data["targets"])
    for c in range(len(COALITIONS)):
        m_c = ndcg_at_10(data["qids"], data["docids"], est[:, c], data["targets"])
        assert frame["metric_ablated"][c] == pytest.approx(m_c, abs=1e-15)
        assert frame["drop"][c] == pytest.approx(full - m_c, abs=1e-15)
    targets = np.random.default_rng(2).normal(size=12)
    frame = estimated_ood_drop(model, batches, LAYER, COALITIONS, task="cqtr", targets=targets)
    for c in range(len(COALITIONS)):
        assert frame["metric_ablated"][c] == pytest.approx(neg_mse(est[:, c], targets), abs=1e-15)
    # metric_drops is the same metric on any score matrix
    scores = np.random.default_rng(3).normal(size=(12, 3))
    full, drops = metric_drops(scores[:, 0], scores, task="mean_tf_l", targets=targets)
    assert full == task_metric("mean_tf_l", scores[:, 0], targets=targets) and drops[0] == 0.0
    assert drops[2] == pytest.approx(full - neg_mse(scores[:, 2], targets), abs=1e-15)


def test_precomputed_attributions_skip_the_model() -> None:
    model = tiny_model("bert", dtype=torch.float64)
    batches = random_batches(model, 2, 4, 6, seed=9)
    targets = np.random.default_rng(4).normal(size=8)
    e = neuron_attributions(model, batches, LAYER)
    base, _ = _full_forward_ablation(model, batches, LAYER, [])
    a = estimated_ood_drop(model, batches, LAYER, COALITIONS, task="cqtr", targets=targets)
    b = estimated_ood_drop(model, [], LAYER, COALITIONS, task="cqtr", targets=targets, base_scores=base,
                           attributions=e)
    assert_close(a["drop"], b["drop"], rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- verification
def test_verify_estimates_agrees_with_its_parts() -> None:
    model = tiny_model("gpt_neox", dtype=torch.float64, lora_scale=0.1, intermediate=32)
    batches = random_batches(model, 2, 6, 6, seed=10)
    targets = np.random.default_rng(5).normal(size=12)
    rng = np.random.default_rng(0)
    part = Partition.from_labels(rng.integers(0, 12, 32))
    res = verify_estimates(model, batches, LAYER, part, task="cqtr", targets=targets, n_sample=6, seed=1)
    assert isinstance(res, VerificationResult) and res.n_coalitions == part.n_coalitions
    assert res.coalitions.size == 6 and np.array_equal(res.sizes, part.sizes[res.coalitions])
    members = [part.coalitions[c] for c in res.coalitions]
    base, exact = exact_coalition_scores(model, batches, LAYER, members, return_base=True)
    full, drops = metric_drops(base, exact, task="cqtr", targets=targets)
    assert res.metric == "neg_mse" and res.metric_full == full
    assert np.array_equal(res.drop_exact, drops)
    est = estimated_ood_drop(model, batches, LAYER, part, task="cqtr", targets=targets)
    assert_close(res.drop_estimated, est["drop"].to_numpy()[res.coalitions], rtol=0, atol=1e-14)
    assert res.spearman > 0.9 and res.score_rel_error < 0.1
    assert res.abs_error == pytest.approx(np.abs(res.drop_estimated - drops).mean())
    again = verify_estimates(model, batches, LAYER, part, task="cqtr", targets=targets, n_sample=6, seed=1)
    assert np.array_equal(again.coalitions, res.coalitions)
    d = res.to_dict()
    assert d["coalitions"] == res.coalitions.tolist() and d["seconds_exact_all"] >= res.seconds_exact
    assert "Spearman" in str(res)
    assert json.loads(res.to_json())["drop_exact"] == res.drop_exact.tolist()


def test_one_pass_equals_the_separate_passes() -> None:
    model = tiny_model("mistral", dtype=torch.float64)
    batches = random_batches(model, 2, 3, 6, seed=14)
    res = coalition_scores(model, batches, LAYER, exact=COALITIONS)
    base, exact = exact_coalition_scores(model, batches, LAYER, COALITIONS, return_base=True)
    assert np.array_equal(res.base_scores, base) and np.array_equal(res.exact_scores, exact)
    assert np.array_equal(res.attributions, neuron_attributions(model, batches, LAYER))
    assert np.array_equal(res.estimated(COALITIONS), estimate_coalition_scores(model, batches, LAYER, COALITIONS))
    assert coalition_scores(model, batches, LAYER).exact_scores.shape == (6, 0)


def test_stratified_sample_covers_every_size_stratum() -> None:
    sizes = np.array([1] * 200 + [2] * 50 + [8] * 5 + [40] * 2)
    s = stratified_coalition_sample(sizes, 12, seed=0)
    assert s.size == 12 and np.unique(s).size == 12 and np.all(np.diff(s) > 0)
    assert set(sizes[s]) == {1, 2, 8, 40}
    assert (sizes[s] == 40).sum() == 2  # a small stratum is taken whole, its share goes to the others
    assert np.array_equal(s, stratified_coalition_sample(sizes, 12, seed=0))
    assert not np.array_equal(s, stratified_coalition_sample(sizes, 12, seed=1))
    assert np.array_equal(stratified_coalition_sample(sizes[:5], 12, seed=0), np.arange(5))
    many = np.arange(1, 101)  # more distinct sizes than strata: quantile bins
    picked = many[stratified_coalition_sample(many, 10, seed=0, n_strata=5)]
    assert np.histogram(picked, bins=[0, 20.5, 40.5, 60.5, 80.5, 101])[0].min() >= 1


# ----------------------------------------------------------------------------- hygiene and errors
def test_model_state_is_left_unchanged() -> None:
    model = tiny_model("llama")
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    batches = random_batches(model, 1, 3, 5, seed=11)
    neuron_attributions(model, batches, LAYER)
    exact_coalition_scores(model, batches, LAYER, COALITIONS)
    assert model.training
    assert {k: p.requires_grad for k, p in model.named_parameters()} == grads
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_errors_are_early_and_specific() -> None:
    model = tiny_model("llama", lora_layers=(1,))
    batches = random_batches(model, 1, 2, 4, seed=12)
    with pytest.raises(InputError, match="layer 2 has no active LoRA"):
        neuron_attributions(model, batches, 2)
    with pytest.raises(InputError, match=r"layer: expected an int in \[0, 4\)"):
        neuron_attributions(model, batches, 7)
    with pytest.raises(InputError, match=r"coalitions\[1\]: expected indices in \[0, 64\)"):
        estimate_coalition_scores(model, batches, LAYER, [[0], [64]])
    with pytest.raises(InputError, match=r"coalitions\[0\]: expected a non-empty"):
        exact_coalition_scores(model, batches, LAYER, [[]])
    with pytest.raises(InputError, match="the partition has 10 players"):
        exact_coalition_scores(model, batches, LAYER, Partition.from_labels(np.zeros(10, dtype=int)))
    with pytest.raises(InputError, match="device: the model's parameters are on cpu"):
        neuron_attributions(model, batches, LAYER, device="meta")
    with pytest.raises(InputError, match="batches: expected at least one batch"):
        neuron_attributions(model, [], LAYER)
    with pytest.raises(InputError, match="task: expected one of"):
        estimated_ood_drop(model, batches, LAYER, [[0]], task="accuracy")
    with pytest.raises(InputError, match="base_scores, attributions: expected shapes"):
        estimated_scores_from_attributions(np.zeros(3), np.zeros((4, 64)), [[0]])


def test_replay_that_differs_from_the_forward_pass_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from hedonic_neurons.errors import UnsupportedModelError
    from hedonic_neurons.models import attribution

    model = tiny_model("llama", dtype=torch.float64)
    batches = random_batches(model, 1, 3, 5, seed=13)
    run = attribution._Suffix.run
    monkeypatch.setattr(attribution._Suffix, "run", lambda self: run(self) * (1 + 1e-15) + 1e-15)
    with pytest.raises(UnsupportedModelError, match="does not reproduce the forward pass"):
        exact_coalition_scores(model, batches, LAYER, [[0]])
    exact_coalition_scores(model, batches, LAYER, [[0]], check_replay=False)
