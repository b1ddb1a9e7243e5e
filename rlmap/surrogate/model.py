"""Surrogate cost models, part 2: the network, its training loop, checkpoints and fast inference.

The network predicts two numbers per mapping, ``log2(energy / MACs)`` and ``log2(cycles / ideal
cycles)`` (ideal = MACs / PEs), from the encoding of rlmap.surrogate.data: the mapping features and the
(layer, architecture) context features enter through separate linear maps that are summed, followed by
residual SiLU blocks.  At inference the context term is computed once per (layer, architecture) and the
input standardisation is folded into the first weight matrix, so a batch costs one small GEMM chain in
feature-major layout (no transposes).  log2 EDP is the sum of the two outputs plus known constants.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from rlmap.model.costmodel import CostModel
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import MappingBatch
from rlmap.spec.outputs import atomic_write
from rlmap.surrogate.data import (
    ENCODING_VERSION,
    N_CONTEXT_FEATURES,
    N_MAPPING_FEATURES,
    Encoder,
    SampleSet,
    context_features,
    costmodel_fingerprint,
    layer_key,
    structural_valid,
    targets,
)

CHECKPOINT_FORMAT = "rlmap-surrogate"


# ============================================================================ the network
class SurrogateNet(nn.Module):
    """mapping features (B, Fm) + context features (B or 1, Fc) -> (B, 2) log2 targets."""

    def __init__(
        self, n_map: int = N_MAPPING_FEATURES, n_ctx: int = N_CONTEXT_FEATURES, hidden: int = 128, depth: int = 3
    ) -> None:
        super().__init__()
        self.inp_m = nn.Linear(n_map, hidden)
        self.inp_c = nn.Linear(n_ctx, hidden, bias=False)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth - 1)])
        self.out = nn.Linear(hidden, 2)
        self.act = nn.SiLU()
        for name, size in (("m_mean", n_map), ("m_std", n_map), ("c_mean", n_ctx), ("c_std", n_ctx)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))
        self.register_buffer("y_mean", torch.zeros(2))
        self.register_buffer("y_std", torch.ones(2))

    def set_normalization(self, xm: np.ndarray, xc: np.ndarray, y: np.ndarray) -> None:
        def stats(a: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            mean = a.mean(axis=0, dtype=np.float64)
            std = a.std(axis=0, dtype=np.float64)
            std = np.where(std < 1e-6, 1.0, std)
            return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

        self.m_mean, self.m_std = stats(xm)
        self.c_mean, self.c_std = stats(xc)
        self.y_mean, self.y_std = stats(y)

    def forward(self, xm: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        h = self.inp_m((xm - self.m_mean) / self.m_std) + self.inp_c((xc - self.c_mean) / self.c_std)
        h = self.act(h)
        for blk in self.blocks:
            h = h + self.act(blk(h))
        return self.out(h) * self.y_std + self.y_mean


@dataclass
class TrainConfig:
    """Everything `train` needs besides the data; stored in the checkpoint."""

    epochs: int = 40
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    hidden: int = 128
    depth: int = 3
    val_frac: float = 0.1
    seed: int = 0
    edp_weight: float = 1.0
    threads: int = 1  # torch intra-op threads; 1 is fastest on a small shared CPU (0 = torch default)


# ============================================================================ metrics
def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), like scipy.stats.rankdata."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.concatenate([[True], xs[1:] != xs[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.concatenate([first, [len(x)]]))
    avg = first + 1 + (counts - 1) / 2.0  # 1-based, like scipy
    ranks = np.empty(len(x))
    ranks[order] = avg[group]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (nan if either side is constant or fewer than 2 points)."""
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def pairwise_accuracy(pred: np.ndarray, true: np.ndarray, rng: np.random.Generator, pairs: int = 4000) -> float:
    """Fraction of random pairs (with different true values) that the prediction orders correctly."""
    n = len(pred)
    if n < 2:
        return float("nan")
    i = rng.integers(n, size=pairs)
    j = rng.integers(n, size=pairs)
    keep = true[i] != true[j]
    if not keep.any():
        return float("nan")
    i, j = i[keep], j[keep]
    return float(np.mean((pred[i] < pred[j]) == (true[i] < true[j])))


