"""Wall time of the size-matched null tests (docs/method.md §8.5). Prints a table; not a test.

Usage::

    python benchmarks/bench_nulls.py                       # n = 1536 and 4096, 1000 draws
    python benchmarks/bench_nulls.py --n 14336 --draws 200

φ is a symmetric standard-normal matrix; the partition has the shape the issue describes:
one coalition of 42% of the players, 100 coalitions of sizes 2..10, singletons for the rest.
``pair_null_test`` runs a gather per draw for coalitions of at most n/8 players and a GEMM
(``diag(Mᵀ φ M)``) for larger ones; ``pooled_pair_null`` draws whole random partitions with the
same size histogram.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.stats  # noqa: F401  (imported here so its one-off import cost stays out of the timings)

from hedonic_neurons.metrics.nulls import pair_null_test, pooled_pair_null
from hedonic_neurons.partition import Partition


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1536, 4096], help="players per layer")
    ap.add_argument("--draws", type=int, default=1000, help="null draws per size (pair_null_test)")
    ap.add_argument("--pooled-draws", type=int, default=200, help="random partitions (pooled_pair_null)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'n':>6} {'coalitions':>10} {'giant':>6} {'pair_null_test (s)':>19} {'pooled_pair_null (s)':>21}")
    for n in args.n:
        rng = np.random.default_rng(args.seed)
        phi = rng.normal(size=(n, n))
        phi = (phi + phi.T) / 2
        giant = int(0.42 * n)
        sizes = [giant] + [int(x) for x in rng.integers(2, 11, 100)]
        sizes += [1] * (n - sum(sizes))
        part = Partition.from_labels(rng.permutation(np.repeat(np.arange(len(sizes)), sizes)))
        t0 = time.perf_counter()
        df = pair_null_test(phi, part, n_draws=args.draws, seed=args.seed)
        t1 = time.perf_counter()
        pooled_pair_null(phi, part, n_draws=args.pooled_draws, seed=args.seed)
        t2 = time.perf_counter()
        print(f"{n:>6} {len(df):>10} {giant:>6} {t1 - t0:>19.2f} {t2 - t1:>21.2f}")


if __name__ == "__main__":
    main()
