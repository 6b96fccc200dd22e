"""The closure-diagnostics section of the run report (docs/method.md §5.5–§5.6).

Renders the ``closure`` and ``k_sweep`` frames of a
:class:`~hedonic_neurons.pipeline.study.StudyResults` (never the cache) into report blocks
``(kind, value)`` — the block format of :mod:`.report` (``"h2"``, ``"p"``, ``"ul"``, ``"table"``):

* for every hedonic partition, its largest-coalition share beside the share of the same
  algorithm (same ``k``, or the same best-response dynamics) on a null φ with the real φ's
  size and value distribution, so a reader sees how much of a giant coalition is the game;
* for the additively separable game's partitions, which have no blocking rate, whether the
  dynamics converged and whether the partition is Nash stable and individually stable;
* per layer and valuation, exact Top Covering for k ∈ {1, 2, 3, 5, 8}: coalitions, largest
  share, singletons and the pooled Pair, labelled with how ψ was measured.

Shares are shown as percentages with one decimal (``f"{x:.1%}"``), pooled Pair with four
significant digits; the exact values are in ``artifacts/closure.csv`` and ``artifacts/k_sweep.csv``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import vocab

if TYPE_CHECKING:  # pragma: no cover
    from .study import StudyResults

__all__ = ["LARGE_SHARE", "NEAR_NULL", "closure_blocks", "closure_table", "k_sweep_table", "nash_table"]

Block = tuple[str, Any]

_PSI_TEXT = {
    "held-out": "held-out ψ: exact PAS on the held-out part of the capture set (queries φ and the partitions "
                "never saw)",
    "in-sample": "in-sample ψ: exact PAS on the capture set, the inputs the partitions were found on",
    "none": "no ψ: pas_exact is not among the valuations",
}


#: A largest coalition this large (share of the layer) and at most NEAR_NULL above the null's is listed.
LARGE_SHARE = 0.25
NEAR_NULL = 0.05

_PSI_SHORT = {"held-out": "held-out ψ", "in-sample": "in-sample ψ", "none": "no ψ"}


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x):.1%}"


def _yes(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else ("yes" if bool(x) else "no")


def _order(df: pd.DataFrame) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(vocab.method_order())}
    return df.assign(_r=df["method"].map(lambda m: rank.get(m, len(rank)))).sort_values(
        ["layer", "_r", "seed"], kind="stable").drop(columns="_r")


def closure_table(closure: pd.DataFrame) -> pd.DataFrame:
    """One row per hedonic partition: largest share, the same algorithm's share on a null φ, the gap."""
    if closure.empty:
        return pd.DataFrame()
    rows = []
    for r in _order(closure).to_dict("records"):
        k = r.get("k")
        rows.append({
            "layer": int(r["layer"]), "method": vocab.display_label(r["method"]), "seed": int(r["seed"]),
            "k": "—" if k is None or (isinstance(k, float) and math.isnan(k)) else str(int(k)),
            "largest share": _pct(r["largest_share"]),
            "same algorithm on null φ": _pct(r["null_largest_share"]),
            "difference (pp)": f"{100 * (r['largest_share'] - r['null_largest_share']):+.1f}",
        })
    return pd.DataFrame(rows)


def nash_table(closure: pd.DataFrame) -> pd.DataFrame:
    """The additively separable game's partitions: convergence and Nash / individual stability."""
    if closure.empty:
        return pd.DataFrame()
    sub = closure[closure["nash_stable"].notna()] if "nash_stable" in closure else closure.iloc[:0]
    if sub.empty:
        return pd.DataFrame()
    return pd.DataFrame([{
        "layer": int(r["layer"]), "method": vocab.display_label(r["method"]), "seed": int(r["seed"]),
        "converged": _yes(r["converged"]), "sweeps": "n/a" if r["sweeps"] is None else str(int(r["sweeps"])),
        "moves": "n/a" if r["moves"] is None else str(int(r["moves"])),
        "Nash stable": _yes(r["nash_stable"]), "individually stable": _yes(r["individually_stable"]),
    } for r in _order(sub).to_dict("records")])


