"""Atomic file writing and safe loading of open formats (JSON, NPY, safetensors).

Every artifact the package writes goes through :func:`atomic_write`: the bytes land in a
temporary file in the same directory and are renamed over the target, so an
interruption leaves either the old file or the new one, never a truncated one.
No pickle anywhere: ``numpy.load`` is always called with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import ArtifactError, InputError

__all__ = [
    "atomic_path",
    "atomic_write",
    "json_default",
    "load_array",
    "read_json",
    "save_arrays",
    "load_arrays",
    "write_json",
]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    Use for writers that want a file name rather than a handle (safetensors, parquet).
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the artifact the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing and atomically move it to ``path`` on success."""
    with atomic_path(path) as tmp:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def json_default(o: Any) -> Any:
    """``json.dump`` fallback for numpy scalars and arrays and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically; numpy scalars and arrays are converted."""

    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=indent, default=json_default, sort_keys=False)
        fh.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, with a clear error naming the path when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: file not found.")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{p}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from exc


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Save named numpy arrays to a safetensors file, atomically."""
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)
    return Path(path)


def load_arrays(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load a safetensors file: ``(arrays, metadata)``."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: file not found.")
    try:
        with safe_open(str(p), framework="np") as fh:
            meta = dict(fh.metadata() or {})
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise ArtifactError(f"{p}: not a readable safetensors file ({exc}).") from exc
    return arrays, meta


def load_array(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load one array from ``.npy`` or ``.safetensors``.

    Parameters
    ----------
    path : path-like
        ``.npy`` (loaded without pickle) or ``.safetensors``.
    key : str, optional
        Tensor name inside a safetensors file; defaults to ``"values"`` if present, else
        the only tensor in the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: file not found.")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ArtifactError(f"{p}: not a plain .npy array (pickled object arrays are refused): {exc}.") from exc
    if suffix == ".safetensors":
        arrays, _ = load_arrays(p)
        if key is None:
            if "values" in arrays:
                key = "values"
            elif len(arrays) == 1:
                key = next(iter(arrays))
            else:
                raise InputError(f"{p}: holds tensors {sorted(arrays)}; name one with key=.")
        if key not in arrays:
            raise InputError(f"{p}: no tensor named {key!r}; it holds {sorted(arrays)}.")
        return arrays[key]
    raise InputError(f"path: expected a .npy or .safetensors file, got {p.name!r}.")


def run_atomic(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)
