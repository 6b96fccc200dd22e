"""The MNIST study of App. I end to end: train, record, valuate, partition, measure.

Per seed and *setting* — ``"trained"`` (the network of App. I.1), ``"random_init"`` (the
same network untrained) and ``"shuffled"`` (trained on permuted labels; the two negative
controls of Table 9):

1. train (or initialise) the gated residual MLP (:mod:`.model`);
2. per layer ``h_l``: build the :class:`~hedonic_neurons.records.LayerRecord` on the test
   images (:func:`.players.layer_record`), the OCA matrix (weights = the next reader's
   columns, :meth:`.model.GatedResidualMLP.reading_weights`), the exact PAS matrix, the
   exact marginals ``psi(i)`` and the loss deltas ``Delta_i`` (App. I.3);
3. partitions: PAC-Top-Cover on PAS and on OCA (the paper's Hedonic-PAS / Hedonic-OCA,
   App. I.4), exact Top Covering on both, the additively separable game's Nash-stable
   partition on both (docs/method.md §5.6), and the three baselines matched to Hedonic-PAS
   (App. I.5);
4. per coalition: ΔAcc, Pair, Ratio, purity, selectivity, sparsity, stroke alignment
   (App. I.6; :mod:`.metrics`).

The controls are run on ``control_layer`` (h3) with Hedonic-PAS and the hierarchical
baseline only. Every artifact is written atomically and reused on a re-run with the same
output directory (models, records, φ, partitions, per-layer metric tables). Artifacts are
keyed by the config hash of what produced them, so a changed config recomputes.

Output layout::

    out/config.json
    out/seed{s}/{setting}/model.safetensors
    out/seed{s}/{setting}/h{l}/record.safetensors          LayerRecord
    out/seed{s}/{setting}/h{l}/phi_{oca,pas}.safetensors   SynergyMatrix
    out/seed{s}/{setting}/h{l}/players.safetensors         psi (marginals), loss_delta
    out/seed{s}/{setting}/h{l}/partitions/{method}.json    Partition
    out/seed{s}/{setting}/h{l}/coalitions.csv              one row per coalition
    out/coalitions.csv, out/results_long.csv               all rows; long format
    out/models.csv, out/timings.csv                        accuracies; seconds per stage
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import vocab
from ..errors import ArtifactError, ConfigError
from ..io import atomic_write, load_arrays, read_json, save_arrays, write_json
from ..partition import Partition
from ..provenance import config_hash, provenance
from ..records import LayerRecord
from .coalitions import METRIC_COLUMNS, coalition_metrics
from .data import MnistSplit, load_mnist
from .metrics import (
    template_scale,
)
from .model import (
    GatedMLPConfig,
    GatedResidualMLP,
    TrainConfig,
    accuracy,
    init_model,
    load_model,
    save_model,
    train_model,
)
from .players import (
    baseline_vector,
    layer_activations,
    layer_record,
    loss_deltas,
)

__all__ = [
    "HEDONIC_METHODS",
    "METHOD_LABELS",
    "MnistStudyConfig",
    "MnistStudyResult",
    "SETTINGS",
    "coalition_metrics",
    "run_mnist_study",
]

SETTINGS: tuple[str, ...] = ("trained", "random_init", "shuffled")
#: method label -> (partition method, valuation), labels composed by :func:`hedonic_neurons.vocab.method_label`
#: (``hedonic_pas`` = PAC-Top-Cover on exact PAS, ``hedonic_pas_topcover`` = exact Top Covering on it).
HEDONIC_METHODS: dict[str, tuple[str, str]] = {
    vocab.method_label(val, algo): (algo, val)
    for algo, val in (("pac_top_cover", "pas_exact"), ("pac_top_cover", "oca"), ("top_cover", "pas_exact"),
                      ("top_cover", "oca"), ("nash_stable", "pas_exact"), ("nash_stable", "oca"))
}
BASELINE_METHODS: tuple[str, ...] = tuple(vocab.BASELINES)
#: The hedonic partition the baselines are matched to (App. I.5).
REFERENCE = vocab.method_label("pas_exact", "pac_top_cover")
#: method label -> display label (:func:`hedonic_neurons.vocab.display_label`), in the tables' row order.
METHOD_LABELS: dict[str, str] = {m: vocab.display_label(m) for m in (*BASELINE_METHODS, *HEDONIC_METHODS)}


@dataclass(frozen=True)
class MnistStudyConfig:
    """Everything that determines the study's numbers (round-trips through JSON).

    Defaults follow App. I: four gated blocks on a 256-d residual stream, AdamW, k = 3,
    coalition sizes 2..10, m = 8e4, omega = 8e3, top-K = 128, layers h2-h4, controls on h3.
    Layers are 1-based: ``h_1`` is the stream after the input projection, ``h_{l+1}`` the
    output of block ``l`` (see :mod:`.model`).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    layers: tuple[int, ...] = (2, 3, 4)
    control_layer: int = 3
    controls: bool = True
    exact_top_cover: bool = True
    idx_dir: str | None = None
    split_seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    model: GatedMLPConfig = field(default_factory=GatedMLPConfig)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-2
    baseline: str = "zero"
    k: int = 3
    size_range: tuple[int, int] = (2, 10)
    m: int = 80_000
    omega: int = 8_000
    top_k: int = 128
    grid_images: int = 64
    grid_coalitions: int = 4

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds: expected at least one seed, got none.")
        n_layers = self.model.n_layers
        bad = [v for v in (*self.layers, self.control_layer) if not 1 <= int(v) <= n_layers]
        if bad:
            raise ConfigError(f"layers/control_layer: {bad} outside 1..{n_layers} (h_1..h_{n_layers}).")
        if self.baseline not in ("zero", "mean"):
            raise ConfigError(f"baseline: expected 'zero' or 'mean', got {self.baseline!r}.")
        if self.k < 1 or self.top_k < 1 or self.m < 1 or self.omega < 1:
            raise ConfigError(f"k, top_k, m, omega: expected positive integers, got {self.k}, {self.top_k}, {self.m}, {self.omega}.")
        lo, hi = self.size_range
        if not 1 <= lo <= hi:
            raise ConfigError(f"size_range: expected 1 <= k_min <= k_max, got {self.size_range}.")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "layers", tuple(int(v) for v in self.layers))
        object.__setattr__(self, "size_range", (int(lo), int(hi)))

    @classmethod
    def quick(cls, **overrides: Any) -> MnistStudyConfig:
        """A few-minute configuration: one seed, 5 epochs (the game keeps the paper's m and omega,
        PAC-Top-Cover takes well under a second on 256 players)."""
        base: dict[str, Any] = {"seeds": (0,), "epochs": 5}
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MnistStudyConfig:
        data = dict(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"mnist config: unknown keys {sorted(unknown)}.")
        if isinstance(data.get("model"), dict):
            data["model"] = GatedMLPConfig(**data["model"])
        for key in ("seeds", "layers", "size_range"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def train_config(self, seed: int, setting: str) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            seed=seed, shuffle_labels=setting == "shuffled",
        )

    # hashes of the inputs of each artifact (a change recomputes only what depends on it)
    def _model_key(self) -> str:
        return config_hash({k: self.to_dict()[k] for k in ("idx_dir", "split_seed", "n_train", "model", "epochs",
                                                          "batch_size", "lr", "weight_decay")})

    def _record_key(self) -> str:
        return config_hash([self._model_key(), self.n_test, self.baseline])

    def _partition_key(self) -> str:
        return config_hash([self._record_key(), self.k, self.size_range, self.m, self.omega])


