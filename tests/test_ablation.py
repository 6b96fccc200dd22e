"""ablate(): LoRA masking reverts neurons to base and restores parameters bit for bit."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from hedonic_neurons.errors import InputError
from hedonic_neurons.models.ablation import ablate
from hedonic_neurons.models.capture import capture
from hedonic_neurons.models.readout import local_readout
from tests.helpers import assert_close
from tests.tiny_models import FAMILIES, one_thread, random_batches, tiny_model


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "bert"])
def test_restores_bit_identical_and_after_exception(family: str) -> None:
    model = tiny_model(family, intermediate=16, n_layers=3)
    before = _state(model)
    with ablate(model, {1: [0, 3, 7], 2: np.array([5])}):
        changed = _state(model)
        assert any(not torch.equal(before[k], changed[k]) for k in before)
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(RuntimeError, match="boom"), ablate(model, {1: [1, 2]}):
        raise RuntimeError("boom")
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_masks_rows_of_lora_b_and_columns_of_lora_a() -> None:
    model = tiny_model("llama", intermediate=16, n_layers=3)
    mlp = model.base_model.model.model.layers[1].mlp
    with ablate(model, {1: [4]}):
        assert torch.all(mlp.up_proj.lora_B["default"].weight[4] == 0)
        assert torch.all(mlp.gate_proj.lora_B["default"].weight[4] == 0)
        assert torch.all(mlp.down_proj.lora_A["default"].weight[:, 4] == 0)
        assert torch.any(mlp.up_proj.lora_B["default"].weight[3] != 0)
        assert torch.any(mlp.down_proj.lora_A["default"].weight[:, 3] != 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_ablated_readout_matches_record_reference(family: str) -> None:
    """A real ablated forward pass equals y - Σ δ_k from the record ((R1) of docs/method.md)."""
    model = tiny_model(family, dtype=torch.float64, intermediate=16, n_layers=3)
    batches = random_batches(model, 1, 5, 6, seed=1)
    rec = capture(model, batches, [1], progress=False, dtype=np.float64)[1]
    got = local_readout(model, batches, 1, ablation={1: [2, 9, 11]})
    assert_close(got, rec.ablated_readout([2, 9, 11]), rtol=1e-10, atol=1e-12)


def test_rejects_bad_indices_and_layers_without_lora() -> None:
    model = tiny_model("gpt_neox", intermediate=16, n_layers=3, lora_layers=(1,))
    with pytest.raises(InputError, match="neurons"), ablate(model, {1: [16]}):
        pass
    with pytest.raises(InputError, match="no active LoRA"), ablate(model, {0: [1]}):
        pass
    with pytest.raises(InputError, match="out of range"), ablate(model, {7: [1]}):
        pass
