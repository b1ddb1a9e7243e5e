"""rlmap.model.costmodel: hand-computed access counts, scalar/batch agreement, properties, a known answer.

Notation in the comments: a tensor's (parent p, child c) pair moves data between consecutive levels
that keep it; N_fetch = product of the temporal factors from the outermost loop down to the innermost
loop relevant to the tensor (levels < c); U = words one multicast serves; F = the child's tile.
Inputs I, weights W, outputs O; access matrices are [level][I, W, O].
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rlmap.model.costmodel import RLE_RUN_BITS, CostModel, format_factor
from rlmap.spec.arch import Architecture, Compute, Fanout, MemoryLevel
from rlmap.spec.errors import InvalidMappingError
from rlmap.spec.io import load_architecture
from rlmap.spec.layer import Densities, Layer
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import DIMS, INPUTS, N_DIMS, OUTPUTS, RELEVANT, WEIGHTS, C, K, P, R

ALL = ("inputs", "weights", "outputs")


# ----------------------------------------------------------------------------- helpers
def make_mapping(
    L: int,
    temporal: dict | None = None,
    spatial_x: dict | None = None,
    spatial_y: dict | None = None,
    orders: dict | None = None,
) -> Mapping:
    """Factors keyed (level, dim); orders[level] lists dims outermost first (the rest go outside)."""
    mats = []
    for spec in (temporal, spatial_x, spatial_y):
        m = [[1] * N_DIMS for _ in range(L)]
        for (lvl, d), f in (spec or {}).items():
            m[lvl][d] = f
        mats.append(tuple(map(tuple, m)))
    order = []
    for lvl in range(L):
        inner = list((orders or {}).get(lvl, ()))
        order.append(tuple([d for d in range(N_DIMS) if d not in inner] + inner))
    return Mapping(*mats, tuple(order))


def two_level(capacity=None, dram_bw=None, buf_bw=None) -> Architecture:
    """DRAM (read 100, write 120 pJ/word) -> buffer (read 2, write 3) -> one MAC (1 pJ)."""
    return Architecture(
        name="two",
        levels=[
            MemoryLevel(name="DRAM", read_energy=100.0, write_energy=120.0, bandwidth=dram_bw),
            MemoryLevel(name="Buf", capacity=capacity, read_energy=2.0, write_energy=3.0, bandwidth=buf_bw),
        ],
        compute=Compute(mac_energy=1.0),
    )


def assert_counts(cost, reads, writes):
    assert cost.valid, cost.reason
    assert np.allclose(cost.reads, reads, rtol=0, atol=1e-12), cost.reads
    assert np.allclose(cost.writes, writes, rtol=0, atol=1e-12), cost.writes


# ----------------------------------------------------------------------------- (a) hand-computed cases
CONV1D = Layer(name="conv1d", K=1, C=1, P=4, R=3)  # 6 input rows, 3 weights, 4 outputs, 12 MACs


def test_conv1d_weight_stationary_by_hand():
    """DRAM loops R=3 (outer) then P=2 (inner, irrelevant to W); buffer loop P=2.

    Buffer tile: P=2, R=1 -> I rows (2-1)+(1-1)+1 = 2, W 1, O 2 (5 words, capacity 5 fits).
    DRAM -> Buf:
      W: loops R(rel) P(irrel): innermost relevant R -> N_fetch = 3, F = 1 -> 3 reads / 3 fills.
      I: innermost relevant P (f=2) -> N_fetch = 3*2 = 6, F = 2; halo step = 2 rows >= extent 2, so no
         overlap -> 6*2 = 12 reads / 12 fills (each r re-reads its 4 rows).
      O: innermost relevant P -> N_fetch = 6, N_distinct = 2 (P) -> DRAM reads (6-2)*2 = 8 psums,
         DRAM writes 6*2 = 12; Buf fills 8, Buf drains 6*2 = 12.
    Buf -> MAC: 12 temporal iterations, no operand reuse: I 12 reads, W 12 reads; O distinct = 2*2 = 4
      -> psum reads 12-4 = 8, updates 12.
    Buf reads  I 12, W 12, O 12 + 8 = 20  (44);  Buf writes I 12, W 3, O 8 + 12 = 20  (35).
    DRAM reads I 12, W 3, O 8 (23);  DRAM writes O 12.
    Energy = 23*100 + 12*120 + 44*2 + 35*3 + 12*1 = 2300 + 1440 + 88 + 105 + 12 = 3945.
    Cycles: DRAM (23+12)/1 = 35, Buf (44+35)/4 = 19.75, compute 12 -> 35.
    """
    m = make_mapping(2, {(0, R): 3, (0, P): 2, (1, P): 2}, orders={0: (R, P)})
    cost = CostModel(CONV1D, two_level(capacity=5, dram_bw=1.0, buf_bw=4.0)).evaluate(m)
    assert_counts(cost, [[12, 3, 8], [12, 12, 20]], [[0, 0, 12], [12, 3, 20]])
    assert cost.energy == pytest.approx(3945.0)
    assert cost.level_cycles == pytest.approx([35.0, 19.75])
    assert cost.compute_cycles == 12 and cost.cycles == pytest.approx(35.0)
    assert cost.edp == pytest.approx(3945.0 * 35.0)
    assert cost.tiles == [[6, 3, 4], [2, 1, 2]]  # DRAM holds the whole layer
    assert cost.utilization == 1.0 and cost.macs == 12


def test_conv1d_output_stationary_by_hand():
    """DRAM loops P=2 (outer) then R=3 (inner, irrelevant to O); buffer loop P=2 (same tile as above).

    DRAM -> Buf:
      W: innermost relevant R -> N_fetch = 2*3 = 6 -> 6 reads / 6 fills (weights re-read per P block).
      I: innermost relevant R (f=3) -> N_fetch = 6, F = 2; halo: R moves the window by 1 row of 2, so
         1/3 of the fetches are full and 2/3 fetch half: 6 * 2 * (1 + 2*(1/2))/3 = 8 reads / 8 fills.
         (Per P block: rows {0,1} then +1 +1 = 4.  At the wrap to the second block the new window
         {2,3} equals the one held; the model still charges it in full -- see test_costmodel_sim.)
      O: innermost relevant P, R trailing -> N_fetch = 2 = N_distinct -> 0 psum reads, 2*2 = 4 writes;
         Buf fills 0, drains 4.
    Buf -> MAC as before: I 12, W 12, O psum reads 8, updates 12.
    Buf reads  I 12, W 12, O 4 + 8 = 12 (36);  Buf writes I 8, W 6, O 0 + 12 = 12 (26).
    DRAM reads I 8, W 6, O 0 (14);  DRAM writes O 4.
    Energy = 14*100 + 4*120 + 36*2 + 26*3 + 12 = 1400 + 480 + 72 + 78 + 12 = 2042.
    Cycles: DRAM 18/1 = 18, Buf 62/4 = 15.5, compute 12 -> 18.
    """
    m = make_mapping(2, {(0, P): 2, (0, R): 3, (1, P): 2}, orders={0: (P, R)})
    cost = CostModel(CONV1D, two_level(capacity=5, dram_bw=1.0, buf_bw=4.0)).evaluate(m)
    assert_counts(cost, [[8, 6, 0], [12, 12, 12]], [[0, 0, 4], [8, 6, 12]])
    assert cost.energy == pytest.approx(2042.0)
    assert cost.level_cycles == pytest.approx([18.0, 15.5])
    assert cost.cycles == pytest.approx(18.0)


GEMM = Layer(name="gemm222", kind="gemm", K=2, C=2, P=2)  # O[M=P, N=K] = A[M, C] B[C, K]; 8 MACs


def test_gemm_weight_stationary_by_hand():
    """All of M, N, K' at DRAM in order K (outer), C, P (inner); the buffer holds one word of each.

    W (relevant C, K): innermost relevant C -> N_fetch = 4: each weight read once; 4 fills.
    I (relevant C, P): innermost P -> N_fetch = 8 (halo along P: step 1 >= extent 1, no overlap) -> 8.
    O (relevant K, P): innermost P -> N_fetch = 8, N_distinct = 4 -> DRAM psum reads 4, writes 8;
      Buf fills 4, drains 8.
    Buf -> MAC: I 8, W 8, O reads 8 - 4 = 4, O updates 8.
    Buf reads I 8, W 8, O 8 + 4 = 12 (28);  Buf writes I 8, W 4, O 4 + 8 = 12 (24).
    Energy = (8+4+4)*100 + 8*120 + 28*2 + 24*3 + 8 = 1600 + 960 + 56 + 72 + 8 = 2696.
    """
    m = make_mapping(2, {(0, K): 2, (0, C): 2, (0, P): 2}, orders={0: (K, C, P)})
    cost = CostModel(GEMM, two_level(capacity=3)).evaluate(m)
    assert_counts(cost, [[8, 4, 4], [8, 8, 12]], [[0, 0, 8], [8, 4, 12]])
    assert cost.energy == pytest.approx(2696.0)
    assert cost.cycles == 8


def test_gemm_output_stationary_by_hand():
    """Order P (outer), K, C (inner): the reduction C is innermost, so each output stays in the buffer.

    W: innermost relevant C -> N_fetch = 8 (each weight read twice, once per P).
    I: innermost relevant C -> N_fetch = 8 (each input read twice, once per K).
    O: innermost relevant K, C trailing -> N_fetch = 4 = N_distinct: 0 psum reads, 4 writes; Buf drains 4.
    Buf reads I 8, W 8, O 4 + 4 = 8 (24);  Buf writes I 8, W 8, O 0 + 8 = 8 (24).
    Energy = 16*100 + 4*120 + 24*2 + 24*3 + 8 = 1600 + 480 + 48 + 72 + 8 = 2208.
    """
    m = make_mapping(2, {(0, K): 2, (0, C): 2, (0, P): 2}, orders={0: (P, K, C)})
    cost = CostModel(GEMM, two_level(capacity=3)).evaluate(m)
    assert_counts(cost, [[8, 8, 0], [8, 8, 8]], [[0, 0, 4], [8, 8, 8]])
    assert cost.energy == pytest.approx(2208.0)


def test_gemm_input_stationary_by_hand():
    """Order P, C, K (inner, irrelevant to I): each input read once (4); W N_fetch = 8; O N_fetch = 8
    with 4 distinct -> 4 psum reads, 8 writes.  Buf reads I 8, W 8, O 8 + 4; writes I 4, W 8, O 4 + 8.
    Energy = 16*100 + 8*120 + 28*2 + 24*3 + 8 = 2696."""
    m = make_mapping(2, {(0, K): 2, (0, C): 2, (0, P): 2}, orders={0: (P, C, K)})
    cost = CostModel(GEMM, two_level(capacity=3)).evaluate(m)
    assert_counts(cost, [[4, 8, 4], [8, 8, 12]], [[0, 0, 8], [4, 8, 12]])
    assert cost.energy == pytest.approx(2696.0)


def test_spatial_multicast_and_reduction_by_hand():
    """GEMM 2x2x2, buffer fanout X=2 with C (reduction) unrolled, DRAM order P, K; 2 buffers x 1 MAC.

    Each buffer instance holds one I, one W, one O word; 2 used instances.
    W: U = C2 (both children need different weights) = 2, N_fetch = 4 (P, K) -> DRAM 8 reads, fills 2*4*1 = 8.
    I: K is irrelevant and innermost -> N_fetch = 2 (P); U = 2 -> DRAM 4 reads; fills 2*2*1 = 4.
    O: N_fetch = 4 = N_distinct; the two children hold partial sums of the *same* output, so the
       spatial reduction writes U = 1 word per fetch: DRAM writes 4; drains 2*4*1 = 8.
    Buf -> MAC: 4 temporal iterations per instance: I 8, W 8, O reads 2*(4-4) = 0, O updates 8.
    Utilization 2 of 2 MACs.
    """
    arch = Architecture(
        name="mc",
        levels=[
            MemoryLevel(name="DRAM", read_energy=100.0, write_energy=120.0, fanout=Fanout(x=2)),
            MemoryLevel(name="Buf", capacity=3, read_energy=2.0, write_energy=3.0),
        ],
        compute=Compute(mac_energy=1.0),
    )
    m = make_mapping(2, {(0, P): 2, (0, K): 2}, spatial_x={(0, C): 2}, orders={0: (P, K)})
    cost = CostModel(GEMM, arch).evaluate(m)
    assert_counts(cost, [[4, 8, 0], [8, 8, 8]], [[0, 0, 4], [4, 8, 8]])
    assert cost.utilization == 1.0 and cost.compute_cycles == 4
    # energy: DRAM 12*100 + 4*120, Buf 24*2 + 20*3, MACs 8
    assert cost.energy == pytest.approx(1200 + 480 + 48 + 60 + 8)


# ----------------------------------------------------------------------------- modelling semantics
def _both(layer: Layer, arch: Architecture, m: Mapping):
    """(timeloop, accelforge) costs of one mapping; the architecture differs only in `semantics`."""
    return tuple(
        CostModel(layer, arch.model_copy(update={"semantics": s})).evaluate(m) for s in ("timeloop", "accelforge")
    )


def _same_except(a, b, differ: set[tuple[str, int, int]]) -> None:
    """Every read/write count equal, except the (kind, level, tensor) entries in `differ`, which must differ."""
    for kind in ("reads", "writes"):
        for lvl, (ra, rb) in enumerate(zip(getattr(a, kind), getattr(b, kind))):
            for v in range(3):
                assert (ra[v] != rb[v]) == ((kind, lvl, v) in differ), (kind, lvl, v, ra[v], rb[v])


def test_semantics_rule1_halo_reuse():
    """Issue 12, rule 1.  Conv1D P=4, R=3 (6 input rows); DRAM loops P=4 over 3-row tiles (buffer loop R=3).
    timeloop: the window slides 1 row per P step: 3 + 3*1 = 6 DRAM input reads (every row once);
    accelforge: every fetch moves the whole 3-row tile: 4 * 3 = 12.  The buffer fills equal the reads."""
    tl, af = _both(CONV1D, two_level(), make_mapping(2, {(0, P): 4, (1, R): 3}))
    assert (tl.reads[0][INPUTS], tl.writes[1][INPUTS]) == (6, 6)
    assert (af.reads[0][INPUTS], af.writes[1][INPUTS]) == (12, 12)
    _same_except(tl, af, {("reads", 0, INPUTS), ("writes", 1, INPUTS)})
    assert af.energy - tl.energy == pytest.approx(6 * 100 + 6 * 3)


def test_semantics_rule2_window_multicast():
    """Issue 12, rule 2.  Conv1D P=2, R=2 with P and R both on X of a 4-wide fanout: each child needs one
    input row, rows p + r = 0, 1, 1, 2.  timeloop: the union {0, 1, 2} is read once: 3;
    accelforge: one read per child window: 4.  The fills (one row per child) are 4 under both."""
    layer = Layer(name="c1", K=1, C=1, P=2, R=2)
    arch = Architecture(
        name="x4",
        levels=[
            MemoryLevel(name="DRAM", read_energy=100.0, write_energy=120.0, fanout=Fanout(x=4)),
            MemoryLevel(name="Buf", read_energy=2.0, write_energy=3.0),
        ],
        compute=Compute(mac_energy=1.0),
    )
    tl, af = _both(layer, arch, make_mapping(2, spatial_x={(0, P): 2, (0, R): 2}))
    assert (tl.reads[0][INPUTS], af.reads[0][INPUTS]) == (3, 4)
    assert tl.writes[1][INPUTS] == af.writes[1][INPUTS] == 4
    _same_except(tl, af, {("reads", 0, INPUTS)})


def test_semantics_rule3_partial_sum_refill():
    """Issue 12, rule 3.  K=1, C=4, P=5: DRAM loops C=2 (outer) then P=5, and unrolls C=2 on X (spatial
    reduction: both buffers accumulate the same output).  Outputs DRAM -> Buf: N_fetch = 10, N_distinct = 5,
    so 5 partial sums come back from DRAM.  timeloop: they are written once (one child takes the old sum,
    the other starts from zero): Buf output writes 5 + 20 MAC updates = 25; accelforge: both children are
    refilled, 2 * 5 + 20 = 30.  DRAM reads the 5 partial sums and takes 10 reduced updates under both."""
    layer = Layer(name="red", K=1, C=4, P=5)
    arch = Architecture(
        name="x2",
        levels=[
            MemoryLevel(name="DRAM", read_energy=100.0, write_energy=120.0, fanout=Fanout(x=2)),
            MemoryLevel(name="Buf", read_energy=2.0, write_energy=3.0),
        ],
        compute=Compute(mac_energy=1.0),
    )
    m = make_mapping(2, {(0, C): 2, (0, P): 5}, spatial_x={(0, C): 2}, orders={0: (C, P)})
    tl, af = _both(layer, arch, m)
    assert (tl.reads[0][OUTPUTS], tl.writes[0][OUTPUTS]) == (af.reads[0][OUTPUTS], af.writes[0][OUTPUTS]) == (5, 10)
    assert (tl.writes[1][OUTPUTS], af.writes[1][OUTPUTS]) == (25, 30)
    assert tl.reads[1][OUTPUTS] == af.reads[1][OUTPUTS] == 20 + 2 * (10 - 5)  # drains + MAC-side psum reads
    _same_except(tl, af, {("writes", 1, OUTPUTS)})


def test_semantics_default_and_yaml():
    """`semantics` defaults to timeloop (today's behaviour), round-trips through YAML and rejects typos."""
    from rlmap.spec.errors import SpecError
    from rlmap.spec.io import dump_model, parse_model

    arch = load_architecture("eyeriss")
    assert arch.semantics == "timeloop" and "semantics" not in dump_model(arch)
    data = dump_model(arch) | {"semantics": "accelforge"}
    assert parse_model(Architecture, data, "a.yaml").semantics == "accelforge"
    with pytest.raises(SpecError, match="semantics"):
        parse_model(Architecture, dump_model(arch) | {"semantics": "maestro"}, "a.yaml")


# ----------------------------------------------------------------------------- sampler
def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def sample_mapping(
    rng: random.Random, layer: Layer, arch: Architecture, outer_bias: float = 3.0, respect_fanout: bool = True
) -> Mapping:
    """Each prime factor of each dim goes to one slot: temporal of level l (weight outer_bias**(L-1-l), so
    tiles stay small), or the X / Y fanout of level l where that dim may be unrolled (a factor that would
    overflow the fanout goes to that level's temporal loop instead, unless respect_fanout is False).
    Loop orders are random permutations."""
    L = arch.n_levels
    mats = {k: [[1] * N_DIMS for _ in range(L)] for k in "txy"}
    for d, size in enumerate(layer.problem_dims):
        slots, weights = [], []
        for lvl, level in enumerate(arch.levels):
            slots.append(("t", lvl))
            weights.append(outer_bias ** (L - 1 - lvl))
            for axis, fan, allowed in (
                ("x", level.fanout.x, level.fanout.x_dims),
                ("y", level.fanout.y, level.fanout.y_dims),
            ):
                if fan > 1 and (not allowed or DIMS[d] in allowed):
                    slots.append((axis, lvl))
                    weights.append(1.5)
        for f in prime_factors(size):
            kind, lvl = rng.choices(slots, weights)[0]
            if kind != "t" and respect_fanout:
                fan = arch.levels[lvl].fanout.x if kind == "x" else arch.levels[lvl].fanout.y
                if math.prod(mats[kind][lvl]) * f > fan:
                    kind = "t"
            mats[kind][lvl][d] *= f
    orders = tuple(tuple(rng.sample(range(N_DIMS), N_DIMS)) for _ in range(L))
    return Mapping(*(tuple(map(tuple, mats[k])) for k in "txy"), orders)


def sample_valid(rng: random.Random, model: CostModel, tries: int = 300, **kw) -> Mapping | None:
    for _ in range(tries):
        m = sample_mapping(rng, model.layer, model.arch, **kw)
        if model.evaluate(m).valid:
            return m
    return None


# ----------------------------------------------------------------------------- (b) scalar vs batch
def _sparse_variant(arch: Architecture, sparse: str = "skip") -> Architecture:
    """`arch` with a compressed format on every inputs/weights level (bitmask, rle, coordinate in turn)."""
    data = arch.model_dump()
    fmts = ["bitmask", "rle", "coordinate"]
    for i, level in enumerate(data["levels"]):
        level["formats"] = {t: fmts[(i + j) % 3] for j, t in enumerate(("inputs", "weights")) if t in level["keeps"]}
    data["compute"] = {**data["compute"], "sparse": sparse, "on": ["inputs", "weights"]}
    data["name"] = arch.name + "_sparse"
    return Architecture.model_validate(data)


def _odd_words() -> Architecture:
    """Word sizes != data size (word_scale), partitioned capacity, bandwidth on every level, Y-only dims."""
    return Architecture(
        name="odd",
        data_bits=8,
        levels=[
            MemoryLevel(name="DRAM", word_bits=64, read_energy=80.0, write_energy=90.0, bandwidth=2.0),
            MemoryLevel(
                name="GLB",
                word_bits=32,
                capacity=4096,
                keeps=("inputs", "outputs"),
                read_energy=5.0,
                write_energy=6.0,
                bandwidth=8.0,
                fanout=Fanout(x=4, y=4, y_dims=("C", "R", "S")),
            ),
            MemoryLevel(
                name="RF",
                word_bits=8,
                capacity={"inputs": 32, "weights": 64, "outputs": 16},
                read_energy=0.5,
                write_energy=0.6,
                bandwidth=3.0,
                fanout=Fanout(x=2),
            ),
        ],
        compute=Compute(mac_energy=0.3, sparse="gate", on=("weights",)),
    )


SPARSE = Densities(inputs=0.6, weights=0.35)
# 9 cases x >= 230 valid mappings each (asserted) = >= 2070 valid mappings, plus the invalid ones drawn.
AGREEMENT_CASES = [
    ("eyeriss", Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=1)),
    ("eyeriss", Layer(name="dw", kind="depthwise", K=16, C=16, groups=16, P=7, Q=7, R=3, S=3, stride=2)),
    ("sparse_eyeriss", Layer(name="sp", K=16, C=16, P=7, Q=7, R=3, S=3, density=SPARSE)),
    ("simba", Layer(name="gemm", kind="gemm", K=64, C=32, P=16)),
    ("tpu_like", Layer(name="pw", kind="pointwise", K=32, C=64, P=14, Q=14)),
    ("edge", Layer(name="mm", kind="matmul", K=32, C=16, P=16, groups=4)),
    ("cloud", Layer(name="dil", K=8, C=8, P=6, Q=6, R=3, S=3, dilation=2, stride=(1, 2))),
    ("odd", Layer(name="odd", N=2, K=12, C=6, P=6, Q=4, R=3, S=1, density=SPARSE)),
    ("eyeriss+coord", Layer(name="spc", K=8, C=12, P=6, Q=6, R=3, S=3, density=Densities(inputs=0.5, weights=0.2))),
]


