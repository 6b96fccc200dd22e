"""The top-k closure effect on random games (docs/method.md §5). Prints a table; not a test.

Usage::

    python benchmarks/bench_closure.py                 # n = 256 (k = 1, 2, 3, 5, 8) and n = 1536 (k = 2, 3, 5)
    python benchmarks/bench_closure.py --seeds 10

For each size ``n`` and seed, φ is the package's null valuation (``null_valuation(n, seed)``:
symmetric, standard-normal entries, zero diagonal). For each ``k`` the table gives the
largest-coalition share of exact Top Covering on it (mean, min and max over the seeds),
the number of coalitions, and, for contrast, the largest share of the additively separable
game's Nash-stable partition (``nash_stable_partition``) on the same φ. On a random game
nothing should be grouped; a large share is the closure of the top-k choice-set digraph,
not structure in φ.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hedonic_neurons.game import nash_stable_partition, top_cover
from hedonic_neurons.valuations import null_valuation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="null valuations per size (seeds 0..S-1)")
    args = ap.parse_args()
    plan = [(256, (1, 2, 3, 5, 8)), (1536, (2, 3, 5))]
    print(f"exact top_cover on null_valuation(n, seed), seeds 0..{args.seeds - 1}; "
          "largest share mean [min, max]; coalitions mean")
    print(f"{'n':>6} {'k':>3} {'largest share (top_cover)':>32} {'coalitions':>11}")
    t0 = time.perf_counter()
    nash: dict[int, list[float]] = {}
    for n, ks in plan:
        phis = [null_valuation(n, seed).values for seed in range(args.seeds)]
        for k in ks:
            parts = [top_cover(phi, k=k) for phi in phis]
            shares = np.array([p.summary().largest_share for p in parts])
            ncoal = np.mean([p.n_coalitions for p in parts])
            print(f"{n:>6} {k:>3} {shares.mean():>17.1%} [{shares.min():.1%}, {shares.max():.1%}] {ncoal:>11.1f}",
                  flush=True)
        nash[n] = [nash_stable_partition(phi, seed=0).summary().largest_share for phi in phis]
    for n, shares_n in nash.items():
        s = np.array(shares_n)
        print(f"nash_stable_partition, n = {n}: largest share {s.mean():.1%} [{s.min():.1%}, {s.max():.1%}]")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
