"""load_scalar_model / architecture / score on tiny real models and the offline MiniLM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from hedonic_neurons.errors import InputError, UnsupportedModelError
from hedonic_neurons.models import architecture, load_scalar_model, score
from tests.helpers import assert_close
from tests.tiny_models import (
    FAMILIES,
    minilm_dir,
    minilm_tokenizer,
    one_thread,
    random_batches,
    tiny_model,
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.mark.parametrize("family", FAMILIES)
def test_arch_spec_and_score(family: str) -> None:
    model = tiny_model(family, n_layers=3)
    spec = architecture(model)
    assert spec.family == family
    assert spec.gated == (family in ("llama", "mistral"))
    assert spec.norm == ("rms" if spec.gated else "layer")
    assert spec.post_norm == (family == "bert")
    out = score(model, random_batches(model, 1, 3, 5, seed=0)[0])
    assert out.shape == (3,) and torch.isfinite(out).all()
    if family != "bert":  # agrees with transformers' own sequence-classification head (right padding)
        b = random_batches(model, 1, 3, 5, seed=0)[0]
        with torch.no_grad():
            ref = model(**b).logits[:, 0]
        assert_close(score(model, b).detach(), ref, rtol=1e-5, atol=1e-6)


def test_unsupported_family_lists_supported() -> None:
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(UnsupportedModelError, match="llama, mistral, gpt_neox, bert"):
        load_scalar_model(GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2)))


def test_adapter_and_head_roundtrip(tmp_path) -> None:
    model = tiny_model("bert", n_layers=3, seed=3)
    with torch.no_grad():
        architecture(model).head_module(model).weight.mul_(3.0)
    model.save_pretrained(tmp_path / "adapter")
    base = model.get_base_model()
    from transformers import BertModel

    fresh = BertModel(base.config, add_pooling_layer=False)
    fresh.load_state_dict({k[5:]: v for k, v in base.state_dict().items()
                           if k.startswith("bert.") and "lora" not in k and "base_layer" not in k},
                          strict=False)
    # base weights of the LoRA-wrapped linears live under base_layer
    with torch.no_grad():
        for name, p in fresh.named_parameters():
            src = dict(base.named_parameters()).get("bert." + name.replace(".weight", ".base_layer.weight")
                                                    .replace(".bias", ".base_layer.bias"))
            if src is not None:
                p.copy_(src)
    loaded = load_scalar_model(fresh, tmp_path / "adapter")
    b = random_batches(model, 1, 4, 6, seed=1)[0]
    assert_close(score(loaded, b).detach(), score(model, b).detach(), rtol=1e-6, atol=1e-7)


def test_minilm_offline_with_fresh_head_and_lora() -> None:
    m1 = load_scalar_model(minilm_dir(), lora={"r": 4, "alpha": 8}, layers=[2, 3], seed=7)
    m2 = load_scalar_model(minilm_dir(), lora={"r": 4, "alpha": 8}, layers=[2, 3], seed=7)
    spec = architecture(m1)
    assert spec.family == "bert" and spec.d_model == 384 and spec.n_layers == 6
    names = [n for n, _ in m1.named_modules() if n.endswith("lora_A")]
    assert len(names) == 4 and all("attention" not in n for n in names)
    tok = minilm_tokenizer()
    b = tok(["what is a hash map"], ["a dictionary keyed by hashes"], return_tensors="pt")
    assert_close(score(m1, b).detach(), score(m2, b).detach(), rtol=0, atol=0)


def test_argument_errors() -> None:
    with pytest.raises(InputError, match="lora"):
        load_scalar_model(minilm_dir(), lora={"rank": 4})
    with pytest.raises(InputError, match="layers"):
        load_scalar_model(minilm_dir(), lora={"r": 4}, layers=[9])


def test_encode_pairs_styles_and_long_queries() -> None:
    from hedonic_neurons.models import encode_pairs

    tok = minilm_tokenizer()
    long_q = " ".join(["token"] * 60)
    batches = encode_pairs(tok, [long_q, "short"], ["a passage", "another passage here"], max_length=16,
                           batch_size=1, labels=[1.0, 0.0])
    assert len(batches) == 2 and batches[0]["input_ids"].shape[1] <= 16
    assert "token_type_ids" in batches[0] and float(batches[1]["labels"][0]) == 0.0
    prompt = encode_pairs(tok, ["q"], ["p"], style="prompt", max_length=16)[0]
    assert "token_type_ids" not in prompt
    text = tok.decode(prompt["input_ids"][0])
    assert "query : q, passage : p" in text
    with pytest.raises(InputError, match="same length"):
        encode_pairs(tok, ["q"], [], max_length=16)


def test_device_map_cpu_matches_plain_load_and_is_exclusive_with_device() -> None:
    pytest.importorskip("accelerate")
    plain = load_scalar_model(minilm_dir(), lora={"r": 4}, layers=[2], seed=3)
    mapped = load_scalar_model(minilm_dir(), lora={"r": 4}, layers=[2], seed=3, device_map={"": "cpu"})
    b = minilm_tokenizer()(["a query"], ["a passage"], return_tensors="pt")
    assert_close(score(mapped, b).detach(), score(plain, b).detach(), rtol=0, atol=0)
    with pytest.raises(InputError, match="device_map"):
        load_scalar_model(minilm_dir(), device="cpu", device_map="auto")
