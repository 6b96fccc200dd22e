"""The run report: tables, figures, artifacts, ``report.md`` and a self-contained ``report.html``.

Tables follow the paper (§4, App. G): Table 1 (OOD drop and feature-alignment R²),
Table 2 (predictivity R²), Table 6 (Pair and Ratio synergy), Table 3 (coalition
transitions across layers). Every cell is the mean ± 95% CI over seeds (t-distribution,
:func:`hedonic_neurons.metrics.stats.mean_ci`) of the per-seed value, itself the mean over
the studied layers. With one seed there is no interval and the cell says so ("± n/a").

The report also shows the measured blocking rate ε̂ of every hedonic partition (with its
one-sided upper bound), coalition size distributions (log-log), Sankey diagrams, and a
warning for every degenerate partition (docs/method.md §5: one giant coalition or almost all
singletons). Plotting lives in functions that take results and return a figure.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io import atomic_path, atomic_write, read_json, write_json
from ..partition import Partition
from ..provenance import provenance

if TYPE_CHECKING:  # pragma: no cover
    from .stages import StudyPlan

__all__ = ["plot_size_distribution", "summary_table", "write_report"]

TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "table1": ("Table 1: extrinsic evaluation on the OOD split: OOD drop ΔM (↑) and feature alignment R² (↑)",
               ("ood_drop", "align_r2")),
    "table2": ("Table 2: coalition predictivity, ridge R² on the OOD split (↑)", ("predictivity_r2",)),
    "table6": ("Table 6: coalition synergy, Pair (↑) and Ratio (↑) on the layer-local readout",
               ("pair", "ratio")),
}


# ---------------------------------------------------------------------- tables
def summary_table(results: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Mean ± 95% CI over seeds of each metric (per-seed value = mean over layers).

    Returns
    -------
    pandas.DataFrame
        One row per method (in ``methods`` order, those present), columns
        ``method, <metric>_mean, <metric>_ci, <metric>_n`` per metric.
    """
    from ..metrics.stats import summarise

    sub = results[results["metric"].isin(list(metrics))]
    per_seed = sub.groupby(["method", "metric", "seed"], sort=False)["value"].mean().reset_index()
    summ = summarise(per_seed, ["method", "metric"])
    rows = []
    for m in methods:
        if m not in set(summ["method"]):
            continue
        row: dict[str, Any] = {"method": m}
        for metric in metrics:
            hit = summ[(summ["method"] == m) & (summ["metric"] == metric)]
            row[f"{metric}_mean"] = float(hit["mean"].iloc[0]) if len(hit) else float("nan")
            row[f"{metric}_ci"] = float(hit["ci"].iloc[0]) if len(hit) else float("nan")
            row[f"{metric}_n"] = int(hit["n"].iloc[0]) if len(hit) else 0
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean: float, ci: float) -> str:
    """``mean ± ci`` with three significant digits (synergies in logit units can be ~1e-8)."""
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(ci):
        return f"{mean:.3g} ± n/a"
    return f"{mean:.3g} ± {ci:.2g}"


