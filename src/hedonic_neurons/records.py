"""What capture produces and every valuation consumes: :class:`LayerRecord` and :class:`Readout`.

The record holds, for one layer and ``N`` inputs at the pooled position, everything
needed to evaluate the readout after ablating any set of players (docs/method.md §1, R1):

    y_{-S} = y - sum_{k in S} delta_k,
    delta_k = W'[:, k] * a_k - W[:, k] * a_base_k

with fixed direction matrices ``W'`` (``w_down``) and ``W`` (``w_down_base``). The same
form covers the transformer case (columns of the LoRA-merged and base down projections)
and the MNIST case (``W' = W = I``, ``a = h``, ``a_base = baseline``).

Plain NumPy, so the game core, tracking and metrics import it without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ArtifactError, InputError
from .io import load_arrays, save_arrays

__all__ = ["LayerRecord", "Readout"]

NormKind = Literal["rms", "layer", "none"]

#: The ``format`` tag in the header of a saved :class:`LayerRecord`.
RECORD_FORMAT = "hedonic-neurons/record@1"


@dataclass(frozen=True)
class Readout:
    """A scalar readout ``f(y) = w^T N(y) + b`` applied to a layer output ``y`` (docs/method.md §2).

    Parameters
    ----------
    norm : {"rms", "layer", "none"}
        ``"rms"``: ``N(y) = gamma * y / sqrt(mean(y^2) + eps)`` (LLaMA, Mistral);
        ``"layer"``: ``N(y) = gamma * (y - mean(y)) / sqrt(var(y) + eps) + beta``
        (GPT-NeoX, BERT, MNIST); ``"none"``: ``N(y) = y`` (linear in the players:
        every ablation synergy is zero, and PAS refuses it).
    weight : numpy.ndarray, shape (d,) or (C, d)
        Head weights. With shape (C, d) the record's ``target_index`` picks the row
        per input (the MNIST readout at the true label).
    bias : float or numpy.ndarray of shape (C,)
    gamma, beta : numpy.ndarray, shape (d,), optional
        Norm scale and shift (``None`` means ones / zeros).
    eps : float
        Norm epsilon.
    """

    norm: NormKind
    weight: np.ndarray
    bias: float | np.ndarray = 0.0
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.norm not in ("rms", "layer", "none"):
            raise InputError(f"norm: expected 'rms', 'layer' or 'none', got {self.norm!r}.")
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim not in (1, 2):
            raise InputError(f"weight: expected shape (d,) or (C, d), got {w.shape}.")
        d = w.shape[-1]
        for name in ("gamma", "beta"):
            v = getattr(self, name)
            if v is not None and np.asarray(v).shape != (d,):
                raise InputError(f"{name}: expected shape ({d},), got {np.asarray(v).shape}.")

    @property
    def d(self) -> int:
        return int(np.asarray(self.weight).shape[-1])

    @property
    def is_linear(self) -> bool:
        """True when ``f`` is affine in ``y`` (then every pairwise synergy is zero)."""
        return self.norm == "none"

    def head_rows(self, target_index: np.ndarray | None, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-input head weights and biases: shapes (N, d) and (N,)."""
        w = np.asarray(self.weight, dtype=np.float64)
        b = np.asarray(self.bias, dtype=np.float64)
        if w.ndim == 1:
            return np.broadcast_to(w, (n_inputs, w.shape[0])), np.broadcast_to(b.reshape(-1)[:1], (n_inputs,))
        if target_index is None:
            raise InputError("target_index: a (C, d) head needs a per-input target index, got None.")
        return w[target_index], (b[target_index] if b.ndim else np.broadcast_to(b, (n_inputs,)))

    def __call__(self, y: np.ndarray, target_index: np.ndarray | None = None) -> np.ndarray:
        """Evaluate ``f`` on rows of ``y`` (shape (N, d)) -> shape (N,). Reference implementation."""
        y = np.asarray(y, dtype=np.float64)
        d = y.shape[-1]
        gamma = np.ones(d) if self.gamma is None else np.asarray(self.gamma, np.float64)
        beta = np.zeros(d) if self.beta is None else np.asarray(self.beta, np.float64)
        if self.norm == "rms":
            z = y / np.sqrt((y**2).mean(-1, keepdims=True) + self.eps) * gamma
        elif self.norm == "layer":
            c = y - y.mean(-1, keepdims=True)
            z = c / np.sqrt((c**2).mean(-1, keepdims=True) + self.eps) * gamma + beta
        else:
            z = y
        w, b = self.head_rows(target_index, y.shape[0])
        return (z * w).sum(-1) + b

    def to_arrays(self, prefix: str = "readout.") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"{prefix}weight": np.asarray(self.weight, np.float32)}
        if np.ndim(self.bias):
            arrays[f"{prefix}bias"] = np.asarray(self.bias, np.float32)
        if self.gamma is not None:
            arrays[f"{prefix}gamma"] = np.asarray(self.gamma, np.float32)
        if self.beta is not None:
            arrays[f"{prefix}beta"] = np.asarray(self.beta, np.float32)
        info = {"norm": self.norm, "eps": self.eps, "bias": float(self.bias) if not np.ndim(self.bias) else None}
        return arrays, info

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], info: dict[str, Any], prefix: str = "readout.") -> Readout:
        bias = arrays.get(f"{prefix}bias", info.get("bias") or 0.0)
        return cls(
            norm=info["norm"],
            weight=arrays[f"{prefix}weight"],
            bias=bias,
            gamma=arrays.get(f"{prefix}gamma"),
            beta=arrays.get(f"{prefix}beta"),
            eps=float(info["eps"]),
        )


