"""``hedonic finetune``: LoRA fine-tuning for a scalar IR task from a study config."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLE = """examples:
  hedonic finetune --config-name demo --out runs/demo
  hedonic finetune --config-name llama3.1-8b_cqtr --set data.train=/data/msmarco/train.jsonl

Fine-tunes LoRA on the MLPs of lora.layers (base frozen, scalar head trainable): MSE for
cqtr / mean_tf_l, softmax cross-entropy over one positive and hard negatives for relevance.
Checkpoints are atomic and training resumes from the last one; the adapter is written in
PEFT's format to <out>/cache/model/<key>/adapter, where `hedonic run` with the same config
finds it.
"""


def _finetune(args: argparse.Namespace) -> int:
    from ..pipeline import load_config, run_finetune
    from ._shared import parse_overrides

    source = args.config_name or args.config
    if source is None:
        from ..errors import ConfigError

        raise ConfigError("config: give a YAML path or --config-name NAME.")
    overrides = parse_overrides(args.set)
    if args.out:
        overrides["output_dir"] = args.out
    cfg = load_config(source, **overrides)
    adapter = run_finetune(cfg, progress=not args.quiet)
    print(f"adapter: {adapter}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``finetune`` to the ``hedonic`` command."""
    p = subparsers.add_parser(
        "finetune", help="fine-tune LoRA adapters on the MLPs of chosen layers for a scalar IR task",
        description="Fine-tune LoRA adapters on the MLPs of chosen layers for a scalar IR task "
                    "(the data and model stages of a study config).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="path to a YAML/JSON study config")
    p.add_argument("--config-name", help="a packaged config (see `hedonic run --list-configs`)")
    p.add_argument("--out", help="run directory (overrides output_dir)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_finetune)
