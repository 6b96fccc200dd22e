"""The packaged SmolLM2 study config (docs/smollm2.md): it parses, it fits SmolLM2's shapes, and a
very small version of it runs end to end through ``run_study`` on the real weights.

The end-to-end test is marked ``slow`` and skipped, with the reason, when SmolLM2 has not been
fetched (``hedonic fetch-model smollm2``; docs/models.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hedonic_neurons import vocab
from hedonic_neurons.models import smollm2
from hedonic_neurons.pipeline.config import config_names, load_config
from tests.helpers import real_smollm2_dir
from tests.tiny_models import one_thread

SMOLLM2_BLOCKS = 30  # docs/models.md: 30 blocks, d = 576, d_ff = 1536


REAL = real_smollm2_dir()


def test_config_parses_and_fits_smollm2() -> None:
    assert "smollm2" in config_names()
    cfg = load_config("smollm2")
    assert cfg.name == "smollm2" and cfg.model.base == "smollm2"
    assert cfg.task in ("cqtr", "relevance") and cfg.data.source == "offline"
    lo, hi = cfg.lora.layers
    assert cfg.lora.r == 8 and 0 < lo <= hi < SMOLLM2_BLOCKS - 1  # a middle block range
    assert set(cfg.discovery.layers) <= set(range(lo, hi + 1)) and len(cfg.discovery.layers) >= 2  # tracking
    assert {"oca", "pas_exact"} <= set(cfg.discovery.valuations)
    assert {"top_cover", "pac_top_cover"} <= set(cfg.discovery.methods)
    if "nash_stable" in vocab.PARTITION_METHODS:
        assert "nash_stable" in cfg.discovery.methods
    assert set(cfg.discovery.baselines) == set(vocab.BASELINES) and len(cfg.discovery.seeds) >= 2
    assert set(cfg.evaluation.metrics) == set(vocab.EVALUATIONS)
    assert cfg.finetune.enabled and cfg.tracking.enabled
    # round trip: the YAML a run writes loads back to the same config
    assert load_config(cfg.to_dict()) == cfg


def test_model_label_names_smollm2() -> None:
    assert vocab.model_label("smollm2") == "SmolLM2-135M-Instruct"


@pytest.fixture()
def _one_thread() -> Iterator[None]:
    with one_thread():  # 2 shared cores: one thread per process is much faster under load
        yield


@pytest.mark.slow
@pytest.mark.skipif(REAL is None, reason=f"SmolLM2 weights not fetched into {smollm2.cache_dir()}: run "
                    "`hedonic fetch-model smollm2` to run the real-weight study test")
def test_tiny_smollm2_study_runs_end_to_end(tmp_path: Path, _one_thread: None) -> None:
    """One fine-tuning step, one layer, a handful of inputs: every stage runs and the report is written."""
    from hedonic_neurons.pipeline import run_study

    layer = 15
    cfg = load_config("smollm2", **{
        "output_dir": str(tmp_path / "run"), "n_jobs": 1, "model.max_length": 32, "model.batch_size": 8,
        "lora.layers": [layer, layer], "discovery.layers": [layer], "discovery.seeds": [0],
        "discovery.pac.m": 500, "discovery.pac.omega": 100,
        "finetune.max_steps": 1, "finetune.batch_size": 4, "finetune.micro_batch_size": 4,
        "finetune.eval_every": 0, "finetune.checkpoint_every": 0,
        "data.n_train": 16, "data.n_val": 4, "data.n_capture": 16, "data.n_ood": 8,
        "evaluation.stability_samples": 200, "evaluation.null_draws": 50, "evaluation.ood_null_draws": 20,
        "evaluation.ood_verify": 2})
    res = run_study(cfg, progress=False)
    assert res.report is not None and res.report.is_file()
    table = res.results
    assert isinstance(table, pd.DataFrame)
    assert set(table["layer"]) - {-1} == {layer}  # -1: run-level rows (e.g. the adapter controls)
    assert set(table["model"]) == {"SmolLM2-135M-Instruct"}
    methods = set(table["method"])
    assert {vocab.method_label("pas_exact", "top_cover"), vocab.method_label("oca", "pac_top_cover")} <= methods
    assert {"random", "kmeans", "hierarchical"} <= methods
    assert table["value"].notna().any()
    text = res.report.read_text()
    assert "SmolLM2-135M-Instruct" in text or "smollm2" in text
