"""Stage *data*: the study's pairs with their targets and LETOR features (docs/method.md §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io import write_json
from ..config import StudyConfig

__all__ = ["load_study_tokenizer", "stage_data"]


def load_study_tokenizer(cfg: StudyConfig) -> Any:
    """The tokenizer of ``model.base`` (local files only unless configured otherwise)."""
    from ...models import load_tokenizer
    from ...models.resolve import resolve_base

    return load_tokenizer(resolve_base(cfg.model.base), local_files_only=cfg.model.local_files_only,
                          trust_remote_code=cfg.model.trust_remote_code)


def stage_data(cfg: StudyConfig, out: Path) -> None:
    """Write ``{train,val,capture,ood}.parquet`` (with ``target``), ``{capture,ood}_features.parquet``,
    ``ood_qrels.parquet`` (when ``data.ood_qrels`` is set) and ``data.json`` into ``out``."""
    from ...ir import (
        CorpusStats,
        compute_targets,
        drop_long_queries,
        letor_features,
        load_qrels,
        read_pairs_file,
        split_pairs,
    )

    dc = cfg.data
    if dc.source == "offline":
        from ...ir import build_offline_corpus

        corpus = build_offline_corpus(out / "corpus", seed=dc.corpus_seed)
        train_all, ood, val_all = corpus.pairs["train"], corpus.pairs["ood"], None
    else:
        train_all = read_pairs_file(str(dc.train), "data.train")
        ood = read_pairs_file(str(dc.ood), "data.ood")
        val_all = read_pairs_file(str(dc.val), "data.val") if dc.val else None
    tok = load_study_tokenizer(cfg)

    def n_tokens(q: str) -> int:
        return len(tok(q, add_special_tokens=False)["input_ids"])

    budget = cfg.model.max_length // 2  # a query over half the budget leaves no room for the passage
    train_all, n_drop_train = drop_long_queries(train_all, n_tokens, budget)
    ood, n_drop_ood = drop_long_queries(ood, n_tokens, budget)
    if val_all is not None:
        val_all, _ = drop_long_queries(val_all, n_tokens, budget)
    splits = split_pairs(train_all, ood, n_train=dc.n_train, n_val=dc.n_val, n_capture=dc.n_capture,
                         n_ood=dc.n_ood, seed=dc.corpus_seed, val_pool=val_all)
    stats = CorpusStats.from_passages(
        pd.concat([train_all["passage"], splits.ood["passage"]])
        .drop_duplicates().tolist())
    for name in ("train", "val", "capture", "ood"):
        df = getattr(splits, name).copy()
        df["target"] = compute_targets(df, cfg.task).to_numpy(dtype=np.float64)
        df.to_parquet(out / f"{name}.parquet")
        if name in ("capture", "ood"):
            letor_features(df, stats).reset_index(drop=True).to_parquet(out / f"{name}_features.parquet")
    if dc.ood_qrels is not None:
        load_qrels(dc.ood_qrels).to_parquet(out / "ood_qrels.parquet")
    write_json(out / "data.json", {"n_train": len(splits.train), "n_val": len(splits.val),
                                   "n_capture": len(splits.capture), "n_ood": len(splits.ood), "source": dc.source,
                                   "dropped_long_queries": {"train": n_drop_train, "ood": n_drop_ood}})