def _arch(name: str) -> Architecture:
    if name == "odd":
        return _odd_words()
    if name == "eyeriss+coord":
        return _sparse_variant(load_architecture("eyeriss"), "gate")
    return load_architecture(name)


@pytest.mark.parametrize("semantics", ["timeloop", "accelforge"])
@pytest.mark.parametrize("arch_name,layer", AGREEMENT_CASES, ids=[f"{a}-{l.name}" for a, l in AGREEMENT_CASES])
def test_batch_agrees_with_scalar(arch_name, layer, semantics):
    arch = _arch(arch_name).model_copy(update={"semantics": semantics})
    model = CostModel(layer, arch)
    rng = random.Random(f"{arch_name}/{layer.name}")  # str seeds are deterministic (not hash()-based)
    valid, pool = [], []
    for _ in range(3000):
        m = sample_mapping(rng, layer, arch, outer_bias=rng.choice([2.0, 4.0, 8.0]), respect_fanout=rng.random() < 0.95)
        pool.append(m)
        if model.evaluate(m).valid:
            valid.append(m)
        if len(valid) >= 260:
            break
    assert len(valid) >= 230, f"sampler found only {len(valid)} valid mappings"
    for mappings in (valid, pool):
        # the plain-Python reference against the compiled kernel, one at a time and batched
        reference = [model.evaluate_reference(m) for m in mappings]
        stacked = MappingBatch.stack(mappings)
        for scalar, batch in (
            (reference, model.evaluate_batch(stacked)),
            ([model.evaluate(m) for m in mappings], model.evaluate_batch(stacked)),
        ):
            assert np.array_equal(batch.valid, [c.valid for c in scalar])
            e = np.array([c.energy for c in scalar])
            cyc = np.array([c.cycles for c in scalar])
            assert np.allclose(batch.energy, e, rtol=1e-12, atol=0.0)
            assert np.allclose(batch.cycles, cyc, rtol=1e-12, atol=0.0)
            assert np.allclose(batch.utilization, [c.utilization for c in scalar], rtol=1e-12, atol=0.0)
            assert np.all(np.isinf(batch.energy[~batch.valid]))
            assert np.all((batch.reason == 0) == batch.valid)
        for r, k in zip(reference, (model.evaluate(m) for m in mappings)):  # breakdowns agree too
            if r.valid:
                assert np.allclose(k.reads, r.reads, rtol=1e-12) and np.allclose(k.writes, r.writes, rtol=1e-12)
                assert np.allclose(k.tiles, r.tiles, rtol=1e-12)
                assert np.allclose(k.level_cycles, r.level_cycles, rtol=1e-12)
    # the order-relaxed lower bound never exceeds the cost of the mapping's own orders
    stacked = MappingBatch.stack(valid)
    lb = model.evaluate_batch(stacked, relax_orders=True)
    exact = model.evaluate_batch(stacked)
    assert np.all(lb.energy <= exact.energy * (1 + 1e-12)) and np.all(lb.cycles <= exact.cycles * (1 + 1e-12))


