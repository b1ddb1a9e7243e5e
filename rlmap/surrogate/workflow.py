"""Learned surrogate cost models: build a dataset, train, evaluate -- as Python functions and as a CLI.

Python API (each function is what the matching `rlmap surrogate ...` command runs):

* `build_dataset(arch, networks, samples, out, synthetic=0, ...)` -> path of the ``.npz`` dataset
* `train_surrogate(data, out, epochs=..., resume=False, ...)` -> `TrainResult` (checkpoint path, history)
* `evaluate_surrogate(checkpoint, networks, arch, ...)` -> dict of metrics on held-out networks
* `SurrogateRewardModel(checkpoint).predict_edp(layer, arch, mappings)` -> predicted EDP per mapping
  (rlmap.surrogate.model; re-exported here) for the RL environment's reward
* cost backends (`BuiltinBackend`, `CallableBackend`, `load_backend`, `BackendModel`) from
  rlmap.surrogate.data, so the same code trains against any cost model.

The `rlmap surrogate dataset|train|eval` commands (rlmap.cli.surrogate) call these.  Every user mistake
raises rlmap.spec.errors.SpecError.  See docs/surrogate.md.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rlmap.execution import ResultStore
from rlmap.spec.errors import Interrupted, SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.outputs import atomic_write, atomic_write_text
from rlmap.surrogate.data import (
    ENCODING_VERSION,
    SOURCES,
    BackendModel,
    BuiltinBackend,
    CallableBackend,
    CostBackend,
    SampleSet,
    generate_samples,
    layer_key,
    load_backend,
    network_layers,
    synthetic_layers,
)
from rlmap.surrogate.model import (
    SurrogateRewardModel,
    TrainConfig,
    TrainResult,
    default_checkpoint,
    group_metrics,
    train,
)

__all__ = [
    "build_dataset",
    "train_surrogate",
    "evaluate_surrogate",
    "SurrogateRewardModel",
    "BuiltinBackend",
    "CallableBackend",
    "CostBackend",
    "BackendModel",
    "load_backend",
    "default_checkpoint",
]


def _console():  # noqa: ANN202
    import sys

    from rich.console import Console

    stream = sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, highlight=False, soft_wrap=False)


def _split_names(values: Sequence[str] | str | None) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in str(v).split(",") if x.strip()]
    return out


def _progress_bar(description: str, enabled: bool = True):  # noqa: ANN202
    """A bar on a terminal (stdout), plain periodic lines when piped or in CI (rlmap.search.progress)."""
    from rlmap.search.progress import progress_bar

    return progress_bar(enabled=enabled, console=_console(), transient=False, remaining=True)


# ============================================================================ dataset
def build_dataset(
    arch: str | Sequence[str],
    networks: Sequence[str] | str,
    samples: int,
    out: str | Path,
    synthetic: int = 0,
    seed: int = 0,
    backend: str | CostBackend | None = None,
    workers: int = 1,
    exclude: Sequence[str] | str | None = None,
    progress: bool = True,
    executor: Any = None,
) -> Path:
    """Sample (layer, architecture, mapping) -> (energy, cycles) and save it as one compressed .npz.

    arch      -- architecture preset name(s) or YAML path(s); several = one dataset over all of them
    networks  -- network presets/files whose layers are used (one layer per distinct shape)
    samples   -- total number of scored mappings, split evenly over (layer, arch) pairs
    out       -- output folder (gets dataset.npz and dataset.json) or a path ending in .npz
    synthetic -- number of extra random realistic layers (conv/depthwise/pointwise/gemm/matmul)
    backend   -- 'builtin' (default), 'module:function' (a user's cost function), or a CostBackend
    workers   -- processes for the built-in backend (a user backend must be picklable for > 1)
    executor  -- where the (layer, arch) shards run (an rlmap.execution Backend, e.g. Ray); default `workers`
                 local processes.  Finished shards are kept in OUT/dataset.tasks/ until the file is written, so
                 an interrupted build resumes from them.
    exclude   -- networks whose layer *shapes* must not appear (e.g. the held-out networks)
    Per layer the mix is: 30% random valid mappings, 50% genetic / annealing mapper trajectories (the good
    end over-represented), 20% neighbours of the best mappings (see rlmap.surrogate.data).
    Ctrl-C saves the pairs finished by then (meta and dataset.json say "partial") and raises
    rlmap.spec.errors.Interrupted.
    """
    from rlmap.spec.io import load_architecture

    arch_names = _split_names(arch)
    if not arch_names:
        raise SpecError("give at least one architecture", "--arch")
    archs = [_blamed(load_architecture, a, "--arch") for a in arch_names]
    net_names = _split_names(networks)
    if not net_names and synthetic <= 0:
        raise SpecError("give --networks and/or --synthetic N (no layers to sample)", "--networks")
    if samples <= 0:
        raise SpecError(f"must be positive, got {samples}", "--samples")
    if synthetic < 0:
        raise SpecError(f"must be >= 0, got {synthetic}", "--synthetic")
    if workers < 1:
        raise SpecError(f"must be >= 1, got {workers}", "--workers")
    excl_names = _split_names(exclude)
    overlap = sorted(set(net_names) & set(excl_names))
    if overlap:
        raise SpecError(f"networks {overlap} are both used and excluded", "--exclude")
    excluded = _blamed(network_layers, excl_names, "--exclude") if excl_names else []
    excluded_keys = {layer_key(lyr) for lyr, _ in excluded}
    layers = [
        (lyr, nets)
        for lyr, nets in _blamed(network_layers, net_names, "--networks")
        if layer_key(lyr) not in excluded_keys
    ]
    dropped = len(network_layers(net_names)) - len(layers) if excl_names else 0
    seen = {layer_key(lyr) for lyr, _ in layers}
    for lyr in synthetic_layers(synthetic, seed + 7919):
        if layer_key(lyr) not in seen and layer_key(lyr) not in excluded_keys:
            seen.add(layer_key(lyr))
            layers.append((lyr, ["synthetic"]))
    items = [(lyr, nets, a) for a in archs for lyr, nets in layers]
    if not items:
        raise SpecError("no layers left to sample after --exclude")
    per_layer = max(8, math.ceil(samples / len(items)))
    be = load_backend(backend)
    if (workers > 1 or executor is not None) and not isinstance(be, BuiltinBackend):
        import pickle

        try:
            pickle.dumps(be)
        except Exception:  # noqa: BLE001
            raise SpecError("this backend cannot be sent to worker processes; use --workers 1", "--workers") from None
    con = _console()
    if progress:
        con.print(
            f"sampling {len(items)} (layer, arch) pairs x {per_layer} mappings on {', '.join(a.name for a in archs)} "
            f"with backend {be.name}" + (f" ({dropped} layers dropped: shapes of excluded networks)" if dropped else "")
        )
    p = Path(out)
    path = p if p.suffix == ".npz" else p / "dataset.npz"
    resume_dir = path.with_suffix(".tasks")
    t0 = time.perf_counter()
    try:  # outside the bar, so that an interrupted bar does not print "done"
        with _progress_bar("dataset", progress) as bar:
            task = bar.add_task("dataset", total=len(items), info="")

            def tick(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, info=name)

            data = generate_samples(
                items,
                per_layer,
                seed=seed,
                backend=be,
                workers=workers,
                progress=tick,
                meta={
                    "networks": net_names,
                    "synthetic": synthetic,
                    "excluded_networks": excl_names,
                    "command_seed": seed,
                },
                executor=executor,
                resume_dir=resume_dir,
            )
        interrupted = None
    except Interrupted as exc:  # Ctrl-C: save the (layer, arch) items finished, marked partial
        data, interrupted = exc.partial, exc
    if data is None:
        con.print(f"interrupted before any (layer, arch) pair finished: nothing written to {path}")
        raise interrupted  # type: ignore[misc]
    data.meta["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write(path, data.save)
    if interrupted is None:
        ResultStore(resume_dir).clear()  # kept after Ctrl-C: the same command resumes from the finished pairs
    summary = {
        "path": str(path),
        "samples": len(data),
        "layers": len(data.layers),
        "archs": [a.name for a in data.archs],
        "networks": net_names,
        "synthetic": synthetic,
        "excluded_networks": excl_names,
        "per_layer": per_layer,
        "sources": {s: int((data.source == i).sum()) for i, s in enumerate(SOURCES)},
        "seconds": data.meta["seconds"],
        "backend": be.name,
        "encoding_version": ENCODING_VERSION,
        "costmodel": data.meta.get("costmodel"),
    }
    if interrupted is not None:
        summary.update(partial=True, pairs_done=interrupted.done, pairs_total=interrupted.total)
    atomic_write_text(path.with_suffix(".json"), json.dumps(summary, indent=2))
    if progress or interrupted is not None:
        size = path.stat().st_size / 1e6
        if interrupted is not None:
            con.print(
                f"interrupted: {interrupted.done} of {interrupted.total} (layer, arch) pairs finished; "
                "the dataset holds those only and is marked partial"
            )
        con.print(
            f"wrote {len(data):,} samples of {len(data.layers)} layers to {path} ({size:.1f} MB) "
            f"in {summary['seconds']} s; " + ", ".join(f"{k} {v:,}" for k, v in summary["sources"].items())
        )
    if interrupted is not None:
        raise interrupted
    return path


# ============================================================================ training
def train_surrogate(
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    epochs: int = 40,
    batch_size: int = 512,
    lr: float = 2e-3,
    hidden: int = 128,
    depth: int = 3,
    val_frac: float = 0.1,
    seed: int = 0,
    resume: bool = False,
    log_dir: str | Path | None = None,
    threads: int = 1,
    progress: bool = True,
    command: str | None = None,
) -> TrainResult:
    """Train the surrogate network on one or more datasets (build_dataset outputs).

    Writes out/model.pt (small, what the mapper and the reward model load), out/last.pt (full state for
    --resume: with resume=True training continues from the last finished epoch up to `epochs`), and
    TensorBoard logs (train/validation loss, ranking accuracy, Spearman, median |log2 EDP error|) to
    `log_dir` (default out/tb).  Validation holds out `val_frac` of the *layers*.
    """
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise SpecError("give at least one dataset", "--data")
    if epochs < 1:
        raise SpecError(f"must be >= 1, got {epochs}", "--epochs")
    if batch_size < 2:
        raise SpecError(f"must be >= 2, got {batch_size}", "--batch-size")
    if not 0 <= val_frac < 1:
        raise SpecError(f"must be in [0, 1), got {val_frac}", "--val-frac")
    if not (math.isfinite(lr) and lr > 0):
        raise SpecError(f"must be a positive finite number, got {lr}", "--lr")
    if hidden < 1:
        raise SpecError(f"must be >= 1, got {hidden}", "--hidden")
    if depth < 1:
        raise SpecError(f"must be >= 1, got {depth}", "--depth")
    if threads < 0:
        raise SpecError(f"must be >= 0 (0 = torch default), got {threads}", "--threads")
    sets = [SampleSet.load(p) for p in paths]
    ds = sets[0] if len(sets) == 1 else SampleSet.merge(sets)
    out_p = Path(out)
    log = Path(log_dir) if log_dir is not None else out_p / "tb"
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        hidden=hidden,
        depth=depth,
        val_frac=val_frac,
        seed=seed,
        threads=threads,
    )
    con = _console()
    if progress:
        con.print(
            f"training on {len(ds):,} samples of {len(ds.layers)} layers ({', '.join(a.name for a in ds.archs)}); "
            f"checkpoints in {out_p}, TensorBoard logs in {log}"
        )
    with _progress_bar("train", progress) as bar:
        task = bar.add_task("epochs", total=epochs, info="")

        def tick(rec: dict[str, Any]) -> None:
            info = f"loss {rec['train_loss']:.4f}"
            if "val_loss" in rec:
                info += (
                    f"  val {rec['val_loss']:.4f}  rho {rec['val_spearman']:.3f}  rank-acc {rec['val_rank_acc']:.3f}"
                    f"  |err| {rec['val_median_abs_log2_edp_error']:.3f}"
                )
            bar.update(task, completed=rec["epoch"], info=info)

        res = train(
            ds,
            out_p,
            cfg,
            resume=resume,
            log_dir=log,
            progress=tick,
            extra_meta={"dataset_paths": [str(p) for p in paths], "command": command or ""},
        )
    if progress:
        con.print(
            f"wrote {res.checkpoint} ({res.checkpoint.stat().st_size / 1e6:.2f} MB) after {res.epochs} epochs, "
            f"{res.seconds:.0f} s of training"
        )
    return res


# ============================================================================ evaluation
T = TypeVar("T")


def _blamed(load: Callable[[Any], T], what: Any, option: str) -> T:
    """`load(what)`, with an error that names no file (an unknown preset name) blamed on `option`."""
    try:
        return load(what)
    except SpecError as exc:
        raise SpecError(exc.message, exc.where or option) from None


def evaluate_surrogate(
    checkpoint: str | Path | None,
    networks: Sequence[str] | str,
    arch: str = "eyeriss",
    samples_per_layer: int = 1000,
    seed: int = 12345,
    include_seen: bool = False,
    allow_training_networks: bool = False,
    backend: str | CostBackend | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Score fresh mappings of held-out networks with the true model and compare the surrogate.

    Mappings are generated like the training data (random valid + mapper trajectories + neighbours),
    with a different seed.  Returns overall and per-network metrics: the Spearman rank correlation of
    predicted vs true EDP among the mappings of each layer (mean / median / min over layers), pairwise
    ranking accuracy, and the median |log2 predicted EDP - log2 true EDP| over all samples.
    Layers whose shape was in the training data are skipped unless include_seen; networks used for
    training are refused unless allow_training_networks.
    """
    from rlmap.spec.io import load_architecture

    if workers < 1:
        raise SpecError(f"must be >= 1, got {workers}", "--workers")
    model = SurrogateRewardModel(checkpoint)
    net_names = _split_names(networks)
    if not net_names:
        raise SpecError("give the held-out networks to evaluate on", "--networks")
    if samples_per_layer < 8:
        raise SpecError(f"must be >= 8, got {samples_per_layer}", "--samples")
    a = _blamed(load_architecture, arch, "--arch")
    layers = _blamed(network_layers, net_names, "--networks")
    loaded_names = list(dict.fromkeys(n for _, nets in layers for n in nets))
    trained_nets = set(model.meta.get("networks", []))
    bad = sorted(set(loaded_names) & trained_nets)
    if bad and not allow_training_networks:
        raise SpecError(
            f"networks {bad} were in the surrogate's training data; evaluate on held-out networks", "--networks"
        )
    seen_keys = {json.dumps(k) for k in model.meta.get("train_layer_keys", [])}
    kept: list[tuple[Layer, list[str]]] = []
    skipped: list[tuple[Layer, list[str]]] = []
    for lyr, nets in layers:
        key = json.dumps([list(x) if isinstance(x, tuple) else x for x in layer_key(lyr)])
        (skipped if (key in seen_keys and not include_seen) else kept).append((lyr, nets))
    if not kept:
        raise SpecError("every layer of these networks has a shape seen in training (use --include-seen)")
    items = [(lyr, nets, a) for lyr, nets in kept]
    t0 = time.perf_counter()
    with _progress_bar("eval", progress) as bar:
        task = bar.add_task("eval", total=len(items), info="")
        data = generate_samples(
            items,
            samples_per_layer,
            seed=seed,
            backend=backend,
            workers=workers,
            progress=lambda d, t, n: bar.update(task, completed=d, info=n),
        )
    gen_seconds = time.perf_counter() - t0
    pred = np.empty(len(data))
    true = np.log2(data.edp)
    t1 = time.perf_counter()
    groups = []
    for li, ai, idx in data.groups():
        pred[idx] = model.predict_log2_objective(data.layers[li], data.archs[ai], data.batch(idx), "edp")
        groups.append((li, idx))
    pred_seconds = time.perf_counter() - t1
    overall = group_metrics(pred, true, [g for _, g in groups], seed)
    per_net: dict[str, Any] = {}
    for name in loaded_names:
        gs = [(li, g) for li, g in groups if name in data.layer_networks[li]]
        if not gs:
            continue
        idx = np.concatenate([g for _, g in gs])
        m = group_metrics(pred, true, [g for _, g in gs], seed)
        m["layers"] = len(gs)
        m["samples"] = int(len(idx))
        m.pop("per_group_spearman")
        per_net[name] = m
    per_layer = []
    for (li, g), rho in zip(groups, overall["per_group_spearman"]):
        err = np.abs(pred[g] - true[g])
        best = g[np.argsort(true[g])[: max(1, len(g) // 10)]]
        per_layer.append(
            {
                "layer": data.layers[li].name,
                "networks": data.layer_networks[li],
                "shape": data.layers[li].shape_str(),
                "spearman": float(rho),
                "median_abs_log2_edp_error": float(np.median(err)),
                "top10pct_spearman": _safe_spearman(pred[best], true[best]),
            }
        )
    by_source = {}
    for i, s in enumerate(SOURCES):
        sel = data.source == i
        if sel.any():
            by_source[s] = float(np.median(np.abs(pred[sel] - true[sel])))
    overall.pop("per_group_spearman")
    result = {
        "checkpoint": model.path,
        "arch": a.name,
        "networks": loaded_names,
        "layers": len(kept),
        "skipped_seen_layers": [lyr.name for lyr, _ in skipped],
        "samples": len(data),
        "samples_per_layer": samples_per_layer,
        "overall": overall,
        "per_network": per_net,
        "per_layer": per_layer,
        "median_abs_log2_edp_error_by_source": by_source,
        "top10pct_spearman_mean": float(np.nanmean([r["top10pct_spearman"] for r in per_layer])),
        "generate_seconds": round(gen_seconds, 1),
        "predict_mappings_per_second": float(len(data) / max(pred_seconds, 1e-9)),
    }
    return result


def _safe_spearman(a: np.ndarray, b: np.ndarray) -> float:
    from rlmap.surrogate.model import spearman

    return spearman(a, b)
