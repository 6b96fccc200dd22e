"""``hedonic partition`` and ``hedonic stability``: the game core on the command line.

Both commands only need NumPy/SciPy (no torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METHOD_ALIASES", "register", "run_partition", "run_stability"]

#: Short names of ``--method`` (kept for existing scripts) -> the vocabulary's method names.
METHOD_ALIASES: dict[str, str] = {"exact": "top_cover", "pac": "pac_top_cover", "nash": "nash_stable"}

_PARTITION_EPILOG = """\
example:
  hedonic partition layer7.pas.safetensors --method pac --k 3 --m 800000 --omega 80000 \\
      --size-min 2 --size-max 10 --sampler uniform --seed 0 --out layer7.pac_top_cover.json
  hedonic partition phi.npy --method exact --k 3 --out phi.top_cover.json
  hedonic partition phi.npy --method nash_stable --seed 0 --max-sweeps 200 --out phi.nash.json

METHOD is a partition method of the vocabulary (pac_top_cover, top_cover, nash_stable, ...)
or one of the short names pac, exact, nash.

PHI is an (n, n) matrix in .npy (loaded without pickle) or .safetensors (tensor 'values'
or the only tensor). The partition is written as JSON; the summary and the empirical
blocking rate (with its one-sided 95% Clopper-Pearson bound) are printed.
"""

_STABILITY_EPILOG = """\
example:
  hedonic stability layer7.pas.safetensors layer7.pac_top_cover.json --k 3 --n-samples 100000 --seed 1