def test_batch_reason_codes():
    layer = CONV1D
    arch = two_level(capacity=5)
    model = CostModel(layer, arch)
    good = make_mapping(2, {(0, R): 3, (0, P): 2, (1, P): 2})
    bad_factor = make_mapping(2, {(0, R): 3, (0, P): 2})
    overflow = make_mapping(2, {(1, R): 3, (1, P): 4})
    bad_order = Mapping(good.temporal, good.spatial_x, good.spatial_y, ((0,) * N_DIMS, good.order[1]))
    wide = make_mapping(2, {(0, R): 3, (1, P): 2}, spatial_x={(0, P): 2})  # DRAM has no fanout
    b = model.evaluate_batch(MappingBatch.stack([good, bad_factor, wide, overflow, bad_order]))
    assert b.reason.tolist() == [0, 1, 2, 3, 4]
    for m in (bad_factor, wide, overflow, bad_order):
        assert not model.evaluate(m).valid


def test_nonpositive_factors_are_invalid():
    layer = Layer(name="k4", K=4, C=1)
    arch = two_level()
    m = make_mapping(2, {(0, K): -2, (1, K): -2})
    model = CostModel(layer, arch)
    assert not model.evaluate(m).valid  # got valid=True, energy 13.0, DRAM weight reads -2
    assert not model.evaluate_batch(m.to_arrays()).valid[0]  # got valid, energy -2.0


