"""The gated residual MLP of App. I.1 and its seeded AdamW training.

Architecture (App. I.1, docs/method.md §8)::

    h_1     = W_in x + b_in                                    (784 -> d_model)
    h_{l+1} = h_l + W_down^(l) (SiLU(W_gate^(l) h_l) * W_up^(l) h_l),   l = 1..B
    logits  = W_out LayerNorm(h_{B+1}) + b_out

No pre-norm inside the blocks (the paper's formula has none). **Layer numbering**: the
paper lists internal layers ``h1..h5`` for a network with four gated blocks; we read
``h_1`` as the residual stream after the input projection and ``h_{l+1}`` as the output
of block ``l``, so layer ``l`` in ``1..B+1`` is the input of block ``l`` (and the input of
the final LayerNorm for ``l = B+1``). :meth:`GatedResidualMLP.forward_from` runs the rest
of the network from any ``h_l``.

Randomness stays local: initialisation and batch order use ``torch.random.fork_rng`` +
``torch.manual_seed`` and a ``torch.Generator``, never the caller's global RNG state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import ArtifactError, InputError
from ..io import atomic_path

__all__ = [
    "GatedBlock",
    "GatedMLPConfig",
    "GatedResidualMLP",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "init_model",
    "load_model",
    "save_model",
    "train_model",
]


@dataclass(frozen=True)
class GatedMLPConfig:
    """Shape of the network (App. I.1: ``d_model = 256``, four blocks)."""

    d_in: int = 784
    d_model: int = 256
    d_hidden: int = 512
    n_blocks: int = 4
    n_classes: int = 10
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("d_in", "d_model", "d_hidden", "n_blocks", "n_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected a positive integer, got {v!r}.")
        if not self.ln_eps > 0:
            raise InputError(f"ln_eps: expected > 0, got {self.ln_eps}.")

    @property
    def n_layers(self) -> int:
        """Number of internal residual layers ``h_1..h_{B+1}``."""
        return self.n_blocks + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GatedBlock(nn.Module):
    """``h -> h + W_down (SiLU(W_gate h) * W_up h)`` (bias-free, no pre-norm)."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_hidden, bias=False)
        self.w_up = nn.Linear(d_model, d_hidden, bias=False)
        self.w_down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class GatedResidualMLP(nn.Module):
    """Input projection, ``n_blocks`` gated residual blocks, final LayerNorm, linear head."""

    def __init__(self, config: GatedMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.d_in, config.d_model)
        self.blocks = nn.ModuleList([GatedBlock(config.d_model, config.d_hidden) for _ in range(config.n_blocks)])
        self.norm = nn.LayerNorm(config.d_model, eps=config.ln_eps)
        self.head = nn.Linear(config.d_model, config.n_classes)

    def _check_layer(self, layer: int) -> int:
        if not isinstance(layer, (int, np.integer)) or not 1 <= layer <= self.config.n_layers:
            raise InputError(f"layer: expected an integer in 1..{self.config.n_layers} (h_1..h_B+1), got {layer!r}.")
        return int(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (B, n_classes), for flattened images ``x`` of shape (B, 784)."""
        return self.forward_from(self.embed(x), 1)

    def residuals(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h_1, ..., h_{B+1}]``, each of shape (B, d_model)."""
        h = self.embed(x)
        out = [h]
        for block in self.blocks:
            h = block(h)
            out.append(h)
        return out

    def forward_from(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Run the rest of the network from ``h_layer`` (shape (..., d_model)) to the logits."""
        layer = self._check_layer(layer)
        for block in self.blocks[layer - 1 :]:
            h = block(h)
        return self.head(self.norm(h))

    def reading_weights(self, layer: int) -> np.ndarray:
        """What reads ``h_layer``: one weight column per residual coordinate, shape (F, d_model).

        OCA's weight geometry for the MNIST players (§3.2, docs/method.md §8; the layout of
        ``valuations.oca(record, weights=...)``: columns are the player vectors). For
        ``layer <= B`` the next block reads ``h_layer``: coordinate ``i``'s column is column
        ``i`` of ``W_up`` stacked on column ``i`` of ``W_gate`` (``F = 2 d_hidden``). For the
        last layer (``B+1``) the classifier reads it (through the final LayerNorm): column
        ``i`` of ``W_out`` (``F = n_classes``).
        """
        layer = self._check_layer(layer)
        with torch.no_grad():
            if layer <= self.config.n_blocks:
                block = self.blocks[layer - 1]
                assert isinstance(block, GatedBlock)
                w = torch.cat([block.w_up.weight, block.w_gate.weight], dim=0)
            else:
                w = self.head.weight
        return w.detach().cpu().numpy().astype(np.float64)


def init_model(config: GatedMLPConfig, seed: int) -> GatedResidualMLP:
    """A freshly initialised network (PyTorch default init) with a local seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = GatedResidualMLP(config)
    return model.eval()


@dataclass(frozen=True)
class TrainConfig:
    """AdamW training (App. I.1: 20 epochs reach 98.8% on the full MNIST).

    ``shuffle_labels=True`` trains on a seeded permutation of the training labels (the
    label-shuffled negative control of Table 9).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    shuffle_labels: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise InputError(f"epochs: expected an integer >= 0, got {self.epochs!r}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size: expected a positive integer, got {self.batch_size!r}.")
        if not self.lr > 0:
            raise InputError(f"lr: expected > 0, got {self.lr}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """A trained network and its training curve."""

    model: GatedResidualMLP
    losses: list[float] = field(default_factory=list)
    train_accuracy: float = float("nan")


def _as_tensors(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y, dtype=torch.long)
    if xt.ndim != 2 or yt.shape != (xt.shape[0],):
        raise InputError(f"x, y: expected shapes (N, F) and (N,), got {tuple(xt.shape)} and {tuple(yt.shape)}.")
    return xt, yt


def train_model(
    config: GatedMLPConfig,
    train: TrainConfig,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train a :class:`GatedResidualMLP` with AdamW and cross-entropy.

    Parameters
    ----------
    config, train
        Network shape and training hyper-parameters (``train.seed`` seeds the
        initialisation, the batch order and the label permutation).
    x : array, shape (N, 784)
    y : array of int, shape (N,)
    progress : bool
        Show a tqdm bar over epochs.
    device : str or torch.device
        Where to train; the returned model is on the CPU in eval mode.
    """
    xt, yt = _as_tensors(x, y)
    if xt.shape[1] != config.d_in:
        raise InputError(f"x: expected {config.d_in} features per row, got {xt.shape[1]}.")
    gen = torch.Generator().manual_seed(int(train.seed))
    if train.shuffle_labels:
        yt = yt[torch.randperm(yt.shape[0], generator=gen)]
    model = init_model(config, train.seed).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    losses: list[float] = []
    n = xt.shape[0]
    bar = tqdm(range(train.epochs), desc="train", disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, train.batch_size):
            idx = order[start : start + train.batch_size]
            logits = model(xt[idx].to(device))
            loss = F.cross_entropy(logits, yt[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / n)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model = model.cpu().eval()
    return TrainResult(model, losses, accuracy(model, xt, yt))


@torch.no_grad()
def accuracy(model: GatedResidualMLP, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of rows of ``x`` (N, 784) classified as ``y`` (N,)."""
    xt, yt = _as_tensors(x, y)
    correct = 0
    for start in range(0, xt.shape[0], batch_size):
        correct += int((model(xt[start : start + batch_size]).argmax(-1) == yt[start : start + batch_size]).sum())
    return correct / max(1, xt.shape[0])


def save_model(path: str | os.PathLike[str], model: GatedResidualMLP, meta: dict[str, Any] | None = None) -> Path:
    """Save weights and config to one safetensors file (atomic)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"config": json.dumps(model.config.to_dict()), "meta": json.dumps(meta or {}, default=str)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def load_model(path: str | os.PathLike[str]) -> tuple[GatedResidualMLP, dict[str, Any]]:
    """Load a network written by :func:`save_model`: ``(model in eval mode, meta)``."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: model file not found.")
    try:
        with safe_open(str(p), framework="pt") as fh:
            header = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
        config = GatedMLPConfig(**json.loads(header["config"]))
        meta = json.loads(header.get("meta", "{}"))
    except Exception as exc:
        raise ArtifactError(f"{p}: not a readable MNIST model file ({exc}).") from exc
    model = GatedResidualMLP(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{p}: weights do not match the stored config ({exc}).") from exc
    return model.eval(), meta


def layers_or_default(layers: Sequence[int] | None, config: GatedMLPConfig) -> list[int]:
    """Validate 1-based layer numbers (default: all ``1..B+1``)."""
    out = list(range(1, config.n_layers + 1)) if layers is None else [int(v) for v in layers]
    bad = [v for v in out if not 1 <= v <= config.n_layers]
    if bad:
        raise InputError(f"layers: {bad} outside 1..{config.n_layers} (h_1..h_{config.n_layers}).")
    return out