def group_metrics(
    pred_log2_edp: np.ndarray, true_log2_edp: np.ndarray, groups: list[np.ndarray], seed: int = 0
) -> dict[str, Any]:
    """Per-group Spearman and pairwise accuracy, plus the median |log2 EDP error| over all samples."""
    rng = np.random.default_rng(seed)
    rho = np.array([spearman(pred_log2_edp[g], true_log2_edp[g]) for g in groups])
    acc = np.array([pairwise_accuracy(pred_log2_edp[g], true_log2_edp[g], rng) for g in groups])
    idx = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    err = np.abs(pred_log2_edp[idx] - true_log2_edp[idx])
    return {
        "spearman_mean": float(np.nanmean(rho)) if len(rho) else float("nan"),
        "spearman_median": float(np.nanmedian(rho)) if len(rho) else float("nan"),
        "spearman_min": float(np.nanmin(rho)) if len(rho) else float("nan"),
        "pairwise_accuracy": float(np.nanmean(acc)) if len(acc) else float("nan"),
        "median_abs_log2_edp_error": float(np.median(err)) if len(err) else float("nan"),
        "p90_abs_log2_edp_error": float(np.quantile(err, 0.9)) if len(err) else float("nan"),
        "per_group_spearman": rho,
    }


# ============================================================================ encoded data
@dataclass
class EncodedSet:
    xm: np.ndarray  # (N, Fm) float32
    ctx: np.ndarray  # (n_groups, Fc) float32
    gidx: np.ndarray  # (N,) group per sample
    y: np.ndarray  # (N, 2) float32 targets
    offset: np.ndarray  # (N,) log2 EDP = y0 + y1 + offset
    groups: list[tuple[int, int]]  # (layer index, arch index) per group
    layer_of_group: np.ndarray


def encode_samples(data: SampleSet, progress: Callable[[int, int], None] | None = None) -> EncodedSet:
    """Encode every sample of `data` (grouped by (layer, arch), each group encoded in one pass)."""
    N = len(data)
    xm = np.empty((N, N_MAPPING_FEATURES), dtype=np.float32)
    y = np.empty((N, 2), dtype=np.float32)
    offset = np.empty(N, dtype=np.float64)
    gidx = np.empty(N, dtype=np.int64)
    ctx, groups, layer_of = [], [], []
    grp = data.groups()
    for k, (li, ai, idx) in enumerate(grp):
        layer, arch = data.layers[li], data.archs[ai]
        enc = Encoder(layer, arch)
        xm[idx] = enc.encode_fm(data.batch(idx)).T
        y[idx] = targets(layer, arch, data.energy[idx], data.cycles[idx])
        offset[idx] = edp_offset(layer, arch)
        gidx[idx] = k
        ctx.append(enc.context)
        groups.append((li, ai))
        layer_of.append(li)
        if progress:
            progress(k + 1, len(grp))
    return EncodedSet(xm, np.stack(ctx).astype(np.float32), gidx, y, offset, groups, np.array(layer_of))


def edp_offset(layer: Layer, arch: Architecture) -> float:
    """log2 EDP = log2(E / MACs) + log2(cycles / ideal) + this."""
    macs = float(layer.macs)
    return math.log2(macs) + math.log2(macs / arch.num_pes)


# ============================================================================ training
@dataclass
class TrainResult:
    checkpoint: Path
    epochs: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)


def _predict_encoded(
    net: SurrogateNet, xm: np.ndarray, ctx: np.ndarray, gidx: np.ndarray, batch: int = 8192
) -> np.ndarray:
    out = np.empty((len(xm), 2), dtype=np.float32)
    net.eval()
    with torch.inference_mode():
        ctx_t = torch.from_numpy(ctx)
        for i in range(0, len(xm), batch):
            sl = slice(i, i + batch)
            out[sl] = net(torch.from_numpy(xm[sl]), ctx_t[torch.from_numpy(gidx[sl])]).numpy()
    return out


