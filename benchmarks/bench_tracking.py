"""Benchmark cross-layer tracking (docs/method.md §7, §9): interaction mass, matching, classification.

Prints wall times for one layer pair at a given scale (default: LLaMA-3.1-8B widths,
n = 14336, d = 4096, float32 weights, K = K' = 2000 coalitions) and the speed-up of the
membership-matrix products over the per-neuron loop at a small scale.

    python benchmarks/bench_tracking.py                 # LLaMA-8B widths
    python benchmarks/bench_tracking.py --n 2048 --d 512 --k 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hedonic_neurons import Partition
from hedonic_neurons.tracking import (
    interaction_mass_arrays,
    threshold_sweep,
    transition_table,
)


def _loop_mass(src, dst, w_down, w_read, h_abs, act):
    write = np.abs(w_down) * act[None]
    write = write / write.sum()
    read = np.abs(w_read).sum(0)
    ks, kd = src.max() + 1, dst.max() + 1
    out = np.zeros((ks, kd))
    for i in range(w_down.shape[1]):
        for q in range(read.shape[0]):
            out[src[i], dst[q]] += float((read[q] * h_abs * write[:, i]).sum())
    return out / np.outer(np.bincount(src), np.bincount(dst))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=14336, help="MLP width (players per layer)")
    ap.add_argument("--d", type=int, default=4096, help="residual width")
    ap.add_argument("--k", type=int, default=2000, help="coalitions per layer")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    n, d, k = args.n, args.d, args.k
    print(f"n = {n}, d = {d}, K = K' = {k}, float32 weights")
    w_down = rng.standard_normal((d, n), dtype=np.float32)
    w_read = rng.standard_normal((2, n, d), dtype=np.float32)
    h_abs, act = rng.random(d), rng.random(n)
    # Partition.from_labels compacts the labels (no empty coalition).
    src = Partition.from_labels(rng.integers(0, k, n)).labels
    dst = Partition.from_labels(rng.integers(0, k, n)).labels

    t0 = time.perf_counter()
    mass = interaction_mass_arrays(src, dst, w_down, w_read, h_abs, act)
    t_mass = time.perf_counter() - t0
    print(f"interaction mass          {t_mass:8.2f} s   ({mass.shape[0]}x{mass.shape[1]})")

    mass = mass ** 8  # sharpen so that the classification sees a mixture of events
    t0 = time.perf_counter()
    table = transition_table(mass, src_layer=0, dst_layer=1)
    t_cls = time.perf_counter() - t0
    print(f"matching + classification {t_cls:8.2f} s   {table}")
    print("  (scipy linear_sum_assignment dominates; it is slow on near-uniform dense matrices)")

    t0 = time.perf_counter()
    sweep = threshold_sweep(table, alpha_hi_grid=[0.5, 0.6, 0.7, 0.8, 0.9], alpha_lo_grid=[0.02, 0.05, 0.1, 0.2])
    print(f"threshold sweep (20 pts, reusing the matching)  {time.perf_counter() - t0:8.2f} s   ({len(sweep)} rows)")

    # Vectorised vs the per-neuron loop at a small scale.
    ns, ds, ks = 256, 64, 20
    a = (Partition.from_labels(rng.integers(0, ks, ns)).labels, Partition.from_labels(rng.integers(0, ks, ns)).labels,
         rng.standard_normal((ds, ns)),
         rng.standard_normal((2, ns, ds)), rng.random(ds), rng.random(ns))
    t0 = time.perf_counter()
    fast = interaction_mass_arrays(*a)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = _loop_mass(*a)
    t_slow = time.perf_counter() - t0
    err = float(np.abs(fast - slow).max() / np.abs(slow).max())
    print(f"small scale (n={ns}, d={ds}, K={ks}): vectorised {t_fast * 1e3:.2f} ms, loop {t_slow * 1e3:.0f} ms, "
          f"speed-up {t_slow / t_fast:.0f}x, max rel. difference {err:.1e}")


if __name__ == "__main__":
    main()
