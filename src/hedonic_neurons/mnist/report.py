"""Tables 7-9, top-activating image grids and the report of the MNIST study (App. I.7-I.8).

Aggregation (as in the paper's tables): every statistic is the mean ± standard deviation
over *coalitions*, pooled over the table's layers (h2-h4 by default) and over seeds. Pair
and Ratio are undefined for singletons, which are left out of those two columns only
(their count is reported). When there are at least two seeds, a 95% t-interval over the
per-seed means is reported as well (``metrics.stats.mean_ci``).

The report opens with the **verdict** (:func:`verdict`; docs/method.md §8.5): for each
valuation × partition method on the trained network, is its held-out Pair larger than that of
size-matched random partitions and than each baseline's? Paired over ``(seed, layer)``
(:func:`hedonic_neurons.metrics.crossrun.paired_tests`: mean difference with its 95%
t-interval, two-sided paired t-test, Cohen's d_z), on the pooled held-out Pair (every
within-coalition pair counts once, so a giant coalition weighs by its pairs) and on the mean
held-out Pair over coalitions.

Plotting lives in functions that take arrays and return a figure; :func:`write_report`
writes ``verdict.{md,csv}``, ``table{7,8,9}.{md,csv}``, ``figures/*.png``, ``report.md`` and a
self-contained ``report.html`` (PNGs embedded as base64).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, InputError
from ..figures import save_png
from ..io import atomic_write
from ..partition import Partition
from ._report_verdict import SIZE_MATCHED as SIZE_MATCHED
from ._report_verdict import VERDICT_METRICS as VERDICT_METRICS
from ._report_verdict import _format_verdict, _label, verdict, verdict_lines
from .metrics import coalition_activation, top_k_indices
from .study import BASELINE_METHODS as BASELINE_METHODS
from .study import HEDONIC_METHODS as HEDONIC_METHODS
from .study import (
    METHOD_LABELS,
    REFERENCE,
    MnistStudyConfig,
    MnistStudyResult,
    heldout_split,
    load_partitions,
    load_study,
)

__all__ = [
    "Tables",
    "format_table",
    "partition_shapes",
    "table7",
    "table8",
    "table9",
    "top_activation_grid",
    "verdict",
    "verdict_lines",
    "write_report",
]

SETTING_LABELS = {"trained": "Trained MLP", "random_init": "Random Init", "shuffled": "Label-Shuffled"}
Tables = dict[str, pd.DataFrame]


def _seed_ci(frame: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean and 95% half-width over per-seed means (NaN half-width with fewer than 2 seeds),
    through the package's one per-seed aggregation (:func:`hedonic_neurons.metrics.stats.per_seed_summary`)."""
    from ..metrics.stats import per_seed_summary

    summ = per_seed_summary(frame.assign(_all=0), ["_all"], value=column)
    if summ.empty:
        return float("nan"), float("nan")
    return float(summ["mean"].iloc[0]), float(summ["ci"].iloc[0])


