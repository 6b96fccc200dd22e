"""Speed and memory of the game core (docs/method.md §5, §9). Prints figures; not a test.

Usage::

    python benchmarks/bench_game.py                 # n = 14336 (LLaMA-3.1-8B d_ff), paper defaults
    python benchmarks/bench_game.py --quick         # n = 2000, smaller reservoir
    python benchmarks/bench_game.py --n 4096 --phi sparse

The valuation matrix (float32, symmetric, zero diagonal) is one of:

* ``planted`` (default): ``0.1·(A + Aᵀ)``, ``A`` i.i.d. standard normal, plus ``+1`` on
  the diagonal blocks of a partition into blocks of 8 consecutive players;
* ``sparse``: ``-|N(0, 1)|`` everywhere except a random 0.2% of entries set to ``+1``
  (few positive partners: PAC finds mostly singletons, one coalition per round — the
  slowest case for ``emit="smallest"``).

Targets at n = 14336: top_cover <= 15 s, pac_top_cover (m=8e5, ω=8e4, k=3, sizes 2..10)
<= 120 s, blocking_rate with 1e5 draws <= 20 s, nash_stable_partition (additively separable
game, from singletons, random order, to convergence) <= 60 s, peak memory beyond φ <= 2 GB
(peak resident set size during the call minus the RSS before it, sampled every 5 ms from
``/proc``). ``--nash-only`` runs only the additively separable game (and its exact
``is_nash_stable`` check).

The ratio part runs the paper's Algorithm 1 as a plain Python loop (fresh ω samples per
round, one ``preference_key`` call per sample member) and this package's
``pac_top_cover`` with the same (m, ω) at n = 2000, and prints the per-round speed-up.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from hedonic_neurons.game import (
    blocking_rate,
    is_nash_stable,
    nash_stable_partition,
    pac_top_cover,
    preference_key,
    top_cover,
    top_partners,
)
from hedonic_neurons.game._sampling import sample_coalitions

try:  # benchmarks set torch threads when torch is around; the game core never needs it
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    pass


def make_phi(n: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "planted":
        phi = rng.standard_normal((n, n), dtype=np.float32)
        phi += phi.T
        phi *= 0.1
        for s in range(0, n, 8):
            phi[s : s + 8, s : s + 8] += 1.0
    else:
        phi = rng.standard_normal((n, n), dtype=np.float32)
        np.abs(phi, out=phi)
        np.negative(phi, out=phi)
        phi[rng.random((n, n), dtype=np.float32) < 0.002] = 1.0
        phi = np.maximum(phi, phi.T)
    np.fill_diagonal(phi, 0.0)
    return phi


def _rss_bytes() -> int:
    """Current resident set size (Linux ``/proc``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()
    except OSError:  # pragma: no cover - non-Linux
        import psutil

        return int(psutil.Process().memory_info().rss)


class PeakRSS:
    """Samples the RSS every 5 ms in a thread; ``peak`` is the largest value seen.

    (tracemalloc would see NumPy's allocations too, but it slows the Python parts of the
    algorithms several-fold, which would falsify the timings.)
    """

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_bytes())


def measure(label: str, fn: Callable[[], Any]) -> Any:
    with PeakRSS() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{label:<44s} {dt:8.2f} s  (CPU {cpu:7.2f} s)   peak RSS beyond phi {(mem.peak - mem.base) / 2**30:6.2f} GiB",
          flush=True)
    return out


