"""Every name the package uses for a task, valuation, partition method, baseline or metric,
declared once with its display label and (where it dispatches) what it runs.

The config validation (:mod:`hedonic_neurons.pipeline.config`), the CLI ``choices``, the stage
dispatch of the pipeline, the MNIST study and the tables all read these registries; an
unknown name anywhere is a :class:`~hedonic_neurons.errors.ConfigError` (or ``InputError``)
that lists the valid ones (:func:`check`).

Method labels (the ``method`` column of ``results.csv``, partition metadata, file names) are
composed by :func:`method_label` from a valuation and a partition method, and parsed back by
:func:`parse_method_label`::

    method_label("pas_exact", "pac_top_cover") == "hedonic_pas"
    method_label("pas_exact", "top_cover")     == "hedonic_pas_topcover"
    method_label("oca", "top_cover")           == "hedonic_oca_topcover"

Matched baselines are labelled ``"kmeans"`` (matched to the first hedonic partition) or
``"kmeans~hedonic_oca"`` (:func:`baseline_label`).

This module imports neither torch nor the heavy layers: the dispatch callables import their
implementation when called (docs/method.md §3 for valuations, §5 for partition methods, §6
for baselines, §8 for metrics).

Adding a partition method is one registration line (see :func:`register_partition_method`),
as for the additively separable game's Nash-stable partition (docs/method.md §5.6)::

    register_partition_method(PartitionMethodSpec(
        "nash_stable", "Nash-stable ASHG", "_nash", "hedonic_neurons.game:nash_stable_partition",
        options=("max_sweeps", "order", "seed"), top_responsive=False))

    method_label("pas_exact", "nash_stable") == "hedonic_pas_nash"
    display_label("hedonic_pas_nash")        == "Hedonic (PAS, Nash-stable ASHG)"
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError, HedonicError, InputError

__all__ = [
    "BASELINES",
    "EVALUATIONS",
    "METRICS",
    "PARTITION_METHODS",
    "RESERVED_PARTITION_METHODS",
    "TASKS",
    "VALUATIONS",
    "BaselineSpec",
    "EvaluationSpec",
    "MetricSpec",
    "PartitionMethodSpec",
    "TaskSpec",
    "ValuationSpec",
    "baseline_label",
    "check",
    "display_label",
    "method_label",
    "method_order",
    "model_label",
    "names",
    "parse_method_label",
    "register_partition_method",
]


# ---------------------------------------------------------------------- specs
@dataclass(frozen=True)
class TaskSpec:
    """A scalar IR task (docs/method.md §8): ``label`` heads a table section, ``short`` a column."""

    name: str
    label: str
    short: str
    ranking: bool = False


@dataclass(frozen=True)
class ValuationSpec:
    """A pairwise valuation φ (docs/method.md §3).

    ``short`` is the valuation's part of a method label (``hedonic_<short>``); ``compute``
    takes ``(record, seed)`` and returns a :class:`~hedonic_neurons.synergy.SynergyMatrix`.
    """

    name: str
    label: str
    short: str
    compute: Callable[[Any, int], Any]


@dataclass(frozen=True)
class PartitionMethodSpec:
    """A hedonic partition algorithm (docs/method.md §5).

    Attributes
    ----------
    name : str
        Config name (``discovery.methods``).
    label : str
        Display text (appended to the valuation's, e.g. "Hedonic (PAS, exact Top Covering)").
    suffix : str
        Method-label suffix: ``hedonic_<valuation short><suffix>`` (``""`` for the paper's default).
    function : str
        ``"module:attr"`` of ``f(phi, **options) -> Partition``, imported when called.
    options : tuple of str
        Which of the common options it takes: ``k``, ``emit``, ``m``, ``omega``,
        ``size_range``, ``sampler`` (top-responsive games, docs/method.md §5.1–§5.2),
        ``max_sweeps``, ``order`` (the additively separable game, §5.6), ``seed``.
    top_responsive : bool
        True for partitions of the top-k responsive game (§4): their stability is the
        measured blocking rate ε̂ (§5.3) and ``k`` shapes them. False for the additively
        separable game (§5.6): it has no blocking rate; Nash and individual stability are
        checked instead, and ``k`` does not apply.
    """

    name: str
    label: str
    suffix: str
    function: str
    options: tuple[str, ...] = ("k", "emit")
    top_responsive: bool = True

    @property
    def seeded(self) -> bool:
        """True when the result depends on the seed (else it is computed once per layer and valuation)."""
        return "seed" in self.options

    def run(self, phi: Any, **available: Any) -> Any:
        """Call the algorithm with the options it takes from ``available``."""
        module, _, attr = self.function.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        missing = [o for o in self.options if o not in available]
        if missing:
            raise InputError(f"{self.name}: missing option(s) {missing}; it takes {list(self.options)}.")
        return fn(phi, **{o: available[o] for o in self.options})


@dataclass(frozen=True)
class BaselineSpec:
    """A clustering baseline matched to a hedonic partition (docs/method.md §6)."""

    name: str
    label: str


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the long results table (``metric`` column).

    ``higher_is_better`` is ``None`` for descriptive numbers (sizes, shares).
    """

    name: str
    label: str
    higher_is_better: bool | None
    section: str


@dataclass(frozen=True)
class EvaluationSpec:
    """A family of metrics the config turns on (``evaluation.metrics``) and the metrics it writes."""

    name: str
    label: str
    metrics: tuple[str, ...]


# ---------------------------------------------------------------------- dispatch (lazy)
def _oca(record: Any, seed: int) -> Any:
    from .valuations import oca

    return oca(record)


def _pas_exact(record: Any, seed: int) -> Any:
    from .valuations import pas

    return pas(record, method="exact")


def _pas_second_order(record: Any, seed: int) -> Any:
    from .valuations import pas

    return pas(record, method="second_order")


def _null(record: Any, seed: int) -> Any:
    from .valuations import null_valuation

    return null_valuation(record.n_players, seed)


# ---------------------------------------------------------------------- registries
TaskName = Literal["cqtr", "mean_tf_l", "relevance"]

TASKS: dict[str, TaskSpec] = {
    "cqtr": TaskSpec("cqtr", "Covered Query Term Ratio", "CQTR"),
    "mean_tf_l": TaskSpec("mean_tf_l", "Mean of Normalized Term Frequency", "Mean-TF/L"),
    "relevance": TaskSpec("relevance", "Relevance Modelling", "Relevance (RM)", ranking=True),
}

VALUATIONS: dict[str, ValuationSpec] = {
    "oca": ValuationSpec("oca", "OCA", "oca", _oca),
    "pas_exact": ValuationSpec("pas_exact", "PAS", "pas", _pas_exact),
    "pas_second_order": ValuationSpec("pas_second_order", "PAS, second order", "pas2", _pas_second_order),
    "null": ValuationSpec("null", "null", "null", _null),
}

PARTITION_METHODS: dict[str, PartitionMethodSpec] = {}

#: Names kept for methods being written elsewhere; :func:`check` explains instead of "unknown"
#: (empty today: ``nash_stable`` was reserved until it was registered below).
RESERVED_PARTITION_METHODS: dict[str, str] = {}


def register_partition_method(spec: PartitionMethodSpec) -> PartitionMethodSpec:
    """Add a partition method to :data:`PARTITION_METHODS` (configs, CLI, pipeline and tables see it).

    Raises
    ------
    ConfigError
        When the name or the label suffix is already taken.
    """
    if spec.name in PARTITION_METHODS:
        raise ConfigError(f"partition method {spec.name!r} is already registered.")
    taken = {m.suffix: m.name for m in PARTITION_METHODS.values()}
    if spec.suffix in taken:
        raise ConfigError(f"partition method {spec.name!r}: label suffix {spec.suffix!r} is taken by {taken[spec.suffix]!r}.")
    PARTITION_METHODS[spec.name] = spec
    RESERVED_PARTITION_METHODS.pop(spec.name, None)
    return spec


register_partition_method(PartitionMethodSpec(
    "pac_top_cover", "PAC-Top-Cover", "", "hedonic_neurons.game:pac_top_cover",
    options=("k", "emit", "m", "omega", "size_range", "sampler", "seed")))
register_partition_method(PartitionMethodSpec(
    "top_cover", "exact Top Covering", "_topcover", "hedonic_neurons.game:top_cover", options=("k", "emit")))
register_partition_method(PartitionMethodSpec(
    "nash_stable", "Nash-stable ASHG", "_nash", "hedonic_neurons.game:nash_stable_partition",
    options=("max_sweeps", "order", "seed"), top_responsive=False))

BASELINES: dict[str, BaselineSpec] = {
    "random": BaselineSpec("random", "Random"),
    "kmeans": BaselineSpec("kmeans", "K-means"),
    "hierarchical": BaselineSpec("hierarchical", "Hier. clustering"),
}

METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("ood_drop", "OOD Drop", True, "§8 OOD drop ΔM"),
    MetricSpec("align_r2", "Align R2", True, "§8 feature alignment"),
    MetricSpec("predictivity_r2", "R2", True, "§8 predictivity"),
    MetricSpec("pair", "Pairwise", True, "§8 synergy Pair(C)"),
    MetricSpec("ratio", "Ratio", True, "§8 synergy Ratio(C)"),
    # the evidence protocol (docs/method.md §8.5)
    MetricSpec("pair_heldout", "Pairwise (held-out)", True, "§8.5 Pair(C) on held-out inputs"),
    MetricSpec("ratio_heldout", "Ratio (held-out)", True, "§8.5 Ratio(C) on held-out inputs"),
    MetricSpec("pair_pooled", "Pairwise (pooled)", True, "§8.5 pooled Pair, discovery inputs"),
    MetricSpec("pair_pooled_heldout", "Pairwise (pooled, held-out)", True, "§8.5 pooled Pair, held-out inputs"),
    MetricSpec("pair_pooled_excess", "Pooled Pair − random (held-out)", True,
               "§8.5 pooled held-out Pair minus that of random partitions with the same sizes"),
    MetricSpec("frac_sig_pair", "Sig. Pair (frac.)", True,
               "§8.5 share of coalitions with held-out Pair above size-matched random (BH)"),
    MetricSpec("ood_drop_rel", "OOD Drop (rel.)", True, "§8.5 OOD drop relative to the all-LoRA drop"),
    MetricSpec("ood_drop_excess", "OOD Drop − random", True,
               "§8.5 mean OOD drop minus that of size-matched random coalitions"),
    MetricSpec("frac_sig_ood", "Sig. OOD (frac.)", True,
               "§8.5 share of coalitions with OOD drop above size-matched random (BH)"),
    MetricSpec("ood_metric", "OOD metric", True, "§8.5 task metric of a control model on the OOD split"),
    MetricSpec("align_excess", "Align R2 − random", True,
               "§8.5 mean alignment R² minus that of size-matched random coalitions"),
    MetricSpec("frac_sig_align", "Sig. Align (frac.)", True,
               "§8.5 share of coalitions with alignment above size-matched random (BH)"),
    MetricSpec("epsilon_hat", "ε̂", False, "§5 measured blocking rate"),
    MetricSpec("epsilon_upper", "ε upper (95%)", False, "§5 blocking-rate upper bound"),
    MetricSpec("epsilon_hat_sampler", "ε̂ (sampler's D)", False, "§5.3 blocking rate under the PAC sampler's D"),
    MetricSpec("epsilon_upper_sampler", "ε upper (sampler's D, 95%)", False, "§5.3 its upper bound"),
    MetricSpec("n_coalitions", "coalitions", None, "§5 partition shape"),
    MetricSpec("largest_share", "largest share", None, "§5 partition shape"),
    MetricSpec("null_largest_share", "largest share on null φ", None, "§5.5 closure diagnostics"),
    MetricSpec("singleton_share", "singleton share", None, "§5 partition shape"),
    # the MNIST study (App. I.6)
    MetricSpec("delta_acc", "ΔAcc (pp)", True, "App. I accuracy drop"),
    MetricSpec("purity", "Digit Purity", True, "App. I purity"),
    MetricSpec("selectivity", "Digit Selectivity", True, "App. I selectivity"),
    MetricSpec("sparsity", "Sparsity", False, "App. I sparsity"),
    MetricSpec("stroke", "Stroke", True, "App. I stroke alignment"),
    MetricSpec("loss_delta", "Loss delta", True, "App. I loss delta"),
    MetricSpec("size", "|C|", None, "App. I coalition size"),
)}

