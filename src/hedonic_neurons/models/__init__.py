"""The model side: scalar-output transformers with unmerged PEFT LoRA on their MLPs.

Supported families: LLaMA and Mistral (gated SiLU MLP, RMSNorm), GPT-NeoX/Pythia (GELU
MLP, LayerNorm, parallel residual), BERT-family encoders (post-LayerNorm).
"""

from __future__ import annotations

from .arch import SUPPORTED_FAMILIES, ArchSpec, architecture, unwrap
from .load import load_scalar_model, lora_target_modules, pooled_positions, save_head, score
from .text import encode_pairs

__all__ = [
    "SUPPORTED_FAMILIES",
    "ArchSpec",
    "architecture",
    "encode_pairs",
    "load_scalar_model",
    "lora_target_modules",
    "pooled_positions",
    "save_head",
    "score",
    "unwrap",
]
