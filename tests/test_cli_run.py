"""CLI: ``hedonic run``, ``hedonic demo``, ``hedonic finetune`` (help, dry runs, config errors)."""

from __future__ import annotations

import pytest
import yaml

from hedonic_neurons.cli.main import main
from hedonic_neurons.pipeline import load_config


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse --help exits
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_top_level_help_lists_the_commands(capsys) -> None:
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for name in ("run", "demo", "finetune"):
        assert f"  {name} " in out


@pytest.mark.parametrize("command", ["run", "demo", "finetune"])
def test_command_help_has_an_example(command: str, capsys) -> None:
    code, out, _ = _run([command, "--help"], capsys)
    assert code == 0
    assert "examples:" in out and f"hedonic {command}" in out


def test_list_configs(capsys) -> None:
    code, out, _ = _run(["run", "--list-configs"], capsys)
    assert code == 0
    names = out.split()
    from hedonic_neurons.pipeline import config_names

    assert "demo" in names and "llama3.1-8b_relevance" in names and names == config_names()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys) -> None:
    out_dir = tmp_path / "run"
    # a paper config names the user's MS MARCO files and model: --dry-run checks them first
    code, out, err = _run(["run", "--config-name", "llama3.1-8b_relevance", "--out", str(out_dir), "--dry-run"],
                          capsys)
    assert code == 2 and ("data." in err or "model.base" in err) and "does not exist" in err
    code, out, _ = _run(["run", "--config-name", "llama3.1-8b_relevance", "--out", str(out_dir), "--dry-run",
                         "--set", "data.source=offline", "--set", "model.base=minilm"], capsys)
    assert code == 0
    assert "partition" in out and "to run" in out and "cached" in out
    assert "layer14/hedonic_pas" in out or "layer7/hedonic_pas" in out
    assert not out_dir.exists()
    code, out, _ = _run(["demo", "--quick", "--out", str(out_dir), "--dry-run"], capsys)
    assert code == 0 and "valuation" in out


def test_set_overrides_and_yaml_path(tmp_path, capsys) -> None:
    path = tmp_path / "study.yaml"
    load_config("tiny").to_yaml(path)
    code, out, _ = _run(["run", str(path), "--set", "discovery.seeds=[4, 5]", "--set", "n_jobs=2",
                         "--out", str(tmp_path / "r"), "--dry-run"], capsys)
    assert code == 0 and "seed4" in out and "seed5" in out and "seed0" not in out


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["run", "--config-name", "demo", "--set", "discovery.seedz=[1]", "--dry-run"],
         "discovery.seedz: unknown key. Did you mean 'discovery.seeds'?"),
        (["run", "--config-name", "demo", "--set", "task=ranking", "--dry-run"],
         "task: 'ranking' is not allowed; expected one of 'cqtr', 'mean_tf_l', 'relevance'"),
        (["run", "--config-name", "dem", "--dry-run"], "Did you mean 'demo'?"),
        (["run", "--config-name", "demo", "--set", "novalue", "--dry-run"], "--set: expected KEY=VALUE"),
        (["run"], "give a YAML path or --config-name"),
        (["run", "--config-name", "demo", "--set", "discovery.seeds=[0,", "--dry-run"],
         "--set discovery.seeds: the value '[0,' is not valid YAML"),
        (["run", "some.yaml", "--config-name", "demo", "--dry-run"], "not both"),
        (["run", "--config-name", "demo", "--set", "model.base=/no/such/model", "--dry-run"],
         "model.base: '/no/such/model' does not exist; expected a local directory"),
        (["run", "--config-name", "demo", "--set", "data.source=files", "--set", "data.train=/no/t.jsonl",
          "--set", "data.ood=/no/o.jsonl", "--dry-run"], "data.train: '/no/t.jsonl' does not exist"),
        (["finetune", "--config-name", "demo", "--set", "finetune.lr=-1"], "finetune.lr: expected a positive"),
    ],
)
def test_config_errors_exit_2_and_name_the_key(argv: list[str], pattern: str, capsys) -> None:
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert pattern in err


def test_bad_yaml_is_a_config_error(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("task: [unclosed\n")
    code, _, err = _run(["run", str(path), "--dry-run"], capsys)
    assert code == 2 and "not valid YAML/JSON" in err
    path.write_text(yaml.safe_dump({"discovery": {"methods": ["pac"]}}))
    code, _, err = _run(["run", str(path), "--dry-run"], capsys)
    assert code == 2 and "discovery.methods[0]: 'pac' is not allowed" in err
