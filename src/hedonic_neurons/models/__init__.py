"""The model layer: everything that imports torch, transformers or PEFT lives here.

Scalar-output transformers with unmerged PEFT LoRA on their MLPs. Supported families:
LLaMA and Mistral (gated SiLU MLP, RMSNorm), GPT-NeoX/Pythia (GELU MLP, LayerNorm,
parallel residual), BERT-family encoders (post-LayerNorm).

Submodules: :mod:`.load` (loading), :mod:`.capture` (records), :mod:`.ablation`
(revert-to-base), :mod:`.readout` (local/final readouts), :mod:`.finetune` (LoRA training).
The functions ``capture``, ``readout`` and ``finetune`` share their submodule's name, so
import them from the submodule (``from hedonic_neurons.models.capture import capture``).
Names load lazily, so ``import hedonic_neurons.models`` does not import torch until a name
that needs it is used (see ``docs/architecture.md``).
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_NAMES: dict[str, str] = {
    "SUPPORTED_FAMILIES": "arch",
    "ArchSpec": "arch",
    "architecture": "arch",
    "unwrap": "arch",
    "load_scalar_model": "load",
    "lora_target_modules": "load",
    "pooled_positions": "load",
    "save_head": "load",
    "score": "load",
    "encode_pairs": "text",
    "load_tokenizer": "text",
    "load_records": "capture",
    "collect_pooled": "capture",
    "layer_readout": "capture",
    "ablate": "ablation",
    "apply_readout": "readout",
    "local_readout": "readout",
    "final_readout": "readout",
    "FinetuneConfig": "finetune",
    "FinetuneResult": "finetune",
}

__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, globals())
