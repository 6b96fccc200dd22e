"""Stage *diagnostics*: how much of a partition's shape is the game, not the data (docs/method.md §5.5).

Two kinds of unit, both cheap beside the partitions themselves:

* :func:`work_closure` — one per hedonic partition: its largest-coalition share beside the
  share the *same* algorithm (same ``k``, same options; the same best-response dynamics for
  ``nash_stable``) reaches on a null φ with the real φ's size and value distribution
  (:func:`hedonic_neurons.game.closure_null_share`, seeded by the study seed). For the
  additively separable game, which has no blocking rate (§5.6), the unit also records whether
  the partition is Nash stable and individually stable.
* :func:`work_k_sweep` — one per layer and valuation: exact Top Covering for each ``k`` of
  :data:`~hedonic_neurons.pipeline.plan.K_SWEEP` (coalitions, largest share, singletons) and,
  when a ψ matrix is available, the pooled Pair of each partition
  (:func:`hedonic_neurons.game.k_sweep`), labelled with how ψ was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import vocab
from ...io import write_json

__all__ = ["CLOSURE_FIELDS", "K_SWEEP_COLUMNS", "closure_options", "work_closure", "work_k_sweep"]

#: Keys of ``closure.json`` (``None`` where a field does not apply to the method); ``algorithm``
#: is the partition method's name (``"nash_stable"``), the study's tables add its label as ``method``.
CLOSURE_FIELDS: tuple[str, ...] = (
    "algorithm", "k", "n_players", "null_seed", "largest_share", "null_largest_share",
    "nash_stable", "individually_stable", "converged", "sweeps", "moves",
)

#: Columns of ``k_sweep.csv``.
K_SWEEP_COLUMNS: tuple[str, ...] = ("k", "n_coalitions", "largest_share", "n_singletons", "pooled_pair", "psi")


def closure_options(method: str, options: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """``(k, keyword arguments)`` for :func:`~hedonic_neurons.game.closure_null_share` from a
    partition unit's common options (the ones ``method`` declares; ``seed`` is left to the null's seed).

    ``k`` is ``None`` for a method that is not top-responsive (``nash_stable`` ignores it).
    """
    spec = vocab.PARTITION_METHODS[vocab.check("method", method)]
    kw = {o: options[o] for o in spec.options if o not in ("k", "seed") and o in options}
    if "size_range" in kw:
        kw["size_range"] = tuple(kw["size_range"])
    return (int(options["k"]) if spec.top_responsive else None), kw


def work_closure(phi_path: str, part_path: str, method: str, options: dict[str, Any], null_seed: int,
                 out: Path) -> None:
    """Write ``closure.json`` (:data:`CLOSURE_FIELDS`) for the partition at ``part_path``.

    Parameters
    ----------
    phi_path : str
        The valuation φ the partition was found on (``phi.safetensors``), shape (n, n).
    part_path : str
        The partition (``partition.json``).
    method : str
        Its :data:`~hedonic_neurons.vocab.PARTITION_METHODS` name.
    options : dict
        The common options of the partition stage (``k``, ``emit``, ``m``, ``omega``,
        ``size_range``, ``sampler``, ``max_sweeps``, ``order``); the method takes the ones it declares.
    null_seed : int
        Seed of the null φ (:func:`~hedonic_neurons.game.null_phi_like`) and of the
        algorithm's own draws on it.
    out : pathlib.Path
        The unit's directory.
    """
    from ...game import closure_null_share, is_individually_stable, is_nash_stable
    from ...partition import Partition
    from ...synergy import SynergyMatrix

    phi = SynergyMatrix.load(phi_path)
    part = Partition.from_json(part_path)
    spec = vocab.PARTITION_METHODS[vocab.check("method", method)]
    k, kw = closure_options(method, options)
    row: dict[str, Any] = dict.fromkeys(CLOSURE_FIELDS)
    row.update(algorithm=method, k=k, n_players=part.n_players, null_seed=int(null_seed),
               largest_share=float(part.summary().largest_share),
               null_largest_share=float(closure_null_share(phi, method, k, seed=int(null_seed), **kw)))
    if not spec.top_responsive:
        row.update(nash_stable=bool(is_nash_stable(phi, part)), individually_stable=bool(is_individually_stable(phi, part)),
                   converged=part.meta.get("converged"), sweeps=part.meta.get("sweeps"), moves=part.meta.get("moves"))
    write_json(out / "closure.json", row)


def work_k_sweep(phi_path: str, psi_path: str | None, psi_kind: str, ks: Sequence[int], out: Path) -> None:
    """Write ``k_sweep.csv`` (:data:`K_SWEEP_COLUMNS`): exact Top Covering of φ for each ``k``.

    Parameters
    ----------
    phi_path : str
        The valuation φ (``phi.safetensors``), shape (n, n).
    psi_path : str or None
        Pairwise interactions ψ(i, j) (docs/method.md §8.1) for the pooled Pair, shape (n, n);
        ``None``: the ``pooled_pair`` column is NaN.
    psi_kind : str
        How ψ was measured (``"held-out"``, ``"in-sample"``, ``"none"``); copied into the ``psi`` column.
    ks : sequence of int
    out : pathlib.Path
    """
    import numpy as np

    from ...game import k_sweep
    from ...synergy import SynergyMatrix

    phi = SynergyMatrix.load(phi_path)
    psi = None if psi_path is None else SynergyMatrix.load(psi_path).values
    df = k_sweep(phi, list(ks), heldout_psi=psi)
    if "pooled_pair" not in df.columns:
        df["pooled_pair"] = np.nan
    df["psi"] = psi_kind if psi is not None else "none"
    df[list(K_SWEEP_COLUMNS)].to_csv(out / "k_sweep.csv", index=False)
