"""Stage *model*: LoRA fine-tuning of the study's base model, or an existing adapter (paper §4)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import ArtifactError
from ...io import write_json
from ..config import StudyConfig
from .data import load_study_tokenizer

__all__ = ["load_study_model", "stage_model"]


def load_study_model(cfg: StudyConfig, adapter: str | None, *, fresh_lora: bool = False) -> Any:
    """The study's scalar model: ``model.base`` with ``adapter`` (or a fresh LoRA on ``lora.layers``)."""
    from ...models import load_scalar_model
    from ...models.resolve import resolve_base, resolve_device

    kwargs: dict[str, Any] = dict(torch_dtype=cfg.model.dtype, device=resolve_device(cfg.model.device),
                                  trust_remote_code=cfg.model.trust_remote_code,
                                  local_files_only=cfg.model.local_files_only, seed=cfg.finetune.seed)
    if fresh_lora:
        lo, hi = cfg.lora.layers
        return load_scalar_model(resolve_base(cfg.model.base),
                                 lora={"r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout},
                                 layers=list(range(lo, hi + 1)), **kwargs)
    return load_scalar_model(resolve_base(cfg.model.base), adapter=adapter, **kwargs)


def stage_model(cfg: StudyConfig, data_dir: Path, work_dir: Path, out: Path, *, progress: bool = False) -> None:
    """Fine-tune LoRA on ``data_dir/train.parquet`` (checkpoints in ``work_dir``, so a crash
    resumes) and write ``adapter/``, ``log.jsonl`` and ``model.json``; or check and record the
    configured adapter when fine-tuning is off."""
    if not cfg.finetune.enabled:
        adir = Path(str(cfg.model.adapter))
        if not (adir / "adapter_config.json").is_file():
            raise ArtifactError(f"model.adapter: {adir} has no adapter_config.json (a PEFT adapter directory).")
        write_json(out / "model.json", {"adapter": str(adir.resolve()), "finetuned": False})
        return
    from ...models.finetune import finetune

    model = load_study_model(cfg, None, fresh_lora=True)
    tok = load_study_tokenizer(cfg)
    train = pd.read_parquet(data_dir / "train.parquet")
    val = pd.read_parquet(data_dir / "val.parquet")
    res = finetune(model, tok, train, val, cfg.task, cfg.finetune, work_dir, max_length=cfg.model.max_length,
                   progress=progress)
    shutil.copytree(res.adapter_dir, out / "adapter")
    shutil.copy(res.log_path, out / "log.jsonl")
    write_json(out / "model.json", {"finetuned": True, "steps": res.steps, "initial_val": res.initial_val,
                                    "final_val": res.final_val, "resumed_from": res.resumed_from})
