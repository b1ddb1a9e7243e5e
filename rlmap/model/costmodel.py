"""Analytical cost model (Timeloop-style nest analysis, Sparseloop-style expected-value sparsity).

`CostModel.evaluate` (one mapping) and `CostModel.evaluate_batch` (many) run the compiled kernel in
rlmap/model/kernel.py.  `evaluate_reference` is the same model in plain Python, the readable reference
(and the path that words why a mapping is invalid); tests hold the two to the same numbers.  Every formula is
written out in docs/costmodel.md.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rlmap.model.kernel import FMT_CODES, REL, KernelStatic, evaluate_kernel, window_union
from rlmap.model.semantics import RULES, Rules
from rlmap.spec.arch import Architecture, MemoryLevel
from rlmap.spec.errors import InvalidMappingError, SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping, MappingBatch, placement_problem
from rlmap.spec.problem import (
    DIMS,
    INPUTS,
    N_DIMS,
    N_TENSORS,
    OUTPUTS,
    RELEVANCE_MATRIX,
    TENSORS,
    WEIGHTS,
    C,
    G,
    K,
    N,
    P,
    Q,
    R,
    S,
)

Objective = Literal["energy", "latency", "edp"]
OBJECTIVES: tuple[str, ...] = ("energy", "latency", "edp")
RLE_RUN_BITS = 4
"""Bits of run length stored with every non-zero in the run-length format."""


# ----------------------------------------------------------------------------- shared formulas
def footprint(tensor: int, e: Sequence[Any] | np.ndarray, sh: int, sw: int, dh: int, dw: int) -> Any:
    """Words of `tensor` touched by a tile with per-dim extents `e` (scalars or numpy arrays).

    Inputs use the sliding-window box (p-1)*stride + (r-1)*dilation + 1 per spatial axis.
    """
    if tensor == INPUTS:
        h = (e[P] - 1) * sh + (e[R] - 1) * dh + 1
        w = (e[Q] - 1) * sw + (e[S] - 1) * dw + 1
        return e[N] * e[G] * e[C] * h * w
    if tensor == WEIGHTS:
        return e[G] * e[K] * e[C] * e[R] * e[S]
    return e[N] * e[G] * e[K] * e[P] * e[Q]


def format_factor(fmt: str, density: float, tile: Any, data_bits: int) -> Any:
    """Stored words per dense word for a tile in a storage format, metadata included (expected value).

    A dense tensor (density 1) is never compressed, so every format reduces exactly to 1 there.
    """
    if fmt == "uncompressed" or density >= 1.0:
        return 1.0
    if fmt == "bitmask":
        return density + 1.0 / data_bits
    if fmt == "rle":
        return density * (1.0 + RLE_RUN_BITS / data_bits)
    if fmt == "coordinate":
        bits = np.ceil(np.log2(np.maximum(tile, 2)))
        return density * (1.0 + bits / data_bits)
    raise ValueError(f"unknown format {fmt!r}")


def capacity_spec(level: MemoryLevel) -> tuple[str, Any] | None:
    """A level's capacity as ("shared", words), ("part", [words per tensor]) or None (unbounded)."""
    cap = level.capacity
    if cap is None:
        return None
    if isinstance(cap, int):
        return ("shared", cap)
    return ("part", [cap.get(t, 0) for t in TENSORS])


def objective_value(energy: Any, cycles: Any, objective: str) -> Any:
    """The scalar a mapper minimises."""
    if objective == "energy":
        return energy
    if objective == "latency":
        return cycles
    if objective == "edp":
        return energy * cycles
    raise ValueError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")


# ----------------------------------------------------------------------------- results
@dataclass
class Cost:
    """Score of one mapping. Access counts are in words of each level, indexed [level][tensor]."""

    valid: bool
    reason: str = ""
    energy: float = math.inf
    cycles: float = math.inf
    compute_cycles: float = math.inf
    macs: int = 0
    effective_macs: float = 0.0
    utilization: float = 0.0
    reads: list[list[float]] = field(default_factory=list)
    writes: list[list[float]] = field(default_factory=list)
    level_energy: list[float] = field(default_factory=list)
    level_cycles: list[float] = field(default_factory=list)
    mac_energy: float = 0.0
    tiles: list[list[float]] = field(default_factory=list)

    @property
    def edp(self) -> float:
        return self.energy * self.cycles

    def objective(self, objective: str) -> float:
        return objective_value(self.energy, self.cycles, objective)


