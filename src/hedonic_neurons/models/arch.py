"""Architecture descriptions: where the MLP, its projections, norms and head live (docs/method.md §1-§2).

One :class:`ArchSpec` per supported family tells capture, ablation and the readouts
which sub-modules to hook and which parameters to read:

========== ======= ======= =========== ========== ===================================
family     MLP     norm    residual    pooling    module paths (inside the backbone)
========== ======= ======= =========== ========== ===================================
llama      gated   RMS     pre-norm    last token ``layers.i.mlp.{gate,up,down}_proj``
mistral    gated   RMS     pre-norm    last token ``layers.i.mlp.{gate,up,down}_proj``
gpt_neox   GELU    Layer   pre-norm,   last token ``layers.i.mlp.dense_{h_to_4h,4h_to_h}``
                           parallel
bert       GELU    Layer   post-norm   CLS        ``encoder.layer.i.{intermediate,output}.dense``
========== ======= ======= =========== ========== ===================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import UnsupportedModelError

__all__ = ["SUPPORTED_FAMILIES", "ArchSpec", "architecture", "spec_for_model_type", "unwrap"]

SUPPORTED_FAMILIES: tuple[str, ...] = ("llama", "mistral", "gpt_neox", "bert")


@dataclass(frozen=True)
class ArchSpec:
    """Where the parts of one architecture family live, as attribute paths.

    Paths are dotted attribute names: ``backbone`` relative to the transformers model
    with the scalar head, ``layers`` relative to the backbone, the MLP parts relative to
    one block, ``head`` and ``final_norm`` relative to the head model / backbone.

    Attributes
    ----------
    family : str
        One of :data:`SUPPORTED_FAMILIES`.
    gated : bool
        ``a = act(W_gate h) * (W_up h)`` (True) or ``a = act(W_in h + b_in)`` (False).
    norm : {"rms", "layer"}
        Kind of the normalisation the local readout applies (docs/method.md §2).
    post_norm : bool
        Post-LayerNorm encoder (BERT): ``y`` is the sum before the block's output
        LayerNorm and the local readout applies that LayerNorm.
    parallel_residual : bool
        GPT-NeoX parallel residual: ``y = x + attn(ln1 x) + mlp(ln2 x)``.
    pooling : {"last", "cls"}
        Pooled position: last non-pad token (decoders) or first non-pad token (CLS).
    backbone, layers, mlp_input, in_proj, down_proj, act, head, final_norm, block_norm
        Attribute paths (see above). ``in_proj`` lists ``(up, gate)`` for gated MLPs
        and ``(in,)`` otherwise; ``block_norm`` is the block's output LayerNorm of a
        post-norm encoder (``None`` for pre-norm decoders).
    """

    family: str
    gated: bool
    norm: Literal["rms", "layer"]
    post_norm: bool
    parallel_residual: bool
    pooling: Literal["last", "cls"]
    backbone: str
    layers: str
    mlp_input: str
    in_proj: tuple[str, ...]
    down_proj: str
    act: str
    head: str
    final_norm: str | None
    block_norm: str | None
    n_layers: int
    d_model: int
    d_ff: int

    # ------------------------------------------------------------ accessors
    def backbone_module(self, model: Any) -> torch.nn.Module:
        """The transformer backbone (``LlamaModel``, ``GPTNeoXModel``, ``BertModel``)."""
        return _get(unwrap(model), self.backbone)

    def layer_modules(self, model: Any) -> torch.nn.ModuleList:
        """The list of blocks."""
        return _get(self.backbone_module(model), self.layers)

    def block(self, model: Any, layer: int) -> torch.nn.Module:
        """Block ``layer`` (0-based); raises ``IndexError`` with the valid range."""
        blocks = self.layer_modules(model)
        if not 0 <= int(layer) < len(blocks):
            raise IndexError(f"layer: expected 0 <= layer < {len(blocks)}, got {layer}.")
        return blocks[int(layer)]

    def sub(self, model: Any, layer: int, path: str) -> Any:
        """An attribute of block ``layer`` by dotted path."""
        return _get(self.block(model, layer), path)

    def head_module(self, model: Any) -> torch.nn.Linear:
        """The scalar head ``Linear(d, 1)``; unwraps PEFT ``modules_to_save`` wrappers."""
        head = _get(unwrap(model), self.head)
        inner = getattr(head, "modules_to_save", None)
        if inner is not None:  # peft ModulesToSaveWrapper: the trainable copy is the one in use
            name = next(iter(getattr(head, "active_adapters", None) or inner.keys()))
            head = inner[name]
        return head

    def readout_norm_module(self, model: Any, layer: int) -> torch.nn.Module:
        """The norm the local readout applies to layer ``layer``'s output (docs/method.md §2)."""
        if self.post_norm:
            assert self.block_norm is not None
            return self.sub(model, layer, self.block_norm)
        assert self.final_norm is not None
        return _get(self.backbone_module(model), self.final_norm)

    def module_names(self, layer: int) -> dict[str, str]:
        """Fully qualified names (inside the head model) of the MLP linears of ``layer``."""
        prefix = f"{self.backbone}.{self.layers}.{int(layer)}"
        names = {p.split(".")[-1]: f"{prefix}.{p}" for p in self.in_proj}
        names["down"] = f"{prefix}.{self.down_proj}"
        return names


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def unwrap(model: Any) -> torch.nn.Module:
    """Peel ``peft.PeftModel`` / ``LoraModel`` wrappers off ``model``."""
    seen = 0
    while seen < 4:
        seen += 1
        cls = type(model).__name__
        if cls.startswith("Peft") and hasattr(model, "base_model"):
            model = model.base_model
        elif cls in ("LoraModel",) and hasattr(model, "model"):
            model = model.model
        else:
            break
    return model


