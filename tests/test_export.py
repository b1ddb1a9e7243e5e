"""rlmap.interop.export (and the Timeloop / AccelForge readers in mapping_import): Timeloop round trip,
loop-order direction and two-axis fanouts, AccelForge LoopTree structure, architecture and workload."""

from __future__ import annotations

import math
import random

import pytest
import yaml

from rlmap.interop.export import (
    Tagged,
    accelforge_problem,
    dump_yaml,
    export,
    export_notes,
    load_tagged_yaml,
    tile_shapes,
    to_accelforge,
    to_timeloop,
)
from rlmap.interop.mapping_import import from_accelforge, from_timeloop
from rlmap.model.costmodel import CostModel
from rlmap.spec.arch import Architecture, Compute, Fanout, MemoryLevel
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import DIMS, N_DIMS, C, G, K, N, P, Q, R, S

CANON = tuple(range(N_DIMS))


def make(L: int, temporal=None, sx=None, sy=None, order=None) -> Mapping:
    """Mapping from sparse {level: {dim: factor}} dicts; order: {level: outermost-first dim tuple}."""

    def mat(spec):
        rows = [[1] * N_DIMS for _ in range(L)]
        for lvl, fs in (spec or {}).items():
            for d, f in fs.items():
                rows[lvl][d] = f
        return tuple(tuple(r) for r in rows)

    orders = [CANON] * L
    for lvl, o in (order or {}).items():
        orders[lvl] = tuple(o)
    return Mapping(mat(temporal), mat(sx), mat(sy), tuple(orders))


def g_outermost(order: tuple[int, ...]) -> tuple[int, ...]:
    return (G,) + tuple(d for d in order if d != G)


@pytest.fixture(scope="module")
def eyeriss() -> Architecture:
    return load_architecture("eyeriss")


@pytest.fixture(scope="module")
def simba() -> Architecture:
    return load_architecture("simba")


CONV = Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=1)
DW = Layer(name="dw", kind="depthwise", K=8, C=8, P=6, Q=6, R=3, S=3, groups=8, stride=1, padding=1)
GEMM = Layer(name="fc", kind="gemm", K=64, C=32, P=16)


def conv_on_eyeriss() -> Mapping:
    # DRAM: K=4 C=8 P=8 | GLB: X K=4, Y Q=8 | spad: R=3 S=3
    return make(
        3,
        temporal={0: {K: 4, C: 8, P: 8}, 2: {R: 3, S: 3}},
        sx={1: {K: 4}},
        sy={1: {Q: 8}},
        order={0: g_outermost(CANON), 1: g_outermost(CANON), 2: g_outermost(CANON)},
    )


# ----------------------------------------------------------------------------- Timeloop
def random_orders(L: int, seed: int, grouped: bool) -> dict[int, tuple[int, ...]]:
    rng = random.Random(seed)
    out = {}
    for lvl in range(L):
        o = list(CANON)
        rng.shuffle(o)
        out[lvl] = tuple(o) if grouped else g_outermost(tuple(o))
    return out


def roundtrip_cases(eyeriss, simba):
    yield CONV, eyeriss, conv_on_eyeriss()
    yield (
        CONV,
        eyeriss,
        make(
            3,
            temporal={0: {K: 4, C: 8, P: 8}, 2: {R: 3, S: 3}},
            sx={1: {K: 4}},
            sy={1: {Q: 8}},
            order=random_orders(3, 1, grouped=False),
        ),
    )
    # all on DRAM except the filter in the spads, no spatial at all
    yield (
        CONV,
        eyeriss,
        make(3, temporal={0: {K: 16, C: 8, P: 8, Q: 8}, 2: {R: 3, S: 3}}, order=random_orders(3, 2, grouped=False)),
    )
    # simba: K on X and C on Y at both fanouts (their allowed dims), weights in the register
    yield (
        GEMM,
        simba,
        make(
            4,
            temporal={0: {P: 16}, 1: {K: 2}},
            sx={1: {K: 4}, 2: {K: 8}},
            sy={1: {C: 4}, 2: {C: 8}},
            order=random_orders(4, 3, grouped=False),
        ),
    )
    # grouped layer: G split over DRAM and the GLB fanout (X); orders fully random
    yield (
        DW,
        eyeriss,
        make(
            3,
            temporal={0: {G: 4, P: 6}, 2: {R: 3, S: 3}},
            sx={1: {G: 2}},
            sy={1: {Q: 6}},
            order=random_orders(3, 4, grouped=True),
        ),
    )


