"""Export an rlmap (layer, architecture, mapping) to Timeloop and AccelForge input files.

Timeloop (classic, v0.4 YAML)
-----------------------------
`to_timeloop` returns four YAML documents: the problem (`problem:`), the mapping (`mapping:`), the
architecture (`architecture:`, v0.4 `nodes:` style) and an energy reference table (`ERT:`) that pins
the per-access energies to rlmap's numbers; `from_timeloop` reads the mapping back.

* Dimension names.  For groups == 1 the problem is Timeloop's standard CNN layer (the `cnn_layer`
  shape of the Timeloop-Accelergy exercises): dims C, M, R, S, N, P, Q with coefficients Wstride,
  Hstride, Wdilation, Hdilation.  rlmap's K (output channels) is Timeloop's **M**.  That shape pairs
  the *W* coefficients with P/R (`[[R, Wdilation], [P, Wstride]]`), so Wstride/Wdilation carry rlmap's
  stride[0]/dilation[0] (the P axis) and Hstride/Hdilation stride[1]/dilation[1] (the Q axis).
  For groups > 1 there is no standard shape, so a custom one adds a G dimension that indexes all
  three tensors, with C and M *per group* (exactly rlmap's problem_dims).
* Loop order.  Timeloop permutation strings list loops **innermost first** ("little-endian (i.e.
  inner-to-outer) order", Timeloop mapping docs, timeloop.csail.mit.edu .../input-formats/mapping:
  `permutation: RPK` is `for k: for p: for r:`); rlmap orders are outermost first, so they are
  reversed on the way out and back.  Every directive lists every dimension (Timeloop requires one
  loop per dimension per sub-nest; unused ones have factor 1).
* Spatial.  rlmap's spatial factors of level l fan out to the instances of level l+1, which is what a
  Timeloop spatial directive targeting the parent level l means.  The permutation lists the X dims
  first, then the Y dims, then the factor-1 dims; `split` = number of X dims (positions < split go
  along meshX).  A dimension unrolled on *both* X and Y of one level has no single Timeloop factor
  and is refused.
* Bypass.  One `type: bypass` directive per level, with Timeloop's data-space names
  Weights/Inputs/Outputs, copied from the architecture's `keeps`.
* Round trip.  `from_timeloop(to_timeloop(m)) == m`, except that for groups == 1 the G loop (always
  factor 1, no Timeloop name) comes back outermost in each level's order; it iterates once, so the
  mapping is equivalent.
* Architecture assumptions (documented in the file header too): one storage component per rlmap
  level (depth = words per instance, width = datawidth = word_bits, block_size 1, so one access is
  one word and the ERT energy is rlmap's per-word energy); a partitioned capacity becomes one buffer
  of the summed depth, since Timeloop has no per-tensor partitions (NVlabs/timeloop issue #190);
  rlmap's combined read+write bandwidth is written as `shared_bandwidth`; fanouts become `!Container`
  nodes with meshX/meshY; per-axis dimension restrictions are not expressed (dims allowed on neither
  axis get a factor-1 constraint); sparse formats and the compute SAF are not exported.  The ERT table
  names (`system.<level>`) must match the flattened names your Accelergy version produces.

AccelForge (LoopTree mapping)
-----------------------------
`to_accelforge` returns the mapping (`mapping: {nodes: [...]}`), architecture (`arch: {nodes: ...}`)
and Einsum workload (`workload:`).  Syntax follows the AccelForge repository's examples and tests
(Accelergy-Project/accelforge: tests/input_files/table7/*.yaml, examples/arches/*.yaml,
accelforge/frontend/mapping/mapping.py):

* Mapping nodes, outermost first: `!Storage {tensors, component}`, `!Temporal {rank_variable,
  tile_shape}`, `!Spatial {rank_variable, tile_shape, name: X|Y, component: <fanout container>}`,
  `!Compute {einsum, component}`.  `tile_shape` is the tile *size* left after the loop (the product
  of that rank's factors inside it), not the loop bound.  Loops with factor 1 and ranks of size 1 are
  left out.
* Storage placement sets bypass (a tensor has no node at a level that does not keep it) and reuse.
  LoopTree refetches a tile under every loop above its Storage node, whereas rlmap (like Timeloop)
  keeps a child tile across parent loops that do not index it.  So each Storage node is placed as
  high as it can go: right below the innermost loop above its level that either indexes the tensor
  or is spatial (a node must sit below the fanout that replicates it), and below the Storage nodes
  of every memory above it (AccelForge's default force_memory_hierarchy_order).  Tile sizes do not
  change (only loops that do not index the tensor move below it).
* Architecture: `!Memory` per level (size in bits, `tensors: {keep: ...}`, read/write actions with
  rlmap's per-word energy and bits_per_action = word_bits, latency 0), a partitioned level becomes
  one `!Memory` per tensor (`<level>_<tensor>`, as AccelForge's own Eyeriss example does), a fanout
  becomes `!Container <level>_fanout` with `spatial: [{name: X, fanout}, {name: Y, fanout}]` and a
  `loop_bounds` constraint for restricted dims, the MACs a `!Compute`.  Latency: a bandwidth-limited
  memory gets `total_latency: (read_actions + write_actions) / bw / clock_hz` and the MAC one cycle
  per compute action, following the Eyeriss example; padding, sparse formats and SAFs are not
  exported (densities are, in the workload).
* Workload: one Einsum named after the layer (non-identifier characters replaced by `_`) over rank
  variables n, g, k, c, p, q, r, s (g only when groups > 1), with the sliding-window input
  projection `H: sh*p + dh*r`, `W: sw*q + dw*s`.

This is a best-effort translation: neither tool was run on the output here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import DIMS, N_DIMS, RELEVANT, TENSOR_INDEX, TENSORS

__all__ = [
    "Tagged", "dump_yaml", "load_tagged_yaml", "to_timeloop", "from_timeloop", "to_accelforge",
    "export", "FORMATS",
]

FORMATS = ("timeloop", "accelforge")

# ----------------------------------------------------------------------------- YAML with tags
class Tagged(dict):
    """A YAML mapping written with a local tag, e.g. ``!Storage {tensors: [...], component: GLB}``."""

    def __init__(self, tag: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag if tag.startswith("!") else f"!{tag}"

    def __repr__(self) -> str:
        return f"{self.tag}{dict.__repr__(self)}"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never write &id001 anchors
        return True


_Dumper.add_representer(Tagged, lambda d, node: d.represent_mapping(node.tag, dict(node)))


class _TaggedLoader(yaml.SafeLoader):
    pass


_TaggedLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: Tagged("!" + suffix, loader.construct_mapping(node, deep=True)))


def dump_yaml(data: Any, header: str = "") -> str:
    """YAML text of `data` (Tagged dicts written with their tag), preceded by `header` as comments."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.strip().splitlines()) if header else ""
    return lines + text


