"""Stages that run the model for the evidence protocol (docs/method.md §8.4–§8.5).

- *attribution* (one unit per layer, shared by every partition of the layer): the per-neuron
  first-order effects ``e`` (``N × n``) of the OOD inputs from one backward pass per batch,
  the unablated scores, and the exact drop of ablating every LoRA neuron of the layer (the
  all-LoRA bound);
- *verify* (one unit per layer): the estimated drop of a seeded, size-stratified sample of
  the layer's coalitions (pooled over its partitions) against exact ablations;
- *controls* (one unit per run): the OOD task metric of the fine-tuned model, of the same
  model with every LoRA neuron of every layer reverted (head kept), and of the model before
  fine-tuning.

The per-partition OOD drop itself is model-free given the attributions
(:func:`hedonic_neurons.evaluation.evaluate_ood_estimated`,
:func:`.evaluate.work_ood_estimated`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io import write_json

__all__ = ["lora_layers", "stage_attribution", "stage_controls", "stage_verify", "task_kwargs"]


def task_kwargs(task: str, pairs: pd.DataFrame, qrels_path: Path | None) -> dict[str, Any]:
    """Keyword arguments of :func:`hedonic_neurons.metrics.ood.task_metric` for the OOD pairs."""
    qrels = pd.read_parquet(qrels_path) if qrels_path is not None and qrels_path.is_file() else None
    return {"qids": pairs["qid"].astype(str).tolist(), "docids": pairs["docid"].astype(str).tolist(),
            "qrels": qrels if task == "relevance" else None,
            "targets": pairs["target"].to_numpy(dtype=np.float64)}


def _metric(task: str, kwargs: dict[str, Any]) -> Callable[[np.ndarray], float]:
    from ...metrics.ood import task_metric

    return lambda s: float(task_metric(task, np.asarray(s, dtype=np.float64), **kwargs))


def lora_layers(model: Any) -> list[int]:
    """Layers whose MLP carries an active LoRA adapter."""
    from ...models.arch import architecture
    from ...models.lora import lora_factors, mlp_linears

    spec = architecture(model)
    return [layer for layer in range(spec.n_layers)
            if any(lora_factors(m) for m in mlp_linears(spec, model, layer).values())]


def _scores(model: Any, batches: Sequence[Any]) -> np.ndarray:
    import torch

    from ...models import score

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return np.concatenate([score(model, b).to(torch.float64).cpu().numpy() for b in batches])
    finally:
        model.train(was)


def stage_attribution(model: Any, batches: Sequence[Any], layer: int, pairs_path: Path, qrels_path: Path | None,
                      task: str, out: Path, *, progress: bool = False) -> None:
    """Write ``attributions.safetensors`` (``scores`` (N,), ``attributions`` (N, n)) and ``all_lora.json``
    (metric of the model, metric with every LoRA neuron of ``layer`` reverted, and their difference,
    exact)."""
    from ...io import save_arrays
    from ...models.arch import architecture
    from ...models.attribution import exact_coalition_scores, neuron_attributions

    pairs = pd.read_parquet(pairs_path)
    metric = _metric(task, task_kwargs(task, pairs, qrels_path))
    e = neuron_attributions(model, batches, layer, progress=progress)
    n = architecture(model).d_ff
    base, ablated = exact_coalition_scores(model, batches, layer, [np.arange(n)], return_base=True)
    full, without = metric(base), metric(ablated[:, 0])
    save_arrays(out / "attributions.safetensors", {"scores": np.asarray(base, dtype=np.float64),
                                                   "attributions": np.asarray(e, dtype=np.float64)})
    write_json(out / "all_lora.json", {"layer": int(layer), "metric_full": full, "metric_all_lora_reverted": without,
                                       "drop": full - without, "n_neurons": int(n), "n_inputs": int(base.size)})


def _stratified(sizes: np.ndarray, n_sample: int, seed: int) -> np.ndarray:
    try:  # the helper moves from models.attribution to metrics.ood_estimate
        from ...metrics.ood_estimate import stratified_coalition_sample  # type: ignore[import-not-found]
    except ImportError:
        from ...models.attribution import stratified_coalition_sample  # type: ignore[attr-defined,no-redef]
    return np.asarray(stratified_coalition_sample(sizes, n_sample, seed=seed))


def stage_verify(model: Any, batches: Sequence[Any], layer: int, attribution_path: Path,
                 partition_paths: Sequence[Path], pairs_path: Path, qrels_path: Path | None, task: str,
                 n_sample: int, seed: int, min_size: int, out: Path) -> None:
    """Check the estimated OOD drop against exact ablations on a size-stratified sample.

    The coalitions of size ``>= min_size`` of every partition of the layer are pooled (each
    distinct member set once) and ``n_sample`` of them are drawn, stratified by size and
    seeded; each is ablated exactly (prefix reuse,
    :func:`hedonic_neurons.models.attribution.exact_coalition_scores`) and its drop compared
    with the first-order estimate from the cached attributions. Writes ``verify.csv`` (one row
    per sampled coalition) and ``verify.json`` (Spearman ρ, mean and max absolute error, error
    relative to the mean |exact drop|).
    """
    from scipy.stats import spearmanr

    from ...io import load_arrays
    from ...models.attribution import exact_coalition_scores
    from ...partition import Partition

    arrays, _ = load_arrays(attribution_path)
    s, e = np.asarray(arrays["scores"], np.float64), np.asarray(arrays["attributions"], np.float64)
    seen: dict[tuple[int, ...], int] = {}
    for p in partition_paths:
        for c in Partition.from_json(p).coalitions:
            if c.size >= min_size:
                seen.setdefault(tuple(int(x) for x in c), len(seen))
    members = [np.asarray(k, dtype=np.int64) for k in seen]
    if not members:
        write_json(out / "verify.json", {"layer": int(layer), "n_coalitions": 0, "n_sample": 0})
        pd.DataFrame(columns=["coalition", "size", "drop_estimated", "drop_exact"]).to_csv(out / "verify.csv",
                                                                                           index=False)
        return
    sizes = np.array([m.size for m in members])
    pick = _stratified(sizes, n_sample, seed)
    chosen = [members[i] for i in pick]
    pairs = pd.read_parquet(pairs_path)
    metric = _metric(task, task_kwargs(task, pairs, qrels_path))
    base, exact = exact_coalition_scores(model, batches, layer, chosen, return_base=True)
    full = metric(base)
    d_exact = np.array([full - metric(exact[:, j]) for j in range(len(chosen))])
    m = np.zeros((e.shape[1], len(chosen)))
    for j, c in enumerate(chosen):
        m[c, j] = 1.0
    est = s[:, None] - e @ m
    full_est = metric(s)
    d_est = np.array([full_est - metric(est[:, j]) for j in range(len(chosen))])
    err = d_est - d_exact
    with np.errstate(all="ignore"):
        rho = float(spearmanr(d_est, d_exact).statistic) if len(chosen) > 2 else float("nan")
    scale = float(np.mean(np.abs(d_exact)))
    pd.DataFrame({"coalition": [" ".join(map(str, c.tolist())) for c in chosen], "size": sizes[pick],
                  "drop_estimated": d_est, "drop_exact": d_exact}).to_csv(out / "verify.csv", index=False)
    write_json(out / "verify.json", {
        "layer": int(layer), "n_coalitions": len(members), "n_sample": len(chosen), "spearman": rho,
        "abs_error": float(np.mean(np.abs(err))), "max_abs_error": float(np.max(np.abs(err))),
        "rel_error": float(np.mean(np.abs(err)) / scale) if scale > 0 else float("nan"),
        "mean_abs_exact_drop": scale, "seed": int(seed)})


def stage_controls(model: Any, batches: Sequence[Any], pairs_path: Path, qrels_path: Path | None, task: str,
                   out: Path, *, before: Callable[[], Any] | None = None) -> None:
    """Write ``controls.json``: the OOD task metric of ``finetuned`` (the study's model),
    ``no_lora`` (every LoRA neuron of every layer reverted, head kept) and ``base`` (the model
    ``before()`` returns, i.e. before fine-tuning; NaN without it)."""
    from ...models.ablation import ablate
    from ...models.arch import architecture

    pairs = pd.read_parquet(pairs_path)
    metric = _metric(task, task_kwargs(task, pairs, qrels_path))
    layers = lora_layers(model)
    n = architecture(model).d_ff
    finetuned = metric(_scores(model, batches))
    with ablate(model, {layer: np.arange(n) for layer in layers}):
        no_lora = metric(_scores(model, batches))
    base = float("nan")
    if before is not None:
        base = metric(_scores(before(), batches))
    write_json(out / "controls.json", {"finetuned": finetuned, "no_lora": no_lora, "base": base,
                                       "lora_layers": layers, "gain": finetuned - no_lora})
