"""The coalition explorer: artifact schema, writer, page builder, ``hedonic explore``, and the page
itself driven in headless Chromium (docs/explorer.md)."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import math
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.explorer import (
    ARTIFACT_FILES,
    ExplorerArtifacts,
    build_explorer,
    lineage_from_transitions,
    read_artifacts,
    validate_frame,
    write_artifacts,
)
from hedonic_neurons.explorer.build import round_sig
from hedonic_neurons.explorer.schema import COALITIONS, EXAMPLE_KINDS, EXAMPLE_SPLITS
from hedonic_neurons.explorer.synthetic import synthetic_artifacts
from hedonic_neurons.tracking import transfer_ratios, transition_table

LAYERS, METHODS, SEEDS = (0, 1, 2), ("hedonic_pas_exact_top_cover", "random"), (0, 1)


def r4(v: Any) -> float | None:
    """The obvious reference for the page's rounding: Python's own formatting."""
    v = float(v)
    return None if not math.isfinite(v) else float(f"{v:.4g}")


@pytest.fixture(scope="module")
def arts() -> ExplorerArtifacts:
    return synthetic_artifacts(layers=LAYERS, methods=METHODS, seeds=SEEDS, n_neurons=40, n_coalitions=8,
                               n_examples=3, n_texts=30, seed=0)


@pytest.fixture(scope="module")
def run_dir(arts: ExplorerArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    write_artifacts(root, coalitions=arts.coalitions, examples=arts.examples, lineage=arts.lineage,
                    partitions=arts.partitions)
    build_explorer(root)
    return root


def decode_blocks(html: str) -> dict[str, Any]:
    """Every data block of a page, decoded in Python the way the page's script does."""
    out = {}
    for m in re.finditer(r'<script type="application/json" id="([^"]+)"( data-encoding="gzip\+base64")?>(.*?)</script>',
                         html, flags=re.S):
        raw = m.group(3)
        text = gzip.decompress(base64.b64decode(raw)).decode("utf-8") if m.group(2) else raw
        out[m.group(1)] = json.loads(text)
    return out


# ---- rounding ---------------------------------------------------------------------------------

def test_round_sig_matches_python_formatting() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-30, 30, 2000),
                             [0.0, -0.0, np.nan, np.inf, -np.inf, 9.99951, 0.000123456, 1e-300, 5e-324, 1.7e308]])
    got = round_sig(values)
    assert got == [r4(v) for v in values]
    # the stored value prints short: what json writes is what the page shows
    assert all(len(repr(v)) <= 11 for v in got if v is not None and 1e-4 < abs(v) < 1e4)


# ---- schema validation ------------------------------------------------------------------------

def _bad(frame: pd.DataFrame, col: str, value: Any, row: int = 0) -> pd.DataFrame:
    f = frame.copy()
    f[col] = f[col].astype(object)
    f.at[row, col] = value
    return f


@pytest.mark.parametrize(
    ("table", "mutate", "message"),
    [
        ("coalitions", lambda f: f.drop(columns=["pair_q"]), r"coalitions: missing column 'pair_q'"),
        ("coalitions", lambda f: _bad(f, "pair_heldout", "high"), r"coalitions\.pair_heldout: expected floats"),
        ("coalitions", lambda f: _bad(f, "ood_kind", "approximate"), r"coalitions\.ood_kind: expected one of"),
        ("coalitions", lambda f: _bad(f, "size", 99), r"coalitions\.members\[row 0\]: holds \d+ neurons but size is 99"),
        ("coalitions", lambda f: _bad(f, "members", "1,2"), r"coalitions\.members\[row 0\]: expected a list"),
        ("coalitions", lambda f: _bad(f, "members", [-1] * f.at[0, "size"]), r"coalitions\.members\[row 0\]: neuron indices"),
        ("coalitions", lambda f: _bad(f, "act_hist_edges", [0.0, 1.0]), r"coalitions\.act_hist_edges\[row 0\]"),
        ("coalitions", lambda f: _bad(f, "seed", 0.5), r"coalitions\.seed: expected integers"),
        ("coalitions", lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True), r"coalitions: duplicated key"),
        ("examples", lambda f: f.drop(columns=["passage"]), r"examples: missing column 'passage'"),
        ("examples", lambda f: _bad(f, "split", "train"), r"examples\.split: expected one of \['capture', 'ood'\]"),
        ("examples", lambda f: _bad(f, "query", 3), r"examples\.query: expected strings"),
        ("lineage", lambda f: _bad(f, "event", "grow"), r"lineage\.event: expected one of"),
        ("lineage", lambda f: _bad(f.assign(event="persist"), "target", -1), r"lineage\.target: -1 .* only allowed"),
        ("partitions", lambda f: f.drop(columns=["null_largest_share"]), r"partitions: missing column"),
        ("partitions", lambda f: _bad(f, "n_coalitions", -3), r"partitions\.n_coalitions: expected non-negative"),
    ],
)
def test_validation_errors_name_the_column(arts: ExplorerArtifacts, table: str, mutate: Any, message: str) -> None:
    frame = mutate(getattr(arts, table))
    with pytest.raises(InputError, match=message):
        validate_frame(frame, table)  # type: ignore[arg-type]