# ----------------------------------------------------------------------------- (c) properties
def _tiny_archs() -> dict[str, Architecture]:
    return {
        "2lvl": Architecture(
            name="a2",
            levels=[
                MemoryLevel(name="DRAM", read_energy=50.0, write_energy=60.0, bandwidth=4.0),
                MemoryLevel(name="Buf", capacity=96, read_energy=2.0, write_energy=2.5, fanout=Fanout(x=4, y=2)),
            ],
            compute=Compute(mac_energy=1.0),
        ),
        "3lvl": Architecture(
            name="a3",
            levels=[
                MemoryLevel(name="DRAM", read_energy=200.0, write_energy=200.0, bandwidth=2.0),
                MemoryLevel(name="GLB", capacity=512, read_energy=6.0, write_energy=6.0, fanout=Fanout(x=4, y=2)),
                MemoryLevel(
                    name="RF",
                    capacity={"inputs": 16, "weights": 16, "outputs": 8},
                    read_energy=1.0,
                    write_energy=1.0,
                    bandwidth=4.0,
                    fanout=Fanout(x=2),
                ),
            ],
            compute=Compute(mac_energy=1.0),
        ),
        "3lvl-wbypass": Architecture(
            name="a3w",
            levels=[
                MemoryLevel(name="DRAM", read_energy=200.0, write_energy=200.0),
                MemoryLevel(
                    name="GLB",
                    capacity=512,
                    keeps=("inputs", "outputs"),
                    read_energy=6.0,
                    write_energy=6.0,
                    fanout=Fanout(x=3, y=2),
                ),
                MemoryLevel(name="RF", capacity=24, read_energy=1.0, write_energy=1.0),
            ],
            compute=Compute(mac_energy=1.0),
        ),
    }


