"""Build ``explorer.html``: one self-contained, offline page over a run's coalitions (docs/explorer.md).

The page is plain HTML, CSS and JavaScript (no library, no network): histograms are inline
SVG. Data is embedded as separate ``<script>`` blocks that the page parses only when they
are needed, so a run with thousands of coalitions per partition stays usable:

- ``explorer-index`` (plain JSON, parsed at load): the list of (layer, method, seed) slices;
- one block per slice (``slice-<i>``): its coalitions, members, histograms, examples, lineage
  and partition summary; parsed when the slice is selected;
- ``explorer-texts``: the distinct inputs of the examples (query, passage, target), each
  stored once; parsed when the first card with examples opens.

With ``compress=True`` (default) the slice and text blocks are gzip-compressed and
base64-encoded (``data-encoding="gzip+base64"``) and the page inflates them with the browser's
``DecompressionStream``; with ``compress=False`` they are plain JSON. Floats are stored and
shown to 4 significant digits; ``coalitions.parquet`` keeps full precision.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import ArtifactError, InputError
from ..io import atomic_write
from .artifacts import ExplorerArtifacts, read_artifacts
from .schema import COALITIONS, EXAMPLE_KINDS, EXAMPLE_SPLITS, KEY

__all__ = ["TABLE_COLUMNS", "build_explorer", "card_anchor", "page_data", "round_sig"]

#: Columns of the coalition table, in display order (every scalar column of coalitions.parquet
#: that varies within a partition).
TABLE_COLUMNS: tuple[str, ...] = (
    "coalition", "size", "pair_insample", "pair_heldout", "ratio_insample", "ratio_heldout",
    "pair_null_mean", "pair_null_sd", "pair_q", "pair_significant", "ood_drop", "ood_drop_rel",
    "ood_kind", "ood_q", "ood_significant", "best_feature", "best_feature_r2",
)
_STRING_COLUMNS = tuple(c for c in TABLE_COLUMNS if COALITIONS[c] == "str")
_SIG_DIGITS = 4


def round_sig(values: Any, digits: int = _SIG_DIGITS) -> list[float | None]:
    """Floats rounded to ``digits`` significant digits as a JSON-ready list (None for NaN/inf).

    Vectorised: values are grouped by decade and rounded with ``numpy.round`` (the result is
    the double nearest to the rounded decimal, so ``json`` prints it short); values outside
    ``numpy.round``'s exact range go through ``format``. Tested against ``float(f"{v:.4g}")``.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    out = np.array(a)
    finite = np.isfinite(a) & (a != 0)
    with np.errstate(divide="ignore"):
        decade = np.floor(np.log10(np.abs(np.where(finite, a, 1.0)))).astype(np.int64)
    decimals = digits - 1 - decade
    exact = finite & (decimals <= 22) & (decimals >= -22)
    for d in np.unique(decimals[exact]):
        m = exact & (decimals == d)
        out[m] = np.round(a[m], int(d))
    for i in np.flatnonzero(finite & ~exact):
        out[i] = float(f"{a[i]:.{digits}g}")
    lst: list[float | None] = out.tolist()
    if not np.isfinite(a).all():
        lst = [None if bad else v for v, bad in zip(lst, (~np.isfinite(a)).tolist())]
    return lst


def _column(kind: str, values: pd.Series) -> list[Any]:
    if kind == "float":
        return round_sig(values.to_numpy(dtype=np.float64))
    if kind == "int":
        return values.to_numpy(dtype=np.int64).tolist()
    if kind == "bool":
        return values.to_numpy(dtype=bool).tolist()
    return [str(v) for v in values]


