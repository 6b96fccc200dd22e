"""The run report: tables, figures, ``report.md`` and a self-contained ``report.html``.

Renders a :class:`~hedonic_neurons.pipeline.study.StudyResults` value and nothing else: it
reads neither the stage cache nor the stages (the artifacts tree is exported by
:func:`hedonic_neurons.pipeline.study.collect`).

Tables follow the paper (§4, App. G): Table 1 (OOD drop and feature-alignment R²),
Table 2 (predictivity R²), Table 6 (Pair and Ratio synergy), Table 3 (coalition
transitions across layers). Every cell is the mean ± 95% CI over seeds (t-distribution) of
the per-seed value, itself the mean over the studied layers
(:func:`hedonic_neurons.metrics.stats.per_seed_summary`), formatted by
:func:`hedonic_neurons.metrics.tables.format_cell`. With one seed there is no interval and
the cell shows the mean alone.

The report also shows the measured blocking rate ε̂ of every hedonic partition (with its
upper bounds and the PAC (ε, δ) check), coalition size distributions (log-log), Sankey
diagrams, and a warning for every degenerate partition (docs/method.md §5).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..figures import plot_size_distribution, save_png
from ..io import atomic_path, atomic_write
from ..metrics.stats import per_seed_summary
from ..metrics.tables import format_cell, to_markdown
from ..partition import Partition
from ..provenance import provenance

if TYPE_CHECKING:  # pragma: no cover
    from .study import StudyResults

__all__ = ["TABLES", "display_table", "plot_size_distribution", "summary_table", "write_report"]

TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "table1": ("Table 1: extrinsic evaluation on the OOD split: OOD drop ΔM (↑) and feature alignment R² (↑)",
               ("ood_drop", "align_r2", "ood_drop_rel", "frac_sig_ood")),
    "table2": ("Table 2: coalition predictivity, ridge R² on the OOD split (↑)", ("predictivity_r2",)),
    "table6": ("Table 6: coalition synergy, Pair (↑) and Ratio (↑) on the layer-local readout",
               ("pair", "ratio", "pair_heldout", "ratio_heldout", "pair_pooled_heldout", "frac_sig_pair")),
}


# ---------------------------------------------------------------------- tables
def summary_table(results: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str],
                  confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± CI over seeds of each metric (per-seed value = mean over layers).

    Returns
    -------
    pandas.DataFrame
        One row per method (in ``methods`` order, those present), columns
        ``method, <metric>_mean, <metric>_ci, <metric>_n`` per metric.
    """
    sub = results[results["metric"].isin(list(metrics))]
    summ = per_seed_summary(sub, ["method", "metric"], confidence=confidence)
    cells = {(m, met): (mean, ci, n) for m, met, mean, ci, n in summ.itertuples(index=False, name=None)}
    rows = []
    present = set(summ["method"])
    for m in methods:
        if m not in present:
            continue
        row: dict[str, Any] = {"method": m}
        for metric in metrics:
            mean, ci, n = cells.get((m, metric), (float("nan"), float("nan"), 0))
            row[f"{metric}_mean"], row[f"{metric}_ci"], row[f"{metric}_n"] = float(mean), float(ci), int(n)
        rows.append(row)
    return pd.DataFrame(rows)