def test_timeloop_roundtrip_equal(eyeriss, simba):
    for i, (layer, arch, m) in enumerate(roundtrip_cases(eyeriss, simba)):
        assert CostModel(layer, arch).evaluate(m).valid, i
        docs = to_timeloop(layer, arch, m)
        assert set(docs) == {"problem", "mapping", "arch", "ERT"}
        # through YAML text too, as a user would
        text = dump_yaml(docs["mapping"])
        back = from_timeloop(yaml.safe_load(text), layer, arch)
        assert back == m, i


def test_timeloop_roundtrip_moves_unnamed_g_outermost(eyeriss):
    """groups == 1: G has no Timeloop name; it comes back outermost, which changes nothing."""
    m = make(3, temporal={0: {K: 4, C: 8, P: 8}, 2: {R: 3, S: 3}}, sx={1: {K: 4}}, sy={1: {Q: 8}})  # canonical NGK...
    back = from_timeloop(to_timeloop(CONV, eyeriss, m)["mapping"], CONV, eyeriss)
    assert back.order == tuple(g_outermost(o) for o in m.order)
    assert (back.temporal, back.spatial_x, back.spatial_y) == (m.temporal, m.spatial_x, m.spatial_y)
    cm = CostModel(CONV, eyeriss)
    assert cm.evaluate(back).energy == cm.evaluate(m).energy


def test_timeloop_permutation_is_innermost_first(eyeriss):
    # DRAM loops outermost first: P, K, C (then factor-1 dims); Timeloop must list C first and P last
    order = (G, N, Q, R, S, P, K, C)
    m = make(3, temporal={0: {P: 8, K: 16, C: 8, Q: 8}, 2: {R: 3, S: 3}}, order={0: order})
    tl = to_timeloop(CONV, eyeriss, m)["mapping"]["mapping"]
    dram = next(d for d in tl if d["target"] == "DRAM" and d["type"] == "temporal")
    assert dram["permutation"] == "CMPSRQN"  # reversed, K written as Timeloop's M, G dropped
    assert dram["factors"].split() == ["C=8", "M=16", "R=1", "S=1", "N=1", "P=8", "Q=8"]
    # and reading a hand-written directive: 'CMP' = innermost C, then M, outermost P
    hand = {
        "mapping": [
            {"target": "DRAM", "type": "temporal", "factors": "C=8 M=16 P=8 Q=8", "permutation": "CMP"},
            {"target": "spad", "type": "temporal", "factors": "R=3 S=3", "permutation": "SR"},
        ]
    }
    back = from_timeloop(hand, CONV, eyeriss)
    assert back.order[0][-3:] == (P, K, C)  # rlmap: outermost first
    assert back.order[2][-2:] == (R, S)
    assert back.temporal[0][K] == 16 and back.temporal[1] == (1,) * N_DIMS  # unlisted = 1


def test_timeloop_spatial_split_and_bypass(eyeriss):
    """Eyeriss' 14 x 12 fanout has two axes: GLB's spatial directive carries X (split = all), the dummy level
    GLB_dummy_y (keeps nothing, no temporal loop) carries Y (split 0), as Timeloop's eyeriss_like example does."""
    m = conv_on_eyeriss()
    tl = to_timeloop(CONV, eyeriss, m)
    directives = tl["mapping"]["mapping"]
    sp = {d["target"]: d for d in directives if d["type"] == "spatial"}
    assert set(sp) == {"GLB", "GLB_dummy_y"}
    assert sp["GLB"]["permutation"].startswith("M") and sp["GLB"]["split"] == 7  # K (M) on X
    assert "M=4" in sp["GLB"]["factors"].split() and "Q=1" in sp["GLB"]["factors"].split()
    assert sp["GLB_dummy_y"]["permutation"].startswith("Q") and sp["GLB_dummy_y"]["split"] == 0  # Q on Y
    dummy_t = next(d for d in directives if d["target"] == "GLB_dummy_y" and d["type"] == "temporal")
    assert set(dummy_t["factors"].split()) == {f"{d}=1" for d in "CMRSNPQ"}
    bypass = {d["target"]: d for d in directives if d["type"] == "bypass"}
    assert bypass["GLB"]["bypass"] == ["Weights"] and bypass["GLB"]["keep"] == ["Inputs", "Outputs"]
    assert bypass["GLB_dummy_y"] == {
        "target": "GLB_dummy_y",
        "type": "bypass",
        "keep": [],
        "bypass": ["Inputs", "Weights", "Outputs"],
    }
    prob = tl["problem"]["problem"]
    assert prob["shape"]["dimensions"] == ["C", "M", "R", "S", "N", "P", "Q"]
    assert prob["instance"]["M"] == 16 and prob["instance"]["Wstride"] == 1
    nodes = tl["arch"]["architecture"]["nodes"]
    assert [(n.tag, n["name"]) for n in nodes] == [
        ("!Container", "system"),
        ("!Component", "DRAM"),
        ("!Component", "GLB"),
        ("!Container", "spad_columns"),
        ("!Component", "GLB_dummy_y"),
        ("!Container", "spad_array"),
        ("!Component", "spad"),
        ("!Component", "mac"),
    ]
    assert nodes[3]["spatial"] == {"meshX": 14} and nodes[5]["spatial"] == {"meshY": 12}
    ert = {t["name"]: t for t in tl["ERT"]["ERT"]["tables"]}
    assert ert["system.DRAM"]["actions"][0]["energy"] == 200
    assert ert["system.GLB_dummy_y"]["actions"][0]["energy"] == 0
    assert from_timeloop(tl["mapping"], CONV, eyeriss) == m


