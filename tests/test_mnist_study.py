"""The MNIST study end to end on a small slice, resume, and the table builders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ConfigError
from hedonic_neurons.mnist.model import GatedMLPConfig
from hedonic_neurons.mnist.report import format_table, table7, table8, table9
from hedonic_neurons.mnist.study import MnistStudyConfig

ARGS = ["mnist", "--quick", "--n-train", "500", "--n-test", "200", "--layers", "2", "3", "--epochs", "2",
        "--d-model", "32", "--d-hidden", "32", "--blocks", "3", "--top-k", "32", "--m", "4000", "--omega", "400",
        "--no-progress"]

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py



@pytest.mark.slow
def test_command_writes_every_table_and_figure_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table 7" in printed and "Table 9" in printed
    for name in ("table7", "table8", "table9"):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.csv").is_file()
    t7, t8, t9 = (pd.read_csv(out / f"{n}.csv") for n in ("table7", "table8", "table9"))
    assert set(t7["method"]) >= {"Random", "K-means", "Hier. clustering", "Hedonic (OCA)", "Hedonic (PAS)",
                                 "Hedonic (PAS, exact Top Covering)"}
    assert np.isfinite(t7[["delta_acc_mean", "avg_size"]].to_numpy()).all()
    assert np.isfinite(t8[["purity_mean", "selectivity_mean", "sparsity_mean"]].to_numpy()).all()
    assert len(t9) == 4 and np.isfinite(t9[["stroke_mean", "purity_mean"]].to_numpy()).all()
    coalitions = pd.read_csv(out / "coalitions.csv")
    numeric = coalitions[["delta_acc", "purity", "selectivity", "sparsity", "stroke", "loss_delta"]].to_numpy()
    assert np.isfinite(numeric).all()
    multi = coalitions[coalitions["size"] >= 2]
    assert np.isfinite(multi["pair"]).all()
    assert ((coalitions["purity"] >= 0.1 - 1e-9) & (coalitions["purity"] <= 1)).all()
    long = pd.read_csv(out / "results_long.csv")
    assert {"seed", "setting", "layer", "method", "metric", "value"} <= set(long.columns)
    # every hedonic partition covers every player exactly once
    for method in ("hedonic_pas", "hedonic_oca", "hedonic_pas_topcover", "random", "kmeans", "hierarchical"):
        sizes = coalitions[(coalitions["setting"] == "trained") & (coalitions["layer"] == 2)
                           & (coalitions["method"] == method)]["size"]
        assert sizes.sum() == 32, method
    figures = sorted((out / "figures").glob("*.png"))
    assert figures
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(figures)
    assert (out / "report.md").is_file()
    layer_dir = out / "seed0" / "trained" / "h2"
    for name in ("discovery/record.safetensors", "discovery/phi_pas.safetensors", "discovery/phi_oca.safetensors",
                 "heldout/record.safetensors", "heldout/phi_pas.safetensors", "heldout/players.safetensors",
                 "partitions/hedonic_pas.json", "partitions/hedonic_pas_topcover.json",
                 "partitions/hierarchical.json"):
        assert (layer_dir / name).is_file(), name
    # a re-run with the same out dir reuses models and valuations
    model_path = out / "seed0" / "trained" / "model.safetensors"
    stamps = {p: os.stat(p).st_mtime_ns for p in (model_path, layer_dir / "discovery" / "phi_pas.safetensors",
                                                   out / "seed0" / "shuffled" / "model.safetensors")}
    assert main([*ARGS, "--out", str(out)]) == 0
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "coalitions.csv"), coalitions)


def _rows() -> pd.DataFrame:
    base = {"seed": 0, "setting": "trained", "layer": 2, "pair": 0.1, "ratio": 0.5, "selectivity": 0.2,
            "sparsity": 0.8, "stroke": 0.2}
    rows = [
        {**base, "method": "hedonic_pas", "size": 2, "delta_acc": 1.0, "purity": 0.5},
        {**base, "method": "hedonic_pas", "size": 4, "delta_acc": 3.0, "purity": 0.9, "pair": 0.3, "ratio": 1.5},
        {**base, "method": "hedonic_pas", "size": 1, "delta_acc": 2.0, "purity": 0.4, "pair": np.nan, "ratio": np.nan},
        {**base, "method": "hedonic_pas", "layer": 5, "size": 3, "delta_acc": 99.0, "purity": 0.1},
        {**base, "method": "random", "size": 7, "delta_acc": 0.5, "purity": 0.2},
        {**base, "method": "hedonic_pas", "setting": "shuffled", "layer": 3, "size": 3, "delta_acc": 0.0,
         "purity": 0.3, "stroke": 0.15},
    ]
    return pd.DataFrame(rows)


def test_table_builders_hand_computed() -> None:
    rows = _rows()
    t7 = table7(rows, layers=[2, 3]).set_index("method")
    pas = t7.loc["Hedonic (PAS)"]
    assert pas["delta_acc_mean"] == pytest.approx(2.0)  # layer 5 and the shuffled control excluded
    assert pas["delta_acc_std"] == pytest.approx(1.0)
    assert pas["pair_mean"] == pytest.approx(0.2)  # singleton excluded
    assert pas["ratio_median"] == pytest.approx(1.0)
    assert pas["avg_size"] == pytest.approx(7 / 3) and pas["n_singletons"] == 1
    assert list(t7.index) == ["Random", "Hedonic (PAS)"]  # the paper's row order
    t8 = table8(rows, layers=[2]).set_index("method")
    assert t8.loc["Hedonic (PAS)", "purity_mean"] == pytest.approx(0.6)
    t9 = table9(rows, layer=3)
    assert list(t9["setting"]) == ["Label-Shuffled, h3"] and t9["stroke_mean"].iloc[0] == pytest.approx(0.15)
    pretty = format_table("table7", table7(rows, layers=[2]))
    assert pretty.loc[1, "ΔAcc (pp, mean ± std, ↑)"] == "2.00 ± 1.00"


def test_config_round_trip_and_errors() -> None:
    cfg = MnistStudyConfig.quick(layers=(1, 5), model=GatedMLPConfig(d_model=16))
    assert MnistStudyConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.seeds == (0,) and cfg.m == 80_000
    with pytest.raises(ConfigError, match="layers"):
        MnistStudyConfig(layers=(6,))
    with pytest.raises(ConfigError, match="unknown"):
        MnistStudyConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="baseline"):
        MnistStudyConfig(baseline="median")