@dataclass(frozen=True)
class MnistStudyResult:
    """What :func:`run_mnist_study` produced."""

    out_dir: Path
    coalitions: pd.DataFrame
    long: pd.DataFrame
    models: pd.DataFrame
    seconds: float


# ---------------------------------------------------------------------------- artifacts
def _load_or_train(path: Path, cfg: MnistStudyConfig, data: MnistSplit, seed: int, setting: str,
                   progress: bool) -> tuple[GatedResidualMLP, dict[str, Any]]:
    key = cfg._model_key()
    if path.is_file():
        try:
            model, meta = load_model(path)
            if meta.get("key") == key:
                return model, meta
        except ArtifactError:
            pass
    tc = cfg.train_config(seed, setting)
    if setting == "random_init":
        model, losses = init_model(cfg.model, seed), []
    else:
        result = train_model(cfg.model, tc, data.x_train, data.y_train, progress=progress)
        model, losses = result.model, result.losses
    meta = {
        "key": key, "seed": seed, "setting": setting, "train": tc.to_dict(), "losses": losses,
        "test_accuracy": accuracy(model, data.x_test, data.y_test), "data": data.source, **provenance(),
    }
    save_model(path, model, meta)
    return model, meta


def _valuations(layer_dir: Path, record: LayerRecord, model: GatedResidualMLP, need_oca: bool, key: str,
                progress: bool) -> dict[str, np.ndarray]:
    """φ_PAS, φ_OCA (optional), psi and loss deltas for one layer, cached as safetensors."""
    from .. import valuations
    from ..synergy import SynergyMatrix

    out: dict[str, np.ndarray] = {}
    pas_path = layer_dir / "phi_pas.safetensors"
    if _fresh(pas_path, key):
        out["pas_exact"] = SynergyMatrix.load(pas_path).values
    else:
        sm = valuations.pas(record, method="exact", progress=progress)
        sm = _with_key(sm, key)
        sm.save(pas_path)
        out["pas_exact"] = np.asarray(sm.values)
    if need_oca:
        oca_path = layer_dir / "phi_oca.safetensors"
        if _fresh(oca_path, key):
            out["oca"] = SynergyMatrix.load(oca_path).values
        else:
            sm = valuations.oca(record, weights=model.reading_weights(record.layer))
            sm = _with_key(sm, key)
            sm.save(oca_path)
            out["oca"] = np.asarray(sm.values)
    players_path = layer_dir / "players.safetensors"
    arrays: dict[str, np.ndarray] = {}
    if players_path.is_file():
        try:
            arrays, meta = load_arrays(players_path)
            if meta.get("key") != key:
                arrays = {}
        except ArtifactError:
            arrays = {}
    if not arrays:
        psi = np.asarray(valuations.marginals(record), dtype=np.float64)
        digits = np.asarray(record.target_index, dtype=np.int64)
        deltas = loss_deltas(model, record.a, digits, record.layer,
                             np.asarray(record.a_base[0]), progress=progress)
        arrays = {"psi": psi, "loss_delta": deltas}
        save_arrays(players_path, arrays, metadata={"key": key, "header": json.dumps(provenance())})
    out.update(arrays)
    return out