def _hists(counts: pd.Series, edges: pd.Series) -> list[list[Any]]:
    """``[counts, edges]`` per coalition; equal-width edges are stored as ``[first, last]``
    (np.histogram's case). Vectorised when every coalition has the same number of bins."""
    lengths = {len(e) for e in edges}
    if len(lengths) == 1 and (n_edges := lengths.pop()) > 2:
        e = np.stack([np.asarray(x, dtype=np.float64) for x in edges]).reshape(len(edges), n_edges)
        step = (e[:, -1] - e[:, 0]) / (n_edges - 1)
        uniform = np.all(np.isclose(np.diff(e, axis=1), step[:, None], rtol=1e-9, atol=0), axis=1)
        rounded = np.asarray(round_sig(e), dtype=object).reshape(e.shape)
        stored = [list(r[[0, -1]]) if u else list(r) for r, u in zip(rounded, uniform)]
    else:
        stored = []
        for raw in edges:
            x = np.asarray(raw, dtype=np.float64)
            even = len(x) > 2 and bool(np.allclose(np.diff(x), (x[-1] - x[0]) / (len(x) - 1), rtol=1e-9, atol=0))
            stored.append(round_sig(x[[0, -1]] if even else x))
    return [[np.asarray(c).tolist(), s] for c, s in zip(counts, stored)]


def _image_uri(path: str, root: Path | None, row: int) -> str:
    if not path:
        return ""
    if root is None:
        raise InputError(f"coalitions.image_grid[row {row}]: {path!r} is relative to the run directory; "
                         "pass root= (ExplorerArtifacts.from_frames(..., root=RUN_DIR)).")
    p = root / path
    if not p.is_file():
        raise ArtifactError(f"{p}: image grid not found (coalitions.image_grid, row {row}).")
    if p.suffix.lower() != ".png":
        raise InputError(f"coalitions.image_grid[row {row}]: expected a .png file, got {path!r}.")
    return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def _spans(keys: np.ndarray) -> dict[str, list[int]]:
    """``{key: [start, stop]}`` of each run of equal values in a sorted integer array."""
    if len(keys) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    stops = np.r_[starts[1:], len(keys)]
    return {str(int(keys[a])): [int(a), int(b)] for a, b in zip(starts, stops)}


def _links(frame: pd.DataFrame, by: str, layer_col: str, other_col: str) -> dict[str, list[list[Any]]]:
    """Lineage rows grouped by coalition: ``{c: [[layer, coalition, alpha, beta, event], ...]}``."""
    out: dict[str, list[list[Any]]] = {}
    cols = (frame[by].tolist(), frame[layer_col].tolist(), frame[other_col].tolist(), round_sig(frame["alpha"]),
            round_sig(frame["beta"]), frame["event"].astype(str).tolist())
    for c, layer, other, a, b, ev in zip(*cols):
        out.setdefault(str(c), []).append([layer, other, a, b, ev])
    return out