TINY = _tiny_archs()


@st.composite
def layers(draw, strided: bool = True) -> Layer:
    g = draw(st.sampled_from([1, 1, 1, 2, 3]))
    kw = dict(
        N=draw(st.integers(1, 2)),
        K=g * draw(st.integers(1, 6)),
        C=g * draw(st.integers(1, 6)),
        P=draw(st.integers(1, 8)),
        Q=draw(st.integers(1, 4)),
        R=draw(st.integers(1, 3)),
        S=draw(st.integers(1, 3)),
        groups=g,
    )
    if strided:
        kw["stride"] = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        kw["dilation"] = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    layer = Layer(name="h", **kw)
    assume(layer.macs <= 4000)
    return layer


PROPS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)


def _valid_mapping(layer: Layer, arch: Architecture, seed: int) -> tuple[CostModel, Mapping]:
    model = CostModel(layer, arch)
    m = sample_valid(random.Random(seed), model, tries=100, outer_bias=4.0)
    assume(m is not None)
    return model, m


@PROPS
@given(layer=layers(), arch=st.sampled_from(sorted(TINY) + ["eyeriss"]), seed=st.integers(0, 2**32 - 1))
def test_traffic_bounds(layer, arch, seed):
    """Compulsory and no-reuse bounds.  No architecture here bypasses inputs between DRAM and a child
    (that is where model gap A of test_costmodel_sim breaks the compulsory bound)."""
    arch = TINY.get(arch) or load_architecture(arch)
    model, m = _valid_mapping(layer, arch, seed)
    cost = model.evaluate(m)
    sizes = layer.tensor_sizes
    sh, sw = layer.stride
    dh, dw = layer.dilation
    # compulsory inputs: the rows/columns some window touches (stride > dilation * R skips some)
    rows = {p * sh + r * dh for p in range(layer.P) for r in range(layer.R)}
    cols = {q * sw + s * dw for q in range(layer.Q) for s in range(layer.S)}
    touched = layer.N * layer.C * len(rows) * len(cols)
    box = max(sh, dh) * max(sw, dw)  # a tile's input box <= MACs * this (== MACs at unit stride/dilation)
    assert cost.reads[0][INPUTS] >= touched - 1e-9  # compulsory
    assert cost.reads[0][WEIGHTS] >= sizes["weights"] - 1e-9
    assert cost.reads[0][INPUTS] <= layer.macs * box + 1e-9  # never worse than no reuse at all
    assert cost.reads[0][WEIGHTS] <= layer.macs + 1e-9
    assert cost.writes[0][OUTPUTS] >= sizes["outputs"] - 1e-9
    assert cost.macs == layer.macs
    assert cost.cycles >= layer.macs / arch.num_pes - 1e-9
    assert cost.compute_cycles * cost.utilization * arch.num_pes == pytest.approx(layer.macs)
    assert all(x >= 0 for row in cost.reads + cost.writes for x in row)


