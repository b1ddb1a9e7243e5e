"""rlmap.interop.mapping_import: AccelForge LoopTrees and Timeloop mappings in, with precise refusals.

No AccelForge needed: the LoopTree is plain tagged YAML.  (tests/test_accelforge.py checks, with AccelForge,
that exported LoopTrees evaluate to rlmap's numbers and read back.)
"""

from __future__ import annotations

import numpy as np
import pytest

from rlmap.interop.export import dump_yaml, to_accelforge, to_timeloop
from rlmap.interop.mapping_import import (
    compute_einsum,
    detect_format,
    from_accelforge,
    mapping_from,
    names_from_workload,
    read_mapping_file,
)
from rlmap.interop.yaml_tags import load_tagged_yaml
from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import MapSpace
from rlmap.spec.arch import Architecture, Compute, Fanout, MemoryLevel
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture
from rlmap.spec.layer import Layer

TINY3 = Architecture(
    name="tiny3",
    data_bits=8,
    semantics="accelforge",
    levels=[
        MemoryLevel(name="DRAM", word_bits=8, read_energy=200, write_energy=200, bandwidth=4),
        MemoryLevel(
            name="GLB",
            capacity=65536,
            word_bits=8,
            read_energy=6,
            write_energy=6,
            bandwidth=16,
            fanout=Fanout(x=4, y=4),
        ),
        MemoryLevel(name="RegFile", capacity=256, word_bits=8, read_energy=1, write_energy=1),
    ],
    compute=Compute(mac_energy=1.0),
)
GEMM8 = Layer(name="gemm", kind="gemm", K=8, C=8, P=8)  # Z[m, n] = A[m, k] B[k, n]: m = P, k = C, n = K
GEMM_WORKLOAD = """
workload:
  iteration_space_shape: {m: 0 <= m < 8, k: 0 <= k < 8, n: 0 <= n < 8}
  bits_per_value: {All: 8}
  einsums:
  - name: gemm
    tensor_accesses:
    - {name: A, projection: [m, k]}
    - {name: B, projection: [k, n]}
    - {name: Z, projection: [m, n], output: true}
    renames: {input: A, weight: B, output: Z}
"""


def tree(*nodes: str) -> dict:
    return load_tagged_yaml("mapping:\n  nodes:\n" + "".join(f"  - {n}\n" for n in nodes))


def gemm_names():
    return names_from_workload(load_tagged_yaml(GEMM_WORKLOAD), GEMM8, "gemm")


def test_workload_names_an_einsums_ranks_and_tensors():
    names = gemm_names()
    assert names.ranks == {"m": 4, "k": 3, "n": 2} and names.tensors == {"A": "inputs", "B": "weights", "Z": "outputs"}
    conv = Layer(name="c", K=4, C=2, P=6, Q=6, R=3, S=3, stride=2)
    wl = load_tagged_yaml("""
workload:
  iteration_space_shape: [0 <= b < 1, 0 <= m < 4, 0 <= ch < 2, 0 <= y < 6, 0 <= x < 6, 0 <= fy < 3, 0 <= fx < 3]
  einsums:
  - name: conv
    tensor_accesses:
    - {name: ifmap, projection: {B: b, C: ch, H: 2*y + fy, W: 2*x + fx}}
    - {name: filter, projection: [m, ch, fy, fx]}
    - {name: ofmap, projection: [b, m, y, x], output: true}
""")
    names = names_from_workload(wl, conv)
    assert names.ranks == {"y": 4, "fy": 6, "x": 5, "fx": 7, "m": 2, "ch": 3, "b": 0}
    assert names.tensors == {"ifmap": "inputs", "filter": "weights", "ofmap": "outputs"}
    with pytest.raises(SpecError, match="rank variable 'n' has size 8 but layer 'g4' has K = 4"):
        names_from_workload(load_tagged_yaml(GEMM_WORKLOAD), Layer(name="g4", kind="gemm", K=4, C=8, P=8))
    with pytest.raises(SpecError, match="Jinja"):
        names_from_workload(load_tagged_yaml(GEMM_WORKLOAD.replace("m: 0 <= m < 8", "m: '0 <= m < {{ M }}'")), GEMM8)