def load_tagged_yaml(text: str) -> Any:
    """Parse YAML that may contain local tags (`!Storage`, `!Component`, ...) into Tagged dicts."""
    return yaml.load(text, Loader=_TaggedLoader)  # noqa: S506 - SafeLoader subclass


# ----------------------------------------------------------------------------- shared helpers
def _fmt_num(x: float) -> int | float:
    """Write integral floats as ints (cleaner YAML)."""
    return int(x) if float(x).is_integer() else float(x)


def _loops(mapping: Mapping) -> list[tuple[str, int, int, int]]:
    """The nest outermost first as (kind, level, dim, factor), kind in {'T', 'X', 'Y'}; factors > 1 only."""
    out = []
    for lvl in range(mapping.n_levels):
        for d in mapping.order[lvl]:
            if mapping.temporal[lvl][d] > 1:
                out.append(("T", lvl, d, mapping.temporal[lvl][d]))
        for d in range(N_DIMS):
            if mapping.spatial_x[lvl][d] > 1:
                out.append(("X", lvl, d, mapping.spatial_x[lvl][d]))
        for d in range(N_DIMS):
            if mapping.spatial_y[lvl][d] > 1:
                out.append(("Y", lvl, d, mapping.spatial_y[lvl][d]))
    return out


def _check(layer: Layer, arch: Architecture, mapping: Mapping) -> None:
    mapping.check_structure(layer, arch)  # raises InvalidMappingError (a SpecError) naming level and dim


