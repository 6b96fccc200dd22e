"""Nothing silently wrong with records (issue 14, items 1, 3, 4, 5, 6, 11, 13).

Each test reproduces one defect on a tiny real model and checks it is now refused with a
clean error (or, with the explicit escape, accepted and labelled).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import ArtifactError
from hedonic_neurons.models.capture import capture, load_records, model_fingerprint
from hedonic_neurons.synergy import SynergyMatrix
from tests.tiny_models import minilm_dir, one_thread, random_batches, tiny_model


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _small(seed: int = 0, lora_layers: tuple[int, ...] = (1, 2), **kw: Any) -> Any:
    return tiny_model("llama", seed=seed, n_layers=3, hidden=16, intermediate=8, lora_layers=lora_layers, r=2, **kw)


@pytest.fixture(scope="module")
def model() -> Any:
    return _small(0)


@pytest.fixture(scope="module")
def batches(model: Any) -> list[dict[str, Any]]:
    return random_batches(model, n_batches=4, batch_size=2, seq_len=5, seed=0)


@pytest.fixture()
def cap(tmp_path: Path, model: Any, batches: list[dict[str, Any]]) -> Path:
    out = tmp_path / "cap"
    capture(model, batches, [1, 2], out, progress=False)
    return out


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def _write_manifest(root: Path, m: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(m))


# ---------------------------------------------------------------- item 1: identity
def test_recapture_with_another_adapter_is_refused(tmp_path: Path, model: Any, batches: list[Any]) -> None:
    out = tmp_path / "cap"
    capture(model, batches[:2], [1, 2], out, progress=False)  # an earlier, shorter capture by model A
    other = _small(0, lora_layers=(1,))  # same base weights, another adapter
    assert model_fingerprint(other, [1, 2]) != model_fingerprint(model, [1, 2])
    with pytest.raises(ArtifactError, match="different model"):
        capture(other, batches, [1, 2], out, progress=False)
    # fresh=True discards the old capture: the result equals a capture into an empty directory
    got = capture(other, batches, [1, 2], out, progress=False, fresh=True)
    ref = capture(other, batches, [1, 2], tmp_path / "ref", progress=False)
    np.testing.assert_array_equal(got[2].a, ref[2].a)
    assert got[2].n_inputs == 8


def test_recapture_with_other_data_identity_is_refused(tmp_path: Path, model: Any, batches: list[Any]) -> None:
    out = tmp_path / "cap"
    capture(model, batches, [1], out, progress=False, identity={"data": "aaa"})
    with pytest.raises(ArtifactError, match="different data"):
        capture(model, batches, [1], out, progress=False, identity={"data": "bbb"})


def test_complete_capture_is_not_extended_by_more_batches(tmp_path: Path, model: Any, batches: list[Any]) -> None:
    out = tmp_path / "cap"
    capture(model, batches[:2], [1], out, progress=False)
    with pytest.raises(ArtifactError, match="complete capture of 2 batches"):
        capture(model, batches, [1], out, progress=False)


# ---------------------------------------------------------------- item 3: interrupted capture
def _interrupted(out: Path, model: Any, batches: list[Any], after: int) -> None:
    def gen() -> Iterator[Any]:
        for i, b in enumerate(batches):
            if i == after:
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        capture(model, gen(), [1, 2], out, progress=False)


def test_incomplete_capture_is_refused_unless_allowed(tmp_path: Path, model: Any, batches: list[Any]) -> None:
    out = tmp_path / "cap"
    _interrupted(out, model, batches, after=2)
    assert _manifest(out)["complete"] is False
    with pytest.raises(ArtifactError, match="incomplete"):
        load_records(out)
    recs = load_records(out, allow_partial=True)
    assert recs[1].n_inputs == 4 and recs[1].meta["complete"] is False and recs[1].meta["n_rows"] == 4
    # resuming completes it, and the result equals an uninterrupted capture
    full = capture(model, batches, [1, 2], out, progress=False)
    ref = capture(model, batches, [1, 2], tmp_path / "ref", progress=False)
    np.testing.assert_array_equal(full[1].y, ref[1].y)


# ---------------------------------------------------------------- item 5: integrity
def test_flipped_bit_is_detected(cap: Path) -> None:
    shard = cap / _manifest(cap)["shards"][1]["file"]
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0x10  # inside the tensor data, the header stays valid
    shard.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256"):
        load_records(cap)
    assert load_records(cap, verify=False)[1].n_inputs == 8  # the explicit escape still loads


def test_swapped_shards_are_detected(cap: Path) -> None:
    m = _manifest(cap)
    a, b = cap / m["shards"][0]["file"], cap / m["shards"][1]["file"]
    tmp = cap / "swap.tmp"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with pytest.raises(ArtifactError, match="sha256"):
        load_records(cap)


def test_duplicated_shard_is_detected(cap: Path) -> None:
    m = _manifest(cap)
    shutil.copyfile(cap / m["shards"][0]["file"], cap / m["shards"][2]["file"])
    with pytest.raises(ArtifactError, match="sha256"):
        load_records(cap)
    m["shards"][2]["file"] = m["shards"][0]["file"]
    _write_manifest(cap, m)
    with pytest.raises(ArtifactError, match="listed twice"):
        load_records(cap, verify=False)


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "sub/shard.safetensors", ".."])
def test_shard_paths_are_confined(cap: Path, name: str) -> None:
    m = _manifest(cap)
    m["shards"][0]["file"] = name
    _write_manifest(cap, m)
    with pytest.raises(ArtifactError, match="plain file name"):
        load_records(cap, verify=False)


def test_manifest_without_layers_is_a_clean_error(cap: Path) -> None:
    m = _manifest(cap)
    del m["layers"]
    _write_manifest(cap, m)
    with pytest.raises(ArtifactError, match="'layers' must be"):
        load_records(cap)


def test_capture_into_a_file_is_refused(tmp_path: Path, model: Any, batches: list[Any]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(Exception, match="is a file"):
        capture(model, batches, [1], f, progress=False)


# ---------------------------------------------------------------- CLI: items 1, 3, 4, 6, 13
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain BERT base directory, two adapters for it, two that do not fit, and a data file."""
    root = tmp_path_factory.mktemp("saved")

    def bert(seed: int, **kw: Any) -> Any:
        kw.setdefault("n_layers", 3)
        kw.setdefault("intermediate", 16)
        return tiny_model("bert", seed=seed, r=2, **kw)

    a = bert(0, lora_layers=(1, 2))
    a.save_pretrained(root / "adapter_a")
    a.unload().save_pretrained(root / "base")
    bert(0, lora_layers=(2,)).save_pretrained(root / "adapter_b")
    bert(0, n_layers=5, lora_layers=(2, 4)).save_pretrained(root / "adapter_5layers")
    bert(0, intermediate=24, lora_layers=(1,)).save_pretrained(root / "adapter_wide")
    data = root / "pairs.jsonl"
    rows = [{"query": f"query {i} sorting", "passage": f"passage {i} sorts a list", "label": i % 3} for i in range(8)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"root": root, "base": root / "base", "a": root / "adapter_a", "b": root / "adapter_b",
            "five": root / "adapter_5layers", "wide": root / "adapter_wide", "data": data}