def test_output_stationary_gemm_imports_with_its_numbers():
    """m x n over the 4x4 array, k in the PE; each tensor's RegFile node right below the innermost loop
    indexing it (the form rlmap's exporter writes): expressible, and rlmap's counts are AccelForge's."""
    doc = tree(
        "!Storage {tensors: [A, B, Z], component: DRAM}",
        "!Storage {tensors: [A, B, Z], component: GLB}",
        "!Temporal {rank_variable: m, tile_shape: 4}",
        "!Storage {tensors: [A], component: RegFile}",
        "!Temporal {rank_variable: n, tile_shape: 4}",
        "!Storage {tensors: [B, Z], component: RegFile}",
        "!Spatial {rank_variable: m, tile_shape: 1, name: X, component: GLB_fanout}",
        "!Spatial {rank_variable: n, tile_shape: 1, name: Y, component: GLB_fanout}",
        "!Temporal {rank_variable: k, tile_shape: 1}",
        "!Compute {einsum: gemm, component: MAC}",
    )
    m = from_accelforge(doc, GEMM8, TINY3, names=gemm_names())
    # m (= P) and n (= K) loop at GLB in that order, k (= C) in the RegFile; m on X, n on Y
    assert m.temporal == ((1,) * 8, (1, 1, 2, 1, 2, 1, 1, 1), (1, 1, 1, 8, 1, 1, 1, 1))
    assert m.nest_key()[3][1] == (4, 2)
    assert m.spatial_x[1] == (1, 1, 1, 1, 4, 1, 1, 1) and m.spatial_y[1] == (1, 1, 4, 1, 1, 1, 1, 1)
    cost = CostModel(GEMM8, TINY3).evaluate(m)
    # inputs GLB -> RegFile: 16 RegFiles x N_fetch 2 (the m loop; n does not index A) x tile 8 (k) = 256 fills;
    # one GLB read serves the 4 Y (n) children, not the 4 X (m) ones: 2 x 8 x 4 = 64 reads
    assert cost.writes[2][0] == 256 and cost.reads[1][0] == 64


def test_per_tensor_tiles_at_one_level_read_as_placements():
    """AccelForge's FFM mapper (tried on this GEMM and TINY3 with AccelForge 1.0.467) returns A's RegFile
    node above n, B's below n and m, Z's below m: tiles of their own at one level.  rlmap reads it with
    per-tensor placements (before issue 13 it refused it): n loops at the GLB (only B's node is below it),
    m and k at the RegFile with Z's tile below m; AccelForge scores the re-export to rlmap's numbers."""
    ffm_best = tree(
        "!Storage {tensors: [Z, B, A], component: DRAM}",
        "!Storage {tensors: [A, B, Z], component: GLB}",
        "!Spatial {rank_variable: k, tile_shape: 2, name: X, component: GLB_fanout}",
        "!Storage {tensors: [A], component: RegFile}",
        "!Temporal {rank_variable: n, tile_shape: 1}",
        "!Storage {tensors: [B], component: RegFile}",
        "!Temporal {rank_variable: m, tile_shape: 1}",
        "!Storage {tensors: [Z], component: RegFile}",
        "!Temporal {rank_variable: k, tile_shape: 1}",
        "!Compute {einsum: gemm, component: MAC}",
    )
    m = from_accelforge(ffm_best, GEMM8, TINY3, "best.yaml", gemm_names())
    d = m.to_dict(TINY3)["levels"]
    assert d[1]["temporal"] == {"K": 8} and d[1]["spatial_x"] == {"C": 4}
    assert d[2]["temporal"] == {"C": 2, "P": 8} and d[2]["order"].endswith("PC") and d[2]["place"] == {"outputs": 7}
    cost = CostModel(GEMM8, TINY3).evaluate(m)
    assert cost.tiles[2] == [16.0, 2.0, 1.0]  # A: 8 m x 2 k, B: 2 k, Z: 1 (below m)
    from rlmap.interop.accelforge_bridge import evaluate_in_accelforge, unavailable_reason

    if unavailable_reason() is None:
        _, (af,) = evaluate_in_accelforge([(GEMM8, TINY3, m)])
        assert af.ok and af.energy == pytest.approx(cost.energy, rel=1e-9)
        assert np.allclose(af.reads, cost.reads) and np.allclose(af.writes, cost.writes)


def test_refetch_below_an_irrelevant_loop_is_refused():
    """A's RegFile node under the n loop (which does not index A): AccelForge refetches A per n iteration,
    rlmap keeps it; the message says so and how to get the same reuse."""
    doc = tree(
        "!Storage {tensors: [A, B, Z], component: DRAM}",
        "!Storage {tensors: [A, B, Z], component: GLB}",
        "!Temporal {rank_variable: m, tile_shape: 4}",
        "!Temporal {rank_variable: n, tile_shape: 4}",
        "!Spatial {rank_variable: m, tile_shape: 1, name: X, component: GLB_fanout}",
        "!Spatial {rank_variable: n, tile_shape: 1, name: Y, component: GLB_fanout}",
        "!Storage {tensors: [A, B, Z], component: RegFile}",
        "!Temporal {rank_variable: k, tile_shape: 1}",
        "!Compute {einsum: gemm, component: MAC}",
    )
    with pytest.raises(
        SpecError,
        match=r"the storage of inputs at RegFile sits below loop temporal n \(tile_shape 4\)"
        r", which does not index inputs: AccelForge refetches",
    ):
        from_accelforge(doc, GEMM8, TINY3, names=gemm_names())


