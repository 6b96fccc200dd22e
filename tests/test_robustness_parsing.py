"""Strict parsing and bounded resources (issue 14, items 7, 10, 11, 12, 13), plus fuzz tests.

Every input either parses to a valid object or raises the package's own error; nothing
is coerced silently, and nothing large is allocated on the word of a header.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedonic_neurons.cli.capture import parse_layers, read_pairs
from hedonic_neurons.errors import ArtifactError, ConfigError, HedonicError, InputError
from hedonic_neurons.game import blocking_rate, pac_top_cover, top_cover
from hedonic_neurons.game.top_cover import clamp_k
from hedonic_neurons.io import check_output_path, load_array, read_json
from hedonic_neurons.ir.loaders import load_pairs_tsv
from hedonic_neurons.partition import Partition
from hedonic_neurons.pipeline.config import StudyConfig, load_config

# ---------------------------------------------------------------- item 7: partition JSON


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"coalitions": [[0, 1.7, 2, 3]]}', "float"),  # was read as [0, 1, 2, 3]
        ('{"coalitions": [[0, [1]], [2]]}', "list"),
        ('{"coalitions": [[0, "1"]]}', "str"),
        ('{"coalitions": [[0, true]]}', "bool"),
        ('{"format": "someone-else/partition@9", "coalitions": [[0, 1]]}', "format"),
        ('{"coalitions": [[0, 1]], "n_players": 2.0}', "n_players"),
        ('{"coalitions": [[0, 1]], "n_players": "2"}', "n_players"),
        ('{"coalitions": [[0, 1]], "meta": [1]}', "meta"),
        ('{"coalitions": [[0, 1]], "labels": [0, 0]}', "unknown keys"),
        ('{"coalitions": {"0": [0]}}', "list of lists"),
    ],
)
def test_partition_json_is_strict(text: str, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        Partition.from_json(text)


def test_partition_absurd_n_players_refused_without_allocation() -> None:
    t = time.perf_counter()
    with pytest.raises(InputError, match="not covered"):
        Partition.from_json('{"coalitions": [[1, 0]], "n_players": 1000000000000000}')
    assert time.perf_counter() - t < 1.0


def test_partition_json_nesting_bomb_and_bad_bytes(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json"
    bomb.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ArtifactError, match="nested deeper"):
        Partition.from_json(bomb)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"coalitions": [[0]], "meta": {"x": "\xe9"}}')
    with pytest.raises(ArtifactError, match="UTF-8"):
        Partition.from_json(latin)
    with pytest.raises(ArtifactError, match="is a directory"):
        Partition.from_json(tmp_path)


# ---------------------------------------------------------------- item 7: data files
def test_tsv_header_without_passage_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text("query\tdoc\tlabel\nq\td\t1\n")  # was: the header became a data row, rc 0
    with pytest.raises(ArtifactError, match="lacks"):
        load_pairs_tsv(f)
    with pytest.raises(InputError, match="header"):
        read_pairs(f)
    good = tmp_path / "good.tsv"
    good.write_text("query\tpassage\tlabel\nq one\tp one\t1\nq two\tp two\t0\n")
    q, p, lab = read_pairs(good)
    assert q == ["q one", "q two"] and p == ["p one", "p two"] and lab == [1.0, 0.0]
    assert load_pairs_tsv(good)["passage"].tolist() == ["p one", "p two"]


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"query": "q", "passage": "p", "extra": 1}'], "unexpected keys"),  # was silently dropped
        (['{"query": null, "passage": "p"}'], "string 'query'"),  # was the text "None"
        (['{"query": "q", "passage": "p", "label": NaN}'], "finite"),  # was kept as NaN
        (['{"query": "q", "passage": "p", "label": true}'], "numeric label"),
        (['{"query": "q", "passage": "p", "label": "high"}'], "numeric label"),
        (['{"query": "q", "passage": "p", "label": 1}', '{"query": "q", "passage": "p"}'],
         "every row or on none"),  # was: all labels dropped silently
        (['["q", "p"]'], "JSON object"),
    ],
)
def test_capture_reader_is_strict_jsonl(tmp_path: Path, lines: list[str], match: str) -> None:
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=match):
        read_pairs(f)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("q\tp\t1\textra\n", "fields"),
        ("q\tp\tnan\n", "finite"),
        ("q\tp\t1\nq2\tp2\n", "fields"),
        ("q\tp\t1\nq2\tp2\t\n", "every row or on none"),
    ],
)
def test_capture_reader_is_strict_tsv(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text(text)
    with pytest.raises(InputError, match=match):
        read_pairs(f)


def test_capture_reader_non_utf8_and_directory(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_bytes(b"caf\xe9\tp\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_pairs(f)
    with pytest.raises(InputError, match="directory"):
        read_pairs(tmp_path)


# ---------------------------------------------------------------- item 10: bounded resources
def _npy_header_only(path: Path, shape: tuple[int, ...], extra: bytes = b"") -> None:
    from numpy.lib import format as npy

    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path.write_bytes(buf.getvalue() + extra)


def test_npy_header_claiming_more_than_the_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "phi.npy"
    _npy_header_only(f, (200_000, 200_000), b"\0" * 64)  # 192 bytes on disk, 149 GiB claimed
    t = time.perf_counter()
    with pytest.raises(ArtifactError, match="header claims"):
        load_array(f)
    assert time.perf_counter() - t < 1.0


def test_truncated_npy_is_called_truncated(tmp_path: Path) -> None:
    f = tmp_path / "phi.npy"
    np.save(f, np.eye(4))
    f.write_bytes(f.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="truncated") as info:
        load_array(f)
    assert "pickle" not in str(info.value)  # item 13: was "pickled object arrays are refused"
    with pytest.raises(ArtifactError, match="is a directory"):  # item 13: was "file not found"
        load_array(tmp_path)


def test_k_is_clamped_to_n_minus_one() -> None:
    phi = np.random.default_rng(0).normal(size=(8, 8))
    t = time.perf_counter()
    huge = top_cover(phi, k=2_000_000)  # was 38 s and 6 GB
    assert time.perf_counter() - t < 5.0
    assert huge == top_cover(phi, k=7) and clamp_k(2_000_000, 8) == 7 and clamp_k(3, 8) == 3
    assert huge.meta["params"]["k"] == 2_000_000  # the request is recorded as given
    # clamping does not change the game: same PAC partition and blocking rate as k = n - 1
    assert pac_top_cover(phi, k=10**9, m=200, omega=50, seed=1) == pac_top_cover(phi, k=7, m=200, omega=50, seed=1)
    assert blocking_rate(phi, huge, k=10**9, n_samples=500, seed=2) == blocking_rate(phi, huge, k=7, n_samples=500,
                                                                                      seed=2)


def test_m_and_omega_are_bounded_before_allocation() -> None:
    phi = np.random.default_rng(0).normal(size=(8, 8))
    t = time.perf_counter()
    with pytest.raises(InputError, match="GiB"):
        pac_top_cover(phi, m=10**13, omega=10)
    with pytest.raises(InputError, match="omega <= m"):
        pac_top_cover(phi, m=10, omega=100)
    assert time.perf_counter() - t < 1.0


def test_layer_ranges_are_bounded_before_expansion() -> None:
    t = time.perf_counter()
    with pytest.raises(InputError, match="more than"):
        parse_layers("0-99999999999")  # was expanded first (MemoryError)
    with pytest.raises(InputError, match="--layers"):
        parse_layers("-3")
    assert time.perf_counter() - t < 1.0
    assert parse_layers("2-4,7") == [2, 3, 4, 7]


# ---------------------------------------------------------------- items 4, 12: output checks
def test_check_output_path(tmp_path: Path) -> None:
    phi = tmp_path / "phi.npy"
    phi.write_bytes(b"x")
    with pytest.raises(InputError, match="also an input"):
        check_output_path(phi, inputs=[tmp_path / "." / "phi.npy"])
    link = tmp_path / "link.npy"
    link.symlink_to(phi)
    with pytest.raises(InputError, match="also an input"):
        check_output_path(link, inputs=[phi])
    with pytest.raises(InputError, match="inside the input directory"):
        check_output_path(tmp_path / "rec" / "x.json", input_dirs=[tmp_path / "rec"])
    with pytest.raises(InputError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(InputError, match="is a file"):
        check_output_path(phi / "sub" / "out.json")
    with pytest.raises(InputError, match="ending in"):
        check_output_path(tmp_path / "x.txt", suffixes=(".json",))
    assert check_output_path(tmp_path / "new" / "x.json", suffixes=(".json",)) == tmp_path / "new" / "x.json"


def test_read_json_nesting_bomb(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(ArtifactError, match="nested deeper"):
        read_json(f)


# ---------------------------------------------------------------- item 12: configs
def _cfg_file(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("n_jobs: 2\nn_jobs: 3\n", "given twice"),  # was: last one silently won
        ("lora:\n  r: 8\n  r: 16\n", "given twice"),
        ("lora:\n  alpha: -4\n", "lora.alpha"),
        ("finetune:\n  weight_decay: -0.1\n", "weight_decay"),
        ("finetune:\n  epochs: .inf\n", "finite"),
        ("n_jobs: -7\n", "n_jobs"),
        ("discovery:\n  pac:\n    m: 10\n    omega: 100\n", "omega"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
    ],
)
def test_config_is_strict(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(_cfg_file(tmp_path, text))


def test_config_json_duplicate_keys_and_bad_bytes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="given twice"):
        load_config(_cfg_file(tmp_path, '{"n_jobs": 1, "n_jobs": 2}', "c.json"))
    f = tmp_path / "b.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(f)


# ---------------------------------------------------------------- fuzz: partition JSON and config YAML
_json_scalars = st.none() | st.booleans() | st.integers(-5, 12) | st.floats(allow_nan=True) | st.text(max_size=3)
_json_values = st.recursive(_json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.text(max_size=4), c, max_size=3), max_leaves=20)
_player = st.integers(-1, 9) | st.floats(-1, 9) | st.booleans() | st.text("0123", max_size=2) | st.lists(
    st.integers(0, 9), max_size=2)
_partition_like = st.fixed_dictionaries(
    {"coalitions": st.lists(st.lists(st.integers(0, 9) | _player, max_size=5), max_size=5)},
    optional={"n_players": st.integers(-2, 12) | _json_scalars,
              "format": st.sampled_from(["hedonic-neurons/partition@1", "other"]) | _json_scalars,
              "meta": st.dictionaries(st.text(max_size=3), _json_scalars, max_size=2) | _json_scalars,
              "extra": _json_scalars},
)


def _check_partition(p: Partition) -> None:
    covered = np.sort(np.concatenate(p.coalitions)) if p.n_coalitions else np.zeros(0, np.int64)
    np.testing.assert_array_equal(covered, np.arange(p.n_players))
    assert Partition.from_json(p.to_json()) == p


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_partition_like | _json_values)
def test_fuzz_partition_json(data: Any) -> None:
    text = json.dumps(data)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "p.json"
        f.write_text(text)
        try:
            p = Partition.from_json(f)
        except HedonicError:
            return
    _check_partition(p)
    # accepted: the document was exactly the schema, with JSON integers as players
    assert isinstance(data, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for c in data["coalitions"] for v in c)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60))
def test_fuzz_partition_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "p.json"
        f.write_text(text)
        try:
            _check_partition(Partition.from_json(f))
        except HedonicError:
            pass


_CONFIG_KEYS = {
    "n_jobs": st.integers(-9, 4) | _json_scalars,
    "lora": st.fixed_dictionaries({}, optional={
        "r": st.integers(-2, 16) | _json_scalars, "alpha": st.integers(-8, 32) | _json_scalars,
        "dropout": st.floats(-1, 2) | _json_scalars, "layers": st.lists(st.integers(-2, 8), max_size=3)}),
    "finetune": st.fixed_dictionaries({}, optional={
        "epochs": st.floats(allow_nan=True, allow_infinity=True) | _json_scalars,
        "weight_decay": st.floats(-1, 1) | _json_scalars, "lr": st.floats(-1, 1) | _json_scalars}),
    "discovery": st.fixed_dictionaries({}, optional={
        "k": st.integers(-1, 5) | _json_scalars, "layers": st.lists(st.integers(-1, 6), max_size=3),
        "pac": st.fixed_dictionaries({}, optional={"m": st.integers(-1, 100), "omega": st.integers(-1, 100)})}),
}
_config_like = st.fixed_dictionaries({}, optional=_CONFIG_KEYS) | st.dictionaries(
    st.text(max_size=6) | st.integers(), _json_values, max_size=3) | _json_values


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_config_like)
def test_fuzz_config_yaml(data: Any) -> None:
    text = yaml.safe_dump(data)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.yaml"
        f.write_text(text)
        try:
            cfg = load_config(f)
        except HedonicError:
            return
    assert isinstance(cfg, StudyConfig)
    assert load_config(cfg.to_dict()) == cfg  # an accepted config round-trips


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_fuzz_config_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.yaml"
        f.write_text(text)
        try:
            assert isinstance(load_config(f), StudyConfig)
        except HedonicError:
            pass