_TABLE: dict[str, dict[str, Any]] = {
    "llama": dict(
        gated=True, norm="rms", post_norm=False, parallel_residual=False, pooling="last",
        backbone="model", layers="layers", mlp_input="mlp", in_proj=("mlp.up_proj", "mlp.gate_proj"),
        down_proj="mlp.down_proj", act="mlp.act_fn", head="score", final_norm="norm", block_norm=None,
    ),
    "gpt_neox": dict(
        gated=False, norm="layer", post_norm=False, parallel_residual=False, pooling="last",
        backbone="gpt_neox", layers="layers", mlp_input="mlp", in_proj=("mlp.dense_h_to_4h",),
        down_proj="mlp.dense_4h_to_h", act="mlp.act", head="score", final_norm="final_layer_norm",
        block_norm=None,
    ),
    "bert": dict(
        gated=False, norm="layer", post_norm=True, parallel_residual=False, pooling="cls",
        backbone="bert", layers="encoder.layer", mlp_input="intermediate", in_proj=("intermediate.dense",),
        down_proj="output.dense", act="intermediate.intermediate_act_fn", head="score",
        final_norm=None, block_norm="output.LayerNorm",
    ),
}
_TABLE["mistral"] = dict(_TABLE["llama"])


def spec_for_model_type(model_type: str, config: Any) -> ArchSpec:
    """The :class:`ArchSpec` of a transformers ``config.model_type``.

    Raises
    ------
    UnsupportedModelError
        For any family outside :data:`SUPPORTED_FAMILIES`.
    """
    family = {"gptneox": "gpt_neox"}.get(model_type, model_type)
    if family not in _TABLE:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported families: "
            f"{', '.join(SUPPORTED_FAMILIES)} (LLaMA and Mistral gated SiLU MLPs with RMSNorm, "
            "GPT-NeoX/Pythia GELU MLPs with LayerNorm, BERT-family post-LayerNorm encoders)."
        )
    row = dict(_TABLE[family])
    if family == "gpt_neox":
        row["parallel_residual"] = bool(getattr(config, "use_parallel_residual", True))
    return ArchSpec(
        family=family, n_layers=int(config.num_hidden_layers), d_model=int(config.hidden_size),
        d_ff=int(config.intermediate_size), **row,
    )


def architecture(model: Any) -> ArchSpec:
    """Describe a scalar model built by :func:`~hedonic_neurons.models.load_scalar_model`.

    Parameters
    ----------
    model : torch.nn.Module
        A ``peft.PeftModel`` or a transformers model with a scalar head.

    Returns
    -------
    ArchSpec

    Raises
    ------
    UnsupportedModelError
        If the model has no ``config.model_type`` of a supported family or lacks the
        scalar head.
    """
    inner = unwrap(model)
    config = getattr(inner, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnsupportedModelError(
            f"model: expected a transformers model of a supported family ({', '.join(SUPPORTED_FAMILIES)}), "
            f"got {type(model).__name__} without a config.model_type."
        )
    spec = spec_for_model_type(model_type, config)
    if not hasattr(inner, spec.backbone) or not hasattr(inner, spec.head):
        raise UnsupportedModelError(
            f"model: a {type(inner).__name__} has no '{spec.backbone}' backbone with a '{spec.head}' scalar head; "
            "build it with hedonic_neurons.models.load_scalar_model."
        )
    return spec
