"""The coalition explorer: per-coalition artifacts and a self-contained HTML page (docs/explorer.md).

- :func:`write_artifacts` validates and writes ``RUN_DIR/artifacts/{coalitions,
  coalition_examples,lineage,partitions_summary}.parquet`` (schema in :mod:`.schema`);
- :func:`read_artifacts` reads them back (:class:`ExplorerArtifacts`);
- :func:`build_explorer` writes ``explorer.html`` (``hedonic explore RUN_DIR``);
  :func:`card_anchor` is the URL fragment that opens one coalition's card.

Plain pandas/pyarrow and the standard library: no torch, no plotting library.
"""

from __future__ import annotations

from .artifacts import ExplorerArtifacts, lineage_from_transitions, read_artifacts, write_artifacts
from .build import TABLE_COLUMNS, build_explorer, card_anchor, page_data
from .schema import ARTIFACT_FILES, SCHEMAS, validate_frame

__all__ = [
    "ARTIFACT_FILES",
    "ExplorerArtifacts",
    "SCHEMAS",
    "TABLE_COLUMNS",
    "build_explorer",
    "card_anchor",
    "lineage_from_transitions",
    "page_data",
    "read_artifacts",
    "validate_frame",
    "write_artifacts",
]
