"""Tokenising (query, passage) pairs into batches for :func:`score` and :func:`capture`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch

from ..errors import InputError

__all__ = ["encode_pairs"]

PROMPT = "query: {query}, passage: {passage}"


def encode_pairs(
    tokenizer: Any,
    queries: Sequence[str],
    passages: Sequence[str],
    *,
    max_length: int = 256,
    batch_size: int = 8,
    labels: Sequence[float] | None = None,
    style: Literal["auto", "pair", "prompt"] = "auto",
) -> list[dict[str, torch.Tensor]]:
    """Tokenise query/passage pairs into a list of batches (dicts of tensors).

    Parameters
    ----------
    tokenizer : transformers tokenizer
    queries, passages : sequence of str, same length N
    max_length : int
        Truncation length in tokens (``"pair"``: the longer segment is truncated first,
        token by token, so a long query never makes encoding fail).
    batch_size : int
    labels : sequence of float, optional
        Task targets; each batch then carries ``labels`` (B,) float32.
    style : {"auto", "pair", "prompt"}
        ``"pair"``: the tokenizer's text-pair encoding ``[CLS] q [SEP] p [SEP]`` with
        ``token_type_ids`` (BERT-family encoders). ``"prompt"``: one string
        ``"query: {q}, passage: {p}"`` followed by the EOS token, so the last token a
        decoder pools at is EOS (as RankLLaMA, paper App. D). ``"auto"`` picks ``"pair"``
        when the tokenizer produces ``token_type_ids``, else ``"prompt"``.

    Returns
    -------
    list of dict
        ``input_ids``, ``attention_mask`` (B, T) (right padding), plus ``token_type_ids``
        for ``"pair"`` and ``labels`` when given. A tokenizer without a pad token gets its
        EOS token as pad.
    """
    if len(queries) != len(passages):
        raise InputError(f"queries, passages: expected the same length, got {len(queries)} and {len(passages)}.")
    if labels is not None and len(labels) != len(queries):
        raise InputError(f"labels: expected {len(queries)} values, got {len(labels)}.")
    if batch_size < 1 or max_length < 2:
        raise InputError(f"batch_size, max_length: expected >= 1 and >= 2, got {batch_size} and {max_length}.")
    if style == "auto":
        style = "pair" if "token_type_ids" in getattr(tokenizer, "model_input_names", []) else "prompt"
    if style not in ("pair", "prompt"):
        raise InputError(f"style: expected 'auto', 'pair' or 'prompt', got {style!r}.")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError("tokenizer: has neither a pad token nor an EOS token to pad with.")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    out: list[dict[str, torch.Tensor]] = []
    for s in range(0, len(queries), batch_size):
        q = [str(x) for x in queries[s : s + batch_size]]
        p = [str(x) for x in passages[s : s + batch_size]]
        if style == "pair":
            # longest_first never fails, even when a query alone exceeds max_length
            enc = tokenizer(q, p, padding=True, truncation="longest_first", max_length=max_length,
                            return_tensors="pt")
        else:
            eos = tokenizer.eos_token or ""
            texts = [PROMPT.format(query=a, passage=b) for a, b in zip(q, p)]
            enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length - 1 if eos else max_length,
                            return_tensors="pt", return_token_type_ids=False)
            if eos:  # append EOS after truncation so every row ends with it
                eos_id = tokenizer.convert_tokens_to_ids(eos)
                ids, mask = enc["input_ids"], enc["attention_mask"]
                lengths = mask.sum(-1)
                pad_id = tokenizer.pad_token_id
                ids = torch.cat([ids, torch.full((ids.shape[0], 1), pad_id, dtype=ids.dtype)], 1)
                mask = torch.cat([mask, torch.zeros((mask.shape[0], 1), dtype=mask.dtype)], 1)
                rows = torch.arange(ids.shape[0])
                ids[rows, lengths] = eos_id
                mask[rows, lengths] = 1
                enc = {"input_ids": ids, "attention_mask": mask}
        batch = {k: v for k, v in dict(enc).items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if labels is not None:
            batch["labels"] = torch.tensor([float(x) for x in labels[s : s + batch_size]], dtype=torch.float32)
        out.append(batch)
    return out


def load_tokenizer(path: str | os.PathLike[str], *, local_files_only: bool = True,
                   trust_remote_code: bool = False) -> Any:
    """The tokenizer stored at ``path``, with a pad token (EOS, else UNK) when it has none.

    Parameters
    ----------
    path : str or PathLike
        A local model directory (or, with ``local_files_only=False``, a hub id), or the
        packaged model name ``"smollm2"``.
    local_files_only : bool
        Never touch the network (the default).
    trust_remote_code : bool
        Passed to ``AutoTokenizer``; off by default (no remote code runs).
    """
    from transformers import AutoTokenizer

    from .smollm2 import resolve

    tok = AutoTokenizer.from_pretrained(str(resolve(path)), local_files_only=local_files_only,
                                        trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok
