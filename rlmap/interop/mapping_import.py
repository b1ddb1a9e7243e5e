"""Read mappings written for Timeloop (v0.4 mapping YAML) or AccelForge (LoopTree mapping YAML) as rlmap mappings.

`read_mapping_file` detects the format of a mapping file (rlmap's own, Timeloop's or AccelForge's);
`mapping_from` converts the parsed document for a layer and an architecture.  A mapping is converted
only when rlmap's loop nest means exactly the same thing; otherwise a SpecError says what is not
expressible and where.

Timeloop: one directive per (target level, type); `permutation` lists loops innermost first; spatial
factors go to X (positions < `split`) or Y; a target `<level>_dummy_y` (how rlmap's exporter writes a
two-axis fanout, see rlmap/interop/export.py) carries level `<level>`'s Y factors; bypass directives must
agree with the architecture's `keeps`.

AccelForge: a single-Einsum LoopTree of `!Storage`, `!Temporal`, `!Spatial` and `!Compute` nodes.  rlmap
gives every level ONE loop nest: all tensors a level keeps share its tile, and a child tile stays put
across its parents' loops that do not index it.  Importing therefore

1. reads each loop's factor from the `tile_shape` chain of its rank variable, and each spatial loop's level
   from its fanout container (`<level>_fanout`, or the only fanout with that axis);
2. checks bypass: a tensor has a storage node exactly at the levels that keep it (`_check_bypass`);
3. places every temporal loop in a level: a loop indexing tensor v above v's node at level c belongs to
   a level above c, one below it to level c or deeper; loops stay in nest order (`_assign_levels`).  When
   no placement exists the tensors would need different tiles at one level (or tiles of a deeper level
   outside a shallower one's) -- the one check that per-tensor tile positions would lift;
4. checks reuse: AccelForge refetches a node's tile on every iteration of every loop above it, rlmap keeps
   it across loops that do not index the tensor; so a node must sit right below the innermost loop above
   it that indexes its tensor (`_check_no_refetch`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rlmap.interop.export import AF_TENSOR, TL_DIM, TL_DUMMY_SUFFIX, TL_TENSOR, af_fanout, af_memories
from rlmap.interop.yaml_tags import Tagged, load_tagged_yaml
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import DIMS, N_DIMS, N_TENSORS, RELEVANT, TENSOR_INDEX, TENSORS, parse_tensor

MAPPING_FORMATS = ("rlmap", "timeloop", "accelforge")


# ----------------------------------------------------------------------------- files and formats
def detect_format(data: Any) -> str | None:
    """'rlmap' (a `levels:` list), 'accelforge' (`mapping: {nodes: [...]}`), 'timeloop' (`mapping:` list of
    directives with a `target`), or None."""
    if isinstance(data, dict) and isinstance(data.get("levels"), list):
        return "rlmap"
    body = data.get("mapping") if isinstance(data, dict) else data
    if isinstance(body, dict) and isinstance(body.get("nodes"), list):
        return "accelforge"
    if isinstance(body, list) and body and all(isinstance(n, Tagged) for n in body):
        return "accelforge"
    if isinstance(body, list) and body and all(isinstance(d, dict) and "target" in d for d in body):
        return "timeloop"
    return None


def read_yaml_document(path: str | Path) -> tuple[Path, Any]:
    """(path, parsed YAML, local tags kept); one-line SpecErrors naming the file."""
    p = Path(path)
    if not p.exists():
        raise SpecError("file not found", str(p))
    if p.is_dir():
        raise SpecError("is a directory, expected a YAML file", str(p))
    try:
        return p, load_tagged_yaml(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"malformed YAML{at}: {getattr(exc, 'problem', None) or exc}", str(p)) from None
    except UnicodeDecodeError:
        raise SpecError("is not a text file", str(p)) from None


def read_mapping_file(path: str | Path) -> tuple[str, Any]:
    """(format, parsed YAML) of a mapping file; a SpecError names the file when it is none of the three."""
    p, data = read_yaml_document(path)
    fmt = detect_format(data)
    if fmt is None:
        raise SpecError(
            "is not a mapping: expected rlmap's `levels:` list, a Timeloop `mapping:` list of "
            "directives, or an AccelForge `mapping: {nodes: [...]}` LoopTree",
            str(p),
        )
    return fmt, data


def mapping_from(
    fmt: str, data: Any, layer: Layer, arch: Architecture, where: str, names: Names | None = None
) -> Mapping:
    """Convert a parsed mapping document of format `fmt` for `layer` on `arch` (checked against both);
    `names` (AccelForge only) maps the LoopTree's rank variables and tensors (`names_from_workload`)."""
    if fmt == "rlmap":
        m = Mapping.from_dict(data, arch, where=where)
        m.check_structure(layer, arch)
        return m
    if fmt == "timeloop":
        return from_timeloop(data, layer, arch, where)
    if fmt == "accelforge":
        return from_accelforge(data, layer, arch, where, names)
    raise SpecError(f"unknown mapping format {fmt!r} (expected one of {', '.join(MAPPING_FORMATS)})", where)


def file_layer_name(fmt: str, data: Any) -> str | None:
    """The layer an rlmap mapping file names (the other formats name none)."""
    return data.get("layer") if fmt == "rlmap" and isinstance(data, dict) else None


def _tensor(name: Any, where: str) -> str:
    key = str(name)
    named = {v: k for k, v in TL_TENSOR.items()} | {v: k for k, v in AF_TENSOR.items()}
    if key in named:
        return named[key]
    try:
        return TENSORS[parse_tensor(key)]
    except ValueError:
        raise SpecError(
            f"unknown tensor {name!r} (expected inputs, weights or outputs, or I/W/O, Inputs/Weights/Outputs)", where
        ) from None


# ----------------------------------------------------------------------------- Timeloop
def _parse_tl_factors(raw: Any, where: str) -> dict[int, int]:
    """'R=1 S=3 M=16' (or a list of 'X=n' strings, or a dict) -> {rlmap dim index: factor}."""
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        parts = raw.split() if isinstance(raw, str) else list(raw) if isinstance(raw, list) else None
        if parts is None:
            raise SpecError(f"factors must be a string like 'R=1 S=3', got {raw!r}", where)
        items = []
        for p in parts:
            m = re.fullmatch(r"\s*([A-Za-z]+)\s*=\s*(-?\d+)\s*", str(p))
            if not m:
                raise SpecError(f"bad factor {p!r} (expected DIM=INT)", where)
            items.append((m.group(1), int(m.group(2))))
    out: dict[int, int] = {}
    for name, f in items:
        d = _tl_dim_index(name, where)
        if not isinstance(f, int) or isinstance(f, bool) or f <= 0:
            raise SpecError(f"factor of {name} must be a positive integer, got {f!r}", where)
        out[d] = f
    return out


def _tl_dim_index(name: str, where: str) -> int:
    key = name.strip().upper()
    rl = {"M": "K", "K": "K"}.get(key, key)
    if rl not in DIMS:
        raise SpecError(f"unknown dimension {name!r} (Timeloop names: {', '.join(TL_DIM.values())})", where)
    return DIMS.index(rl)


def _parse_tl_perm(raw: Any, where: str) -> list[int]:
    names = list(raw) if isinstance(raw, str) else raw
    if not isinstance(names, list):
        raise SpecError(f"permutation must be a string of dimension letters, got {raw!r}", where)
    idx = [_tl_dim_index(str(n), where) for n in names if str(n).strip()]
    if len(set(idx)) != len(idx):
        raise SpecError(f"permutation {raw!r} repeats a dimension", where)
    return idx


