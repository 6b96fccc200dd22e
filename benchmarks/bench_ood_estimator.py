"""OOD drop of every coalition: first-order estimate (one backward pass per batch) vs exact ablation.

Prints figures; not a test. For each model:

* ``estimate, all K``: :func:`verify_estimates`'s attribution pass (forward + backward per
  batch) plus the task metric of all K coalitions from the estimated scores;
* ``exact, prefix reuse``: exact ablation of a size-stratified sample of coalitions with the
  layers before ℓ run once per batch (:func:`exact_coalition_scores`), extrapolated linearly
  to all K when the sample is smaller than K;
* ``exact, full forward``: the same ablations through the whole model per coalition (what
  ``metrics.ood.ood_drop`` does), timed on a few coalitions, for the prefix saving;
* Spearman's rank correlation and the error of the metric drop, estimated vs exact, on the
  sample (and the relative error of the score changes before the metric).

The task is CQTR-like (−MSE against seeded random targets) so that every coalition has a
non-zero, rankable drop; NDCG@10 on seeded random grades is also reported (at full width only
with ``--full-ndcg``, as it repeats the whole verification).

    python benchmarks/bench_ood_estimator.py                 # tiny LLaMA, then the full-width slice
    python benchmarks/bench_ood_estimator.py --skip-full     # tiny LLaMA only
    python benchmarks/bench_ood_estimator.py --skip-tiny --full-inputs 32 --full-sample 8
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def random_partition(n: int, lo: int, hi: int, seed: int) -> Any:
    """Random coalitions of sizes uniform in lo..hi (the PAC sampler's default sizes 2..10)."""
    from hedonic_neurons.partition import Partition

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    labels = np.empty(n, dtype=np.int64)
    start, c = 0, 0
    while start < n:
        size = int(rng.integers(lo, hi + 1))
        labels[perm[start:start + size]] = c
        start += size
        c += 1
    return Partition.from_labels(labels)


def full_forward_seconds(model: Any, batches: list[dict[str, torch.Tensor]], layer: int, members: list[np.ndarray]) -> float:
    """Seconds per coalition of the exact ablation through the whole model (no prefix reuse).

    The loop order of ``metrics.ood.ood_drop``: batches outside, coalitions inside.
    """
    from hedonic_neurons.models import score
    from hedonic_neurons.models.ablation import ablate

    t = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            for m in members:
                with ablate(model, {layer: m}):
                    score(model, b)
    return (time.perf_counter() - t) / len(members)


def interleaved_saving(model: Any, batch: dict[str, torch.Tensor], layer: int, members: list[np.ndarray],
                       repeats: int) -> tuple[float, float]:
    """Median seconds of one ablated full forward pass and of one ablated suffix replay on ``batch``.

    The two are timed alternately, so a change of machine load hits both alike (the
    verification's totals above are measured at different moments).
    """
    from hedonic_neurons.models import architecture, score
    from hedonic_neurons.models.ablation import ablate

    # the replay alone, without its prefix pass (a private helper of the module under test)
    from hedonic_neurons.models.attribution import _prefix

    with torch.no_grad():
        _, suffix = _prefix(model, architecture(model), layer, batch)
        full, replay = [], []
        for i in range(repeats):
            with ablate(model, {layer: members[i % len(members)]}):
                t = time.perf_counter()
                score(model, batch)
                full.append(time.perf_counter() - t)
                t = time.perf_counter()
                suffix.run()
                replay.append(time.perf_counter() - t)
    return float(np.median(full)), float(np.median(replay))


def report(name: str, model: Any, batches: list[dict[str, torch.Tensor]], layer: int, part: Any,
           n_sample: int, n_full: int, seed: int, ndcg: bool = True, repeats: int = 21) -> None:
    from hedonic_neurons.metrics.ood_estimate import verify_estimates

    n_inputs = sum(int(b["input_ids"].shape[0]) for b in batches)
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=n_inputs)
    grades = rng.integers(0, 3, n_inputs)
    qids = [f"q{i // 8}" for i in range(n_inputs)]
    docids = [f"d{i}" for i in range(n_inputs)]
    K = part.n_coalitions
    print(f"\n== {name}: layer {layer}, N = {n_inputs} inputs in {len(batches)} batches of "
          f"{tuple(batches[0]['input_ids'].shape)}, n = {part.n_players} neurons, K = {K} coalitions "
          f"(sizes {part.sizes.min()}..{part.sizes.max()})", flush=True)
    res = verify_estimates(model, batches, layer, part, task="cqtr", targets=targets, n_sample=n_sample, seed=seed)
    S = res.coalitions.size
    per_exact = res.seconds_exact / S
    members = [part.coalitions[c] for c in res.coalitions[:n_full]]
    per_full = full_forward_seconds(model, batches, layer, members)
    print(f"estimate, all K:              {res.seconds_estimate:9.2f} s", flush=True)
    note = "measured" if S == K else f"extrapolated from {S}"
    print(f"exact, prefix reuse, all K:   {per_exact * K:9.1f} s  ({per_exact:.3f} s per coalition; {note})")
    print(f"exact, full forward, all K:   {per_full * K:9.1f} s  ({per_full:.3f} s per coalition, timed on "
          f"{len(members)}); prefix reuse saves {per_full / per_exact:.2f}x")
    print(f"estimate vs exact (prefix reuse), all K: {per_exact * K / res.seconds_estimate:.0f}x faster")
    t_full, t_replay = interleaved_saving(model, batches[0], layer, members, repeats)
    print(f"one batch, interleaved medians of {repeats}: full forward {t_full * 1e3:.1f} ms, suffix replay "
          f"{t_replay * 1e3:.1f} ms: prefix reuse saves {t_full / t_replay:.2f}x")
    nb = len(batches)  # the same medians extrapolated: the prefix pass once per batch, one replay per coalition
    print(f"from these medians, all K: exact with prefix reuse ≈ {nb * (t_full + K * t_replay):.1f} s, full forward ≈ "
          f"{nb * K * t_full:.1f} s; estimate vs exact ≈ {nb * (t_full + K * t_replay) / res.seconds_estimate:.0f}x")
    print(f"-MSE drop on {S} coalitions: Spearman {res.spearman:.4f}, mean |err| {res.abs_error:.3g}, "
          f"max |err| {res.max_abs_error:.3g}, relative {res.rel_error:.3g}, score-change relative error "
          f"{res.score_rel_error:.3g}; mean |exact drop| {np.abs(res.drop_exact).mean():.3g}")
    if not ndcg:
        print(f"peak RSS {peak_rss_gb():.2f} GB", flush=True)
        return
    nd = verify_estimates(model, batches, layer, [part.coalitions[c] for c in res.coalitions], task="relevance",
                          qids=qids, docids=docids, targets=grades, n_sample=S, seed=seed)
    print(f"NDCG@10 drop on the same {S}: Spearman {nd.spearman:.4f}, mean |err| {nd.abs_error:.3g}, "
          f"max |err| {nd.max_abs_error:.3g}; exact drops non-zero for {int((nd.drop_exact != 0).sum())} of {S}")
    print(f"peak RSS {peak_rss_gb():.2f} GB", flush=True)