def test_timeloop_grouped_problem(eyeriss):
    prob = to_timeloop(DW, eyeriss, make(3, temporal={0: {G: 8, P: 6, Q: 6}, 2: {R: 3, S: 3}}))["problem"]["problem"]
    assert prob["shape"]["dimensions"][0] == "G"
    assert prob["instance"]["G"] == 8 and prob["instance"]["C"] == 1 and prob["instance"]["M"] == 1
    for ds in prob["shape"]["data_spaces"]:
        assert [["G"]] in ds["projection"]  # G indexes all three tensors


def test_timeloop_dim_on_both_axes_round_trips(eyeriss):
    """A dimension unrolled on X and Y of one level (what the mappers often produce) is written exactly: the
    X factor on GLB's spatial directive, the Y factor on GLB_dummy_y's; it reads back to the same mapping."""
    m = make(
        3,
        temporal={0: {K: 4, C: 8, P: 8, Q: 2}, 2: {R: 3, S: 3}},
        sx={1: {Q: 2, K: 4}},
        sy={1: {Q: 2}},
        order={lvl: g_outermost(CANON) for lvl in range(3)},
    )
    directives = to_timeloop(CONV, eyeriss, m)["mapping"]["mapping"]
    sp = {d["target"]: d["factors"].split() for d in directives if d["type"] == "spatial"}
    assert {"M=4", "Q=2"} <= set(sp["GLB"]) and "Q=2" in sp["GLB_dummy_y"] and "M=1" in sp["GLB_dummy_y"]
    back = from_timeloop(yaml.safe_load(dump_yaml({"mapping": directives})), CONV, eyeriss)
    assert back == m
    # a hand-written dummy with a temporal loop or data is not something rlmap can hold
    bad = [dict(d) for d in directives]
    for d in bad:
        if d["target"] == "GLB_dummy_y" and d["type"] == "temporal":
            d["factors"] = d["factors"].replace("P=1", "P=2")
    with pytest.raises(SpecError, match="temporal loops P=2 at the Y-split level"):
        from_timeloop(bad, CONV, eyeriss)


def test_timeloop_one_axis_fanouts():
    """A one-axis fanout is one spatial directive and no dummy level: X (split = every dim) or Y (split 0)."""
    arch = Architecture(
        name="rows_cols",
        levels=[
            MemoryLevel(name="DRAM", read_energy=100.0, write_energy=100.0, fanout=Fanout(x=4)),
            MemoryLevel(name="buf", read_energy=2.0, write_energy=2.0, fanout=Fanout(y=8)),
            MemoryLevel(name="reg", read_energy=1.0, write_energy=1.0),
        ],
        compute=Compute(mac_energy=1.0),
    )
    m = make(
        3,
        temporal={0: {C: 32, P: 16, K: 2}},
        sx={0: {K: 4}},
        sy={1: {K: 8}},
        order={lvl: g_outermost(CANON) for lvl in range(3)},
    )
    tl = to_timeloop(GEMM, arch, m)
    sp = {d["target"]: d for d in tl["mapping"]["mapping"] if d["type"] == "spatial"}
    assert set(sp) == {"DRAM", "buf"}
    assert sp["DRAM"]["split"] == 7 and sp["buf"]["split"] == 0
    assert "M=4" in sp["DRAM"]["factors"].split() and "M=8" in sp["buf"]["factors"].split()
    containers = [n for n in tl["arch"]["architecture"]["nodes"] if n.tag == "!Container"][1:]
    assert [c["spatial"] for c in containers] == [{"meshX": 4}, {"meshY": 8}]
    assert from_timeloop(tl["mapping"], GEMM, arch) == m


