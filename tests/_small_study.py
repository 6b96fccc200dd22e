"""A small study for the executor and run-directory tests: a random 3-block BERT, two layers,
one valuation, exact Top Covering, two baselines, one seed (every stage, model units included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ART_FILES = ("artifacts/partitions", "artifacts/phi", "artifacts/records", "artifacts/transitions")


def make_tiny_bert(d: Path) -> Path:
    """A random 3-block BERT (d = 32, d_ff = 64) saved with the MiniLM tokenizer into ``d``."""
    import torch
    from transformers import BertConfig, BertModel

    from tests.tiny_models import minilm_tokenizer

    cfg = BertConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                     num_attention_heads=4, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    minilm_tokenizer().save_pretrained(d)
    return d


def small_config(base: Path, out: Path, **changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "small", "task": "cqtr",
        "model": {"base": str(base), "device": "cpu", "max_length": 32, "batch_size": 24},
        "lora": {"r": 2, "alpha": 4, "dropout": 0.0, "layers": [1, 2]},
        "finetune": {"lr": 5e-3, "batch_size": 16, "micro_batch_size": 16, "epochs": 1, "max_steps": 1,
                     "checkpoint_every": 0, "eval_every": 0},
        "data": {"source": "offline", "n_train": 32, "n_val": 8, "n_capture": 32, "n_ood": 16},
        "discovery": {"layers": [1, 2], "valuations": ["oca"], "methods": ["top_cover"],
                      "baselines": ["random", "kmeans"], "seeds": [0]},
        "evaluation": {"stability_samples": 100, "ood_max_coalitions": 1},
        "tracking": {"sankey": False},
        "output_dir": str(out), "n_jobs": 1,
    }
    for k, v in changes.items():
        node = cfg
        *head, last = k.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = v
    return cfg


def _strip_created(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_created(v) for k, v in obj.items() if k != "created"}
    if isinstance(obj, list):
        return [_strip_created(v) for v in obj]
    return obj


def artifact_differences(a: Path, b: Path) -> list[str]:
    """Files of two runs' artifacts that differ in anything but provenance ``created`` times.

    Partition JSON: equal after dropping every ``created`` key; safetensors: every array
    byte-equal and the metadata equal after dropping ``created``; ``results.csv`` and
    ``transitions.csv``: byte-equal.
    """
    from safetensors import safe_open

    out: list[str] = []
    for sub in ART_FILES:
        fa = sorted(p.relative_to(a) for p in (a / sub).rglob("*") if p.is_file())
        fb = sorted(p.relative_to(b) for p in (b / sub).rglob("*") if p.is_file())
        if fa != fb:
            out.append(f"{sub}: file lists differ {sorted(set(map(str, fa)) ^ set(map(str, fb)))}")
            continue
        for f in fa:
            pa, pb = a / f, b / f
            if f.suffix == ".json":
                same = _strip_created(json.loads(pa.read_text())) == _strip_created(json.loads(pb.read_text()))
            elif f.suffix == ".safetensors":
                with safe_open(str(pa), "np") as x, safe_open(str(pb), "np") as y:
                    same = sorted(x.keys()) == sorted(y.keys()) and all(
                        x.get_tensor(k).tobytes() == y.get_tensor(k).tobytes()
                        and x.get_tensor(k).dtype == y.get_tensor(k).dtype for k in x.keys())
                    ma, mb = x.metadata() or {}, y.metadata() or {}
                    same = same and ma.keys() == mb.keys() and all(
                        _strip_created(json.loads(ma[k])) == _strip_created(json.loads(mb[k])) for k in ma)
            else:
                same = pa.read_bytes() == pb.read_bytes()
            if not same:
                out.append(str(f))
    for f in ("artifacts/results.csv", "artifacts/transitions.csv"):
        if (a / f).read_bytes() != (b / f).read_bytes():
            out.append(f)
    return out


def n_partition_files(run: Path) -> int:
    return int(np.sum([1 for _ in (run / "artifacts" / "partitions").rglob("*.json")]))