def display_table(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The cells of :func:`summary_table` as text: ``"mean ± ci"`` with three significant digits
    (synergies in logit units can be ~1e-8)."""
    out = pd.DataFrame({"method": table["method"]})
    for m in metrics:
        out[m] = [format_cell(a, b, 3, significant=True, sep=" ± ")
                  for a, b in zip(table[f"{m}_mean"], table[f"{m}_ci"])]
    return out


def transitions_table(transitions: pd.DataFrame) -> pd.DataFrame:
    """Table 3 for every method: percent of source coalitions per event and layer pair, mean ± CI over seeds."""
    if transitions.empty:
        return pd.DataFrame()
    summ = per_seed_summary(transitions, ["method", "src_layer", "dst_layer", "event"], value="percent")
    summ["cell"] = [format_cell(a, b, 3, significant=True, sep=" ± ") for a, b in zip(summ["mean"], summ["ci"])]
    wide = summ.pivot_table(index=["method", "src_layer", "dst_layer"], columns="event", values="cell",
                            aggfunc="first").reset_index()
    wide.columns.name = None
    wide.insert(1, "layers", [f"{a}→{b}" for a, b in zip(wide["src_layer"], wide["dst_layer"])])
    cols = ["method", "layers", *[e for e in ("persist", "split", "merge", "vanish") if e in wide.columns]]
    return wide[cols]


# ---------------------------------------------------------------------- report
def write_report(study: StudyResults) -> Path:
    """Write the tables (``artifacts/tables/``), figures, ``report.md`` and ``report.html``.

    Parameters
    ----------
    study : StudyResults
        What :func:`hedonic_neurons.pipeline.run_study` returned (or
        :func:`hedonic_neurons.pipeline.study.collect` built).

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    from .. import vocab
    from ..metrics import tables as paper_tables

    cfg, run = study.cfg, study.run_dir
    results, transitions, labels = study.results, study.transitions, list(study.labels)
    art, figs = run / "artifacts", run / "figures"
    d = cfg.discovery
    blocks: list[tuple[str, Any]] = []
    add = blocks.append
    prov = provenance()
    add(("h1", f"Hedonic neurons: {cfg.name}"))
    add(("p", f"Model `{cfg.model.base}`, task `{cfg.task}`, LoRA r={cfg.lora.r} on the MLPs of layers "
              f"{cfg.lora.layers[0]}–{cfg.lora.layers[1]}; studied layers {list(d.layers)}; valuations "
              f"{list(d.valuations)}; methods {list(d.methods)}; baselines {list(d.baselines)} (matched to "
              f"{'the first hedonic partition' if d.match_baselines == 'first' else 'every hedonic partition'}); "
              f"seeds {list(d.seeds)}. Config hash `{cfg.hash()}`; package provenance: "
              f"version {prov['version']}, git {prov['git']}."))
    add(("p", f"Re-run: `hedonic run {run / 'config.yaml'}`. Every number below is the mean ± 95% CI over "
              f"{len(d.seeds)} seed(s) (t-distribution) of the per-seed mean over layers; with one seed there "
              "is no interval and the mean is shown alone. Exact Top Covering (`*_topcover`) is deterministic, "
              "so its interval is 0."))
    from .report_evidence import evidence_blocks, verdict_blocks

    blocks.extend(verdict_blocks(study))  # the answer first (docs/method.md §8.5)
    m = study.finetune
    if m is not None:
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

    stab = {(r["layer"], r["method"], r["seed"]): r for r in study.stability.to_dict("records")}
    warn_rows, stab_rows = [], []
    for key, part in study.partitions.items():
        if key.is_baseline:
            continue
        s = part.summary()
        row: dict[str, Any] = {"layer": key.layer, "method": key.label, "seed": key.seed,
                               "coalitions": s.n_coalitions, "largest share": s.largest_share,
                               "singleton share": s.singleton_share, "degenerate": s.degenerate or ""}
        st = stab.get((key.layer, key.label, key.seed))
        if st is not None:
            row.update({"ε̂": st["epsilon"], "ε upper (95%)": st["upper"],
                        "blocking / samples": f"{st['n_blocking']}/{st['n_samples']}"})
            if st.get("epsilon_sampler") is not None and st["epsilon_sampler"] == st["epsilon_sampler"]:
                row.update({f"ε̂ ({st['sampler']} sampler's D)": st["epsilon_sampler"],
                            "its upper (95%)": st["upper_sampler"]})
            if st.get("pac_upper") is not None:
                row.update({f"ε upper (1−δ={1 - st['pac_delta']:g})": st["pac_upper"],
                            f"≤ ε={st['pac_epsilon']:g}": "yes" if st["pac_met"] else "no"})
        stab_rows.append(row)
        if s.degenerate:
            warn_rows.append(f"layer {key.layer}, {key.label}, seed {key.seed}: **{s.degenerate}** "
                             f"(largest coalition {s.largest_share:.1%} of the neurons, singletons "
                             f"{s.singleton_share:.1%})")
    add(("h2", "Warnings"))
    if warn_rows:
        add(("p", "Degenerate partitions (docs/method.md §5, failure signature 1) — read their metrics with care:"))
        add(("ul", warn_rows))
    else:
        add(("p", "No degenerate partition (no coalition above half of the layer, singletons below 90%)."))

    builders = {"table1": paper_tables.table_extrinsic, "table2": paper_tables.table_predictivity,
                "table6": paper_tables.table_synergy}
    notes = {
        "table1": f"OOD drop: mean over every coalition (size ≥ {cfg.evaluation.min_size}) of each partition of "
                  "ΔM(C) = M(ℓ) − M(ℓ−C), ablation = reverting the coalition's LoRA parameters, first-order estimate "
                  "verified on exact ablations (Evidence section); M is NDCG@10 for relevance and −MSE for CQTR / "
                  "Mean-TF/L. `ood_drop_rel`: relative to the drop of reverting every LoRA neuron of the layer; "
                  "`frac_sig_ood`: share of coalitions above size-matched random coalitions. "
                  f"Alignment: mean over coalitions of size ≥ {cfg.evaluation.min_size} of max_j corr²(a_C, f_j) "
                  "over the LETOR features, on the OOD pairs.",
        "table2": "Coalition mean activations as macro-features; ridge regression trained on the in-distribution "
                  "capture set, R² on the OOD split.",
        "table6": f"Mean over coalitions of size ≥ {cfg.evaluation.min_size} of Pair(C) and Ratio(C) (App. G "
                  "eq. 8), exact on the layer-local readout: `pair`, `ratio` on the discovery inputs φ was built "
                  "from (in sample), `*_heldout` on the held-out inputs; `pair_pooled_heldout` pools every "
                  "within-coalition pair of the partition; `frac_sig_pair`: share of coalitions whose held-out Pair "
                  "is above size-matched random coalitions (BH).",
    }
    for tname, (title, metrics) in TABLES.items():
        tab = summary_table(results, metrics, labels)
        _write_table(tab, art / "tables" / f"{tname}_numeric")
        paper = builders[tname](results, methods=labels, digits=3) if not tab.empty else pd.DataFrame()
        _write_table(_flatten(paper), art / "tables" / tname)
        add(("h2", title))
        add(("p", notes[tname]))
        # shown at three significant digits; the paper's layout (metrics.tables) is in artifacts/tables/
        add(("table", display_table(tab, metrics) if not tab.empty else tab))

    _write_table(transitions_table(transitions), art / "tables" / "table3_all_methods")
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
              f"the partition, with one-sided 95% and 1−δ Clopper–Pearson upper bounds; the PAC target is "
              f"ε = {d.pac.epsilon} with confidence 1−δ = {1 - d.pac.delta:g} (docs/method.md §5)."))
    stab_df = pd.DataFrame(stab_rows)
    _write_table(stab_df, art / "tables" / "stability")
    add(("table", stab_df))

    from .report_diagnostics import (
        closure_blocks,  # closure diagnostics and ASHG stability (§5.5–§5.6)
    )

    blocks.extend(closure_blocks(study))
    blocks.extend(evidence_blocks(study))
    add(("h2", "Coalition size distributions"))
    for layer in d.layers:
        parts: dict[str, Partition] = {k.label: p for k, p in study.partitions.items()
                                       if k.layer == layer and k.seed == d.seeds[0]}
        if parts:
            ordered = {lab: parts[lab] for lab in labels if lab in parts}
            img = save_png(plot_size_distribution(ordered, f"layer {layer}, seed {d.seeds[0]}"),
                           figs / f"sizes.layer{layer}.png")
            add(("img", (img, f"Coalition sizes, layer {layer}")))

    if study.sankeys:
        add(("h2", "Coalition flow (Sankey)"))
        for label, png, html_path in study.sankeys:
            if png is not None:
                add(("img", (png, f"{vocab.display_label(label)}, seed {d.seeds[0]}")))
            if html_path is not None:
                add(("p", f"Interactive: [{html_path.name}](figures/{html_path.name})"))

    add(("h2", "Timings"))
    add(("p", "Wall seconds of this invocation per stage (cached units cost nothing), and the compute seconds "
              "recorded when each stage's units were computed (summed over units; parallel units overlap)."))
    add(("table", pd.DataFrame([{"stage": k, "wall s (this run)": round(v, 2)} for k, v in study.timings.items()])))
    add(("table", pd.DataFrame([{"stage": k, "units": n, "compute s (when computed)": round(sec, 2)}
                                for k, (n, sec) in study.compute.items()])))
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


def write_frame(df: pd.DataFrame, stem: Path) -> None:
    """``stem.csv`` and ``stem.parquet``, atomically (every table and long result of a run)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(stem.with_suffix(".csv")) as fh:
        df.to_csv(fh, index=False)
    with atomic_path(stem.with_suffix(".parquet")) as tmp:
        df.to_parquet(tmp, index=False)


_write_table = write_frame


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
            out.append(to_markdown(val, index=False))
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
