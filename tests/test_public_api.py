"""Public-API guard: the names users import stay importable, the CLI lists every command,
and every command's --help carries an example."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from hedonic_neurons.cli.main import COMMANDS, build_parser, main

PUBLIC = {
    "hedonic_neurons": ["Partition", "SynergyMatrix", "LayerRecord", "Readout", "HedonicError", "InputError",
                        "__version__"],
    "hedonic_neurons.game": ["top_cover", "pac_top_cover", "blocking_rate", "is_core_stable", "internally_stable",
                             "top_partners", "choice_set", "utility", "preference_key", "coalition_value",
                             "TopCover", "PACTopCover", "nash_stable_partition", "is_nash_stable",
                             "is_individually_stable", "NashStable"],
    "hedonic_neurons.game.diagnostics": ["null_phi_like", "closure_null_share", "k_sweep"],
    "hedonic_neurons.vocab": ["check", "method_label", "parse_method_label", "register_partition_method"],
    "hedonic_neurons.evaluation": ["evaluate_synergy", "evaluate_alignment", "evaluate_predictivity", "evaluate_ood",
                                   "evaluate_partition"],
    "hedonic_neurons.metrics": ["pair_null_test"],
    "hedonic_neurons.metrics.nulls": ["pair_null_test", "pooled_pair", "pooled_pair_null", "size_matched_null",
                                      "size_matched_null_batch", "benjamini_hochberg"],
    "hedonic_neurons.metrics.crossrun": ["load_runs", "paper_table", "paired_tests", "write_tables"],
    "hedonic_neurons.explorer": ["write_artifacts", "read_artifacts", "build_explorer"],
    "hedonic_neurons.models.smollm2": ["fetch", "path"],
    "hedonic_neurons.models.attribution": ["neuron_attributions", "estimate_coalition_scores",
                                           "exact_coalition_scores", "coalition_scores"],
    "hedonic_neurons.metrics.ood_estimate": ["estimated_ood_drop", "verify_estimates", "stratified_coalition_sample",
                                             "metric_drops"],
    "hedonic_neurons.baselines": ["random_partition", "spherical_kmeans", "hierarchical", "matched_baselines",
                                  "RandomPartition", "SphericalKMeans", "Hierarchical"],
    "hedonic_neurons.models": ["load_scalar_model", "architecture", "score", "encode_pairs", "load_tokenizer",
                               "load_records", "ablate", "local_readout", "final_readout", "FinetuneConfig"],
    "hedonic_neurons.models.capture": ["capture", "load_records"],
    "hedonic_neurons.models.ablation": ["ablate"],
    "hedonic_neurons.valuations": ["oca", "pas", "marginals", "pas_brute_force", "null_valuation",
                                   "first_order_product"],
    "hedonic_neurons.tracking": ["interaction_mass", "track", "threshold_sweep", "sankey_figure",
                                 "save_sankey_html", "save_sankey_png", "TransitionTable"],
    "hedonic_neurons.metrics.synergy": ["coalition_synergy", "coalition_synergy_final", "pair_ratio"],
    "hedonic_neurons.metrics.ood": ["ood_drop", "ndcg_at_10"],
    "hedonic_neurons.metrics.stats": ["mean_ci", "paired_ttest"],
    "hedonic_neurons.metrics.tables": ["table_extrinsic", "table_predictivity", "table_transitions",
                                       "table_synergy", "to_markdown", "to_csv", "to_latex"],
    "hedonic_neurons.metrics.alignment": ["coalition_activations", "feature_alignment"],
    "hedonic_neurons.metrics.predictivity": ["predictivity"],
    "hedonic_neurons.ir": ["cqtr", "mean_tf_l", "letor_features", "CorpusStats", "build_offline_corpus",
                           "load_qrels", "load_run", "pairs_from_run", "pairs_from_ir_datasets"],
    "hedonic_neurons.models.finetune": ["finetune", "FinetuneConfig"],
    "hedonic_neurons.pipeline": ["load_config", "run_study", "StudyConfig"],
    "hedonic_neurons.mnist": ["run_mnist_study", "load_mnist", "digit_purity", "stroke_alignment"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_importable(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost public names {missing}"


def test_top_level_and_game_do_not_import_torch() -> None:
    code = ("import sys, hedonic_neurons, hedonic_neurons.game, hedonic_neurons.baselines, "
            "hedonic_neurons.tracking, hedonic_neurons.ir; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


TORCH_FREE = ("hedonic_neurons", "hedonic_neurons.game", "hedonic_neurons.baselines", "hedonic_neurons.partition",
              "hedonic_neurons.synergy", "hedonic_neurons.tracking", "hedonic_neurons.metrics.stats",
              "hedonic_neurons.metrics.tables", "hedonic_neurons.metrics.alignment",
              "hedonic_neurons.metrics.predictivity", "hedonic_neurons.ir", "hedonic_neurons.pipeline.config",
              "hedonic_neurons.models", "hedonic_neurons.vocab", "hedonic_neurons.game.diagnostics",
              "hedonic_neurons.metrics.nulls", "hedonic_neurons.metrics.crossrun", "hedonic_neurons.explorer",
              "hedonic_neurons.metrics.ood_estimate")


def test_numpy_layers_run_with_torch_unimportable() -> None:
    """The game core, partitions, baselines, tracking and statistics import and run with torch
    (and transformers/peft) made unimportable; so does the NumPy-only null valuation."""
    code = f"""
import sys, importlib
import numpy as np
class Block:  # a finder that refuses torch, transformers and peft (sys.modules[...] = None confuses scipy)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "peft"):
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
for name in {TORCH_FREE!r}:
    importlib.import_module(name)
from hedonic_neurons.valuations import null_valuation
from hedonic_neurons.game import top_cover
from hedonic_neurons.baselines import random_partition
phi = null_valuation(12, seed=0)
p = top_cover(phi, k=2)
assert p.n_players == 12
random_partition([len(c) for c in p.coalitions], seed=0)
assert not any(m.split(".")[0] in ("torch", "transformers", "peft") for m in sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, purpose in COMMANDS:
        assert name in out and purpose in out


@pytest.mark.parametrize("command", [name for name, _ in COMMANDS])
def test_each_command_help_has_an_example(command: str) -> None:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = sub.choices[command].format_help()
    assert "example" in text.lower() and f"hedonic {command}" in text, text[-400:]