Prints the empirical blocking rate over fresh coalitions from D with its 95% upper bound,
the internal-stability check, and (for n <= 14) the brute-force core check.
"""


def _load_phi(path: str) -> np.ndarray:
    from ..io import load_array

    return load_array(path)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=3, help="top partners per choice set (default 3)")
    p.add_argument("--size-min", type=int, default=2, help="smallest sampled coalition (default 2)")
    p.add_argument("--size-max", type=int, default=10, help="largest sampled coalition (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def register(subparsers: Any) -> None:
    """Add the ``partition`` and ``stability`` sub-commands."""
    p = subparsers.add_parser(
        "partition",
        help="partition a synergy matrix into coalitions (exact Top Covering, PAC-Top-Cover, Nash-stable ASHG)",
        description="Partition players into coalitions of the top-k responsive game (docs/method.md §4-§5.2) "
                    "or the additively separable game (§5.6).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_PARTITION_EPILOG,
    )
    p.add_argument("phi", metavar="PHI", help="(n, n) valuation matrix (.npy or .safetensors)")
    from .. import vocab

    p.add_argument("--method", choices=(*vocab.names("method"), *METHOD_ALIASES), default="pac",
                   metavar="METHOD",
                   help="partition method: " + ", ".join(
                       f"{name} ({vocab.PARTITION_METHODS[name].label})" for name in vocab.names("method"))
                        + "; short names: " + ", ".join(f"{a} = {m}" for a, m in METHOD_ALIASES.items())
                        + " (default pac)")
    _common(p)
    p.add_argument("--m", type=int, default=800_000, help="reservoir size (default 800000)")
    p.add_argument("--omega", type=int, default=80_000, help="coalitions per round (default 80000)")
    p.add_argument("--sampler", choices=("uniform", "top", "weighted", "exhaustive"), default="uniform",
                   help="PAC coalition sampler (default uniform)")
    p.add_argument("--emit", choices=("smallest", "all"), default="smallest",
                   help="sink SCCs emitted per round (default smallest)")
    p.add_argument("--max-sweeps", type=int, default=200,
                   help="nash_stable: cap on best-response sweeps (default 200)")
    p.add_argument("--order", choices=("random", "index"), default="random",
                   help="nash_stable: visiting order per sweep, seeded permutation or index order (default random)")
    p.add_argument("--eps-samples", type=int, default=100_000,
                   help="fresh coalitions for the blocking rate; 0 skips it (default 100000)")
    p.add_argument("--out", default=None, help="write the partition JSON here")
    p.set_defaults(func=run_partition)

    s = subparsers.add_parser(
        "stability",
        help="measure a partition's stability: empirical blocking rate, brute-force core check",
        description="Stability of a partition under the top-k responsive game (docs/method.md §5).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_STABILITY_EPILOG,
    )
    s.add_argument("phi", metavar="PHI", help="(n, n) valuation matrix (.npy or .safetensors)")
    s.add_argument("partition", metavar="PARTITION", help="partition JSON")
    _common(s)
    s.add_argument("--n-samples", type=int, default=100_000, help="fresh coalitions drawn (default 100000)")
    s.set_defaults(func=run_stability)


def _check_common(args: argparse.Namespace) -> None:
    """Argument checks that need no data: run before anything is loaded or computed."""
    from .._validation import check_positive_int, check_size_range

    check_positive_int(args.k, "--k")
    check_size_range((args.size_min, args.size_max), "--size-min/--size-max")
    check_positive_int(args.seed, "--seed", minimum=0)


def _check_partition_args(args: argparse.Namespace) -> None:
    from .._validation import check_positive_int
    from ..errors import InputError
    from ..io import check_output_path

    _check_common(args)
    args.method = METHOD_ALIASES.get(args.method, args.method)
    if args.method == "nash_stable":
        check_positive_int(args.max_sweeps, "--max-sweeps")
    if args.method == "pac_top_cover":
        check_positive_int(args.m, "--m")
        check_positive_int(args.omega, "--omega")
        if args.omega > args.m:
            raise InputError(f"--omega: expected 1 <= omega <= m, got --omega {args.omega} with --m {args.m}.")
    if args.eps_samples < 0:
        raise InputError(f"--eps-samples: expected an integer >= 0, got {args.eps_samples}.")
    if args.out:
        check_output_path(args.out, "--out", inputs=[args.phi], suffixes=(".json",))


def run_partition(args: argparse.Namespace) -> int:
    """Run ``hedonic partition``; returns the exit code."""
    from .. import vocab
    from ..errors import InputError
    from ..game import (
        blocking_rate,
        is_individually_stable,
        is_nash_stable,
        pac_top_cover,
        top_cover,
    )

    _check_partition_args(args)
    spec = vocab.PARTITION_METHODS[vocab.check("method", args.method, where="--method", error=InputError)]
    phi = _load_phi(args.phi)
    if spec.name == "top_cover":
        part = top_cover(phi, k=args.k, emit=args.emit, progress=True)
    elif spec.name == "pac_top_cover":
        part = pac_top_cover(
            phi, k=args.k, m=args.m, omega=args.omega, size_range=(args.size_min, args.size_max),
            sampler=args.sampler, emit=args.emit, seed=args.seed, progress=True,
        )
    else:  # any other registered method, with the options it declares
        part = spec.run(phi, k=args.k, emit=args.emit, m=args.m, omega=args.omega,
                        size_range=(args.size_min, args.size_max), sampler=args.sampler, seed=args.seed,
                        max_sweeps=args.max_sweeps, order=args.order)
    print(part.summary())
    meta: dict[str, Any] = {"phi": str(Path(args.phi))}
    if not spec.top_responsive:  # no blocking rate (a top-k notion): Nash and individual stability
        stab = {"nash_stable": is_nash_stable(phi, part), "individually_stable": is_individually_stable(phi, part)}
        print(f"converged: {part.meta.get('converged')} after {part.meta.get('sweeps')} sweep(s); "
              f"Nash stable: {stab['nash_stable']}; individually stable: {stab['individually_stable']}")
        meta["stability"] = stab
    if args.eps_samples > 0 and spec.top_responsive:
        br = blocking_rate(phi, part, k=args.k, n_samples=args.eps_samples,
                           size_range=(args.size_min, args.size_max), seed=args.seed + 1)
        print(br)
        meta["blocking_rate"] = {**br.to_dict(), "seed": args.seed + 1}
    part = part.with_meta(**meta)
    if args.out:
        part.to_json(args.out)
        print(f"wrote {args.out}")
    return 0


def run_stability(args: argparse.Namespace) -> int:
    """Run ``hedonic stability``; returns the exit code."""
    from ..game import blocking_rate, find_blocking_coalition, internally_unstable_coalitions
    from ..game.stability import BRUTE_FORCE_MAX_N
    from ..partition import Partition

    _check_common(args)
    from .._validation import check_positive_int

    check_positive_int(args.n_samples, "--n-samples")
    phi = _load_phi(args.phi)
    part = Partition.from_json(Path(args.partition))
    print(part.summary())
    br = blocking_rate(phi, part, k=args.k, n_samples=args.n_samples,
                       size_range=(args.size_min, args.size_max), seed=args.seed)
    print(br)
    bad = internally_unstable_coalitions(phi, part, k=args.k)
    if bad:
        print(f"internal stability: FAILS for {len(bad)} coalition(s) (first: #{bad[0]})")
    else:
        print("internal stability: every coalition's choice-set graph is strongly connected")
    n = part.n_players
    if n <= BRUTE_FORCE_MAX_N:
        blocker = find_blocking_coalition(phi, part, k=args.k)
        if blocker is None:
            print(f"core check (brute force over {2**n - 1} coalitions): core stable")
        else:
            print(f"core check (brute force): NOT core stable; blocked by {blocker.tolist()}")
    else:
        print(f"core check: skipped (brute force needs n <= {BRUTE_FORCE_MAX_N}, n = {n})")
    return 0
