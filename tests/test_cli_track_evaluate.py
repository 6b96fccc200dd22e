"""``hedonic track`` and ``hedonic evaluate`` end to end on synthetic records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons import LayerRecord, Partition, Readout
from hedonic_neurons.cli._shared import discover_partitions, load_layer_records
from hedonic_neurons.cli.main import main
from hedonic_neurons.tracking import TransitionTable, track
from tests.helpers import assert_close


def _record(rng: np.random.Generator, layer: int, N: int = 12, n: int = 10, d: int = 6) -> LayerRecord:
    a = rng.normal(size=(N, n))
    w = rng.normal(size=(d, n))
    return LayerRecord(
        layer=layer, h=rng.normal(size=(N, d)), a=a, a_base=a + 0.2 * rng.normal(size=(N, n)),
        y=2 * rng.normal(size=(N, d)), w_down=w, w_down_base=w + 0.1 * rng.normal(size=(d, n)),
        readout=Readout("rms", rng.normal(size=d), gamma=rng.uniform(0.5, 1.5, size=d)),
        w_read=rng.normal(size=(2, n, d)),
    )


@pytest.fixture
def workspace(tmp_path):
    rng = np.random.default_rng(0)
    rec_dir = tmp_path / "records"
    for layer in (7, 8, 9):
        _record(rng, layer).save(rec_dir / f"layer{layer}.safetensors")
    flat = tmp_path / "parts"
    nested = tmp_path / "run" / "partitions"
    for layer in (7, 8, 9):
        Partition.from_labels(rng.integers(0, 4, size=10), meta={"method": "pac"}).to_json(
            flat / f"layer{layer}.pac_top_cover.json")
        Partition.from_labels(np.arange(10) % 3, meta={"method": "kmeans"}).to_json(
            nested / f"layer{layer}" / "kmeans.seed0.json")
    (nested / "notes.json").write_text('{"not": "a partition"}')
    return tmp_path


def test_discovery_conventions(workspace) -> None:
    flat = discover_partitions([workspace / "parts"])
    assert list(flat) == ["pac_top_cover"] and sorted(flat["pac_top_cover"]) == [7, 8, 9]
    nested = discover_partitions([workspace / "run" / "partitions"])
    assert list(nested) == ["kmeans.seed0"]
    both = discover_partitions([workspace / "parts", workspace / "run" / "partitions"], method="kmeans.seed0")
    assert list(both) == ["kmeans.seed0"]
    one = discover_partitions([workspace / "parts" / "layer8.pac_top_cover.json"])
    assert list(one["pac_top_cover"]) == [8]
    from hedonic_neurons import InputError

    with pytest.raises(InputError, match="no partition"):
        discover_partitions([workspace / "parts"], method="nope")
    bad = workspace / "parts" / "oops.json"
    Partition.from_labels([0, 1]).to_json(bad)
    with pytest.raises(InputError, match="layer"):
        discover_partitions([bad])
    recs = load_layer_records(workspace / "records")
    assert sorted(recs) == [7, 8, 9] and recs[8].w_read.shape == (2, 10, 6)


def test_track_command(workspace, capsys) -> None:
    out = workspace / "tracking"
    code = main(["track", "--records", str(workspace / "records"), "--partitions", str(workspace / "parts"),
                 str(workspace / "run" / "partitions"), "--out", str(out), "--alpha-hi", "0.6",
                 "--alpha-lo", "0.05", "--sweep-hi", "0.6", "0.7", "--sweep-lo", "0.1"])
    assert code == 0
    d = out / "pac_top_cover"
    for name in ("transitions.L7-8.csv", "transitions.L8-9.json", "transitions.md", "transitions.csv",
                 "transitions_long.csv", "threshold_sweep.csv", "sankey.html", "sankey.png"):
        assert (d / name).is_file(), name
    assert (out / "kmeans.seed0" / "sankey.html").is_file()
    # The CLI's tables equal the library's on the same inputs.
    recs = load_layer_records(workspace / "records")
    parts = discover_partitions([workspace / "parts"])["pac_top_cover"]
    expect = track(parts, recs, alpha_hi=0.6, alpha_lo=0.05)
    got = TransitionTable.load(d / "transitions.L7-8.json")
    assert got == expect[(7, 8)]
    long = pd.read_csv(d / "transitions_long.csv")
    assert set(long["event"]) == {"persist", "merge", "split", "vanish"}
    assert (long["method"] == "pac_top_cover").all()
    sweep = pd.read_csv(d / "threshold_sweep.csv")
    assert len(sweep) == 2 * 2  # two layer pairs x two (hi, lo) points
    md = (d / "transitions.md").read_text()
    assert "7→8" in md and "in-between band" in md
    assert (d / "sankey.png").read_bytes()[:4] == b"\x89PNG"
    assert "pac_top_cover" in capsys.readouterr().out


def test_evaluate_command(workspace) -> None:
    out = workspace / "synergy"
    code = main(["evaluate", "--records", str(workspace / "records"), "--partitions", str(workspace / "parts"),
                 "--layers", "7", "9", "--backend", "torch", "--out", str(out)])
    assert code == 0
    per = pd.read_csv(out / "pac_top_cover" / "synergy.L7.csv")
    assert not (out / "pac_top_cover" / "synergy.L8.csv").exists()
    # Against brute-force ablation on the saved record.
    rec = load_layer_records(workspace / "records", [7])[7]
    part = discover_partitions([workspace / "parts"])["pac_top_cover"][7]
    for _, row in per.iterrows():
        members = part.coalitions[int(row["coalition"])]
        f = rec.ablated_readout([])
        total = sum(
            np.mean(f - rec.ablated_readout([i]) - rec.ablated_readout([j]) + rec.ablated_readout([i, j]))
            for i in members for j in members if i != j
        )
        m = members.size
        assert_close(row["pair"], total / (m * (m - 1)), rtol=1e-4, atol=1e-6)
    summary = pd.read_csv(out / "synergy_summary.csv")
    assert list(summary["layer"]) == [7, 9]
    assert_close(summary.loc[0, "pair"], per["pair"].mean(), rtol=1e-12, atol=0)
    long = pd.read_csv(out / "synergy_long.csv")
    assert set(long["metric"]) == {"pair", "ratio"}
    assert "Pair" in (out / "synergy_summary.md").read_text()


def test_cli_errors_are_reported(workspace, capsys) -> None:
    code = main(["track", "--records", str(workspace / "records"), "--partitions", str(workspace / "parts"),
                 "--out", str(workspace / "x"), "--method", "missing"])
    assert code == 2
    assert "no partition" in capsys.readouterr().err
    code = main(["track", "--records", str(workspace / "nowhere"), "--partitions", str(workspace / "parts"),
                 "--out", str(workspace / "x")])
    assert code == 2


def test_help_documents_convention(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = capsys.readouterr().out
    assert "layer7.pac_top_cover.json" in text and "example:" in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "layer{L}.safetensors" in capsys.readouterr().out


@pytest.mark.slow
def test_commands_on_a_capture_directory(tmp_path, torch_one_thread) -> None:
    """The records input may be a streamed capture directory of a tiny real model."""
    from hedonic_neurons.models.capture import capture
    from tests.tiny_models import random_batches, tiny_model

    model = tiny_model("mistral", seed=2, lora_layers=(1, 2), intermediate=24)
    capture(model, random_batches(model, 2, 3, 6, seed=0), [1, 2], tmp_path / "cap", progress=False)
    rng = np.random.default_rng(1)
    for layer in (1, 2):
        Partition.from_labels(rng.integers(0, 5, size=24)).to_json(tmp_path / "p" / f"layer{layer}.hedonic_pas.json")
    assert main(["track", "--records", str(tmp_path / "cap"), "--partitions", str(tmp_path / "p"),
                 "--out", str(tmp_path / "t"), "--no-png"]) == 0
    t = TransitionTable.load(tmp_path / "t" / "hedonic_pas" / "transitions.L1-2.json")
    assert t.n_src == 5 and sum(t.counts().values()) == 5
    assert not (tmp_path / "t" / "hedonic_pas" / "sankey.png").exists()
    assert main(["evaluate", "--records", str(tmp_path / "cap"), "--partitions", str(tmp_path / "p"),
                 "--backend", "torch", "--out", str(tmp_path / "e")]) == 0
    summary = pd.read_csv(tmp_path / "e" / "synergy_summary.csv")
    assert list(summary["layer"]) == [1, 2] and np.isfinite(summary["pair"]).all()