@dataclass
class BatchCost:
    """Scores of a batch; invalid mappings have inf energy/cycles and a reason code."""

    valid: np.ndarray
    energy: np.ndarray
    cycles: np.ndarray
    utilization: np.ndarray
    reason: np.ndarray  # 0 valid, 1 factors, 2 fanout, 3 capacity, 4 order, 5 bypass/placement
    compute_cycles: np.ndarray
    level_cycles: np.ndarray  # (levels, B): traffic / (instances used x bandwidth); 0 where unbounded

    @property
    def edp(self) -> np.ndarray:
        return self.energy * self.cycles

    def objective(self, objective: str) -> np.ndarray:
        return objective_value(self.energy, self.cycles, objective)


def energy_by_level_tensor(cost: Cost, arch: Architecture) -> list[list[float]]:
    """Energy of each level split by tensor, [level][tensor] (reads x read energy + writes x write energy);
    each row sums to `cost.level_energy[level]`."""
    return [
        [cost.reads[i][v] * lvl.read_energy + cost.writes[i][v] * lvl.write_energy for v in range(N_TENSORS)]
        for i, lvl in enumerate(arch.levels)
    ]


REASON_CODES = {
    0: "valid",
    1: "factors do not multiply to the layer's dimensions",
    2: "spatial factors exceed a fanout or use a dimension the fanout forbids",
    3: "a tile exceeds a level's capacity",
    4: "a loop order is not a permutation",
    5: "a tensor is bypassed or placed where the architecture does not allow it",
}


