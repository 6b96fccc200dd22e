"""Export *explorer*: the coalition explorer's artifacts and ``explorer.html`` of a study run
(docs/explorer.md).

Reads the finished units of a plan (partitions, evaluation, OOD, tracking, closure
diagnostics) and writes ``artifacts/{coalitions,coalition_examples,lineage,
partitions_summary}.parquet`` (validated against :mod:`hedonic_neurons.explorer.schema`)
and ``explorer.html`` into the run directory. Nothing here runs a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import PartitionKey, StudyPlan

__all__ = ["EXAMPLES_PER_SIDE", "HIST_BINS", "coalition_tables", "export_explorer"]

#: Top- and bottom-activating inputs kept per coalition and split.
EXAMPLES_PER_SIDE = 5
#: Bins of the activation histogram of each coalition.
HIST_BINS = 20


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _by_coalition(df: pd.DataFrame | None, cols: dict[str, str]) -> dict[str, dict[int, Any]]:
    """``{new name: {coalition: value}}`` for the columns ``cols`` (old -> new) of a per-coalition table."""
    if df is None or df.empty:
        return {new: {} for new in cols.values()}
    return {new: dict(zip(df["coalition"].astype(int), df[old])) for old, new in cols.items() if old in df.columns}


def _examples(key: PartitionKey, acts: np.ndarray, ids: list[int], pairs: pd.DataFrame, split: str,
              k: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = acts.shape[0]
    for c in ids:
        order = np.argsort(acts[:, c], kind="stable")
        for kind, picks in (("top", order[::-1][:k]), ("bottom", order[:min(k, n)])):
            for rank, i in enumerate(picks):
                rows.append({"layer": key.layer, "method": key.label, "seed": key.seed, "coalition": int(c),
                             "split": split, "kind": kind, "rank": rank, "query": str(pairs["query"].iloc[i]),
                             "passage": str(pairs["passage"].iloc[i]), "activation": float(acts[i, c]),
                             "target": float(pairs["target"].iloc[i])})
    return rows


def coalition_tables(plan: StudyPlan) -> dict[str, pd.DataFrame]:
    """The four explorer tables of a study from its finished units (schema: docs/explorer.md).

    ``coalitions`` holds every coalition of every finished partition with its in-sample and
    held-out Pair/Ratio, the size-matched null of the held-out Pair, the estimated OOD drop
    (absolute and relative to the layer's all-LoRA drop) with its q-value, the best-aligned
    LETOR feature and a histogram of the coalition's mean activation on the capture set;
    ``examples`` the top and bottom activating capture and OOD inputs of each coalition of
    size ``>= evaluation.min_size``; ``lineage`` the reported transition of each coalition
    to the next layer; ``partitions`` the shape of each partition and, where the closure
    diagnostic ran, the largest share of the same algorithm on a null φ.
    """
    from ...metrics.alignment import coalition_activations
    from ...partition import Partition
    from ...records import LayerRecord
    from ..plan import model_name

    cfg = plan.cfg
    alpha, min_size = cfg.evaluation.alpha, cfg.evaluation.min_size
    capture = pd.read_parquet(plan.data.file("capture.parquet"))
    ood = pd.read_parquet(plan.data.file("ood.parquet"))
    records: dict[tuple[str, int], np.ndarray | None] = {}

    def acts_of(split: str, layer: int) -> np.ndarray | None:
        if (split, layer) not in records:
            f = plan.record_file(split, layer)
            records[(split, layer)] = np.asarray(LayerRecord.load(f).a, dtype=np.float64) if f.is_file() else None
        return records[(split, layer)]

    co_rows: list[dict[str, Any]] = []
    ex_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    for key, ref in plan.partitions.items():
        if not (ref.unit.done and ref.path.is_file()):
            continue
        part = Partition.from_json(ref.path)
        ev = plan.evaluation.get(key)
        syn = _by_coalition(_read_csv(ev.file("synergy.csv")) if ev is not None and ev.done else None,
                            {"pair": "pair_insample", "ratio": "ratio_insample"})
        held = _by_coalition(_read_csv(ev.file("heldout.csv")) if ev is not None and ev.done else None,
                             {"pair": "pair_heldout", "ratio": "ratio_heldout", "null_mean": "pair_null_mean",
                              "null_sd": "pair_null_sd", "q_value": "pair_q"})
        al = _by_coalition(_read_csv(ev.file("alignment.csv")) if ev is not None and ev.done else None,
                           {"r2": "best_feature_r2", "best_feature": "best_feature"})
        ou = plan.ood.get(key)
        od = _by_coalition(_read_csv(ou.file("ood.csv")) if ou is not None and ou.done else None,
                           {"drop": "ood_drop", "drop_rel": "ood_drop_rel", "q_value": "ood_q"})
        acts = acts_of("capture", key.layer)
        a_c = coalition_activations(acts, part) if acts is not None else None
        for c, members in enumerate(part.coalitions):
            row: dict[str, Any] = {"model": model_name(cfg), "task": cfg.task, "layer": key.layer,
                                   "method": key.label, "seed": key.seed, "coalition": c, "size": int(members.size),
                                   "members": members.astype(np.int32)}
            for table in (syn, held, al, od):
                for col, values in table.items():
                    row[col] = values.get(c, np.nan if col != "best_feature" else "")
            bf = row.get("best_feature")
            row["best_feature"] = bf if isinstance(bf, str) else ""
            row["pair_significant"] = bool(np.isfinite(row.get("pair_q", np.nan)) and row["pair_q"] <= alpha)
            row["ood_significant"] = bool(np.isfinite(row.get("ood_q", np.nan)) and row["ood_q"] <= alpha)
            row["ood_kind"] = "estimated" if np.isfinite(row.get("ood_drop", np.nan)) else ""
            if a_c is not None:
                counts, edges = np.histogram(a_c[:, c], bins=HIST_BINS)
                row["act_hist_counts"], row["act_hist_edges"] = counts.astype(np.int64), edges.astype(np.float64)
            else:
                row["act_hist_counts"], row["act_hist_edges"] = np.zeros(0, np.int64), np.zeros(0, np.float64)
            row["image_grid"] = ""
            co_rows.append(row)
        ids = [c for c in range(part.n_coalitions) if part.sizes[c] >= min_size]
        if a_c is not None:
            ex_rows += _examples(key, a_c, ids, capture, "capture", EXAMPLES_PER_SIDE)
        ood_acts = acts_of("ood", key.layer)
        if ood_acts is not None:
            ex_rows += _examples(key, coalition_activations(ood_acts, part), ids, ood, "ood", EXAMPLES_PER_SIDE)
        s = part.summary()
        null_share = float("nan")
        cu = plan.closure.get(key) if hasattr(plan, "closure") else None
        if cu is not None and cu.done and cu.file("closure.json").is_file():
            from ...io import read_json

            null_share = float(read_json(cu.file("closure.json")).get("null_largest_share", float("nan")))
        part_rows.append({"layer": key.layer, "method": key.label, "seed": key.seed,
                          "n_coalitions": int(s.n_coalitions), "largest_share": float(s.largest_share),
                          "n_singletons": int(np.sum(np.asarray(part.sizes) == 1)),
                          "null_largest_share": null_share})
    lin_rows: list[dict[str, Any]] = []
    for (label, seed), u in plan.tracking.items():
        if not u.done:
            continue
        tr = pd.read_csv(u.file("transitions.csv"))
        for r in tr.itertuples(index=False):
            lin_rows.append({"layer": int(r.src_layer), "method": label, "seed": int(seed), "source": int(r.coalition),
                             "target_layer": int(r.dst_layer),
                             "target": int(r.target) if str(r.event) != "vanish" else -1,
                             "alpha": float(r.alpha), "beta": float(r.beta), "event": str(r.event)})
    from ...explorer.schema import empty_frame

    def frame(rows: list[dict[str, Any]], name: str) -> pd.DataFrame:
        return pd.DataFrame(rows) if rows else empty_frame(name)  # type: ignore[arg-type]

    co = frame(co_rows, "coalitions")
    if not co.empty:
        co["best_feature"] = co["best_feature"].fillna("").astype(str)
    return {"coalitions": co, "examples": frame(ex_rows, "examples"), "lineage": frame(lin_rows, "lineage"),
            "partitions": frame(part_rows, "partitions")}


def export_explorer(plan: StudyPlan) -> Path | None:
    """Write the explorer artifacts and ``explorer.html`` into the run directory.

    Returns
    -------
    pathlib.Path or None
        ``explorer.html``; ``None`` when no partition is finished (nothing to show).
    """
    from ...explorer import build_explorer, write_artifacts

    tables = coalition_tables(plan)
    if tables["coalitions"].empty:
        return None
    write_artifacts(plan.run_dir, coalitions=tables["coalitions"], examples=tables["examples"],
                    lineage=tables["lineage"], partitions=tables["partitions"])
    return build_explorer(plan.run_dir, title=f"Coalition explorer: {plan.cfg.name}")
