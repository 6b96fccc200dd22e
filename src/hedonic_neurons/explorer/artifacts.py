"""Write and read the explorer's artifacts (``RUN_DIR/artifacts/*.parquet``, docs/explorer.md).

The pipeline builds four pandas DataFrames and calls :func:`write_artifacts`; the page
builder and users read them back with :func:`read_artifacts` (or plain
``pandas.read_parquet``). Columns are declared once in :mod:`hedonic_neurons.explorer.schema`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ArtifactError, InputError
from ..io import atomic_path
from .schema import ARTIFACT_FILES, SCHEMAS, arrow_schema, empty_frame, validate_frame

__all__ = ["ExplorerArtifacts", "lineage_from_transitions", "read_artifacts", "write_artifacts"]


@dataclass(frozen=True, eq=False)
class ExplorerArtifacts:
    """The four validated tables behind the explorer page.

    Attributes
    ----------
    coalitions : pandas.DataFrame
        One row per coalition (:data:`~hedonic_neurons.explorer.schema.COALITIONS`).
    examples : pandas.DataFrame
        Top/bottom-activating inputs per coalition (:data:`~.schema.EXAMPLES`).
    lineage : pandas.DataFrame
        Links between coalitions of consecutive layers (:data:`~.schema.LINEAGE`).
    partitions : pandas.DataFrame
        One row per partition (:data:`~.schema.PARTITIONS`).
    root : pathlib.Path or None
        Directory that ``coalitions.image_grid`` paths are relative to (the run directory).
    """

    coalitions: pd.DataFrame
    examples: pd.DataFrame
    lineage: pd.DataFrame
    partitions: pd.DataFrame
    root: Path | None = None

    @classmethod
    def from_frames(
        cls,
        coalitions: pd.DataFrame,
        examples: pd.DataFrame | None = None,
        lineage: pd.DataFrame | None = None,
        partitions: pd.DataFrame | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
    ) -> ExplorerArtifacts:
        """Validate the tables (``None`` = no rows) and bundle them."""
        given: dict[str, Any] = {"coalitions": coalitions, "examples": examples, "lineage": lineage,
                                 "partitions": partitions}
        frames = {name: validate_frame(empty_frame(name) if df is None else df, name)  # type: ignore[arg-type]
                  for name, df in given.items()}
        return cls(**frames, root=None if root is None else Path(root))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by name (keys of :data:`~.schema.ARTIFACT_FILES`)."""
        return {name: getattr(self, name) for name in SCHEMAS}


def write_artifacts(
    run_dir: str | os.PathLike[str],
    *,
    coalitions: pd.DataFrame,
    examples: pd.DataFrame | None = None,
    lineage: pd.DataFrame | None = None,
    partitions: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Validate the explorer's tables and write them to ``run_dir/artifacts/`` atomically.

    Parameters
    ----------
    run_dir : path-like
        The run directory; files go to ``run_dir/artifacts/`` (:data:`~.schema.ARTIFACT_FILES`).
    coalitions, examples, lineage, partitions : pandas.DataFrame
        The tables (columns in :mod:`hedonic_neurons.explorer.schema`, docs/explorer.md).
        A table passed as ``None`` is written with no rows, so a run directory always holds
        all four files.

    Returns
    -------
    dict
        Table name -> written path.

    Raises
    ------
    InputError
        If a table misses a declared column or has a value of the wrong type (nothing is
        written then: every table is validated before the first file is written).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arts = ExplorerArtifacts.from_frames(coalitions, examples, lineage, partitions)
    out = Path(run_dir) / "artifacts"
    written: dict[str, Path] = {}
    for name, df in arts.tables().items():
        schema = arrow_schema(name)  # type: ignore[arg-type]
        declared = df[list(SCHEMAS[name])]
        table = pa.Table.from_pandas(declared, schema=schema, preserve_index=False)
        extra = [c for c in df.columns if c not in SCHEMAS[name]]
        for c in extra:  # kept, with the type pyarrow infers
            table = table.append_column(c, pa.array(df[c].tolist()))
        path = out / ARTIFACT_FILES[name]
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        written[name] = path
    return written


def read_artifacts(run_dir: str | os.PathLike[str]) -> ExplorerArtifacts:
    """Read and validate the four tables of ``run_dir/artifacts/``.

    Raises
    ------
    ArtifactError
        If a file is missing (the message names it) or is not readable Parquet.
    InputError
        If a table does not match its schema.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise ArtifactError(f"{root}: run directory not found.")
    frames: dict[str, pd.DataFrame] = {}
    for name, fname in ARTIFACT_FILES.items():
        path = root / "artifacts" / fname
        if not path.is_file():
            raise ArtifactError(f"{path}: file not found (the explorer needs artifacts/{fname}; "
                                "hedonic_neurons.explorer.write_artifacts writes it).")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise ArtifactError(f"{path}: not a readable Parquet file ({exc}).") from exc
        try:
            frames[name] = validate_frame(df, name)  # type: ignore[arg-type]
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
    return ExplorerArtifacts(**frames, root=root)


def lineage_from_transitions(
    tables: Mapping[tuple[int, int], Any] | Sequence[Any], *, method: str, seed: int
) -> pd.DataFrame:
    """Lineage rows (schema :data:`~.schema.LINEAGE`) from tracking's transition tables.

    One row per link of each source coalition: its event's targets (one for persist and
    merge, every piece for split, none for vanish: then one row with ``target = -1``).
    α and β of a split's extra pieces come from the table's interaction mass when it is
    kept (tables from :func:`~hedonic_neurons.tracking.track` keep it); without it, only
    the reported target is listed.

    Parameters
    ----------
    tables : mapping (src_layer, dst_layer) -> TransitionTable, or a sequence of them
        From :func:`hedonic_neurons.tracking.track`.
    method : str
        Method label of the partitions.
    seed : int
        Seed of the partitions.
    """
    from ..tracking import transfer_ratios

    items = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    rows: list[dict[str, Any]] = []
    for t in items:
        alpha_m = beta_m = None
        if t.mass is not None:
            alpha_m, beta_m = transfer_ratios(t.mass)
        for c in range(t.n_src):
            event = str(t.event[c])
            reported = int(t.target[c])
            pieces = [reported] if reported >= 0 else []
            if alpha_m is not None:
                pieces += [p for p in t.targets[c] if p != reported]
            if not pieces:
                pieces = [-1]
            for p in pieces:
                if p == reported or p < 0:
                    a, b = float(t.alpha[c]), float(t.beta[c])
                else:
                    assert alpha_m is not None and beta_m is not None
                    a, b = float(alpha_m[c, p]), float(beta_m[c, p])
                rows.append({"layer": int(t.src_layer), "method": method, "seed": int(seed), "source": c,
                             "target_layer": int(t.dst_layer), "target": int(p), "alpha": a, "beta": b,
                             "event": event})
    if not rows:
        return empty_frame("lineage")
    return validate_frame(pd.DataFrame(rows), "lineage")

