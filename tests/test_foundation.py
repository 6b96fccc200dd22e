"""Foundation types: Readout reference against torch norms, LayerRecord I/O, SynergyMatrix, atomic I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hedonic_neurons import ArtifactError, InputError, LayerRecord, Readout, SynergyMatrix
from hedonic_neurons.io import atomic_write, load_array, read_json, write_json
from tests.helpers import assert_close


def _record(seed: int = 0, N: int = 7, n: int = 5, d: int = 4, norm: str = "rms") -> LayerRecord:
    rng = np.random.default_rng(seed)
    return LayerRecord(
        layer=3,
        h=rng.normal(size=(N, d)),
        a=rng.normal(size=(N, n)),
        a_base=rng.normal(size=(N, n)),
        y=rng.normal(size=(N, d)),
        w_down=rng.normal(size=(d, n)),
        w_down_base=rng.normal(size=(d, n)),
        readout=Readout(norm=norm, weight=rng.normal(size=d), bias=0.3, gamma=rng.normal(size=d), eps=1e-5),
        w_read=rng.normal(size=(2, n, d)),
        meta={"model": "synthetic"},
    )


@pytest.mark.parametrize("norm", ["rms", "layer"])
def test_readout_matches_torch_norm(norm: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    d = 6
    y = rng.normal(size=(9, d))
    gamma, beta, w = rng.normal(size=d), rng.normal(size=d), rng.normal(size=d)
    ro = Readout(norm=norm, weight=w, bias=-0.7, gamma=gamma, beta=beta if norm == "layer" else None, eps=1e-5)
    yt = torch.tensor(y)
    if norm == "rms":
        mod = torch.nn.RMSNorm(d, eps=1e-5, dtype=torch.float64)
        mod.weight.data = torch.tensor(gamma)
    else:
        mod = torch.nn.LayerNorm(d, eps=1e-5, dtype=torch.float64)
        mod.weight.data, mod.bias.data = torch.tensor(gamma), torch.tensor(beta)
    expected = mod(yt).detach().numpy() @ w - 0.7
    assert_close(ro(y), expected, rtol=1e-12, atol=1e-12)


def test_readout_per_input_head_rows() -> None:
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    ro = Readout(norm="layer", weight=W, bias=b, eps=1e-5)
    y = rng.normal(size=(5, 4))
    t = np.array([0, 2, 1, 2, 0])
    full = np.stack([Readout(norm="layer", weight=W[c], bias=float(b[c]), eps=1e-5)(y) for c in range(3)], 1)
    assert_close(ro(y, t), full[np.arange(5), t], rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="target_index"):
        ro(y)


def test_ablated_readout_matches_delta_sum() -> None:
    rec = _record()
    players = [1, 3]
    shift = rec.delta(np.array(players)).sum(1)
    assert_close(rec.ablated_readout(players), rec.readout(rec.y - shift), rtol=1e-12, atol=1e-12)
    assert_close(rec.delta(1), rec.delta(np.array([1]))[:, 0], rtol=0, atol=0)
    assert_close(rec.ablated_readout([]), rec.readout(rec.y), rtol=1e-12, atol=1e-12)


def test_record_round_trip(tmp_path) -> None:
    rec = _record(norm="layer")
    rec.save(tmp_path / "r.safetensors")
    back = LayerRecord.load(tmp_path / "r.safetensors")
    assert back.layer == 3 and back.meta == {"model": "synthetic"}
    for name in ("h", "a", "a_base", "y", "w_down", "w_down_base", "w_read"):
        assert_close(getattr(back, name), getattr(rec, name).astype(np.float32), rtol=0, atol=0, msg=name)
    assert back.readout.norm == "layer"
    assert_close(back.readout(back.y), rec.readout(rec.y), rtol=1e-5, atol=1e-5)


def test_record_shape_errors_name_the_argument() -> None:
    rec = _record()
    with pytest.raises(InputError, match="a_base: expected shape"):
        LayerRecord(layer=0, h=rec.h, a=rec.a, a_base=rec.a_base[:, :2], y=rec.y, w_down=rec.w_down,
                    w_down_base=rec.w_down_base, readout=rec.readout)
    with pytest.raises(InputError, match="readout: head width"):
        LayerRecord(layer=0, h=rec.h, a=rec.a, a_base=rec.a_base, y=rec.y, w_down=rec.w_down,
                    w_down_base=rec.w_down_base, readout=Readout(norm="rms", weight=np.ones(9)))


def test_synergy_matrix_round_trip_and_validation(tmp_path) -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 4))
    sm = SynergyMatrix(v, {"method": "null", "layer": 2})
    assert np.all(np.diag(sm.values) == 0) and sm.values.dtype == np.float32
    sm.save(tmp_path / "phi.safetensors")
    back = SynergyMatrix.load(tmp_path / "phi.safetensors")
    assert back.meta == {"method": "null", "layer": 2}
    assert_close(back.values, sm.values, rtol=0, atol=0)
    assert_close(load_array(tmp_path / "phi.safetensors"), sm.values, rtol=0, atol=0)
    with pytest.raises(InputError, match=r"square \(n, n\)"):
        SynergyMatrix(np.ones((2, 3)))
    with pytest.raises(InputError, match="finite"):
        SynergyMatrix(np.array([[0.0, np.nan], [1.0, 0.0]]))


def test_load_array_refuses_pickled_npy(tmp_path) -> None:
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match="pickled"):
        load_array(p)
    with pytest.raises(ArtifactError, match="not found"):
        load_array(tmp_path / "missing.npy")


def test_atomic_write_leaves_old_file_on_error(tmp_path) -> None:
    p = tmp_path / "x.json"
    write_json(p, {"v": 1})
    with pytest.raises(RuntimeError), atomic_write(p) as fh:
        fh.write("{broken")
        raise RuntimeError("interrupted")
    assert read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]
    (tmp_path / "bad.json").write_text('{"a": 1,\n oops}')
    with pytest.raises(ArtifactError, match="line 2"):
        read_json(tmp_path / "bad.json")
    assert json.loads(p.read_text()) == {"v": 1}


def test_atomic_files_get_umask_permissions(tmp_path) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    p = write_json(tmp_path / "perm.json", {"a": 1})
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
