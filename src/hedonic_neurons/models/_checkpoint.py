"""Persistence of the fine-tuning loop (:func:`hedonic_neurons.models.finetune.finetune`).

Resumable checkpoints (tensors in safetensors, scalars in JSON; no pickle), the training log
and the final adapter in PEFT's format.

Private; :mod:`hedonic_neurons.models.finetune` re-exports :func:`save_adapter`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, InputError
from ..io import atomic_write, read_json, write_json
from ..provenance import provenance


# ---------------------------------------------------------------------- checkpoints
def _save_checkpoint(directory: Path, step: int, trainable: dict[str, Any], optimizer: Any,
                     scheduler: Any, extra: dict[str, Any]) -> Path:
    """Atomic checkpoint: tensors in safetensors, scalars in JSON (no pickle)."""
    import torch
    from safetensors.torch import save_file

    final = directory / f"step-{step:07d}"
    tmp = directory / f".tmp-step-{step:07d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
    names = list(trainable)
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_scalars: dict[str, dict[str, Any]] = {}
    for idx, name in enumerate(names):
        st = optimizer.state.get(trainable[name], {})
        scal: dict[str, Any] = {}
        for k, v in st.items():
            if torch.is_tensor(v) and v.ndim > 0:
                opt_tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scal[k] = float(v.item() if torch.is_tensor(v) else v)
        opt_scalars[str(idx)] = scal
    save_file(opt_tensors or {"_empty": torch.zeros(1)}, str(tmp / "optimizer.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    write_json(tmp / "state.json", {
        "step": step, "names": names, "optimizer_scalars": opt_scalars,
        "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
        "scheduler": scheduler.state_dict(), **extra,
    })
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json(directory / "latest.json", {"step": step, "path": final.name})
    for old in sorted(directory.glob("step-*"))[:-2]:  # keep the last two
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(directory: Path, trainable: dict[str, Any], optimizer: Any, scheduler: Any) -> dict[str, Any] | None:
    """Restore the latest checkpoint in place; return its ``state.json`` (or None)."""
    import torch
    from safetensors.torch import load_file

    latest = directory / "latest.json"
    if not latest.is_file():
        return None
    info = read_json(latest)
    ck = directory / info["path"]
    if not (ck / "state.json").is_file():
        raise ArtifactError(f"{ck}: checkpoint named by latest.json is incomplete (no state.json).")
    state = read_json(ck / "state.json")
    if state["names"] != list(trainable):
        raise ArtifactError(
            f"{ck}: checkpoint parameters do not match the model's trainable parameters "
            f"({len(state['names'])} vs {len(trainable)}); was the LoRA config changed?"
        )
    tensors = load_file(str(ck / "trainable.safetensors"))
    with torch.no_grad():
        for name, p in trainable.items():
            p.copy_(tensors[name].to(p.device, p.dtype))
    opt_t = load_file(str(ck / "optimizer.safetensors"))
    for idx, name in enumerate(state["names"]):
        p = trainable[name]
        st: dict[str, Any] = {}
        for k, v in state["optimizer_scalars"].get(str(idx), {}).items():
            st[k] = torch.tensor(v) if k == "step" else v
        for key, t in opt_t.items():
            i, _, k = key.partition(".")
            if i == str(idx):
                st[k] = t.to(p.device)
        if st:
            optimizer.state[p] = st
    if len(state["param_groups"]) != len(optimizer.param_groups):
        raise ArtifactError(
            f"{ck}: checkpoint has {len(state['param_groups'])} optimizer parameter group(s), the optimizer "
            f"{len(optimizer.param_groups)}; it was written by another version. Delete {directory} to start over."
        )
    for g, saved in zip(optimizer.param_groups, state["param_groups"]):
        g.update(saved)
    scheduler.load_state_dict(state["scheduler"])
    rng = load_file(str(ck / "rng.safetensors"))["torch_rng"]
    torch.set_rng_state(rng.to(torch.uint8))
    return state


def _log(path: Path, history: list[dict[str, Any]], rec: dict[str, Any]) -> None:
    history.append(rec)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def save_adapter(model: Any, trainable: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Save the adapter in PEFT's format (``save_pretrained``), atomically.

    The head is in the adapter's ``modules_to_save`` (see
    :func:`hedonic_neurons.models.load_scalar_model`), so PEFT writes it with the LoRA
    factors; :func:`hedonic_neurons.models.save_head` also writes it as
    ``head.safetensors`` for tools that read the head alone.
    """
    from peft import PeftModel

    directory = Path(directory)
    peft_model = model if isinstance(model, PeftModel) else next(
        (m for m in model.modules() if isinstance(m, PeftModel)), None)
    if peft_model is None:
        raise InputError("model: no peft.PeftModel inside; cannot save the adapter in PEFT format.")
    tmp = directory.with_name(f".{directory.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    peft_model.save_pretrained(str(tmp))
    try:
        from . import save_head

        save_head(peft_model, tmp)
    except ImportError:  # pragma: no cover - the model side always ships save_head
        pass
    head = sorted(k for k in trainable if "lora_" not in k)
    with atomic_write(tmp / "hedonic_adapter.json") as fh:
        fh.write(json.dumps({"head_parameters": head, **provenance()}, indent=2) + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory
