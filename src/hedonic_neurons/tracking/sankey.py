"""Sankey diagrams of coalition flow across layers (paper §3.4, Figure 2 / App. H).

Nodes are the coalitions of each layer (one column per layer, labelled ``L{ℓ}:C{c} (n={size})``)
and, for every layer pair with vanishing coalitions, a grey sink ``L{ℓ'}: vanished`` in the
target column. Links follow the events of a :class:`~.transitions.TransitionTable`:

- persist (green): ``C → target``, width ``|C|``;
- merge (blue): ``C → target``, width ``|C|``;
- split (orange): ``C → each piece``, widths ``|C| · α(C→piece) / Σ_pieces α`` (so a source's
  outflow is its size; the thin remainder that dissolves is not drawn);
- vanish (grey): ``C → vanished sink``, width ``|C|``.

With ``top``, only the ``top`` largest coalitions of each layer get their own node; the others
are pooled into one ``L{ℓ}: other`` node per layer so that no flow is lost.

The figure is plotly (interactive HTML with plotly.js embedded, works offline); the PNG goes
through kaleido 0.2.1 (pointed at the plotly.js bundled with plotly, since plotly ≥ 6 dropped
the old kaleido engine) and falls back to a matplotlib drawing of the same nodes and links
when kaleido is missing or fails.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_path, atomic_write
from ..partition import Partition
from .transitions import TransitionTable

__all__ = ["EVENT_COLOURS", "sankey_figure", "save_sankey_html", "save_sankey_png"]

EVENT_COLOURS: dict[str, str] = {
    "persist": "rgba(44,160,44,0.55)",
    "split": "rgba(255,127,14,0.55)",
    "merge": "rgba(31,119,180,0.55)",
    "vanish": "rgba(150,150,150,0.45)",
}
_NODE_COLOUR = "rgba(80,80,80,0.9)"
_SINK_COLOUR = "rgba(170,170,170,0.9)"


def _tables_list(
    tables: Mapping[tuple[int, int], TransitionTable] | Iterable[TransitionTable] | TransitionTable,
) -> list[TransitionTable]:
    if isinstance(tables, TransitionTable):
        items = [tables]
    elif isinstance(tables, Mapping):
        items = list(tables.values())
    else:
        items = list(tables)
    if not items:
        raise InputError("tables: expected at least one TransitionTable, got none.")
    for t in items:
        if not isinstance(t, TransitionTable):
            raise InputError(f"tables: expected TransitionTable items, got {type(t).__name__}.")
    return sorted(items, key=lambda t: (t.src_layer, t.dst_layer))


def _layer_sizes(
    items: list[TransitionTable], partitions: Mapping[int, Partition] | None
) -> dict[int, np.ndarray]:
    sizes: dict[int, np.ndarray] = {}
    for t in items:
        sizes[t.src_layer] = np.asarray(t.src_sizes, dtype=np.int64)
    for t in items:
        if t.dst_layer not in sizes:
            if partitions is not None and t.dst_layer in partitions:
                sizes[t.dst_layer] = np.asarray(partitions[t.dst_layer].sizes, dtype=np.int64)
            else:
                sizes[t.dst_layer] = np.ones(t.n_dst, dtype=np.int64)
    if partitions is not None:
        for layer, s in sizes.items():
            if layer in partitions and partitions[layer].n_coalitions != s.shape[0]:
                raise InputError(
                    f"partitions[{layer}]: has {partitions[layer].n_coalitions} coalitions but the "
                    f"transition tables have {s.shape[0]} for layer {layer}."
                )
            if layer in partitions:
                sizes[layer] = np.asarray(partitions[layer].sizes, dtype=np.int64)
    for t in items:
        if sizes[t.dst_layer].shape[0] != t.n_dst:
            if partitions is not None and t.dst_layer in partitions:
                raise InputError(
                    f"partitions[{t.dst_layer}]: has {sizes[t.dst_layer].shape[0]} coalitions but table "
                    f"{t.src_layer}->{t.dst_layer} has {t.n_dst} targets."
                )
            raise InputError(
                f"tables: layer {t.dst_layer} has {sizes[t.dst_layer].shape[0]} coalitions in one table "
                f"but {t.n_dst} targets in table {t.src_layer}->{t.dst_layer}."
            )
    return sizes


def sankey_figure(
    tables: Mapping[tuple[int, int], TransitionTable] | Iterable[TransitionTable] | TransitionTable,
    partitions: Mapping[int, Partition] | None = None,
    *,
    top: int | None = None,
    title: str | None = None,
    width: int = 1100,
    height: int = 700,
) -> Any:
    """Coalition-flow Sankey diagram (paper Figure 2).

    Parameters
    ----------
    tables : mapping (ℓ, ℓ') -> TransitionTable, iterable of tables, or one table
        Typically the output of :func:`~hedonic_neurons.tracking.track`.
    partitions : mapping ℓ -> Partition, optional
        Gives the coalition sizes of the last layer (the tables carry the source sizes);
        without it the last layer's nodes have size 1.
    top : int, optional
        Keep only the ``top`` largest coalitions of each layer as nodes; pool the rest into
        one "other" node per layer.
    title : str, optional
    width, height : int
        Figure size in pixels.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Sankey`` trace; ``node.customdata`` holds ``[layer, coalition]`` (coalition
        ``-1`` for a vanished sink, ``-2`` for an "other" pool); ``link.customdata`` holds the
        event name of each link.
    """
    import plotly.graph_objects as go

    items = _tables_list(tables)
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
        raise InputError(f"top: expected a positive integer or None, got {top!r}.")
    sizes = _layer_sizes(items, partitions)
    layers = sorted(sizes)
    col = {layer: i for i, layer in enumerate(layers)}

    labels: list[str] = []
    custom: list[list[int]] = []
    node_layer: list[int] = []
    node_colour: list[str] = []
    node_id: dict[tuple[int, int], int] = {}

    kept: dict[int, set[int]] = {
        layer: set(np.argsort(-s, kind="stable")[:top].tolist())
        for layer, s in sizes.items() if top is not None and s.shape[0] > top
    }

    def register(layer: int, c: int, label: str, colour: str) -> int:
        """Node id of ``(layer, c)``; created on first use (c = -1: vanished sink, -2: other)."""
        key = (layer, c)
        if key not in node_id:
            node_id[key] = len(labels)
            labels.append(label)
            custom.append([layer, c])
            node_layer.append(layer)
            node_colour.append(colour)
        return node_id[key]

    def node(layer: int, c: int) -> int:
        s = sizes[layer]
        if layer in kept and c not in kept[layer]:
            return register(layer, -2, f"L{layer}: other ({s.shape[0] - len(kept[layer])} coalitions)",
                            _NODE_COLOUR)
        return register(layer, c, f"L{layer}:C{c} (n={int(s[c])})", _NODE_COLOUR)

    def sink(layer: int) -> int:
        return register(layer, -1, f"L{layer}: vanished", _SINK_COLOUR)

    flows: dict[tuple[int, int, str], float] = {}
    for t in items:
        mass = None if t.mass is None else np.asarray(t.mass, dtype=np.float64)
        for c in range(t.n_src):
            ev = str(t.event[c])
            s = float(t.src_sizes[c])
            src = node(t.src_layer, c)
            if ev == "vanish" or not t.targets[c]:
                dests = [(sink(t.dst_layer), s)]
                ev = "vanish"
            elif ev == "split":
                pieces = list(t.targets[c])
                if mass is not None and mass[c, pieces].sum() > 0:
                    w = mass[c, pieces] / mass[c, pieces].sum()
                else:
                    w = np.full(len(pieces), 1.0 / len(pieces))
                dests = [(node(t.dst_layer, p), s * float(wi)) for p, wi in zip(pieces, w)]
            else:
                dests = [(node(t.dst_layer, int(t.targets[c][0])), s)]
            for dst, v in dests:
                flows[(src, dst, ev)] = flows.get((src, dst, ev), 0.0) + v
    # Every coalition of every layer gets a node, even without links (e.g. new coalitions).
    for layer in layers:
        for c in range(sizes[layer].shape[0]):
            node(layer, c)

    ncol = max(len(layers) - 1, 1)
    xs = [0.001 + 0.998 * col[layer] / ncol for layer in node_layer]
    # y: stack the nodes of each column in order, proportionally to their size.
    ys = [0.0] * len(labels)
    inflow = np.zeros(len(labels))
    outflow = np.zeros(len(labels))
    for (s_id, d_id, _), v in flows.items():
        outflow[s_id] += v
        inflow[d_id] += v
    own = np.array([float(sizes[lay][c]) if c >= 0 else 0.0 for lay, c in custom])
    node_value = np.maximum(np.maximum(inflow, outflow), np.maximum(own, 1e-9))
    for layer in layers:
        ids = [i for i, lay in enumerate(node_layer) if lay == layer]
        val = node_value[ids]
        total = val.sum() if val.sum() > 0 else 1.0
        centres = (np.cumsum(val) - val / 2) / total
        for i, yc in zip(ids, centres):
            ys[i] = float(np.clip(0.001 + 0.998 * yc, 0.001, 0.999))

    keys = list(flows)
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=labels, x=xs, y=ys, color=node_colour, pad=8, thickness=14,
                  customdata=custom, line=dict(width=0)),
        link=dict(
            source=[k[0] for k in keys], target=[k[1] for k in keys],
            value=[flows[k] for k in keys], color=[EVENT_COLOURS[k[2]] for k in keys],
            customdata=[k[2] for k in keys],
            hovertemplate="%{source.label} → %{target.label}<br>%{customdata}: %{value:.3g}<extra></extra>",
        ),
    ))
    span = f"layers {layers[0]}→{layers[-1]}"
    fig.update_layout(
        title=title or f"Coalition flow, {span} (green persist, orange split, blue merge, grey vanish)",
        width=width, height=height, font=dict(size=10),
    )
    return fig


def save_sankey_html(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write the figure as one self-contained HTML file (plotly.js embedded: works offline)."""
    p = Path(path)
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    with atomic_write(p) as fh:
        fh.write(html)
    return p


def save_sankey_png(
    fig: Any, path: str | os.PathLike[str], *, scale: float = 1.0, engine: str = "auto"
) -> Path:
    """Write the figure as a static PNG.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        A figure from :func:`sankey_figure`.
    path : path-like
    scale : float
        Resolution multiplier.
    engine : {"auto", "kaleido", "matplotlib"}
        ``"auto"`` tries kaleido (0.2.1, with plotly's bundled plotly.js) and falls back to
        the matplotlib drawing, with a warning, if it fails.

    Returns
    -------
    pathlib.Path
    """
    if engine not in ("auto", "kaleido", "matplotlib"):
        raise InputError(f"engine: expected 'auto', 'kaleido' or 'matplotlib', got {engine!r}.")
    p = Path(path)
    if engine in ("auto", "kaleido"):
        try:
            data = _kaleido_png(fig, scale)
            with atomic_write(p, "wb") as fh:
                fh.write(data)
            return p
        except Exception as exc:
            if engine == "kaleido":
                raise
            warnings.warn(f"kaleido could not render the Sankey ({exc}); drawing it with matplotlib.",
                          RuntimeWarning, stacklevel=2)
    with atomic_path(p) as tmp:
        _matplotlib_png(fig, tmp, scale)
    return p


def _kaleido_png(fig: Any, scale: float) -> bytes:
    import plotly
    from kaleido.scopes.plotly import PlotlyScope

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    width = fig.layout.width or 1100
    height = fig.layout.height or 700
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kaleido 0.2.1 uses Thread.setDaemon
        scope = PlotlyScope(plotlyjs=str(js) if js.is_file() else None, mathjax=False)
        data = scope.transform(fig.to_dict(), format="png", width=width, height=height, scale=scale)
    if not data.startswith(b"\x89PNG"):
        raise RuntimeError("kaleido returned something that is not a PNG")
    return data


def _matplotlib_png(fig: Any, path: Path, scale: float) -> None:
    """Draw the Sankey trace of ``fig`` with matplotlib: node bars and Bézier ribbons."""
    # matplotlib.figure.Figure, not pyplot: no global backend or figure state is touched.
    from matplotlib.figure import Figure
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as MPath

    tr = fig.data[0]
    labels = list(tr.node.label)
    xs = np.asarray(tr.node.x, dtype=np.float64)
    src = np.asarray(tr.link.source, dtype=np.int64)
    dst = np.asarray(tr.link.target, dtype=np.int64)
    val = np.asarray(tr.link.value, dtype=np.float64)
    colours = list(tr.link.color)
    n = len(labels)
    inflow = np.bincount(dst, weights=val, minlength=n)
    outflow = np.bincount(src, weights=val, minlength=n)
    nval = np.maximum(np.maximum(inflow, outflow), 1e-9)
    cols = sorted(set(np.round(xs, 6).tolist()))
    colx = {c: i for i, c in enumerate(cols)}
    node_col = np.array([colx[round(x, 6)] for x in xs])
    y0 = np.zeros(n)
    height = np.zeros(n)
    pad_frac = 0.02
    for c in range(len(cols)):
        ids = np.flatnonzero(node_col == c)
        ids = ids[np.argsort(-np.asarray(tr.node.y, dtype=np.float64)[ids], kind="stable")[::-1]]
        total = nval[ids].sum()
        usable = max(1.0 - pad_frac * max(len(ids) - 1, 0), 0.3)
        gap = (1.0 - usable) / (len(ids) - 1) if len(ids) > 1 else 0.0
        y = 1.0
        for i in ids:
            h = usable * nval[i] / total
            height[i] = h
            y0[i] = y - h
            y -= h + gap
    bar = 0.012
    w_in = 11.0 * scale
    h_in = 7.0 * scale
    f = Figure(figsize=(w_in, h_in))
    ax = f.add_subplot()
    out_off = np.zeros(n)
    in_off = np.zeros(n)
    for s, d, v, colour in zip(src, dst, val, colours):
        hs = height[s] * v / nval[s]
        hd = height[d] * v / nval[d]
        xs0 = node_col[s] / max(len(cols) - 1, 1) + bar / 2
        xd0 = node_col[d] / max(len(cols) - 1, 1) - bar / 2
        ys_top = y0[s] + height[s] - out_off[s]
        yd_top = y0[d] + height[d] - in_off[d]
        out_off[s] += hs
        in_off[d] += hd
        xm = (xs0 + xd0) / 2
        verts = [
            (xs0, ys_top), (xm, ys_top), (xm, yd_top), (xd0, yd_top),
            (xd0, yd_top - hd), (xm, yd_top - hd), (xm, ys_top - hs), (xs0, ys_top - hs),
            (xs0, ys_top),
        ]
        codes = [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4,
                 MPath.LINETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4, MPath.CLOSEPOLY]
        ax.add_patch(PathPatch(MPath(verts, codes), facecolor=_rgba(colour), edgecolor="none"))
    node_colours = list(tr.node.color) if tr.node.color is not None else [_NODE_COLOUR] * n
    show_labels = n <= 80
    for nd in range(n):
        xc = float(node_col[nd]) / max(len(cols) - 1, 1)
        ax.add_patch(Rectangle((xc - bar / 2, y0[nd]), bar, height[nd], facecolor=_rgba(node_colours[nd]),
                               edgecolor="none"))
        if show_labels:
            right = node_col[nd] < len(cols) - 1
            ax.text(xc + (bar if right else -bar), y0[nd] + height[nd] / 2, labels[nd], fontsize=6,
                    va="center", ha="left" if right else "right")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.02, 1.02)
    ax.axis("off")
    title = fig.layout.title.text if fig.layout.title is not None else None
    if title:
        ax.set_title(title, fontsize=10)
    f.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _rgba(colour: str) -> tuple[float, float, float, float]:
    """Parse ``rgba(r,g,b,a)`` / ``rgb(r,g,b)`` / any matplotlib colour to an RGBA tuple."""
    s = str(colour).strip()
    if s.startswith("rgb"):
        parts = [float(x) for x in s[s.index("(") + 1 : s.index(")")].split(",")]
        r, g, b = (v / 255.0 for v in parts[:3])
        a = parts[3] if len(parts) > 3 else 1.0
        return (r, g, b, a)
    from matplotlib.colors import to_rgba

    return to_rgba(s)