def from_timeloop(mapping_yaml: Any, layer: Layer, arch: Architecture, where: str = "timeloop mapping") -> Mapping:
    """Read a Timeloop mapping (the `mapping:` document or its directive list) into a Mapping.

    Factors not listed are 1; dims missing from a permutation go outermost (they iterate once when their
    factor is 1).  `<level>_dummy_y` targets (rlmap's two-axis fanouts) give level `<level>`'s Y factors and
    may hold no temporal loop.  Bypass directives must agree with the architecture's `keeps`, except that a
    level may bypass its `may_bypass` tensors (the mapping's bypass).  The result is checked against the layer
    and architecture.
    """
    directives = mapping_yaml.get("mapping") if isinstance(mapping_yaml, dict) else mapping_yaml
    if not isinstance(directives, list):
        raise SpecError("expected a 'mapping:' list of directives", where)
    L = arch.n_levels
    temporal = [[1] * N_DIMS for _ in range(L)]
    sx = [[1] * N_DIMS for _ in range(L)]
    sy = [[1] * N_DIMS for _ in range(L)]
    order: list[tuple[int, ...]] = [tuple(range(N_DIMS)) for _ in range(L)]
    seen: set[tuple[str, str]] = set()
    byp = [[0] * N_TENSORS for _ in range(L)]
    names = [lvl.name for lvl in arch.levels]
    dummies = {lvl.name + TL_DUMMY_SUFFIX: i for i, lvl in enumerate(arch.levels)}
    for i, dv in enumerate(directives):
        here = f"{where}[{i}]"
        if not isinstance(dv, dict):
            raise SpecError("expected a dict", here)
        target, kind = dv.get("target"), dv.get("type", "temporal")
        kind = "bypass" if kind == "datatype" else kind  # Timeloop v0.3's name for keep/bypass directives
        if target not in names and target not in dummies:
            raise SpecError(
                f"target {target!r} is not a level of architecture {arch.name!r} (levels: {', '.join(names)})", here
            )
        here = f"{here} ({target} {kind})"
        if kind not in ("temporal", "spatial", "bypass"):
            raise SpecError(f"unknown directive type {kind!r} (expected temporal, spatial or bypass)", here)
        if (target, kind) in seen:
            raise SpecError("duplicate directive for this level", here)
        seen.add((target, kind))
        if target in dummies:
            _tl_dummy(dv, kind, dummies[target], sy, here)
            continue
        lvl = names.index(target)
        if kind == "bypass":
            keep = {_tensor(t, here) for t in dv.get("keep") or []}
            bypass = {_tensor(t, here) for t in dv.get("bypass") or []}
            kept = set(arch.levels[lvl].keeps)
            must = kept - set(arch.levels[lvl].may_bypass)
            if keep - kept or bypass & must:
                raise SpecError(
                    f"keep/bypass {sorted(keep)}/{sorted(bypass)} disagrees with the architecture, which keeps "
                    f"{sorted(kept)} here and may bypass {sorted(kept - must) or 'none of them'}",
                    here,
                )
            for t in bypass & kept:
                byp[lvl][TENSORS.index(t)] = 1
            continue
        factors = _parse_tl_factors(dv.get("factors", ""), here)
        perm = _parse_tl_perm(dv.get("permutation", ""), here)
        if kind == "temporal":
            for d, f in factors.items():
                temporal[lvl][d] = f
            outer_first = list(reversed(perm))
            order[lvl] = tuple([d for d in range(N_DIMS) if d not in outer_first] + outer_first)
        else:
            split = dv.get("split", len(perm))
            if not isinstance(split, int) or isinstance(split, bool) or split < 0:
                raise SpecError(f"split must be a non-negative integer, got {split!r}", here)
            pos = {d: k for k, d in enumerate(perm)}
            for d, f in factors.items():
                if f == 1:
                    continue
                if d not in pos:
                    raise SpecError(
                        f"dimension {TL_DIM[DIMS[d]]} has a spatial factor but is not in the permutation", here
                    )
                (sx if pos[d] < split else sy)[lvl][d] *= f
    m = Mapping(
        temporal=tuple(tuple(r) for r in temporal),
        spatial_x=tuple(tuple(r) for r in sx),
        spatial_y=tuple(tuple(r) for r in sy),
        order=tuple(order),
        bypass=tuple(map(tuple, byp)),
    )
    m.check_structure(layer, arch)
    return m


def _tl_dummy(dv: dict, kind: str, lvl: int, sy: list[list[int]], here: str) -> None:
    """A `<level>_dummy_y` directive: keeps nothing, loops nothing in time, fans out on Y."""
    if kind == "bypass":
        keep = [_tensor(t, here) for t in dv.get("keep") or []]
        if keep:
            raise SpecError(f"keeps {keep}: the Y-split level of a two-axis fanout holds no data in rlmap", here)
        return
    factors = _parse_tl_factors(dv.get("factors", ""), here)
    if kind == "temporal":
        busy = [f"{TL_DIM[DIMS[d]]}={f}" for d, f in factors.items() if f > 1]
        if busy:
            raise SpecError(
                f"temporal loops {' '.join(busy)} at the Y-split level of a two-axis fanout are not "
                "expressible (rlmap has no storage level there)",
                here,
            )
        return
    for d, f in factors.items():
        sy[lvl][d] *= f


# ----------------------------------------------------------------------------- AccelForge
RANK_DIMS = {d.lower(): i for i, d in enumerate(DIMS)} | {"m": DIMS.index("K")}
"""AccelForge rank variable -> rlmap dim by default (rlmap's exporter): n g k c p q r s (m = k, Timeloop's name)."""


class Names:
    """How a LoopTree names rlmap's dims and tensors: rank variable -> dim, tensor name -> rlmap tensor."""

    def __init__(self, ranks: dict[str, int] | None = None, tensors: dict[str, str] | None = None) -> None:
        self.ranks = ranks or RANK_DIMS
        self.tensors = tensors or {}

    def dim(self, rank: Any, where: str) -> int:
        key = str(rank).strip()
        for k in (key, key.lower()):
            if k in self.ranks:
                return self.ranks[k]
        raise SpecError(f"unknown rank variable {rank!r} (expected one of {', '.join(sorted(self.ranks))})", where)

    def tensor(self, name: Any, where: str) -> str:
        return self.tensors[str(name)] if str(name) in self.tensors else _tensor(name, where)


_VAR = re.compile(r"[A-Za-z_]\w*")


def names_from_workload(doc: Any, layer: Layer, einsum: str | None = None, where: str = "workload") -> Names:
    """Read rank-variable and tensor roles from an AccelForge workload (one Einsum of a convolution / GEMM).

    The output is the tensor marked `output: true`; inputs and weights come from `renames: {input, weight}`
    or, without renames, from rlmap's tensor names.  Rank variables by where they appear: in all three
    tensors G; weights and outputs K; inputs and outputs N, P, Q (P, Q when they slide a window with a
    weights variable, R and S that variable; first window expression = P/R, second = Q/S); inputs and
    weights only C.  Sizes (iteration_space_shape) must equal the layer's.
    """
    text_markers = ("{{", "{%")
    body = doc.get("workload", doc) if isinstance(doc, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("einsums"), list) or not body["einsums"]:
        raise SpecError("expected `workload: {einsums: [...]}` (an AccelForge workload)", where)
    einsums = body["einsums"]
    if einsum is not None:
        chosen = [e for e in einsums if isinstance(e, dict) and e.get("name") == einsum]
        if not chosen:
            raise SpecError(f"has no Einsum named {einsum!r} (the mapping's !Compute)", where)
        ein = chosen[0]
    elif len(einsums) == 1:
        ein = einsums[0]
    else:
        raise SpecError("has several Einsums; the mapping's !Compute must name one", where)
    accesses = ein.get("tensor_accesses") if isinstance(ein, dict) else None
    if not isinstance(accesses, list) or len(accesses) != 3:
        raise SpecError(f"Einsum {ein.get('name')!r} must access three tensors (input, weight, output)", where)
    renames = ein.get("renames") or {}
    roles: dict[str, str] = {}
    for acc in accesses:
        name = str(acc.get("name"))
        if acc.get("output"):
            roles[name] = "outputs"
        elif renames.get("input") == name:
            roles[name] = "inputs"
        elif renames.get("weight") == name:
            roles[name] = "weights"
        else:
            roles[name] = _tensor(name, f"{where}: tensor {name!r} (name it in renames: {{input, weight}})")
    if sorted(roles.values()) != sorted(TENSORS):
        raise SpecError(f"tensor roles {roles} are not one input, one weight and one output", where)
    exprs: dict[str, list[list[str]]] = {}  # tensor role -> variables of each projected index
    for acc in accesses:
        proj = acc.get("projection")
        items = list(proj.values()) if isinstance(proj, dict) else list(proj or [])
        if any(m in str(x) for x in items for m in text_markers):
            raise SpecError("uses Jinja templates; render the workload first", where)
        exprs[roles[str(acc.get("name"))]] = [_VAR.findall(str(x)) for x in items]
    var_sets = {t: {v for e in es for v in e} for t, es in exprs.items()}
    ranks: dict[str, int] = {}
    window = [e for e in exprs["inputs"] if len(e) > 1]
    if len(window) > 2 or any(len(e) != 2 for e in window):
        raise SpecError("inputs may slide at most two windows, each `stride*p + dilation*r`", where)
    for axis, e in enumerate(window):
        out_var = [v for v in e if v in var_sets["outputs"]]
        w_var = [v for v in e if v in var_sets["weights"]]
        if len(out_var) != 1 or len(w_var) != 1:
            raise SpecError(f"window expression {' + '.join(e)} must combine one output and one weight variable", where)
        ranks[out_var[0]] = DIMS.index("PQ"[axis])
        ranks[w_var[0]] = DIMS.index("RS"[axis])
    free_io = []
    for v in sorted(set().union(*var_sets.values())):
        if v in ranks:
            continue
        where_v = tuple(t for t in TENSORS if v in var_sets[t])
        if where_v == TENSORS:
            ranks[v] = DIMS.index("G")
        elif where_v == ("weights", "outputs"):
            ranks[v] = DIMS.index("K")
        elif where_v == ("inputs", "weights"):
            ranks[v] = DIMS.index("C")
        elif where_v == ("inputs", "outputs"):
            free_io.append(v)
        else:
            raise SpecError(
                f"rank variable {v!r} indexes only {', '.join(where_v)}: not a convolution / GEMM dim", where
            )
    # inputs-and-outputs variables outside windows: N, then the unused of P and Q, matched by size
    sizes = _rank_sizes(body, ein, where)
    dims = layer.problem_dims
    open_dims = [d for d in (DIMS.index("N"), DIMS.index("P"), DIMS.index("Q")) if d not in ranks.values()]
    for v in free_io:
        fit = [d for d in open_dims if sizes.get(v) is None or sizes[v] == dims[d]]
        if not fit:
            raise SpecError(
                f"rank variable {v!r} (size {sizes.get(v)}) matches none of the layer's "
                f"{', '.join(DIMS[d] for d in open_dims) or 'N/P/Q'} sizes",
                where,
            )
        ranks[v] = fit[0]
        open_dims.remove(fit[0])
    for v, d in ranks.items():
        if sizes.get(v) is not None and sizes[v] != dims[d]:
            raise SpecError(
                f"rank variable {v!r} has size {sizes[v]} but layer {layer.name!r} has {DIMS[d]} = {dims[d]}", where
            )
    return Names(ranks, roles)


