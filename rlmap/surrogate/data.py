"""Surrogate cost models, part 1: cost backends, the feature encoding, and dataset generation.

* **Backends.**  `CostBackend` is what the dataset generator (and, through `BackendModel`, every search
  mapper) calls to score mappings: `BuiltinBackend` wraps rlmap's vectorised analytical model,
  `CallableBackend` wraps a user's Python function ``fn(layer, arch, mapping) -> (energy, cycles)``
  (``None`` or a non-finite value = invalid) that scores one mapping at a time.  A backend is only ever
  asked about mappings that pass the *structural* check (factors multiply to the layer, spatial factors fit
  every fanout and its allowed dims, tiles fit every capacity): those rules come from the layer and the
  architecture spec, not from a cost model, so they are checked here, cheaply, for any backend.
* **Encoding** (`ENCODING_VERSION`).  A mapping of a layer on an architecture becomes two float32 vectors:
  a *context* vector (layer and architecture features, constant for one layer on one architecture) and a
  *mapping* vector (log2 factors per level, dim and temporal/X/Y; loop-order features per level; and the
  loop-nest quantities every Timeloop-style model is built on -- tile footprints, spatially unioned
  footprints, refetch counts, instances in use, buffer occupancy).  None of them uses an energy or a
  bandwidth of the cost model, so the same encoding serves any backend.  Levels are padded to
  `MAX_LEVELS`.
* **Datasets.**  `generate_layer_samples` scores, per layer, a mix of uniformly drawn valid mappings,
  capacity-repaired random mappings, the trajectories of the genetic and annealing mappers (stratified so
  the good end is well represented) and 1-3-move neighbours of the best ones.  `SampleSet` stores them
  compactly (integer factors, int8 loop orders, float64 costs, an index into a table of layers and
  architectures) as one ``.npz``.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlmap.model.costmodel import BatchCost, Cost, CostModel, footprint
from rlmap.model.costmodel import fingerprint as costmodel_fingerprint  # stored with datasets and checkpoints
from rlmap.search.base import Mapper
from rlmap.search.mapspace import Genome, MapSpace
from rlmap.search.repair import capacity_repair, structural_valid  # re-exported
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import Interrupted, SpecError
from rlmap.spec.layer import Layer, layer_key
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import DIMS, INPUTS, N_DIMS, N_TENSORS, RELEVANCE_MATRIX, TENSORS, P, Q, R, S

ENCODING_VERSION = 1
"""Bump whenever a feature is added, removed or redefined: checkpoints record the version they use."""

MAX_LEVELS = 4
"""Architectures with up to this many memory levels can be encoded (levels beyond L are zero)."""

SOURCES = ("uniform", "repaired", "ga", "sa", "local")
"""Where a sample came from (stored per sample as an index into this tuple)."""

LAYER_KINDS = ("conv", "depthwise", "pointwise", "gemm", "matmul")
FORMATS = ("uncompressed", "bitmask", "rle", "coordinate")


# ============================================================================ backends
class CostBackend(Protocol):
    """Scores structurally valid mappings of one layer on one architecture.

    `evaluate` returns (energy, cycles), float64 arrays of length len(batch); inf marks a mapping the
    backend rejects.  `calls` counts the mappings it has scored (for the slow-model accounting).
    """

    name: str
    calls: int

    def evaluate(self, layer: Layer, arch: Architecture, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray]: ...


class BuiltinBackend:
    """rlmap's analytical cost model, vectorised (CostModel.evaluate_batch); CostModels are cached."""

    name = "builtin"

    def __init__(self) -> None:
        self.calls = 0
        self._models: dict[tuple[int, int], CostModel] = {}

    def model(self, layer: Layer, arch: Architecture) -> CostModel:
        key = (id(layer), id(arch))
        m = self._models.get(key)
        if m is None or m.layer is not layer or m.arch is not arch:
            if len(self._models) > 64:
                self._models.clear()
            m = self._models[key] = CostModel(layer, arch)
        return m

    def evaluate(self, layer: Layer, arch: Architecture, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        self.calls += len(batch)
        bc = self.model(layer, arch).evaluate_batch(batch)
        return bc.energy.astype(np.float64), bc.cycles.astype(np.float64)

    def __getstate__(self) -> dict[str, Any]:
        return {"calls": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.calls = 0
        self._models = {}


CostFn = Callable[[Layer, Architecture, Mapping], "tuple[float, float] | None"]


class CallableBackend:
    """A user's cost model: ``fn(layer, arch, mapping) -> (energy, cycles)`` scores ONE mapping.

    `fn` is called once per mapping, in a Python loop (it may be slow: a simulator, a subprocess, an
    RTL model ...).  Returning None, or a non-finite / non-positive value, marks the mapping invalid.
    """

    def __init__(self, fn: CostFn, name: str | None = None) -> None:
        if not callable(fn):
            raise SpecError(f"cost backend must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "callable"))
        self.calls = 0

    def evaluate(self, layer: Layer, arch: Architecture, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        B = len(batch)
        energy = np.full(B, np.inf)
        cycles = np.full(B, np.inf)
        for i in range(B):
            out = self.fn(layer, arch, batch[i])
            self.calls += 1
            if out is None:
                continue
            try:
                e, c = float(out[0]), float(out[1])
            except (TypeError, ValueError, IndexError):
                raise SpecError(
                    f"cost backend {self.name!r} must return (energy, cycles) or None, got {out!r}"
                ) from None
            if math.isfinite(e) and math.isfinite(c) and e > 0 and c > 0:
                energy[i], cycles[i] = e, c
        return energy, cycles


def load_backend(spec: str | CostBackend | None) -> CostBackend:
    """'builtin' (default) or 'package.module:function' naming a CostFn; a backend object passes through."""
    if spec is None or spec == "builtin":
        return BuiltinBackend()
    if not isinstance(spec, str):
        return spec
    if ":" not in spec:
        raise SpecError(f"backend must be 'builtin' or 'module:function', got {spec!r}", "--backend")
    mod_name, fn_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise SpecError(f"cannot import module {mod_name!r}: {exc}", "--backend") from None
    fn = getattr(mod, fn_name, None)
    if fn is None:
        raise SpecError(f"module {mod_name!r} has no attribute {fn_name!r}", "--backend")
    if isinstance(fn, type):
        fn = fn()
    if hasattr(fn, "evaluate") and hasattr(fn, "name"):
        return fn  # already a CostBackend
    return CallableBackend(fn, name=spec)


class BackendModel(CostModel):
    """A CostModel whose scores come from a backend, so every search mapper can run on any cost model.

    `evaluate_batch` checks structure itself (`structural_valid`) and asks the backend only about the
    valid mappings; `evaluate` does the same for one.  With the built-in backend the plain CostModel is
    used unchanged.  `record=True` keeps every valid scored mapping (the dataset generator uses this to
    harvest a mapper's whole trajectory).
    """

    def __init__(self, layer: Layer, arch: Architecture, backend: CostBackend, record: bool = False) -> None:
        super().__init__(layer, arch)
        self.backend = backend
        self.record = record
        self.records: list[tuple[MappingBatch, np.ndarray, np.ndarray]] = []
        self.backend_calls = 0

    def evaluate_batch(self, b: MappingBatch, relax_orders: bool = False) -> BatchCost:  # noqa: D102
        if relax_orders:
            raise ValueError("order-relaxed bounds exist only for the built-in model")
        B = len(b)
        if isinstance(self.backend, BuiltinBackend):
            bc = super().evaluate_batch(b)
            self.backend.calls += B
            self.backend_calls += B
            energy, cycles, valid = bc.energy, bc.cycles, bc.valid
        else:
            valid = structural_valid(self, b)
            energy = np.full(B, np.inf)
            cycles = np.full(B, np.inf)
            idx = np.flatnonzero(valid)
            if len(idx):
                e, c = self.backend.evaluate(self.layer, self.arch, b.take(idx))
                self.backend_calls += len(idx)
                energy[idx], cycles[idx] = e, c
            valid = valid & np.isfinite(energy) & np.isfinite(cycles)
            bc = BatchCost(
                valid=valid,
                energy=np.where(valid, energy, np.inf),
                cycles=np.where(valid, cycles, np.inf),
                utilization=np.zeros(B),
                reason=np.where(valid, 0, 3).astype(np.int8),
                compute_cycles=np.zeros(B),
                level_cycles=np.zeros((self.L, B)),
            )
        if self.record and valid.any():
            idx = np.flatnonzero(valid)
            self.records.append((b.take(idx), np.asarray(energy)[idx].copy(), np.asarray(cycles)[idx].copy()))
        return bc

    def evaluate(self, m: Mapping) -> Cost:  # noqa: D102
        if isinstance(self.backend, BuiltinBackend):
            return super().evaluate(m)
        batch = m.to_arrays()
        if not structural_valid(self, batch)[0]:
            ref = super().evaluate(m)  # for the reason text only
            return Cost(False, ref.reason or "structurally invalid")
        e, c = self.backend.evaluate(self.layer, self.arch, batch)
        self.backend_calls += 1
        if not (np.isfinite(e[0]) and np.isfinite(c[0])):
            return Cost(False, f"rejected by cost backend {self.backend.name!r}")
        return Cost(True, energy=float(e[0]), cycles=float(c[0]), macs=self.macs)


# ============================================================================ encoding
def _log2(x: Any) -> Any:
    return np.log2(np.maximum(x, 1e-30))


def _footprints(e: Sequence[np.ndarray], stride: tuple[int, int], dilation: tuple[int, int]) -> list[np.ndarray]:
    sh, sw = stride
    dh, dw = dilation
    return [footprint(v, e, sh, sw, dh, dw) for v in range(N_TENSORS)]


def layer_features(layer: Layer) -> np.ndarray:
    """24 floats: log2 dims, log2 strides/dilations, densities, log2 MACs, kind one-hot, log2 tensor sizes."""
    dims = np.array(layer.problem_dims, dtype=np.float64)
    sizes = layer.tensor_sizes
    kind = np.zeros(len(LAYER_KINDS))
    kind[LAYER_KINDS.index(layer.kind)] = 1.0
    f = np.concatenate(
        [
            np.log2(dims),
            np.log2(np.array([*layer.stride, *layer.dilation], dtype=np.float64)),
            np.array(layer.density.as_tuple()),
            [math.log2(layer.macs)],
            kind,
            np.log2(np.array([sizes[t] for t in TENSORS], dtype=np.float64)),
        ]
    )
    return f.astype(np.float32)


def arch_features(arch: Architecture) -> np.ndarray:
    """46 floats per level (MAX_LEVELS, zero-padded) + 8 global: keeps, capacities, energies relative to a
    MAC, bandwidths, fanouts and their allowed dims, instances, word width, storage formats."""
    if arch.n_levels > MAX_LEVELS:
        raise SpecError(
            f"architecture {arch.name!r} has {arch.n_levels} levels; "
            f"the surrogate encoding supports at most {MAX_LEVELS}"
        )
    mac = max(arch.compute.mac_energy, 1e-6)
    rows = []
    for lvl in range(MAX_LEVELS):
        row = np.zeros(46)
        if lvl < arch.n_levels:
            m = arch.levels[lvl]
            keeps = [t in m.keeps for t in TENSORS]
            cap = m.capacity
            kind = [cap is None, isinstance(cap, int), isinstance(cap, dict)]
            caps = [0.0] * 3
            for v, t in enumerate(TENSORS):
                if keeps[v] and cap is not None:
                    caps[v] = math.log2(cap if isinstance(cap, int) else cap[t])
            fx = [(not m.fanout.x_dims) or d in m.fanout.x_dims for d in DIMS]
            fy = [(not m.fanout.y_dims) or d in m.fanout.y_dims for d in DIMS]
            fmts = np.zeros((3, len(FORMATS)))
            for v, t in enumerate(TENSORS):
                fmts[v, FORMATS.index(m.formats.get(t, "uncompressed"))] = 1.0
            row[:] = np.concatenate(
                [
                    [1.0],
                    keeps,
                    kind,
                    caps,
                    [math.log2(max(m.read_energy, 1e-6) / mac), math.log2(max(m.write_energy, 1e-6) / mac)],
                    [m.bandwidth is None, math.log2(m.bandwidth) if m.bandwidth else 0.0],
                    [math.log2(m.fanout.x), math.log2(m.fanout.y)],
                    fx,
                    fy,
                    [math.log2(arch.instances(lvl)), math.log2(arch.data_bits / m.word_bits)],
                    fmts.reshape(-1),
                ]
            )
        rows.append(row)
    comp = arch.compute
    glob = np.array(
        [
            math.log2(arch.num_pes),
            math.log2(arch.clock_ghz),
            arch.data_bits / 16.0,
            comp.sparse == "none",
            comp.sparse == "gate",
            comp.sparse == "skip",
            "inputs" in comp.on,
            "weights" in comp.on,
        ],
        dtype=np.float64,
    )
    return np.concatenate([np.concatenate(rows), glob]).astype(np.float32)


N_LAYER_FEATURES = 24
N_ARCH_FEATURES = 46 * MAX_LEVELS + 8
N_CONTEXT_FEATURES = N_LAYER_FEATURES + N_ARCH_FEATURES


def context_features(layer: Layer, arch: Architecture) -> np.ndarray:
    """Layer + architecture features: one vector per (layer, arch), shared by all its mappings."""
    return np.concatenate([layer_features(layer), arch_features(arch)])


_MAP_GROUPS = (
    ("log2 factors [level, dim, T/X/Y]", MAX_LEVELS * N_DIMS * 3),
    ("log2 tile footprint [level, tensor]", MAX_LEVELS * N_TENSORS),
    ("log2 spatially unioned footprint at the parent [child level, tensor]", MAX_LEVELS * N_TENSORS),
    ("log2 refetches of the child tile [child level, tensor]", MAX_LEVELS * N_TENSORS),
    ("log2 trailing-irrelevant temporal product (stationarity) [level, tensor]", MAX_LEVELS * N_TENSORS),
    ("no relevant temporal loop at this level [level, tensor]", MAX_LEVELS * N_TENSORS),
    ("innermost input-relevant loop is P/Q/R/S (halo) [level, 4]", MAX_LEVELS * 4),
    ("log2 temporal iterations above the level [level+1]", MAX_LEVELS),
    ("log2 instances in use below the level [level+1]", MAX_LEVELS),
    ("buffer occupancy (words / capacity) [level, tensor]", MAX_LEVELS * N_TENSORS),
    ("PE utilisation", 1),
)
N_MAPPING_FEATURES = sum(n for _, n in _MAP_GROUPS)


def feature_names() -> list[str]:
    """One description per mapping-feature group (with its size), for docs and debugging."""
    return [f"{name} ({n})" for name, n in _MAP_GROUPS]


class Encoder:
    """Encodes mappings of ONE layer on ONE architecture (build once, call many times)."""

    def __init__(self, layer: Layer, arch: Architecture) -> None:
        if arch.n_levels > MAX_LEVELS:
            raise SpecError(
                f"architecture {arch.name!r} has {arch.n_levels} levels; "
                f"the surrogate encoding supports at most {MAX_LEVELS}"
            )
        self.layer = layer
        self.arch = arch
        self.L = arch.n_levels
        self.context = context_features(layer, arch)
        self.stride = (layer.stride[0], layer.stride[1])
        self.dilation = (layer.dilation[0], layer.dilation[1])
        self.keeps = [[t in lvl.keeps for t in TENSORS] for lvl in arch.levels]
        self.chains = []  # per tensor: (parent, child) pairs of consecutive keeping levels, child L = MACs
        for v in range(N_TENSORS):
            kept = [lvl for lvl in range(self.L) if self.keeps[lvl][v]] + [self.L]
            self.chains.append(list(zip(kept[:-1], kept[1:])))
        self.word_scale = np.array([arch.data_bits / lvl.word_bits for lvl in arch.levels])
        self.caps: list[tuple[str, Any] | None] = []
        for lvl in arch.levels:
            cap = lvl.capacity
            if cap is None:
                self.caps.append(None)
            elif isinstance(cap, int):
                self.caps.append(("shared", float(cap)))
            else:
                self.caps.append(("part", [float(cap.get(t, 0) or 1) for t in TENSORS]))
        self.num_pes = arch.num_pes
        self.rel = np.array(RELEVANCE_MATRIX, dtype=bool)  # (tensors, dims)
        self._rel_dims = [np.flatnonzero(self.rel[v]) for v in range(N_TENSORS)]
        self._irr_dims = [np.flatnonzero(~self.rel[v]) for v in range(N_TENSORS)]
        self._pos_cache: dict[tuple[int, ...], np.ndarray] = {}

    def _positions(self, shape: tuple[int, ...]) -> np.ndarray:
        arr = self._pos_cache.get(shape)
        if arr is None:
            if len(self._pos_cache) > 8:
                self._pos_cache.clear()
            arr = self._pos_cache[shape] = np.broadcast_to(np.arange(shape[-1], dtype=np.int8), shape)
        return arr

    def __call__(self, b: MappingBatch, chunk: int = 16384) -> np.ndarray:
        """(B, N_MAPPING_FEATURES) float32 -- a transposed view of `encode_fm` (no copy)."""
        return self.encode_fm(b, chunk).T

    def encode_fm(self, b: MappingBatch, chunk: int = 16384) -> np.ndarray:
        """Feature-major (N_MAPPING_FEATURES, B) float32, contiguous: the layout the encoder computes in."""
        B = len(b)
        if B <= chunk:
            return self._encode(b)
        out = np.empty((N_MAPPING_FEATURES, B), dtype=np.float32)
        for i in range(0, B, chunk):
            out[:, i : i + chunk] = self._encode(b.take(slice(i, i + chunk)))
        return out

    def _encode(self, b: MappingBatch) -> np.ndarray:
        """Feature-major work arrays (one contiguous row per quantity), transposed once at the end."""
        L, D, V = self.L, N_DIMS, N_TENSORS
        B = len(b)
        F = np.zeros((N_MAPPING_FEATURES, B), dtype=np.float32)
        lay = lambda a: np.ascontiguousarray(np.transpose(a, (1, 2, 0)))  # (B, L, D) -> (L, D, B)  # noqa: E731
        T = lay(b.temporal)
        SX = lay(b.spatial_x)
        SY = lay(b.spatial_y)
        tab = self._log_table(max(int(T.max(initial=1)), int(SX.max(initial=1)), int(SY.max(initial=1))))
        lt, lx, ly = tab[T], tab[SX], tab[SY]  # (L, D, B) float32
        fac = F[: MAX_LEVELS * D * 3].reshape(MAX_LEVELS, D, 3, B)
        fac[:L, :, 0] = lt
        fac[:L, :, 1] = lx
        fac[:L, :, 2] = ly
        col = MAX_LEVELS * D * 3
        SP = (SX * SY).astype(np.float64)
        TS = T.astype(np.float64) * SP
        # E[l][d]: extents of level l's tile (l = L: one MAC); SPsuf[j][d]: spatial product of levels >= j
        one = np.ones(B)
        E: list[list[np.ndarray]] = [[one] * D for _ in range(L + 1)]  # rows above L are overwritten below
        SPsuf: list[list[np.ndarray]] = [[one] * D for _ in range(L + 1)]
        for lvl in range(L - 1, -1, -1):
            for d in range(D):
                E[lvl][d] = E[lvl + 1][d] * TS[lvl, d]
                SPsuf[lvl][d] = SPsuf[lvl + 1][d] * SP[lvl, d]
        fp_rows = F[col : col + MAX_LEVELS * V].reshape(MAX_LEVELS, V, B)
        col += MAX_LEVELS * V
        occ_rows = np.zeros((MAX_LEVELS, V, B), dtype=np.float32)
        for lvl in range(L):
            f = _footprints(E[lvl], self.stride, self.dilation)
            for v in range(V):
                fp_rows[lvl, v] = _flog2(f[v])
            cap = self.caps[lvl]
            if cap is not None:
                words = [f[v] * self.word_scale[lvl] if self.keeps[lvl][v] else 0.0 for v in range(V)]
                if cap[0] == "shared":
                    tot = (words[0] + words[1] + words[2]) / cap[1]
                    for v in range(V):
                        if self.keeps[lvl][v]:
                            occ_rows[lvl, v] = tot
                else:
                    for v in range(V):
                        if self.keeps[lvl][v]:
                            occ_rows[lvl, v] = words[v] / cap[1][v]
        uni = F[col : col + MAX_LEVELS * V].reshape(MAX_LEVELS, V, B)
        col += MAX_LEVELS * V
        for v in range(V):
            for p, c in self.chains[v]:
                ext = [E[c][d] * (SPsuf[p][d] / SPsuf[c][d]) for d in range(D)]
                uni[c - 1, v] = _flog2(_footprints(ext, self.stride, self.dilation)[v])
        # loop orders: pos[l, d] = position of dim d in level l's order (0 = outermost), -1 if factor 1
        inv = np.empty(b.order.shape, dtype=np.int8)
        np.put_along_axis(inv, b.order, self._positions(b.order.shape), axis=2)
        pos = np.where(T > 1, lay(inv), np.int8(-1))  # (L, D, B)
        tr = np.zeros((L, V, B), dtype=np.float32)
        none = np.zeros((L, V, B), dtype=bool)
        halo = F[col + 4 * MAX_LEVELS * V : col + 4 * MAX_LEVELS * V + MAX_LEVELS * 4].reshape(MAX_LEVELS, 4, B)
        lt_sum = lt.sum(axis=1)  # (L, B)
        for v in range(V):
            rel_dims, irr_dims = self._rel_dims[v], self._irr_dims[v]
            pr = pos[:, rel_dims]  # (L, nrel, B)
            best = pr.max(axis=1)  # (L, B): innermost relevant active loop, -1 if none
            trailing = pos[:, irr_dims] > best[:, None, :]
            acc = (lt[:, irr_dims] * trailing).sum(axis=1)
            has = best >= 0
            none[:, v] = ~has
            tr[:, v] = np.where(has, acc, lt_sum)
            if v == INPUTS:
                arg = rel_dims[pr.argmax(axis=1)]  # (L, B)
                for k, d in enumerate((P, Q, R, S)):
                    halo[:L, k] = has & (arg == d)
        outer = np.zeros((L + 1, B), dtype=np.float32)
        for lvl in range(L):
            outer[lvl + 1] = outer[lvl] + lt[lvl].sum(axis=0)
        nf = F[col : col + MAX_LEVELS * V].reshape(MAX_LEVELS, V, B)
        col += MAX_LEVELS * V
        for v in range(V):
            for _p, c in self.chains[v]:
                reuse = np.zeros(B, dtype=np.float32)
                stop = np.zeros(B, dtype=bool)
                for j in range(c - 1, -1, -1):
                    reuse += np.where(stop, 0.0, tr[j, v])
                    stop |= ~none[j, v]
                nf[c - 1, v] = outer[c] - reuse
        F[col : col + MAX_LEVELS * V].reshape(MAX_LEVELS, V, B)[:L] = tr
        col += MAX_LEVELS * V
        F[col : col + MAX_LEVELS * V].reshape(MAX_LEVELS, V, B)[:L] = none
        col += MAX_LEVELS * V
        col += MAX_LEVELS * 4  # halo, filled above
        F[col : col + L] = outer[1:]
        col += MAX_LEVELS
        lsp = (lx + ly).sum(axis=1)  # (L, B)
        F[col : col + L] = np.cumsum(lsp, axis=0)
        col += MAX_LEVELS
        F[col : col + MAX_LEVELS * V] = occ_rows.reshape(MAX_LEVELS * V, B)
        col += MAX_LEVELS * V
        used = np.ones(B)
        for d in range(D):
            used = used * SPsuf[0][d]
        F[col] = used / self.num_pes
        col += 1
        assert col == N_MAPPING_FEATURES
        return F

    _tab: np.ndarray | None = None

    def _log_table(self, n: int) -> np.ndarray:
        if self._tab is None or len(self._tab) <= n:
            size = max(n + 1, max(self.layer.problem_dims) + 1)
            self._tab = np.log2(np.maximum(np.arange(size, dtype=np.float64), 1.0)).astype(np.float32)
        return self._tab


_INV_LN2 = np.float32(1.0 / math.log(2.0))


def _flog2(x: Any) -> np.ndarray:
    """Fast float32 log2 (numpy's float32 log is vectorised, its log2 is not)."""
    return np.log(np.maximum(np.asarray(x, dtype=np.float32), np.float32(1e-30))) * _INV_LN2


def targets(layer: Layer, arch: Architecture, energy: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """(B, 2) regression targets: log2(energy / MACs) and log2(cycles / ideal cycles)."""
    macs = float(layer.macs)
    return np.stack([np.log2(energy / macs), np.log2(cycles * arch.num_pes / macs)], axis=1).astype(np.float32)


def from_targets(layer: Layer, arch: Architecture, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `targets`: (energy, cycles)."""
    macs = float(layer.macs)
    y = np.asarray(y, dtype=np.float64)
    return np.exp2(y[:, 0]) * macs, np.exp2(y[:, 1]) * macs / arch.num_pes


# ============================================================================ sampling helpers
def _dedupe(space: MapSpace, g: Genome, seen: set[bytes]) -> np.ndarray:
    """Indices of genomes not yet in `seen` (by effective mapping), adding them to it."""
    from rlmap.search.random_search import effective_keys

    keys = effective_keys(space, g)
    keep = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def random_valid(
    space: MapSpace, n: int, rng: np.random.Generator, uniform_frac: float = 0.5, max_uniform_draws: int = 60_000
) -> tuple[Genome, np.ndarray]:
    """`n` structurally valid genomes: part drawn uniformly with rejection (up to a draw cap), the rest
    uniform draws fanout- and capacity-repaired.  Returns them and their source index (SOURCES)."""
    from rlmap.search.genetic import Operators

    parts: list[Genome] = []
    src: list[np.ndarray] = []
    n_uni = int(round(n * uniform_frac))
    have, drawn = 0, 0
    while have < n_uni and drawn < max_uniform_draws:
        batch = min(
            max_uniform_draws - drawn, max(512, 4 * (n_uni - have) * (1 + drawn // max(have, 1) if have else 40))
        )
        batch = min(batch, 20_000)
        g = space.random_genomes(batch, rng)
        drawn += batch
        ok = structural_valid(space.model, space.decode(g))
        if ok.any():
            take = np.flatnonzero(ok)[: n_uni - have]
            parts.append(g.take(take))
            src.append(np.full(len(take), SOURCES.index("uniform")))
            have += len(take)
    ops = Operators(space)
    need = n - have
    while need > 0:
        g = ops.random(max(need, 64), rng)
        ok = capacity_repair(space, g, rng)
        take = np.flatnonzero(ok)[:need]
        parts.append(g.take(take))
        src.append(np.full(len(take), SOURCES.index("repaired")))
        need -= len(take)
    return Genome.concat(parts), np.concatenate(src).astype(np.int8)


# ============================================================================ the sample set
@dataclass
class SampleSet:
    """Scored mappings of many layers on one or more architectures.

    Per sample: `layer_idx` into `layers`, `arch_idx` into `archs`, factor and order arrays padded to
    MAX_LEVELS (padding factor 1, order identity), `energy`, `cycles` and `source` (index in SOURCES).
    `layer_networks[i]` lists the networks layer i came from ('synthetic' for generated ones).
    """

    layers: list[Layer]
    layer_networks: list[list[str]]
    archs: list[Architecture]
    layer_idx: np.ndarray
    arch_idx: np.ndarray
    temporal: np.ndarray
    spatial_x: np.ndarray
    spatial_y: np.ndarray
    order: np.ndarray
    energy: np.ndarray
    cycles: np.ndarray
    source: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.energy))

    @property
    def edp(self) -> np.ndarray:
        return self.energy * self.cycles

    def batch(self, idx: np.ndarray) -> MappingBatch:
        """Mappings at `idx` (all of one architecture), trimmed to its level count."""
        arch = self.archs[int(self.arch_idx[idx[0]])]
        L = arch.n_levels
        return MappingBatch(
            self.temporal[idx, :L].astype(np.int64),
            self.spatial_x[idx, :L].astype(np.int64),
            self.spatial_y[idx, :L].astype(np.int64),
            self.order[idx, :L].astype(np.int64),
        )

    def groups(self) -> list[tuple[int, int, np.ndarray]]:
        """(layer index, arch index, sample indices) for every (layer, arch) pair present."""
        key = self.layer_idx.astype(np.int64) * 1000 + self.arch_idx.astype(np.int64)
        out = []
        for k in np.unique(key):
            idx = np.flatnonzero(key == k)
            out.append((int(k // 1000), int(k % 1000), idx))
        return out

    def subset(self, idx: np.ndarray) -> SampleSet:
        return SampleSet(
            self.layers,
            self.layer_networks,
            self.archs,
            self.layer_idx[idx],
            self.arch_idx[idx],
            self.temporal[idx],
            self.spatial_x[idx],
            self.spatial_y[idx],
            self.order[idx],
            self.energy[idx],
            self.cycles[idx],
            self.source[idx],
            dict(self.meta),
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        from rlmap.spec.io import dump_model

        fmax = int(max(self.temporal.max(initial=1), self.spatial_x.max(initial=1), self.spatial_y.max(initial=1)))
        ftype = np.uint16 if fmax < 2**16 else np.uint32
        header = {
            "format": "rlmap-surrogate-dataset",
            "version": 1,
            "encoding_version": ENCODING_VERSION,
            "layers": [dump_model(lyr) for lyr in self.layers],
            "layer_networks": self.layer_networks,
            "archs": [dump_model(a) for a in self.archs],
            "meta": self.meta,
        }
        with p.open("wb") as fh:
            np.savez_compressed(
                fh,
                header=np.array(json.dumps(header)),
                layer_idx=self.layer_idx.astype(np.int32),
                arch_idx=self.arch_idx.astype(np.int16),
                temporal=self.temporal.astype(ftype),
                spatial_x=self.spatial_x.astype(ftype),
                spatial_y=self.spatial_y.astype(ftype),
                order=self.order.astype(np.int8),
                energy=self.energy.astype(np.float64),
                cycles=self.cycles.astype(np.float64),
                source=self.source.astype(np.int8),
            )
        return p

    @classmethod
    def load(cls, path: str | Path) -> SampleSet:
        p = Path(path)
        if p.is_dir():
            p = p / "dataset.npz"
        if not p.exists():
            raise SpecError("dataset file not found", str(p))
        try:
            z = np.load(p, allow_pickle=False)
            header = json.loads(str(z["header"]))
        except (OSError, ValueError, KeyError, EOFError) as exc:  # EOFError: an empty file
            what = f"{type(exc).__name__}: {exc or 'empty'}"
            raise SpecError(f"not an rlmap surrogate dataset ({what})", str(p)) from None
        if header.get("format") != "rlmap-surrogate-dataset":
            raise SpecError("not an rlmap surrogate dataset", str(p))
        from rlmap.spec.io import parse_model

        layers = [parse_model(Layer, d, f"{p}:layers[{i}]") for i, d in enumerate(header["layers"])]
        archs = [parse_model(Architecture, d, f"{p}:archs[{i}]") for i, d in enumerate(header["archs"])]
        return cls(
            layers,
            header["layer_networks"],
            archs,
            z["layer_idx"].astype(np.int64),
            z["arch_idx"].astype(np.int64),
            z["temporal"].astype(np.int64),
            z["spatial_x"].astype(np.int64),
            z["spatial_y"].astype(np.int64),
            z["order"].astype(np.int64),
            z["energy"],
            z["cycles"],
            z["source"].astype(np.int64),
            dict(header.get("meta", {})),
        )

    @staticmethod
    def merge(parts: Sequence[SampleSet]) -> SampleSet:
        """Concatenate sets (layer and arch tables are united by content)."""
        layers: list[Layer] = []
        nets: list[list[str]] = []
        archs: list[Architecture] = []
        lidx, aidx = [], []
        for s in parts:
            lmap = []
            for lyr, ln in zip(s.layers, s.layer_networks):
                for j, other in enumerate(layers):
                    if other == lyr:
                        nets[j] = sorted(set(nets[j]) | set(ln))
                        lmap.append(j)
                        break
                else:
                    layers.append(lyr)
                    nets.append(list(ln))
                    lmap.append(len(layers) - 1)
            amap = []
            for a in s.archs:
                if a in archs:
                    amap.append(archs.index(a))
                else:
                    archs.append(a)
                    amap.append(len(archs) - 1)
            lidx.append(np.array(lmap, dtype=np.int64)[s.layer_idx])
            aidx.append(np.array(amap, dtype=np.int64)[s.arch_idx])
        cat = lambda f: np.concatenate([getattr(s, f) for s in parts])  # noqa: E731
        meta = dict(parts[0].meta) if parts else {}
        return SampleSet(
            layers,
            nets,
            archs,
            np.concatenate(lidx),
            np.concatenate(aidx),
            cat("temporal"),
            cat("spatial_x"),
            cat("spatial_y"),
            cat("order"),
            cat("energy"),
            cat("cycles"),
            cat("source"),
            meta,
        )


def _pad(a: np.ndarray, fill: int) -> np.ndarray:
    B, L, D = a.shape
    out = np.full((B, MAX_LEVELS, D), fill, dtype=np.int64)
    out[:, :L] = a
    return out


def _pad_order(a: np.ndarray) -> np.ndarray:
    B, L, D = a.shape
    out = np.broadcast_to(np.arange(D), (B, MAX_LEVELS, D)).copy()
    out[:, :L] = a
    return out


# ============================================================================ per-layer generation
@dataclass
class LayerJob:
    layer: Layer
    arch: Architecture
    n: int
    seed: int
    backend: Any = None
    oversample: float | None = None
    mix: tuple[float, float, float] = (0.3, 0.5, 0.2)  # random valid, mapper trajectories, neighbours


def generate_layer_samples(job: LayerJob) -> tuple[MappingBatch, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Score `job.n` distinct valid mappings of one layer: (batch, energy, cycles, source, stats).

    Mix (fractions of n): random valid (half uniform-with-rejection, half repaired), trajectories of
    two genetic-mapper runs and one annealing run (with the built-in backend they run `oversample`
    times longer than needed and the kept trajectory points are stratified: the best 40% by EDP plus
    a uniform draw of the rest; with a slow backend every scored mapping is kept), and neighbours
    (1-3 genome moves) of the best mappings found.
    """
    from rlmap.search.annealing import AnnealingMapper
    from rlmap.search.genetic import GeneticMapper, Operators

    t0 = time.perf_counter()
    layer, arch = job.layer, job.arch
    backend = load_backend(job.backend)
    calls0 = backend.calls  # a backend object shared by in-process shards keeps counting: report this shard's own
    builtin = isinstance(backend, BuiltinBackend)
    oversample = job.oversample if job.oversample is not None else (3.0 if builtin else 1.0)
    rng = np.random.default_rng(job.seed)
    base = CostModel(layer, arch)
    space = MapSpace(layer, arch, base)
    seen: set[bytes] = set()
    n_rand = int(round(job.n * job.mix[0]))
    n_traj = int(round(job.n * job.mix[1]))
    n_local = job.n - n_rand - n_traj

    parts: list[tuple[Genome, np.ndarray, np.ndarray | None, np.ndarray | None]] = []

    # 1. random valid
    g, src = random_valid(space, n_rand, rng)
    keep = _dedupe(space, g, seen)
    parts.append((g.take(keep), src[keep], None, None))

    # 2. mapper trajectories on a recording model
    budget = max(32, int(n_traj * oversample))
    runs: list[tuple[Mapper, float]] = [
        (GeneticMapper(), 0.45),
        (GeneticMapper(population=48, extra_move_rate=0.3), 0.35),
        (AnnealingMapper(), 0.20),
    ]
    traj: list[tuple[MappingBatch, np.ndarray, np.ndarray, int]] = []
    best_g: list[Genome] = []
    for k, (mapper, frac) in enumerate(runs):
        rec = BackendModel(layer, arch, backend, record=True)
        res = mapper.search(
            layer, arch, "edp", budget=max(16, int(budget * frac)), seed=int(rng.integers(2**31)), model=rec
        )
        for b, e, c in rec.records:
            traj.append((b, e, c, SOURCES.index("ga" if k < 2 else "sa")))
        if res.mapping is not None:
            best_g.append(space.encode(res.mapping.to_arrays()))
    if traj:
        tb = MappingBatch(
            *(np.concatenate([getattr(t[0], f) for t in traj]) for f in ("temporal", "spatial_x", "spatial_y", "order"))
        )
        te = np.concatenate([t[1] for t in traj])
        tc = np.concatenate([t[2] for t in traj])
        ts = np.concatenate([np.full(len(t[1]), t[3]) for t in traj])
        tg = space.encode(tb)
        keep = _dedupe(space, tg, seen)
        tg, te, tc, ts = tg.take(keep), te[keep], tc[keep], ts[keep]
        if len(te) > n_traj:
            rank = np.argsort(te * tc)
            n_top = int(0.4 * n_traj)
            rest = rng.choice(rank[n_top:], size=n_traj - n_top, replace=False)
            sel = np.concatenate([rank[:n_top], rest])
            tg, te, tc, ts = tg.take(sel), te[sel], tc[sel], ts[sel]
        parts.append((tg, ts.astype(np.int8), te, tc))
        order = np.argsort(te * tc)
        elite = tg.take(order[: max(1, min(24, len(order)))])
    else:
        elite = Genome.concat(best_g) if best_g else g.take(slice(0, 1))

    # 3. neighbours of the elite (1-3 moves), structurally valid
    ops = Operators(space)
    need = n_local + (n_traj - (len(parts[1][1]) if len(parts) > 1 else 0)) + (n_rand - len(parts[0][1]))
    local: list[Genome] = []
    tries = 0
    while need > 0 and tries < 30:
        tries += 1
        m = max(64, 2 * need)
        pick = rng.integers(len(elite), size=m)
        parents = elite.take(pick)
        kids = ops.mutate(parents, rng, rng.integers(1, 4, size=m))
        ok = structural_valid(base, space.decode(kids))
        kids = kids.take(np.flatnonzero(ok))
        keep = _dedupe(space, kids, seen)[:need]
        if len(keep):
            local.append(kids.take(keep))
            need -= len(keep)
    if local:
        lg = Genome.concat(local)
        parts.append((lg, np.full(len(lg), SOURCES.index("local"), dtype=np.int8), None, None))

    # score everything not yet scored
    batches: list[MappingBatch] = []
    energies: list[np.ndarray] = []
    cycles: list[np.ndarray] = []
    sources: list[np.ndarray] = []
    rec = BackendModel(layer, arch, backend)
    for gg, ss, ee, cc in parts:
        if len(ss) == 0:
            continue
        b = space.decode(gg)
        if ee is None or cc is None:  # not scored yet (both None together)
            bc = rec.evaluate_batch(b)
            ok = bc.valid
            b, ee, cc, ss = b.take(np.flatnonzero(ok)), bc.energy[ok], bc.cycles[ok], ss[ok]
        batches.append(b)
        energies.append(ee)
        cycles.append(cc)
        sources.append(ss)
    out = MappingBatch(
        *(np.concatenate([getattr(b, f) for b in batches]) for f in ("temporal", "spatial_x", "spatial_y", "order"))
    )
    stats = {"seconds": time.perf_counter() - t0, "backend_calls": backend.calls - calls0}
    return out, np.concatenate(energies), np.concatenate(cycles), np.concatenate(sources).astype(np.int8), stats


def _run_job(job: LayerJob) -> tuple[MappingBatch, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    return generate_layer_samples(job)


def generate_samples(
    items: Sequence[tuple[Layer, list[str], Architecture]],
    samples_per_layer: int,
    seed: int = 0,
    backend: str | CostBackend | None = None,
    workers: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    meta: dict[str, Any] | None = None,
    executor: Any = None,
    resume_dir: str | Path | None = None,
) -> SampleSet:
    """Score `samples_per_layer` mappings for each (layer, networks, arch) item; see generate_layer_samples.

    Each (layer, arch) item is one shard task with its own seed, run by `executor` (an rlmap.execution Backend;
    default: `workers` local processes), so the data are the same on any backend.  With `resume_dir` every
    finished shard is kept there (atomically) and a rerun after an interruption reads it back.

    Ctrl-C raises rlmap.spec.errors.Interrupted whose `partial` is the SampleSet of the items finished by then
    (meta["partial"] = True), or None when none was.
    """
    layers: list[Layer] = []
    nets: list[list[str]] = []
    archs: list[Architecture] = []
    jobs: list[tuple[int, int, LayerJob]] = []
    for i, (layer, layer_nets, arch) in enumerate(items):
        if layer in layers:
            li = layers.index(layer)
            nets[li] = sorted(set(nets[li]) | set(layer_nets))
        else:
            layers.append(layer)
            nets.append(list(layer_nets))
            li = len(layers) - 1
        if arch not in archs:
            archs.append(arch)
        ai = archs.index(arch)
        jobs.append((li, ai, LayerJob(layer, arch, samples_per_layer, seed * 100_003 + i, backend)))
    from rlmap.execution import LocalBackend, ResultStore, run_tasks
    from rlmap.execution.store import task_key

    store = ResultStore(resume_dir) if resume_dir is not None else None
    shards = [j[2] for j in jobs]
    keys = [task_key("dataset_shard", job) for job in shards] if store is not None else None
    finished = 0

    def tick(k: int, _res: Any, _cached: bool) -> None:
        nonlocal finished
        finished += 1
        if progress:
            progress(finished, len(jobs), shards[k].layer.name)

    interrupted = False
    try:
        results = run_tasks(
            executor if executor is not None else LocalBackend(workers),
            _run_job,
            shards,
            store=store,
            keys=keys,
            on_result=tick,
        )
    except KeyboardInterrupt as exc:  # Ctrl-C: keep the (layer, arch) items finished so far (run_tasks passes them on)
        interrupted = True
        results = exc.partial if isinstance(exc, Interrupted) else [None] * len(jobs)
    done = [k for k, r in enumerate(results) if r is not None]
    if interrupted and not done:
        raise Interrupted(None, 0, len(jobs))
    # only the layers and architectures of finished items (all of them unless interrupted)
    used_l = sorted({jobs[k][0] for k in done})
    used_a = sorted({jobs[k][1] for k in done})
    lmap = {old: new for new, old in enumerate(used_l)}
    amap = {old: new for new, old in enumerate(used_a)}
    lidx, aidx, T, X, Y, O, E, Cy, Src = [], [], [], [], [], [], [], [], []
    calls = 0
    for k in done:
        li, ai, _job = jobs[k]
        b, e, c, s, st = results[k]
        lidx.append(np.full(len(e), lmap[li]))
        aidx.append(np.full(len(e), amap[ai]))
        T.append(_pad(b.temporal, 1))
        X.append(_pad(b.spatial_x, 1))
        Y.append(_pad(b.spatial_y, 1))
        O.append(_pad_order(b.order))
        E.append(e)
        Cy.append(c)
        Src.append(s)
        calls += int(st["backend_calls"])
    info = {
        "samples_per_layer": samples_per_layer,
        "seed": seed,
        "backend": load_backend(backend).name,
        "backend_calls": calls,
        "costmodel": costmodel_fingerprint(),
        "encoding_version": ENCODING_VERSION,
    }
    info.update(meta or {})
    if interrupted:
        info.update(partial=True, items_done=len(done), items_total=len(jobs))
    data = SampleSet(
        [layers[i] for i in used_l],
        [nets[i] for i in used_l],
        [archs[i] for i in used_a],
        np.concatenate(lidx),
        np.concatenate(aidx),
        np.concatenate(T),
        np.concatenate(X),
        np.concatenate(Y),
        np.concatenate(O),
        np.concatenate(E),
        np.concatenate(Cy),
        np.concatenate(Src),
        info,
    )
    if interrupted:
        raise Interrupted(data, len(done), len(jobs))
    return data


# ============================================================================ layers
_CHANNELS = (
    3,
    8,
    16,
    24,
    32,
    40,
    48,
    64,
    72,
    80,
    96,
    112,
    120,
    128,
    144,
    160,
    192,
    240,
    256,
    320,
    384,
    480,
    512,
    576,
    640,
    672,
    768,
    960,
    1024,
    1152,
    1280,
    2048,
    3072,
)
_SPATIAL = (1, 7, 10, 13, 14, 19, 28, 35, 56, 75, 112)
_TOKENS = (1, 49, 64, 128, 196, 256, 384, 512)


def synthetic_layers(n: int, seed: int = 0) -> list[Layer]:
    """`n` random but realistic layers (conv / depthwise / pointwise / gemm / matmul) for coverage."""
    rng = np.random.default_rng(seed)
    out: list[Layer] = []
    kinds = np.array(LAYER_KINDS)
    p_kind = np.array([0.36, 0.16, 0.24, 0.14, 0.10])
    attempts = 0
    while len(out) < n and attempts < 50 * n:
        attempts += 1
        kind = str(rng.choice(kinds, p=p_kind))
        ch = lambda lo=0, hi=len(_CHANNELS): int(_CHANNELS[rng.integers(lo, hi)])  # noqa: E731
        name = f"syn{len(out):03d}_{kind}"
        try:
            if kind == "conv":
                k = int(rng.choice([3, 3, 3, 5, 7, 1]))
                s = int(rng.choice([1, 1, 2]))
                pq = int(rng.choice(_SPATIAL[1:]))
                c, kk = ch(0, 27), ch(1, 28)
                lyr = Layer(name=name, kind="conv", K=kk, C=c, P=pq, Q=pq, R=k, S=k, stride=s, padding=k // 2)
            elif kind == "depthwise":
                k = int(rng.choice([3, 3, 5, 7]))
                s = int(rng.choice([1, 1, 2]))
                pq = int(rng.choice(_SPATIAL[1:]))
                c = ch(2, 30)
                lyr = Layer(
                    name=name, kind="depthwise", K=c, C=c, P=pq, Q=pq, R=k, S=k, groups=c, stride=s, padding=k // 2
                )
            elif kind == "pointwise":
                pq = int(rng.choice(_SPATIAL))
                lyr = Layer(name=name, kind="pointwise", K=ch(1, 33), C=ch(1, 33), P=pq, Q=pq)
            elif kind == "gemm":
                lyr = Layer(name=name, kind="gemm", K=ch(4, 33), C=ch(4, 33), P=int(rng.choice(_TOKENS)))
            else:
                heads = int(rng.choice([4, 8, 12, 16]))
                t = int(rng.choice(_TOKENS[1:]))
                hd = int(rng.choice([32, 64, 128]))
                if rng.random() < 0.5:  # scores: Q K^T
                    lyr = Layer(name=name, kind="matmul", K=heads * t, C=heads * hd, P=t, groups=heads)
                else:  # context: A V
                    lyr = Layer(name=name, kind="matmul", K=heads * hd, C=heads * t, P=t, groups=heads)
        except ValueError:
            continue
        if lyr.macs > 4e9 or lyr.macs < 1e4:
            continue
        out.append(lyr)
    return out


def network_layers(networks: Iterable[str]) -> list[tuple[Layer, list[str]]]:
    """(layer, networks it appears in) for the given network presets/files, one per distinct
    cost-model shape (`layer_key`); the first layer of each shape represents it."""
    from rlmap.spec.io import load_network

    out: list[tuple[Layer, list[str]]] = []
    seen: dict[tuple, int] = {}
    for name in networks:
        net = load_network(name)
        for lyr in net.layers:
            k = layer_key(lyr)
            if k in seen:
                nets = out[seen[k]][1]
                if net.name not in nets:
                    nets.append(net.name)
                continue
            seen[k] = len(out)
            out.append((lyr, [net.name]))
    return out
