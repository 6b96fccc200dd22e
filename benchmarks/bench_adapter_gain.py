"""How much a study's adapter matters on the OOD split, and which layer carries it (docs/method.md §8.5).

Usage::

    python benchmarks/bench_adapter_gain.py --out /tmp/gain                  # fine-tune with demo.yaml
    python benchmarks/bench_adapter_gain.py --out /tmp/gain --set lora.layers=[3,4] --set finetune.max_steps=250
    python benchmarks/bench_adapter_gain.py --run-dir runs/demo              # reuse a finished run's adapter
    python benchmarks/bench_adapter_gain.py --config-name smollm2 --out /tmp/gain-smol --threads 1

With a packaged config (``--config-name``, default ``demo``; plus ``--set`` overrides, parsed as
YAML values) it builds the
data split and fine-tunes exactly as the pipeline's *data* and *model* stages do (into
``--out``; with ``--run-dir`` it reads those units from the run's cache instead), then scores
the OOD pairs with

- the fine-tuned model (``finetuned``),
- every LoRA neuron of every LoRA layer reverted, head kept (``no_lora``; through
  :func:`hedonic_neurons.models.ablate`),
- every LoRA neuron of one layer reverted, for each LoRA layer (``-L<layer>``).

The task metric is −MSE (CQTR, Mean-TF/L). The adapter's **gain** is
``MSE(no_lora) − MSE(finetuned)``; a layer's **fraction** is the share of the gain its
reversion alone undoes, ``(MSE(−L) − MSE(finetuned)) / gain``. Uncertainty: a bootstrap over
OOD *queries* (pairs of one query resampled together; percentile 95% intervals) and a paired
t-test over queries of the per-query squared-error difference (``scipy.stats.ttest_rel``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _score_all(model: Any, tok: Any, ood: pd.DataFrame, max_length: int, batch_size: int) -> np.ndarray:
    import torch

    from hedonic_neurons.models import encode_pairs, score

    out = []
    with torch.no_grad():
        for batch in encode_pairs(tok, ood["query"].tolist(), ood["passage"].tolist(), max_length=max_length,
                                  batch_size=batch_size):
            out.append(score(model, batch).double().cpu().numpy())
    return np.concatenate(out)


def _per_query(sq_err: np.ndarray, qid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-query sums of squared errors and pair counts (for the query bootstrap)."""
    codes, uniq = pd.factorize(pd.Series(qid).astype(str))
    sums = np.bincount(codes, weights=sq_err, minlength=len(uniq))
    counts = np.bincount(codes, minlength=len(uniq)).astype(np.float64)
    return sums, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-adapter-gain"),
                    help="work directory for data and fine-tuning (ignored with --run-dir)")
    ap.add_argument("--config-name", default="demo",
                    help="packaged study config (hedonic run --list-configs); default demo")
    ap.add_argument("--run-dir", type=Path, default=None, help="a finished run whose data and adapter to reuse")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of the config (dotted key, YAML value); repeatable")
    ap.add_argument("--resume", action="store_true",
                    help="continue fine-tuning from the checkpoints in --out (same config only)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the OOD queries")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from hedonic_neurons.models import ablate, architecture
    from hedonic_neurons.pipeline.config import load_config
    from hedonic_neurons.pipeline.plan import build_plan
    from hedonic_neurons.pipeline.stages.data import load_study_tokenizer, stage_data
    from hedonic_neurons.pipeline.stages.finetune import load_study_model, stage_model

    overrides = _overrides(args.sets)
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.run_dir is not None:
        cfg = load_config(args.config_name, **{**overrides, "output_dir": str(args.run_dir)})
        plan = build_plan(cfg, args.run_dir)
        data_dir, model_dir = plan.data.path, plan.model.path
        if not (model_dir / "adapter" / "adapter_config.json").is_file():
            raise SystemExit(f"--run-dir: no adapter at {model_dir / 'adapter'}; pass the same --set overrides "
                             "as the run, or run it first.")
        t_ft = float("nan")
    else:
        cfg = load_config(args.config_name, **{**overrides, "output_dir": str(args.out)})
        data_dir, model_dir = args.out / "data", args.out / "model"
        if not (data_dir / "ood.parquet").is_file():
            data_dir.mkdir(parents=True, exist_ok=True)
            stage_data(cfg, data_dir)
        t1 = time.perf_counter()
        if model_dir.exists():
            import shutil
            shutil.rmtree(model_dir)
        model_dir.mkdir(parents=True)
        work = args.out / "finetune-work"
        if work.exists() and not args.resume:
            import shutil
            shutil.rmtree(work)
        stage_model(cfg, data_dir, work, model_dir, progress=False)
        t_ft = time.perf_counter() - t1
    if cfg.task not in ("cqtr", "mean_tf_l"):
        raise SystemExit(f"task {cfg.task!r}: this benchmark measures −MSE tasks (cqtr, mean_tf_l) only.")

    ood = pd.read_parquet(data_dir / "ood.parquet")
    model = load_study_model(cfg, str(model_dir / "adapter"))
    model.eval()
    tok = load_study_tokenizer(cfg)
    d_ff = architecture(model).d_ff
    lo, hi = cfg.lora.layers
    layers = list(range(lo, hi + 1))
    every = np.arange(d_ff)
    y = ood["target"].to_numpy(np.float64)
    qid = ood["qid"].to_numpy()

    def sq(neurons: dict[int, np.ndarray]) -> np.ndarray:
        with ablate(model, neurons):
            s = _score_all(model, tok, ood, cfg.model.max_length, cfg.model.batch_size)
        return (s - y) ** 2

    conds: dict[str, np.ndarray] = {"finetuned": sq({}), "no_lora": sq({layer: every for layer in layers})}
    for layer in layers:
        conds[f"-L{layer}"] = sq({layer: every})
    t_score = time.perf_counter() - t0 - (0.0 if np.isnan(t_ft) else t_ft)

    per_q = {k: _per_query(v, qid) for k, v in conds.items()}
    counts = per_q["finetuned"][1]
    n_q = counts.size
    rng = np.random.default_rng(args.seed)
    boot = rng.integers(0, n_q, size=(args.n_boot, n_q))
    bcount = counts[boot].sum(axis=1)
    bmse = {k: s[boot].sum(axis=1) / bcount for k, (s, _) in per_q.items()}
    mse = {k: float(v.mean()) for k, v in conds.items()}
    gain = mse["no_lora"] - mse["finetuned"]
    bgain = bmse["no_lora"] - bmse["finetuned"]

    def ci(a: np.ndarray) -> str:
        lo_, hi_ = np.percentile(a, [2.5, 97.5])
        return f"[{lo_:.4f}, {hi_:.4f}]"

    qmse = {k: s / counts for k, (s, _) in per_q.items()}
    tt = stats.ttest_rel(qmse["no_lora"], qmse["finetuned"])
    print(f"config: lora.layers={list(cfg.lora.layers)} r={cfg.lora.r} lr={cfg.finetune.lr} "
          f"max_steps={cfg.finetune.max_steps} epochs={cfg.finetune.epochs} batch={cfg.finetune.batch_size} "
          f"n_train={cfg.data.n_train}; OOD: {len(ood)} pairs, {n_q} queries; target variance {y.var():.4f}")
    if not np.isnan(t_ft):
        print(f"fine-tuning {t_ft:.0f} s; scoring {len(conds)} conditions {t_score:.0f} s")
    print(f"{'condition':>10} {'OOD MSE':>9} {'95% CI (query bootstrap)':>26}")
    for k in conds:
        print(f"{k:>10} {mse[k]:>9.4f} {ci(bmse[k]):>26}")
    print(f"gain = MSE(no_lora) - MSE(finetuned) = {gain:.4f} {ci(bgain)}; "
          f"paired t over queries t = {tt.statistic:.2f}, p = {tt.pvalue:.2g}")
    print(f"{'reverted':>10} {'fraction of gain':>17} {'95% CI':>18}")
    for layer in layers:
        k = f"-L{layer}"
        frac = (mse[k] - mse["finetuned"]) / gain
        bfrac = (bmse[k] - bmse["finetuned"]) / bgain
        lo_, hi_ = np.percentile(bfrac, [2.5, 97.5])
        print(f"{'L' + str(layer):>10} {frac:>17.1%} {'[' + f'{lo_:.1%}, {hi_:.1%}' + ']':>18}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