def _rank_sizes(body: dict, ein: dict, where: str) -> dict[str, int]:
    """Sizes of the rank variables given as `0 <= v < N` (workload or Einsum iteration_space_shape)."""
    out: dict[str, int] = {}
    for shape in (body.get("iteration_space_shape"), ein.get("iteration_space_shape")):
        items = shape.values() if isinstance(shape, dict) else shape or []
        for text in items:
            m = re.fullmatch(r"\s*0\s*<=\s*([A-Za-z_]\w*)\s*<\s*(\d+)\s*", str(text))
            if m:
                out[m.group(1)] = int(m.group(2))
            elif "{" in str(text):
                raise SpecError("uses Jinja templates; render the workload first", where)
    return out


def _component_levels(arch: Architecture) -> dict[str, int]:
    """Storage component name -> level: the exporter's names, the level names, `<level>_<tensor>` partitions."""
    out = {lvl.name: i for i, lvl in enumerate(arch.levels)}
    for comp, lvl, _tensors in af_memories(arch):
        out[comp] = lvl
        for t in TENSORS:
            out[f"{comp}_{t}"] = out[f"{arch.levels[lvl].name}_{t}"] = lvl
    return out


def _fanout_level(component: Any, axis: str, arch: Architecture, where: str) -> int:
    for lvl, level in enumerate(arch.levels):
        if component in (af_fanout(level.name), f"{level.name}_fanout"):
            return lvl
    has_axis = [lvl for lvl, level in enumerate(arch.levels) if (level.fanout.x if axis == "X" else level.fanout.y) > 1]
    if len(has_axis) == 1:
        return has_axis[0]
    names = ", ".join(af_fanout(arch.levels[lvl].name) for lvl in has_axis) or "none"
    raise SpecError(
        f"spatial component {component!r} is not a fanout of architecture {arch.name!r} "
        f"(fanouts with an {axis} axis: {names})",
        where,
    )