def _summarise(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in columns:
        values = frame[col].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        row[f"{col}_mean"] = float(values.mean()) if values.size else float("nan")
        row[f"{col}_std"] = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return row


def _methods_in(frame: pd.DataFrame) -> list[str]:
    present = set(frame["method"])
    return [m for m in METHOD_LABELS if m in present]


def _check(coalitions: pd.DataFrame) -> None:
    need = {"seed", "setting", "layer", "method", "size", "delta_acc", "pair", "ratio", "purity",
            "selectivity", "sparsity", "stroke"}
    missing = need - set(coalitions.columns)
    if missing:
        raise InputError(f"coalitions: missing columns {sorted(missing)}.")


def table7(coalitions: pd.DataFrame, layers: Sequence[int]) -> pd.DataFrame:
    """Table 7: ΔAcc (pp), Pair, Ratio and average coalition size per method (trained MLP).

    Returns a numeric frame, one row per method: ``delta_acc_{mean,std}``,
    ``pair_{mean,std}``, ``ratio_{mean,std}``, ``ratio_median``, ``avg_size``,
    ``n_coalitions``, ``n_singletons``, ``delta_acc_seed_ci`` (95% half-width over seeds).
    """
    _check(coalitions)
    sub = coalitions[(coalitions["setting"] == "trained") & coalitions["layer"].isin(list(layers))]
    rows = []
    for method in _methods_in(sub):
        m = sub[sub["method"] == method]
        multi = m[m["size"] >= 2]
        row = {"method": METHOD_LABELS[method], **_summarise(m, ["delta_acc"]), **_summarise(multi, ["pair", "ratio"])}
        ratios = multi["ratio"].to_numpy(np.float64)
        ratios = ratios[np.isfinite(ratios)]
        row["ratio_median"] = float(np.median(ratios)) if ratios.size else float("nan")
        row["avg_size"] = float(m["size"].mean())
        row["n_coalitions"] = len(m)
        row["n_singletons"] = int((m["size"] == 1).sum())
        row["delta_acc_seed_ci"] = _seed_ci(m, "delta_acc")[1]
        rows.append(row)
    return pd.DataFrame(rows)


def table8(coalitions: pd.DataFrame, layers: Sequence[int]) -> pd.DataFrame:
    """Table 8: digit purity, selectivity and sparsity (mean ± std over coalitions)."""
    _check(coalitions)
    sub = coalitions[(coalitions["setting"] == "trained") & coalitions["layer"].isin(list(layers))]
    rows = []
    for method in _methods_in(sub):
        m = sub[sub["method"] == method]
        row = {"method": METHOD_LABELS[method], **_summarise(m, ["purity", "selectivity", "sparsity"])}
        row["purity_seed_ci"] = _seed_ci(m, "purity")[1]
        row["n_coalitions"] = len(m)
        rows.append(row)
    return pd.DataFrame(rows)


def table9(coalitions: pd.DataFrame, layer: int) -> pd.DataFrame:
    """Table 9: stroke alignment, purity and Ratio at ``layer`` for the trained network
    (Hedonic-PAS, Activation Hierarchical) and the two negative controls (Hedonic-PAS)."""
    _check(coalitions)
    rows = []
    for setting, method in (("trained", REFERENCE), ("trained", "hierarchical"),
                            ("random_init", REFERENCE), ("shuffled", REFERENCE)):
        m = coalitions[(coalitions["setting"] == setting) & (coalitions["layer"] == layer)
                       & (coalitions["method"] == method)]
        if m.empty:
            continue
        row = {"setting": f"{SETTING_LABELS[setting]}, h{layer}", "method": METHOD_LABELS[method],
               **_summarise(m, ["stroke", "purity"]), **_summarise(m[m["size"] >= 2], ["ratio"])}
        row["n_coalitions"] = len(m)
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float, digits: int) -> str:
    from ..metrics.tables import format_cell

    return format_cell(mean, std, digits, sep=" ± ")


def _pm_sci(mean: float, std: float) -> str:
    from ..metrics.tables import format_cell

    return format_cell(mean, std, 2, sep=" ± ", scientific=True)


def partition_shapes(coalitions: pd.DataFrame) -> pd.DataFrame:
    """Shape of each method's partitions (docs/method.md §5, failure signature 1), averaged over
    (seed, setting, layer): coalitions per layer, largest coalition's share of the players,
    share of singleton players, and how many partitions are degenerate (largest share > 0.5
    or singleton share > 0.9, the rule of :meth:`Partition.summary`)."""
    rows = []
    for (setting, method), grp in coalitions.groupby(["setting", "method"], sort=False):
        per = []
        for _, part in grp.groupby(["seed", "layer"]):
            n = float(part["size"].sum())
            largest = float(part["size"].max() / n)
            single = float((part["size"] == 1).sum() / n)
            per.append((len(part), largest, single, largest > 0.5 or single > 0.9))
        arr = np.array(per, dtype=np.float64)
        rows.append({"setting": SETTING_LABELS.get(setting, setting), "method": METHOD_LABELS.get(method, method),
                     "coalitions per layer": round(float(arr[:, 0].mean()), 1),
                     "largest share": round(float(arr[:, 1].mean()), 3),
                     "singleton share": round(float(arr[:, 2].mean()), 3),
                     "degenerate partitions": f"{int(arr[:, 3].sum())}/{len(arr)}"})
    return pd.DataFrame(rows)


