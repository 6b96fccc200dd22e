"""Every command error is one clean line with exit code 2, before any work (issue 14, items 4, 10-13).

These use the NumPy-only commands (partition, stability, track) and the argument checks
of capture that run before a model is loaded, so the file is fast and needs no model.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hedonic_neurons.cli.main import main


def _one_error(capsys: Any, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hedonic {command}: error: "), err
    return lines[0]


@pytest.fixture()
def phi(tmp_path: Path) -> Path:
    f = tmp_path / "phi.npy"
    np.save(f, np.random.default_rng(0).normal(size=(8, 8)))
    return f


def _forbid_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading phi or running a partitioner fail the test: errors must come first."""
    import hedonic_neurons.cli.partition as cli_partition
    import hedonic_neurons.game as game

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(cli_partition, "_load_phi", boom)
    monkeypatch.setattr(game, "pac_top_cover", boom)
    monkeypatch.setattr(game, "top_cover", boom)


# ---------------------------------------------------------------- item 4: outputs never overwrite inputs
def test_partition_out_over_its_input_is_refused(phi: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = phi.read_bytes()
    _forbid_work(monkeypatch)
    for out in (phi, phi.parent / "." / phi.name):
        assert main(["partition", str(phi), "--out", str(out), "--eps-samples", "0"]) == 2
        assert "--out" in _one_error(capsys, "partition")
    assert phi.read_bytes() == before  # was replaced by JSON


# ---------------------------------------------------------------- item 12: --out checked before the work
def test_partition_out_checked_before_work(phi: Path, tmp_path: Path, capsys: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_work(monkeypatch)
    (tmp_path / "afile").write_text("x")
    for out, match in ((tmp_path, "is a directory"), (tmp_path / "afile" / "p.json", "is a file"),
                       (tmp_path / "p.txt", "ending in")):
        assert main(["partition", str(phi), "--out", str(out)]) == 2
        assert match in _one_error(capsys, "partition")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--m", "10", "--omega", "100"], "--omega"),  # omega > m on the CLI
        (["--k", "0"], "--k"),
        (["--size-min", "5", "--size-max", "2"], "k_min <= k_max"),
        (["--eps-samples", "-1"], "--eps-samples"),
    ],
)
def test_partition_arguments_checked_before_work(phi: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                                 args: list[str], match: str) -> None:
    _forbid_work(monkeypatch)
    assert main(["partition", str(phi), *args]) == 2
    assert match in _one_error(capsys, "partition")


# ---------------------------------------------------------------- item 10: bounded resources on the CLI
def test_partition_huge_k_is_clamped(phi: Path, tmp_path: Path) -> None:
    t = time.perf_counter()
    assert main(["partition", str(phi), "--method", "exact", "--k", "2000000", "--eps-samples", "0",
                 "--out", str(tmp_path / "huge.json")]) == 0
    assert time.perf_counter() - t < 10.0  # was 38 s and 6 GB
    assert main(["partition", str(phi), "--method", "exact", "--k", "7", "--eps-samples", "0",
                 "--out", str(tmp_path / "k7.json")]) == 0
    huge = json.loads((tmp_path / "huge.json").read_text())
    assert huge["coalitions"] == json.loads((tmp_path / "k7.json").read_text())["coalitions"]


def test_partition_huge_m_refused(phi: Path, capsys: Any) -> None:
    assert main(["partition", str(phi), "--m", str(10**13), "--omega", "10"]) == 2
    assert "GiB" in _one_error(capsys, "partition")


def test_npy_header_bomb_refused(tmp_path: Path, capsys: Any) -> None:
    from numpy.lib import format as npy

    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (200_000, 200_000)})
    f = tmp_path / "bomb.npy"
    f.write_bytes(buf.getvalue() + b"\0" * 64)
    assert main(["partition", str(f), "--eps-samples", "0"]) == 2
    assert "header claims" in _one_error(capsys, "partition")


# ---------------------------------------------------------------- item 11: tracebacks -> messages
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested"),
        (b'{"coalitions": [[0, 1, 2, 3, 4, 5, 6, 7]], "meta": "\xff"}', "UTF-8"),
        (b'{"coalitions": [[0, 1, 2, 3, 4, 5, 6, 7]], "n_players": "8"}', "n_players"),
        (b'{"coalitions": [[0, 1, 2, 3, 4, 5, 6, 7]], "meta": 5}', "meta"),
        (b'{"coalitions": [[0, 1, 2, 3, 4, 5, 6, 8]]}', "outside"),
        (b'{"coalitions": [[0, 1, 2, 3], [4, 5, 6, 7.0]]}', "float"),
    ],
)
def test_stability_bad_partition_is_one_line(phi: Path, tmp_path: Path, capsys: Any, content: bytes,
                                            match: str) -> None:
    f = tmp_path / "part.json"
    f.write_bytes(content)
    assert main(["stability", str(phi), str(f), "--n-samples", "10"]) == 2
    assert match in _one_error(capsys, "stability")


def test_directory_named_as_file(tmp_path: Path, capsys: Any) -> None:
    assert main(["partition", str(tmp_path), "--eps-samples", "0"]) == 2
    assert "is a directory" in _one_error(capsys, "partition")  # item 13: was "file not found"


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"),
                                 UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
                                 MemoryError()])
def test_main_maps_input_failures_to_one_line(phi: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                              exc: BaseException) -> None:
    import hedonic_neurons.cli.partition as cli_partition

    def fail(path: str) -> Any:
        raise exc

    monkeypatch.setattr(cli_partition, "_load_phi", fail)
    assert main(["partition", str(phi), "--eps-samples", "0"]) == 2
    _one_error(capsys, "partition")


# ---------------------------------------------------------------- track: inputs protected, checks first
def test_track_out_and_thresholds_checked_first(tmp_path: Path, capsys: Any) -> None:
    rec = tmp_path / "records"
    rec.mkdir()
    parts = tmp_path / "parts"
    parts.mkdir()
    base = ["track", "--records", str(rec), "--partitions", str(parts)]
    for out in (rec, rec / "tracking", parts / "tracking"):  # would write into an input directory
        assert main([*base, "--out", str(out)]) == 2
        assert "--out" in _one_error(capsys, "track")
    assert main([*base, "--out", str(tmp_path / "t"), "--alpha-lo", "0.8", "--alpha-hi", "0.2"]) == 2
    assert "alpha" in _one_error(capsys, "track")


# ---------------------------------------------------------------- capture: data and --out before the model
def test_capture_checks_data_and_out_before_loading_the_model(tmp_path: Path, capsys: Any) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "q", "passage": "p", "extra": 1}\n')
    missing_model = str(tmp_path / "no-such-model")
    base = ["capture", "--model", missing_model, "--layers", "1", "--quiet"]
    assert main([*base, "--data", str(data), "--out", str(tmp_path / "cap")]) == 2
    assert "unexpected keys" in _one_error(capsys, "capture")  # the data, not the missing model
    (tmp_path / "afile").write_text("x")
    assert main([*base, "--data", str(data), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in _one_error(capsys, "capture")
    assert main([*base, "--data", str(data), "--out", str(data.parent / "cap"), "--layers", "0-99999999999"]) == 2
    assert "more than" in _one_error(capsys, "capture")
