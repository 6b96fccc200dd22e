"""The explorer's artifacts: four Parquet tables in ``RUN_DIR/artifacts/`` (docs/explorer.md).

Each table is declared once here as an ordered mapping ``column -> kind``; the validator,
the Parquet writer (:func:`hedonic_neurons.explorer.write_artifacts`), the page builder and
docs/explorer.md all read these declarations. Kinds:

``"str"``, ``"int"`` (int64), ``"float"`` (float64, NaN allowed where a value is absent),
``"bool"``, ``"list<int32>"``, ``"list<int>"`` (int64), ``"list<float>"``.

A run holds one model and one task; a coalition is identified by
``(layer, method, seed, coalition)``, ``coalition`` being its index within its partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tracking.transitions import EVENTS

__all__ = [
    "ARTIFACT_FILES",
    "COALITIONS",
    "EXAMPLES",
    "EXAMPLE_KINDS",
    "EXAMPLE_SPLITS",
    "KEY",
    "LINEAGE",
    "OOD_KINDS",
    "PARTITIONS",
    "SCHEMAS",
    "TableName",
    "arrow_schema",
    "empty_frame",
    "validate_frame",
]

Kind = Literal["str", "int", "float", "bool", "list<int32>", "list<int>", "list<float>"]
TableName = Literal["coalitions", "examples", "lineage", "partitions"]

#: How a coalition's OOD drop was obtained: an exact ablation, a first-order estimate, or not at all.
OOD_KINDS: tuple[str, ...] = ("exact", "estimated", "")
#: Which input set an example comes from.
EXAMPLE_SPLITS: tuple[str, ...] = ("capture", "ood")
#: Top-activating or bottom-activating example.
EXAMPLE_KINDS: tuple[str, ...] = ("top", "bottom")
#: The columns that identify a partition (a "slice" of the page).
KEY: tuple[str, ...] = ("layer", "method", "seed")

COALITIONS: dict[str, Kind] = {
    "model": "str",
    "task": "str",
    "layer": "int",
    "method": "str",
    "seed": "int",
    "coalition": "int",
    "size": "int",
    "members": "list<int32>",
    "pair_insample": "float",
    "ratio_insample": "float",
    "pair_heldout": "float",
    "ratio_heldout": "float",
    "pair_null_mean": "float",
    "pair_null_sd": "float",
    "pair_q": "float",
    "pair_significant": "bool",
    "ood_drop": "float",
    "ood_drop_rel": "float",
    "ood_kind": "str",
    "ood_q": "float",
    "ood_significant": "bool",
    "best_feature": "str",
    "best_feature_r2": "float",
    "act_hist_counts": "list<int>",
    "act_hist_edges": "list<float>",
    "image_grid": "str",
}

EXAMPLES: dict[str, Kind] = {
    "layer": "int",
    "method": "str",
    "seed": "int",
    "coalition": "int",
    "split": "str",
    "kind": "str",
    "rank": "int",
    "query": "str",
    "passage": "str",
    "activation": "float",
    "target": "float",
}

LINEAGE: dict[str, Kind] = {
    "layer": "int",
    "method": "str",
    "seed": "int",
    "source": "int",
    "target_layer": "int",
    "target": "int",
    "alpha": "float",
    "beta": "float",
    "event": "str",
}

PARTITIONS: dict[str, Kind] = {
    "layer": "int",
    "method": "str",
    "seed": "int",
    "n_coalitions": "int",
    "largest_share": "float",
    "n_singletons": "int",
    "null_largest_share": "float",
}

SCHEMAS: dict[str, dict[str, Kind]] = {
    "coalitions": COALITIONS,
    "examples": EXAMPLES,
    "lineage": LINEAGE,
    "partitions": PARTITIONS,
}

#: File name of each table inside ``RUN_DIR/artifacts/``.
ARTIFACT_FILES: dict[str, str] = {
    "coalitions": "coalitions.parquet",
    "examples": "coalition_examples.parquet",
    "lineage": "lineage.parquet",
    "partitions": "partitions_summary.parquet",
}

# Columns whose values must come from a declared vocabulary.
_VOCAB: dict[str, dict[str, tuple[str, ...]]] = {
    "coalitions": {"ood_kind": OOD_KINDS},
    "examples": {"split": EXAMPLE_SPLITS, "kind": EXAMPLE_KINDS},
    "lineage": {"event": tuple(EVENTS)},
}
# Unique row keys.
_UNIQUE: dict[str, tuple[str, ...]] = {
    "coalitions": (*KEY, "coalition"),
    "examples": (*KEY, "coalition", "split", "kind", "rank"),
    "lineage": (*KEY, "source", "target"),
    "partitions": KEY,
}


def _check_table(table: str) -> dict[str, Kind]:
    if table not in SCHEMAS:
        raise InputError(f"table: expected one of {sorted(SCHEMAS)}, got {table!r}.")
    return SCHEMAS[table]


def arrow_schema(table: TableName) -> Any:
    """The ``pyarrow.Schema`` a table is written with (declared columns, in order)."""
    import pyarrow as pa

    types = {
        "str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
        "list<int32>": pa.list_(pa.int32()), "list<int>": pa.list_(pa.int64()),
        "list<float>": pa.list_(pa.float64()),
    }
    return pa.schema([(c, types[k]) for c, k in _check_table(table).items()])


def empty_frame(table: TableName) -> pd.DataFrame:
    """A table with the declared columns and no rows (written when a run has none)."""
    spec = _check_table(table)
    dtypes = {"str": object, "int": np.int64, "float": np.float64, "bool": bool}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(k, object)) for c, k in spec.items()})


def _as_list(value: Any, dtype: type, where: str) -> np.ndarray:
    if isinstance(value, str) or value is None or not hasattr(value, "__len__"):
        raise InputError(f"{where}: expected a list of {dtype.__name__}, got {value!r}.")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: expected a list of numbers, got {value!r}.") from exc
    if arr.ndim != 1:
        raise InputError(f"{where}: expected a flat list, got shape {arr.shape}.")
    if dtype is not float:
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"{where}: expected integers, got {value!r}.")
        return arr.astype(dtype)
    return arr


def _coerce(col: pd.Series, kind: Kind, where: str) -> pd.Series:
    if kind == "str":
        # a string dtype (pandas >= 3 reads Parquet strings as one) only needs a look for missing values
        typed = pd.api.types.is_string_dtype(col) and col.dtype != object
        if (typed and col.isna().any()) or (not typed and len(col) and pd.api.types.infer_dtype(col, skipna=False) != "string"):
            bad = next(v for v in col if not isinstance(v, str))
            raise InputError(f"{where}: expected strings, found {bad!r} ({type(bad).__name__}).")
        return col
    if kind.startswith("list<"):
        dtype: type = {"list<int32>": np.int32, "list<int>": np.int64, "list<float>": float}[kind]
        return pd.Series([_as_list(v, dtype, f"{where}[row {i}]") for i, v in enumerate(col)],
                         index=col.index, dtype=object)
    if kind == "bool":
        if col.isna().any():
            raise InputError(f"{where}: expected booleans, found a missing value (row {int(col.isna().to_numpy().argmax())}).")
        if col.dtype != bool and not set(pd.unique(col)) <= {0, 1}:
            raise InputError(f"{where}: expected booleans, got values {sorted(map(str, pd.unique(col)))[:5]}.")
        return col.astype(bool)
    # numeric dtypes cannot hold strings; only object columns need a look at each value
    wrong: list[Any] = ([v for v in col if isinstance(v, (bool, np.bool_, str, bytes))][:1]
                        if col.dtype == object else [])
    if pd.api.types.is_bool_dtype(col) or wrong:
        offender: Any = wrong[0] if wrong else col.dtype
        raise InputError(f"{where}: expected {'integers' if kind == 'int' else 'floats (NaN when absent)'}, "
                         f"found {offender!r}.")
    try:
        values = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: expected {'integers' if kind == 'int' else 'floats'}, got dtype {col.dtype} "
                         f"({exc}).") from exc
    if kind == "float":
        return pd.Series(values, index=col.index, dtype=np.float64)
    if np.isnan(values).any():
        raise InputError(f"{where}: expected integers, found a missing value (row {int(np.isnan(values).argmax())}).")
    if np.any(values != np.round(values)):
        raise InputError(f"{where}: expected integers, found {values[values != np.round(values)][0]!r}.")
    return pd.Series(values.astype(np.int64), index=col.index)


def validate_frame(frame: Any, table: TableName) -> pd.DataFrame:
    """Check a table against its declared schema and return it with the declared dtypes.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table. Extra columns are kept (after the declared ones); declared columns
        must all be present.
    table : {"coalitions", "examples", "lineage", "partitions"}

    Returns
    -------
    pandas.DataFrame
        A copy: declared columns first, in declared order, with the declared types (lists
        as 1-D numpy arrays), index reset.

    Raises
    ------
    InputError
        On a missing column, a value of the wrong type, a value outside its vocabulary
        (``ood_kind``, ``split``, ``kind``, ``event``), a duplicated key, or inconsistent
        values (``len(members) != size``, histogram counts and edges of mismatched
        lengths, a negative coalition index, a lineage target of ``-1`` for an event other
        than ``vanish``). The message names the table and the column.
    """
    spec = _check_table(table)
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{table}: expected a pandas DataFrame, got {type(frame).__name__}.")
    missing = [c for c in spec if c not in frame.columns]
    if missing:
        raise InputError(f"{table}: missing column {missing[0]!r} (missing: {missing}); "
                         f"expected columns {list(spec)}.")
    extra = [c for c in frame.columns if c not in spec]
    out = frame[[*spec, *extra]].reset_index(drop=True).copy()
    for c, kind in spec.items():
        out[c] = _coerce(out[c], kind, f"{table}.{c}")
    for c, allowed in _VOCAB.get(table, {}).items():
        bad = sorted(set(pd.unique(out[c])) - set(allowed))
        if bad:
            raise InputError(f"{table}.{c}: expected one of {list(allowed)}, got {bad[0]!r}.")
    key = list(_UNIQUE[table])
    dup = out.duplicated(key)
    if dup.any():
        row = out.loc[dup.idxmax(), key].to_dict()
        raise InputError(f"{table}: duplicated key {row} (columns {key} must identify a row).")
    _check_consistency(out, table)
    return out


def _check_consistency(out: pd.DataFrame, table: str) -> None:
    for c in ("coalition", "source", "rank", "n_coalitions", "size", "n_singletons"):
        if c in out.columns and c in SCHEMAS[table] and len(out) and (out[c] < 0).any():
            raise InputError(f"{table}.{c}: expected non-negative integers, found {int(out[c].min())}.")
    if table == "coalitions":
        for i, (size, members) in enumerate(zip(out["size"], out["members"])):
            if len(members) != size:
                raise InputError(f"coalitions.members[row {i}]: holds {len(members)} neurons but size is {size}.")
            if size and members.min() < 0:
                raise InputError(f"coalitions.members[row {i}]: neuron indices must be non-negative, "
                                 f"found {int(members.min())}.")
        for i, (cnt, edg) in enumerate(zip(out["act_hist_counts"], out["act_hist_edges"])):
            if len(cnt) + 1 != len(edg) and not (len(cnt) == 0 and len(edg) == 0):
                raise InputError(f"coalitions.act_hist_edges[row {i}]: expected len(act_hist_counts) + 1 = "
                                 f"{len(cnt) + 1} edges, got {len(edg)}.")
    if table == "lineage" and len(out):
        bad = (out["target"] < 0) & (out["event"] != "vanish")
        if bad.any():
            raise InputError(f"lineage.target: -1 (no target) is only allowed for event 'vanish', "
                             f"row {int(bad.idxmax())} has event {out.loc[bad.idxmax(), 'event']!r}.")
        if (out["target"] < -1).any():
            raise InputError(f"lineage.target: expected a coalition index or -1, found {int(out['target'].min())}.")


def validate_frames(frames: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Validate several tables (keys from :data:`SCHEMAS`); returns them coerced."""
    return {name: validate_frame(df, name) for name, df in frames.items()}  # type: ignore[arg-type]
