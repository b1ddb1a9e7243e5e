"""Mapping spec: tiling factors and loop order per memory level, spatial unrolling per fanout.

A mapping of an architecture with levels 0 (DRAM) .. L-1 is the loop nest, outermost first,

    level 0 temporal loops (in `order[0]`), level 0 spatial loops (X then Y) -> instances of level 1,
    level 1 temporal loops, level 1 spatial loops, ..., level L-1 spatial loops -> MACs.

For every dimension the temporal and spatial factors over all levels multiply to its size.
Level l's tile is everything iterated by its own loops and those inside them.

Per-tensor placement (optional; absent = today's meaning, every tensor as above):

* `bypass[l][v] = 1`: the mapping does not keep tensor v at level l, though the architecture could
  (`may_bypass` of that level); v then goes between the levels around l that keep it.
* `place[l][v] = k`: tensor v's tile at level l sits below the first k loops of `order[l]` (outermost
  first, factor-1 loops counted): those k loops refetch it, as loops of the levels above do, and its
  tile is only what the remaining loops of level l (and those inside) iterate.  0 = the whole level tile.
  So one level can hold a different tile per tensor (AccelForge's LoopTree storage-node placement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmap.spec.arch import Architecture
from rlmap.spec.bounds import MAX_EXTENT
from rlmap.spec.errors import InvalidMappingError, SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.problem import DIMS, N_DIMS, N_TENSORS, TENSORS, parse_dim, parse_tensor

IntMatrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Mapping:
    """Per level (outermost first): temporal factors, spatial X/Y factors and the loop order.

    Every matrix is indexed [level][dim] in rlmap.problem.DIMS order; `order[l]` is a permutation of
    dim indices, outermost loop first.
    """

    temporal: IntMatrix
    spatial_x: IntMatrix
    spatial_y: IntMatrix
    order: IntMatrix
    bypass: IntMatrix | None = None
    """[level][tensor]: 1 = not kept here although the level may keep it; None = keep all the level keeps."""
    place: IntMatrix | None = None
    """[level][tensor]: how many of the level's loops (in `order`) sit above the tensor's tile; None = all 0."""

    def __post_init__(self) -> None:
        # all-zero bypass/placement means the same as none: normalise, so equal mappings compare equal
        for name in ("bypass", "place"):
            mat = getattr(self, name)
            if mat is not None:
                mat = tuple(tuple(int(x) for x in row) for row in mat)
                object.__setattr__(self, name, None if all(x == 0 for row in mat for x in row) else mat)

    @property
    def n_levels(self) -> int:
        return len(self.temporal)

    def bypass_row(self, lvl: int) -> tuple[int, ...]:
        return self.bypass[lvl] if self.bypass is not None else (0,) * N_TENSORS

    def place_row(self, lvl: int) -> tuple[int, ...]:
        return self.place[lvl] if self.place is not None else (0,) * N_TENSORS

    def factors(self, dim: int) -> list[int]:
        """All factors of one dimension, outermost first (temporal, then X, then Y per level)."""
        out = []
        for lvl in range(self.n_levels):
            out += [self.temporal[lvl][dim], self.spatial_x[lvl][dim], self.spatial_y[lvl][dim]]
        return out

    def nest_key(self) -> tuple:
        """What the loop nest means: the factors and, per level, the order of the loops with factor > 1.
        Two mappings with equal keys differ at most in where factor-1 loops sit (which changes nothing)."""
        loops = tuple(tuple(d for d in self.order[lvl] if self.temporal[lvl][d] > 1) for lvl in range(self.n_levels))
        # a tile placement means which loops (factor > 1) sit above it
        above = tuple(
            tuple(tuple(d for d in self.order[lvl][:k] if self.temporal[lvl][d] > 1) for k in self.place_row(lvl))
            for lvl in range(self.n_levels)
        )
        return self.temporal, self.spatial_x, self.spatial_y, loops, self.bypass, above

    def to_arrays(self) -> MappingBatch:
        """A batch of one, for the vectorised cost model."""
        return MappingBatch(
            temporal=np.array([self.temporal], dtype=np.int64),
            spatial_x=np.array([self.spatial_x], dtype=np.int64),
            spatial_y=np.array([self.spatial_y], dtype=np.int64),
            order=np.array([self.order], dtype=np.int64),
            bypass=None if self.bypass is None else np.array([self.bypass], dtype=np.int64),
            place=None if self.place is None else np.array([self.place], dtype=np.int64),
        )

    # ------------------------------------------------------------------ checks
    def check_structure(self, layer: Layer, arch: Architecture) -> None:
        """Raise InvalidMappingError naming the level and dimension that break factors or fanout.

        Capacity is checked by the cost model, which owns the footprint formulas.
        """
        L = arch.n_levels
        for name, mat in (
            ("temporal", self.temporal),
            ("spatial_x", self.spatial_x),
            ("spatial_y", self.spatial_y),
            ("order", self.order),
        ):
            if len(mat) != L or any(len(row) != N_DIMS for row in mat):
                raise InvalidMappingError(f"{name} must be {L} levels x {N_DIMS} dims for architecture {arch.name!r}")
        for lvl, row in enumerate(self.order):
            if sorted(row) != list(range(N_DIMS)):
                raise InvalidMappingError(f"level {arch.levels[lvl].name}: loop order {row} is not a permutation")
        dims = layer.problem_dims
        for d, size in enumerate(dims):
            fs = self.factors(d)
            if any(f <= 0 for f in fs):
                raise InvalidMappingError(f"dimension {DIMS[d]}: factors must be positive, got {fs}")
            if math.prod(fs) != size:
                raise InvalidMappingError(
                    f"dimension {DIMS[d]}: factors {fs} multiply to {math.prod(fs)}, layer {layer.name!r} needs {size}"
                )
        for lvl, level in enumerate(arch.levels):
            fan = level.fanout
            for axis, mat, limit, allowed in (
                ("X", self.spatial_x, fan.x, fan.x_dims),
                ("Y", self.spatial_y, fan.y, fan.y_dims),
            ):
                used = math.prod(mat[lvl])
                if used > limit:
                    raise InvalidMappingError(f"level {level.name}: spatial {axis} factors use {used} > fanout {limit}")
                if allowed:
                    for d in range(N_DIMS):
                        if mat[lvl][d] > 1 and DIMS[d] not in allowed:
                            raise InvalidMappingError(
                                f"level {level.name}: dimension {DIMS[d]} may not be unrolled on {axis} "
                                f"(allowed: {', '.join(allowed)})"
                            )
        reason = placement_problem(self, arch)
        if reason:
            raise InvalidMappingError(reason)

    def kept(self, arch: Architecture) -> list[list[bool]]:
        """[level][tensor]: whether this mapping keeps the tensor at the level."""
        return [
            [TENSORS[v] in level.keeps and not self.bypass_row(lvl)[v] for v in range(N_TENSORS)]
            for lvl, level in enumerate(arch.levels)
        ]

    # ------------------------------------------------------------------ YAML form
    def to_dict(self, arch: Architecture, layer: Layer | None = None) -> dict[str, Any]:
        """Readable form: only factors > 1 are written; order lists every dim, outermost first."""
        levels = []
        for lvl, level in enumerate(arch.levels):
            entry: dict[str, Any] = {"name": level.name}
            entry["temporal"] = {DIMS[d]: f for d, f in enumerate(self.temporal[lvl]) if f > 1}
            entry["order"] = "".join(DIMS[d] for d in self.order[lvl])
            sx = {DIMS[d]: f for d, f in enumerate(self.spatial_x[lvl]) if f > 1}
            sy = {DIMS[d]: f for d, f in enumerate(self.spatial_y[lvl]) if f > 1}
            if sx:
                entry["spatial_x"] = sx
            if sy:
                entry["spatial_y"] = sy
            byp = [TENSORS[v] for v, b in enumerate(self.bypass_row(lvl)) if b]
            if byp:
                entry["bypass"] = byp
            place = {TENSORS[v]: k for v, k in enumerate(self.place_row(lvl)) if k}
            if place:
                entry["place"] = place
            levels.append(entry)
        out: dict[str, Any] = {"arch": arch.name}
        if layer is not None:
            out["layer"] = layer.name
        out["levels"] = levels
        return out

    @classmethod
    def from_dict(cls, data: Any, arch: Architecture, where: str = "mapping") -> Mapping:
        """Parse the form written by to_dict; omitted factors are 1, omitted order is canonical."""
        if not isinstance(data, dict) or not isinstance(data.get("levels"), list):
            raise SpecError("expected a mapping with a 'levels' list", where)
        levels = data["levels"]
        if len(levels) != arch.n_levels:
            raise SpecError(f"has {len(levels)} levels, architecture {arch.name!r} has {arch.n_levels}", where)
        mats: dict[str, list[list[int]]] = {k: [] for k in ("temporal", "spatial_x", "spatial_y")}
        orders: list[tuple[int, ...]] = []
        bypass: list[list[int]] = []
        place: list[list[int]] = []
        for lvl, (entry, level) in enumerate(zip(levels, arch.levels)):
            here = f"{where}.levels[{lvl}]"
            if not isinstance(entry, dict):
                raise SpecError("expected a dict", here)
            if entry.get("name", level.name) != level.name:
                raise SpecError(
                    f"level name {entry.get('name')!r} does not match architecture level {level.name!r}", here
                )
            unknown = set(entry) - {"name", "temporal", "order", "spatial_x", "spatial_y", "bypass", "place"}
            if unknown:
                raise SpecError(f"unknown field(s) {sorted(unknown)}", here)
            for key in mats:
                row = [1] * N_DIMS
                given = entry.get(key) or {}
                if not isinstance(given, dict):
                    raise SpecError(
                        f"expected factors by dimension, e.g. {{K: 4, C: 2}}, got {given!r}", f"{here}.{key}"
                    )
                seen: dict[int, Any] = {}
                for dim, f in given.items():
                    try:
                        d = parse_dim(str(dim))
                    except ValueError as exc:
                        raise SpecError(str(exc), f"{here}.{key}") from None
                    if d in seen:
                        raise SpecError(
                            f"dimension {DIMS[d]} is given twice ({seen[d]!r} and {dim!r}) at level {level.name}",
                            f"{here}.{key}",
                        )
                    seen[d] = dim
                    if not isinstance(f, int) or isinstance(f, bool) or f <= 0:
                        raise SpecError(f"factor of {DIMS[d]} must be a positive integer, got {f!r}", f"{here}.{key}")
                    if f > MAX_EXTENT:
                        raise SpecError(
                            f"factor of {DIMS[d]} is {f}, more than any layer dimension can be ({MAX_EXTENT:,} = 2^40)",
                            f"{here}.{key}",
                        )
                    row[d] = f
                mats[key].append(row)
            orders.append(_parse_order(entry.get("order"), f"{here}.order"))
            bypass.append(_parse_bypass(entry.get("bypass"), f"{here}.bypass"))
            place.append(_parse_place(entry.get("place"), f"{here}.place"))
        return cls(
            temporal=tuple(tuple(r) for r in mats["temporal"]),
            spatial_x=tuple(tuple(r) for r in mats["spatial_x"]),
            spatial_y=tuple(tuple(r) for r in mats["spatial_y"]),
            order=tuple(orders),
            bypass=tuple(tuple(r) for r in bypass),
            place=tuple(tuple(r) for r in place),
        )


def _parse_order(raw: Any, where: str) -> tuple[int, ...]:
    """An order is a string like 'NGKCPQRS' or a list of dim names, outermost first.

    Dims left out are placed outermost (in canonical order), where a loop of factor 1 does nothing.
    """
    if raw is None:
        return tuple(range(N_DIMS))
    names = list(raw) if isinstance(raw, str) else raw
    if not isinstance(names, list):
        raise SpecError("order must be a string of dim letters or a list of dims", where)
    try:
        idx = [parse_dim(str(n)) for n in names]
    except ValueError as exc:
        raise SpecError(str(exc), where) from None
    if len(set(idx)) != len(idx):
        raise SpecError(f"repeats a dimension: {raw!r}", where)
    missing = [d for d in range(N_DIMS) if d not in idx]
    return tuple(missing + idx)


def _parse_bypass(raw: Any, where: str) -> list[int]:
    """A list of tensor names the level does not keep in this mapping."""
    row = [0] * N_TENSORS
    if raw is None:
        return row
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise SpecError("bypass must be a list of tensor names (inputs, weights, outputs)", where)
    for t in raw:
        try:
            row[parse_tensor(str(t))] = 1
        except ValueError as exc:
            raise SpecError(str(exc), where) from None
    return row


def _parse_place(raw: Any, where: str) -> list[int]:
    """{tensor: k}: the tensor's tile sits below the first k loops of the level's order."""
    row = [0] * N_TENSORS
    if raw is None:
        return row
    if not isinstance(raw, dict):
        raise SpecError("place must map tensor names to loop positions, e.g. {weights: 2}", where)
    seen: set[int] = set()
    for t, k in raw.items():
        try:
            v = parse_tensor(str(t))
        except ValueError as exc:
            raise SpecError(str(exc), where) from None
        if v in seen:
            raise SpecError(f"tensor {TENSORS[v]} is given twice", where)
        seen.add(v)
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= N_DIMS:
            raise SpecError(f"position of {TENSORS[v]} must be an integer 0..{N_DIMS}, got {k!r}", where)
        row[v] = k
    return row


def placement_problem(m: Mapping, arch: Architecture) -> str:
    """Why the mapping's bypass/placement is not allowed on `arch` ('' if it is)."""
    for lvl, level in enumerate(arch.levels):
        byp, place = m.bypass_row(lvl), m.place_row(lvl)
        if len(byp) != N_TENSORS or len(place) != N_TENSORS:
            return f"level {level.name}: bypass and place need one entry per tensor"
        for v, t in enumerate(TENSORS):
            if byp[v] not in (0, 1):
                return f"level {level.name}: bypass of {t} must be 0 or 1, got {byp[v]}"
            if byp[v] and t not in level.may_bypass:
                why = "does not keep it" if t not in level.keeps else "may not bypass it (may_bypass)"
                return f"level {level.name}: the mapping bypasses {t}, but the level {why}"
            if not 0 <= place[v] <= N_DIMS:
                return f"level {level.name}: position of {t} must be 0..{N_DIMS}, got {place[v]}"
            if place[v] and (lvl == 0 or byp[v] or t not in level.keeps):
                where = "the outermost level holds whole tensors" if lvl == 0 else "the level does not keep it"
                return f"level {level.name}: {t} is placed below {place[v]} loop(s), but {where}"
    return ""