def _display(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame({"method": table["method"]})
    for m in metrics:
        out[m] = [_fmt(a, b) for a, b in zip(table[f"{m}_mean"], table[f"{m}_ci"])]
    return out


def transitions_table(transitions: pd.DataFrame) -> pd.DataFrame:
    """Table 3: percent of source coalitions per event and layer pair, mean ± CI over seeds."""
    from ..metrics.stats import summarise

    if transitions.empty:
        return pd.DataFrame()
    summ = summarise(transitions, ["method", "src_layer", "dst_layer", "event"], value="percent")
    summ["cell"] = [_fmt(a, b) for a, b in zip(summ["mean"], summ["ci"])]
    wide = summ.pivot_table(index=["method", "src_layer", "dst_layer"], columns="event", values="cell",
                            aggfunc="first").reset_index()
    wide.columns.name = None
    wide.insert(1, "layers", [f"{a}→{b}" for a, b in zip(wide["src_layer"], wide["dst_layer"])])
    cols = ["method", "layers", *[e for e in ("persist", "split", "merge", "vanish") if e in wide.columns]]
    return wide[cols]


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    return str(v).replace("|", "\\|")


# ---------------------------------------------------------------------- figures
def plot_size_distribution(partitions: dict[str, Partition], title: str) -> Any:
    """Coalition size distribution on log-log axes, as the complementary cumulative count.

    For each size ``s`` the curve gives the number of coalitions with ``|C| >= s``: a
    straight line means a power (Zipf-like) law, the heavy tail the paper reports (App. G);
    a giant coalition shows as a long flat step at the right.

    Parameters
    ----------
    partitions : dict label -> Partition
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    markers = "os^vD<>px*"
    for i, (label, part) in enumerate(partitions.items()):
        sizes, counts = np.unique(part.sizes, return_counts=True)
        at_least = counts[::-1].cumsum()[::-1]  # coalitions with |C| >= s
        ax.step(sizes, at_least, where="post", marker=markers[i % len(markers)], markersize=4, alpha=0.8,
                label=f"{label} (K={part.n_coalitions})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("coalition size s")
    ax.set_ylabel("number of coalitions with |C| ≥ s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _save_fig(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _link(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a cached file into the user-facing artifacts tree."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ---------------------------------------------------------------------- report
def write_report(plan: StudyPlan, results: pd.DataFrame, transitions: pd.DataFrame,
                 timings: dict[str, float]) -> Path:
    """Write artifacts, tables, figures, ``report.md`` and ``report.html`` into the run directory.

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    from .stages import method_label

    cfg = plan.cfg
    run = plan.cache.root.parent
    art = run / "artifacts"
    figs = run / "figures"
    (art / "tables").mkdir(parents=True, exist_ok=True)
    figs.mkdir(parents=True, exist_ok=True)
    labels = plan.labels()
    d = cfg.discovery

    # ---- artifacts: results, partitions, φ, records (hard links into the cache)
    for name, df in (("results", results), ("transitions", transitions)):
        _write_table(df, art / name)
    manifest: dict[str, Any] = {"partitions": {}, "phi": {}, "records": {}, "transitions": {}}
    for layer in d.layers:
        for seed in d.seeds:
            for label in labels:
                try:
                    src = plan.partition_file(layer, label, seed)
                except KeyError:
                    continue
                if src.is_file():
                    dst = art / "partitions" / f"layer{layer}" / f"{label}.seed{seed}.json"
                    _link(src, dst)
                    manifest["partitions"][f"layer{layer}/{label}/seed{seed}"] = str(dst.relative_to(run))
    for (layer, v), u in plan.valuation.items():
        if u.done:
            dst = art / "phi" / f"layer{layer}.{v}.safetensors"
            _link(u.file("phi.safetensors"), dst)
            manifest["phi"][f"layer{layer}/{v}"] = str(dst.relative_to(run))
    for split, unit in (("capture", plan.capture), ("ood", plan.capture_ood)):
        for layer in d.layers:
            f = unit.file(f"layer{layer}.safetensors")
            if f.is_file():
                dst = art / "records" / split / f"layer{layer}.safetensors"
                _link(f, dst)
                manifest["records"][f"{split}/layer{layer}"] = str(dst.relative_to(run))
    sankeys: list[tuple[str, Path | None, Path | None]] = []
    for (label, seed), u in plan.tracking.items():
        if u.done:
            dst = art / "transitions" / f"{label}.seed{seed}.csv"
            _link(u.file("transitions.csv"), dst)
            manifest["transitions"][f"{label}/seed{seed}"] = str(dst.relative_to(run))
            html_p = u.file("sankey.html")
            png_p = u.file("sankey.png")
            if html_p.is_file():
                _link(html_p, figs / f"sankey.{label}.seed{seed}.html")
            if png_p.is_file():
                _link(png_p, figs / f"sankey.{label}.seed{seed}.png")
            if seed == d.seeds[0]:
                sankeys.append((label, figs / f"sankey.{label}.seed{seed}.png" if png_p.is_file() else None,
                                figs / f"sankey.{label}.seed{seed}.html" if html_p.is_file() else None))
    write_json(art / "manifest.json", manifest)

    # ---- report blocks
    blocks: list[tuple[str, Any]] = []
    add = blocks.append
    add(("h1", f"Hedonic neurons: {cfg.name}"))
    add(("p", f"Model `{cfg.model.base}`, task `{cfg.task}`, LoRA r={cfg.lora.r} on the MLPs of layers "
              f"{cfg.lora.layers[0]}–{cfg.lora.layers[1]}; studied layers {list(d.layers)}; valuations "
              f"{list(d.valuations)}; methods {list(d.methods)}; baselines {list(d.baselines)} (matched to "
              f"{'the first hedonic partition' if d.match_baselines == 'first' else 'every hedonic partition'}); "
              f"seeds {list(d.seeds)}. Config hash `{cfg.hash()}`; package provenance: "
              f"version {provenance()['version']}, git {provenance()['git']}."))
    add(("p", f"Re-run: `hedonic run {run / 'config.yaml'}`. Every number below is the mean ± 95% CI over "
              f"{len(d.seeds)} seed(s) (t-distribution) of the per-seed mean over layers; with one seed there "
              "is no interval (n/a). Exact Top Covering (`*_topcover`) is deterministic, so its interval is 0."))
    mj = plan.model.file("model.json")
    if mj.is_file():
        m = read_json(mj)
        if m.get("finetuned"):
            iv, fv = m.get("initial_val", {}), m.get("final_val", {})
            ft = pd.DataFrame([
                {"": "before fine-tuning", "val loss": iv.get("loss"), "val NDCG@10": iv.get("ndcg@10")},
                {"": f"after {m.get('steps')} steps", "val loss": fv.get("loss"), "val NDCG@10": fv.get("ndcg@10")},
            ]).fillna(np.nan)
            add(("h2", "Fine-tuning"))
            add(("p", "Validation loss (MSE for CQTR / Mean-TF/L, softmax cross-entropy for relevance) and "
                      "NDCG@10 (ir_measures, graded relevance of the validation pairs)."))
            add(("table", ft))
        else:
            add(("p", f"Adapter loaded from `{m.get('adapter')}` (no fine-tuning in this run)."))

    # warnings first: degenerate partitions
    warn_rows = []
    stab_rows = []
    for (layer, v, mth, seed), u in plan.partition.items():
        if not u.done:
            continue
        part = Partition.from_json(u.file("partition.json"))
        s = part.summary()
        row: dict[str, Any] = {"layer": layer, "method": method_label(v, mth), "seed": seed,
                               "coalitions": s.n_coalitions, "largest share": s.largest_share,
                               "singleton share": s.singleton_share, "degenerate": s.degenerate or ""}
        su = plan.stability.get((layer, v, mth, seed))
        if su is not None and su.done:
            st = read_json(su.file("stability.json"))
            row.update({"ε̂": st["epsilon"], "ε upper (95%)": st["upper"], "blocking / samples":
                        f"{st['n_blocking']}/{st['n_samples']}"})
        stab_rows.append(row)
        if s.degenerate:
            warn_rows.append(f"layer {layer}, {method_label(v, mth)}, seed {seed}: **{s.degenerate}** "
                             f"(largest coalition {s.largest_share:.1%} of the neurons, singletons "
                             f"{s.singleton_share:.1%})")
    add(("h2", "Warnings"))
    if warn_rows:
        add(("p", "Degenerate partitions (docs/method.md §5, failure signature 1) — read their metrics with care:"))
        add(("ul", warn_rows))
    else:
        add(("p", "No degenerate partition (no coalition above half of the layer, singletons below 90%)."))

    from ..metrics import tables as paper_tables

    builders = {"table1": paper_tables.table_extrinsic, "table2": paper_tables.table_predictivity,
                "table6": paper_tables.table_synergy}
    for tname, (title, metrics) in TABLES.items():
        tab = summary_table(results, metrics, labels)
        _write_table(tab, art / "tables" / f"{tname}_numeric")
        paper = builders[tname](results, methods=labels, digits=3) if not tab.empty else pd.DataFrame()
        _write_table(_flatten(paper), art / "tables" / tname)
        add(("h2", title))
        if tname == "table1":
            add(("p", f"OOD drop: mean over the {cfg.evaluation.ood_max_coalitions} largest coalitions (size ≥ 2) "
                      "of each partition of ΔM(C) = M(ℓ) − M(ℓ−C), ablation = reverting the coalition's LoRA "
                      "parameters; M is NDCG@10 for relevance and −MSE for CQTR / Mean-TF/L. Alignment: mean over "
                      "coalitions of size ≥ 2 of max_j corr²(a_C, f_j) over the LETOR features, on the OOD pairs."))
        elif tname == "table2":
            add(("p", "Coalition mean activations as macro-features; ridge regression trained on the "
                      "in-distribution capture set, R² on the OOD split."))
        else:
            add(("p", "Mean over coalitions of size ≥ 2 of Pair(C) and Ratio(C) (App. G eq. 8), exact on the "
                      "layer-local readout."))
        # shown at three significant digits; the paper's layout (metrics.tables) is in artifacts/tables/
        add(("table", _display(tab, metrics) if not tab.empty else tab))

    t3 = transitions_table(transitions)
    _write_table(t3, art / "tables" / "table3_all_methods")
    add(("h2", "Table 3: coalition dynamics across layers (percent of the source layer's coalitions)"))
    add(("p", f"Coalitions of `{labels[0]}`; thresholds (α_hi, α_lo) = ({cfg.tracking.alpha_hi}, "
              f"{cfg.tracking.alpha_lo}). The same table for every method is in "
              "`artifacts/tables/table3_all_methods.csv`; a threshold sensitivity sweep is in each tracking "
              "unit's `threshold_sweep.csv`."))
    primary = transitions[transitions["method"] == labels[0]] if not transitions.empty else transitions
    t3p = _flatten(paper_tables.table_transitions(primary)) if not primary.empty else pd.DataFrame()
    _write_table(t3p, art / "tables" / "table3")
    add(("table", t3p))

    add(("h2", "Stability: measured blocking rate ε̂ of every hedonic partition"))
    add(("p", f"Fraction of {cfg.evaluation.stability_samples} fresh coalitions drawn from D (sizes "
              f"{d.pac.size_range[0]}–{d.pac.size_range[1]}, independent of the algorithm's samples) that block "
              f"the partition, with a one-sided 95% upper bound; the PAC target is ε = {d.pac.epsilon}."))
    stab = pd.DataFrame(stab_rows)
    _write_table(stab, art / "tables" / "stability")
    add(("table", stab))

    add(("h2", "Coalition size distributions"))
    for layer in d.layers:
        parts: dict[str, Partition] = {}
        for label in labels:
            try:
                f = plan.partition_file(layer, label, d.seeds[0])
            except KeyError:
                continue
            if f.is_file():
                parts[label] = Partition.from_json(f)
        if parts:
            img = _save_fig(plot_size_distribution(parts, f"layer {layer}, seed {d.seeds[0]}"),
                            figs / f"sizes.layer{layer}.png")
            add(("img", (img, f"Coalition sizes, layer {layer}")))

    if sankeys:
        add(("h2", "Coalition flow (Sankey)"))
        for label, png, html_path in sankeys:
            if png is not None:
                add(("img", (png, f"{label}, seed {d.seeds[0]}")))
            if html_path is not None:
                add(("p", f"Interactive: [{html_path.name}](figures/{html_path.name})"))

    add(("h2", "Timings"))
    compute: dict[str, float] = {}
    for u in plan.units():
        if u.done:
            compute[u.stage] = compute.get(u.stage, 0.0) + plan.cache.seconds(u)
    add(("p", "Wall seconds of this invocation per stage (cached units cost nothing), and the compute seconds "
              "recorded when each stage's units were computed (summed over units; parallel units overlap)."))
    add(("table", pd.DataFrame([{"stage": k, "wall s (this run)": round(v, 2)} for k, v in timings.items()])))
    add(("table", pd.DataFrame([{"stage": k, "units": sum(1 for u in plan.units() if u.stage == k),
                                 "compute s (when computed)": round(v, 2)} for k, v in compute.items()])))
    add(("p", "Artifacts: `artifacts/` (results and tables as CSV and Parquet, partitions as JSON, φ and "
              "records as safetensors, transitions), `figures/`, `provenance.json`, `cache/` (one directory "
              "per unit of work, keyed by a hash of its inputs)."))

    md_path = run / "report.md"
    with atomic_write(md_path) as fh:
        fh.write(_render_md(blocks))
    with atomic_write(run / "report.html") as fh:
        fh.write(_render_html(blocks, title=f"Hedonic neurons: {cfg.name}"))
    return md_path


def _flatten(df: pd.DataFrame) -> pd.DataFrame:
    """Index levels become columns and column levels are joined by " / " (CSV/Parquet-friendly)."""
    if df.empty:
        return df
    out = df.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" / ".join(str(x) for x in c) for c in out.columns]
    out.columns = [str(c) for c in out.columns]
    return out.reset_index()


