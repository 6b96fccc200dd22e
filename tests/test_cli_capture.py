"""``hedonic capture`` / ``hedonic valuate`` end to end on a tiny saved BERT with a LoRA adapter."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from hedonic_neurons.cli.capture import parse_layers, read_pairs
from hedonic_neurons.cli.main import main
from hedonic_neurons.errors import InputError
from hedonic_neurons.models.capture import load_records
from hedonic_neurons.synergy import SynergyMatrix
from hedonic_neurons.valuations import oca, pas
from tests.helpers import assert_close
from tests.tiny_models import minilm_dir, one_thread, tiny_model


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_parse_layers_and_read_pairs(tmp_path) -> None:
    assert parse_layers("7-9") == [7, 8, 9] and parse_layers("2,3,5-6") == [2, 3, 5, 6]
    with pytest.raises(InputError, match="--layers"):
        parse_layers("9-7")
    tsv = tmp_path / "p.tsv"
    tsv.write_text("q one\tpassage one\t1\nq two\tpassage two\t0\n")
    q, p, lab = read_pairs(tsv)
    assert p == ["passage one", "passage two"]
    assert q == ["q one", "q two"] and lab == [1.0, 0.0]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"query": "x"}\n')
    with pytest.raises(InputError, match="passage"):
        read_pairs(bad)


@pytest.mark.slow
def test_capture_then_valuate(tmp_path, capsys) -> None:
    model = tiny_model("bert", n_layers=3, intermediate=16, lora_layers=(1, 2))
    base = model.get_base_model()
    # a plain base directory: BertForScalarScore without LoRA wrappers, then the adapter beside it
    model.save_pretrained(tmp_path / "adapter")
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    plain = model.unload()  # drops LoRA layers, restoring base linears (no merge)
    plain.save_pretrained(tmp_path / "base")
    data = tmp_path / "pairs.jsonl"
    rows = [{"query": f"query {i} about sorting", "passage": f"passage {i} sorts a list", "label": i % 3}
            for i in range(7)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code = main(["capture", "--model", str(tmp_path / "base"), "--adapter", str(tmp_path / "adapter"),
                 "--tokenizer", minilm_dir(), "--data", str(data), "--layers", "1-2",
                 "--out", str(tmp_path / "cap"), "--batch-size", "3", "--quiet"])
    assert code == 0 and "captured 7 inputs" in capsys.readouterr().out
    recs = load_records(tmp_path / "cap")
    assert sorted(recs) == [1, 2] and recs[1].n_inputs == 7
    np.testing.assert_array_equal(recs[1].labels, [0, 1, 2, 0, 1, 2, 0])
    assert np.abs(recs[2].a - recs[2].a_base).max() > 0  # the adapter was loaded
    del base
    for method in ("oca", "pas_exact", "pas_second_order", "pas-2nd"):  # vocabulary names and an old alias
        out = tmp_path / f"{method}.safetensors"
        assert main(["valuate", str(tmp_path / "cap"), "--layer", "2", "--method", method, "--out", str(out),
                     "--quiet"]) == 0
        phi = SynergyMatrix.load(out)
        assert phi.n == 16
        assert phi.meta["method"] == {"pas-2nd": "pas_second_order"}.get(method, method)
    with pytest.raises(SystemExit) as bad:  # unknown name: argparse's one-line error, exit 2
        main(["valuate", str(tmp_path / "cap"), "--layer", "2", "--method", "pas", "--out",
              str(tmp_path / "bad.safetensors")])
    assert bad.value.code == 2
    assert_close(SynergyMatrix.load(tmp_path / "pas_exact.safetensors").values, pas(recs[2]).values,
                 rtol=1e-6, atol=1e-9)
    assert_close(SynergyMatrix.load(tmp_path / "oca.safetensors").values, oca(recs[2]).values, rtol=1e-6, atol=1e-7)
    assert main(["valuate", str(tmp_path / "cap"), "--layer", "5", "--method", "oca", "--out",
                 str(tmp_path / "x.safetensors")]) == 2
