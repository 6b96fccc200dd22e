"""Size and build time of the coalition explorer page (docs/explorer.md). Prints figures; not a test.

Usage::

    python benchmarks/bench_explorer.py            # n = 14336, ~3000 coalitions, 8 layers x 6 methods x 1 seed
    python benchmarks/bench_explorer.py --quick    # n = 2000, 400 coalitions, 3 layers x 2 methods

The artifacts are synthetic (:func:`hedonic_neurons.explorer.synthetic.synthetic_artifacts`):
every coalition has members, 20-bin activation histogram, 5 top + 5 bottom examples from
the capture set and 5 + 5 from the OOD set (query and passage drawn from a pool of
distinct texts of 20-60 words), lineage to the next layer. Reports the time to generate
and to write the artifacts, their Parquet size, the page's build time, and its size with
and without compression.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hedonic_neurons.explorer import build_explorer, write_artifacts
from hedonic_neurons.explorer.synthetic import synthetic_artifacts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=14336, help="neurons per layer")
    ap.add_argument("--coalitions", type=int, default=3000, help="coalitions per partition")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--methods", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--examples", type=int, default=5, help="examples per (coalition, split, kind)")
    ap.add_argument("--texts", type=int, default=3000, help="distinct inputs (query, passage, target)")
    ap.add_argument("--keep", default=None, metavar="DIR", help="write the run (artifacts, explorer.html) here")
    args = ap.parse_args()
    if args.quick:
        args.n, args.coalitions, args.layers, args.methods = 2000, 400, 3, 2
    names = ["hedonic_pas_exact_top_cover", "hedonic_oca_pac_top_cover", "null", "random", "kmeans",
             "hierarchical"][: args.methods]
    names += [f"method{i}" for i in range(len(names), args.methods)]
    t0 = time.perf_counter()
    arts = synthetic_artifacts(layers=range(args.layers), methods=names, seeds=range(args.seeds), n_neurons=args.n,
                               n_coalitions=args.coalitions, n_examples=args.examples, n_texts=args.texts, seed=0)
    t_gen = time.perf_counter() - t0
    print(f"case: n = {args.n}, {args.coalitions} coalitions x {args.layers} layers x {args.methods} methods x "
          f"{args.seeds} seeds = {len(arts.coalitions)} coalitions, {len(arts.examples)} examples, "
          f"{len(arts.lineage)} lineage rows")
    print(f"synthetic tables: {t_gen:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.keep or tmp)
        t0 = time.perf_counter()
        paths = write_artifacts(run, coalitions=arts.coalitions, examples=arts.examples, lineage=arts.lineage,
                                partitions=arts.partitions)
        t_write = time.perf_counter() - t0
        size_pq = sum(p.stat().st_size for p in paths.values())
        print(f"write_artifacts: {t_write:.1f} s, {size_pq / 1e6:.1f} MB of Parquet")
        t0 = time.perf_counter()
        page = build_explorer(run)
        t_build = time.perf_counter() - t0
        print(f"build_explorer (read + validate + build, compressed): {t_build:.1f} s, "
              f"page {page.stat().st_size / 1e6:.1f} MB")
        t0 = time.perf_counter()
        plain = build_explorer(arts, run / "explorer_plain.html", compress=False)
        t_plain = time.perf_counter() - t0
        print(f"build_explorer (tables in memory, plain JSON): {t_plain:.1f} s, page {plain.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