def test_validation_rejects_non_frames_and_unknown_tables(arts: ExplorerArtifacts) -> None:
    with pytest.raises(InputError, match="coalitions: expected a pandas DataFrame, got dict"):
        validate_frame({"a": 1}, "coalitions")
    with pytest.raises(InputError, match="table: expected one of"):
        validate_frame(arts.coalitions, "coalition")  # type: ignore[arg-type]


def test_write_artifacts_validates_everything_before_writing(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="lineage: missing column 'beta'"):
        write_artifacts(tmp_path, coalitions=arts.coalitions, lineage=arts.lineage.drop(columns=["beta"]))
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").iterdir())


# ---- writer and reader ------------------------------------------------------------------------

def test_artifacts_round_trip_through_plain_pandas(arts: ExplorerArtifacts, run_dir: Path) -> None:
    import pyarrow.parquet as pq

    files = sorted(p.name for p in (run_dir / "artifacts").iterdir())
    assert files == sorted(ARTIFACT_FILES.values())  # no temporary files left behind
    assert str(pq.read_schema(run_dir / "artifacts" / "coalitions.parquet").field("members").type) == "list<element: int32>"
    raw = pd.read_parquet(run_dir / "artifacts" / "coalitions.parquet")
    assert list(raw.columns) == list(COALITIONS)
    pd.testing.assert_frame_equal(raw.drop(columns=["members", "act_hist_counts", "act_hist_edges"]),
                                  arts.coalitions.drop(columns=["members", "act_hist_counts", "act_hist_edges"]),
                                  check_dtype=False)
    for a, b in zip(raw["members"], arts.coalitions["members"]):
        np.testing.assert_array_equal(a, b)
    back = read_artifacts(run_dir)
    for name in ("examples", "lineage", "partitions"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(arts, name), check_dtype=False)