def page_data(arts: ExplorerArtifacts) -> tuple[dict[str, Any], dict[str, Any], Iterator[dict[str, Any]]]:
    """The page's data as JSON-ready Python objects: ``(index, texts, slices)``.

    Parameters
    ----------
    arts : ExplorerArtifacts

    Returns
    -------
    index : dict
        ``slices`` (one ``{layer, method, seed, id, n}`` per partition), ``meta``, the table
        columns.
    texts : dict
        The distinct inputs of the examples, columnar: ``queries`` and ``passages`` (distinct
        strings) and ``inputs`` = ``[query_ids, passage_ids, targets]``.
    slices : iterator of dict
        One per entry of ``index["slices"]`` (built lazily): ``cols`` and ``rows`` (one row
        per coalition, columns :data:`TABLE_COLUMNS`), ``members``, ``hist`` (counts, edges;
        equal-width edges as ``[first, last]``), ``images`` (coalition -> data URI),
        ``ex`` (the examples, columnar, sorted by coalition, split, kind, rank: ``split`` and
        ``kind`` as indices into :data:`~.schema.EXAMPLE_SPLITS` / ``EXAMPLE_KINDS``,
        ``rank``, ``input``, ``activation``) with ``ex_span`` (coalition -> [start, stop]),
        ``out`` / ``in`` (coalition -> ``[[layer, coalition, alpha, beta, event], ...]``),
        ``summary`` (the partitions_summary row or None), ``prev_layer`` / ``next_layer``.
        Floats are rounded to 4 significant digits (:func:`round_sig`).
    """
    co, ex, li, pa = arts.coalitions, arts.examples, arts.lineage, arts.partitions
    models = sorted(set(co["model"])) if len(co) else []
    tasks = sorted(set(co["task"])) if len(co) else []

    q_codes, queries = pd.factorize(ex["query"], sort=False)
    p_codes, passages = pd.factorize(ex["passage"], sort=False)
    target = np.asarray(round_sig(ex["target"]), dtype=np.float64)  # None -> nan
    triples = pd.DataFrame({"q": q_codes, "p": p_codes, "t": target})
    input_id = triples.groupby(["q", "p", "t"], sort=False, dropna=False).ngroup().to_numpy()
    first = np.unique(input_id, return_index=True)[1] if len(input_id) else np.zeros(0, dtype=np.int64)
    texts = {"queries": [str(x) for x in queries], "passages": [str(x) for x in passages],
             "inputs": [q_codes[first].tolist(), p_codes[first].tolist(), round_sig(target[first])]}
    ex = ex.drop(columns=["query", "passage", "target"]).assign(_input=input_id, _split=pd.Categorical(ex["split"], EXAMPLE_SPLITS).codes,
                   _kind=pd.Categorical(ex["kind"], EXAMPLE_KINDS).codes)

    slice_keys = sorted({tuple(k) for k in co[list(KEY)].itertuples(index=False, name=None)})
    layers_of: dict[tuple[str, int], list[int]] = {}
    for layer, method, seed in slice_keys:
        layers_of.setdefault((method, seed), []).append(layer)
    index_slices = [{"layer": int(k[0]), "method": str(k[1]), "seed": int(k[2]), "id": f"slice-{i}"}
                    for i, k in enumerate(slice_keys)]
    meta = " · ".join(x for x in (", ".join(models), ", ".join(tasks)) if x)
    index = {"meta": meta, "version": __version__, "slices": index_slices, "table_columns": list(TABLE_COLUMNS),
             "string_columns": list(_STRING_COLUMNS), "example_splits": list(EXAMPLE_SPLITS),
             "example_kinds": list(EXAMPLE_KINDS)}
    co_groups = co.groupby(list(KEY), sort=False).indices
    for s in index_slices:
        s["n"] = len(co_groups[(s["layer"], s["method"], s["seed"])])

    def slices() -> Iterator[dict[str, Any]]:
        ex_groups = ex.groupby(list(KEY), sort=False).indices
        out_groups = li.groupby(list(KEY), sort=False).indices
        li_in = li[li["target"] >= 0].reset_index(drop=True)
        in_groups = li_in.groupby(["target_layer", "method", "seed"], sort=False).indices
        summaries = {tuple(r[c] for c in KEY): r for r in pa.to_dict("records")}
        for key in slice_keys:
            layer, method, seed = key
            g = co.iloc[co_groups[key]].sort_values("coalition")
            columns = [_column(COALITIONS[c], g[c]) for c in TABLE_COLUMNS]
            images = {}
            for row_no, c, path in zip(g.index, g["coalition"], g["image_grid"]):
                uri = _image_uri(str(path), arts.root, int(row_no))
                if uri:
                    images[str(int(c))] = uri
            e = ex.iloc[ex_groups.get(key, [])].sort_values(["coalition", "_split", "_kind", "rank"])
            exd = {"split": e["_split"].tolist(), "kind": e["_kind"].tolist(), "rank": e["rank"].tolist(),
                   "input": e["_input"].tolist(), "activation": round_sig(e["activation"])}
            lay = layers_of[(method, seed)]
            pos = lay.index(layer)
            summ = summaries.get(key)
            yield {
                "layer": int(layer), "method": str(method), "seed": int(seed),
                "prev_layer": lay[pos - 1] if pos > 0 else None,
                "next_layer": lay[pos + 1] if pos + 1 < len(lay) else None,
                "cols": list(TABLE_COLUMNS), "rows": [list(r) for r in zip(*columns)],
                "members": [np.asarray(m).tolist() for m in g["members"]],
                "hist": _hists(g["act_hist_counts"], g["act_hist_edges"]),
                "images": images,
                "ex": exd, "ex_span": _spans(e["coalition"].to_numpy()),
                "out": _links(li.iloc[out_groups.get(key, [])], "source", "target_layer", "target"),
                "in": _links(li_in.iloc[in_groups.get(key, [])], "target", "layer", "source"),
                "summary": None if summ is None else {
                    "n_coalitions": int(summ["n_coalitions"]), "largest_share": round_sig([summ["largest_share"]])[0],
                    "n_singletons": int(summ["n_singletons"]),
                    "null_largest_share": round_sig([summ["null_largest_share"]])[0],
                },
            }

    return index, texts, slices()


