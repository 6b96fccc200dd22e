"""LoRA fine-tuning of a scalar model for the paper's IR tasks (§4, App. F).

The model comes from :func:`hedonic_neurons.models.load_scalar_model` with LoRA on the
MLP modules of a layer range; everything else is frozen except the scalar head. Losses:

- ``"cqtr"`` and ``"mean_tf_l"``: mean squared error between the model's score and the
  target (App. D), as in App. F.
- ``"relevance"``: the standard re-ranker loss of RankLLaMA / Tevatron: for each query,
  one positive passage and ``n_negatives`` hard negatives (non-relevant passages of the
  same query, topped up with passages of other queries when a query has too few) are
  scored, and the loss is the softmax cross-entropy of the positive among them.

The effective batch (``config.batch_size``; queries for relevance, pairs otherwise) is
reached by gradient accumulation over micro-batches. Checkpoints are atomic directories
holding the trainable tensors (safetensors), the AdamW moment tensors (safetensors) and
the scalars (step, scheduler, RNG state) as JSON, so nothing is pickled; training resumes
from the last one. The final adapter is saved in PEFT's format (``save_pretrained``) with
the head next to it. Validation loss and NDCG@10 (``ir_measures``) go to ``log.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import write_json
from ..provenance import provenance
from ._checkpoint import _load_checkpoint, _log, _save_checkpoint, save_adapter

__all__ = ["FinetuneResult", "finetune", "regression_targets", "relevance_groups", "trainable_parameters"]

TASKS = ("cqtr", "mean_tf_l", "relevance")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning hyper-parameters (paper §4 and App. F).

    Attributes
    ----------
    enabled : bool
        Fine-tune a fresh adapter (true) or load ``model.adapter`` (false).
    lr, weight_decay : float
        AdamW learning rate (2e-4 in the paper) and weight decay.
    head_lr : float or None
        Learning rate of the scalar head (``None``: ``lr``). A fresh head on a model whose
        final norm has a few very large channels (SmolLM2: |x_i| up to ~40) moves the score by
        about ``lr · ‖x‖₁`` per AdamW step, so a rate that suits the LoRA factors makes the
        head's score jump by a large fraction of the target's range; a smaller ``head_lr``
        lets head and adapter converge together (docs/smollm2.md).
    batch_size : int
        Effective batch (128 in the paper), reached by gradient accumulation over
        micro-batches of ``micro_batch_size``. For ``relevance`` it counts queries, each
        with one positive and ``n_negatives`` hard negatives.
    epochs : float
        Passes over the training pairs (3 in §4; App. F: 0.3 for CQTR / Mean-TF/L,
        1 for the re-rankers). Fractions stop mid-epoch.
    max_steps : int or None
        Optimizer steps cap (overrides ``epochs`` when smaller).
    warmup_ratio : float
        0 (default): constant learning rate. Otherwise a linear warm-up over this fraction
        of the steps, then a linear decay to 0.
    n_negatives : int
        Hard negatives per query for the relevance (softmax cross-entropy) loss.
    eval_every, checkpoint_every : int
        Optimizer steps between validation passes / checkpoints (0: only at the end).
    seed : int
    """

    enabled: bool = True
    lr: float = 2e-4
    head_lr: float | None = None
    weight_decay: float = 0.0
    batch_size: int = 128
    micro_batch_size: int = 8
    epochs: float = 3.0
    max_steps: int | None = None
    warmup_ratio: float = 0.0
    n_negatives: int = 7
    eval_every: int = 0
    checkpoint_every: int = 100
    max_grad_norm: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes
    ----------
    adapter_dir : pathlib.Path
        PEFT adapter directory (``adapter_config.json``, ``adapter_model.safetensors``)
        plus ``head.safetensors`` (the trained scalar head).
    steps : int
        Optimizer steps taken in total (including those before a resume).
    train_loss : list[float]
        Mean loss of each optimizer step, in order (only the steps run in this call
        after a resume).
    history : list[dict]
        Every line written to ``log.jsonl``.
    initial_val : dict
        Validation metrics before training (``loss``, ``ndcg@10`` when defined).
    final_val : dict
        Validation metrics after training.
    resumed_from : int or None
        Step of the checkpoint training resumed from.
    log_path : pathlib.Path
    """

    adapter_dir: Path
    steps: int
    train_loss: list[float]
    history: list[dict[str, Any]]
    initial_val: dict[str, float | None]
    final_val: dict[str, float | None]
    resumed_from: int | None
    log_path: Path
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- data
def regression_targets(pairs: Any, task: str) -> np.ndarray:
    """Targets of a scalar IR task for each pair (App. D), shape (N,).

    Uses a ``target`` column when the DataFrame has one, else computes
    :func:`hedonic_neurons.ir.cqtr` or :func:`hedonic_neurons.ir.mean_tf_l` per pair.
    """
    if "target" in pairs.columns:
        return pairs["target"].to_numpy(dtype=np.float64)
    if task not in ("cqtr", "mean_tf_l"):
        raise InputError(f"task: expected 'cqtr' or 'mean_tf_l' for regression targets, got {task!r}.")
    from ..ir.targets import compute_targets

    return np.asarray(compute_targets(pairs, task), dtype=np.float64)


def relevance_groups(pairs: Any, n_negatives: int, seed: int | np.random.Generator) -> list[tuple[int, list[int]]]:
    """Training groups for the re-ranker loss: ``(positive row, [negative rows])`` per query.

    Every query with a positive (``relevance > 0``) gives one group per positive.
    Negatives are the query's own non-relevant pairs (hard negatives), topped up with
    random pairs of other queries so each group has exactly ``n_negatives``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rel = pairs["relevance"].to_numpy()
    qids = pairs["qid"].astype(str).to_numpy()
    groups: list[tuple[int, list[int]]] = []
    by_q: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        by_q.setdefault(q, []).append(i)
    all_rows = np.arange(len(qids))
    for q, rows in by_q.items():
        pos = [r for r in rows if rel[r] > 0]
        neg = [r for r in rows if rel[r] <= 0]
        for p in pos:
            chosen = list(rng.permutation(neg)[:n_negatives]) if neg else []
            while len(chosen) < n_negatives:
                r = int(all_rows[rng.integers(len(all_rows))])
                if qids[r] != q:
                    chosen.append(r)
            groups.append((p, [int(c) for c in chosen]))
    if not groups:
        raise InputError("pairs: the relevance task needs pairs with relevance > 0; none found.")
    return groups