@PROPS
@given(
    layer=layers(), arch=st.sampled_from(sorted(TINY)), seed=st.integers(0, 2**32 - 1), seed2=st.integers(0, 2**32 - 1)
)
def test_mac_count_independent_of_mapping(layer, arch, seed, seed2):
    arch = TINY[arch]
    model, m1 = _valid_mapping(layer, arch, seed)
    _, m2 = _valid_mapping(layer, arch, seed2)
    a, b = model.evaluate(m1), model.evaluate(m2)
    assert a.macs == b.macs == layer.macs
    assert a.mac_energy == b.mac_energy == layer.macs * arch.compute.mac_energy
    assert a.effective_macs == b.effective_macs == layer.macs


@PROPS
@given(
    layer=layers(),
    arch=st.sampled_from(sorted(TINY)),
    seed=st.integers(0, 2**32 - 1),
    tensor=st.sampled_from([INPUTS, WEIGHTS, OUTPUTS]),
    data=st.data(),
)
def test_irrelevant_loop_innermost_never_increases_traffic(layer, arch, seed, tensor, data):
    arch = TINY[arch]
    model, m = _valid_mapping(layer, arch, seed)
    lvl = data.draw(st.integers(0, arch.n_levels - 1))
    irrelevant = [d for d in range(N_DIMS) if d not in RELEVANT[tensor]]
    looping = [d for d in irrelevant if m.temporal[lvl][d] > 1]  # prefer a loop that actually runs
    d = data.draw(st.sampled_from(looping or irrelevant))
    order = list(m.order)
    order[lvl] = tuple([x for x in order[lvl] if x != d] + [d])
    moved = Mapping(m.temporal, m.spatial_x, m.spatial_y, tuple(order))
    before, after = model.evaluate(m), model.evaluate(moved)
    assert after.valid
    for level in range(arch.n_levels):
        assert after.reads[level][tensor] <= before.reads[level][tensor] * (1 + 1e-12) + 1e-9
        assert after.writes[level][tensor] <= before.writes[level][tensor] * (1 + 1e-12) + 1e-9


