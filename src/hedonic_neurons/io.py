"""Atomic file writing and safe loading of open formats (JSON, NPY, safetensors).

Every artifact the package writes goes through :func:`atomic_write`: the bytes land in a
temporary file in the same directory and are renamed over the target, so an
interruption leaves either the old file or the new one, never a truncated one.
No pickle anywhere: ``numpy.load`` is always called with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import ArtifactError, InputError

__all__ = [
    "MAX_JSON_DEPTH",
    "atomic_path",
    "atomic_write",
    "check_output_path",
    "check_nesting",
    "file_sha256",
    "read_text",
    "json_default",
    "load_array",
    "loads_json",
    "read_json",
    "save_arrays",
    "load_arrays",
    "write_json",
]

#: Deepest nesting accepted in any JSON or YAML input; deeper documents are refused with a
#: clean error instead of exhausting the interpreter's recursion limit.
MAX_JSON_DEPTH = 64


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


def _require_file(p: Path, what: str = "a file") -> None:
    """Raise a clean :class:`ArtifactError` unless ``p`` is a regular file (directories named as such)."""
    if p.is_dir():
        raise ArtifactError(f"{p}: is a directory, expected {what}.")
    if not p.is_file():
        raise ArtifactError(f"{p}: {what.removeprefix('a ').removeprefix('an ')} not found.")


def _json_depth_ok(text: str, limit: int) -> bool:
    """Cheap pre-scan: False when brackets outside strings nest deeper than ``limit``."""
    depth = 0
    in_str = False
    esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def check_nesting(obj: Any, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`InputError` when a parsed document nests lists/dicts deeper than ``limit``.

    Iterative (no recursion), so it is safe on the documents it refuses.
    """
    stack: list[tuple[Any, int]] = [(obj, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list, tuple)):
            continue
        if depth > limit:
            raise InputError(f"{what}: nested deeper than {limit} levels; refused.")
        if id(node) in seen:  # YAML anchors can alias (and even self-reference) nodes
            continue
        seen.add(id(node))
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children)


def loads_json(text: str, what: str) -> Any:
    """``json.loads`` with the package's errors: malformed or too deeply nested -> :class:`ArtifactError`.

    Parameters
    ----------
    text : str
        The JSON document.
    what : str
        Names the source (a path) in error messages.
    """
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        raise ArtifactError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels; refused.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{what}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from exc
    except RecursionError as exc:  # pragma: no cover - the pre-scan refuses these first
        raise ArtifactError(f"{what}: JSON nested too deeply; refused.") from exc


def read_text(path: str | os.PathLike[str], what: str = "a file") -> str:
    """Read a UTF-8 text file; missing, directory or non-UTF-8 -> one clean :class:`ArtifactError`."""
    p = Path(path)
    _require_file(p, what)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{p}: not valid UTF-8 text (byte {exc.start}: {exc.reason}).") from exc


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, with a clear error naming the path when it is missing or malformed."""
    p = Path(path)
    return loads_json(read_text(p), str(p))


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed in ``chunk``-byte pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_output_path(
    out: str | os.PathLike[str],
    name: str = "--out",
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    input_dirs: Sequence[str | os.PathLike[str]] = (),
    kind: str = "file",
    suffixes: Sequence[str] | None = None,
) -> Path:
    """Check an output path before any work: writable, not an input, not inside an input directory.

    Parameters
    ----------
    out : path
        Where the command will write.
    name : str
        The argument's name in messages.
    inputs : sequence of path
        Files the command reads; ``out`` may be none of them (after resolving links).
    input_dirs : sequence of path
        Directories the command reads (record directories); ``out`` may not be one of them
        or lie inside one.
    kind : {"file", "dir"}
        ``"file"``: ``out`` must not be an existing directory; ``"dir"``: must not be an
        existing file.
    suffixes : sequence of str, optional
        Accepted file suffixes (lower case, with the dot).

    Returns
    -------
    pathlib.Path
        ``out`` as given.

    Raises
    ------
    InputError
        On any of the above, naming ``name``, the path and what was expected.
    """
    p = Path(out)
    if str(out) == "":
        raise InputError(f"{name}: expected a path, got an empty string.")
    resolved = p.resolve()
    for src in inputs:
        if Path(src).resolve() == resolved:
            raise InputError(f"{name}: {p} is also an input of this command; refusing to overwrite it.")
    for d in input_dirs:
        droot = Path(d).resolve()
        if resolved == droot or droot in resolved.parents:
            raise InputError(f"{name}: {p} lies inside the input directory {d}; refusing to write into it.")
    if kind == "file" and p.is_dir():
        raise InputError(f"{name}: {p} is a directory, expected a file path.")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise InputError(f"{name}: {p} is a file, expected a directory.")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"{name}: expected a file ending in {' or '.join(suffixes)}, got {str(p)!r}.")
    parent = resolved if (kind == "dir" and p.is_dir()) else resolved.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{name}: cannot create {p}: {probe} is a file, not a directory.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{name}: cannot write {p}: {probe} is not writable.")
    return p


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Save named numpy arrays to a safetensors file, atomically."""
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)
    return Path(path)


def load_arrays(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load a safetensors file: ``(arrays, metadata)``.

    Each tensor is read through its own memory map, closed before the next one is read, so the
    peak resident memory is the arrays plus the largest tensor rather than twice the file
    (a mapped page counts as resident while the map is open).
    """
    from safetensors import safe_open

    p = Path(path)
    _require_file(p, "a safetensors file")
    try:
        with safe_open(str(p), framework="np") as fh:
            meta = dict(fh.metadata() or {})
            keys = list(fh.keys())
        arrays = {}
        for k in keys:
            with safe_open(str(p), framework="np") as fh:
                arrays[k] = fh.get_tensor(k)
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
    _require_file(p, "an array file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        _check_npy_header(p)
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArtifactError(f"{p}: not a readable .npy array ({exc}).") from exc
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


def _check_npy_header(p: Path) -> None:
    """Refuse a ``.npy`` whose header is malformed, pickled, or claims more bytes than the file holds.

    Runs before ``numpy.load`` allocates anything, so a 200-byte file whose header
    claims a 200000 x 200000 matrix is refused instead of asking for 298 GiB.
    """
    from numpy.lib import format as npy

    size = p.stat().st_size
    with open(p, "rb") as fh:
        try:
            version = npy.read_magic(fh)
        except ValueError as exc:
            raise ArtifactError(f"{p}: not a .npy file (bad magic string: {exc}).") from exc
        try:
            if version == (1, 0):
                shape, _fortran, dtype = npy.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = npy.read_array_header_2_0(fh)
            else:
                raise ArtifactError(f"{p}: unsupported .npy format version {version}.")
        except (ValueError, SyntaxError, TypeError, KeyError) as exc:
            raise ArtifactError(f"{p}: malformed .npy header ({exc}).") from exc
        offset = fh.tell()
    if dtype.hasobject:
        raise ArtifactError(f"{p}: holds a pickled Python-object array; refused (pickle is never loaded).")
    count = 1
    for dim in shape:
        count *= int(dim)
    need = count * dtype.itemsize
    if offset + need != size:
        raise ArtifactError(
            f"{p}: header claims shape {tuple(shape)} of {dtype} ({need} bytes of data) but the file holds "
            f"{size - offset} bytes after the header (truncated or corrupt)."
        )


def run_atomic(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)