def evaluate_encoded(net: SurrogateNet, enc: EncodedSet, idx: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Loss and ranking metrics of `net` on the samples `idx` of an encoded set."""
    pred = _predict_encoded(net, enc.xm[idx], enc.ctx, enc.gidx[idx])
    true = enc.y[idx]
    mse = float(np.mean((pred - true) ** 2))
    p_edp = pred.sum(axis=1) + enc.offset[idx]
    t_edp = true.sum(axis=1) + enc.offset[idx]
    g = enc.gidx[idx]
    groups = [np.flatnonzero(g == k) for k in np.unique(g)]
    m = group_metrics(p_edp, t_edp, groups, seed)
    m["loss"] = mse
    m["mae_log2_energy"] = float(np.median(np.abs(pred[:, 0] - true[:, 0])))
    m["mae_log2_cycles"] = float(np.median(np.abs(pred[:, 1] - true[:, 1])))
    return m


def train(
    data: SampleSet,
    out_dir: str | Path,
    config: TrainConfig,
    resume: bool = False,
    log_dir: str | Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a SurrogateNet on `data`; writes out_dir/model.pt (compact) and out_dir/last.pt (resumable)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"
    state = None
    if resume:
        if not last_path.exists():
            raise SpecError("nothing to resume: no last.pt in the output folder", str(out))
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if state.get("encoding_version") != ENCODING_VERSION:
            raise SpecError(
                f"checkpoint uses encoding version {state.get('encoding_version')}, this rlmap uses "
                f"{ENCODING_VERSION}; retrain instead of resuming",
                str(last_path),
            )
        saved = TrainConfig(**state["config"])
        saved.epochs = config.epochs  # the only thing a resume may change
        config = saved
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(data, out, config, state, log_dir, progress, extra_meta, t_start)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    data: SampleSet,
    out: Path,
    config: TrainConfig,
    state: dict[str, Any] | None,
    log_dir: str | Path | None,
    progress: Callable[[dict[str, Any]], None] | None,
    extra_meta: dict[str, Any] | None,
    t_start: float,
) -> TrainResult:
    last_path = out / "last.pt"
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    enc = encode_samples(data)
    t_encode = time.perf_counter() - t_start

    # validation split by layer (never by sample: neighbours of one layer are near-duplicates)
    layers = np.unique(enc.layer_of_group)
    n_val = max(1, int(round(config.val_frac * len(layers)))) if config.val_frac > 0 and len(layers) > 1 else 0
    val_layers = set(rng.permutation(layers)[:n_val].tolist()) if state is None else set(state["val_layers"])
    is_val_group = np.array([li in val_layers for li in enc.layer_of_group])
    val_mask = is_val_group[enc.gidx]
    tr_idx = np.flatnonzero(~val_mask)
    va_idx = np.flatnonzero(val_mask)

    net = SurrogateNet(hidden=config.hidden, depth=config.depth)
    if state is None:
        net.set_normalization(
            enc.xm[tr_idx],
            enc.ctx[enc.gidx[tr_idx]]
            if len(tr_idx) < 400_000
            else enc.ctx[enc.gidx[rng.choice(tr_idx, 400_000, replace=False)]],
            enc.y[tr_idx],
        )
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(tr_idx) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    warm = min(500, total_steps // 10 + 1)

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    start_epoch = 0
    history: list[dict[str, float]] = []
    elapsed_before = 0.0
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        elapsed_before = float(state.get("train_seconds", 0.0))
        torch.set_rng_state(state["torch_rng"])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["np_rng"]

    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir))
    xm_t = torch.from_numpy(enc.xm)
    ctx_t = torch.from_numpy(enc.ctx)
    y_t = torch.from_numpy(enc.y)
    g_t = torch.from_numpy(enc.gidx)
    w_edp = config.edp_weight
    t_train = time.perf_counter()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(tr_idx))
        tot, cnt = 0.0, 0
        for i in range(0, len(perm), config.batch_size):
            bi = perm[i : i + config.batch_size]
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step)
            pred = net(xm_t[bi], ctx_t[g_t[bi]])
            yt = y_t[bi]
            d = pred - yt
            loss = (d**2).mean() + w_edp * (d.sum(dim=1) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            tot += float(loss.detach()) * len(bi)
            cnt += len(bi)
        rec: dict[str, Any] = {"epoch": epoch + 1, "train_loss": tot / max(cnt, 1), "lr": lr_at(step)}
        if len(va_idx):
            m = evaluate_encoded(net, enc, va_idx, config.seed)
            rec.update(
                {
                    "val_loss": m["loss"],
                    "val_spearman": m["spearman_mean"],
                    "val_rank_acc": m["pairwise_accuracy"],
                    "val_median_abs_log2_edp_error": m["median_abs_log2_edp_error"],
                }
            )
        # ranking accuracy on (a slice of) the training layers too
        sub = tr_idx if len(tr_idx) <= 60_000 else rng.choice(tr_idx, 60_000, replace=False)
        mt = evaluate_encoded(net, enc, np.sort(sub), config.seed)
        rec.update(
            {
                "train_rank_acc": mt["pairwise_accuracy"],
                "train_spearman": mt["spearman_mean"],
                "train_median_abs_log2_edp_error": mt["median_abs_log2_edp_error"],
            }
        )
        rec["seconds"] = elapsed_before + time.perf_counter() - t_train
        history.append(rec)
        if writer is not None:
            writer.add_scalar("loss/train", rec["train_loss"], epoch + 1)
            writer.add_scalar("rank_accuracy/train", rec["train_rank_acc"], epoch + 1)
            writer.add_scalar("spearman/train", rec["train_spearman"], epoch + 1)
            writer.add_scalar("lr", rec["lr"], epoch + 1)
            if "val_loss" in rec:
                writer.add_scalar("loss/val", rec["val_loss"], epoch + 1)
                writer.add_scalar("rank_accuracy/val", rec["val_rank_acc"], epoch + 1)
                writer.add_scalar("spearman/val", rec["val_spearman"], epoch + 1)
                writer.add_scalar("median_abs_log2_edp_error/val", rec["val_median_abs_log2_edp_error"], epoch + 1)
            writer.flush()
        state = {
            "format": CHECKPOINT_FORMAT,
            "encoding_version": ENCODING_VERSION,
            "config": asdict(config),
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch + 1,
            "history": history,
            "val_layers": sorted(int(v) for v in val_layers),
            "torch_rng": torch.get_rng_state(),
            "np_rng": rng.bit_generator.state,
            "train_seconds": rec["seconds"],
        }
        atomic_write(last_path, functools.partial(torch.save, state))  # never a half-written last.pt
        if progress:
            progress(rec)
    if writer is not None:
        writer.close()
    seconds = elapsed_before + time.perf_counter() - t_train
    meta = dataset_meta(data, val_layers)
    meta.update(
        {
            "epochs": config.epochs,
            "train_seconds": round(seconds, 1),
            "encode_seconds": round(t_encode, 1),
            "final": {k: v for k, v in (history[-1] if history else {}).items()},
        }
    )
    meta.update(extra_meta or {})
    path = save_checkpoint(net, config, meta, out / "model.pt")
    return TrainResult(path, config.epochs, seconds, history, history[-1] if history else {})


def dataset_meta(data: SampleSet, val_layers: set[int] | None = None) -> dict[str, Any]:
    nets = sorted({n for ln in data.layer_networks for n in ln})
    return {
        "networks": nets,
        "archs": [a.name for a in data.archs],
        "samples": len(data),
        "layers": len(data.layers),
        "train_layer_keys": [list(map(_jsonable, layer_key(lyr))) for lyr in data.layers],
        "validation_layers": [data.layers[i].name for i in sorted(val_layers or [])],
        "dataset": dict(data.meta),
        "costmodel": costmodel_fingerprint(),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_jsonable(v) for v in x]
    return x


def save_checkpoint(net: SurrogateNet, config: TrainConfig, meta: dict[str, Any], path: str | Path) -> Path:
    """Compact checkpoint: float32 weights, normalisation, encoding version, config and metadata."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "encoding_version": ENCODING_VERSION,
        "config": asdict(config),
        "model": {k: v.detach().clone().float() for k, v in net.state_dict().items()},
        "meta": meta,
    }
    atomic_write(p, functools.partial(torch.save, state))
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint (a folder means its model.pt); checks the encoding."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise SpecError("surrogate checkpoint not found", str(p))
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise SpecError(f"cannot read surrogate checkpoint ({type(exc).__name__}: {exc})", str(p)) from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise SpecError("not an rlmap surrogate checkpoint", str(p))
    if ck.get("encoding_version") != ENCODING_VERSION:
        raise SpecError(
            f"checkpoint uses encoding version {ck.get('encoding_version')}, this rlmap uses "
            f"{ENCODING_VERSION}; retrain it with `rlmap surrogate train`",
            str(p),
        )
    ck["path"] = str(p)
    return ck