def _write_table(df: pd.DataFrame, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(stem.with_suffix(".csv")) as fh:
        df.to_csv(fh, index=False)
    with atomic_path(stem.with_suffix(".parquet")) as tmp:
        df.to_parquet(tmp, index=False)


def _render_md(blocks: list[tuple[str, Any]]) -> str:
    out: list[str] = []
    for kind, val in blocks:
        if kind == "h1":
            out.append(f"# {val}\n")
        elif kind == "h2":
            out.append(f"## {val}\n")
        elif kind == "p":
            out.append(f"{val}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in val) + "\n")
        elif kind == "table":
            out.append(_md_table(val))
        elif kind == "img":
            path, caption = val
            out.append(f"![{caption}](figures/{path.name})\n")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """Escape HTML, then render `code`, **bold** and [text](link)."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', t)


def _render_html(blocks: list[tuple[str, Any]], title: str) -> str:
    body: list[str] = []
    for kind, val in blocks:
        if kind == "h1":
            body.append(f"<h1>{html.escape(val)}</h1>")
        elif kind == "h2":
            body.append(f"<h2>{html.escape(val)}</h2>")
        elif kind == "p":
            body.append(f"<p>{_inline_md(val)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_md(x)}</li>" for x in val) + "</ul>")
        elif kind == "table":
            body.append(val.to_html(index=False, na_rep="n/a", float_format=lambda x: f"{x:.4g}", border=0)
                        if not val.empty else "<p><em>(no rows)</em></p>")
        elif kind == "img":
            path, caption = val
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"/>'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{padding:4px 10px;"
             "border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}img{max-width:100%}"
             "code{background:#f4f4f4;padding:1px 4px}figcaption{font-size:0.85em;color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