def format_table(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout with ``mean ± std`` strings (for Markdown / HTML)."""
    out = pd.DataFrame()
    if table.empty:
        return out
    if name == "table7":
        out["Method"] = table["method"]
        out["ΔAcc (pp, mean ± std, ↑)"] = [_pm(a, b, 2) for a, b in zip(table["delta_acc_mean"], table["delta_acc_std"])]
        out["Pair (mean ± std, ↑)"] = [_pm_sci(a, b) for a, b in zip(table["pair_mean"], table["pair_std"])]
        out["Ratio (mean ± std, ↑)"] = [_pm(a, b, 3) for a, b in zip(table["ratio_mean"], table["ratio_std"])]
        out["Ratio (median)"] = table["ratio_median"].map(lambda v: f"{v:.3f}")
        if np.isfinite(table["delta_acc_seed_ci"]).any():
            out["ΔAcc 95% CI over seeds (±)"] = table["delta_acc_seed_ci"].map(lambda v: f"{v:.2f}")
        out["Avg. |C|"] = table["avg_size"].map(lambda v: f"{v:.1f}")
        out["Coalitions (singletons)"] = [f"{a} ({b})" for a, b in zip(table["n_coalitions"], table["n_singletons"])]
    elif name == "table8":
        out["Method"] = table["method"]
        out["Digit Purity (↑)"] = [_pm(a, b, 2) for a, b in zip(table["purity_mean"], table["purity_std"])]
        out["Digit Selectivity (↑)"] = [_pm(a, b, 2) for a, b in zip(table["selectivity_mean"], table["selectivity_std"])]
        out["Sparsity (↓)"] = [_pm(a, b, 3) for a, b in zip(table["sparsity_mean"], table["sparsity_std"])]
        out["Coalitions"] = table["n_coalitions"]
    elif name == "table9":
        out["Setting"] = table["setting"]
        out["Method"] = table["method"]
        out["Stroke (↑)"] = [_pm(a, b, 3) for a, b in zip(table["stroke_mean"], table["stroke_std"])]
        out["Digit Purity (↑)"] = [_pm(a, b, 2) for a, b in zip(table["purity_mean"], table["purity_std"])]
        out["Ratio (↑)"] = [_pm(a, b, 3) for a, b in zip(table["ratio_mean"], table["ratio_std"])]
    else:
        raise InputError(f"name: expected 'table7', 'table8' or 'table9', got {name!r}.")
    return out


def _markdown(frame: pd.DataFrame) -> str:
    """A pipe table via the shared :func:`hedonic_neurons.metrics.tables.to_markdown` (no tabulate)."""
    from ..metrics.tables import to_markdown

    return to_markdown(frame, index=False).rstrip("\n")


def top_activation_grid(images: np.ndarray, digits: np.ndarray, title: str, *, columns: int = 8) -> Any:
    """A grid of images (already ordered, e.g. top-64 by ``a_C``) with their labels above.

    Parameters
    ----------
    images : numpy.ndarray, shape (K, 784) or (K, 28, 28)
    digits : numpy.ndarray of int, shape (K,)
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = np.asarray(images, dtype=np.float64).reshape(-1, 28, 28)
    d = np.asarray(digits).reshape(-1)
    if d.shape[0] != x.shape[0] or x.shape[0] == 0:
        raise InputError(f"images, digits: expected K >= 1 images and K labels, got {x.shape[0]} and {d.shape[0]}.")
    rows = int(np.ceil(x.shape[0] / columns))
    cell, pad, top = 28, 2, 9  # pixels per tile, gap, label band above each tile
    mosaic = np.ones((rows * (cell + pad + top), columns * (cell + pad)))
    for i, img in enumerate(x):
        r, c = divmod(i, columns)
        y0, x0 = r * (cell + pad + top) + top, c * (cell + pad)
        mosaic[y0 : y0 + cell, x0 : x0 + cell] = 1.0 - img / max(1e-9, float(img.max()))
    fig, ax = plt.subplots(figsize=(columns * 0.75, rows * 0.9 + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for i, lab in enumerate(d):
        r, c = divmod(i, columns)
        ax.text(c * (cell + pad) + cell / 2, r * (cell + pad + top) + top - 1.5, str(int(lab)),
                ha="center", va="bottom", fontsize=7, color="tab:blue")
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93)
    return fig


def _grids(out: Path, cfg: MnistStudyConfig, coalitions: pd.DataFrame) -> list[tuple[str, Path]]:
    """Top-64 grids of the most pure Hedonic-PAS coalitions (and the best hierarchical one)."""
    from .data import load_mnist
    from .model import load_model
    from .players import layer_activations

    seed, layer = cfg.seeds[0], cfg.control_layer
    if layer not in cfg.layers:
        layer = cfg.layers[len(cfg.layers) // 2]
    sdir = out / f"seed{seed}" / "trained"
    model_path = sdir / "model.safetensors"
    if not model_path.is_file():
        return []
    data = load_mnist(cfg.idx_dir, split_seed=cfg.split_seed)
    if cfg.n_train is not None or cfg.n_test is not None:
        data = data.head(cfg.n_train, cfg.n_test)
    model, _ = load_model(model_path)
    _, held = heldout_split(data.y_test, fraction=cfg.heldout_fraction, seed=cfg.heldout_seed)
    x_held, y_held = data.x_test[held], data.y_test[held]  # the images the coalition metrics were measured on
    h = layer_activations(model, x_held)[layer - 1]
    sel = coalitions[(coalitions["seed"] == seed) & (coalitions["setting"] == "trained") & (coalitions["layer"] == layer)]
    figures: list[tuple[str, Path]] = []
    for method, count in ((REFERENCE, cfg.grid_coalitions), ("hierarchical", 1)):
        part_path = sdir / f"h{layer}" / "partitions" / f"{method}.json"
        if not part_path.is_file():
            continue
        part = Partition.from_json(part_path)
        rows = sel[(sel["method"] == method) & (sel["size"] >= 2)].sort_values(["purity", "stroke"], ascending=False)
        for _, r in rows.head(count).iterrows():
            members = part.coalitions[int(r["coalition"])]
            top = top_k_indices(coalition_activation(h, members), cfg.grid_images)
            title = (f"{METHOD_LABELS[method]}, h{layer}, coalition {int(r['coalition'])} (|C|={int(r['size'])}): "
                     f"purity {r['purity']:.2f}, stroke {r['stroke']:.2f} ({r['stroke_template']})")
            fig = top_activation_grid(x_held[top], y_held[top], title)
            path = save_png(fig, out / "figures" / f"grid_seed{seed}_h{layer}_{method}_c{int(r['coalition'])}.png")
            figures.append((title, path))
    return figures


def write_report(source: MnistStudyResult | str | Path, *, wall_seconds: float | None = None,
                 command: str | None = None) -> dict[str, Path]:
    """Write Tables 7-9 (Markdown + CSV), image grids, ``report.md`` and ``report.html``.

    Parameters
    ----------
    source : MnistStudyResult or path-like
        A finished study (or its output directory).
    wall_seconds : float, optional
        Wall time to state in the report.
    command : str, optional
        The command line that produced the study.

    Returns
    -------
    dict[str, Path]
        Paths of everything written (keys: table7_md, table7_csv, ..., report_md, report_html, figure files).
    """
    out = Path(source.out_dir if isinstance(source, MnistStudyResult) else source)
    cfg, coalitions, models = load_study(out)
    tables = {
        "table7": table7(coalitions, cfg.layers),
        "table8": table8(coalitions, cfg.layers),
        "table9": table9(coalitions, cfg.control_layer),
    }
    captions = {
        "table7": f"Table 7: MNIST (layers {', '.join(f'h{v}' for v in cfg.layers)}): functional importance and "
                  "synergy. ΔAcc = test-accuracy drop (percentage points) when one coalition is ablated in h_l and "
                  "propagated; Pair and Ratio are exact on the layer-local readout (singletons excluded). Every "
                  "metric is measured on the held-out half of the test images (in-sample Pair in coalitions.csv).",
        "table8": f"Table 8: MNIST (layers {', '.join(f'h{v}' for v in cfg.layers)}): interpretability metrics "
                  f"over the top-{cfg.top_k} activating held-out test images (mean ± std over coalitions).",
        "table9": f"Table 9: stroke alignment and negative controls (h{cfg.control_layer}).",
    }
    written: dict[str, Path] = {}
    md_parts = ["# MNIST study (App. I): hedonic coalitions of residual coordinates", ""]
    partitions = load_partitions(out)
    vtable = verdict(partitions)
    with atomic_write(out / "verdict.csv") as fh:
        vtable.to_csv(fh, index=False)
    vpretty = _format_verdict(vtable)
    n_held = partitions["n_tested"].sum()
    verdict_intro = (
        f"Are the hedonic coalitions more synergistic than chance? φ and every partition come from a discovery "
        f"half of the test images; Pair is measured exactly on the other {cfg.heldout_fraction:.0%} "
        f"(seed {cfg.heldout_seed}, stratified by digit). Each method's pooled held-out Pair is compared, paired over "
        f"(seed, layer) of the trained network, with random partitions of its own size histogram "
        f"({cfg.null_draws} draws per unit) and with each baseline: mean difference [95% t-interval], paired "
        f"t-test p, Cohen's d_z. 'better' means the interval lies above 0. Coalitions are also tested one by one "
        f"against {cfg.null_draws} random coalitions of their size (one-sided Monte-Carlo p, Benjamini-Hochberg "
        f"at {cfg.alpha:g}; {int(n_held)} coalitions of size >= 2 tested in all settings).")
    vlines = verdict_lines(vtable)
    md_parts += ["## Verdict", "", verdict_intro, "", *(vlines or ["- (no hedonic partition on the trained network)"]),
                 "", _markdown(vpretty) if not vpretty.empty else "(no rows)", ""]
    with atomic_write(out / "verdict.md") as fh:
        fh.write("\n".join(md_parts[2:]) + "\n")
    written["verdict_csv"], written["verdict_md"] = out / "verdict.csv", out / "verdict.md"
    if command:
        md_parts += [f"Command: `{command}`", ""]
    if wall_seconds is not None:
        md_parts += [f"Wall time: {wall_seconds:.1f} s", ""]
    acc = models.groupby("setting")["test_accuracy"].agg(["mean", "std", "count"]).reset_index()
    md_parts += ["## Networks (test accuracy)", "", _markdown(acc.round(4)), ""]
    html_tables = [("Networks (test accuracy)", acc.to_html(index=False, float_format=lambda v: f"{v:.4f}"))]
    ev_cols = ["setting", "method", "pair_pooled", "pair_pooled_heldout", "pair_pooled_null", "pair_pooled_z",
               "frac_sig_pair", "largest_share"]
    evidence = (partitions.groupby(["setting", "method"], sort=False)[ev_cols[2:]].mean().reset_index()
                .assign(method=lambda f: f["method"].map(_label)))
    ev_caption = ("Partitions: pooled Pair in-sample (discovery half) and held-out, the size-matched null's mean, "
                  "z, share of coalitions significant, largest coalition's share (means over seeds and layers)")
    ev_pretty = evidence.copy()
    for c in ("pair_pooled", "pair_pooled_heldout", "pair_pooled_null"):
        ev_pretty[c] = ev_pretty[c].map(lambda v: f"{v:.3g}")
    for c in ("pair_pooled_z", "frac_sig_pair", "largest_share"):
        ev_pretty[c] = ev_pretty[c].map(lambda v: f"{v:.2f}")
    md_parts += [f"## {ev_caption}", "", _markdown(ev_pretty), ""]
    html_tables.append((ev_caption, ev_pretty.to_html(index=False)))
    for name, table in tables.items():
        pretty = format_table(name, table)
        with atomic_write(out / f"{name}.csv") as fh:
            table.to_csv(fh, index=False)
        md = _markdown(pretty) if not pretty.empty else "(no rows)"
        with atomic_write(out / f"{name}.md") as fh:
            fh.write(captions[name] + "\n\n" + md + "\n")
        written[f"{name}_csv"], written[f"{name}_md"] = out / f"{name}.csv", out / f"{name}.md"
        md_parts += [f"## {captions[name]}", "", md, ""]
        html_tables.append((captions[name], pretty.to_html(index=False, escape=True)))
    shapes = partition_shapes(coalitions)
    with atomic_write(out / "partition_shapes.csv") as fh:
        shapes.to_csv(fh, index=False)
    shape_caption = "Partition shapes (per layer; degenerate = largest share > 0.5 or singleton share > 0.9)"
    md_parts += [f"## {shape_caption}", "", _markdown(shapes), ""]
    html_tables.append((shape_caption, shapes.to_html(index=False)))
    if (out / "timings.csv").is_file():
        timings = pd.read_csv(out / "timings.csv")
        if not timings.empty:
            per_stage = timings.groupby("stage", sort=False)["seconds"].sum().round(1).reset_index()
            md_parts += ["## Seconds per stage (this invocation; resumed stages are near zero)", "",
                         _markdown(per_stage), ""]
            html_tables.append(("Seconds per stage (this invocation)", per_stage.to_html(index=False)))
    figures = _grids(out, cfg, coalitions)
    md_parts += ["## Top-activating digits", ""]
    for title, path in figures:
        md_parts += [f"![{title}]({path.relative_to(out).as_posix()})", ""]
        written[path.name] = path
    md_parts += [
        "## Definitions",
        "",
        f"- Players: the {cfg.model.d_model} residual coordinates of h_l (h_1 = input projection, h_{{l+1}} = output of block l); "
        f"ablation sets them to the {cfg.baseline} baseline.",
        "- Layer-local readout: the cloned classifier after the final LayerNorm, read at the true digit.",
        "- OCA weight vectors: the next block's reading weights (columns of W_up and W_gate; the classifier "
        "columns for the last layer).",
        f"- Purity / selectivity over the top-{cfg.top_k} test images; selectivity on a_C min-max rescaled to "
        "[0, 1]; sparsity = ||a_C||_1 / (||a_C||_2 sqrt(N)).",
        "- Stroke: Sobel gradients inside six windows (top/bottom bar, left/right stem, central loop, "
        "diagonal), calibrated by each template's mean over the test set and normalised per image to sum "
        "to 1 (chance ≈ 1/6).",
        f"- Hedonic: PAC-Top-Cover (k={cfg.k}, sizes {cfg.size_range[0]}..{cfg.size_range[1]}, m={cfg.m}, "
        f"ω={cfg.omega}); '(exact Top Covering)' rows use the exact algorithm. Baselines matched to Hedonic-PAS.",
        f"- Seeds: {', '.join(map(str, cfg.seeds))}; statistics pool coalitions over layers and seeds.",
        "",
    ]
    md_text = "\n".join(md_parts)
    with atomic_write(out / "report.md") as fh:
        fh.write(md_text)
    written["report_md"] = out / "report.md"
    body = ["<h1>MNIST study (App. I): hedonic coalitions of residual coordinates</h1>", "<h2>Verdict</h2>",
            f"<p>{html.escape(verdict_intro)}</p><ul>"
            + "".join(f"<li>{html.escape(line[2:].replace('**', ''))}</li>" for line in vlines) + "</ul>",
            vpretty.to_html(index=False, escape=True)]
    if command:
        body.append(f"<p>Command: <code>{html.escape(command)}</code></p>")
    if wall_seconds is not None:
        body.append(f"<p>Wall time: {wall_seconds:.1f} s</p>")
    for caption, tab in html_tables:
        body.append(f"<h2>{html.escape(caption)}</h2>{tab}")
    body.append("<h2>Top-activating digits</h2>")
    for title, path in figures:
        if not path.is_file():
            raise ArtifactError(f"{path}: figure missing while writing the report.")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(title)}'>"
                    f"<figcaption>{html.escape(title)}</figcaption></figure>")
    defs = md_text.split("## Definitions", 1)[1]
    body.append("<h2>Definitions</h2><ul>" + "".join(
        f"<li>{html.escape(line[2:])}</li>" for line in defs.splitlines() if line.startswith("- ")) + "</ul>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>MNIST study</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    with atomic_write(out / "report.html") as fh:
        fh.write(page)
    written["report_html"] = out / "report.html"
    return written