def net_from_checkpoint(ck: dict[str, Any]) -> SurrogateNet:
    cfg = ck["config"]
    net = SurrogateNet(hidden=int(cfg["hidden"]), depth=int(cfg["depth"]))
    net.load_state_dict(ck["model"])
    net.eval()
    return net


# ============================================================================ inference
def default_checkpoint() -> Path:
    """The shipped Eyeriss surrogate (checkpoints/surrogate_eyeriss/model.pt beside the package)."""
    from rlmap.spec.io import checkpoints_dir

    return checkpoints_dir() / "surrogate_eyeriss" / "model.pt"


class SurrogateRewardModel:
    """Fast batched predictions of energy, cycles and EDP from a trained surrogate checkpoint.

    For the environment: ``predict_edp(layer, arch, mappings) -> np.ndarray`` (one value per mapping of
    the MappingBatch).  The surrogate does not judge validity: with ``valid_only=True`` mappings that break
    a fanout or a capacity (the spec's structural rules, checked exactly and cheaply) get inf.
    Encoders and the per-(layer, architecture) context term are cached.
    """

    def __init__(self, checkpoint: str | Path | dict[str, Any] | None = None, threads: int | None = 1) -> None:
        ck = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint or default_checkpoint())
        self.checkpoint = ck
        self.meta: dict[str, Any] = dict(ck.get("meta", {}))
        self.net = net_from_checkpoint(ck)
        self.threads = threads  # torch threads during inference (restored afterwards); None = leave as is
        n = self.net
        with torch.no_grad():
            # fold the input standardisation into the first layer (feature-major weights)
            self._w_m = (n.inp_m.weight / n.m_std[None, :]).contiguous()
            self._b_m = n.inp_m.bias - self._w_m @ n.m_mean
            blocks = cast(list[nn.Linear], list(n.blocks))  # SurrogateNet.blocks: a ModuleList of Linear
            self._blocks = [(b.weight.contiguous(), b.bias[:, None].contiguous()) for b in blocks]
            self._w_o = (n.out.weight * n.y_std[:, None]).contiguous()
            self._b_o = (n.out.bias * n.y_std + n.y_mean)[:, None].contiguous()
        self._cache: OrderedDict[tuple, tuple[Encoder, torch.Tensor, float]] = OrderedDict()
        self._models: OrderedDict[tuple, CostModel] = OrderedDict()
        self.trained_archs = list(self.meta.get("archs", []))
        # True when rlmap/model/costmodel.py differs from the version the training data came from
        self.costmodel_changed = self.meta.get("costmodel") not in (None, "unknown", costmodel_fingerprint())

    @property
    def path(self) -> str:
        return str(self.checkpoint.get("path", ""))

    def _entry(self, layer: Layer, arch: Architecture) -> tuple[Encoder, torch.Tensor, float]:
        key = (layer_key(layer), layer.kind, tuple(sorted(layer.tensor_sizes.items())), id(arch), arch.name)
        hit = self._cache.get(key)
        if hit is not None and hit[0].arch is arch:
            self._cache.move_to_end(key)
            return hit
        enc = Encoder(layer, arch)
        n = self.net
        with torch.no_grad():
            c = torch.from_numpy(context_features(layer, arch))
            ctx = n.inp_c((c - n.c_mean) / n.c_std)
            bias = (ctx + self._b_m)[:, None].contiguous()
        entry = (enc, bias, edp_offset(layer, arch))
        self._cache[key] = entry
        if len(self._cache) > 256:
            self._cache.popitem(last=False)
        return entry

    def predict_log2(self, layer: Layer, arch: Architecture, mappings: MappingBatch, chunk: int = 4096) -> np.ndarray:
        """(B, 2): predicted log2(energy / MACs) and log2(cycles / ideal cycles)."""
        prev = torch.get_num_threads()
        if self.threads and prev != self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._predict_log2(layer, arch, mappings, chunk)
        finally:
            if self.threads and prev != self.threads:
                torch.set_num_threads(prev)

    def _predict_log2(self, layer: Layer, arch: Architecture, mappings: MappingBatch, chunk: int) -> np.ndarray:
        enc, bias, _ = self._entry(layer, arch)
        B = len(mappings)
        out = np.empty((B, 2), dtype=np.float32)
        act = torch.nn.functional.silu
        with torch.inference_mode():
            for i in range(0, B, chunk):
                part = mappings if B <= chunk else mappings.take(slice(i, i + chunk))
                x = torch.from_numpy(enc.encode_fm(part, chunk))
                h = act(torch.addmm(bias, self._w_m, x))
                for w, b in self._blocks:
                    h = h + act(torch.addmm(b, w, h))
                y = torch.addmm(self._b_o, self._w_o, h)  # (2, b)
                out[i : i + len(part)] = y.T.numpy()
        return out

    def predict(
        self, layer: Layer, arch: Architecture, mappings: MappingBatch, valid_only: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (energy, cycles) per mapping, float64."""
        y = self.predict_log2(layer, arch, mappings).astype(np.float64)
        macs = float(layer.macs)
        energy = np.exp2(y[:, 0]) * macs
        cycles = np.exp2(y[:, 1]) * macs / arch.num_pes
        if valid_only:
            ok = self.valid(layer, arch, mappings)
            energy = np.where(ok, energy, np.inf)
            cycles = np.where(ok, cycles, np.inf)
        return energy, cycles

    def predict_edp(
        self, layer: Layer, arch: Architecture, mappings: MappingBatch, valid_only: bool = False
    ) -> np.ndarray:
        """Predicted energy-delay product per mapping (same units as CostModel: energy x cycles)."""
        return np.exp2(self.predict_log2_objective(layer, arch, mappings, "edp", valid_only))

    def predict_log2_objective(
        self, layer: Layer, arch: Architecture, mappings: MappingBatch, objective: str = "edp", valid_only: bool = False
    ) -> np.ndarray:
        """log2 of the predicted objective (energy, latency = cycles, or edp), float64; inf if invalid."""
        _, _, off = self._entry(layer, arch)
        y = self.predict_log2(layer, arch, mappings).astype(np.float64)
        macs = float(layer.macs)
        if objective == "energy":
            v = y[:, 0] + math.log2(macs)
        elif objective == "latency":
            v = y[:, 1] + math.log2(macs / arch.num_pes)
        elif objective == "edp":
            v = y[:, 0] + y[:, 1] + off
        else:
            raise SpecError(f"unknown objective {objective!r} (expected energy, latency or edp)")
        if valid_only:
            v = np.where(self.valid(layer, arch, mappings), v, np.inf)
        return v

    def valid(self, layer: Layer, arch: Architecture, mappings: MappingBatch) -> np.ndarray:
        """Structural validity (factors, fanouts, capacities) of each mapping."""
        key = (layer_key(layer), id(arch))
        m = self._models.get(key)
        if m is None or m.arch is not arch:
            m = self._models[key] = CostModel(layer, arch)
            if len(self._models) > 64:
                self._models.popitem(last=False)
        return structural_valid(m, mappings)
