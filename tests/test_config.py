"""Study config: validation with clear errors, YAML/JSON round trips, packaged configs."""

from __future__ import annotations

import json

import pytest
import yaml

from hedonic_neurons.errors import ConfigError
from hedonic_neurons.pipeline.config import (
    METHODS,
    VALUATIONS,
    StudyConfig,
    config_names,
    from_dict,
    load_config,
    to_dict,
)

PAPER = [f"{m}_{t}" for m in ("llama3.1-8b", "mistral-7b", "pythia-6.9b") for t in ("cqtr", "meantfl", "relevance")]


def test_defaults_are_the_paper_hyper_parameters() -> None:
    cfg = StudyConfig()
    assert cfg.lora.r == 8 and cfg.lora.layers == (7, 14)
    assert cfg.finetune.lr == 2e-4 and cfg.finetune.batch_size == 128 and cfg.finetune.epochs == 3.0
    assert cfg.discovery.pac.m == 800_000 and cfg.discovery.pac.omega == 80_000
    assert cfg.discovery.k == 3 and cfg.discovery.pac.size_range == (2, 10)
    assert cfg.discovery.pac.epsilon == 0.1 and cfg.discovery.pac.delta == 0.1
    assert cfg.discovery.seeds == (0, 1, 2)
    assert (cfg.tracking.alpha_hi, cfg.tracking.alpha_lo) == (0.7, 0.1)


def test_yaml_and_json_round_trip(tmp_path) -> None:
    cfg = load_config("demo")
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    again = load_config(path)
    assert again == cfg
    assert from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
    assert from_dict(json.loads(cfg.to_json())) == cfg
    jpath = tmp_path / "c.json"
    jpath.write_text(cfg.to_json())
    assert load_config(jpath) == cfg
    # tuples come back as tuples, nested dataclasses as dataclasses
    assert isinstance(again.discovery.layers, tuple) and isinstance(again.discovery.pac.size_range, tuple)
    assert cfg.hash() == again.hash() and cfg.hash() != cfg.replace(**{"discovery.k": 4}).hash()


@pytest.mark.parametrize("name", [*PAPER, "demo", "tiny"])
def test_packaged_configs_load(name: str) -> None:
    assert name in config_names()
    cfg = load_config(name)
    assert from_dict(to_dict(cfg)) == cfg
    if name in PAPER:
        assert cfg.lora.layers == (7, 14) and cfg.lora.r == 8
        assert cfg.finetune.lr == 2e-4 and cfg.finetune.batch_size == 128
        assert cfg.finetune.epochs == (3.0 if name.endswith("relevance") else 0.3)
        assert cfg.discovery.pac.m == 800_000 and cfg.discovery.pac.omega == 80_000
        assert cfg.data.source == "files" and cfg.data.n_train == 500_000 and cfg.data.n_val == 5_000
        assert cfg.discovery.seeds == (0, 1, 2)


def test_unknown_key_has_did_you_mean() -> None:
    with pytest.raises(ConfigError, match=r"discovery\.seedz: unknown key\. Did you mean 'discovery\.seeds'"):
        from_dict({"discovery": {"seedz": [0]}})
    with pytest.raises(ConfigError, match=r"finetun: unknown key\. Did you mean 'finetune'"):
        from_dict({"finetun": {}})


def test_literal_errors_list_allowed_values() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"discovery": {"valuations": ["pas"]}})
    msg = str(err.value)
    assert "discovery.valuations[0]" in msg
    for v in VALUATIONS:
        assert repr(v) in msg
    with pytest.raises(ConfigError, match="task: 'ranking' is not allowed; expected one of 'cqtr', 'mean_tf_l'"):
        from_dict({"task": "ranking"})
    with pytest.raises(ConfigError, match=r"discovery\.methods") as err:
        from_dict({"discovery": {"methods": ["pac"]}})
    assert all(repr(m) in str(err.value) for m in METHODS)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"discovery": {"k": "three"}}, r"discovery\.k: expected an integer, got 'three'"),
        ({"discovery": {"k": 0}}, r"discovery\.k: expected an integer >= 1, got 0"),
        ({"discovery": {"seeds": 3}}, r"discovery\.seeds: expected a list of int"),
        ({"discovery": {"seeds": []}}, r"discovery\.seeds: expected at least one seed"),
        ({"discovery": {"pac": {"size_range": [2]}}}, r"discovery\.pac\.size_range: expected a list of 2 values"),
        ({"discovery": {"pac": {"omega": 10, "m": 5}}}, r"discovery\.pac\.omega: expected 1 <= omega <= m"),
        ({"discovery": {"pac": {"epsilon": 1.5}}}, r"discovery\.pac\.epsilon: expected a number in \(0, 1\)"),
        ({"discovery": {"layers": [3]}}, r"discovery\.layers: layers \[3\] are outside lora\.layers \[7, 14\]"),
        ({"finetune": {"lr": -1}}, r"finetune\.lr: expected a positive learning rate"),
        ({"finetune": {"enabled": "yes"}}, r"finetune\.enabled: expected true or false"),
        ({"finetune": {"enabled": False}}, r"model\.adapter: finetune\.enabled is false"),
        ({"data": {"source": "files"}}, r"data\.train: data\.source is 'files'"),
        ({"tracking": {"alpha_lo": 0.9}}, r"tracking\.alpha_lo: expected 0 <= alpha_lo <= alpha_hi"),
        ({"n_jobs": 0}, r"n_jobs: expected a positive number of workers or -1"),
        ({"model": "llama"}, r"model: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(data: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        from_dict(data)


def test_scientific_notation_strings_and_overrides() -> None:
    cfg = from_dict({"finetune": {"lr": "2e-4"}})  # YAML 1.1 reads 2e-4 as a string
    assert cfg.finetune.lr == pytest.approx(2e-4)
    cfg = load_config("demo", **{"discovery.seeds": [5], "output_dir": "/tmp/x"})
    assert cfg.discovery.seeds == (5,) and cfg.output_dir == "/tmp/x"
    with pytest.raises(ConfigError, match=r"discovery\.sedes: unknown key\. Did you mean 'discovery\.seeds'"):
        load_config("demo", **{"discovery.sedes": [1]})


def test_missing_files_and_names() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/study.yaml")
    with pytest.raises(ConfigError, match=r"config name 'dem' is not packaged\. Did you mean 'demo'"):
        load_config("dem")


def test_config_is_frozen() -> None:
    cfg = StudyConfig()
    with pytest.raises(AttributeError):
        cfg.task = "relevance"  # type: ignore[misc]


def test_evaluation_min_size_and_ood_qrels_are_validated() -> None:
    from hedonic_neurons.evaluation import EvaluationOptions

    assert from_dict({}).evaluation.min_size == EvaluationOptions().min_size  # one default for run and evaluate
    with pytest.raises(ConfigError, match=r"evaluation\.min_size"):
        from_dict({"evaluation": {"min_size": 1}})
    with pytest.raises(ConfigError, match=r"data\.ood_qrels"):
        from_dict({"task": "cqtr", "data": {"ood_qrels": "qrels.txt"}})
    assert from_dict({"task": "relevance", "data": {"ood_qrels": "q.txt"}}).data.ood_qrels == "q.txt"