def test_from_timeloop_errors(eyeriss):
    with pytest.raises(SpecError, match="not a level"):
        from_timeloop({"mapping": [{"target": "L9", "type": "temporal", "factors": "C=8"}]}, CONV, eyeriss)
    with pytest.raises(SpecError, match="unknown dimension"):
        from_timeloop([{"target": "DRAM", "type": "temporal", "factors": "Z=8"}], CONV, eyeriss)
    with pytest.raises(SpecError, match="disagrees"):
        from_timeloop([{"target": "GLB", "type": "bypass", "keep": ["Weights"]}], CONV, eyeriss)
    with pytest.raises(SpecError, match="multiply"):  # factors must cover the layer
        from_timeloop([{"target": "DRAM", "type": "temporal", "factors": "C=8"}], CONV, eyeriss)


# ----------------------------------------------------------------------------- AccelForge
def test_accelforge_hand_example(eyeriss):
    """Per level: spatial loops, then temporal loops; each tensor's node right below the innermost loop of the
    levels above that indexes it (weights bypass the GLB, so their spad node sits above the p loop)."""
    af = to_accelforge(CONV, eyeriss, conv_on_eyeriss())
    nodes = af["mapping"]["mapping"]["nodes"]
    summary = [
        (n.tag, n.get("component"), n.get("rank_variable"), n.get("tile_shape"), tuple(n.get("tensors", ())))
        for n in nodes
    ]
    assert summary == [
        ("!Storage", "DRAM", None, None, ("I", "W", "O")),
        ("!Temporal", None, "k", 4, ()),  # K=16: 4 iterations at DRAM leave tiles of 4 (the X spatial 4)
        ("!Temporal", None, "c", 1, ()),  # C=8 all at DRAM
        ("!Storage", "spad", None, None, ("W",)),  # weights: innermost loop indexing them is c
        ("!Temporal", None, "p", 1, ()),
        ("!Storage", "GLB", None, None, ("I", "O")),  # inputs, outputs: below p
        ("!Storage", "spad", None, None, ("I", "O")),
        ("!Spatial", "GLB_fanout", "k", 1, ()),
        ("!Spatial", "GLB_fanout", "q", 1, ()),
        ("!Temporal", None, "r", 1, ()),
        ("!Temporal", None, "s", 1, ()),
        ("!Compute", "MAC", None, None, ()),
    ]
    assert [n["name"] for n in nodes if n.tag == "!Spatial"] == ["X", "Y"]
    assert nodes[-1]["einsum"] == "conv"
    # the YAML text carries the tags and reads back, also into the same mapping
    back = load_tagged_yaml(dump_yaml(af["mapping"]))
    assert [n.tag for n in back["mapping"]["nodes"]] == [n.tag for n in nodes]
    assert from_accelforge(back, CONV, eyeriss).nest_key() == conv_on_eyeriss().nest_key()


def test_accelforge_tile_shape_is_product_of_inner_factors(eyeriss, simba):
    for layer, arch, m in roundtrip_cases(eyeriss, simba):
        nodes = to_accelforge(layer, arch, m)["mapping"]["mapping"]["nodes"]
        # rebuild the nest outermost first (factors > 1): per level X, Y, then temporal
        loops = []
        for lvl in range(arch.n_levels):
            loops += [(d, m.spatial_x[lvl][d]) for d in range(N_DIMS) if m.spatial_x[lvl][d] > 1]
            loops += [(d, m.spatial_y[lvl][d]) for d in range(N_DIMS) if m.spatial_y[lvl][d] > 1]
            loops += [(d, m.temporal[lvl][d]) for d in m.order[lvl] if m.temporal[lvl][d] > 1]
        shapes = tile_shapes(nodes)
        assert [rv for _, rv, _ in shapes] == [DIMS[d].lower() for d, _ in loops]
        for i, (d, _f) in enumerate(loops):
            inner = math.prod(f for d2, f in loops[i + 1 :] if d2 == d)
            assert shapes[i][2] == inner
        # every tensor has exactly one Storage node per level that keeps it (none where bypassed)
        stored = [(n["component"], t) for n in nodes if n.tag == "!Storage" for t in n["tensors"]]
        assert len(stored) == len(set(stored)) == sum(len(l.keeps) for l in arch.levels)
        assert from_accelforge(to_accelforge(layer, arch, m)["mapping"], layer, arch).nest_key() == m.nest_key()


