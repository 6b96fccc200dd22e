"""Strict parsing of config files and typed, validated construction of frozen config
dataclasses from the plain data.

:func:`build` walks the dataclass type hints: unknown keys are rejected with a
did-you-mean, ``Literal`` fields list their allowed values, and every error names the full
dotted key (:class:`~hedonic_neurons.errors.ConfigError`). Used by
:mod:`hedonic_neurons.pipeline.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from ..errors import ConfigError

__all__ = ["build", "dotted", "parse_config_text", "to_dict"]

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Plain dict/list/scalar form of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def build(data: Any, cls: type[T], _path: str = "") -> T:
    """Build and validate the dataclass ``cls`` from plain data.

    Raises
    ------
    ConfigError
        Naming the dotted key, the value received and what is allowed; unknown keys come
        with a did-you-mean suggestion.
    """
    where = _path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__} {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f" Did you mean {dotted(_path, near[0])!r}?" if near else ""
            raise ConfigError(
                f"{dotted(_path, str(key))}: unknown key.{hint} Allowed keys here: {', '.join(names)}."
            )
    kwargs = {k: _coerce(v, hints[k], dotted(_path, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - guarded by _coerce
        raise ConfigError(f"{where}: {exc}") from exc


def dotted(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(value, tp, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            near = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"{key}: {value!r} is not allowed; expected one of {', '.join(repr(a) for a in allowed)}.{hint}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: null is not allowed; expected {_type_name(tp)}.")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}.")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}.")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {len(value)} values {list(value)!r}.")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:  # YAML 1.1 reads "2e-4" as a string
                    value = float(value)
                except ValueError:
                    pass
            if not isinstance(value, float):
                raise ConfigError(f"{key}: expected a number, got {value!r}.")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}.")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}.")  # pragma: no cover


def parse_config_text(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML/JSON config file strictly: duplicate keys, nesting bombs, non-UTF-8 -> :class:`ConfigError`.

    YAML is read with a ``yaml.SafeLoader`` that refuses a key given twice in one mapping
    (plain ``safe_load`` keeps the last one silently); documents nested deeper than
    :data:`hedonic_neurons.io.MAX_JSON_DEPTH` are refused before and after parsing.
    """
    import yaml

    from ..errors import HedonicError
    from ..io import MAX_JSON_DEPTH, _json_depth_ok, check_nesting

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config: {p} is not valid UTF-8 text (byte {exc.start}: {exc.reason}).") from exc
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        raise ConfigError(f"config: {p} is nested deeper than {MAX_JSON_DEPTH} levels; refused.")

    def no_duplicates(pairs: list[tuple[Any, Any]], where: str = "") -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ConfigError(f"config: {p}: key {k!r} is given twice{where}.")
            out[k] = v
        return out

    class _StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            pairs = [(self.construct_object(k, deep=deep), self.construct_object(v, deep=deep))
                     for k, v in node.value]
            return no_duplicates(pairs, f" (line {node.start_mark.line + 1})")

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,  # type: ignore[arg-type]
                                  lambda loader, node: loader.construct_mapping(node, deep=True))
    try:
        if p.suffix == ".json":
            data = json.loads(text, object_pairs_hook=no_duplicates)
        else:
            data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
        check_nesting(data, f"config: {p}")
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config: {p} is not valid YAML/JSON ({' '.join(str(exc).split())}).") from exc
    except RecursionError as exc:
        raise ConfigError(f"config: {p} is nested too deeply; refused.") from exc
    except HedonicError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from exc
    return data