class _Loop:
    """One loop of the LoopTree: kind 'T' | 'X' | 'Y', dim, factor, spatial level (None for temporal)."""

    def __init__(self, kind: str, dim: int, factor: int, level: int | None, text: str) -> None:
        self.kind, self.dim, self.factor, self.level, self.text = kind, dim, factor, level, text


def _parse_looptree(
    doc: Any, layer: Layer, arch: Architecture, where: str, names: Names
) -> tuple[list[_Loop], dict[tuple[int, int], int]]:
    """(loops outermost first, {(tensor, level): number of loops above its storage node})."""
    body = doc.get("mapping", doc) if isinstance(doc, dict) else doc
    nodes = body.get("nodes") if isinstance(body, dict) else body
    if not isinstance(nodes, list) or not nodes:
        raise SpecError("expected `mapping: {nodes: [...]}`, a LoopTree", where)
    comp_level = _component_levels(arch)
    remaining = list(layer.problem_dims)
    loops: list[_Loop] = []
    placed: dict[tuple[int, int], int] = {}
    for i, node in enumerate(nodes):
        here = f"{where}.nodes[{i}]"
        tag = node.tag if isinstance(node, Tagged) else None
        if tag is None:
            raise SpecError("expected a tagged node (!Storage, !Temporal, !Spatial or !Compute)", here)
        here = f"{here} ({tag})"
        if tag == "!Compute":
            if i != len(nodes) - 1:
                raise SpecError("!Compute must be the last node (single-Einsum LoopTrees only)", here)
            continue
        if tag in ("!Temporal", "!Spatial"):
            extra = set(node) - {"rank_variable", "tile_shape", "name", "component", "loop_bound"}
            if extra & {"initial_tile_shape", "tile_pattern"}:
                raise SpecError(
                    "imperfect tiling (initial_tile_shape / tile_pattern) is not expressible in rlmap", here
                )
            rank = str(node.get("rank_variable", "")).strip()
            d = names.dim(rank, here)
            shape = node.get("tile_shape")
            if not isinstance(shape, int) or isinstance(shape, bool) or shape <= 0:
                raise SpecError(f"tile_shape must be a positive integer, got {shape!r}", here)
            if remaining[d] % shape:
                raise SpecError(
                    f"tile_shape {shape} does not divide the {remaining[d]} left of rank {rank} "
                    "(imperfect factorisation is not expressible in rlmap)",
                    here,
                )
            factor = remaining[d] // shape
            remaining[d] = shape
            if factor == 1:
                continue
            if tag == "!Temporal":
                loops.append(_Loop("T", d, factor, None, f"temporal {rank} (tile_shape {shape})"))
            else:
                axis = str(node.get("name", "X")).upper()
                if axis not in ("X", "Y"):
                    raise SpecError(f"spatial axis {node.get('name')!r} is not X or Y", here)
                lvl = _fanout_level(node.get("component"), axis, arch, here)
                loops.append(_Loop(axis, d, factor, lvl, f"spatial {rank} on {axis}"))
            continue
        if tag != "!Storage":
            raise SpecError(
                f"{tag} nodes are not expressible in rlmap (single-Einsum LoopTrees of !Storage, "
                "!Temporal, !Spatial and !Compute only)",
                here,
            )
        comp = node.get("component")
        if comp not in comp_level:
            raise SpecError(
                f"component {comp!r} is not a level of architecture {arch.name!r} "
                f"(levels: {', '.join(l.name for l in arch.levels)})",
                here,
            )
        lvl = comp_level[comp]
        tensors = node.get("tensors")
        if not isinstance(tensors, list) or not tensors:
            raise SpecError("a !Storage node needs a non-empty `tensors` list", here)
        for t in tensors:
            v = TENSOR_INDEX[names.tensor(t, here)]
            if (v, lvl) in placed:
                raise SpecError(f"{TENSORS[v]} is stored twice at level {arch.levels[lvl].name}", here)
            placed[(v, lvl)] = len(loops)
    if not isinstance(nodes[-1], Tagged) or nodes[-1].tag != "!Compute":
        raise SpecError("the LoopTree must end with a !Compute node", where)
    short = [DIMS[d] for d in range(N_DIMS) if remaining[d] != 1]
    if short:
        d = DIMS.index(short[0])
        raise SpecError(
            f"the loops over rank {DIMS[d].lower()} leave tiles of {remaining[d]}, not 1 "
            f"(layer {layer.name!r} has {DIMS[d]} = {layer.problem_dims[d]})",
            where,
        )
    return loops, placed