def test_accelforge_storage_hoisted_above_irrelevant_parent_loops(eyeriss):
    # DRAM order ... Q, K, P, C (C innermost, irrelevant to outputs); no spatial.  The GLB output tile stays
    # across the C loop in rlmap, so the GLB output node must sit above the c loop, the inputs node below it.
    m = make(3, temporal={0: {K: 16, P: 8, C: 8, Q: 8}, 2: {R: 3, S: 3}}, order={0: (G, N, Q, R, S, K, P, C)})
    nodes = to_accelforge(CONV, eyeriss, m)["mapping"]["mapping"]["nodes"]
    seq = [(n.tag, n.get("rank_variable") or ",".join(n.get("tensors", [])), n.get("component")) for n in nodes]
    pos = {s: i for i, s in enumerate(seq)}
    c_loop = pos[("!Temporal", "c", None)]
    assert pos[("!Storage", "O", "GLB")] < c_loop < pos[("!Storage", "I", "GLB")]
    # per tensor, the memory hierarchy order is kept: each tensor's spad node is below its GLB / DRAM node
    where = {(t, n["component"]): i for i, n in enumerate(nodes) if n.tag == "!Storage" for t in n["tensors"]}
    for t in ("I", "O"):
        assert where[(t, "DRAM")] < where[(t, "GLB")] < where[(t, "spad")]
    assert where[("W", "DRAM")] < where[("W", "spad")]


def test_accelforge_arch_and_workload(simba):
    af = to_accelforge(
        GEMM, simba, make(4, temporal={0: {P: 16}, 1: {K: 2}}, sx={1: {K: 4}, 2: {K: 8}}, sy={1: {C: 4}, 2: {C: 8}})
    )
    arch_nodes = af["arch"]["arch"]["nodes"]
    names = [n["name"] for n in arch_nodes]
    # `global_...` is reserved by AccelForge; a partitioned level is one memory of the summed size
    assert names == [
        "DRAM",
        "mem_global_buffer",
        "mem_global_buffer_fanout",
        "pe_buffer",
        "pe_buffer_fanout",
        "weight_reg",
        "MAC",
    ]
    gb = arch_nodes[1]
    assert gb.tag == "!Memory" and gb["size"] == 65536 * 8 and gb["tensors"] == {"keep": "I | O"}
    assert gb["bits_per_action"] == 8 and gb["leak_power"] == 0 and gb["area"] == 0
    assert gb["actions"][0] == {"name": "read", "energy": 3.45, "throughput": "inf"}
    level = simba.levels[1]
    assert gb["total_latency"] == f"sum(a.n_calls for a in actions) / {level.bandwidth:g} / {simba.clock_ghz * 1e9:g}"
    pe = arch_nodes[3]
    assert pe["size"] == sum(simba.levels[2].capacity.values()) * simba.levels[2].word_bits
    fan = arch_nodes[4]
    assert fan.tag == "!Container" and fan["spatial"][0]["name"] == "X" and fan["spatial"][0]["fanout"] == 8
    assert fan["spatial"][0]["loop_bounds"] == [{"expression": "~(k)", "operator": "==", "value": 1}]
    mac = arch_nodes[-1]
    assert mac["actions"] == [
        {"name": "compute", "energy": simba.compute.mac_energy, "throughput": simba.clock_ghz * 1e9}
    ]
    wl = af["workload"]["workload"]
    assert wl["iteration_space_shape"]["k"] == "0 <= k < 64" and "g" not in wl["iteration_space_shape"]
    acc = {a["name"]: a for a in wl["einsums"][0]["tensor_accesses"]}
    assert acc["I"]["projection"]["H"] == "p + r" and acc["O"]["output"] is True
    assert wl["einsums"][0]["renames"] == {"input": "I", "weight": "W", "output": "O"}
    assert "densities" not in wl