EVALUATIONS: dict[str, EvaluationSpec] = {e.name: e for e in (
    EvaluationSpec("stability", "measured stability ε̂", ("epsilon_hat", "epsilon_upper")),
    EvaluationSpec("synergy", "Pair/Ratio synergy", ("pair", "ratio")),
    EvaluationSpec("ood", "OOD drop", ("ood_drop",)),
    EvaluationSpec("alignment", "feature alignment", ("align_r2",)),
    EvaluationSpec("predictivity", "predictivity", ("predictivity_r2",)),
)}

_KINDS: dict[str, Mapping[str, Any]] = {
    "task": TASKS,
    "valuation": VALUATIONS,
    "method": PARTITION_METHODS,
    "baseline": BASELINES,
    "metric": METRICS,
    "evaluation": EVALUATIONS,
}


# ---------------------------------------------------------------------- lookups
def names(kind: str) -> tuple[str, ...]:
    """The valid names of ``kind`` (``"task"``, ``"valuation"``, ``"method"``, ``"baseline"``,
    ``"metric"``, ``"evaluation"``), in declaration order."""
    if kind not in _KINDS:
        raise InputError(f"kind: {kind!r} is not a vocabulary; expected one of {', '.join(_KINDS)}.")
    return tuple(_KINDS[kind])