@pytest.mark.parametrize(
    "nodes,message",
    [
        (
            ["!Storage {tensors: [I, W, O], component: DRAM}", "!Temporal {rank_variable: z, tile_shape: 1}"],
            "unknown rank variable 'z'",
        ),
        (
            ["!Storage {tensors: [I, W, O], component: DRAM}", "!Temporal {rank_variable: k, tile_shape: 3}"],
            "tile_shape 3 does not divide the 8 left of rank k",
        ),
        (["!Storage {tensors: [I, W, O], component: SRAM}"], "component 'SRAM' is not a level"),
        (["!Storage {tensors: [I, W, O], component: DRAM}", "!Sequential {nodes: []}"], "!Sequential nodes are not"),
        (["!Storage {tensors: [I, W, O, Q], component: DRAM}"], "unknown tensor 'Q'"),
        (
            [
                "!Storage {tensors: [I, W, O], component: DRAM}",
                "!Temporal {rank_variable: k, tile_shape: 1}",
                "!Temporal {rank_variable: c, tile_shape: 1}",
                "!Temporal {rank_variable: p, tile_shape: 1}",
            ],
            "does not store inputs at GLB, which architecture 'tiny3' must keep there",
        ),
        (
            ["!Storage {tensors: [I, W, O], component: DRAM}", "!Spatial {rank_variable: k, tile_shape: 1, name: Z}"],
            "spatial axis 'Z' is not X or Y",
        ),
    ],
)
def test_looptree_errors_are_precise(nodes, message):
    with pytest.raises(SpecError, match=message):
        from_accelforge(tree(*nodes, "!Compute {einsum: gemm, component: MAC}"), GEMM8, TINY3, "m.yaml")


def test_bypass_follows_the_architecture():
    eyeriss = load_architecture("eyeriss")
    layer = Layer(name="fc", kind="gemm", K=16, C=16, P=4)
    docs = to_accelforge(
        layer,
        eyeriss,
        MapSpace(layer, eyeriss).decode(MapSpace(layer, eyeriss).sample(1, np.random.default_rng(0))[0])[0],
    )
    text = dump_yaml(docs["mapping"]).replace(
        "tensors:\n    - I\n    - O\n    component: GLB", "tensors:\n    - I\n    - W\n    - O\n    component: GLB"
    )
    with pytest.raises(SpecError, match="stores weights at GLB, which architecture 'eyeriss' bypasses"):
        from_accelforge(load_tagged_yaml(text), layer, eyeriss)


def test_format_detection_and_files(tmp_path):
    eyeriss = load_architecture("eyeriss")
    layer = Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=1)
    space = MapSpace(layer, eyeriss)
    m = space.decode(space.sample(1, np.random.default_rng(3))[0])[0]
    (tmp_path / "af.yaml").write_text(dump_yaml(to_accelforge(layer, eyeriss, m)["mapping"]))
    (tmp_path / "tl.yaml").write_text(dump_yaml(to_timeloop(layer, eyeriss, m)["mapping"]))
    (tmp_path / "rl.yaml").write_text(dump_yaml(m.to_dict(eyeriss, layer)))
    (tmp_path / "no.yaml").write_text("name: x\n")
    for name, fmt in (("af", "accelforge"), ("tl", "timeloop"), ("rl", "rlmap")):
        got, data = read_mapping_file(tmp_path / f"{name}.yaml")
        assert got == fmt == detect_format(data)
        back = mapping_from(fmt, data, layer, eyeriss, name)
        assert back.nest_key() == m.nest_key() if fmt != "timeloop" else back.temporal == m.temporal
    assert compute_einsum(read_mapping_file(tmp_path / "af.yaml")[1]) == "conv"
    with pytest.raises(SpecError, match="is not a mapping"):
        read_mapping_file(tmp_path / "no.yaml")
    with pytest.raises(SpecError, match="file not found"):
        read_mapping_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("mapping: [\n")
    with pytest.raises(SpecError, match="malformed YAML at line"):
        read_mapping_file(tmp_path / "bad.yaml")