# ---------------------------------------------------------------------- model plumbing
def trainable_parameters(model: Any) -> dict[str, Any]:
    """Freeze everything except LoRA factors and the scalar head; return the trainable ones.

    The head is whatever :func:`hedonic_neurons.models.scalar_head_parameter_names`
    names when available, else parameters whose name contains ``"score"`` or
    ``"classifier"`` (the Hugging Face sequence-classification heads).
    """
    head_names = _head_names(model)
    trainable = {}
    for name, p in model.named_parameters():
        keep = "lora_" in name or name in head_names
        p.requires_grad_(keep)
        if keep:
            trainable[name] = p
    if not any("lora_" in n for n in trainable):
        raise InputError("model: no LoRA parameters found; load it with load_scalar_model(..., lora=...).")
    return trainable


def _head_names(model: Any) -> set[str]:
    all_names = [name for name, _ in model.named_parameters()]
    saved = {n for n in all_names if ".modules_to_save." in n and "lora_" not in n}
    if saved:  # PEFT keeps a trainable copy of the head in modules_to_save
        return saved
    names = set()
    for name in all_names:
        leaf = name.split(".")
        if "lora_" in name:
            continue
        if "original_module" in leaf:
            continue
        if any(part in ("score", "classifier", "head", "scalar_head") for part in leaf):
            names.add(name)
    return names


def _default_encode(tokenizer: Any, max_length: int) -> Callable[[list[str], list[str]], dict[str, Any]]:
    from . import encode_pairs

    # one batch per call: pair encoding for encoders, "query: ..., passage: ..." + EOS for decoders
    return lambda q, p: encode_pairs(tokenizer, q, p, max_length=max_length, batch_size=max(1, len(q)))[0]


def _default_score() -> Callable[[Any, dict[str, Any]], Any]:
    from . import score

    return score


# ---------------------------------------------------------------------- evaluation
def _predict(model: Any, encode: Callable, score: Callable, queries: Sequence[str], passages: Sequence[str],
             micro: int, device: Any) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(queries), micro):
            batch = encode(list(queries[s:s + micro]), list(passages[s:s + micro]))
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            out.append(score(model, batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def ndcg_at_10(pairs: Any, scores: np.ndarray) -> float | None:
    """NDCG@10 of ranking each query's pairs by ``scores`` (``ir_measures``); None without judgements."""
    import ir_measures
    from ir_measures import nDCG

    rel = pairs["relevance"].to_numpy()
    if not np.any(rel > 0):
        return None
    qrels = [ir_measures.Qrel(str(q), str(d), int(r)) for q, d, r in zip(pairs["qid"], pairs["docid"], rel)]
    run = [ir_measures.ScoredDoc(str(q), str(d), float(s)) for q, d, s in zip(pairs["qid"], pairs["docid"], scores)]
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])