def _block(block_id: str, obj: Any, compress: bool) -> str:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if compress:
        payload = base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")
        return f'<script type="application/json" id="{block_id}" data-encoding="gzip+base64">{payload}</script>\n'
    # "</script" or "<!--" inside a script element would end or derail it; "<" only occurs
    # inside JSON strings, where the escape "\\u003c" is the same character.
    safe = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="{block_id}">{safe}</script>\n'


def build_explorer(
    source: str | os.PathLike[str] | ExplorerArtifacts,
    out_path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    compress: bool = True,
) -> Path:
    """Write the coalition explorer page (docs/explorer.md).

    Parameters
    ----------
    source : path-like or ExplorerArtifacts
        A run directory (its ``artifacts/*.parquet`` are read with
        :func:`~hedonic_neurons.explorer.read_artifacts`) or already validated tables
        (:meth:`ExplorerArtifacts.from_frames`).
    out_path : path-like, optional
        Output file; default ``RUN_DIR/explorer.html``. Required when ``source`` is tables.
    title : str, optional
        Page title; default "Coalition explorer: MODEL, TASK".
    compress : bool
        Gzip + base64 the data blocks (default; about 4x smaller). ``False`` embeds plain
        JSON (readable, larger).

    Returns
    -------
    pathlib.Path
        The written file (written atomically).

    Raises
    ------
    ArtifactError
        If a run directory lacks one of the four artifacts (named) or an image grid file.
    InputError
        If the tables do not match the schema, have no coalition, or ``out_path`` is missing
        for tables.
    """
    if isinstance(source, ExplorerArtifacts):
        if out_path is None:
            raise InputError("out_path: required when source is an ExplorerArtifacts (no run directory to "
                             "write into).")
        arts = source
    elif isinstance(source, (str, os.PathLike)):
        arts = read_artifacts(source)
        out_path = Path(source) / "explorer.html" if out_path is None else out_path
    else:
        raise InputError(f"source: expected a run directory or ExplorerArtifacts, got {type(source).__name__}.")
    if len(arts.coalitions) == 0:
        raise InputError("coalitions: no rows; the explorer needs at least one coalition.")
    index, texts, slices = page_data(arts)
    if title is None:
        title = "Coalition explorer" + (f": {index['meta']}" if index["meta"] else "")
    template = resources.files("hedonic_neurons.explorer").joinpath("template.html").read_text(encoding="utf-8")
    head, tail = template.split("<!--DATA-->")
    head = head.replace("__TITLE__", _html_escape(title))
    out = Path(out_path)
    with atomic_write(out) as fh:  # slice by slice: the whole page is never held in memory
        fh.write(head)
        fh.write(_block("explorer-index", index, compress=False))
        fh.write(_block("explorer-texts", texts, compress))
        for meta, data in zip(index["slices"], slices):
            fh.write(_block(meta["id"], data, compress))
        fh.write(tail)
    return out


def card_anchor(layer: int, method: str, seed: int, coalition: int | None = None) -> str:
    """The URL fragment that opens a partition (and a coalition's card) in ``explorer.html``.

    For links from a report: ``f"explorer.html{card_anchor(12, 'random', 0, 41)}"`` ->
    ``explorer.html#layer=12&method=random&seed=0&c=41``.
    """
    from urllib.parse import urlencode

    params: dict[str, str] = {"layer": str(int(layer)), "method": str(method), "seed": str(int(seed))}
    if coalition is not None:
        params["c"] = str(int(coalition))
    return "#" + urlencode(params)


def _html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)