@PROPS
@given(
    layer=layers(),
    arch=st.sampled_from(sorted(TINY) + ["eyeriss"]),
    sparse=st.sampled_from(["gate", "skip"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sparse_features_at_density_one_are_dense(layer, arch, sparse, seed):
    dense_arch = TINY.get(arch) or load_architecture(arch)
    sparse_arch = _sparse_variant(dense_arch, sparse)
    model, m = _valid_mapping(layer, dense_arch, seed)
    dense = model.evaluate(m)
    same = CostModel(layer, sparse_arch).evaluate(m)
    assert same.valid
    for field in (
        "energy",
        "cycles",
        "compute_cycles",
        "reads",
        "writes",
        "level_energy",
        "level_cycles",
        "mac_energy",
        "tiles",
        "effective_macs",
        "utilization",
    ):
        assert getattr(same, field) == getattr(dense, field), field
    b1 = model.evaluate_batch(m.to_arrays())
    b2 = CostModel(layer, sparse_arch).evaluate_batch(m.to_arrays())
    assert b1.energy[0] == b2.energy[0] and b1.cycles[0] == b2.cycles[0]


@PROPS
@given(
    layer=layers(strided=False),
    arch=st.sampled_from(sorted(TINY)),
    seed=st.integers(0, 2**32 - 1),
    din=st.sampled_from([0.1, 0.3, 0.5]),
    dw=st.sampled_from([0.2, 0.4, 0.5]),
)
def test_skip_with_density_below_one_saves_energy_and_cycles(layer, arch, seed, din, dw):
    dense_arch = TINY[arch]
    model, m = _valid_mapping(layer, dense_arch, seed)
    dense = model.evaluate(m)
    sparse_layer = layer.model_copy(update={"density": Densities(inputs=din, weights=dw)})
    sp = CostModel(sparse_layer, _sparse_variant(dense_arch, "skip")).evaluate(m)
    assert sp.valid  # every format factor is < 1 at density <= 0.5 on tiles this small
    assert sp.energy < dense.energy
    assert sp.compute_cycles == pytest.approx(dense.compute_cycles * din * dw)
    assert sp.cycles <= dense.cycles
    assert sp.effective_macs == pytest.approx(layer.macs * din * dw)
    gate = CostModel(sparse_layer, _sparse_variant(dense_arch, "gate")).evaluate(m)
    assert gate.compute_cycles == dense.compute_cycles  # gating keeps the cycle
    assert gate.energy == pytest.approx(sp.energy)  # ... and saves the same energy


def test_format_factors():
    assert format_factor("uncompressed", 0.3, 100, 16) == 1.0
    assert format_factor("bitmask", 0.3, 100, 16) == pytest.approx(0.3 + 1 / 16)
    assert format_factor("rle", 0.3, 100, 16) == pytest.approx(0.3 * (1 + RLE_RUN_BITS / 16))
    assert format_factor("coordinate", 0.3, 100, 16) == pytest.approx(0.3 * (1 + 7 / 16))  # ceil(log2 100) = 7
    assert format_factor("coordinate", 0.3, 1, 16) == pytest.approx(0.3 * (1 + 1 / 16))  # at least 1 bit
    for fmt in ("bitmask", "rle", "coordinate"):
        assert format_factor(fmt, 1.0, 12345, 8) == 1.0


# ----------------------------------------------------------------------------- (d) known answer
def eyeriss_like_3level() -> Architecture:
    """DRAM -> GLB (4 PEs) -> 3-word RF per PE -> MAC, Eyeriss ISCA 2016 normalized costs (200 / 6 / 1 / 1)."""
    return Architecture(
        name="ws_os",
        levels=[
            MemoryLevel(name="DRAM", read_energy=200.0, write_energy=200.0),
            MemoryLevel(name="GLB", capacity=2048, read_energy=6.0, write_energy=6.0, fanout=Fanout(x=4)),
            MemoryLevel(name="RF", capacity=3, read_energy=1.0, write_energy=1.0),
        ],
        compute=Compute(mac_energy=1.0),
    )


def test_weight_stationary_vs_output_stationary_known_answer():
    """1-D conv K=4, C=4, P=8, R=3 (384 MACs; 40 inputs, 48 weights, 32 outputs) on DRAM -> GLB -> 4 PEs
    (K unrolled) with a 3-word RF each, priced with the normalized access costs of Chen, Emer, Sze,
    "Eyeriss: A Spatial Architecture for Energy-Efficient Dataflow for Convolutional Neural Networks",
    ISCA 2016 (DRAM 200, global buffer 6, RF 1, MAC 1).  In that paper's dataflow taxonomy a
    *weight-stationary* (WS) dataflow keeps each weight in a PE's RF and moves inputs and partial sums past
    it; *output-stationary* (OS) keeps each partial sum in the RF until it is complete and moves inputs and
    weights.  In Timeloop terms the dataflow is the loop order above the PE: WS puts the loop irrelevant to
    weights (P) innermost at the GLB, OS the loops irrelevant to outputs (C, R).

    Both keep the whole layer in the GLB, so DRAM traffic is compulsory and equal (88 reads + 32 writes =
    24000), and so is the MAC-facing RF traffic (I 384, W 384, psums 352 reads + 384 updates).
    They differ between GLB and RF:
      WS (GLB order C, R, P): each weight is sent once (48 GLB reads, 48 RF fills), but P innermost evicts
        the psum after every MAC: N_fetch(O) = 96 with 8 distinct -> 352 psum reads + 384 psum writes at
        the GLB, 352 fills + 384 drains at the RF.
      OS (GLB order P, C, R): each psum leaves the RF once (32 GLB writes, 32 drains, no refetch), but the
        weights are re-sent for every P: N_fetch(W) = 96 -> 96 x 4 PEs = 384 GLB reads and 384 RF fills.
    A psum round trip costs GLB read + GLB write + RF fill + RF drain = 6 + 6 + 1 + 1 = 14, a weight
    refetch GLB read + RF fill = 7.  WS saves 336 weight refetches (-2352) and pays 352 psum round trips
    (+4928): +2576.  OS therefore wins by 8.45 % in total (33056 vs 30480) and by 39.75 % on chip
    (9056 vs 6480): with psum spills costing twice a weight refetch, keeping the psums local matters more
    than keeping the weights local, the trade-off the taxonomy describes.
    """
    layer = Layer(name="conv", K=4, C=4, P=8, R=3)
    arch = eyeriss_like_3level()
    model = CostModel(layer, arch)
    fac = {(1, C): 4, (1, R): 3, (1, P): 8}
    ws = model.evaluate(make_mapping(3, fac, spatial_x={(1, K): 4}, orders={1: (C, R, P)}))
    os_ = model.evaluate(make_mapping(3, fac, spatial_x={(1, K): 4}, orders={1: (P, C, R)}))
    # WS:   DRAM            GLB                   RF
    assert_counts(
        ws, [[40, 48, 0], [96, 48, 352 + 32], [384, 384, 384 + 352]], [[0, 0, 32], [40, 48, 384], [384, 48, 352 + 384]]
    )
    assert_counts(
        os_, [[40, 48, 0], [96, 384, 0 + 32], [384, 384, 32 + 352]], [[0, 0, 32], [40, 48, 32], [384, 384, 0 + 384]]
    )
    assert ws.level_energy == pytest.approx([24000.0, 6000.0, 2672.0])
    assert os_.level_energy == pytest.approx([24000.0, 3792.0, 2304.0])
    assert ws.energy == pytest.approx(33056.0) and os_.energy == pytest.approx(30480.0)
    assert ws.energy - os_.energy == pytest.approx(2576.0)
    assert ws.energy / os_.energy == pytest.approx(1.0845, abs=1e-4)
    assert (ws.energy - 24000) / (os_.energy - 24000) == pytest.approx(1.3975, abs=1e-4)
    assert ws.cycles == os_.cycles == 96 and ws.utilization == os_.utilization == 1.0


# ----------------------------------------------------------------------------- (e) invalid mappings
def test_tile_overflow_partitioned_capacity_reason():
    """Eyeriss spads hold 12 input words; a 1x1 conv with C=16 kept in the spad needs 16."""
    arch = load_architecture("eyeriss")
    layer = Layer(name="pw", kind="pointwise", K=1, C=16)
    m = make_mapping(3, {(2, C): 16})
    model = CostModel(layer, arch)
    cost = model.evaluate(m)
    assert not cost.valid
    assert cost.reason == "level spad: inputs tile needs 16 words but its buffer holds 12"
    assert math.isinf(cost.energy) and math.isinf(cost.cycles)
    with pytest.raises(InvalidMappingError, match="spad: inputs tile needs 16 words"):
        model.check(m)
    assert model.evaluate_batch(m.to_arrays()).reason[0] == 3
    assert model.evaluate(make_mapping(3, {(2, C): 8, (0, C): 2})).valid  # 8 fits


def test_tile_overflow_shared_capacity_reason():
    """Buffer of 4 words; tile P=2, R=3 needs 4 input rows + 3 weights + 2 outputs = 9."""
    m = make_mapping(2, {(0, P): 2, (1, P): 2, (1, R): 3})
    cost = CostModel(CONV1D, two_level(capacity=4)).evaluate(m)
    assert not cost.valid
    assert cost.reason == "level Buf: tiles need 9 words (inputs 4, weights 3, outputs 2) but capacity is 4"