def check(kind: str, name: Any, *, where: str | None = None, error: type[HedonicError] = ConfigError) -> str:
    """Return ``name`` if it is a valid ``kind``; otherwise raise ``error`` listing the valid names.

    Parameters
    ----------
    kind : str
        One of :func:`names`' kinds.
    name : str
    where : str, optional
        The argument or config key to name in the message (default: ``kind``).
    error : type
        The exception class (``ConfigError`` for configs, ``InputError`` for arguments).
    """
    valid = names(kind)
    if name in valid:
        return str(name)
    key = where or kind
    if kind == "method" and name in RESERVED_PARTITION_METHODS:
        raise error(f"{key}: {name!r} is reserved for {RESERVED_PARTITION_METHODS[name]}, which is not "
                    f"registered yet; expected one of {', '.join(map(repr, valid))}.")
    near = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise error(f"{key}: {name!r} is not a known {kind}; expected one of {', '.join(map(repr, valid))}.{hint}")


def method_label(valuation: str, method: str) -> str:
    """Label of a hedonic partition: ``hedonic_<valuation short><method suffix>``.

    >>> method_label("pas_exact", "pac_top_cover"), method_label("oca", "top_cover")
    ('hedonic_pas', 'hedonic_oca_topcover')
    """
    v = VALUATIONS[check("valuation", valuation, error=InputError)]
    m = PARTITION_METHODS[check("method", method, error=InputError)]
    return f"hedonic_{v.short}{m.suffix}"