def _validate(model: Any, encode: Callable, score: Callable, val_pairs: Any, task: str, targets: np.ndarray | None,
              micro: int, device: Any) -> dict[str, float | None]:
    was_training = model.training
    model.eval()
    try:
        s = _predict(model, encode, score, list(val_pairs["query"]), list(val_pairs["passage"]), micro, device)
    finally:
        model.train(was_training)
    out: dict[str, float | None] = {"ndcg@10": ndcg_at_10(val_pairs, s)}
    if task == "relevance":
        # softmax cross-entropy of each query's relevant pairs among all its pairs
        losses = []
        for _, idx in val_pairs.groupby(val_pairs["qid"].astype(str)).indices.items():
            r = val_pairs["relevance"].to_numpy()[idx]
            if np.any(r > 0) and np.any(r <= 0):
                z = s[idx] - s[idx].max()
                logp = z - np.log(np.exp(z).sum())
                losses.extend((-logp[r > 0]).tolist())
        out["loss"] = float(np.mean(losses)) if losses else None
    else:
        assert targets is not None
        out["loss"] = float(np.mean((s - targets) ** 2))
    return out


# ---------------------------------------------------------------------- training
def finetune(
    model: Any,
    tokenizer: Any,
    train_pairs: Any,
    val_pairs: Any,
    task: str,
    config: FinetuneConfig | None = None,
    out_dir: str | os.PathLike[str] = "finetune",
    *,
    max_length: int = 256,
    encode: Callable[[list[str], list[str]], dict[str, Any]] | None = None,
    score: Callable[[Any, dict[str, Any]], Any] | None = None,
    progress: bool = True,
    resume: bool = True,
) -> FinetuneResult:
    """Fine-tune the LoRA adapter and scalar head of ``model`` for an IR task.

    Parameters
    ----------
    model : torch.nn.Module
        A scalar model with LoRA on the MLPs of a layer range
        (:func:`hedonic_neurons.models.load_scalar_model` with ``lora=``). Trained in place.
    tokenizer : transformers tokenizer
    train_pairs, val_pairs : pandas.DataFrame
        Columns ``qid, docid, query, passage, relevance`` (and optionally ``target``).
    task : {"cqtr", "mean_tf_l", "relevance"}
    config : FinetuneConfig
        AdamW learning rate, effective batch, micro-batch, epochs, ... (paper §4: lr 2e-4,
        batch 128, 3 epochs; App. F: 0.3 epochs for CQTR/Mean-TF/L).
    out_dir : path-like
        Receives ``checkpoints/``, ``adapter/`` and ``log.jsonl``.
    max_length : int
        Token budget per pair.
    encode, score : callable, optional
        Override the pair tokenisation and the scalar forward (default:
        :func:`hedonic_neurons.models.encode_pairs` and :func:`hedonic_neurons.models.score`).
    progress : bool
        Show a tqdm bar.
    resume : bool
        Continue from the last checkpoint in ``out_dir/checkpoints`` when there is one.

    Returns
    -------
    FinetuneResult
    """
    import torch
    from tqdm.auto import tqdm

    if task not in TASKS:
        raise InputError(f"task: expected one of {', '.join(TASKS)}, got {task!r}.")
    cfg = config or FinetuneConfig()
    for name, df in (("train_pairs", train_pairs), ("val_pairs", val_pairs)):
        missing = {"qid", "docid", "query", "passage", "relevance"} - set(df.columns)
        if missing:
            raise InputError(f"{name}: missing columns {sorted(missing)}; expected qid, docid, query, passage, relevance.")
        if len(df) == 0:
            raise InputError(f"{name}: expected at least one pair, got an empty DataFrame.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck_dir = out / "checkpoints"
    log_path = out / "log.jsonl"
    encode = encode or _default_encode(tokenizer, max_length)
    score = score or _default_score()
    device = next(model.parameters()).device

    trainable = trainable_parameters(model)
    rng = np.random.default_rng(cfg.seed)
    if task == "relevance":
        groups = relevance_groups(train_pairs, cfg.n_negatives, rng)
        n_items = len(groups)
        targets = None
    else:
        targets = regression_targets(train_pairs, task)
        n_items = len(train_pairs)
    val_targets = None if task == "relevance" else regression_targets(val_pairs, task)

    batch = min(cfg.batch_size, n_items)
    micro = min(cfg.micro_batch_size, batch)
    steps_per_epoch = max(1, n_items // batch)
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warm = int(cfg.warmup_ratio * total)

    param_groups: list[dict[str, Any]] = [{"params": list(trainable.values()), "lr": cfg.lr}]
    head = [p for n, p in trainable.items() if "lora_" not in n]
    if cfg.head_lr is not None and head:  # the head in its own group
        param_groups = [{"params": [p for n, p in trainable.items() if "lora_" in n], "lr": cfg.lr},
                  {"params": head, "lr": cfg.head_lr}]
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm)) if cfg.warmup_ratio > 0 else 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    torch_gen_seed = int(np.random.default_rng([cfg.seed, 1]).integers(2**31))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_gen_seed)  # dropout draws, inside a forked RNG (no global state leaks)
        state = _load_checkpoint(ck_dir, trainable, optimizer, scheduler) if resume else None
        start = int(state["step"]) if state else 0
        history: list[dict[str, Any]] = []
        if state is None and log_path.exists():
            log_path.unlink()
        initial = (
            state["initial_val"] if state else
            _validate(model, encode, score, val_pairs, task, val_targets, micro, device)
        )
        if state is None:
            _log(log_path, history, {"step": 0, "event": "init", **{f"val_{k}": v for k, v in initial.items()}})
        model.train()
        losses: list[float] = []
        t0 = time.perf_counter()
        bar = tqdm(total=total, initial=start, desc=f"finetune {task}", unit="step", disable=not progress)
        for step in range(start, total):
            epoch, pos = divmod(step, steps_per_epoch)
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n_items)
            chosen = order[pos * batch:(pos + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for s in range(0, len(chosen), micro):
                rows = chosen[s:s + micro]
                loss = _micro_loss(model, encode, score, train_pairs, task, rows, groups if task == "relevance" else None,
                                   targets, device)
                (loss * (len(rows) / len(chosen))).backward()
                step_loss += float(loss.detach()) * len(rows) / len(chosen)
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(list(trainable.values()), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(step_loss)
            done = step + 1
            rec: dict[str, Any] = {"step": done, "loss": step_loss, "lr": scheduler.get_last_lr()[0],
                                   "elapsed_s": round(time.perf_counter() - t0, 3)}
            if cfg.eval_every and done % cfg.eval_every == 0 and done < total:
                v = _validate(model, encode, score, val_pairs, task, val_targets, micro, device)
                rec.update({f"val_{k}": x for k, x in v.items()})
            _log(log_path, history, rec)
            bar.set_postfix(loss=f"{step_loss:.4g}")
            bar.update(1)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < total:
                _save_checkpoint(ck_dir, done, trainable, optimizer, scheduler, {"initial_val": initial})
        bar.close()
        final = _validate(model, encode, score, val_pairs, task, val_targets, micro, device)
        _log(log_path, history, {"step": total, "event": "final", **{f"val_{k}": v for k, v in final.items()}})
        _save_checkpoint(ck_dir, total, trainable, optimizer, scheduler, {"initial_val": initial})
    adapter_dir = save_adapter(model, trainable, out / "adapter")
    meta = provenance(task=task, config=_cfg_dict(cfg), steps=total, effective_batch=batch, micro_batch=micro)
    write_json(out / "finetune.json", {"initial_val": initial, "final_val": final, "meta": meta})
    if log_path.exists():
        history = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return FinetuneResult(adapter_dir, total, losses, history, initial, final, start if state else None, log_path, meta)


def _cfg_dict(cfg: FinetuneConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _micro_loss(model: Any, encode: Callable, score: Callable, pairs: Any, task: str, rows: np.ndarray,
                groups: list[tuple[int, list[int]]] | None, targets: np.ndarray | None, device: Any) -> Any:
    import torch

    q = pairs["query"].to_numpy()
    p = pairs["passage"].to_numpy()
    if task == "relevance":
        assert groups is not None
        idx = [r for g in rows for r in [groups[g][0], *groups[g][1]]]
        batch = encode([str(x) for x in q[idx]], [str(x) for x in p[idx]])
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
        logits = score(model, batch).float().view(len(rows), -1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=device))
    assert targets is not None
    batch = encode([str(x) for x in q[rows]], [str(x) for x in p[rows]])
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    pred = score(model, batch).float()
    y = torch.as_tensor(targets[rows], dtype=torch.float32, device=device)
    return torch.nn.functional.mse_loss(pred, y)