# ----------------------------------------------------------------------------- Timeloop
TL_TENSOR = {"inputs": "Inputs", "weights": "Weights", "outputs": "Outputs"}
_TL_TO_RLMAP_TENSOR = {v: k for k, v in TL_TENSOR.items()}
TL_DIM = {"N": "N", "G": "G", "K": "M", "C": "C", "P": "P", "Q": "Q", "R": "R", "S": "S"}
"""rlmap dimension -> Timeloop dimension name (rlmap K is Timeloop's M)."""


def _tl_dims(layer: Layer) -> list[str]:
    """rlmap dim names present in the Timeloop shape, in the shape's listing order."""
    order = ["C", "K", "R", "S", "N", "P", "Q"]
    return (["G"] if layer.groups > 1 else []) + order


def _tl_problem(layer: Layer) -> dict[str, Any]:
    grouped = layer.groups > 1
    g = [[["G"]]] if grouped else []  # one projection entry: the single term G
    shape = {
        "name": "grouped_cnn_layer" if grouped else "cnn_layer",
        "dimensions": [TL_DIM[d] for d in _tl_dims(layer)],
        "coefficients": [{"name": c, "default": 1} for c in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
        "data_spaces": [
            {"name": "Weights", "projection": g + [[["C"]], [["M"]], [["R"]], [["S"]]]},
            {"name": "Inputs", "projection": [[["N"]]] + g + [
                [["C"]], [["R", "Wdilation"], ["P", "Wstride"]], [["S", "Hdilation"], ["Q", "Hstride"]]]},
            {"name": "Outputs", "projection": [[["N"]]] + g + [[["M"]], [["Q"]], [["P"]]], "read_write": True},
        ],
    }
    dims = dict(zip(DIMS, layer.problem_dims))  # K and C per group
    instance = {TL_DIM[d]: dims[d] for d in _tl_dims(layer)}
    instance.update(Wstride=layer.stride[0], Hstride=layer.stride[1],
                    Wdilation=layer.dilation[0], Hdilation=layer.dilation[1])
    return {"problem": {"version": 0.4, "shape": shape, "instance": instance}}


def _tl_factors(names: list[str], row: tuple[int, ...]) -> str:
    return " ".join(f"{TL_DIM[d]}={row[DIMS.index(d)]}" for d in names)


def _tl_mapping(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    names = _tl_dims(layer)
    used = {DIMS.index(d) for d in names}
    directives: list[dict[str, Any]] = []
    for lvl, level in enumerate(arch.levels):
        order = [d for d in mapping.order[lvl] if d in used]  # outermost first
        directives.append({
            "target": level.name, "type": "temporal",
            "factors": _tl_factors(names, mapping.temporal[lvl]),
            "permutation": "".join(TL_DIM[DIMS[d]] for d in reversed(order)),  # innermost first
        })
        sx, sy = mapping.spatial_x[lvl], mapping.spatial_y[lvl]
        if level.fanout.size > 1 or any(f > 1 for f in sx + sy):
            both = [DIMS[d] for d in range(N_DIMS) if sx[d] > 1 and sy[d] > 1]
            if both:
                raise SpecError(
                    f"dimension {both[0]} is unrolled on both X and Y; a Timeloop spatial directive has one "
                    f"factor per dimension, so this mapping cannot be written for Timeloop",
                    f"level {level.name}")
            xs = [d for d in names if sx[DIMS.index(d)] > 1]
            ys = [d for d in names if sy[DIMS.index(d)] > 1]
            rest = [d for d in names if d not in xs and d not in ys]
            row = tuple(max(a, b) for a, b in zip(sx, sy))
            directives.append({
                "target": level.name, "type": "spatial",
                "factors": _tl_factors(names, row),
                "permutation": "".join(TL_DIM[d] for d in xs + ys + rest),
                "split": len(xs),
            })
    for level in arch.levels:
        directives.append({
            "target": level.name, "type": "bypass",
            "keep": [TL_TENSOR[t] for t in TENSORS if t in level.keeps],
            "bypass": [TL_TENSOR[t] for t in TENSORS if t not in level.keeps],
        })
    return {"mapping": directives}


def _tl_arch(arch: Architecture, layer: Layer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture document, ERT document)."""
    nodes: list[Any] = [Tagged("!Container", name="system",
                               attributes={"technology": "unspecified",
                                           "global_cycle_seconds": 1e-9 / arch.clock_ghz})]
    tables: list[dict[str, Any]] = []
    L = arch.n_levels
    for lvl, level in enumerate(arch.levels):
        cap = level.capacity
        attrs: dict[str, Any] = {"width": level.word_bits, "datawidth": level.word_bits, "block_size": 1}
        if cap is not None:
            attrs["depth"] = cap if isinstance(cap, int) else sum(cap.values())
        if level.bandwidth is not None:
            attrs["shared_bandwidth"] = _fmt_num(level.bandwidth)
        comp = Tagged("!Component", name=level.name,
                      **{"class": "DRAM" if lvl == 0 and cap is None else "storage"},
                      attributes=attrs,
                      constraints={"dataspace": {
                          "keep": [TL_TENSOR[t] for t in TENSORS if t in level.keeps],
                          "bypass": [TL_TENSOR[t] for t in TENSORS if t not in level.keeps]}})
        if isinstance(cap, dict):
            comp["attributes"]["rlmap_partitions"] = {TL_TENSOR[t]: w for t, w in cap.items()}
        nodes.append(comp)
        tables.append({"name": f"system.{level.name}", "actions": [
            {"name": "read", "arguments": None, "energy": _fmt_num(level.read_energy)},
            {"name": "write", "arguments": None, "energy": _fmt_num(level.write_energy)},
            {"name": "idle", "arguments": None, "energy": 0}]})
        fan = level.fanout
        if fan.size > 1:
            child = arch.levels[lvl + 1].name if lvl + 1 < L else "mac"
            spatial: dict[str, int] = {}
            if fan.x > 1:
                spatial["meshX"] = fan.x
            if fan.y > 1:
                spatial["meshY"] = fan.y
            cont = Tagged("!Container", name=f"{child}_array", spatial=spatial)
            if fan.x_dims or fan.y_dims:
                allowed = set(fan.x_dims or DIMS) | set(fan.y_dims or DIMS)
                banned = [d for d in _tl_dims(layer) if d not in allowed]
                if banned:
                    cont["constraints"] = {"spatial": {"factors": [f"{TL_DIM[d]}=1" for d in banned]}}
            nodes.append(cont)
    nodes.append(Tagged("!Component", name="mac", **{"class": "intmac"},
                        attributes={"datawidth": arch.data_bits}))
    tables.append({"name": "system.mac", "actions": [
        {"name": "compute", "arguments": None, "energy": _fmt_num(arch.compute.mac_energy)},
        {"name": "idle", "arguments": None, "energy": 0}]})
    return ({"architecture": {"version": 0.4, "nodes": nodes}},
            {"ERT": {"version": 0.3, "tables": tables}})


def to_timeloop(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, dict]:
    """Timeloop input documents keyed by file stem: 'problem', 'mapping', 'arch', 'ERT'.

    Raises SpecError (InvalidMappingError) if the mapping does not fit the layer and architecture,
    or if it unrolls one dimension on both X and Y of a level (not expressible in Timeloop).
    """
    _check(layer, arch, mapping)
    arch_doc, ert_doc = _tl_arch(arch, layer)
    return {
        "problem": _tl_problem(layer),
        "mapping": _tl_mapping(layer, arch, mapping),
        "arch": arch_doc,
        "ERT": ert_doc,
    }


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
        raise SpecError(f"unknown dimension {name!r} (Timeloop names: N, G, M, C, P, Q, R, S)", where)
    return DIMS.index(rl)


def _parse_tl_perm(raw: Any, where: str) -> list[int]:
    names = list(raw) if isinstance(raw, str) else raw
    if not isinstance(names, list):
        raise SpecError(f"permutation must be a string of dimension letters, got {raw!r}", where)
    idx = [_tl_dim_index(str(n), where) for n in names if str(n).strip()]
    if len(set(idx)) != len(idx):
        raise SpecError(f"permutation {raw!r} repeats a dimension", where)
    return idx


def from_timeloop(mapping_yaml: Any, layer: Layer, arch: Architecture) -> Mapping:
    """Read a Timeloop mapping (the `mapping:` document or its directive list) back into a Mapping.

    Factors not listed are 1; dims missing from a permutation go outermost (they iterate once when
    their factor is 1).  Bypass directives must agree with the architecture's `keeps` (rlmap fixes
    bypass per architecture).  The result is checked against the layer and architecture.
    """
    where = "timeloop mapping"
    directives = mapping_yaml.get("mapping") if isinstance(mapping_yaml, dict) else mapping_yaml
    if not isinstance(directives, list):
        raise SpecError("expected a 'mapping:' list of directives", where)
    L = arch.n_levels
    temporal = [[1] * N_DIMS for _ in range(L)]
    sx = [[1] * N_DIMS for _ in range(L)]
    sy = [[1] * N_DIMS for _ in range(L)]
    order: list[tuple[int, ...]] = [tuple(range(N_DIMS)) for _ in range(L)]
    seen: set[tuple[int, str]] = set()
    names = [lvl.name for lvl in arch.levels]
    for i, dv in enumerate(directives):
        here = f"{where}[{i}]"
        if not isinstance(dv, dict):
            raise SpecError("expected a dict", here)
        target, kind = dv.get("target"), dv.get("type", "temporal")
        if target not in names:
            raise SpecError(f"target {target!r} is not a level of architecture {arch.name!r} (levels: {', '.join(names)})",
                            here)
        lvl = names.index(target)
        here = f"{here} ({target} {kind})"
        if kind not in ("temporal", "spatial", "bypass"):
            raise SpecError(f"unknown directive type {kind!r} (expected temporal, spatial or bypass)", here)
        if (lvl, kind) in seen:
            raise SpecError("duplicate directive for this level", here)
        seen.add((lvl, kind))
        if kind == "bypass":
            keep = {_tensor(t, here) for t in dv.get("keep") or []}
            bypass = {_tensor(t, here) for t in dv.get("bypass") or []}
            kept = set(arch.levels[lvl].keeps)
            if keep - kept or bypass & kept:
                raise SpecError(
                    f"keep/bypass {sorted(keep)}/{sorted(bypass)} disagrees with the architecture, which keeps "
                    f"{sorted(kept)} here (rlmap fixes bypass per architecture)", here)
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
                    raise SpecError(f"dimension {TL_DIM[DIMS[d]]} has a spatial factor but is not in the permutation",
                                    here)
                (sx if pos[d] < split else sy)[lvl][d] = f
    m = Mapping(
        temporal=tuple(tuple(r) for r in temporal),
        spatial_x=tuple(tuple(r) for r in sx),
        spatial_y=tuple(tuple(r) for r in sy),
        order=tuple(order),
    )
    m.check_structure(layer, arch)
    return m


def _tensor(name: Any, where: str) -> str:
    key = str(name)
    if key in _TL_TO_RLMAP_TENSOR:
        return _TL_TO_RLMAP_TENSOR[key]
    if key.lower() in TENSOR_INDEX:
        return key.lower()
    raise SpecError(f"unknown data space {name!r} (expected Weights, Inputs or Outputs)", where)


# ----------------------------------------------------------------------------- AccelForge
AF_TENSOR = TL_TENSOR
AF_COMPUTE = "MAC"


def _af_rank(d: int) -> str:
    return DIMS[d].lower()


def _einsum_name(layer: Layer) -> str:
    name = re.sub(r"\W+", "_", layer.name).strip("_") or "layer"
    return name if not name[0].isdigit() else f"L{name}"


def _memories(arch: Architecture) -> list[tuple[str, int, tuple[str, ...]]]:
    """(component name, level, tensors) per AccelForge memory, outermost first."""
    out = []
    for lvl, level in enumerate(arch.levels):
        if isinstance(level.capacity, dict):
            for t in TENSORS:
                if t in level.keeps:
                    out.append((f"{level.name}_{t}", lvl, (t,)))
        else:
            out.append((level.name, lvl, tuple(level.keeps)))
    return out


def _af_mapping(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    loops = _loops(mapping)
    remaining = list(layer.problem_dims)
    loop_nodes: list[Tagged] = []
    for kind, lvl, d, f in loops:
        remaining[d] //= f
        if kind == "T":
            loop_nodes.append(Tagged("!Temporal", rank_variable=_af_rank(d), tile_shape=remaining[d]))
        else:
            loop_nodes.append(Tagged("!Spatial", rank_variable=_af_rank(d), tile_shape=remaining[d],
                                     name=kind, component=f"{arch.levels[lvl].name}_fanout"))
    assert all(r == 1 for r in remaining), "check_structure guarantees the factors multiply out"

    # slot s = position before loop s (0 = top, len(loops) = just above the compute)
    placed: list[tuple[int, int, str, str]] = []  # (slot, memory rank, component, tensor)
    prev_bound = 0
    for rank, (comp, lvl, tensors) in enumerate(_memories(arch)):
        bound_here = prev_bound
        for t in tensors:
            v = TENSORS.index(t)
            slot = prev_bound
            for i, (kind, l2, d, _f) in enumerate(loops):
                if l2 >= lvl:
                    break
                if kind != "T" or d in RELEVANT[v]:
                    slot = max(slot, i + 1)
            placed.append((slot, rank, comp, t))
            bound_here = max(bound_here, slot)
        prev_bound = bound_here
    placed.sort(key=lambda x: (x[0], x[1]))

    nodes: list[Tagged] = []
    slot_nodes: dict[int, list[Tagged]] = {}
    for slot, _rank, comp, t in placed:
        group = slot_nodes.setdefault(slot, [])
        if group and group[-1]["component"] == comp:
            group[-1]["tensors"].append(AF_TENSOR[t])
        else:
            group.append(Tagged("!Storage", tensors=[AF_TENSOR[t]], component=comp))
    for i in range(len(loops) + 1):
        nodes.extend(slot_nodes.get(i, []))
        if i < len(loops):
            nodes.append(loop_nodes[i])
    nodes.append(Tagged("!Compute", einsum=_einsum_name(layer), component=AF_COMPUTE))
    return {"mapping": {"nodes": nodes}}


def _af_keep(tensors: Iterable[str]) -> str:
    ts = list(tensors)
    if set(ts) == set(TENSORS):
        return "All"
    return " | ".join(AF_TENSOR[t] for t in ts)


def _af_arch(arch: Architecture) -> dict[str, Any]:
    hz = arch.clock_ghz * 1e9
    nodes: list[Tagged] = []
    mems = _memories(arch)
    for lvl, level in enumerate(arch.levels):
        for comp, l2, tensors in mems:
            if l2 != lvl:
                continue
            cap = level.capacity
            words = None if cap is None else cap if isinstance(cap, int) else cap[tensors[0]]
            mem = Tagged("!Memory", name=comp,
                         size="inf" if words is None else words * level.word_bits,
                         leak_power=0, area=0,
                         tensors={"keep": _af_keep(tensors)},
                         actions=[
                             {"name": "read", "energy": _fmt_num(level.read_energy),
                              "bits_per_action": level.word_bits, "latency": 0},
                             {"name": "write", "energy": _fmt_num(level.write_energy),
                              "bits_per_action": level.word_bits, "latency": 0}])
            if level.bandwidth is not None:
                mem["total_latency"] = f"(read_actions + write_actions) / {_fmt_num(level.bandwidth)} / {hz:g}"
            nodes.append(mem)
        fan = level.fanout
        if fan.size > 1:
            spatial = []
            for axis, n, allowed in (("X", fan.x, fan.x_dims), ("Y", fan.y, fan.y_dims)):
                if n <= 1:
                    continue
                entry: dict[str, Any] = {"name": axis, "fanout": n}
                if allowed:
                    expr = " | ".join(d.lower() for d in allowed)
                    entry["loop_bounds"] = [{"expression": f"~({expr})", "operator": "==", "value": 1}]
                spatial.append(entry)
            nodes.append(Tagged("!Container", name=f"{level.name}_fanout", spatial=spatial))
    nodes.append(Tagged("!Compute", name=AF_COMPUTE, leak_power=0, area=0,
                        total_latency=f"compute_actions / {hz:g}",
                        actions=[{"name": "compute", "energy": _fmt_num(arch.compute.mac_energy), "latency": 0}]))
    return {"arch": {"nodes": nodes}}


def _affine(coef_p: int, p: str, coef_r: int, r: str) -> str:
    a = p if coef_p == 1 else f"{coef_p}*{p}"
    b = r if coef_r == 1 else f"{coef_r}*{r}"
    return f"{a} + {b}"


def _af_workload(layer: Layer, data_bits: int) -> dict[str, Any]:
    dims = dict(zip(DIMS, layer.problem_dims))
    grouped = layer.groups > 1
    ranks = [d for d in DIMS if d != "G" or grouped]
    space = {d.lower(): f"0 <= {d.lower()} < {dims[d]}" for d in ranks}
    sh, sw = layer.stride
    dh, dw = layer.dilation
    g = {"G": "g"} if grouped else {}
    workload: dict[str, Any] = {
        "iteration_space_shape": space,
        "bits_per_value": {"All": data_bits},
    }
    if not layer.density.is_dense:
        workload["densities"] = {AF_TENSOR[t]: getattr(layer.density, t) for t in TENSORS}
    workload["einsums"] = [{
        "name": _einsum_name(layer),
        "tensor_accesses": [
            {"name": "Weights", "projection": {**g, "K": "k", "C": "c", "R": "r", "S": "s"}},
            {"name": "Inputs", "projection": {"N": "n", **g, "C": "c", "H": _affine(sh, "p", dh, "r"),
                                              "W": _affine(sw, "q", dw, "s")}},
            {"name": "Outputs", "projection": {"N": "n", **g, "K": "k", "P": "p", "Q": "q"}, "output": True},
        ],
    }]
    return {"workload": workload}


def to_accelforge(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    """AccelForge input documents keyed by file stem: 'mapping', 'arch', 'workload'.

    `result['mapping']['mapping']['nodes']` is the LoopTree, outermost first, as `Tagged` dicts
    (`.tag` is '!Storage', '!Temporal', '!Spatial' or '!Compute').
    """
    _check(layer, arch, mapping)
    return {"mapping": _af_mapping(layer, arch, mapping), "arch": _af_arch(arch),
            "workload": _af_workload(layer, arch.data_bits)}


# ----------------------------------------------------------------------------- files
_HEADERS = {
    "timeloop": (
        "Exported by rlmap for Timeloop (v0.4 input format); layer {layer} on architecture {arch}.\n"
        "rlmap K (output channels) = Timeloop M. Permutations are innermost loop first.\n"
        "Energies: per word access, given in ERT.yaml (run timeloop-model with it instead of Accelergy\n"
        "estimation; table names may need your Accelergy version's flattened component names).\n"
        "Approximations: partitioned buffers -> one buffer of the summed depth; bandwidth -> shared_bandwidth;\n"
        "sparse formats / SAF not exported. See rlmap/interop/export.py for details."),
    "accelforge": (
        "Exported by rlmap for AccelForge; layer {layer} on architecture {arch}.\n"
        "LoopTree mapping outermost first; tile_shape = tile size left after the loop.\n"
        "Memory size in bits; energies per word access (bits_per_action = word bits).\n"
        "Not exported: padding, sparse formats, SAFs. See rlmap/interop/export.py for details."),
}


def export(fmt: str, layer: Layer, arch: Architecture, mapping: Mapping, out_dir: str | Path) -> list[Path]:
    """Write the documents of `fmt` ('timeloop' or 'accelforge') as <out_dir>/<stem>.yaml; returns the paths."""
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})", "--format")
    docs = to_timeloop(layer, arch, mapping) if fmt == "timeloop" else to_accelforge(layer, arch, mapping)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SpecError("exists and is not a directory", str(out))
    out.mkdir(parents=True, exist_ok=True)
    header = _HEADERS[fmt].format(layer=layer.name, arch=arch.name)
    paths = []
    for stem, doc in docs.items():
        p = out / f"{stem}.yaml"
        p.write_text(dump_yaml(doc, f"{stem}.yaml -- " + header))
        paths.append(p)
    return paths


def tile_shapes(mapping_nodes: list[Any]) -> list[tuple[str, str, int]]:
    """(tag, rank_variable, tile_shape) of every loop node: a small helper for inspection and tests."""
    return [(n.tag, n["rank_variable"], n["tile_shape"]) for n in mapping_nodes
            if isinstance(n, Tagged) and n.tag in ("!Temporal", "!Spatial")]

