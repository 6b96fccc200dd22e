"""Speed and memory of the valuations (docs/method.md §9). Prints figures; not a test.

1. A layer with LLaMA-3.1-8B's shapes (d = 4096, n = 14336, LoRA r = 8 on up/gate/down),
   random weights, a LayerRecord synthesised directly with N = 256 inputs: wall time of
   OCA, second-order PAS and exact PAS, and the peak RSS.
   Targets on a 2-core CPU: OCA <= 30 s, second-order <= 60 s, exact <= 120 s, RSS <= 8 GB.
2. A tiny real LLaMA with n = 512: pas_brute_force over all pairs vs exact PAS on the same
   inputs (time ratio, max abs difference).

    python benchmarks/bench_valuations.py            # full shapes
    python benchmarks/bench_valuations.py --quick    # n = 2048
    python benchmarks/bench_valuations.py --n 4096 --skip-tiny
    python benchmarks/bench_valuations.py --skip-layer --brute-pairs 3000   # extrapolated brute force
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def synth_record(n: int, d: int, N: int, r: int, seed: int = 0):
    from hedonic_neurons.records import LayerRecord, Readout

    rng = np.random.default_rng(seed)
    f32 = np.float32
    W = (rng.standard_normal((d, n), dtype=f32) / np.sqrt(d)).astype(f32)
    B = (rng.standard_normal((d, r), dtype=f32) * 0.05).astype(f32)
    A = (rng.standard_normal((r, n), dtype=f32) / np.sqrt(n)).astype(f32)
    h = rng.standard_normal((N, d), dtype=f32)
    up, gate = (rng.standard_normal((n, d), dtype=f32) / np.sqrt(d) for _ in range(2))
    silu = lambda x: x / (1 + np.exp(-x))  # noqa: E731
    a_base = (silu(h @ gate.T) * (h @ up.T)).astype(f32)
    a = (a_base + 0.05 * rng.standard_normal((N, n), dtype=f32)).astype(f32)
    y = rng.standard_normal((N, d), dtype=f32)
    ro = Readout("rms", rng.standard_normal(d).astype(f32), 0.0, np.ones(d, f32), None, eps=1e-5)
    return LayerRecord(layer=0, h=h, a=a, a_base=a_base, y=y, w_down=W + B @ A, w_down_base=W, readout=ro,
                       delta_left=B, delta_right=A)


def bench_layer(n: int, d: int, N: int, r: int) -> None:
    from hedonic_neurons.valuations import oca, pas

    rec = synth_record(n, d, N, r)
    print(f"layer shapes: d={d}, n={n}, N={N}, r={r}; RSS after synthesis {peak_rss_gb():.2f} GB", flush=True)
    t = time.perf_counter()
    oca(rec)
    print(f"OCA:              {time.perf_counter() - t:8.1f} s   (target <= 30 s)   peak RSS {peak_rss_gb():.2f} GB", flush=True)
    t = time.perf_counter()
    so = pas(rec, "second_order", gemm_dtype=torch.float32, error_pairs=256)
    print(f"second-order PAS: {time.perf_counter() - t:8.1f} s   (target <= 60 s)   peak RSS {peak_rss_gb():.2f} GB"
          f"   error vs exact on 256 pairs: {so.meta['second_order_error']}", flush=True)
    del so
    t = time.perf_counter()
    pas(rec, "exact", gemm_dtype=torch.float32, progress=False)
    print(f"exact PAS:        {time.perf_counter() - t:8.1f} s   (target <= 120 s)  peak RSS {peak_rss_gb():.2f} GB",
          flush=True)


def bench_tiny(n: int, brute_pairs: int | None) -> None:
    from tests.tiny_models import one_thread, random_batches, tiny_model

    from hedonic_neurons.models.capture import capture
    from hedonic_neurons.valuations import pas, pas_brute_force, pas_pairs

    with one_thread():  # tiny forwards are latency-bound; one thread is fastest
        model = tiny_model("llama", dtype=torch.float64, intermediate=n, n_layers=2, lora_layers=(1,))
        batches = random_batches(model, 1, 16, 8, seed=0)
        rec = capture(model, batches, [1], progress=False, dtype=np.float64)[1]
        pas(rec)  # JIT warm-up of the numba kernel
        t = time.perf_counter()
        exact = pas(rec).values.astype(np.float64)
        te = time.perf_counter() - t
        ii, jj = np.triu_indices(n, 1)
        total = ii.size
        if brute_pairs is not None and brute_pairs < total:
            pick = np.random.default_rng(0).choice(total, size=brute_pairs, replace=False)
            ii, jj = ii[pick], jj[pick]
        t = time.perf_counter()
        brute = pas_brute_force(model, batches, 1, pairs=np.stack([ii, jj], 1), progress=True)
        tb = time.perf_counter() - t
    exact64 = pas_pairs(rec, np.stack([ii, jj], 1))  # float64, no float32 storage rounding
    tb_all = tb * total / ii.size
    note = "" if ii.size == total else f" (measured on {ii.size} sampled pairs, extrapolated to all {total})"
    print(f"tiny LLaMA n={n}, N=16: brute force over all pairs {tb_all:.1f} s{note}, exact PAS {te:.3f} s, "
          f"ratio {tb_all / te:.0f}x, max |exact - brute| = {np.abs(exact[ii, jj] - brute).max():.3e} "
          f"(float32 SynergyMatrix; float64 pas_pairs: {np.abs(exact64 - brute).max():.3e}) "
          f"(max |phi| = {np.abs(brute).max():.3e})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="n = 2048 instead of 14336, tiny n = 128")
    p.add_argument("--n", type=int, default=None, help="MLP width of the synthetic layer")
    p.add_argument("--tiny-n", type=int, default=None, help="MLP width of the tiny model (default 512)")
    p.add_argument("--brute-pairs", type=int, default=None,
                   help="time brute force on this many sampled pairs and extrapolate (default: all pairs)")
    p.add_argument("--skip-tiny", action="store_true")
    p.add_argument("--skip-layer", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(2)
    n = args.n or (2048 if args.quick else 14336)
    if not args.skip_layer:
        bench_layer(n, 4096, 256, 8)
    if not args.skip_tiny:
        bench_tiny(args.tiny_n or (128 if args.quick else 512), args.brute_pairs)


if __name__ == "__main__":
    main()
