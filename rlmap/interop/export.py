"""Export an rlmap (layer, architecture, mapping) to Timeloop and AccelForge input files.

The importers (rlmap/interop/mapping_import.py) read both formats back; the names both sides use
(dimensions, tensors, components) are defined here once.

Timeloop (classic, v0.4 YAML)
-----------------------------
`to_timeloop` returns four YAML documents: the problem (`problem:`), the mapping (`mapping:`), the
architecture (`architecture:`, v0.4 `nodes:` style) and an energy reference table (`ERT:`) that pins
the per-access energies to rlmap's numbers.

* Dimension names.  For groups == 1 the problem is Timeloop's standard CNN layer (the `cnn_layer`
  shape of the Timeloop-Accelergy exercises): dims C, M, R, S, N, P, Q with coefficients Wstride,
  Hstride, Wdilation, Hdilation.  rlmap's K (output channels) is Timeloop's **M**.  That shape pairs
  the *W* coefficients with P/R (`[[R, Wdilation], [P, Wstride]]`), so Wstride/Wdilation carry rlmap's
  stride[0]/dilation[0] (the P axis) and Hstride/Hdilation stride[1]/dilation[1] (the Q axis).
  For groups > 1 there is no standard shape, so a custom one adds a G dimension that indexes all
  three tensors, with C and M *per group* (exactly rlmap's problem_dims).
* Loop order.  Timeloop permutation strings list loops **innermost first** ("little-endian (i.e.
  inner-to-outer) order", Timeloop mapping docs: `permutation: RPK` is `for k: for p: for r:`); rlmap
  orders are outermost first, so they are reversed on the way out and back.  Every directive lists
  every dimension (Timeloop requires one loop per dimension per sub-nest; unused ones have factor 1).
* Spatial.  rlmap's spatial factors of level l fan out to the instances of level l+1, which is what a
  Timeloop spatial directive targeting level l means.  A one-axis fanout is one spatial directive (`split`
  = the number of dims for X, 0 for Y).  A two-axis fanout (x > 1 and y > 1) is written as two spatial
  levels, the way Timeloop's own eyeriss_like example splits its 14 x 12 array with a DummyBuffer: a
  storage level `<level>_dummy_y` that keeps nothing (bypasses every tensor, temporal factors 1) sits
  between the X mesh and the Y mesh; level l's spatial directive carries the X factors and the dummy's
  the Y factors.  So a dimension unrolled on both X and Y of one level -- which the mappers produce
  often and a single Timeloop directive cannot hold (one factor per dimension) -- is written exactly.
  The dummy changes no count: a level that keeps nothing moves no data, and its loops and fanout count
  toward the pair around it.
* Bypass.  One `type: bypass` directive per level, with Timeloop's data-space names
  Weights/Inputs/Outputs, copied from the architecture's `keeps`.
* Architecture assumptions (in the file header too): one storage component per rlmap level (depth =
  words per instance, width = datawidth = word_bits, block_size 1, so one access is one word and the
  ERT energy is rlmap's per-word energy); a partitioned capacity becomes one buffer of the summed depth,
  since Timeloop has no per-tensor partitions (NVlabs/timeloop issue #190); rlmap's combined read+write
  bandwidth is written as `shared_bandwidth`; fanouts become `!Container` nodes with meshX/meshY;
  per-axis dimension restrictions are not expressed (dims allowed on neither axis get a factor-1
  constraint); sparse formats and the compute SAF are not exported.  The ERT table names
  (`system.<level>`) must match the flattened names your Accelergy version produces.

AccelForge (LoopTree mapping), checked against AccelForge 1.0.467
-----------------------------------------------------------------
`to_accelforge` returns the mapping (`mapping: {nodes: [...]}`), architecture (`arch: {nodes: ...}`)
and Einsum workload (`workload:`).  AccelForge evaluates the files to rlmap's numbers under the
`accelforge` semantics (every per-level, per-tensor access, energy and latency; tests/test_accelforge.py
and tests/data/accelforge_reference.json).

* Loop nest, outermost first: per level, its spatial loops (`!Spatial`, X then Y, `component:
  <level>_fanout`) and then its temporal loops in rlmap's order (`!Temporal`).  `tile_shape` is the tile
  size left after the loop (the product of that rank's factors inside it).  Loops with factor 1 are left
  out.  Spatial and temporal loops commute in AccelForge's model; spatial first keeps every loop that
  indexes a tensor above that tensor's storage nodes below the fanout.
* Storage placement, tensor by tensor.  LoopTree refetches a storage node's tile on every iteration of
  every loop above it, whereas rlmap (like Timeloop) keeps a child tile across the parent's loops that do
  not index the tensor.  So the node of tensor v at level c goes right below the innermost temporal loop
  of the levels above c that indexes v (and below v's node one level up); the loops after it do not
  index v and run inside the node's lifetime.  Other tensors' nodes and spatial loops are no barrier
  (AccelForge analyses each tensor on its own and re-attaches spatial loops above the first node below
  their fanout).  Tile sizes do not change.  Bypass: a tensor has no node at a level that does not keep it.
* Architecture: `!Memory` per level (size in bits, `tensors: {keep: ...}`, read/write energy per action,
  `bits_per_action` = word_bits so one action is one level word, action `throughput: inf`); a
  partitioned level is one `!Memory` of the summed size, because rlmap's bandwidth is one read+write
  budget per level instance while an AccelForge latency expression sees only its own memory's actions
  (per-tensor memories would give each partition the whole bandwidth; rlmap checks the partitions'
  capacities itself), a fanout a `!Container <level>_fanout` with `spatial: [{name: X, fanout}, ...]` and a
  `loop_bounds` constraint for restricted dims, the MACs a `!Compute` at one MAC per cycle.  Latency: a
  bandwidth-limited memory gets `total_latency: sum(a.n_calls for a in actions) / bw / clock_hz` (its
  busiest instance's accesses over its bandwidth, seconds); the MAC `throughput` is the clock; leak
  power and area are 0, so no component model (hwcomponents, CACTI) is consulted.  Component names are
  identifiers; a name AccelForge reserves (`global_...`) gets the prefix `mem_`.
* Workload: one Einsum named after the layer (non-identifier characters replaced by `_`) over rank
  variables n, g, k, c, p, q, r, s (g only when groups > 1), tensors I, W, O with the sliding-window input
  projection `H: sh*p + dh*r`, `W: sw*q + dw*s` (padding is part of the input's extent, as in rlmap).
  `accelforge_problem` (the problem for AccelForge's own mapper, TCM) leaves out rank variables of extent 1.
  AccelForge 1.0.467 has no sparsity model: densities, storage formats and compute SAFs are not
  exported (the files describe the dense layer; `export` says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlmap.interop.yaml_tags import Tagged, dump_yaml, load_tagged_yaml
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.outputs import atomic_write_text
from rlmap.spec.problem import DIMS, N_DIMS, RELEVANT, TENSORS

__all__ = [
    "Tagged",
    "dump_yaml",
    "load_tagged_yaml",
    "to_timeloop",
    "to_accelforge",
    "export",
    "export_notes",
    "accelforge_problem",
    "FORMATS",
    "TL_DIM",
    "TL_TENSOR",
    "TL_DUMMY_SUFFIX",
    "AF_TENSOR",
    "AF_COMPUTE",
    "af_memories",
    "af_fanout",
    "af_rank",
]

FORMATS = ("timeloop", "accelforge")


# ----------------------------------------------------------------------------- shared helpers
def _fmt_num(x: float) -> int | float:
    """Write integral floats as ints (cleaner YAML)."""
    return int(x) if float(x).is_integer() else float(x)


def _check(layer: Layer, arch: Architecture, mapping: Mapping) -> None:
    mapping.check_structure(layer, arch)  # raises InvalidMappingError (a SpecError) naming level and dim


# ----------------------------------------------------------------------------- Timeloop
TL_TENSOR = {"inputs": "Inputs", "weights": "Weights", "outputs": "Outputs"}
TL_DIM = {"N": "N", "G": "G", "K": "M", "C": "C", "P": "P", "Q": "Q", "R": "R", "S": "S"}
"""rlmap dimension -> Timeloop dimension name (rlmap K is Timeloop's M)."""
TL_DUMMY_SUFFIX = "_dummy_y"
"""`<level>_dummy_y`: the storage level that keeps nothing and splits a two-axis fanout into X then Y."""


def _tl_dims(layer: Layer) -> list[str]:
    """rlmap dim names present in the Timeloop shape, in the shape's listing order."""
    order = ["C", "K", "R", "S", "N", "P", "Q"]
    return (["G"] if layer.groups > 1 else []) + order


def _two_axis(level: Any) -> bool:
    return level.fanout.x > 1 and level.fanout.y > 1


def _tl_problem(layer: Layer) -> dict[str, Any]:
    grouped = layer.groups > 1
    g = [[["G"]]] if grouped else []  # one projection entry: the single term G
    shape = {
        "name": "grouped_cnn_layer" if grouped else "cnn_layer",
        "dimensions": [TL_DIM[d] for d in _tl_dims(layer)],
        "coefficients": [{"name": c, "default": 1} for c in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
        "data_spaces": [
            {"name": "Weights", "projection": g + [[["C"]], [["M"]], [["R"]], [["S"]]]},
            {
                "name": "Inputs",
                "projection": [[["N"]]]
                + g
                + [[["C"]], [["R", "Wdilation"], ["P", "Wstride"]], [["S", "Hdilation"], ["Q", "Hstride"]]],
            },
            {"name": "Outputs", "projection": [[["N"]]] + g + [[["M"]], [["Q"]], [["P"]]], "read_write": True},
        ],
    }
    dims = dict(zip(DIMS, layer.problem_dims))  # K and C per group
    instance = {TL_DIM[d]: dims[d] for d in _tl_dims(layer)}
    instance.update(
        Wstride=layer.stride[0], Hstride=layer.stride[1], Wdilation=layer.dilation[0], Hdilation=layer.dilation[1]
    )
    return {"problem": {"version": 0.4, "shape": shape, "instance": instance}}


def _tl_factors(names: list[str], row: tuple[int, ...]) -> str:
    return " ".join(f"{TL_DIM[d]}={row[DIMS.index(d)]}" for d in names)


def _tl_spatial(target: str, names: list[str], row: tuple[int, ...], axis: str) -> dict[str, Any]:
    """One spatial directive putting every dim of `row` on one mesh axis (X: split = all, Y: split = 0)."""
    used = [d for d in names if row[DIMS.index(d)] > 1]
    perm = used + [d for d in names if d not in used]
    return {
        "target": target,
        "type": "spatial",
        "factors": _tl_factors(names, row),
        "permutation": "".join(TL_DIM[d] for d in perm),
        "split": len(perm) if axis == "X" else 0,
    }


def _tl_mapping(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    names = _tl_dims(layer)
    used = {DIMS.index(d) for d in names}
    ones = (1,) * N_DIMS
    directives: list[dict[str, Any]] = []
    for lvl, level in enumerate(arch.levels):
        order = [d for d in mapping.order[lvl] if d in used]  # outermost first
        directives.append(
            {
                "target": level.name,
                "type": "temporal",
                "factors": _tl_factors(names, mapping.temporal[lvl]),
                "permutation": "".join(TL_DIM[DIMS[d]] for d in reversed(order)),  # innermost first
            }
        )
        sx, sy = mapping.spatial_x[lvl], mapping.spatial_y[lvl]
        fan = level.fanout
        if _two_axis(level):
            dummy = level.name + TL_DUMMY_SUFFIX
            directives.append(_tl_spatial(level.name, names, sx, "X"))
            directives.append(
                {
                    "target": dummy,
                    "type": "temporal",
                    "factors": _tl_factors(names, ones),
                    "permutation": "".join(TL_DIM[d] for d in names),
                }
            )
            directives.append(_tl_spatial(dummy, names, sy, "Y"))
        elif fan.x > 1 or any(f > 1 for f in sx):
            directives.append(_tl_spatial(level.name, names, sx, "X"))
        elif fan.y > 1 or any(f > 1 for f in sy):
            directives.append(_tl_spatial(level.name, names, sy, "Y"))
    kept = mapping.kept(arch)
    for lvl, level in enumerate(arch.levels):
        directives.append(
            {
                "target": level.name,
                "type": "bypass",
                "keep": [TL_TENSOR[t] for v, t in enumerate(TENSORS) if kept[lvl][v]],
                "bypass": [TL_TENSOR[t] for v, t in enumerate(TENSORS) if not kept[lvl][v]],
            }
        )
        if _two_axis(level):
            directives.append(
                {
                    "target": level.name + TL_DUMMY_SUFFIX,
                    "type": "bypass",
                    "keep": [],
                    "bypass": [TL_TENSOR[t] for t in TENSORS],
                }
            )
    return {"mapping": directives}


def _tl_arch(arch: Architecture, layer: Layer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture document, ERT document)."""
    nodes: list[Any] = [
        Tagged(
            "!Container",
            name="system",
            attributes={"technology": "unspecified", "global_cycle_seconds": 1e-9 / arch.clock_ghz},
        )
    ]
    tables: list[dict[str, Any]] = []
    L = arch.n_levels

    def table(name: str, read: float, write: float) -> None:
        tables.append(
            {
                "name": f"system.{name}",
                "actions": [
                    {"name": "read", "arguments": None, "energy": _fmt_num(read)},
                    {"name": "write", "arguments": None, "energy": _fmt_num(write)},
                    {"name": "idle", "arguments": None, "energy": 0},
                ],
            }
        )

    def container(name: str, spatial: dict[str, int], fan: Any) -> Tagged:
        cont = Tagged("!Container", name=name, spatial=spatial)
        if fan.x_dims or fan.y_dims:
            allowed = set(fan.x_dims or DIMS) | set(fan.y_dims or DIMS)
            banned = [d for d in _tl_dims(layer) if d not in allowed]
            if banned:
                cont["constraints"] = {"spatial": {"factors": [f"{TL_DIM[d]}=1" for d in banned]}}
        return cont

    for lvl, level in enumerate(arch.levels):
        cap = level.capacity
        attrs: dict[str, Any] = {"width": level.word_bits, "datawidth": level.word_bits, "block_size": 1}
        if cap is not None:
            attrs["depth"] = cap if isinstance(cap, int) else sum(cap.values())
        if level.bandwidth is not None:
            attrs["shared_bandwidth"] = _fmt_num(level.bandwidth)
        comp = Tagged(
            "!Component",
            name=level.name,
            **{"class": "DRAM" if lvl == 0 and cap is None else "storage"},
            attributes=attrs,
            constraints={
                "dataspace": {
                    "keep": [TL_TENSOR[t] for t in TENSORS if t in level.keeps],
                    "bypass": [TL_TENSOR[t] for t in TENSORS if t not in level.keeps],
                }
            },
        )
        if isinstance(cap, dict):
            comp["attributes"]["rlmap_partitions"] = {TL_TENSOR[t]: w for t, w in cap.items()}
        nodes.append(comp)
        table(level.name, level.read_energy, level.write_energy)
        fan = level.fanout
        if fan.size > 1:
            child = arch.levels[lvl + 1].name if lvl + 1 < L else "mac"
            if _two_axis(level):
                dummy = level.name + TL_DUMMY_SUFFIX
                nodes.append(container(f"{child}_columns", {"meshX": fan.x}, fan))
                nodes.append(
                    Tagged(
                        "!Component",
                        name=dummy,
                        **{"class": "storage"},
                        attributes={
                            "depth": 1,
                            "width": level.word_bits,
                            "datawidth": level.word_bits,
                            "block_size": 1,
                        },
                        constraints={"dataspace": {"keep": [], "bypass": [TL_TENSOR[t] for t in TENSORS]}},
                    )
                )
                table(dummy, 0, 0)
                nodes.append(container(f"{child}_array", {"meshY": fan.y}, fan))
            else:
                nodes.append(container(f"{child}_array", {"meshX": fan.x} if fan.x > 1 else {"meshY": fan.y}, fan))
    nodes.append(Tagged("!Component", name="mac", **{"class": "intmac"}, attributes={"datawidth": arch.data_bits}))
    tables.append(
        {
            "name": "system.mac",
            "actions": [
                {"name": "compute", "arguments": None, "energy": _fmt_num(arch.compute.mac_energy)},
                {"name": "idle", "arguments": None, "energy": 0},
            ],
        }
    )
    return ({"architecture": {"version": 0.4, "nodes": nodes}}, {"ERT": {"version": 0.3, "tables": tables}})


def to_timeloop(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, dict]:
    """Timeloop input documents keyed by file stem: 'problem', 'mapping', 'arch', 'ERT'.

    Raises SpecError (InvalidMappingError) if the mapping does not fit the layer and architecture.
    """
    _check(layer, arch, mapping)
    if mapping.place is not None:  # Timeloop gives every tensor a level keeps the level's one tile
        raise SpecError(
            "the mapping places tensors' tiles at their own loop positions, which a Timeloop mapping "
            "cannot express (bypass it can): export it to AccelForge instead"
        )
    arch_doc, ert_doc = _tl_arch(arch, layer)
    return {
        "problem": _tl_problem(layer),
        "mapping": _tl_mapping(layer, arch, mapping),
        "arch": arch_doc,
        "ERT": ert_doc,
    }


# ----------------------------------------------------------------------------- AccelForge
AF_TENSOR = {"inputs": "I", "weights": "W", "outputs": "O"}
"""rlmap tensor -> AccelForge tensor name (the short names: `Inputs`/`Outputs` are AccelForge set names)."""
AF_COMPUTE = "MAC"


def af_rank(d: int) -> str:
    """AccelForge rank variable of rlmap dimension d (lower-case dim letter)."""
    return DIMS[d].lower()


def _af_name(name: str) -> str:
    """An identifier AccelForge accepts as a component name (`global_...` is reserved for its globals)."""
    ident = re.sub(r"\W+", "_", name).strip("_") or "level"
    if ident[0].isdigit() or ident.startswith("global_") or ident == "global":
        ident = f"mem_{ident}"
    return ident


def af_fanout(level_name: str) -> str:
    """The `!Container` holding level `level_name`'s spatial fanout."""
    return _af_name(f"{level_name}_fanout")


def af_memories(arch: Architecture, mapping: Mapping | None = None) -> list[tuple[str, int, tuple[str, ...]]]:
    """(component name, level, tensors) per AccelForge memory, outermost first: one per level.  The tensors
    are those the level keeps -- in `mapping` if given (its bypasses left out), else in the architecture.

    A partitioned level is one memory too (size = the partitions' sum): rlmap's bandwidth is one budget
    per level instance, and an AccelForge latency expression sees only its own memory's actions.
    """
    if mapping is None:
        return [(_af_name(level.name), lvl, tuple(level.keeps)) for lvl, level in enumerate(arch.levels)]
    kept = mapping.kept(arch)
    return [
        (_af_name(level.name), lvl, tuple(t for v, t in enumerate(TENSORS) if kept[lvl][v]))
        for lvl, level in enumerate(arch.levels)
    ]


def _einsum_name(layer: Layer) -> str:
    name = re.sub(r"\W+", "_", layer.name).strip("_") or "layer"
    return name if not name[0].isdigit() else f"L{name}"


def _af_loops(mapping: Mapping) -> list[tuple[str, int, int, int]]:
    """The nest outermost first as (kind, level, dim, factor), kind in {'X', 'Y', 'T'}: per level its spatial
    loops (X then Y), then its temporal loops in order; factors > 1 only."""
    out = []
    for lvl in range(mapping.n_levels):
        temporal = [("T", lvl, d, mapping.temporal[lvl][d]) for d in mapping.order[lvl] if mapping.temporal[lvl][d] > 1]
        spatial = [
            (kind, lvl, d, mat[lvl][d])
            for kind, mat in (("X", mapping.spatial_x), ("Y", mapping.spatial_y))
            for d in range(N_DIMS)
            if mat[lvl][d] > 1
        ]
        out += (temporal + spatial) if mapping.place is not None else (spatial + temporal)
    return out


def _af_mapping(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    loops = _af_loops(mapping)
    remaining = list(layer.problem_dims)
    loop_nodes: list[Tagged] = []
    for kind, lvl, d, f in loops:
        remaining[d] //= f
        if kind == "T":
            loop_nodes.append(Tagged("!Temporal", rank_variable=af_rank(d), tile_shape=remaining[d]))
        else:
            loop_nodes.append(
                Tagged(
                    "!Spatial",
                    rank_variable=af_rank(d),
                    tile_shape=remaining[d],
                    name=kind,
                    component=af_fanout(arch.levels[lvl].name),
                )
            )
    assert all(r == 1 for r in remaining), "check_structure guarantees the factors multiply out"

    # slot s = just before loop s (0 = the top, len(loops) = just above the compute)
    placed: list[tuple[int, int, str, str]] = []  # (slot, memory rank, component, tensor)
    parent_slot: dict[str, int] = {}
    for rank, (comp, lvl, tensors) in enumerate(af_memories(arch, mapping)):
        for t in tensors:
            v = TENSORS.index(t)
            slot = parent_slot.get(t, 0)
            above = set(mapping.order[lvl][: mapping.place_row(lvl)[v]])  # this level's loops above the tile
            for i, (kind, l2, d, _f) in enumerate(loops):
                if kind == "T" and d in RELEVANT[v] and (l2 < lvl or (l2 == lvl and d in above)):
                    slot = max(slot, i + 1)
            parent_slot[t] = slot
            placed.append((slot, rank, comp, t))
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
    return " | ".join(AF_TENSOR[t] for t in tensors)


def _af_tensors(level: Any, tensors: tuple[str, ...], free: bool) -> dict[str, str]:
    """A memory's `tensors:` entry: what it keeps; with `free`, the bypassable ones as `may_keep`."""
    if not free or not level.may_bypass:
        return {"keep": _af_keep(tensors)}
    must = [t for t in tensors if t not in level.may_bypass]
    out = {"keep": _af_keep(must) if must else "~All", "may_keep": _af_keep(level.may_bypass)}
    return out


def _af_arch(arch: Architecture, mapping: Mapping | None = None) -> dict[str, Any]:
    """The architecture; with a mapping each memory keeps what the mapping keeps there, without one the
    tensors a level may bypass are `may_keep` (the mapper decides: what TCM searches over)."""
    hz = arch.clock_ghz * 1e9
    nodes: list[Tagged] = []
    mems = af_memories(arch, mapping)
    for lvl, level in enumerate(arch.levels):
        for comp, l2, tensors in mems:
            if l2 != lvl:
                continue
            cap = level.capacity
            words = None if cap is None else cap if isinstance(cap, int) else sum(cap.values())
            mem = Tagged(
                "!Memory",
                name=comp,
                size="inf" if words is None else words * level.word_bits,
                leak_power=0,
                area=0,
                bits_per_action=level.word_bits,
                tensors=_af_tensors(level, tensors, mapping is None),
            )
            if level.bandwidth is not None:
                mem["total_latency"] = f"sum(a.n_calls for a in actions) / {_fmt_num(level.bandwidth)} / {hz:g}"
            mem["actions"] = [
                {"name": "read", "energy": _fmt_num(level.read_energy), "throughput": "inf"},
                {"name": "write", "energy": _fmt_num(level.write_energy), "throughput": "inf"},
            ]
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
            nodes.append(Tagged("!Container", name=af_fanout(level.name), spatial=spatial))
    nodes.append(
        Tagged(
            "!Compute",
            name=AF_COMPUTE,
            leak_power=0,
            area=0,
            actions=[{"name": "compute", "energy": _fmt_num(arch.compute.mac_energy), "throughput": hz}],
        )
    )
    return {"arch": {"nodes": nodes}}


def _affine(coef_p: int, p: str, coef_r: int, r: str, unit: frozenset[str] = frozenset()) -> str:
    """`sh*p + dh*r`, leaving out a rank variable in `unit` (extent 1: it is always 0); '' when both are."""
    terms = [v if c == 1 else f"{c}*{v}" for c, v in ((coef_p, p), (coef_r, r)) if v not in unit]
    return " + ".join(terms)


def _af_workload(layer: Layer, data_bits: int, unit_ranks: bool = True) -> dict[str, Any]:
    """The layer as one Einsum.  `unit_ranks=False` leaves out every rank variable of extent 1 (and a tensor
    dimension indexed by nothing else): the same layer, tensors and accesses, but AccelForge's mapper (TCM)
    then does not enumerate loop orders, storage placements and spatial choices over ranks that cannot
    carry a loop (a GEMM as a 7-rank convolution gave TCM 1,176 pmapping templates instead of 96)."""
    dims = dict(zip(DIMS, layer.problem_dims))
    grouped = layer.groups > 1
    ranks = [d for d in DIMS if (d != "G" or grouped) and (unit_ranks or dims[d] > 1)]
    unit = frozenset(d.lower() for d in DIMS if d.lower() not in {r.lower() for r in ranks})
    space = {d.lower(): f"0 <= {d.lower()} < {dims[d]}" for d in ranks}
    sh, sw = layer.stride
    dh, dw = layer.dilation
    g = {"G": "g"} if grouped else {}

    def proj(entries: dict[str, str]) -> dict[str, str]:
        return {dim: expr for dim, expr in entries.items() if expr and expr not in unit}

    workload: dict[str, Any] = {
        "iteration_space_shape": space,
        "bits_per_value": {"All": data_bits},
        "einsums": [
            {
                "name": _einsum_name(layer),
                "tensor_accesses": [
                    {
                        "name": AF_TENSOR["inputs"],
                        "projection": proj(
                            {
                                "N": "n",
                                **g,
                                "C": "c",
                                "H": _affine(sh, "p", dh, "r", unit),
                                "W": _affine(sw, "q", dw, "s", unit),
                            }
                        ),
                    },
                    {"name": AF_TENSOR["weights"], "projection": proj({**g, "K": "k", "C": "c", "R": "r", "S": "s"})},
                    {
                        "name": AF_TENSOR["outputs"],
                        "projection": proj({"N": "n", **g, "K": "k", "P": "p", "Q": "q"}),
                        "output": True,
                    },
                ],
                "renames": {
                    "input": AF_TENSOR["inputs"],
                    "weight": AF_TENSOR["weights"],
                    "output": AF_TENSOR["outputs"],
                },
            }
        ],
    }
    return {"workload": workload}


def to_accelforge(layer: Layer, arch: Architecture, mapping: Mapping) -> dict[str, Any]:
    """AccelForge input documents keyed by file stem: 'mapping', 'arch', 'workload'.

    `result['mapping']['mapping']['nodes']` is the LoopTree, outermost first, as `Tagged` dicts
    (`.tag` is '!Storage', '!Temporal', '!Spatial' or '!Compute').
    """
    _check(layer, arch, mapping)
    return {
        "mapping": _af_mapping(layer, arch, mapping),
        "arch": _af_arch(arch, mapping),
        "workload": _af_workload(layer, arch.data_bits),
    }


def accelforge_problem(layer: Layer, arch: Architecture) -> dict[str, Any]:
    """The architecture and workload documents without a mapping, for AccelForge's own mapper (TCM): a
    level's `may_bypass` tensors are `may_keep` there, so the mapper decides their bypass too.  The
    workload leaves out rank variables of extent 1 (same layer; TCM's map space without loops that cannot
    exist, as one would write the layer for it by hand)."""
    return {"arch": _af_arch(arch), "workload": _af_workload(layer, arch.data_bits, unit_ranks=False)}


# ----------------------------------------------------------------------------- files
_HEADERS = {
    "timeloop": (
        "Exported by rlmap for Timeloop (v0.4 input format); layer {layer} on architecture {arch}.\n"
        "rlmap K (output channels) = Timeloop M. Permutations are innermost loop first.\n"
        "A two-axis fanout is two spatial levels: <level>_dummy_y keeps nothing and carries the Y factors.\n"
        "Energies: per word access, given in ERT.yaml (run timeloop-model with it instead of Accelergy\n"
        "estimation; table names may need your Accelergy version's flattened component names).\n"
        "Approximations: partitioned buffers -> one buffer of the summed depth; bandwidth -> shared_bandwidth;\n"
        "sparse formats / SAF not exported. See rlmap/interop/export.py for details."
    ),
    "accelforge": (
        "Exported by rlmap for AccelForge (checked with 1.0.467); layer {layer} on architecture {arch}.\n"
        "LoopTree mapping outermost first; tile_shape = tile size left after the loop.\n"
        "Memory size in bits; energies per action, one action = one word of the level.\n"
        "Evaluates to rlmap's numbers under `semantics: accelforge`. Dense only (AccelForge has no sparsity).\n"
        "See rlmap/interop/export.py for details."
    ),
}


def export_notes(fmt: str, layer: Layer, arch: Architecture) -> list[str]:
    """What the files of `fmt` leave out for this layer and architecture (one line each; empty if nothing)."""
    notes = []
    sparse_arch = arch.compute.sparse != "none" or any(
        f != "uncompressed" for lvl in arch.levels for f in lvl.formats.values()
    )
    if not layer.density.is_dense or sparse_arch:
        what = "AccelForge 1.0.467 has no sparsity model" if fmt == "accelforge" else "rlmap does not export them"
        notes.append(
            f"densities, storage formats and compute SAF are not exported ({what}): the files describe the dense layer"
        )
    if any(isinstance(lvl.capacity, dict) for lvl in arch.levels):
        why = (
            "Timeloop has no per-tensor partitions"
            if fmt == "timeloop"
            else "rlmap's bandwidth is one budget per level"
        )
        notes.append(f"partitioned capacities are written as one buffer of the summed size ({why})")
    return notes


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
        atomic_write_text(p, dump_yaml(doc, f"{stem}.yaml -- " + header))
        paths.append(p)
    return paths


def tile_shapes(mapping_nodes: list[Any]) -> list[tuple[str, str, int]]:
    """(tag, rank_variable, tile_shape) of every loop node: a small helper for inspection and tests."""
    return [
        (n.tag, n["rank_variable"], n["tile_shape"])
        for n in mapping_nodes
        if isinstance(n, Tagged) and n.tag in ("!Temporal", "!Spatial")
    ]