def _error_line(err: str, command: str) -> str:
    """The one error line (library progress bars may precede it on stderr); no traceback."""
    assert "Traceback" not in err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith(f"hedonic {command}: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def _capture_cli(saved: dict[str, Path], out: Path, *extra: str, adapter: str | None = "a") -> int:
    argv = ["capture", "--model", str(saved["base"]), "--tokenizer", minilm_dir(), "--data", str(saved["data"]),
            "--layers", "1-2", "--out", str(out), "--batch-size", "2", "--quiet", *extra]
    if adapter is not None:
        argv += ["--adapter", str(saved[adapter])]
    return main(argv)


def test_cli_recapture_without_adapter_refused(saved: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "cap"
    assert _capture_cli(saved, out, "--max-inputs", "4") == 0
    capsys.readouterr()
    assert _capture_cli(saved, out, adapter=None) == 2  # the defect: rows 4-7 came from the base model
    err = _error_line(capsys.readouterr().err, "capture")
    assert "different" in err and "adapter" in err
    assert _capture_cli(saved, out, adapter="b") == 2
    assert _capture_cli(saved, out, "--fresh", adapter=None) == 0
    recs = load_records(out)
    assert recs[1].n_inputs == 8
    np.testing.assert_array_equal(recs[2].a, recs[2].a_base)  # no adapter: a == a_base everywhere


def test_cli_valuate_partial_and_protected(saved: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "cap"
    assert _capture_cli(saved, out) == 0
    m = _manifest(out)
    before = (out / "manifest.json").read_bytes()
    # item 4: outputs into the input record directory, or over its manifest, are refused before any work
    for bad in (out / "manifest.json", out / "phi.safetensors", out / "sub" / "phi.npy"):
        assert main(["valuate", str(out), "--layer", "2", "--out", str(bad), "--quiet"]) == 2
    assert (out / "manifest.json").read_bytes() == before and not (out / "phi.safetensors").exists()
    # --out a directory, under a file, or with a suffix we do not write
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "adir", tmp_path / "afile" / "phi.npy", tmp_path / "phi.txt"):
        capsys.readouterr()
        assert main(["valuate", str(out), "--layer", "2", "--out", str(bad), "--quiet"]) == 2
        assert "--out" in _error_line(capsys.readouterr().err, "valuate")
    # item 13: .npy gets a real .npy file equal to the safetensors values
    assert main(["valuate", str(out), "--layer", "2", "--method", "oca", "--out", str(tmp_path / "p.npy")]) == 0
    assert main(["valuate", str(out), "--layer", "2", "--method", "oca",
                 "--out", str(tmp_path / "p.safetensors")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy", allow_pickle=False),
                                  SynergyMatrix.load(tmp_path / "p.safetensors").values)
    # item 3: an interrupted capture (manifest says complete: false, two batches) is refused ...
    m["complete"] = False
    m["shards"] = m["shards"][:2]
    m["n_rows"] = 4
    _write_manifest(out, m)
    capsys.readouterr()
    assert main(["valuate", str(out), "--layer", "2", "--out", str(tmp_path / "q.safetensors"), "--quiet"]) == 2
    assert "incomplete" in _error_line(capsys.readouterr().err, "valuate")
    # ... unless asked for, and then the metadata says partial with the row count
    assert main(["valuate", str(out), "--layer", "2", "--out", str(tmp_path / "q.safetensors"), "--quiet",
                 "--allow-partial"]) == 0
    meta = SynergyMatrix.load(tmp_path / "q.safetensors").meta
    assert meta["capture_complete"] is False and meta["n_rows"] == 4


@pytest.mark.parametrize(("adapter", "match"), [("five", "absent from the model"), ("wide", "does not fit")])
def test_partly_fitting_adapter_refused(saved: dict[str, Path], tmp_path: Path, capsys: Any, adapter: str,
                                        match: str) -> None:
    from hedonic_neurons.models import load_scalar_model

    with pytest.raises(ArtifactError, match=match):
        load_scalar_model(saved["base"], saved[adapter])
    assert _capture_cli(saved, tmp_path / "cap", adapter=adapter) == 2
    assert match in _error_line(capsys.readouterr().err, "capture")


def test_custom_code_model_and_hub_id_are_clean_errors(saved: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    custom = tmp_path / "custom"
    shutil.copytree(saved["base"], custom)
    cfg = json.loads((custom / "config.json").read_text())
    cfg["model_type"] = "x_custom"
    cfg["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    (custom / "config.json").write_text(json.dumps(cfg))
    argv = ["capture", "--tokenizer", minilm_dir(), "--data", str(saved["data"]), "--layers", "1",
            "--out", str(tmp_path / "cap"), "--quiet"]
    assert main([*argv, "--model", str(custom)]) == 2
    assert "custom code" in _error_line(capsys.readouterr().err, "capture")
    assert main([*argv, "--model", "some-org/some-model"]) == 2
    line = _error_line(capsys.readouterr().err, "capture")
    assert "not a local model directory" in line and "pass local_files_only=False" not in line
