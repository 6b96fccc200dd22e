"""capture(): the right tensors at the pooled position, streamed shards and resume."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from hedonic_neurons.errors import ArtifactError
from hedonic_neurons.models import architecture, pooled_positions, score
from hedonic_neurons.models.capture import capture, load_records
from tests.helpers import assert_close
from tests.tiny_models import FAMILIES, one_thread, random_batches, tiny_model


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_a_equals_down_proj_input_and_h_y_hooks(family: str, padding_side: str) -> None:
    """The gated trap: ``a`` must be the input of down_proj, not gate_proj's or act_fn's output."""
    model = tiny_model(family, intermediate=24, n_layers=3)
    spec = architecture(model)
    batches = random_batches(model, 2, 3, 6, seed=2, padding_side=padding_side)
    rec = capture(model, batches, [1, 2], progress=False)
    seen: dict[str, list[torch.Tensor]] = {"down": [], "mlp_out": []}
    down = spec.sub(model, 2, spec.down_proj)
    h1 = down.register_forward_pre_hook(lambda m, args: seen["down"].append(args[0].detach()))
    try:
        with torch.no_grad():
            for b in batches:
                score(model, b)
    finally:
        h1.remove()
    pooled = []
    for b, x in zip(batches, seen["down"]):
        pos = pooled_positions(b["attention_mask"], spec.pooling)
        pooled.append(x[torch.arange(x.shape[0]), pos])
    assert_close(rec[2].a, torch.cat(pooled), rtol=1e-5, atol=1e-6)
    assert rec[2].a.dtype == np.float32 and rec[2].a.shape == (6, 24)
    # a_base differs from a (LoRA is non-zero) and the record's ablation identity holds at 0 players
    assert np.abs(rec[2].a - rec[2].a_base).max() > 1e-4
    if family == "gpt_neox":  # last layer readout through the final LayerNorm = the model's score
        rec3 = capture(model, batches, [2], progress=False)[2]
        model_last = tiny_model(family, intermediate=24, n_layers=3)
        s = torch.cat([score(model_last, b) for b in batches]).detach().numpy()
        assert_close(rec3.readout(rec3.y), s, rtol=1e-4, atol=1e-5)


class _Interrupt(Exception):
    pass


def _interrupting(batches, stop_after):
    for i, b in enumerate(batches):
        if i == stop_after:
            raise _Interrupt
        yield b


def test_resume_after_interruption_equals_uninterrupted(tmp_path) -> None:
    model = tiny_model("llama", intermediate=16, n_layers=3)
    batches = random_batches(model, 5, 3, 6, seed=4)
    labels = np.arange(15, dtype=np.float64)
    full = capture(model, batches, [0, 2], tmp_path / "full", labels=labels, progress=False)
    with pytest.raises(_Interrupt):
        capture(model, _interrupting(batches, 3), [0, 2], tmp_path / "part", labels=labels, progress=False)
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert len(manifest["shards"]) == 3 and not manifest["complete"]
    resumed = capture(model, batches, [0, 2], tmp_path / "part", labels=labels, progress=False)
    mem = capture(model, batches, [0, 2], labels=labels, progress=False)
    for layer in (0, 2):
        for name in ("h", "a", "a_base", "y", "w_down", "w_down_base", "w_read", "labels", "delta_left"):
            np.testing.assert_array_equal(getattr(resumed[layer], name), getattr(full[layer], name))
            np.testing.assert_array_equal(getattr(mem[layer], name), getattr(full[layer], name))
        assert resumed[layer].n_inputs == 15
    again = load_records(tmp_path / "part", [2])[2]
    np.testing.assert_array_equal(again.a, full[2].a)


def test_resume_refuses_other_batches_and_load_detects_truncation(tmp_path) -> None:
    model = tiny_model("bert", intermediate=16, n_layers=3)
    batches = random_batches(model, 3, 2, 5, seed=5)
    capture(model, batches, [1], tmp_path, progress=False)
    other = random_batches(model, 3, 2, 5, seed=6)
    with pytest.raises(ArtifactError, match="differs"):
        capture(model, other, [1], tmp_path, progress=False)
    mpath = tmp_path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["shards"][1]["rows"] = 3
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        load_records(tmp_path)