def test_omitted_tables_are_written_empty(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    write_artifacts(tmp_path, coalitions=arts.coalitions)
    back = read_artifacts(tmp_path)
    assert len(back.coalitions) == len(arts.coalitions)
    assert len(back.examples) == len(back.lineage) == len(back.partitions) == 0
    page = build_explorer(tmp_path)
    assert page.is_file()


def test_read_artifacts_names_the_missing_file(run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir / "artifacts", tmp_path / "artifacts")
    (tmp_path / "artifacts" / "lineage.parquet").unlink()
    with pytest.raises(ArtifactError, match=r"artifacts/lineage\.parquet: file not found"):
        read_artifacts(tmp_path)


def test_lineage_from_transitions_lists_every_split_piece() -> None:
    mass = np.array([[9.0, 0.1, 0.0, 0.0],    # persist into 0
                     [0.0, 0.0, 5.0, 5.0],    # split into 2 and 3 (each fed only by source 1)
                     [0.01, 0.01, 0.01, 0.0],  # diluted: vanish
                     [0.0, 3.0, 0.0, 0.0]])
    table = transition_table(mass, src_layer=4, dst_layer=5)
    rows = lineage_from_transitions({(4, 5): table}, method="hedonic", seed=3)
    alpha, beta = transfer_ratios(mass)
    assert set(rows["layer"]) == {4} and set(rows["target_layer"]) == {5} and set(rows["seed"]) == {3}
    for c in range(4):
        mine = rows[rows["source"] == c]
        assert set(mine["event"]) == {str(table.event[c])}
        expected = set(table.targets[c]) or {-1}
        assert set(mine["target"]) == expected, (c, table.event[c])
        for t, a, b in zip(mine["target"], mine["alpha"], mine["beta"]):
            if t >= 0:
                assert a == pytest.approx(alpha[c, t]) and b == pytest.approx(beta[c, t])
    assert len(table.targets[1]) == 2 and str(table.event[1]) == "split"


# ---- the page, read back in Python ------------------------------------------------------------

def test_page_is_self_contained(run_dir: Path) -> None:
    html = (run_dir / "explorer.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    assert "<link rel=\"stylesheet\"" not in html


def test_page_data_equals_the_tables(arts: ExplorerArtifacts, run_dir: Path) -> None:
    """Every number and text in the page's data blocks, against a row-by-row reading of the tables."""
    blocks = decode_blocks((run_dir / "explorer.html").read_text(encoding="utf-8"))
    index, texts = blocks["explorer-index"], blocks["explorer-texts"]
    keys = {(s["layer"], s["method"], s["seed"]) for s in index["slices"]}
    assert keys == {(la, m, s) for la in LAYERS for m in METHODS for s in SEEDS}
    co, ex, li = arts.coalitions, arts.examples, arts.lineage
    for s in index["slices"]:
        d = blocks[s["id"]]
        part = co[(co.layer == s["layer"]) & (co.method == s["method"]) & (co.seed == s["seed"])]
        assert s["n"] == len(part) == len(d["rows"])
        for row, members, hist, (_, ref) in zip(d["rows"], d["members"], d["hist"], part.sort_values("coalition").iterrows()):
            for col, v in zip(d["cols"], row):
                kind = COALITIONS[col]
                want = r4(ref[col]) if kind == "float" else (str(ref[col]) if kind == "str" else ref[col])
                assert v == want, (s, col)
            assert members == list(ref["members"])
            assert hist[0] == list(ref["act_hist_counts"])
            edges = ref["act_hist_edges"]
            assert hist[1] == [r4(edges[0]), r4(edges[-1])] or hist[1] == [r4(e) for e in edges]
            c = ref["coalition"]
            # examples: rebuild (split, kind, rank, query, passage, activation, target) from the page
            a, b = d["ex_span"].get(str(c), [0, 0])
            got = sorted((EXAMPLE_SPLITS[d["ex"]["split"][i]], EXAMPLE_KINDS[d["ex"]["kind"][i]], d["ex"]["rank"][i],
                          texts["queries"][texts["inputs"][0][d["ex"]["input"][i]]],
                          texts["passages"][texts["inputs"][1][d["ex"]["input"][i]]],
                          d["ex"]["activation"][i], texts["inputs"][2][d["ex"]["input"][i]]) for i in range(a, b))
            mine = ex[(ex.layer == s["layer"]) & (ex.method == s["method"]) & (ex.seed == s["seed"]) & (ex.coalition == c)]
            want_ex = sorted((r.split, r.kind, r.rank, r.query, r.passage, r4(r.activation), r4(r.target))
                             for r in mine.itertuples())
            assert got == want_ex
            # lineage, both directions
            out = li[(li.layer == s["layer"]) & (li.method == s["method"]) & (li.seed == s["seed"]) & (li.source == c)]
            assert sorted(map(tuple, d["out"].get(str(c), []))) == sorted(
                (r.target_layer, r.target, r4(r.alpha), r4(r.beta), r.event) for r in out.itertuples())
            inc = li[(li.target_layer == s["layer"]) & (li.method == s["method"]) & (li.seed == s["seed"])
                     & (li.target == c)]
            assert sorted(map(tuple, d["in"].get(str(c), []))) == sorted(
                (r.layer, r.source, r4(r.alpha), r4(r.beta), r.event) for r in inc.itertuples())


def test_compressed_and_plain_pages_hold_the_same_data(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    packed = build_explorer(arts, tmp_path / "a.html")
    plain = build_explorer(arts, tmp_path / "b.html", compress=False)
    assert decode_blocks(packed.read_text()) == decode_blocks(plain.read_text())
    assert packed.stat().st_size < plain.stat().st_size


def test_script_breaking_text_is_escaped(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    ex = arts.examples.copy()
    ex.loc[0, "query"] = "</script><script>alert(1)</script> <!-- x"
    page = build_explorer(ExplorerArtifacts.from_frames(arts.coalitions, ex, arts.lineage, arts.partitions),
                          tmp_path / "p.html", compress=False)
    html = page.read_text()
    assert "alert(1)" in html and "</script><script>alert" not in html
    assert decode_blocks(html)["explorer-texts"]["queries"][0] == ex.loc[0, "query"]


def test_histograms_uneven_edges_kept_even_edges_shortened(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    co = arts.coalitions.copy()
    co.at[0, "act_hist_counts"] = np.array([3, 1, 4])
    co.at[0, "act_hist_edges"] = np.array([0.0, 0.1, 0.5, 2.0])  # uneven: kept whole
    co.at[1, "act_hist_counts"] = np.array([], dtype=np.int64)     # no histogram
    co.at[1, "act_hist_edges"] = np.array([], dtype=np.float64)
    for mixed in (False, True):  # one bin count for every coalition (vectorised) or not
        if mixed:
            co.at[2, "act_hist_counts"] = np.array([5, 6])
            co.at[2, "act_hist_edges"] = np.array([-1.0, 0.5, 2.0])  # even: stored as its two ends
        page = build_explorer(ExplorerArtifacts.from_frames(co), tmp_path / f"h{mixed}.html")
        first = decode_blocks(page.read_text())["slice-0"]
        order = co.loc[:7].sort_values("coalition").index.tolist()
        hist = dict(zip(order, first["hist"]))
        assert hist[0] == [[3, 1, 4], [0.0, 0.1, 0.5, 2.0]]
        assert hist[1] == [[], []]
        if mixed:
            assert hist[2] == [[5, 6], [-1.0, 2.0]]
        edges = co.at[3, "act_hist_edges"]
        assert hist[3][1] == [r4(edges[0]), r4(edges[-1])]


def _png(path: Path) -> bytes:
    """A valid 2x2 grey PNG written by hand (no imaging library needed)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes([128, 200]) for _ in range(2))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return data


def test_image_grids_are_embedded_and_missing_ones_named(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    (tmp_path / "grids").mkdir()
    data = _png(tmp_path / "grids" / "c0.png")
    co = arts.coalitions.copy()
    co.loc[0, "image_grid"] = "grids/c0.png"
    page = build_explorer(ExplorerArtifacts.from_frames(co, root=tmp_path), tmp_path / "p.html")
    blocks = decode_blocks(page.read_text())
    first = blocks["slice-0"]
    assert first["images"] == {str(co.loc[0, "coalition"]): "data:image/png;base64," + base64.b64encode(data).decode()}
    co.loc[1, "image_grid"] = "grids/missing.png"
    with pytest.raises(ArtifactError, match=r"grids/missing\.png: image grid not found"):
        build_explorer(ExplorerArtifacts.from_frames(co, root=tmp_path), tmp_path / "q.html")
    with pytest.raises(InputError, match="relative to the run directory"):
        build_explorer(ExplorerArtifacts.from_frames(co), tmp_path / "r.html")


def test_build_explorer_argument_errors(arts: ExplorerArtifacts, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="out_path: required"):
        build_explorer(arts)
    with pytest.raises(InputError, match="source: expected a run directory"):
        build_explorer(42, tmp_path / "x.html")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="coalitions: no rows"):
        build_explorer(ExplorerArtifacts.from_frames(arts.coalitions.iloc[:0]), tmp_path / "x.html")


# ---- hedonic explore ---------------------------------------------------------------------------

def test_cli_builds_the_page(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "page.html"
    assert main(["explore", str(run_dir), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert decode_blocks(out.read_text()) == decode_blocks((run_dir / "explorer.html").read_text())
    plain = tmp_path / "plain.html"
    assert main(["explore", str(run_dir), "--out", str(plain), "--no-compress"]) == 0
    assert 'data-encoding="gzip+base64"' not in plain.read_text()
    assert decode_blocks(plain.read_text()) == decode_blocks(out.read_text())


def test_cli_missing_artifacts_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "artifacts/coalitions.parquet: file not found" in err


# ---- in a real browser --------------------------------------------------------------------------

def _chrome() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install 'hedonic-neurons[browser]')")
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no Chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Any:
    binary, driver_path = _chrome()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def _wait(drv: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, 10).until(lambda d: condition(d), message=what)


def _value(drv: Any, element_id: str) -> str:
    return drv.find_element("id", element_id).get_attribute("data-value")


def test_page_in_headless_chromium(browser: Any, arts: ExplorerArtifacts, run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    drv = browser
    drv.get((run_dir / "explorer.html").as_uri())
    _wait(drv, lambda d: d.execute_script("return document.body.dataset.ready"), "page never became ready")
    co, ex, li = arts.coalitions, arts.examples, arts.lineage

    # select layer 1, method "random", seed 1
    layer, method, seed = 1, "random", 1
    Select(drv.find_element(By.ID, "sel-layer")).select_by_value(str(layer))
    Select(drv.find_element(By.ID, "sel-method")).select_by_value(method)
    Select(drv.find_element(By.ID, "sel-seed")).select_by_value(str(seed))
    _wait(drv, lambda d: f"layer {layer}, {method}, seed {seed}" in d.find_element(By.ID, "partition-body").text,
          "partition panel did not switch")
    part = co[(co.layer == layer) & (co.method == method) & (co.seed == seed)].set_index("coalition")
    rows = drv.find_elements(By.CSS_SELECTOR, "#coalitions tbody tr")
    assert [int(r.get_attribute("data-c")) for r in rows] == sorted(part.index)
    assert drv.find_element(By.ID, "part-n").text == str(len(part))

    # open a coalition that has both a predecessor and a successor
    links = li[(li.method == method) & (li.seed == seed)]
    has_in = set(links[(links.target_layer == layer) & (links.target >= 0)].target)
    has_out = set(links[(links.layer == layer) & (links.target >= 0)].source)
    c = min(has_in & has_out)
    drv.find_element(By.CSS_SELECTOR, f'#coalitions tbody tr[data-c="{c}"]').click()
    _wait(drv, lambda d: d.find_element(By.ID, "card").get_attribute("data-coalition") == str(c), "card did not open")
    ref = part.loc[c]
    for col in ("pair_insample", "pair_heldout", "ratio_insample", "ratio_heldout", "pair_null_mean", "pair_null_sd",
                "pair_q", "ood_drop", "ood_drop_rel", "ood_q", "best_feature_r2"):
        got = _value(drv, f"card-{col}")
        want = r4(ref[col])
        assert (float(got) if got else None) == want, col
        shown = drv.find_element(By.ID, f"card-{col}").text
        assert shown == ("—" if want is None else f"{want:.4g}".replace("e-0", "e-").replace("e+0", "e+")) or \
            float(shown) == pytest.approx(want, rel=1e-3), (col, shown)
    assert drv.find_element(By.ID, "card-size").text == str(ref["size"])
    assert drv.find_element(By.ID, "card-members").text == ", ".join(map(str, ref["members"]))
    assert drv.find_element(By.ID, "card-best_feature").text == ref["best_feature"]
    assert drv.find_element(By.ID, "card-ood_kind").text == ref["ood_kind"]
    assert drv.find_element(By.ID, "card-pair_significant").text == ("yes" if ref["pair_significant"] else "no")
    assert len(drv.find_elements(By.CSS_SELECTOR, "#act-hist rect")) == len(ref["act_hist_counts"])
    # top-activating inputs of the capture set
    mine = ex[(ex.layer == layer) & (ex.method == method) & (ex.seed == seed) & (ex.coalition == c)
              & (ex.split == "capture") & (ex.kind == "top")].sort_values("rank")
    cells = [[td.get_attribute("data-value") or td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in drv.find_elements(By.CSS_SELECTOR, "#ex-capture-top tbody tr")]
    assert [(int(r[0]), float(r[1]), float(r[2]), r[3]) for r in cells] == [
        (r.rank, r4(r.activation), r4(r.target), r.query) for r in mine.itertuples()]
    assert len(drv.find_elements(By.CSS_SELECTOR, "#ex-ood-bottom tbody tr")) == len(mine)

    # lineage: follow the first successor link, then the predecessor link back
    link = drv.find_element(By.CSS_SELECTOR, "#card-lineage-out a.lin")
    t_layer, t = int(link.get_attribute("data-layer")), int(link.get_attribute("data-c"))
    expected = links[(links.layer == layer) & (links.source == c) & (links.target >= 0)]
    assert (t_layer, t) in set(zip(expected.target_layer, expected.target))
    link.click()
    _wait(drv, lambda d: (d.find_element(By.ID, "card").get_attribute("data-layer"),
                          d.find_element(By.ID, "card").get_attribute("data-coalition")) == (str(t_layer), str(t)),
          "lineage link did not open its card")
    assert Select(drv.find_element(By.ID, "sel-layer")).first_selected_option.get_attribute("value") == str(t_layer)
    t_ref = co[(co.layer == t_layer) & (co.method == method) & (co.seed == seed) & (co.coalition == t)].iloc[0]
    assert float(_value(drv, "card-pair_insample")) == r4(t_ref["pair_insample"])
    back = drv.find_elements(By.CSS_SELECTOR, "#card-lineage-in a.lin")
    assert (str(layer), str(c)) in {(a.get_attribute("data-layer"), a.get_attribute("data-c")) for a in back}

    # sort by held-out Pair: ascending with missing values last, then descending
    part_t = co[(co.layer == t_layer) & (co.method == method) & (co.seed == seed)]
    vals = {int(k): r4(v) for k, v in zip(part_t.coalition, part_t.pair_heldout)}
    for direction in (1, -1):
        drv.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="pair_heldout"]').click()
        order = [int(r.get_attribute("data-c")) for r in drv.find_elements(By.CSS_SELECTOR, "#coalitions tbody tr")]
        present = sorted((k for k in vals if vals[k] is not None), key=lambda k: (direction * vals[k], k))
        assert order == present + sorted(k for k in vals if vals[k] is None), direction
    header = drv.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="pair_heldout"]')
    assert header.get_attribute("aria-sort") == "descending"

    # the size histogram with every bin filled: no bin label runs into the next one
    spans = drv.execute_script("""
        const box = document.createElement("div");
        box.innerHTML = sizeHistogram([1, 2, 3, 4, 5, 6, 11, 21, 51, 101, 1001, 12923]);
        document.body.appendChild(box);
        const labels = [...box.querySelectorAll("text")].filter((t) => t.getAttribute("y") === "134");
        const out = labels.map((t) => { const b = t.getBBox(); return [t.textContent, b.x, b.x + b.width]; });
        box.remove();
        return out;""")
    assert [t for t, _, _ in spans] == ["1", "2", "3", "4", "5", "6–10", "11–20", "21–50", "51–100", "101–1k", ">1k"]
    assert all(right < nxt_left for (_, _, right), (_, nxt_left, _) in itertools.pairwise(spans)), spans

    drv.save_screenshot(str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    severe = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_plain_json_page_with_image_grid_in_headless_chromium(browser: Any, arts: ExplorerArtifacts,
                                                             tmp_path: Path) -> None:
    """The uncompressed encoding renders the same card; a card_anchor URL opens it; its image grid shows."""
    from hedonic_neurons.explorer import card_anchor

    co = arts.coalitions.copy()
    row = co[(co.layer == 2) & (co.method == "hedonic_pas_exact_top_cover") & (co.seed == 0)].index[3]
    _png(tmp_path / "grid.png")
    co.loc[row, "image_grid"] = "grid.png"
    page = build_explorer(ExplorerArtifacts.from_frames(co, arts.examples, arts.lineage, arts.partitions,
                                                        root=tmp_path), tmp_path / "plain.html", compress=False)
    ref = co.loc[row]
    browser.get(page.as_uri() + card_anchor(2, "hedonic_pas_exact_top_cover", 0, ref["coalition"]))
    _wait(browser, lambda d: d.find_element("id", "card").get_attribute("data-coalition") == str(ref["coalition"]),
          "card from the URL did not open")
    assert float(_value(browser, "card-ood_drop")) == r4(ref["ood_drop"])
    _wait(browser, lambda d: d.execute_script("return document.getElementById('card-image').naturalWidth") == 2,
          "image grid did not load")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_keyboard_opens_cards_and_sorts(browser: Any, run_dir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get((run_dir / "explorer.html").as_uri())
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.ready"), "page never became ready")
    row = browser.find_elements(By.CSS_SELECTOR, "#coalitions tbody tr")[2]
    row.send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.find_element(By.ID, "card").get_attribute("data-coalition") == row.get_attribute("data-c"),
          "Enter on a row did not open its card")
    browser.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="size"]').send_keys(Keys.ENTER)
    assert browser.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="size"]').get_attribute("aria-sort") == "ascending"


def test_cli_open_hands_the_file_url_to_the_browser(run_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    out = tmp_path / "p.html"
    assert main(["explore", str(run_dir), "--out", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()]


def test_docs_list_every_column() -> None:
    """docs/explorer.md documents the schema that write_artifacts enforces."""
    from hedonic_neurons.explorer import SCHEMAS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "explorer.md").read_text(encoding="utf-8")
    for name, spec in SCHEMAS.items():
        section = doc.split(f"`{ARTIFACT_FILES[name]}`", 1)[1].split("\n### ", 1)[0]
        for col in spec:
            assert f"`{col}`" in section, (name, col)


def test_large_partition_renders_in_chunks_and_sorts_all_rows(browser: Any, tmp_path: Path) -> None:
    """600 coalitions: the table shows a first chunk, sorting orders all of them, "show all" adds the rest."""
    from selenium.webdriver.common.by import By

    big = synthetic_artifacts(layers=(0, 1), methods=("random",), seeds=(0,), n_neurons=2000, n_coalitions=600,
                              n_examples=1, n_texts=20, seed=5)
    page = build_explorer(big, tmp_path / "big.html")
    browser.get(page.as_uri())
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.ready"), "page never became ready")

    def order() -> list[int]:  # one round trip instead of one per row
        return [int(c) for c in browser.execute_script(
            "return [...document.querySelectorAll('#coalitions tbody tr')].map((tr) => tr.dataset.c)")]

    first = len(order())
    assert 0 < first < 600
    browser.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="best_feature_r2"]').click()
    part = big.coalitions[big.coalitions.layer == 0]
    expected = sorted(zip(map(r4, part.best_feature_r2), part.coalition))
    assert order() == [c for _, c in expected[:first]]
    # scrolling the table to its end appends the next chunks
    wrap = browser.find_element(By.ID, "tablewrap")
    for _ in range(20):
        if len(order()) == 600:
            break
        browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", wrap)
        browser.execute_script("return new Promise((ok) => requestAnimationFrame(() => ok()))")
    assert order() == [c for _, c in expected]
    assert not browser.find_element(By.ID, "more-rows").is_displayed()
    # descending order, a fresh first chunk, and the "show all" button
    browser.find_element(By.CSS_SELECTOR, '#coalitions th[data-col="best_feature_r2"]').click()
    assert len(order()) == first
    more = browser.find_element(By.ID, "more-rows")
    assert more.is_displayed() and f"of {len(part)}" in more.text
    browser.execute_script("arguments[0].click()", more)
    assert order() == [
        c for _, c in sorted(expected, key=lambda vc: (-vc[0], vc[1]))]
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_missing_partition_says_so(browser: Any, arts: ExplorerArtifacts, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from hedonic_neurons.explorer import card_anchor

    co = arts.coalitions
    keep = co[~((co.layer == 2) & (co.method == "random") & (co.seed == 1))]
    page = build_explorer(ExplorerArtifacts.from_frames(keep), tmp_path / "p.html")
    browser.get(page.as_uri() + card_anchor(2, "random", 1))
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == card_anchor(2, "random", 1),
          "page never became ready")
    assert "No partition for layer 2, random, seed 1" in browser.find_element(By.ID, "partition-body").text
    assert browser.find_elements(By.CSS_SELECTOR, "#coalitions tbody tr") == []
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
