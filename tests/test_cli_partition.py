"""``hedonic partition`` and ``hedonic stability`` end to end (no torch needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hedonic_neurons.cli.main import main
from hedonic_neurons.game import top_cover
from hedonic_neurons.io import save_arrays
from hedonic_neurons.partition import Partition


@pytest.fixture
def planted(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    phi = np.where(labels[:, None] == labels[None, :], 1.0, -1.0) + 0.01 * rng.normal(size=(12, 12))
    path = tmp_path / "phi.npy"
    np.save(path, phi.astype(np.float32))
    return path, phi, labels


def test_partition_exact_and_stability(planted, tmp_path, capsys) -> None:
    path, _, labels = planted
    out = tmp_path / "p.json"
    assert main(["partition", str(path), "--method", "exact", "--eps-samples", "2000", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 players in 3 coalitions" in text and "blocking rate" in text and "upper bound" in text
    p = Partition.from_json(out)
    assert p == Partition.from_labels(labels)
    assert p.meta["method"] == "top_cover" and p.meta["blocking_rate"]["n_blocking"] == 0
    assert main(["stability", str(path), str(out), "--n-samples", "2000"]) == 0
    text = capsys.readouterr().out
    assert "core stable" in text and "strongly connected" in text and "NOT" not in text


def test_partition_pac_safetensors(planted, tmp_path, capsys) -> None:
    _, phi, labels = planted
    st = tmp_path / "phi.safetensors"
    save_arrays(st, {"values": phi.astype(np.float32)})
    out = tmp_path / "pac.json"
    args = ["partition", str(st), "--method", "pac", "--m", "5000", "--omega", "2000", "--size-max", "6",
            "--sampler", "top", "--seed", "3", "--eps-samples", "0", "--out", str(out)]
    assert main(args) == 0
    p = Partition.from_json(out)
    assert p.meta["method"] == "pac_top_cover" and p.meta["params"]["sampler"] == "top"
    assert p.meta["params"]["m"] == 5000 and p.meta["params"]["size_range"] == [2, 6]
    assert p == Partition.from_labels(labels)


def test_stability_reports_blocking(planted, tmp_path, capsys) -> None:
    path, _, _ = planted
    bad = tmp_path / "bad.json"
    Partition.from_labels(np.arange(12)).to_json(bad)
    assert main(["stability", str(path), str(bad), "--n-samples", "500"]) == 0
    text = capsys.readouterr().out
    assert "NOT core stable" in text


def test_help_shows_example(capsys) -> None:
    for cmd in ("partition", "stability"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example:" in capsys.readouterr().out


def test_bad_input_exit_code(tmp_path, capsys) -> None:
    path = tmp_path / "rect.npy"
    np.save(path, np.zeros((3, 4)))
    assert main(["partition", str(path), "--method", "exact"]) == 2
    assert "square" in capsys.readouterr().err
    good = tmp_path / "sq.npy"
    np.save(good, np.zeros((4, 4)))
    part = tmp_path / "p.json"
    top_cover(np.zeros((3, 3))).to_json(part)
    assert main(["stability", str(good), str(part)]) == 2
    assert "covers 3 players" in capsys.readouterr().err
    assert main(["partition", str(tmp_path / "nope.npy")]) == 2
    assert main(["partition", str(good), "--k", "0"]) == 2


def test_cli_does_not_import_torch(planted, tmp_path) -> None:
    import subprocess

    path, _, _ = planted
    code = (
        "import sys; from hedonic_neurons.cli.main import main; "
        f"rc = main(['partition', {str(path)!r}, '--method', 'exact', '--eps-samples', '100']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