def k_sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """One layer × valuation of the k-sweep: rows are the measures, columns ``k = …``."""
    cols = {f"k = {int(r['k'])}": r for r in sweep.to_dict("records")}
    rows = [
        {"": "coalitions", **{c: str(int(r["n_coalitions"])) for c, r in cols.items()}},
        {"": "largest share", **{c: _pct(r["largest_share"]) for c, r in cols.items()}},
        {"": "singletons", **{c: str(int(r["n_singletons"])) for c, r in cols.items()}},
        {"": "pooled Pair", **{c: "n/a" if pd.isna(r["pooled_pair"]) else f"{float(r['pooled_pair']):.4g}"
                               for c, r in cols.items()}},
    ]
    return pd.DataFrame(rows)


def closure_blocks(study: StudyResults) -> list[Block]:
    """The report blocks of the closure diagnostics (empty when the study has none).

    Parameters
    ----------
    study : StudyResults
        Uses ``study.closure``, ``study.k_sweep`` and ``study.cfg``.

    Returns
    -------
    list of (kind, value)
        Blocks for :mod:`.report`'s Markdown and HTML renderers.
    """
    closure, sweep = study.closure, study.k_sweep
    if closure.empty and sweep.empty:
        return []
    out: list[Block] = [("h2", "Closure diagnostics: how much of the largest coalition is the game")]
    out.append(("p", "A sink SCC of the top-k choice-set digraph grows with k whatever φ is, and the additively "
                     "separable game also groups players on noise (docs/method.md §5.5). Beside each hedonic "
                     "partition's largest-coalition share is the share the same algorithm (same k and options; "
                     "the same best-response dynamics for the Nash-stable ASHG) reaches on a null φ: a seeded "
                     "symmetric permutation of the real φ's off-diagonal values (same size and value "
                     "distribution, no structure), seeded by the study seed. A largest share at or below the null's "
                     "is what the algorithm makes on noise: the game's, not the model's."))
    table = closure_table(closure)
    if not table.empty:
        out.append(("table", table))
        near = closure[(closure["largest_share"] >= LARGE_SHARE)
                       & (closure["largest_share"] <= closure["null_largest_share"] + NEAR_NULL)]
        if not near.empty:
            out.append(("p", f"Largest coalition of at least {LARGE_SHARE:.0%} of the layer, yet no larger than "
                             f"the same algorithm makes on the null φ (+{100 * NEAR_NULL:.0f} pp): its size alone is "
                             f"no evidence of structure ({len(near)} of {len(closure)} partitions):"))
            out.append(("ul", [f"layer {int(r['layer'])}, {vocab.display_label(r['method'])}, seed {int(r['seed'])}: "
                               f"{_pct(r['largest_share'])} vs {_pct(r['null_largest_share'])} on the null"
                               for r in _order(near).to_dict("records")]))
    nash = nash_table(closure)
    if not nash.empty:
        out.append(("h2", "Stability of the Nash-stable ASHG partitions"))
        out.append(("p", "The additively separable game (docs/method.md §5.6) has no top-k blocking rate; instead: "
                         "did best-response dynamics stop (no player wants to move), is the result Nash stable (no "
                         "player strictly gains by moving to another coalition or a new singleton) and "
                         "individually stable (no such move that every member of the receiving coalition "
                         "accepts), both checked on the real φ."))
        out.append(("table", nash))
    if not sweep.empty:
        out.append(("h2", "k-sweep: exact Top Covering for k = " + ", ".join(
            str(int(k)) for k in sorted(sweep["k"].unique()))))
        kinds = sorted(set(sweep["psi"]))
        out.append(("p", "Per layer and valuation, the partition of exact Top Covering for each k: number of "
                         "coalitions, largest share, singletons, and the pooled Pair (Σ ψ(i, j) over all "
                         "within-coalition ordered pairs / their number, docs/method.md §8.5; a giant coalition "
                         f"counts by its pairs). ψ: {'; '.join(_PSI_TEXT.get(x, x) for x in kinds)}."))
        for (layer, valuation), df in sweep.groupby(["layer", "valuation"], sort=True):
            label = vocab.VALUATIONS[valuation].label if valuation in vocab.VALUATIONS else valuation
            psi = str(df["psi"].iloc[0])
            out.append(("p", f"**Layer {int(layer)}, {label}** (pooled Pair on {_PSI_SHORT.get(psi, psi)})"))
            out.append(("table", k_sweep_table(df.sort_values("k"))))
    return out