def parse_method_label(label: str) -> tuple[str, str]:
    """``(valuation, method)`` of a hedonic label made by :func:`method_label`.

    Raises
    ------
    InputError
        When ``label`` is not a hedonic label (baselines included), listing the valid ones.
    """
    for v in VALUATIONS:
        for m in PARTITION_METHODS:
            if method_label(v, m) == label:
                return v, m
    valid = [method_label(v, m) for v in VALUATIONS for m in PARTITION_METHODS]
    raise InputError(f"label: {label!r} is not a hedonic method label; expected one of {', '.join(valid)}.")


def baseline_label(baseline: str, matched_to: str | None = None) -> str:
    """``"kmeans"`` (matched to the first hedonic partition) or ``"kmeans~hedonic_oca"``."""
    check("baseline", baseline, error=InputError)
    return baseline if matched_to is None else f"{baseline}~{matched_to}"


def display_label(label: str) -> str:
    """Human text of a method label for the tables: ``"Hedonic (PAS)"``, ``"K-means"``,
    ``"Hedonic (OCA, exact Top Covering)"``, ``"K-means ~ Hedonic (OCA)"``; other labels unchanged."""
    base, sep, ref = label.partition("~")
    if base in BASELINES:
        text = BASELINES[base].label
        return f"{text} ~ {display_label(ref)}" if sep else text
    try:
        v, m = parse_method_label(label)
    except InputError:
        return label
    extra = "" if PARTITION_METHODS[m].suffix == "" else f", {PARTITION_METHODS[m].label}"
    return f"Hedonic ({VALUATIONS[v].label}{extra})"


def model_label(base: str) -> str:
    """Short model name of the tables: the last component of a hub id or path
    (``"minilm"``, the packaged demo model, is ``"all-MiniLM-L6-v2"``)."""
    return {"minilm": "all-MiniLM-L6-v2", "smollm2": "SmolLM2-135M-Instruct"}.get(base, str(base).rstrip("/").split("/")[-1])


def method_order() -> list[str]:
    """Default row order of the tables (the paper's): baselines, then hedonic OCA, PAS, ... labels."""
    out = list(BASELINES)
    for m in PARTITION_METHODS:
        out += [method_label(v, m) for v in VALUATIONS]
    return out
