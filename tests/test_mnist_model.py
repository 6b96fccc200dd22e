"""The gated residual MLP: forward passes, the layer-local readout, ablation, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.mnist.data import load_mnist_5k
from hedonic_neurons.mnist.model import (
    GatedMLPConfig,
    TrainConfig,
    accuracy,
    init_model,
    load_model,
    save_model,
    train_model,
)
from hedonic_neurons.mnist.players import (
    ablated_logits,
    ablation_accuracy,
    baseline_vector,
    layer_activations,
    layer_record,
    loss_deltas,
)
from tests.helpers import assert_close

CFG = GatedMLPConfig(d_in=784, d_model=12, d_hidden=8, n_blocks=3)

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py



@pytest.fixture(scope="module")
def tiny():
    model = init_model(CFG, seed=0)
    with torch.no_grad():  # make the LayerNorm affine non-trivial
        model.norm.weight.copy_(torch.linspace(0.5, 1.5, CFG.d_model))
        model.norm.bias.copy_(torch.linspace(-0.2, 0.2, CFG.d_model))
    rng = np.random.default_rng(0)
    x = rng.random((40, 784)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    return model, x, y


def _manual_residuals(model, x: torch.Tensor) -> list[torch.Tensor]:
    h = x @ model.embed.weight.T + model.embed.bias
    out = [h]
    for b in model.blocks:
        h = h + (F.silu(h @ b.w_gate.weight.T) * (h @ b.w_up.weight.T)) @ b.w_down.weight.T
        out.append(h)
    return out


def test_residuals_match_the_paper_formula(tiny) -> None:
    model, x, _ = tiny
    xt = torch.as_tensor(x)
    ref = _manual_residuals(model, xt)
    got = layer_activations(model, x)
    assert len(got) == CFG.n_layers == 4
    for a, b in zip(got, ref):
        assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        logits = model(xt)
        for layer in range(1, CFG.n_layers + 1):
            assert_close(model.forward_from(ref[layer - 1], layer), logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="layer"):
        model.forward_from(ref[0], 0)


def test_last_layer_readout_equals_model_logit(tiny) -> None:
    model, x, y = tiny
    rec = layer_record(model, x, y, CFG.n_layers)
    with torch.no_grad():
        logits = model(torch.as_tensor(x)).numpy()
    assert_close(rec.readout(rec.y, rec.target_index), logits[np.arange(40), y], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_earlier_layer_readout_is_cloned_head_after_final_norm(tiny, layer: int) -> None:
    model, x, y = tiny
    rec = layer_record(model, x, y, layer)
    with torch.no_grad():
        h = _manual_residuals(model, torch.as_tensor(x))[layer - 1]
        direct = model.head(model.norm(h))[torch.arange(40), torch.as_tensor(y)].numpy()
        # ablating players 1 and 5 in the record == zeroing those coordinates before the cloned head
        h_abl = h.clone()
        h_abl[:, [1, 5]] = 0
        direct_abl = model.head(model.norm(h_abl))[torch.arange(40), torch.as_tensor(y)].numpy()
    assert_close(rec.readout(rec.y, rec.target_index), direct, rtol=1e-5, atol=1e-5)
    assert_close(rec.ablated_readout([1, 5]), direct_abl, rtol=1e-5, atol=1e-5)
    assert rec.n_players == CFG.d_model and rec.readout.norm == "layer"


def test_mean_ablation_record_and_forward(tiny) -> None:
    model, x, y = tiny
    base = baseline_vector(model, 2, "mean", x)
    assert_close(base, layer_activations(model, x)[1].mean(0), rtol=1e-6, atol=1e-6)
    rec = layer_record(model, x, y, 2, baseline=base)
    h = torch.as_tensor(rec.h).clone()
    h[:, [0, 3]] = torch.as_tensor(base[[0, 3]])
    with torch.no_grad():
        direct = model.head(model.norm(h))[torch.arange(40), torch.as_tensor(y)].numpy()
        full = model.forward_from(h, 2)
    assert_close(rec.ablated_readout([0, 3]), direct, rtol=1e-5, atol=1e-5)
    assert_close(ablated_logits(model, rec.h, 2, [[0, 3]], base)[0], full, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="x_train"):
        baseline_vector(model, 2, "mean")


def test_ablation_propagates_through_the_rest(tiny) -> None:
    model, x, y = tiny
    h2 = layer_activations(model, x)[1]
    coalitions = [[], [0, 1], [4], list(range(12))]
    got = ablated_logits(model, h2, 2, coalitions, batch_size=50)  # forces several chunks
    for g, members in enumerate(coalitions):
        h = torch.as_tensor(h2).clone()
        h[:, members] = 0
        ref = h
        with torch.no_grad():
            for block in model.blocks[1:]:
                ref = block(ref)
            ref = model.head(model.norm(ref))
        assert_close(got[g], ref, rtol=1e-5, atol=1e-5)
    acc = ablation_accuracy(model, h2, y, 2, coalitions)
    assert acc[0] == pytest.approx(accuracy(model, x, y))


def test_loss_deltas_against_loop(tiny) -> None:
    model, x, y = tiny
    h3 = layer_activations(model, x)[2]
    got = loss_deltas(model, h3, y, 3, chunk=5)
    yt = torch.as_tensor(y)
    with torch.no_grad():
        base = F.cross_entropy(model.forward_from(torch.as_tensor(h3), 3), yt).item()
        ref = []
        for i in range(CFG.d_model):
            h = torch.as_tensor(h3).clone()
            h[:, i] = 0
            ref.append(F.cross_entropy(model.forward_from(h, 3), yt).item() - base)
    assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_reading_weights(tiny) -> None:
    model, _, _ = tiny
    w = model.reading_weights(1)
    assert w.shape == (2 * CFG.d_hidden, CFG.d_model)  # columns = players, as valuations.oca expects
    assert_close(w[: CFG.d_hidden], model.blocks[0].w_up.weight.detach(), rtol=0, atol=0)
    assert_close(w[CFG.d_hidden :], model.blocks[0].w_gate.weight.detach(), rtol=0, atol=0)
    assert_close(model.reading_weights(CFG.n_layers), model.head.weight.detach(), rtol=0, atol=0)


def test_seeded_init_is_local_and_reproducible() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = init_model(CFG, seed=5)
    after = torch.rand(1)
    b = init_model(CFG, seed=5)
    assert torch.equal(before, after)  # the global RNG is untouched
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_save_load_round_trip(tmp_path: Path, tiny) -> None:
    model, x, _ = tiny
    path = save_model(tmp_path / "m.safetensors", model, {"note": "x"})
    loaded, meta = load_model(path)
    assert meta == {"note": "x"}
    with torch.no_grad():
        assert_close(loaded(torch.as_tensor(x)), model(torch.as_tensor(x)), rtol=0, atol=0)
    with pytest.raises(ArtifactError, match=r"missing\.safetensors"):
        load_model(tmp_path / "missing.safetensors")


def test_one_epoch_on_500_images_beats_chance() -> None:
    data = load_mnist_5k()
    cfg = GatedMLPConfig(d_model=64, d_hidden=64, n_blocks=2)
    result = train_model(cfg, TrainConfig(epochs=1, batch_size=50, seed=0), data.x_train[:500], data.y_train[:500],
                         progress=False)
    acc = accuracy(result.model, data.x_test[:500], data.y_test[:500])
    assert acc > 0.5, acc  # chance is 0.1
    shuffled = train_model(cfg, TrainConfig(epochs=1, seed=0, shuffle_labels=True), data.x_train[:500],
                           data.y_train[:500], progress=False)
    assert accuracy(shuffled.model, data.x_test[:500], data.y_test[:500]) < 0.35


def test_shared_valuations_on_the_mnist_record(tiny) -> None:
    """valuations.pas / marginals / oca on an MNIST record against the record's brute force."""
    from hedonic_neurons import valuations

    model, x, y = tiny
    rec = layer_record(model, x, y, 2)
    f0 = rec.readout(rec.y, rec.target_index)
    single = [rec.ablated_readout([i]) for i in range(CFG.d_model)]
    ref = np.zeros((CFG.d_model, CFG.d_model))
    for i in range(CFG.d_model):
        for j in range(i + 1, CFG.d_model):
            ref[i, j] = ref[j, i] = np.mean(f0 - single[i] - single[j] + rec.ablated_readout([i, j]))
    phi = np.asarray(valuations.pas(rec, method="exact").values, dtype=np.float64)
    np.fill_diagonal(phi, 0.0)
    assert_close(phi, ref, rtol=1e-4, atol=1e-6)
    assert np.abs(ref).max() > 1e-4  # the LayerNorm readout is not linear: synergies are real
    assert_close(valuations.marginals(rec), [np.mean(f0 - s) for s in single], rtol=1e-5, atol=1e-7)
    w = model.reading_weights(2)
    oca = np.asarray(valuations.oca(rec, weights=w).values, dtype=np.float64)
    unit = w / np.linalg.norm(w, axis=0, keepdims=True)
    expected = (1 - np.abs(unit.T @ unit)) * np.corrcoef(rec.a.T.astype(np.float64))
    np.fill_diagonal(expected, 0.0)
    assert_close(oca, expected, rtol=1e-4, atol=1e-5)
