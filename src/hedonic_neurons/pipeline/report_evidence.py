"""The report's verdict and evidence sections (docs/method.md §8.4–§8.5).

Renders a :class:`~hedonic_neurons.pipeline.study.StudyResults` value into report blocks
(``("h2" | "p" | "ul" | "table", value)``, as :mod:`.report` renders them): the verdict
first (:func:`verdict_blocks`, numbers from :mod:`.verdict`), then the evidence behind it
(:func:`evidence_blocks`: held-out split, controls, the all-LoRA bound and the verification of
the OOD estimator, the most significant coalitions with links into ``explorer.html``).
Reads neither the cache nor the stages; writes ``artifacts/tables/{verdict,controls,
ood_verification,top_coalitions}.{csv,parquet}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .verdict import hedonic_labels, verdict_sentences, verdict_table

if TYPE_CHECKING:  # pragma: no cover
    from .study import StudyResults

__all__ = ["TOP_COALITIONS", "evidence_blocks", "top_coalitions", "verdict_blocks", "verdict_summary"]

Block = tuple[str, Any]

#: Rows of the most-significant-coalitions table.
TOP_COALITIONS = 10


def _write(df: pd.DataFrame, study: StudyResults, name: str) -> None:
    from .report import write_frame

    write_frame(df, study.run_dir / "artifacts" / "tables" / name)


def top_coalitions(coalitions: pd.DataFrame, n: int = TOP_COALITIONS) -> pd.DataFrame:
    """The ``n`` coalitions most significantly above their size-matched null.

    Ranked by the held-out Pair's q-value, then the OOD drop's q-value, then the held-out
    Pair's z-score against the null; only coalitions significant on at least one of the two.
    Columns: ``layer, method, seed, coalition, size, pair_heldout, pair_null_mean, z, pair_q,
    ood_drop, ood_drop_rel, ood_q, link`` (``explorer.html#...`` opens its card).
    """
    if coalitions.empty:
        return pd.DataFrame()
    co = coalitions[coalitions["pair_significant"] | coalitions["ood_significant"]].copy()
    if co.empty:
        return pd.DataFrame()
    with np.errstate(all="ignore"):
        co["z"] = (co["pair_heldout"] - co["pair_null_mean"]) / co["pair_null_sd"]
    co = co.sort_values(["pair_q", "ood_q", "z"], ascending=[True, True, False], na_position="last").head(n)
    co["link"] = [f"[open](explorer.html#layer={r.layer}&method={r.method}&seed={r.seed}&c={r.coalition})"
                  for r in co.itertuples()]
    return co[["layer", "method", "seed", "coalition", "size", "pair_heldout", "pair_null_mean", "z", "pair_q",
               "ood_drop", "ood_drop_rel", "ood_q", "link"]].reset_index(drop=True)


def verdict_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, comparison), one column per hedonic method: the verdict word with the
    difference and p-value (``"better (+2.6e-08, p = 0.01)"``)."""
    from .verdict import _NAMES

    def cell(r: dict[str, Any]) -> str:
        diff = r["diff"]
        d = "—" if not np.isfinite(diff) else f"{diff:+.2g}"
        p = "—" if not np.isfinite(r["p"]) else f"{r['p']:.2g}"
        return f"{r['verdict']} ({d}, p = {p})"

    rows: dict[str, dict[str, str]] = {}
    for r in table.to_dict("records"):
        what = f"{_NAMES.get(r['metric'], r['metric'])} vs {r['against']}"
        rows.setdefault(what, {"comparison": what})[str(r["method"])] = cell(r)
    return pd.DataFrame(list(rows.values())).fillna("")


def verdict_blocks(study: StudyResults) -> list[Block]:
    """"Verdict": for each hedonic method, better than size-matched random and than each baseline?"""
    cfg = study.cfg
    e = cfg.evaluation
    blocks: list[Block] = [("h2", "Verdict")]
    table = verdict_table(study.results, study.labels, alpha=e.alpha)
    _write(table, study, "verdict")
    if table.empty:
        blocks.append(("p", "No verdict: this run has no hedonic partition of a real valuation with the metrics "
                            "the tests need (held-out Pair, OOD drop, alignment)."))
        return blocks
    n_units = len(cfg.discovery.seeds) * len(cfg.discovery.layers)
    blocks.append(("p", f"Is each hedonic method better than size-matched random coalitions and than each baseline? "
                        f"Tests over the {n_units} (seed, layer) units of this run (two-sided t-tests, level "
                        f"{e.alpha:g}; differences with 95% intervals). Against size-matched random: the excess of "
                        "the held-out pooled Pair over random partitions with the same coalition sizes, and of the "
                        "OOD drop and of the alignment R² over random coalitions of each coalition's size "
                        "(docs/method.md §8.5). Against the baselines: paired t-tests on held-out pooled Pair, OOD "
                        "drop and alignment. "
                        "Full table: `artifacts/tables/verdict.csv`."))
    blocks.append(("table", verdict_summary(table)))
    blocks.append(("ul", verdict_sentences(table, alpha=e.alpha)))
    gain = _gain_sentence(study)
    if gain:
        blocks.append(("p", gain))
    if study.explorer is not None:
        blocks.append(("p", f"Browse every coalition: [explorer.html]({study.explorer.name})."))
    top = top_coalitions(study.coalitions)
    if not top.empty:
        _write(top, study, "top_coalitions")
        blocks.append(("p", f"The most significant coalitions (held-out Pair or OOD drop above size-matched "
                            f"random at FDR {e.alpha:g}, smallest q first):"))
        blocks.append(("table", top))
    elif not study.coalitions.empty:
        blocks.append(("p", f"No coalition of any partition is significantly above size-matched random "
                            f"(held-out Pair or OOD drop, FDR {e.alpha:g})."))
    return blocks


def _gain_sentence(study: StudyResults) -> str:
    c = study.controls
    if not c:
        return ""
    ft, nl, base = (float(np.nan if c.get(k) is None else c[k]) for k in ("finetuned", "no_lora", "base"))
    s = (f"Adapter gain on the OOD split: metric {ft:.4g} fine-tuned vs {nl:.4g} with every LoRA neuron reverted "
         f"(head kept): gain {ft - nl:.3g}")
    if np.isfinite(base):
        s += f"; {base:.4g} before fine-tuning"
    s += "."
    if not ft - nl > 0:
        s += (" The adapter does not improve the OOD metric, so no coalition of LoRA neurons can carry a useful "
              "OOD effect in this run: read the OOD drops as noise.")
    return s


def evidence_blocks(study: StudyResults) -> list[Block]:
    """"Evidence": the held-out split, controls, all-LoRA bound, verification of the OOD estimator."""
    cfg = study.cfg
    e = cfg.evaluation
    blocks: list[Block] = [("h2", "Evidence protocol (docs/method.md §8.5)")]
    sp = study.split
    if sp:
        blocks.append(("p", f"Held-out split of the capture set by query (seed {sp.get('seed')}): "
                            f"{sp.get('n_discovery')} discovery inputs ({sp.get('queries_discovery')} queries) from "
                            f"which φ, the partitions and the baselines were built; {sp.get('n_heldout')} held-out "
                            f"inputs ({sp.get('queries_heldout')} queries) on which `pair_heldout`, `ratio_heldout`, "
                            "`pair_pooled_heldout` and the size-matched null of Pair "
                            f"({e.null_draws} random coalitions per size) are computed."))
    blocks.append(("p", "OOD drop rule, the same for every method: the first-order estimate (one backward pass per "
                        f"input per layer) for every coalition of size ≥ {e.min_size}; `ood_drop` is the mean over "
                        "them, `ood_drop_rel` that mean over the drop of ablating every LoRA neuron of the layer "
                        f"(`all_lora`), `frac_sig_ood` the share above {e.ood_null_draws} size-matched random "
                        f"coalitions per size (FDR {e.alpha:g}). The estimate is checked against exact ablations "
                        f"on a seeded size-stratified sample of {e.ood_verify} coalitions per layer:"))
    v = study.verification
    if not v.empty:
        cols = [c for c in ("layer", "all_lora_drop", "metric_full", "n_coalitions", "n_sample", "spearman",
                            "abs_error", "max_abs_error", "rel_error", "mean_abs_exact_drop") if c in v.columns]
        _write(v[cols], study, "ood_verification")
        blocks.append(("table", v[cols]))
    c = study.controls
    if c:
        ctl = pd.DataFrame([{"model": "finetuned", "OOD metric": c.get("finetuned")},
                            {"model": "no_lora (every LoRA neuron reverted, head kept)", "OOD metric": c.get("no_lora")},
                            {"model": "base (before fine-tuning)", "OOD metric": c.get("base")}])
        _write(ctl, study, "controls")
        blocks.append(("p", f"Control models on the OOD split (metric: NDCG@10 for relevance, −MSE otherwise; "
                            f"LoRA layers {c.get('lora_layers')}):"))
        blocks.append(("table", ctl))
    nulls = [lab for lab in study.labels if lab not in hedonic_labels(study.labels)]
    blocks.append(("p", "Comparison methods in this run: " + ", ".join(f"`{x}`" for x in nulls)
                        + ". Add `null` to `discovery.valuations` to carry the null valuation through partitioning "
                          "and evaluation as its own method row."
                   if not any(x.startswith("hedonic_null") for x in nulls) else
                   "Comparison methods in this run: " + ", ".join(f"`{x}`" for x in nulls) + "."))
    return blocks