# ----------------------------------------------------------------------------- the model
class CostModel:
    """A layer bound to an architecture; build once, evaluate many mappings."""

    def __init__(self, layer: Layer, arch: Architecture, rules: Rules | None = None) -> None:
        """`rules` overrides the architecture's semantics rule by rule (to measure what each rule changes)."""
        self.layer = layer
        self.arch = arch
        self.dims: tuple[int, ...] = layer.problem_dims
        self.macs: int = layer.macs
        self.L = L = arch.n_levels
        self.sh, self.sw = layer.stride
        self.dh, self.dw = layer.dilation
        self.density = layer.density.as_tuple()
        self.data_bits = arch.data_bits
        self.semantics = arch.semantics
        self.rules = RULES[arch.semantics] if rules is None else rules
        self.keeps = [[TENSORS[v] in lvl.keeps for v in range(N_TENSORS)] for lvl in arch.levels]
        # For each tensor, the (parent, child) pairs of consecutive levels keeping it; child L = the MACs.
        self.chains: list[list[tuple[int, int]]] = []
        for v in range(N_TENSORS):
            kept = [lvl for lvl in range(L) if self.keeps[lvl][v]] + [L]
            self.chains.append(list(zip(kept[:-1], kept[1:])))
        self.word_scale = [arch.data_bits / lvl.word_bits for lvl in arch.levels]
        self.read_e = [lvl.read_energy for lvl in arch.levels]
        self.write_e = [lvl.write_energy for lvl in arch.levels]
        self.bandwidth = [lvl.bandwidth for lvl in arch.levels]
        self.formats = [[lvl.formats.get(TENSORS[v], "uncompressed") for v in range(N_TENSORS)] for lvl in arch.levels]
        # Formats whose factor does not depend on the tile are folded into constants here.
        self.fmt_const: list[list[float | None]] = [
            [
                None
                if (f == "coordinate" and self.density[v] < 1.0)
                else float(format_factor(f, self.density[v], 1, self.data_bits))
                for v, f in enumerate(row)
            ]
            for row in self.formats
        ]
        self.capacity = [capacity_spec(lvl) for lvl in arch.levels]
        self.fan_x = [lvl.fanout.x for lvl in arch.levels]
        self.fan_y = [lvl.fanout.y for lvl in arch.levels]
        self.allow_x = [
            [(not lvl.fanout.x_dims) or DIMS[d] in lvl.fanout.x_dims for d in range(N_DIMS)] for lvl in arch.levels
        ]
        self.allow_y = [
            [(not lvl.fanout.y_dims) or DIMS[d] in lvl.fanout.y_dims for d in range(N_DIMS)] for lvl in arch.levels
        ]
        # fans_between[p][c]: whether any level p..c-1 has a spatial fanout (else no multicast there)
        self.fans_between = [
            [any(arch.levels[i].fanout.size > 1 for i in range(p, c)) for c in range(L + 1)] for p in range(L + 1)
        ]
        self.restricted = [not (all(ax) and all(ay)) for ax, ay in zip(self.allow_x, self.allow_y)]
        self.num_pes = arch.num_pes
        comp = arch.compute
        self.mac_energy = comp.mac_energy
        phi = 1.0
        if comp.sparse != "none":
            for t in comp.on:
                phi *= self.density[TENSORS.index(t)]
        self.phi = phi  # fraction of MACs (and their operand accesses) that are effectual
        self.skip = comp.sparse == "skip"
        # halo: which axis and coefficient each dim moves the input window by
        self._halo_coef = {P: self.sh, R: self.dh, Q: self.sw, S: self.dw}
        self.kernel_static = self._kernel_static()
        self._single_out: dict[str, np.ndarray] | None = None

    def _kernel_static(self) -> KernelStatic:
        L = self.L
        chain_p = np.zeros((N_TENSORS, L), dtype=np.int64)
        chain_c = np.zeros((N_TENSORS, L), dtype=np.int64)
        for v, chain in enumerate(self.chains):
            for i, (p, c) in enumerate(chain):
                chain_p[v, i], chain_c[v, i] = p, c
        cap_kind = np.zeros(L, dtype=np.int64)
        cap_val = np.zeros((L, N_TENSORS))
        for lvl, cap in enumerate(self.capacity):
            if cap is not None:
                if cap[0] == "shared":
                    cap_kind[lvl], cap_val[lvl, 0] = 1, cap[1]
                else:
                    cap_kind[lvl], cap_val[lvl] = 2, cap[1]
        return KernelStatic(
            dims=np.array(self.dims, dtype=np.float64),
            geom=np.array([self.sh, self.sw, self.dh, self.dw], float),
            keeps=np.array(self.keeps, dtype=np.bool_),
            may_bypass=np.array([[t in lvl.may_bypass for t in TENSORS] for lvl in self.arch.levels], dtype=np.bool_),
            chain_p=chain_p,
            chain_c=chain_c,
            n_pairs=np.array([len(c) for c in self.chains], dtype=np.int64),
            word_scale=np.array(self.word_scale, float),
            read_e=np.array(self.read_e, float),
            write_e=np.array(self.write_e, float),
            bandwidth=np.array([-1.0 if bw is None else bw for bw in self.bandwidth], float),
            fmt=np.array([[FMT_CODES[f] for f in row] for row in self.formats], dtype=np.int64),
            fmt_const=np.array([[np.nan if f is None else f for f in row] for row in self.fmt_const], float),
            density=np.array(self.density, float),
            cap_kind=cap_kind,
            cap_val=cap_val,
            fan_x=np.array(self.fan_x, float),
            fan_y=np.array(self.fan_y, float),
            allow_x=np.array(self.allow_x, dtype=np.bool_),
            allow_y=np.array(self.allow_y, dtype=np.bool_),
            fans_between=np.array(self.fans_between, dtype=np.bool_),
            scalars=np.array(
                [
                    self.phi,
                    1.0 if self.skip else 0.0,
                    self.mac_energy,
                    float(self.macs),
                    float(self.num_pes),
                    float(self.data_bits),
                    float(RLE_RUN_BITS),
                ]
            ),
            rules=self.rules.as_array(),
            max_span=max(
                Layer.input_extent(self.dims[P], self.dims[R], self.sh, self.dh),
                Layer.input_extent(self.dims[Q], self.dims[S], self.sw, self.dw),
            ),
        )

    # ------------------------------------------------------------------ one mapping
    def evaluate(self, m: Mapping) -> Cost:
        """Score one mapping (compiled kernel); an invalid one comes back with valid=False and the reason."""
        try:
            packed = np.array((m.temporal, m.spatial_x, m.spatial_y, m.order), dtype=np.int64)
            tensors = np.array(
                [
                    [m.bypass_row(lvl) for lvl in range(len(m.temporal))],
                    [m.place_row(lvl) for lvl in range(len(m.temporal))],
                ],
                dtype=np.int64,
            )
        except (ValueError, OverflowError):  # ragged, or a factor past int64: the reference words the reason
            return self.evaluate_reference(m)
        if packed.shape != (4, self.L, N_DIMS) or tensors.shape != (2, self.L, N_TENSORS):
            return self.evaluate_reference(m)
        out = self._run_kernel(
            packed[0:1], packed[1:2], packed[2:3], packed[3:4], tensors[0:1], tensors[1:2], relax=False, reuse=True
        )
        if out["reason"][0] != 0:
            return self.evaluate_reference(m)  # the readable path words the reason
        reads, writes = out["reads"][0].tolist(), out["writes"][0].tolist()
        level_energy = [
            sum(reads[lvl]) * self.read_e[lvl] + sum(writes[lvl]) * self.write_e[lvl] for lvl in range(self.L)
        ]
        eff_macs = self.macs * self.phi
        return Cost(
            valid=True,
            energy=float(out["energy"][0]),
            cycles=float(out["cycles"][0]),
            compute_cycles=float(out["compute_cycles"][0]),
            macs=self.macs,
            effective_macs=eff_macs,
            utilization=float(out["utilization"][0]),
            reads=reads,
            writes=writes,
            level_energy=level_energy,
            level_cycles=out["level_cycles"][0].tolist(),
            mac_energy=eff_macs * self.mac_energy,
            tiles=out["tiles"][0].tolist(),
        )

    def _run_kernel(
        self,
        temporal: np.ndarray,
        spatial_x: np.ndarray,
        spatial_y: np.ndarray,
        order: np.ndarray,
        bypass: np.ndarray,
        place: np.ndarray,
        relax: bool,
        reuse: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run the compiled kernel; `reuse` recycles the output arrays of a batch of one (copy what you keep)."""
        B = temporal.shape[0]
        detail = reuse  # one mapping: the caller wants the per-level breakdown
        if reuse and self._single_out is not None:
            out = self._single_out
        else:
            out = self._new_outputs(B, detail)
            if reuse:
                self._single_out = out
        k = self.kernel_static
        evaluate_kernel(
            temporal,
            spatial_x,
            spatial_y,
            order,
            bypass,
            place,
            k.dims,
            k.geom,
            k.keeps,
            k.may_bypass,
            k.word_scale,
            k.read_e,
            k.write_e,
            k.bandwidth,
            k.fmt,
            k.fmt_const,
            k.density,
            k.cap_kind,
            k.cap_val,
            k.fan_x,
            k.fan_y,
            k.allow_x,
            k.allow_y,
            k.fans_between,
            k.scalars,
            k.rules,
            k.max_span,
            REL,
            relax,
            detail,
            out["energy"],
            out["cycles"],
            out["utilization"],
            out["compute_cycles"],
            out["level_cycles"],
            out["reason"],
            out["reads"],
            out["writes"],
            out["tiles"],
        )
        return out

    def _new_outputs(self, B: int, detail: bool) -> dict[str, np.ndarray]:
        L = self.L
        nd = B if detail else 1  # the breakdown arrays are only written with detail
        return {
            "energy": np.empty(B),
            "cycles": np.empty(B),
            "utilization": np.empty(B),
            "compute_cycles": np.zeros(B),
            "level_cycles": np.zeros((B, L)),
            "reason": np.empty(B, dtype=np.int8),
            "reads": np.zeros((nd, L, N_TENSORS)),
            "writes": np.zeros((nd, L, N_TENSORS)),
            "tiles": np.zeros((nd, L, N_TENSORS)),
        }

    def evaluate_reference(self, m: Mapping) -> Cost:
        """Score one mapping in plain Python: the readable reference the compiled kernel is tested against,
        and the path that words the reason of an invalid mapping."""
        L = self.L
        t, sx, sy, order = m.temporal, m.spatial_x, m.spatial_y, m.order
        if len(t) != L or len(sx) != L or len(sy) != L or len(order) != L:
            return Cost(False, f"mapping has {len(t)} levels, architecture {self.arch.name!r} has {L}")
        sp = []
        used = [1] * (L + 1)  # used[l]: instances of level l in use
        positive = True
        for lvl in range(L):
            rx, ry = sx[lvl], sy[lvl]
            ux, uy = math.prod(rx), math.prod(ry)
            if self.restricted[lvl]:
                for d in range(N_DIMS):
                    if (rx[d] > 1 and not self.allow_x[lvl][d]) or (ry[d] > 1 and not self.allow_y[lvl][d]):
                        axis = "X" if rx[d] > 1 and not self.allow_x[lvl][d] else "Y"
                        return Cost(
                            False,
                            f"level {self.arch.levels[lvl].name}: dimension {DIMS[d]} may not be unrolled on {axis}",
                        )
            if ux > self.fan_x[lvl] or uy > self.fan_y[lvl]:
                axis, used_, lim = ("X", ux, self.fan_x[lvl]) if ux > self.fan_x[lvl] else ("Y", uy, self.fan_y[lvl])
                return Cost(
                    False, f"level {self.arch.levels[lvl].name}: spatial {axis} factors use {used_} > fanout {lim}"
                )
            spl: Sequence[int]
            if uy == 1 and min(ry) == 1:
                spl = rx
            elif ux == 1 and min(rx) == 1:
                spl = ry
            else:
                spl = [a * b for a, b in zip(rx, ry)]
            sp.append(spl)
            used[lvl + 1] = used[lvl] * ux * uy
            positive = positive and min(t[lvl]) >= 1 and min(spl) >= 1
            if len(order[lvl]) != N_DIMS or set(order[lvl]) != _ALL_DIMS:
                return Cost(False, f"level {self.arch.levels[lvl].name}: loop order is not a permutation of the dims")
        if not positive:
            return Cost(False, "factors must be positive integers")
        # E[l][d]: extent of dim d in one instance of level l's tile; E[L] is one MAC.
        E: list[Any] = [None] * L + [_ONES]
        for lvl in range(L - 1, -1, -1):
            E[lvl] = [e * a * b for e, a, b in zip(E[lvl + 1], t[lvl], sp[lvl])]
        if tuple(E[0]) != self.dims:
            d = next(i for i in range(N_DIMS) if E[0][i] != self.dims[i])
            return Cost(False, f"dimension {DIMS[d]}: factors multiply to {E[0][d]}, layer needs {self.dims[d]}")
        sh, sw, dh, dw = self.sh, self.sw, self.dh, self.dw

        reason = placement_problem(m, self.arch)
        if reason:
            return Cost(False, reason)
        keeps = m.kept(self.arch) if m.bypass is not None else self.keeps
        place = [m.place_row(lvl) for lvl in range(L)]
        # Ev[l][v]: extents of tensor v's tile at level l: the level tile less the loops placed above it
        Ev: list[Any] = [[list(E[lvl]) for _ in range(N_TENSORS)] for lvl in range(L)] + [[list(_ONES)] * N_TENSORS]
        for lvl in range(L):
            for v in range(N_TENSORS):
                for d in order[lvl][: place[lvl][v]]:
                    Ev[lvl][v][d] //= t[lvl][d]

        # capacity
        tiles = [[0.0] * N_TENSORS for _ in range(L)]
        fmt_f = [[1.0] * N_TENSORS for _ in range(L)]
        fps = [[1] * N_TENSORS for _ in range(L + 1)]  # footprints of kept tiles (one element at the MACs)
        for lvl in range(L):
            for v in range(N_TENSORS):
                if keeps[lvl][v]:
                    tile = fps[lvl][v] = footprint(v, Ev[lvl][v], sh, sw, dh, dw)
                    f = self.fmt_const[lvl][v]
                    if f is None:
                        f = float(format_factor(self.formats[lvl][v], self.density[v], tile, self.data_bits))
                    fmt_f[lvl][v] = f
                    tiles[lvl][v] = tile * self.word_scale[lvl] * f
            cap = self.capacity[lvl]
            if cap is not None:
                reason = self._capacity_reason(lvl, cap, tiles[lvl], keeps[lvl])
                if reason:
                    return Cost(False, reason)

        reads = [[0.0] * N_TENSORS for _ in range(L)]
        writes = [[0.0] * N_TENSORS for _ in range(L)]
        # the temporal nest outermost first, every level's loops in its order (factor-1 loops do nothing)
        nest = [(lvl, d, t[lvl][d]) for lvl in range(L) for d in order[lvl]]
        total_iters = math.prod(f for _, _, f in nest)
        for v in range(N_TENSORS):
            rel = RELEVANCE_MATRIX[v]
            kept = [lvl for lvl in range(L) if keeps[lvl][v]] + [L]
            # state[i]: (nfetch, innermost relevant loop (level, dim, factor), distinct) above nest position i
            state: list[tuple[int, tuple[int, int, int] | None, int]] = [(1, None, 1)]
            cum, nfetch, last, distinct = 1, 1, None, 1
            for loop in nest:
                cum *= loop[2]
                if rel[loop[1]] and loop[2] > 1:
                    last = loop
                    distinct *= loop[2]
                    nfetch = cum
                state.append((nfetch, last, distinct))
            for p, c in itertools.pairwise(kept):
                ec = Ev[c][v]
                if c == L:
                    nfetch, last_loop, distinct = total_iters, None, state[-1][2]
                else:
                    nfetch, last_loop, distinct = state[c * N_DIMS + place[c][v]]
                F = fps[c][v]
                U = F  # words one parent read serves: the children's tiles, multicast where shared
                split_h = split_w = False
                if self.fans_between[p][c]:
                    spread = [math.prod(sp[lvl][d] for lvl in range(p, c)) for d in range(N_DIMS)]
                    if v != INPUTS:
                        U = footprint(v, [e * n for e, n in zip(ec, spread)], sh, sw, dh, dw)
                    elif self.rules.window_multicast:
                        # rule 2 on: the union of the children's windows, rows and columns apart
                        terms_h = self._axis_terms(p, c, P, R, sp, E)
                        terms_w = self._axis_terms(p, c, Q, S, sp, E)
                        split_h, split_w = bool(terms_h), bool(terms_w)
                        uh = _union(Layer.input_extent(ec[P], ec[R], sh, dh), terms_h)
                        uw = _union(Layer.input_extent(ec[Q], ec[S], sw, dw), terms_w)
                        U = ec[N] * spread[N] * ec[G] * spread[G] * ec[C] * spread[C] * uh * uw
                    else:
                        # rule 2 off: one window per child position, shared only across irrelevant dims
                        U = F * math.prod(spread[d] for d in range(N_DIMS) if RELEVANCE_MATRIX[v][d])
                if c == L:
                    scale_p = self.phi * self.word_scale[p]
                else:
                    scale_p = fmt_f[p][v] * self.word_scale[p]
                if v == OUTPUTS:
                    refetch = used[p] * (nfetch - distinct) * U
                    reads[p][v] += refetch * scale_p
                    writes[p][v] += used[p] * nfetch * U * scale_p
                    if c < L:
                        if self.rules.reduced_psum_fill:  # rule 3 on: one child takes the old partial sum
                            writes[c][v] += refetch * self.word_scale[c]
                        else:  # rule 3 off: every child instance is refilled
                            writes[c][v] += used[c] * (nfetch - distinct) * F * self.word_scale[c]
                        reads[c][v] += used[c] * nfetch * F * self.word_scale[c]
                    continue
                hu = hc = 1.0
                if (
                    v == INPUTS and self.rules.halo_reuse and last_loop is not None and last_loop[1] in self._halo_coef
                ):  # rule 1
                    j, d, f = last_loop
                    step = ec[d] * self._halo_coef[d]
                    for lvl in range(j, c):
                        step *= sp[lvl][d]
                    if d == P or d == R:
                        ext_c = (ec[P] - 1) * sh + (ec[R] - 1) * dh + 1
                    else:
                        ext_c = (ec[Q] - 1) * sw + (ec[S] - 1) * dw + 1
                    hc = (1 + (f - 1) * min(ext_c, step) / ext_c) / f
                    # a spatially split window axis: the parent refetches the whole union (no halo credit);
                    # otherwise the union's window along the axis is the children's own
                    if not (split_h if (d == P or d == R) else split_w):
                        hu = hc
                reads[p][v] += used[p] * nfetch * U * hu * scale_p
                if c < L:
                    writes[c][v] += used[c] * nfetch * F * hc * fmt_f[c][v] * self.word_scale[c]

        level_energy = [sum(reads[lvl]) * self.read_e[lvl] + sum(writes[lvl]) * self.write_e[lvl] for lvl in range(L)]
        eff_macs = self.macs * self.phi
        mac_e = eff_macs * self.mac_energy
        compute_cycles = total_iters * (self.phi if self.skip else 1.0)
        level_cycles = []
        for lvl in range(L):
            bw = self.bandwidth[lvl]
            level_cycles.append(0.0 if bw is None else (sum(reads[lvl]) + sum(writes[lvl])) / (used[lvl] * bw))
        cycles = max(compute_cycles, max(level_cycles))
        return Cost(
            valid=True,
            energy=sum(level_energy) + mac_e,
            cycles=cycles,
            compute_cycles=compute_cycles,
            macs=self.macs,
            effective_macs=eff_macs,
            utilization=used[L] / self.num_pes,
            reads=reads,
            writes=writes,
            level_energy=level_energy,
            level_cycles=level_cycles,
            mac_energy=mac_e,
            tiles=tiles,
        )

    def _axis_terms(self, p: int, c: int, da: int, db: int, sp: list, E: list) -> list[tuple[int, int]]:
        """(count, step in input rows) of every spatial unroll of window dims da (P|Q) and db (R|S) between
        levels p and c: the children's windows along that axis start at every sum of k * step, k < count."""
        coef = self._halo_coef
        terms = []
        for i in range(p, c):
            for d in (da, db):
                if sp[i][d] > 1:
                    terms.append((sp[i][d], coef[d] * E[i + 1][d]))
        return terms

    def tile_check(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For tile extents E (levels >= L, dims, B): the format factors (L, tensors, B) and a mask of
        mappings whose tiles overflow some level's capacity."""
        L = self.L
        B = E.shape[-1]
        sh, sw, dh, dw = self.sh, self.sw, self.dh, self.dw
        fmt_f = np.ones((L, N_TENSORS, B))
        over = np.zeros(B, dtype=bool)
        for lvl in range(L):
            cap = self.capacity[lvl]
            words: list[Any] = [0.0] * N_TENSORS
            for v in range(N_TENSORS):
                if not self.keeps[lvl][v]:
                    continue
                tile = footprint(v, E[lvl], sh, sw, dh, dw)
                f = self.fmt_const[lvl][v]
                if f is None:
                    f = format_factor(self.formats[lvl][v], self.density[v], tile, self.data_bits)
                fmt_f[lvl, v] = f
                words[v] = tile * (self.word_scale[lvl] * f)
            if cap is None:
                continue
            kind, size = cap
            if kind == "shared":
                over |= (words[0] + words[1] + words[2]) > size + 1e-9
            else:
                for v in range(N_TENSORS):
                    if self.keeps[lvl][v]:
                        over |= words[v] > size[v] + 1e-9
        return fmt_f, over

    def _capacity_reason(self, lvl: int, cap: tuple[str, Any], words: list[float], keeps: list[bool]) -> str:
        """Empty if level `lvl`'s tiles (of the tensors in `keeps`) fit, else which tensor needs how many words."""
        name = self.arch.levels[lvl].name
        kind, size = cap
        if kind == "shared":
            need = sum(words)
            if need > size + 1e-9:
                parts = ", ".join(f"{TENSORS[v]} {words[v]:g}" for v in range(N_TENSORS) if keeps[v])
                return f"level {name}: tiles need {need:g} words ({parts}) but capacity is {size}"
            return ""
        for v in range(N_TENSORS):
            if keeps[v] and words[v] > size[v] + 1e-9:
                return f"level {name}: {TENSORS[v]} tile needs {words[v]:g} words but its buffer holds {size[v]}"
        return ""

    def check(self, m: Mapping) -> Cost:
        """Evaluate, raising InvalidMappingError (with the reason) if the mapping is invalid."""
        cost = self.evaluate(m)
        if not cost.valid:
            raise InvalidMappingError(cost.reason)
        return cost

    # ------------------------------------------------------------------ many mappings
    def evaluate_batch(self, b: MappingBatch, relax_orders: bool = False) -> BatchCost:
        """Score B mappings in one compiled loop; agrees with `evaluate_reference` to floating-point precision.

        With `relax_orders` the loop orders are ignored and every fetch count takes its minimum over all
        orders, tensor by tensor (irrelevant loops innermost, the best halo dim): a lower bound on the
        energy and cycles of every ordering of each tiling (used to prune the optimal mapper's search).
        """
        conv = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
        zeros = np.zeros((len(b), self.L, N_TENSORS), dtype=np.int64)
        out = self._run_kernel(
            conv(b.temporal),
            conv(b.spatial_x),
            conv(b.spatial_y),
            conv(b.order),
            zeros if b.bypass is None else conv(b.bypass),
            zeros if b.place is None else conv(b.place),
            relax_orders,
        )
        return BatchCost(
            valid=out["reason"] == 0,
            energy=out["energy"],
            cycles=out["cycles"],
            utilization=out["utilization"],
            reason=out["reason"],
            compute_cycles=out["compute_cycles"],
            level_cycles=out["level_cycles"].T,
        )


_ALL_DIMS = frozenset(range(N_DIMS))
_ONES = (1,) * N_DIMS


def _union(ext: int, terms: list[tuple[int, int]]) -> float:
    """Rows covered by windows of `ext` rows starting at every sum of k * step (k < count) over `terms`:
    the compiled `window_union` (one implementation for both paths)."""
    counts = np.array([float(n) for n, _ in terms] or [0.0])
    steps = np.array([float(g) for _, g in terms] or [0.0])
    span = 1 + sum((n - 1) * g for n, g in terms)
    return float(window_union(float(ext), counts, steps, len(terms), np.zeros(span + 1, dtype=np.bool_)))


def evaluate(layer: Layer, arch: Architecture, mapping: Mapping) -> Cost:
    """Convenience: score one mapping (builds a CostModel; reuse one for many calls)."""
    return CostModel(layer, arch).evaluate(mapping)


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """Short hash of the cost model's *behaviour* (stored with surrogate datasets and checkpoints, and keying
    caches of optimal-mapper results).

    It hashes energy and cycles (10 significant digits; inf for invalid ones) of 3,072 fixed pseudo-random
    mappings (4 layers x 3 presets x 256, a tenth of them valid) evaluated by `CostModel.evaluate_batch`.
    A refactor that keeps every number keeps the fingerprint; a changed formula changes it.  Self-contained
    (no map-space sampler), so it means the same across rlmap versions.
    """
    from rlmap.spec.factors import prime_factors
    from rlmap.spec.io import load_architecture, load_network

    h = hashlib.sha256()
    rng = np.random.default_rng(20261123)
    cases = [("resnet18", 3), ("mobilenetv2", 4), ("bert_base", 0), ("resnet50_sparse", 10)]
    try:
        for arch_name in ("eyeriss", "sparse_eyeriss", "simba"):
            arch = load_architecture(arch_name)
            L = arch.n_levels
            for net, i in cases:
                layer = load_network(net).layers[i]
                dims = layer.problem_dims
                B = 256
                fac = np.ones((B, 3, L, len(dims)), dtype=np.int64)  # (mapping, kind T/X/Y, level, dim)
                for d, n in enumerate(dims):
                    primes = [p for p, a in prime_factors(n) for _ in range(a)]
                    for b in range(B):
                        for q in primes:  # most factors in DRAM, so that some mappings fit
                            if rng.random() < 0.8:
                                fac[b, 0, 0, d] *= q
                            else:
                                fac[b, rng.integers(3), rng.integers(L), d] *= q
                order = np.stack([np.stack([rng.permutation(len(dims)) for _ in range(L)]) for _ in range(B)])
                cost = CostModel(layer, arch).evaluate_batch(MappingBatch(fac[:, 0], fac[:, 1], fac[:, 2], order))
                for e, c in zip(cost.energy, cost.cycles):
                    h.update(f"{e:.10g},{c:.10g};".encode())
    except SpecError:  # pragma: no cover - presets missing (installed without envs/)
        return "unknown"
    return h.hexdigest()[:12]