@dataclass(frozen=True)
class MappingBatch:
    """B mappings of one layer as int arrays of shape (B, levels, dims); order holds dim indices."""

    temporal: np.ndarray
    spatial_x: np.ndarray
    spatial_y: np.ndarray
    order: np.ndarray
    bypass: np.ndarray | None = None  # (B, levels, tensors) 0/1; None = none bypassed
    place: np.ndarray | None = None  # (B, levels, tensors) loops above each tile; None = all 0

    def __len__(self) -> int:
        return int(self.temporal.shape[0])

    def __getitem__(self, i: int) -> Mapping:
        def mat(a: np.ndarray) -> IntMatrix:
            return tuple(tuple(int(x) for x in row) for row in a[i])

        return Mapping(
            mat(self.temporal),
            mat(self.spatial_x),
            mat(self.spatial_y),
            mat(self.order),
            None if self.bypass is None else mat(self.bypass),
            None if self.place is None else mat(self.place),
        )

    @classmethod
    def stack(cls, mappings: list[Mapping]) -> MappingBatch:
        L = len(mappings[0].temporal) if mappings else 0
        extra = {}
        for name, row in (("bypass", "bypass_row"), ("place", "place_row")):
            if any(getattr(m, name) is not None for m in mappings):
                extra[name] = np.array([[getattr(m, row)(lvl) for lvl in range(L)] for m in mappings], dtype=np.int64)
        return cls(
            temporal=np.array([m.temporal for m in mappings], dtype=np.int64),
            spatial_x=np.array([m.spatial_x for m in mappings], dtype=np.int64),
            spatial_y=np.array([m.spatial_y for m in mappings], dtype=np.int64),
            order=np.array([m.order for m in mappings], dtype=np.int64),
            **extra,
        )

    def take(self, idx: np.ndarray | slice) -> MappingBatch:
        return MappingBatch(
            self.temporal[idx],
            self.spatial_x[idx],
            self.spatial_y[idx],
            self.order[idx],
            None if self.bypass is None else self.bypass[idx],
            None if self.place is None else self.place[idx],
        )