def _fresh(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        _, meta = load_arrays(path)
    except ArtifactError:
        return False
    return key in meta.get("meta", "") or meta.get("key") == key


def _with_key(sm: Any, key: str) -> Any:
    return replace(sm, meta={**dict(sm.meta), "mnist_key": key})


def _partitions(layer_dir: Path, phis: dict[str, np.ndarray], profiles: np.ndarray, cfg: MnistStudyConfig,
                seed: int, methods: Sequence[str], key: str) -> dict[str, Partition]:
    """Hedonic partitions and matched baselines for one layer, cached as JSON."""
    from .. import baselines

    out: dict[str, Partition] = {}
    pdir = layer_dir / "partitions"

    def cached(name: str) -> Partition | None:
        p = pdir / f"{name}.json"
        if p.is_file():
            try:
                part = Partition.from_json(p)
            except ArtifactError:
                return None
            if part.meta.get("mnist_key") == key:
                return part
        return None

    for name in methods:
        if name not in HEDONIC_METHODS:
            continue
        part = cached(name)
        if part is None:
            algo, val = HEDONIC_METHODS[name]
            t0 = time.perf_counter()
            options = {"k": cfg.k, "emit": "smallest", "m": cfg.m, "omega": cfg.omega, "size_range": cfg.size_range,
                       "sampler": "uniform", "seed": seed, "max_sweeps": 200, "order": "random"}
            part = vocab.PARTITION_METHODS[algo].run(phis[val], **options)
            part = part.with_meta(mnist_key=key, mnist_method=name, label=name, valuation=val, method=algo,
                                  seconds=time.perf_counter() - t0, summary=part.summary().to_dict())
            part.to_json(pdir / f"{name}.json")
        out[name] = part
    wanted = [b for b in BASELINE_METHODS if b in methods]
    if wanted:
        parts = {b: cached(b) for b in wanted}
        if any(p is None for p in parts.values()):
            made = baselines.matched_baselines(out[REFERENCE], profiles, seed)
            for b in wanted:
                part = made[b].with_meta(mnist_key=key, mnist_method=b, label=b, matched_to=REFERENCE,
                                         summary=made[b].summary().to_dict())
                part.to_json(pdir / f"{b}.json")
                parts[b] = part
        out.update({b: p for b, p in parts.items() if p is not None})
    return out


def run_mnist_study(cfg: MnistStudyConfig, out_dir: str | Path, *, progress: bool = True,
                    data: MnistSplit | None = None) -> MnistStudyResult:
    """Run (or resume) the whole study and write every artifact under ``out_dir``.

    Parameters
    ----------
    cfg : MnistStudyConfig
    out_dir : path-like
    progress : bool
        tqdm bars.
    data : MnistSplit, optional
        Overrides the data source (tests pass a small slice).

    Returns
    -------
    MnistStudyResult
        Per-coalition table, long results, per-model accuracies, wall time. Build the tables
        and the report with :func:`hedonic_neurons.mnist.report.write_report`.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"config": cfg.to_dict(), **provenance()})
    if data is None:
        data = load_mnist(cfg.idx_dir, split_seed=cfg.split_seed)
    if cfg.n_train is not None or cfg.n_test is not None:
        data = data.head(cfg.n_train, cfg.n_test)
    x_te, y_te = data.x_test, data.y_test
    stroke_scale = template_scale(x_te)
    record_key, part_key = cfg._record_key(), cfg._partition_key()
    frames: list[pd.DataFrame] = []
    model_rows: list[dict[str, Any]] = []
    jobs: list[tuple[int, str, int, list[str]]] = []
    hedonic = [m for m, (algo, _) in HEDONIC_METHODS.items() if cfg.exact_top_cover or algo != "top_cover"]
    main_methods = [*hedonic, *BASELINE_METHODS]
    for seed in cfg.seeds:
        for layer in cfg.layers:
            jobs.append((seed, "trained", layer, main_methods))
        if cfg.controls:
            for setting in ("random_init", "shuffled"):
                jobs.append((seed, setting, cfg.control_layer, [REFERENCE, "hierarchical"]))
    models: dict[tuple[int, str], tuple[GatedResidualMLP, dict[str, Any]]] = {}
    timing_rows: list[tuple[int, str, int, str, float]] = []

    @contextmanager
    def clock(stage: str, seed: int, setting: str, layer: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        timing_rows.append((seed, setting, layer, stage, time.perf_counter() - start))

    # Train every network first: the exact-PAS kernels (numba, OpenMP) that follow can leave
    # spinning worker threads that slow torch training down several-fold on a small CPU.
    for seed, setting, _, _ in jobs:
        if (seed, setting) in models:
            continue
        with clock("train", seed, setting, 0):
            models[(seed, setting)] = _load_or_train(out / f"seed{seed}" / setting / "model.safetensors", cfg,
                                                     data, seed, setting, progress)
        meta = models[(seed, setting)][1]
        model_rows.append({"seed": seed, "setting": setting, "test_accuracy": meta["test_accuracy"],
                           "final_train_loss": (meta["losses"] or [float("nan")])[-1]})
    bar = tqdm(jobs, desc="mnist study", disable=not progress)
    for seed, setting, layer, methods in bar:
        bar.set_postfix(seed=seed, setting=setting, layer=f"h{layer}")
        sdir = out / f"seed{seed}" / setting
        model, meta = models[(seed, setting)]
        layer_dir = sdir / f"h{layer}"
        table_path = layer_dir / "coalitions.csv"
        if table_path.is_file() and (layer_dir / "coalitions.key").is_file() \
                and (layer_dir / "coalitions.key").read_text().strip() == config_hash([part_key, methods]):
            frames.append(pd.read_csv(table_path))
            continue
        with clock("record", seed, setting, layer):
            base = baseline_vector(model, layer, cfg.baseline, data.x_train)  # type: ignore[arg-type]
            h = layer_activations(model, x_te)[layer - 1]
            record = layer_record(model, x_te, y_te, layer, baseline=base, h=h,
                                  meta={"seed": seed, "setting": setting, "key": record_key})
            record.save(layer_dir / "record.safetensors")
        need_oca = any(HEDONIC_METHODS.get(m, ("", ""))[1] == "oca" for m in methods)
        with clock("valuations", seed, setting, layer):
            vals = _valuations(layer_dir, record, model, need_oca, record_key, progress)
        with clock("partitions", seed, setting, layer):
            parts = _partitions(layer_dir, vals, h.T.astype(np.float64), cfg, seed, methods, part_key)
        rows = []
        with clock("metrics", seed, setting, layer):
            for name in methods:
                df = coalition_metrics(
                    model, h, x_te, y_te, layer, parts[name], phi_pas=vals["pas_exact"], psi=vals["psi"],
                    loss_delta=vals["loss_delta"], baseline=base, acc_base=float(meta["test_accuracy"]),
                    top_k=cfg.top_k, stroke_scale=stroke_scale,
                )
                df.insert(0, "method", name)
                rows.append(df)
        table = pd.concat(rows, ignore_index=True)
        table.insert(0, "layer", layer)
        table.insert(0, "setting", setting)
        table.insert(0, "seed", seed)
        with atomic_write(table_path) as fh:
            table.to_csv(fh, index=False)
        with atomic_write(layer_dir / "coalitions.key") as fh:
            fh.write(config_hash([part_key, methods]) + "\n")  # a new method list recomputes the table
        frames.append(table)
    coalitions = pd.concat(frames, ignore_index=True)
    long = coalitions.melt(
        id_vars=["seed", "setting", "layer", "method", "coalition"],
        value_vars=[c for c in METRIC_COLUMNS if c in coalitions.columns], var_name="metric", value_name="value",
    )
    models_df = pd.DataFrame(model_rows)
    timings = pd.DataFrame(timing_rows, columns=["seed", "setting", "layer", "stage", "seconds"])
    for frame, name in ((coalitions, "coalitions.csv"), (long, "results_long.csv"), (models_df, "models.csv"),
                        (timings, "timings.csv")):
        with atomic_write(out / name) as fh:
            frame.to_csv(fh, index=False)
    return MnistStudyResult(out, coalitions, long, models_df, time.perf_counter() - t0)


def load_study(out_dir: str | Path) -> tuple[MnistStudyConfig, pd.DataFrame, pd.DataFrame]:
    """Read back ``(config, coalitions, models)`` of a finished study."""
    out = Path(out_dir)
    cfg = MnistStudyConfig.from_dict(read_json(out / "config.json")["config"])
    for name in ("coalitions.csv", "models.csv"):
        if not (out / name).is_file():
            raise ArtifactError(f"{out / name}: not found; run the study first.")
    return cfg, pd.read_csv(out / "coalitions.csv"), pd.read_csv(out / "models.csv")