def plain_algorithm_1(
    phi: np.ndarray, k: int, m: int, omega: int, size_range: tuple[int, int], seed: int, time_limit: float
) -> tuple[int, float, bool]:
    """Algorithm 1 as written: fresh ω reservoir samples inside R per round, Python loops.

    Returns (rounds done, seconds, finished).
    """
    rng = np.random.default_rng(seed)
    n = phi.shape[0]
    R = set(range(n))
    # the reservoir, reversed so that list.pop() takes "the first" sample
    res = [row[row >= 0].tolist() for row in sample_coalitions(np.arange(n), m, size_range, rng)][::-1]
    rounds, t0 = 0, time.perf_counter()
    while R:
        S_round: list[list[int]] = []
        while len(S_round) < omega:
            if not res:
                Ra = np.array(sorted(R))
                res = [row[row >= 0].tolist() for row in sample_coalitions(Ra, m, size_range, rng)][::-1]
            T = res.pop()
            if all(p in R for p in T):  # samples meeting a removed player can never be used again
                S_round.append(T)
        best: dict[int, tuple[Any, list[int]]] = {}
        for T in S_round:
            for i in T:
                key = preference_key(phi, i, T, k)
                if i not in best or key > best[i][0]:
                    best[i] = (key, T)
        Rl = sorted(R)
        idx = {p: a for a, p in enumerate(Rl)}
        src, dst = [], []
        for i in Rl:
            if i in best:
                for j in top_partners(phi, i, best[i][1], k):
                    src.append(idx[i])
                    dst.append(idx[int(j)])
        g = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(Rl), len(Rl)))
        _, lab = connected_components(g, directed=True, connection="strong")
        bad = {lab[s] for s, d in zip(src, dst) if lab[s] != lab[d]}
        comps: dict[int, list[int]] = {}
        for a, c in enumerate(lab.tolist()):
            if c not in bad:
                comps.setdefault(c, []).append(Rl[a])
        X = min(comps.values(), key=lambda c: (len(c), c[0]))
        R -= set(X)
        rounds += 1
        if time.perf_counter() - t0 > time_limit:
            return rounds, time.perf_counter() - t0, False
    return rounds, time.perf_counter() - t0, True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=14336)
    ap.add_argument("--quick", action="store_true", help="n = 2000, m = 8e4, ω = 8e3")
    ap.add_argument("--phi", choices=("planted", "sparse"), default="planted")
    ap.add_argument("--skip-ratio", action="store_true", help="skip the plain-loop comparison")
    ap.add_argument("--ratio-time-limit", type=float, default=120.0)
    ap.add_argument("--nash-only", action="store_true", help="only nash_stable_partition and its check")
    args = ap.parse_args()
    n = 2000 if args.quick else args.n
    m, omega = (80_000, 8_000) if args.quick else (800_000, 80_000)

    phi = make_phi(n, args.phi)
    print(f"phi: {args.phi}, n = {n}, float32, {phi.nbytes / 2**30:.2f} GiB; m = {m}, omega = {omega}, k = 3")
    ns = measure("nash_stable_partition(singletons, random)", lambda: nash_stable_partition(phi, seed=0))
    print(f"    {ns.summary()}  sweeps {ns.meta['sweeps']}, moves {ns.meta['moves']}, "
          f"converged {ns.meta['converged']}, potential {ns.meta['potential']:.6g}")
    ok = measure("is_nash_stable (exact recomputation)", lambda: is_nash_stable(phi, ns))
    print(f"    Nash stable: {ok}")
    if args.nash_only:
        print(f"max RSS of the process (incl. phi and interpreter): "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        return
    tc = measure("top_cover(k=3)", lambda: top_cover(phi, 3))
    print(f"    {tc.summary()}  rounds {tc.meta['n_rounds']}")
    pac = measure("pac_top_cover(uniform, emit=smallest)", lambda: pac_top_cover(phi, 3, m=m, omega=omega))
    print(f"    {pac.summary()}  rounds {pac.meta['n_rounds']}, drawn {pac.meta['n_samples_drawn']}")
    br = measure("blocking_rate(top_cover, 1e5 draws)", lambda: blocking_rate(phi, tc, 3, 100_000, seed=1))
    print(f"    {br}")
    br = measure("blocking_rate(pac_top_cover, 1e5 draws)", lambda: blocking_rate(phi, pac, 3, 100_000, seed=1))
    print(f"    {br}")
    print(f"max RSS of the process (incl. phi and interpreter): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")

    if args.skip_ratio:
        return
    n2, m2, w2 = 2000, 80_000, 8_000
    phi2 = make_phi(n2, args.phi, seed=1)
    print(f"\nratio vs plain-loop Algorithm 1 at n = {n2} (m = {m2}, omega = {w2}, the paper's App. I settings)")
    t0 = time.perf_counter()
    fast = pac_top_cover(phi2, 3, m=m2, omega=w2)
    t_fast = time.perf_counter() - t0
    r_fast = fast.meta["n_rounds"]
    rounds, t_plain, done = plain_algorithm_1(phi2, 3, m2, w2, (2, 10), 0, args.ratio_time_limit)
    per_fast, per_plain = t_fast / r_fast, t_plain / rounds
    print(f"pac_top_cover: {t_fast:.2f} s for {r_fast} rounds ({per_fast * 1e3:.1f} ms/round)")
    print(f"plain loop:    {t_plain:.2f} s for {rounds} rounds{'' if done else ' (stopped at the time limit)'} "
          f"({per_plain * 1e3:.1f} ms/round)")
    print(f"speed-up per round: {per_plain / per_fast:.0f}x"
          + (f"; whole run: {t_plain / t_fast:.0f}x" if done else ""))


if __name__ == "__main__":
    main()