def _check_bypass(placed: dict[tuple[int, int], int], arch: Architecture, where: str) -> tuple[tuple[int, ...], ...]:
    """Each tensor has a storage node at every level that keeps it, except where the level may bypass it
    (`may_bypass`: then a missing node is a bypass), and none elsewhere; outer levels above inner ones.
    Returns the bypass matrix [level][tensor]."""
    bypass = [[0] * N_TENSORS for _ in range(arch.n_levels)]
    for lvl, level in enumerate(arch.levels):
        for v, t in enumerate(TENSORS):
            stored = (v, lvl) in placed
            if stored and t not in level.keeps:
                raise SpecError(
                    f"the LoopTree stores {t} at {level.name}, which architecture {arch.name!r} bypasses "
                    f"(`keeps` of level {level.name})",
                    where,
                )
            if not stored and t in level.keeps:
                if t not in level.may_bypass:
                    raise SpecError(
                        f"the LoopTree does not store {t} at {level.name}, which architecture "
                        f"{arch.name!r} must keep there (`keeps` of level {level.name}; a level may "
                        f"bypass only its `may_bypass` tensors)",
                        where,
                    )
                bypass[lvl][v] = 1
    for v, t in enumerate(TENSORS):
        slots = [placed[(v, lvl)] for lvl in range(arch.n_levels) if (v, lvl) in placed]
        if slots != sorted(slots):
            raise SpecError(f"the storage nodes of {t} are not nested outer level above inner level", where)
    return tuple(map(tuple, bypass))


def _assign_levels(loops: list[_Loop], placed: dict[tuple[int, int], int], arch: Architecture, where: str) -> list[int]:
    """The level of every loop (spatial loops keep their fanout's).  A temporal loop indexing tensor v lies
    above v's node at level c -> level <= c (at level c it is one of the loops placed above v's tile there);
    below it -> level >= c; levels never decrease down the nest.  Each loop takes the shallowest level its
    constraints allow (so a mapping without per-tensor placements reads back without any).
    """
    L = arch.n_levels
    names = [lvl.name for lvl in arch.levels]
    lo = [(0, "")] * len(loops)
    hi = [(L - 1, "")] * len(loops)
    for (v, c), slot in placed.items():
        for i, lp in enumerate(loops):
            if lp.kind != "T" or lp.dim not in RELEVANT[v]:
                continue
            if i < slot and c < hi[i][0]:
                hi[i] = (c, f"above the storage of {TENSORS[v]} at {names[c]}")
            if i >= slot and c > lo[i][0]:
                lo[i] = (c, f"below the storage of {TENSORS[v]} at {names[c]}")
    levels: list[int] = []
    current, current_why = 0, "nest order"
    dims_at: list[list[int]] = [[] for _ in range(L)]  # temporal loops' dims per level, in nest order
    for i, lp in enumerate(loops):
        if lp.kind != "T":
            assert lp.level is not None  # spatial loops carry their level
            levels.append(lp.level)
            continue
        if lo[i][0] > hi[i][0]:
            raise SpecError(
                f"loop {lp.text} is {lo[i][1]} and {hi[i][1]}: the tensors' tiles do not nest level by level "
                f"(a tile of a deeper level outside a shallower one's), which rlmap needs",
                where,
            )
        lvl = max(lo[i][0], current)
        if lp.dim in dims_at[lvl] and dims_at[lvl][-1] != lp.dim and lvl < hi[i][0]:
            lvl += 1  # a second loop over this dim where the level's order has moved on: one level deeper
        if lvl > hi[i][0]:
            raise SpecError(
                f"loop {lp.text} must belong to level {names[hi[i][0]]} or above ({hi[i][1]}) but comes below a loop "
                f"of level {names[current]} ({current_why}): the tensors' tiles do not nest level by level, which "
                f"rlmap needs",
                where,
            )
        if lp.dim in dims_at[lvl] and dims_at[lvl][-1] != lp.dim:
            raise SpecError(
                f"two loops over rank {DIMS[lp.dim].lower()} at level {names[lvl]} with other loops "
                "between them: rlmap has one loop per dimension per level",
                where,
            )
        if lvl != current:
            current, current_why = lvl, lo[i][1] or "nest order"
        dims_at[lvl].append(lp.dim)
        levels.append(lvl)
    return levels