def test_accelforge_strided_grouped_workload(eyeriss):
    layer = Layer(name="dw.s2", kind="depthwise", K=8, C=8, P=4, Q=4, R=3, S=3, groups=8, stride=2, padding=1)
    wl = to_accelforge(layer, eyeriss, make(3, temporal={0: {G: 8, P: 4, Q: 4}, 2: {R: 3, S: 3}}))["workload"][
        "workload"
    ]
    ein = wl["einsums"][0]
    assert ein["name"] == "dw_s2"
    inputs = next(a for a in ein["tensor_accesses"] if a["name"] == "I")["projection"]
    assert inputs == {"N": "n", "G": "g", "C": "c", "H": "2*p + r", "W": "2*q + s"}
    assert wl["iteration_space_shape"]["g"] == "0 <= g < 8" and wl["iteration_space_shape"]["c"] == "0 <= c < 1"


def test_accelforge_problem_leaves_out_extent_one_ranks(eyeriss):
    """TCM's workload: no rank variable of extent 1 (each multiplied its templates), same tensors otherwise."""

    def accesses(layer):
        wl = accelforge_problem(layer, eyeriss)["workload"]["workload"]
        return wl["iteration_space_shape"], {a["name"]: a["projection"] for a in wl["einsums"][0]["tensor_accesses"]}

    space, acc = accesses(GEMM)
    assert space == {"k": "0 <= k < 64", "c": "0 <= c < 32", "p": "0 <= p < 16"}
    assert acc == {"I": {"C": "c", "H": "p"}, "W": {"K": "k", "C": "c"}, "O": {"K": "k", "P": "p"}}
    space, acc = accesses(
        Layer(name="dw.s2", kind="depthwise", K=8, C=8, P=4, Q=4, R=3, S=3, groups=8, stride=2, padding=1)
    )
    assert set(space) == {"g", "p", "q", "r", "s"}  # c and k are 1 per group
    assert acc["I"] == {"G": "g", "H": "2*p + r", "W": "2*q + s"} and acc["W"] == {"G": "g", "R": "r", "S": "s"}
    _, acc = accesses(Layer(name="down", K=8, C=4, P=7, Q=7, stride=2))
    assert acc["I"] == {"C": "c", "H": "2*p", "W": "2*q"}
    # the mapping export keeps every rank (its loops name them all)
    assert (
        "n"
        in to_accelforge(GEMM, eyeriss, make(3, temporal={0: {K: 64, C: 32, P: 16}}))["workload"]["workload"][
            "iteration_space_shape"
        ]
    )


def test_export_notes_say_what_is_left_out(eyeriss):
    sparse = load_architecture("sparse_eyeriss")
    assert any("no sparsity model" in n for n in export_notes("accelforge", CONV, sparse))
    assert any("summed size" in n for n in export_notes("timeloop", CONV, eyeriss))
    plain = Architecture(
        name="plain",
        levels=[MemoryLevel(name="DRAM", read_energy=1.0, write_energy=1.0)],
        compute=Compute(mac_energy=1.0),
    )
    assert export_notes("accelforge", CONV, plain) == [] == export_notes("timeloop", CONV, plain)


def test_export_writes_files(tmp_path, eyeriss):
    paths = export("timeloop", CONV, eyeriss, conv_on_eyeriss(), tmp_path / "tl")
    assert sorted(p.name for p in paths) == ["ERT.yaml", "arch.yaml", "mapping.yaml", "problem.yaml"]
    text = (tmp_path / "tl" / "arch.yaml").read_text()
    assert text.startswith("# arch.yaml") and "!Component" in text
    assert isinstance(load_tagged_yaml(text)["architecture"]["nodes"][1], Tagged)
    back = from_timeloop(yaml.safe_load((tmp_path / "tl" / "mapping.yaml").read_text()), CONV, eyeriss)
    assert back == conv_on_eyeriss()
    paths = export("accelforge", CONV, eyeriss, conv_on_eyeriss(), tmp_path / "af")
    assert sorted(p.name for p in paths) == ["arch.yaml", "mapping.yaml", "workload.yaml"]
    with pytest.raises(SpecError, match="--format"):
        export("maestro", CONV, eyeriss, conv_on_eyeriss(), tmp_path / "x")


def test_export_rejects_invalid_mapping(eyeriss):
    bad = make(3, temporal={0: {K: 4, C: 8, P: 8}, 2: {R: 3, S: 3}})  # K covers 4 of 16
    with pytest.raises(SpecError, match="dimension K"):
        to_timeloop(CONV, eyeriss, bad)
    with pytest.raises(SpecError, match="dimension K"):
        to_accelforge(CONV, eyeriss, bad)
