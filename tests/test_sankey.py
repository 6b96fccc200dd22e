"""Sankey diagrams of coalition flow: nodes, links coloured by event, HTML and PNG outputs."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from hedonic_neurons import InputError, Partition
from hedonic_neurons.tracking import transition_table
from hedonic_neurons.tracking.sankey import (
    EVENT_COLOURS,
    sankey_figure,
    save_sankey_html,
    save_sankey_png,
)

PLANTED = np.array([
    [1.0, 0.0, 0.0, 0.0],  # persist -> T0
    [0.0, 1.0, 1.5, 0.0],  # split -> T2 (α = 0.6) and T1 (α = 0.4)
    [0.0, 0.0, 0.0, 1.0],  # merge -> T3
    [0.0, 0.0, 0.0, 1.0],  # merge -> T3
    [0.0, 0.0, 0.0, 0.0],  # vanish
])


@pytest.fixture
def tables():
    t1 = transition_table(PLANTED, src_layer=7, dst_layer=8, src_sizes=np.array([4, 4, 3, 2, 1]))
    t2 = transition_table(np.eye(4), src_layer=8, dst_layer=9, src_sizes=np.array([3, 3, 2, 2]))
    parts = {9: Partition.from_coalitions([[0, 1, 2], [3, 4], [5, 6], [7]])}
    return {(7, 8): t1, (8, 9): t2}, parts


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_figure_nodes_and_links(tables) -> None:
    tabs, parts = tables
    fig = sankey_figure(tabs, parts)
    tr = fig.data[0]
    labels = list(tr.node.label)
    assert "L7:C0 (n=4)" in labels and "L9:C3 (n=1)" in labels
    assert "L8: vanished" in labels and "L9: vanished" not in labels
    assert len(labels) == 5 + 4 + 4 + 1
    links = list(zip(tr.link.source, tr.link.target, tr.link.value, tr.link.customdata, tr.link.color))
    by_event: dict[str, list] = {}
    for s, t, v, e, c in links:
        by_event.setdefault(e, []).append((labels[s], labels[t], v))
        assert c == EVENT_COLOURS[e]
    assert ("L7:C0 (n=4)", "L8:C0 (n=3)", 4.0) in by_event["persist"]
    split = sorted(by_event["split"], key=lambda x: x[2])
    assert [x[1] for x in split] == ["L8:C1 (n=3)", "L8:C2 (n=2)"]
    assert [round(x[2], 9) for x in split] == [1.6, 2.4]  # |C| = 4 split 1 : 1.5 by mass
    assert {x[1] for x in by_event["merge"]} == {"L8:C3 (n=2)"}
    assert by_event["vanish"] == [("L7:C4 (n=1)", "L8: vanished", 1.0)]
    # Layer 8 -> 9 is the identity: four persist links.
    assert sum(1 for s, t, v, e, c in links if e == "persist" and labels[s].startswith("L8")) == 4


def test_top_pools_small_coalitions(tables) -> None:
    tabs, parts = tables
    fig = sankey_figure(tabs, parts, top=2)
    labels = list(fig.data[0].node.label)
    assert "L7: other (3 coalitions)" in labels
    total_out_l7 = sum(v for s, v in zip(fig.data[0].link.source, fig.data[0].link.value)
                       if labels[s].startswith("L7"))
    assert total_out_l7 == pytest.approx(4 + 4 + 3 + 2 + 1)
    with pytest.raises(InputError, match="top"):
        sankey_figure(tabs, parts, top=0)


def test_inconsistent_partitions_rejected(tables) -> None:
    tabs, _ = tables
    with pytest.raises(InputError, match="partitions"):
        sankey_figure(tabs, {9: Partition.from_labels([0, 1, 2])})


def test_html_is_self_contained(tables, tmp_path) -> None:
    tabs, parts = tables
    path = save_sankey_html(sankey_figure(tabs, parts), tmp_path / "flow.html")
    html = path.read_text(encoding="utf-8")
    assert "L7:C0 (n=4)" in html and "L8: vanished" in html
    assert '<script src="https://cdn.plot.ly' not in html  # plotly.js embedded: opens offline
    assert len(html) > 1_000_000


@pytest.mark.parametrize("engine", ["auto", "matplotlib"])
def test_png_is_valid(tables, tmp_path, engine: str) -> None:
    tabs, parts = tables
    path = save_sankey_png(sankey_figure(tabs, parts, width=600, height=400), tmp_path / f"flow_{engine}.png",
                           engine=engine)
    w, h = _png_size(path)
    assert w > 100 and h > 100
    assert path.stat().st_size > 2000


def test_png_falls_back_when_kaleido_fails(tables, tmp_path, monkeypatch) -> None:
    from hedonic_neurons.tracking import sankey

    def broken(fig, scale):
        raise RuntimeError("no chromium here")

    monkeypatch.setattr(sankey, "_kaleido_png", broken)
    tabs, parts = tables
    with pytest.warns(RuntimeWarning, match="matplotlib"):
        path = save_sankey_png(sankey_figure(tabs, parts), tmp_path / "fb.png")
    assert _png_size(path)[0] > 100
    with pytest.raises(RuntimeError, match="chromium"):
        save_sankey_png(sankey_figure(tabs, parts), tmp_path / "fb2.png", engine="kaleido")