def _check_no_refetch(loops: list[_Loop], placed: dict[tuple[int, int], int], arch: Architecture, where: str) -> None:
    """AccelForge refetches a storage node's tile on every iteration of every temporal loop above it; rlmap
    (like Timeloop) keeps the tile across the loops that do not index the tensor.  Equal counts need the node
    right below the innermost loop above it that indexes its tensor."""
    for (v, c), slot in placed.items():
        above = [lp for lp in loops[:slot] if lp.kind == "T"]
        last = max((k for k, lp in enumerate(above) if lp.dim in RELEVANT[v]), default=-1)
        stray = [lp for lp in above[last + 1 :]]
        if stray:
            raise SpecError(
                f"the storage of {TENSORS[v]} at {arch.levels[c].name} sits below loop {stray[0].text}, "
                "which does not index "
                f"{TENSORS[v]}: AccelForge refetches the tile on every iteration of it, rlmap keeps it (stationary); "
                f"move the node above that loop for the same reuse",
                where,
            )


def compute_einsum(doc: Any) -> str | None:
    """The Einsum a LoopTree's !Compute node names."""
    body = doc.get("mapping", doc) if isinstance(doc, dict) else doc
    nodes = body.get("nodes") if isinstance(body, dict) else body
    last = nodes[-1] if isinstance(nodes, list) and nodes else None
    return str(last.get("einsum")) if isinstance(last, Tagged) and last.get("einsum") is not None else None


def from_accelforge(
    doc: Any, layer: Layer, arch: Architecture, where: str = "accelforge mapping", names: Names | None = None
) -> Mapping:
    """Read an AccelForge LoopTree mapping (`mapping: {nodes: [...]}`) into a Mapping (module docstring).

    `names` says which rank variable and tensor is which (`names_from_workload`); by default rlmap's
    exporter names (n g k c p q r s, I W O) and the usual aliases."""
    loops, placed = _parse_looptree(doc, layer, arch, where, names or Names())
    bypass = _check_bypass(placed, arch, where)
    levels = _assign_levels(loops, placed, arch, where)
    _check_no_refetch(loops, placed, arch, where)
    L = arch.n_levels
    temporal = [[1] * N_DIMS for _ in range(L)]
    sx = [[1] * N_DIMS for _ in range(L)]
    sy = [[1] * N_DIMS for _ in range(L)]
    nest: list[list[int]] = [[] for _ in range(L)]
    for lp, lvl in zip(loops, levels):
        if lp.kind == "T":
            temporal[lvl][lp.dim] *= lp.factor
            if lp.dim not in nest[lvl]:
                nest[lvl].append(lp.dim)
        else:
            (sx if lp.kind == "X" else sy)[lvl][lp.dim] *= lp.factor
    order = tuple(tuple([d for d in range(N_DIMS) if d not in nest[lvl]] + nest[lvl]) for lvl in range(L))
    # a tile placed below some of its own level's loops: their count (after the level's factor-1 positions)
    place = [[0] * N_TENSORS for _ in range(L)]
    for (v, c), slot in placed.items():
        above = []
        for lp, lvl in zip(loops[:slot], levels[:slot]):
            if lp.kind == "T" and lvl == c and lp.dim not in above:
                above.append(lp.dim)
        if above:
            place[c][v] = N_DIMS - len(nest[c]) + len(above)
    m = Mapping(
        tuple(map(tuple, temporal)),
        tuple(map(tuple, sx)),
        tuple(map(tuple, sy)),
        order,
        bypass,
        tuple(map(tuple, place)),
    )
    m.check_structure(layer, arch)
    return m
