"""The optimal mapper against brute force: every tiling x every loop permutation, on generated cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import MapSpace
from rlmap.search.optimal import OptimalMapper, lower_bound, order_classes, order_signature
from rlmap.spec.arch import Architecture
from rlmap.spec.factors import ordered_factorizations
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import MappingBatch
from rlmap.spec.problem import N_DIMS, C, K, P, R

ARCHS = {
    # shared buffer, bandwidth-limited DRAM: EDP and latency depend on traffic
    "shared": {
        "name": "shared",
        "levels": [
            {"name": "DRAM", "read_energy": 200, "write_energy": 200, "bandwidth": 2},
            {
                "name": "GLB",
                "capacity": 48,
                "read_energy": 6,
                "write_energy": 6,
                "fanout": {"x": 2, "y": 2},
                "bandwidth": 4,
            },
            {"name": "RF", "capacity": {"inputs": 4, "weights": 8, "outputs": 4}, "read_energy": 1, "write_energy": 1},
        ],
        "compute": {"mac_energy": 1.0},
    },
    # Eyeriss-style bypass: weights skip the GLB; restricted spatial axes
    "bypass": {
        "name": "bypass",
        "levels": [
            {"name": "DRAM", "read_energy": 100, "write_energy": 120, "bandwidth": 1},
            {
                "name": "GLB",
                "capacity": 40,
                "keeps": ["inputs", "outputs"],
                "read_energy": 5,
                "write_energy": 5,
                "fanout": {"x": 2, "y": 3, "x_dims": ["K", "P"], "y_dims": ["C", "R", "Q"]},
            },
            {"name": "RF", "capacity": 12, "read_energy": 1, "write_energy": 1.5},
        ],
        "compute": {"mac_energy": 0.5},
    },
    # sparse: compressed weights, skipping MACs
    "sparse": {
        "name": "sparse",
        "levels": [
            {"name": "DRAM", "read_energy": 200, "write_energy": 200, "formats": {"weights": "bitmask"}},
            {
                "name": "GLB",
                "capacity": 64,
                "read_energy": 6,
                "write_energy": 6,
                "fanout": {"x": 4},
                "formats": {"weights": "coordinate", "inputs": "rle"},
            },
            {"name": "RF", "capacity": 6, "keeps": ["weights", "outputs"], "read_energy": 1, "write_energy": 1},
        ],
        "compute": {"mac_energy": 1.0, "sparse": "skip", "on": ["weights"]},
    },
}


def brute_force(layer: Layer, arch: Architecture, objective: str) -> float:
    """Minimum objective over every fitting tiling and every permutation of its non-trivial loops."""
    model = CostModel(layer, arch)
    space = MapSpace(layer, arch, model)
    L = arch.n_levels
    per_dim = []
    for d, n in enumerate(space.dims):
        slots = np.flatnonzero(space.allowed[d])
        per_dim.append([(slots, f) for f in ordered_factorizations(n, len(slots))])
    best = np.inf
    for choice in itertools.product(*per_dim):
        fac = np.ones((N_DIMS, 3 * L), dtype=np.int64)
        for d, (slots, f) in enumerate(choice):
            fac[d, slots] = f
        f3 = fac.reshape(N_DIMS, L, 3).transpose(1, 0, 2)
        T = f3[..., 0]
        perms = []
        for lvl in range(L):
            dims = [d for d in range(N_DIMS) if T[lvl, d] > 1]
            rest = [d for d in range(N_DIMS) if T[lvl, d] == 1]
            perms.append([tuple(rest) + p for p in itertools.permutations(dims)])
        combos = np.array(list(itertools.product(*perms)), dtype=np.int64)
        n = len(combos)
        batch = MappingBatch(
            np.repeat(f3[None, ..., 0], n, 0),
            np.repeat(f3[None, ..., 1], n, 0),
            np.repeat(f3[None, ..., 2], n, 0),
            combos,
        )
        best = min(best, float(model.evaluate_batch(batch).objective(objective).min()))
    return best


def random_layer(rng: np.random.Generator, i: int) -> Layer:
    kind = ["conv", "gemm", "depthwise", "strided"][i % 4]
    if kind == "gemm":
        return Layer(
            name=f"g{i}",
            kind="gemm",
            K=int(rng.choice([2, 3, 4])),
            C=int(rng.choice([2, 4])),
            P=int(rng.choice([1, 2, 3])),
        )
    if kind == "depthwise":
        ch = int(rng.choice([2, 3]))
        return Layer(
            name=f"d{i}",
            kind="depthwise",
            K=ch,
            C=ch,
            groups=ch,
            P=int(rng.choice([2, 3])),
            R=int(rng.choice([1, 2, 3])),
        )
    stride = 2 if kind == "strided" else 1
    return Layer(
        name=f"c{i}",
        K=int(rng.choice([1, 2, 4])),
        C=int(rng.choice([1, 2])),
        P=int(rng.choice([2, 3, 4])),
        Q=int(rng.choice([1, 2])),
        R=int(rng.choice([1, 2, 3])),
        stride=stride,
        dilation=int(rng.choice([1, 2])),
        density={"weights": float(rng.choice([0.3, 1.0]))},
    )


CASES = [(i, arch, obj) for i in range(8) for arch in ARCHS for obj in ("energy", "edp", "latency")]


@pytest.mark.parametrize("i,arch_name,objective", CASES)
def test_optimal_equals_brute_force(i: int, arch_name: str, objective: str) -> None:
    layer = random_layer(np.random.default_rng(1000 + i), i)
    arch = Architecture.model_validate(ARCHS[arch_name])
    result = OptimalMapper().search(layer, arch, objective)
    assert result.proven_optimal
    truth = brute_force(layer, arch, objective)
    assert result.best == pytest.approx(truth, rel=1e-9)
    # the reported cost is the scalar model's, on the mapping returned
    assert result.cost.objective(objective) == pytest.approx(truth, rel=1e-9)
    e_lb, c_lb = lower_bound(CostModel(layer, arch))
    lb = {"energy": e_lb, "latency": c_lb, "edp": e_lb * c_lb}[objective]
    assert lb <= truth * (1 + 1e-12)


@pytest.mark.parametrize("i,arch_name,objective", CASES[1::8])
def test_optimal_equals_brute_force_under_accelforge_semantics(i: int, arch_name: str, objective: str) -> None:
    """The pruning is exact under the `accelforge` rules too (no halo credit, one window per child)."""
    layer = random_layer(np.random.default_rng(2000 + i), i)
    arch = Architecture.model_validate({**ARCHS[arch_name], "semantics": "accelforge"})
    result = OptimalMapper().search(layer, arch, objective)
    assert result.proven_optimal
    assert result.best == pytest.approx(brute_force(layer, arch, objective), rel=1e-9)


PRESET_CASES = [
    (i, arch, obj) for i in range(4) for arch in ("simba", "tpu_like") for obj in ("energy", "edp", "latency")
]


@pytest.mark.parametrize("i,arch_name,objective", PRESET_CASES)
def test_optimal_equals_brute_force_on_presets(i: int, arch_name: str, objective: str) -> None:
    """The same on the 4-level presets with restricted X/Y fanouts and 1-word weight registers; brute force
    enumerates X and Y separately, so it also checks merging them and the axis-only fanout cut."""
    from rlmap.spec.io import load_architecture

    layer = random_layer(np.random.default_rng(2000 + i), i)
    arch = load_architecture(arch_name)
    result = OptimalMapper().search(layer, arch, objective)
    assert result.proven_optimal
    truth = brute_force(layer, arch, objective)
    assert result.best == pytest.approx(truth, rel=1e-9)
    assert result.cost.objective(objective) == pytest.approx(truth, rel=1e-9)


def test_larger_buffer_never_hurts_the_optimum() -> None:
    layer = Layer(name="c", K=4, C=2, P=4, R=3)
    results = []
    for cap in (16, 32, 64, 128):
        spec = dict(ARCHS["shared"])
        spec["levels"] = [dict(lvl) for lvl in spec["levels"]]
        spec["levels"][1]["capacity"] = cap
        results.append(OptimalMapper().search(layer, Architecture.model_validate(spec), "energy").best)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(results, results[1:]))
    assert results[-1] < results[0]  # and here it strictly helps


def test_order_classes_are_few_and_cover_stationarities() -> None:
    mask = (1 << K) | (1 << C) | (1 << P) | (1 << R)
    classes = order_classes(mask)
    assert 2 <= len(classes) < 24  # 4! = 24 permutations collapse to a handful of reuse classes
    sigs = {order_signature(tuple(d for d in o if mask >> d & 1)) for o in classes}
    trailing_w = {s[0][1] for s in sigs}
    trailing_o = {s[0][2] for s in sigs}
    trailing_i = {s[0][0] for s in sigs}
    assert frozenset({P}) in trailing_w  # weight stationary: P innermost
    assert frozenset({C, R}) in trailing_o  # output stationary: C and R innermost
    assert frozenset({K}) in trailing_i  # input stationary: K innermost


def test_not_proven_when_limits_hit() -> None:
    layer = Layer(name="big", K=64, C=64, P=28, Q=28, R=3, S=3, padding=1)
    arch = Architecture.model_validate(ARCHS["shared"] | {"name": "shared"})
    result = OptimalMapper(max_tilings=1000).search(layer, arch, "edp")
    assert not result.proven_optimal
    assert "tilings" in result.notes["stopped"]
    assert result.mapping is not None and result.cost.valid


@pytest.mark.parametrize(
    "net,arch_name",
    [
        ("resnet50", "eyeriss"),
        ("mobilenetv2", "simba"),
        ("resnet50_sparse", "sparse_eyeriss"),
        ("bert_base", "tpu_like"),
        ("mobilenetv2", "tpu_like"),
        ("resnet50", "edge"),
    ],
)
def test_partial_tiling_bound_never_exceeds_a_completion(net: str, arch_name: str) -> None:
    """The branch-and-bound cut on partial tilings is sound, for every objective: for random valid mappings,
    the bound of every prefix of their tiling (dims placed in enumeration order, the rest not yet placed)
    is <= their cost with the best loop orders (found exactly by the order sweep, which the brute-force
    tests above check).  And it is tight where it matters: on complete tilings it is on average within
    2-40 % of that cost (measured: 0.59 for sparse Eyeriss' EDP to 0.99 for the TPU-like array)."""
    from rlmap.spec.io import load_architecture, load_network

    arch = load_architecture(arch_name)
    mapper = OptimalMapper()
    rng = np.random.default_rng(7)
    complete = {"energy": [], "latency": [], "edp": []}
    for layer in load_network(net).layers[::7]:
        model = CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        genomes, _ = space.sample(64, rng)
        batch = space.decode(genomes)
        L = arch.n_levels
        fac = np.ones((len(batch.temporal), N_DIMS, 2 * L), dtype=np.int64)
        fac[:, :, 0::2] = batch.temporal.transpose(0, 2, 1)
        fac[:, :, 1::2] = (batch.spatial_x * batch.spatial_y).transpose(0, 2, 1)
        order = mapper.dim_order(space)
        for objective in complete:
            _, cost, _ = mapper._best_orders(model, batch.temporal, batch.spatial_x, batch.spatial_y, objective)
            assert np.all(cost <= model.evaluate_batch(batch).objective(objective) * (1 + 1e-12))
            bound = mapper.partial_bound(space, model, objective)
            previous = np.zeros(len(fac))
            for k in range(N_DIMS + 1):
                partial = fac.copy()
                partial[:, order[k:], :] = 1
                values = bound(partial, k)
                assert np.all(values <= cost * (1 + 1e-9)), (layer.name, objective, k)
                assert np.all(values > 0)
                previous = values
            complete[objective].append(previous / cost)
    for objective, ratios in complete.items():
        # (the layer-wide compulsory bound alone is 10-50x below these random mappings' costs)
        assert np.mean(np.concatenate(ratios)) > 0.55, objective


@pytest.mark.parametrize(
    "net,arch_name",
    [("resnet50", "eyeriss"), ("mobilenetv2", "simba"), ("resnet50_sparse", "sparse_eyeriss"), ("bert_base", "edge")],
)
def test_compiled_tiling_expansion_matches_the_numpy_reference(net: str, arch_name: str) -> None:
    """expand_fitting keeps exactly the rows that the readable numpy test (_fits_numpy) accepts."""
    from rlmap.search.tiling_kernel import expand_fitting
    from rlmap.spec.io import load_architecture, load_network

    arch = load_architecture(arch_name)
    mapper = OptimalMapper()
    rng = np.random.default_rng(3)
    fan_size = np.array([float(level.fanout.size) for level in arch.levels])
    for layer in load_network(net).layers[::9]:
        model = CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        options = mapper._dim_options(space)
        # random partial tilings: each dim takes a random option, then dim d is re-expanded over all options
        part = np.stack([np.stack([opts[rng.integers(len(opts))] for opts in options]) for _ in range(40)])
        for d in range(N_DIMS):
            got, _ = expand_fitting(model, fan_size, part, options[d], d)
            full = np.repeat(part, len(options[d]), axis=0)
            full[:, d, :] = np.tile(options[d], (len(part), 1))
            want = full[OptimalMapper._fits_numpy(model, full)]
            assert np.array_equal(got, want), (layer.name, d)
            # with the partial bound: exactly the fitting rows whose bound is <= the threshold
            objective = ("edp", "energy", "latency")[d % 3]
            bound = mapper.partial_bound(space, model, objective)
            k = mapper.dim_order(space).index(d) + 1
            if len(want):
                # the compiled expansion computes the bound incrementally: equal up to rounding
                _, all_values = expand_fitting(model, fan_size, part, options[d], d, bound.static, k, np.inf)
                values = bound(want, k)
                np.testing.assert_allclose(all_values, values, rtol=1e-12)
                distinct = np.unique(values)
                threshold = float(distinct[len(distinct) // 2] * (1 + 1e-9))  # no value within rounding of it
                pruned = np.zeros(1, dtype=np.int64)
                cut, cut_values = expand_fitting(
                    model, fan_size, part, options[d], d, bound.static, k, threshold, pruned
                )
                assert np.array_equal(cut, want[values <= threshold])
                np.testing.assert_allclose(cut_values, values[values <= threshold], rtol=1e-12)
                # counted before the capacity test, so rows that would not have fit are counted too
                assert pruned[0] >= int((values > threshold).sum())


@pytest.mark.parametrize("objective", ["edp", "energy"])
def test_time_limit_is_enforced_inside_the_enumeration(objective: str) -> None:
    """A layer far too big to prove in a second (batch 8 of a 512-channel 3x3 convolution on 56 x 56; batch
    1 alone takes over 5 s of CPU on Eyeriss): the search returns within a second of its limit, not
    proven, with a lower bound on the optimum and the gap to it."""
    import time

    from rlmap.spec.io import load_architecture

    layer = Layer(name="huge", N=8, K=512, C=512, P=56, Q=56, R=3, S=3, padding=1)
    arch = load_architecture("eyeriss")
    t0 = time.perf_counter()
    result = OptimalMapper(time_limit=1.0).search(layer, arch, objective)
    elapsed = time.perf_counter() - t0
    assert elapsed <= 1.0 + 1.0
    assert not result.proven_optimal and result.notes["stopped"].startswith("time limit 1 s reached: not proven")
    notes = result.notes
    assert notes["lower_bound"] <= notes["bound"] <= result.best * (1 + 1e-12)
    assert notes["gap_to_bound"] == pytest.approx(result.best / notes["bound"])
    assert f"within {notes['gap_to_bound']:.4g}x of the bound" in notes["stopped"]
    assert result.cost.valid and result.cost.objective(objective) == pytest.approx(result.best, rel=1e-9)


def test_gemv_is_proven_well_within_the_limit() -> None:
    """The reported case: a 4096 x 4096 GEMV on Eyeriss with a 5 s limit once ran 183 s (a genetic warm
    start outside the limit) and returned that warm start; now the whole search fits the limit and proves."""
    import time

    from rlmap.spec.io import load_architecture

    layer = Layer(name="gemv", kind="gemm", K=4096, C=4096, P=1)
    t0 = time.perf_counter()
    result = OptimalMapper(time_limit=5).search(layer, load_architecture("eyeriss"), "edp")
    assert time.perf_counter() - t0 <= 5 + 1
    assert result.proven_optimal and result.notes["gap_to_bound"] == 1.0 and result.notes["stopped"] == ""
