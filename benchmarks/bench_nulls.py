"""Wall time and precision of the size-matched null tests (docs/method.md §8.5). Prints tables; not a test.

Usage::

    python benchmarks/bench_nulls.py                       # n = 1536 and 4096, 1000 draws
    python benchmarks/bench_nulls.py --n 14336 --draws 200
    python benchmarks/bench_nulls.py --crossover           # gather vs GEMM per draw, s = n/40, n/20, n/10
    python benchmarks/bench_nulls.py --psi RUN/cache/psi/KEY/psi.safetensors \\
        --partition RUN/cache/partition/KEY/partition.json   # float32 vs float64 sums on a real ψ

Timing mode: φ is a symmetric standard-normal matrix; the partition has one coalition of 42% of
the players, 100 coalitions of sizes 2..10, singletons for the rest. ``pair_null_test`` draws
per size (a gather per draw for coalitions of at most n/20 players, a GEMM ``diag(Mᵀ φ M)``
for larger ones), ``pooled_pair_null`` draws whole random partitions with the same size
histogram, and ``pair_nulls`` runs both tests on one set of random partitions.

``--crossover``: milliseconds per random coalition on each path
(:func:`hedonic_neurons.metrics._sampling._within_sums`'s two kernels, called directly), for
float64 and float32 φ, one call per 200 draws; the rule ``_gemm_path`` (GEMM when s > n/20)
comes from this table.

``--psi``/``--partition``: each coalition and 20 random coalitions of its size summed with ψ's
float32 storage (the tests' path) and with a float64 copy; prints the largest difference
relative to the spread of the random coalitions' sums.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.stats  # noqa: F401  (imported here so its one-off import cost stays out of the timings)

from hedonic_neurons.metrics import _sampling
from hedonic_neurons.metrics.nulls import pair_null_test, pair_nulls, pooled_pair_null, prepare_phi
from hedonic_neurons.partition import Partition


def timings(ns: list[int], draws: int, pooled_draws: int, seed: int) -> None:
    print(f"{'n':>6} {'coalitions':>10} {'giant':>6} {'pair_null_test (s)':>19} {'pooled_pair_null (s)':>21} "
          f"{'pair_nulls (s)':>15}")
    for n in ns:
        rng = np.random.default_rng(seed)
        phi = rng.normal(size=(n, n))
        phi = (phi + phi.T) / 2
        giant = int(0.42 * n)
        sizes = [giant] + [int(x) for x in rng.integers(2, 11, 100)]
        if sum(sizes) > n:
            print(f"{n:>6}  skipped: the giant and 100 small coalitions need {sum(sizes)} players")
            continue
        sizes += [1] * (n - sum(sizes))
        part = Partition.from_labels(rng.permutation(np.repeat(np.arange(len(sizes)), sizes)))
        t0 = time.perf_counter()
        df = pair_null_test(phi, part, n_draws=draws, seed=seed)
        t1 = time.perf_counter()
        pooled_pair_null(phi, part, n_draws=pooled_draws, seed=seed)
        t2 = time.perf_counter()
        pair_nulls(phi, part, n_draws=pooled_draws, seed=seed)
        t3 = time.perf_counter()
        print(f"{n:>6} {len(df):>10} {giant:>6} {t1 - t0:>19.2f} {t2 - t1:>21.2f} {t3 - t2:>15.2f}")


def crossover(ns: list[int], seed: int, b: int = 200) -> None:
    print(f"{'n':>6} {'dtype':>8} " + " ".join(f"{'s=n/' + str(f) + ' gather':>16} {'GEMM':>8}" for f in (40, 20, 10))
          + "   (ms per random coalition)")
    for n in ns:
        for dt in (np.float64, np.float32):
            phi = np.random.default_rng(seed).standard_normal((n, n)).astype(dt)
            np.fill_diagonal(phi, 0.0)
            cells = []
            for frac in (40, 20, 10):
                s = max(2, n // frac)
                idx = _sampling._draw_subsets(np.random.default_rng(seed + 1), n, s, b)
                t = time.perf_counter()
                phi[idx[:, :, None], idx[:, None, :]].sum(axis=(1, 2), dtype=np.float64)
                gather = time.perf_counter() - t
                t = time.perf_counter()
                step = max(1, _sampling._BLOCK_ELEMENTS // n)
                for start in range(0, b, step):
                    part = idx[start:start + step]
                    m = np.zeros((n, part.shape[0]), dtype=dt)
                    m[part, np.arange(part.shape[0])[:, None]] = 1.0
                    np.einsum("ib,ib->b", m, phi @ m, dtype=np.float64)
                gemm = time.perf_counter() - t
                cells.append(f"{gather / b * 1e3:>16.2f} {gemm / b * 1e3:>8.2f}")
            print(f"{n:>6} {np.dtype(dt).name:>8} " + " ".join(cells), flush=True)


def precision(psi_path: str, partition_path: str, seed: int, b: int = 20) -> None:
    from hedonic_neurons.synergy import SynergyMatrix

    psi = SynergyMatrix.load(psi_path)
    part = Partition.from_json(partition_path)
    p32, p64 = prepare_phi(psi), prepare_phi(psi.values.astype(np.float64))
    rng = np.random.default_rng(seed)
    print(f"ψ {psi.n} x {psi.n} ({p32.values.dtype}, used in place: {np.shares_memory(p32.values, psi.values)})")
    print(f"{'size':>6} {'path':>7} {'max |W32 - W64| / null sd':>26} {'max relative':>13}")
    for members in part.coalitions:
        s = int(members.size)
        if s < 2 or s >= psi.n:
            continue
        idx = np.stack([members] + [np.sort(rng.choice(psi.n, s, replace=False)) for _ in range(b)])
        w32 = _sampling._within_sums(p32.values, idx, p32.pair)
        w64 = _sampling._within_sums(p64.values, idx, p64.pair)
        path = "compl." if s > psi.n // 2 else "GEMM" if _sampling._gemm_path(psi.n, s) else "gather"
        err = np.abs(w32 - w64).max()
        print(f"{s:>6} {path:>7} {err / w64[1:].std():>26.2e} {err / np.abs(w64).max():>13.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=None, help="players per layer")
    ap.add_argument("--draws", type=int, default=1000, help="null draws per size (pair_null_test)")
    ap.add_argument("--pooled-draws", type=int, default=200,
                    help="random partitions (pooled_pair_null, pair_nulls)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crossover", action="store_true", help="gather vs GEMM per draw")
    ap.add_argument("--psi", help="a psi.safetensors of a run (precision mode)")
    ap.add_argument("--partition", help="a partition.json of the same layer (precision mode)")
    args = ap.parse_args()
    if (args.psi is None) != (args.partition is None):
        ap.error("--psi and --partition: give both or neither")
    if args.psi is not None:
        precision(args.psi, args.partition, args.seed)
    elif args.crossover:
        crossover(args.n or [2000, 6000, 14336], args.seed)
    else:
        timings(args.n or [1536, 4096], args.draws, args.pooled_draws, args.seed)


if __name__ == "__main__":
    main()