def bench_tiny(seed: int) -> None:
    from tests.tiny_models import one_thread, random_batches, tiny_model

    with one_thread():  # tiny forwards are latency-bound; one thread is fastest
        model = tiny_model("llama", dtype=torch.float32, hidden=64, intermediate=512, n_layers=4,
                           lora_layers=(2,), r=8)
        batches = random_batches(model, 8, 8, 32, seed=seed)
        report("tiny LLaMA (d = 64, n = 512, 4 blocks), coalitions of 2..10", model, batches, 2,
               random_partition(512, 2, 10, seed), n_sample=10**6, n_full=20, seed=seed)
        from hedonic_neurons.partition import Partition

        report("tiny LLaMA, all 512 singletons", model, batches, 2, Partition.from_labels(np.arange(512)),
               n_sample=10**6, n_full=20, seed=seed)


def fullwidth_model(blocks: int, seed: int) -> Any:
    """LLaMA-3.1-8B widths cut to ``blocks`` blocks, MiniLM vocabulary, random LoRA r = 8 (non-zero B) on the last."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from hedonic_neurons.models import load_scalar_model

    config = LlamaConfig(vocab_size=30522, hidden_size=4096, intermediate_size=14336, num_hidden_layers=blocks,
                         num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5, hidden_act="silu",
                         max_position_embeddings=2048, rope_theta=500000.0, pad_token_id=0, num_labels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = LlamaForSequenceClassification(config)
    model = load_scalar_model(base, lora={"r": 8, "alpha": 16}, layers=[blocks - 1], seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / 8**0.5))
    return model.eval()


def bench_full(blocks: int, n_inputs: int, seq_len: int, n_sample: int, seed: int, ndcg: bool) -> None:
    from tests.tiny_models import random_batches

    t = time.perf_counter()
    model = fullwidth_model(blocks, seed)
    print(f"\nfull-width model built in {time.perf_counter() - t:.1f} s; peak RSS {peak_rss_gb():.2f} GB", flush=True)
    batches = random_batches(model, n_inputs // 8, 8, seq_len, seed=seed)
    report(f"LLaMA-3.1-8B widths (d = 4096, n = 14336, 32/8 heads), {blocks} blocks, coalitions of 2..10", model,
           batches, blocks - 1, random_partition(14336, 2, 10, seed), n_sample=n_sample, n_full=2, seed=seed,
           ndcg=ndcg, repeats=3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-tiny", action="store_true")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--full-blocks", type=int, default=2)
    p.add_argument("--full-inputs", type=int, default=64, help="N at full width (multiple of 8)")
    p.add_argument("--full-seq-len", type=int, default=32)
    p.add_argument("--full-sample", type=int, default=10, help="coalitions ablated exactly at full width")
    p.add_argument("--full-ndcg", action="store_true", help="also the NDCG@10 check at full width (runs it twice)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if not args.skip_tiny:
        bench_tiny(args.seed)
    if not args.skip_full:
        bench_full(args.full_blocks, args.full_inputs, args.full_seq_len, args.full_sample, args.seed, args.full_ndcg)


if __name__ == "__main__":
    main()