_ARRAY_FIELDS = (
    "h", "a", "a_base", "y", "w_down", "w_down_base", "w_read", "target_index", "labels",
    "delta_left", "delta_right",
)


@dataclass(frozen=True)
class LayerRecord:
    """Captured activations of one layer at the pooled position, and the fixed matrices.

    Shapes: ``N`` inputs, ``n`` players (MLP width), ``d`` model width.

    Attributes
    ----------
    layer : int
        Index of the transformer block (0-based, as in ``model.layers[layer]``).
    h : numpy.ndarray, shape (N, d)
        The MLP input (after the block's pre-norm where there is one).
    a : numpy.ndarray, shape (N, n)
        Neuron activations entering the down projection, LoRA-adapted weights.
    a_base : numpy.ndarray, shape (N, n)
        The same with the base weights on the same ``h``.
    y : numpy.ndarray, shape (N, d)
        The residual stream after the block's MLP is added (for post-norm encoders,
        the sum before the block's output LayerNorm).
    w_down : numpy.ndarray, shape (d, n)
        LoRA-merged down projection ``W'`` (player directions, (R1) of docs/method.md).
    w_down_base : numpy.ndarray, shape (d, n)
        Base down projection ``W``.
    readout : Readout
        The layer-local readout (docs/method.md §2).
    w_read : numpy.ndarray, shape (g, n, d), optional
        LoRA-adapted input projections of this layer's MLP (``g = 2``: up and gate for
        gated MLPs; ``g = 1``: the single input projection); used by tracking (§7).
    target_index : numpy.ndarray of int, shape (N,), optional
        Head row per input when ``readout.weight`` is (C, d) (MNIST: the true label).
    labels : numpy.ndarray, shape (N,), optional
        The task target per input (regression value or relevance grade), if known.
    delta_left, delta_right : numpy.ndarray, shapes (d, R) and (R, n), optional
        Low-rank factors of the LoRA update of the down projection,
        ``w_down - w_down_base = delta_left @ delta_right`` (``R`` = sum of the active
        adapters' ranks, the LoRA scaling folded into ``delta_left``). Capture fills them
        from the PEFT factors; the exact PAS uses them to get ``K1``, ``K2`` as rank-``R``
        corrections of ``K3`` (docs/method.md §3). ``None``: recovered from ``w_down - w_down_base``.
    meta : dict
        Provenance: model id, architecture, pooled position rule, dtype, version.
    """

    layer: int
    h: np.ndarray
    a: np.ndarray
    a_base: np.ndarray
    y: np.ndarray
    w_down: np.ndarray
    w_down_base: np.ndarray
    readout: Readout
    w_read: np.ndarray | None = None
    target_index: np.ndarray | None = None
    labels: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    delta_left: np.ndarray | None = None
    delta_right: np.ndarray | None = None

    def __post_init__(self) -> None:
        N, n = np.shape(self.a)
        d = np.shape(self.y)[1] if np.ndim(self.y) == 2 else -1
        expected = {
            "a": (N, n),
            "a_base": (N, n),
            "y": (N, d),
            "h": (N, np.shape(self.h)[-1] if np.ndim(self.h) == 2 else -1),
            "w_down": (d, n),
            "w_down_base": (d, n),
        }
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape or -1 in shape:
                raise InputError(f"{name}: expected shape {shape} (N={N}, n={n}, d={d}), got {got}.")
        if self.readout.d != d:
            raise InputError(f"readout: head width {self.readout.d} does not match d={d} of y.")
        if self.w_read is not None and (np.ndim(self.w_read) != 3 or np.shape(self.w_read)[1:] != (n, np.shape(self.h)[1])):
            raise InputError(f"w_read: expected shape (g, {n}, {np.shape(self.h)[1]}), got {np.shape(self.w_read)}.")
        if (self.delta_left is None) != (self.delta_right is None):
            raise InputError("delta_left, delta_right: give both low-rank factors or neither.")
        left, right = self.delta_left, self.delta_right
        if left is not None and right is not None:  # both or neither, checked above
            rank = np.shape(left)[-1] if np.ndim(left) == 2 else -1
            if np.shape(left) != (d, rank) or np.shape(right) != (rank, n):
                raise InputError(
                    f"delta_left, delta_right: expected shapes ({d}, R) and (R, {n}), got "
                    f"{np.shape(left)} and {np.shape(right)}."
                )
        if np.ndim(self.readout.weight) == 2:
            if self.target_index is None or np.shape(self.target_index) != (N,):
                raise InputError(
                    f"target_index: a (C, d) readout head needs one target per input, shape ({N},); "
                    f"got {None if self.target_index is None else np.shape(self.target_index)}."
                )

    @property
    def n_inputs(self) -> int:
        return int(np.shape(self.a)[0])

    @property
    def n_players(self) -> int:
        return int(np.shape(self.a)[1])

    @property
    def d(self) -> int:
        return int(np.shape(self.y)[1])

    def delta(self, k: int | np.ndarray) -> np.ndarray:
        """Ablation displacement(s) ``delta_k`` ((R1) of docs/method.md): shape (N, d), or (N, |k|, d) for an array."""
        idx = np.atleast_1d(np.asarray(k, dtype=np.int64))
        out = (
            self.a[:, idx, None] * self.w_down[:, idx].T[None]
            - self.a_base[:, idx, None] * self.w_down_base[:, idx].T[None]
        )
        return out[:, 0] if np.ndim(k) == 0 else out

    def ablated_readout(self, players: np.ndarray | list[int]) -> np.ndarray:
        """Reference: the readout with ``players`` ablated, ``f(y - sum delta_k)``, shape (N,)."""
        idx = np.asarray(players, dtype=np.int64).reshape(-1)
        a = self.a[:, idx].astype(np.float64)
        b = self.a_base[:, idx].astype(np.float64)
        shift = a @ self.w_down[:, idx].T.astype(np.float64) - b @ self.w_down_base[:, idx].T.astype(np.float64)
        return self.readout(self.y.astype(np.float64) - shift, self.target_index)

    def subset(self, rows: np.ndarray | slice) -> LayerRecord:
        """The same record restricted to some inputs."""
        pick = lambda v: None if v is None else np.asarray(v)[rows]  # noqa: E731
        return replace(
            self, h=self.h[rows], a=self.a[rows], a_base=self.a_base[rows], y=self.y[rows],
            target_index=pick(self.target_index), labels=pick(self.labels),
        )

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the record to one safetensors file (atomic)."""
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAY_FIELDS:
            v = getattr(self, name)
            if v is not None:
                arr = np.asarray(v)
                arrays[name] = arr if name in ("target_index",) else arr.astype(np.float32)
        r_arrays, r_info = self.readout.to_arrays()
        arrays.update(r_arrays)
        header = {"layer": self.layer, "readout": r_info, "meta": self.meta, "format": RECORD_FORMAT}
        return save_arrays(path, arrays, metadata={"header": json.dumps(header, default=str)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LayerRecord:
        """Read a record written by :meth:`save`."""
        from .io import loads_json

        arrays, metadata = load_arrays(path)
        if "header" not in metadata:
            raise ArtifactError(f"{path}: not a hedonic-neurons layer record (no header).")
        header = loads_json(metadata["header"], f"{path}: header")
        if not isinstance(header, dict) or header.get("format") != RECORD_FORMAT:
            raise ArtifactError(f"{path}: not a {RECORD_FORMAT} layer record (header format "
                                f"{header.get('format') if isinstance(header, dict) else None!r}).")
        layer = header.get("layer")
        info = header.get("readout")
        meta = header.get("meta", {})
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ArtifactError(f"{path}: header 'layer' must be a non-negative integer, got {layer!r:.40}.")
        if not isinstance(info, dict) or not isinstance(meta, dict):
            raise ArtifactError(f"{path}: header 'readout' and 'meta' must be JSON objects.")
        missing = [k for k in ("h", "a", "a_base", "y", "w_down", "w_down_base", "readout.weight") if k not in arrays]
        if missing:
            raise ArtifactError(f"{path}: record is missing tensors {missing}.")
        try:
            readout = Readout.from_arrays(arrays, info)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: malformed readout in the header ({exc!r}).") from exc
        return cls(
            layer=layer,
            h=arrays["h"], a=arrays["a"], a_base=arrays["a_base"], y=arrays["y"],
            w_down=arrays["w_down"], w_down_base=arrays["w_down_base"], readout=readout,
            w_read=arrays.get("w_read"), target_index=arrays.get("target_index"), labels=arrays.get("labels"),
            meta=meta,
            delta_left=arrays.get("delta_left"), delta_right=arrays.get("delta_right"),
        )
