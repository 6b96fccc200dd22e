"""The one declaration of every name (hedonic_neurons.vocab) and the places that read it."""

from __future__ import annotations

import argparse

import pytest

from hedonic_neurons import vocab
from hedonic_neurons.errors import ConfigError, InputError


@pytest.mark.parametrize("kind", ["task", "valuation", "method", "baseline", "metric", "evaluation"])
def test_unknown_name_lists_the_valid_ones(kind: str) -> None:
    with pytest.raises(ConfigError) as err:
        vocab.check(kind, "no_such_name")
    for name in vocab.names(kind):
        assert repr(name) in str(err.value)
    assert vocab.check(kind, vocab.names(kind)[0]) == vocab.names(kind)[0]
    with pytest.raises(InputError, match="where_it_was"):
        vocab.check(kind, "no_such_name", where="where_it_was", error=InputError)


def test_nash_stable_is_a_registered_method() -> None:
    assert vocab.check("method", "nash_stable") == "nash_stable"
    assert not vocab.PARTITION_METHODS["nash_stable"].top_responsive
    assert vocab.method_label("pas_exact", "nash_stable") == "hedonic_pas_nash"


def test_method_labels_round_trip_and_are_unique() -> None:
    labels = {}
    for v in vocab.VALUATIONS:
        for m in vocab.PARTITION_METHODS:
            label = vocab.method_label(v, m)
            assert vocab.parse_method_label(label) == (v, m)
            labels[label] = (v, m)
    assert len(labels) == len(vocab.VALUATIONS) * len(vocab.PARTITION_METHODS)
    assert not set(labels) & set(vocab.BASELINES)
    assert vocab.method_label("pas_exact", "pac_top_cover") == "hedonic_pas"
    assert vocab.method_label("pas_exact", "top_cover") == "hedonic_pas_topcover"
    with pytest.raises(InputError, match="hedonic_pas"):
        vocab.parse_method_label("kmeans")
    with pytest.raises(InputError, match="pas_exact"):
        vocab.method_label("pas", "top_cover")  # MNIST's old spelling is gone


def test_display_labels() -> None:
    assert vocab.display_label("hedonic_pas") == "Hedonic (PAS)"
    assert vocab.display_label("hedonic_oca_topcover") == "Hedonic (OCA, exact Top Covering)"
    assert vocab.display_label("kmeans") == "K-means"
    assert vocab.display_label("kmeans~hedonic_oca") == "K-means ~ Hedonic (OCA)"
    assert vocab.display_label("my_method") == "my_method"
    assert vocab.baseline_label("random", "hedonic_pas") == "random~hedonic_pas"
    assert vocab.model_label("minilm") == "all-MiniLM-L6-v2" and vocab.model_label("/a/b/base/") == "base"


def test_registering_a_partition_method_is_one_line_and_reaches_the_config() -> None:
    spec = vocab.PartitionMethodSpec("toy_method", "toy", "_toy", "hedonic_neurons.game:top_cover", options=("k",))
    vocab.register_partition_method(spec)
    try:
        assert vocab.check("method", "toy_method") == "toy_method"
        assert vocab.method_label("oca", "toy_method") == "hedonic_oca_toy"
        assert vocab.parse_method_label("hedonic_oca_toy") == ("oca", "toy_method")
        with pytest.raises(ConfigError, match="already registered"):
            vocab.register_partition_method(spec)
        from hedonic_neurons.valuations import null_valuation

        part = spec.run(null_valuation(8, seed=0), k=2, emit="all", seed=3)  # takes only what it declares
        assert part.n_players == 8
    finally:
        vocab.PARTITION_METHODS.pop("toy_method")


def test_config_and_cli_read_the_vocabulary() -> None:
    from hedonic_neurons.cli.evaluate import METRICS, register
    from hedonic_neurons.metrics.tables import METHOD_LABELS, METRIC_LABELS, TASK_LABELS
    from hedonic_neurons.pipeline import config

    assert config.VALUATIONS == tuple(vocab.VALUATIONS) and config.METHODS == tuple(vocab.PARTITION_METHODS)
    assert config.TASKS == tuple(vocab.TASKS) and config.BASELINES == tuple(vocab.BASELINES)
    assert config.METRICS == tuple(vocab.EVALUATIONS)
    with pytest.raises(ConfigError, match="'pas_exact'"):
        config.from_dict({"discovery": {"valuations": ["pas"]}})
    assert set(METRICS) == set(vocab.EVALUATIONS) - {"stability"}
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    ev = parser._subparsers._group_actions[0].choices["evaluate"]  # type: ignore[union-attr]
    task = next(a for a in ev._actions if a.dest == "task")
    assert tuple(task.choices) == tuple(vocab.TASKS)
    assert METHOD_LABELS["hedonic_pas"] == vocab.display_label("hedonic_pas")
    assert all(vocab.check("metric", m) for m in METRIC_LABELS)
    assert TASK_LABELS["cqtr"] == (vocab.TASKS["cqtr"].label, vocab.TASKS["cqtr"].short)


def test_stage_dispatch_rejects_unknown_names(tmp_path) -> None:
    """No silent fall-through: an unknown valuation is an error, not the null valuation."""
    from hedonic_neurons.pipeline.stages.partition import work_partition
    from hedonic_neurons.pipeline.stages.valuate import work_valuation

    with pytest.raises(ConfigError, match="not a known valuation"):
        work_valuation(str(tmp_path / "missing.safetensors"), "pas", 0, tmp_path)
    with pytest.raises(ConfigError, match="not a known method"):
        work_partition(str(tmp_path / "missing.safetensors"), "exact", {}, {}, tmp_path)


def test_mnist_study_uses_the_same_labels() -> None:
    pytest.importorskip("torch")
    from hedonic_neurons.mnist.study import (
        BASELINE_METHODS,
        HEDONIC_METHODS,
        METHOD_LABELS,
        REFERENCE,
    )

    for label, (algo, val) in HEDONIC_METHODS.items():
        assert vocab.method_label(val, algo) == label
    assert REFERENCE == "hedonic_pas" and "hedonic_pas_topcover" in HEDONIC_METHODS
    assert BASELINE_METHODS == tuple(vocab.BASELINES)
    assert all(METHOD_LABELS[m] == vocab.display_label(m) for m in METHOD_LABELS)


def test_new_layers_import_without_torch() -> None:
    """The vocabulary, the evaluation core, the plan, executor, study driver and report import with
    torch, transformers and peft unimportable (only the stages that run a model need them)."""
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft'):
            raise ImportError(name)
        return None
sys.meta_path.insert(0, Block())
import hedonic_neurons.vocab, hedonic_neurons.evaluation, hedonic_neurons.figures, hedonic_neurons.ir.splits
import hedonic_neurons.pipeline.plan, hedonic_neurons.pipeline.report, hedonic_neurons.pipeline.study
import hedonic_neurons.pipeline.executor, hedonic_neurons.metrics.tables, hedonic_neurons.models.resolve
assert not any(m.split('.')[0] in ('torch', 'transformers', 'peft') for m in sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
