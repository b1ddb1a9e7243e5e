"""Random, genetic and annealing mappers: budget accounting, determinism, result consistency, quality,
their genome operators, and the network driver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlmap.model.costmodel import CostModel
from rlmap.search.annealing import AnnealingMapper
from rlmap.search.driver import MAPPERS, get_mapper, layer_seed, map_network
from rlmap.search.genetic import GeneticMapper, Operators
from rlmap.search.mapspace import Genome, MapSpace
from rlmap.search.random_search import BudgetedEvaluator, RandomMapper
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import Network

SEARCHERS = [RandomMapper, GeneticMapper, AnnealingMapper]


@pytest.fixture(scope="module")
def eyeriss():
    return load_architecture("eyeriss")


@pytest.fixture(scope="module")
def conv(eyeriss):
    return load_network("resnet50").layer("layer1.0.conv2")


def _same(a, b) -> None:
    assert a.evaluations == b.evaluations
    np.testing.assert_array_equal(a.curve, b.curve)
    assert a.mapping == b.mapping


@pytest.mark.parametrize("cls", SEARCHERS, ids=lambda c: c.name)
def test_deterministic_per_seed(cls, conv, eyeriss) -> None:
    a = cls().search(conv, eyeriss, "edp", budget=400, seed=5)
    b = cls().search(conv, eyeriss, "edp", budget=400, seed=5)
    _same(a, b)
    c = cls().search(conv, eyeriss, "edp", budget=400, seed=6)
    assert not np.array_equal(a.curve, c.curve)


@pytest.mark.parametrize("cls", SEARCHERS, ids=lambda c: c.name)
@pytest.mark.parametrize("budget", [1, 7, 333, 1000])
def test_budget_is_counted_exactly(cls, budget, conv, eyeriss) -> None:
    res = cls().search(conv, eyeriss, "edp", budget=budget, seed=0)
    assert res.mapper == cls.name and res.objective == "edp"
    assert len(res.curve) == res.evaluations == budget  # these layers have room: every budget is spent
    assert res.notes["valid_evaluations"] <= res.evaluations


@pytest.mark.parametrize("cls", SEARCHERS, ids=lambda c: c.name)
@pytest.mark.parametrize("objective", ["edp", "energy", "latency"])
def test_result_is_valid_and_scored_by_the_reference_model(cls, objective, eyeriss) -> None:
    layer = load_network("mobilenetv2").layer("block2.dw")
    res = cls().search(layer, eyeriss, objective, budget=600, seed=1)
    curve = res.curve
    assert np.all(curve[1:] <= curve[:-1])  # best so far never gets worse
    assert res.mapping is not None and res.cost is not None and res.cost.valid
    res.mapping.check_structure(layer, eyeriss)
    ref = CostModel(layer, eyeriss).evaluate(res.mapping)
    assert ref.energy == res.cost.energy and ref.cycles == res.cost.cycles
    assert res.best == pytest.approx(ref.objective(objective), rel=1e-9)
    assert res.best == pytest.approx(res.cost.objective(objective), rel=1e-9)


def test_a_shared_model_is_used(conv, eyeriss) -> None:
    model = CostModel(conv, eyeriss)
    a = GeneticMapper().search(conv, eyeriss, budget=300, seed=2, model=model)
    b = GeneticMapper().search(conv, eyeriss, budget=300, seed=2)
    _same(a, b)


def test_random_counts_invalid_draws(conv, eyeriss) -> None:
    # uniform draws rarely fit Eyeriss (~1-2 %): most evaluations are invalid and still counted
    res = RandomMapper().search(conv, eyeriss, budget=2000, seed=0)
    assert res.evaluations == 2000
    assert 0 < res.notes["valid_evaluations"] < 200
    assert math.isinf(res.curve[0]) or res.curve[0] > 0


def test_nothing_valid_yet_gives_no_mapping(conv, eyeriss) -> None:
    res = RandomMapper().search(conv, eyeriss, budget=1, seed=0)
    if not np.isfinite(res.best):
        assert res.mapping is None and res.cost is None


@pytest.mark.parametrize("cls", SEARCHERS, ids=lambda c: c.name)
@pytest.mark.parametrize("kwargs,needle", [({"budget": 0}, "budget"), ({"objective": "speed"}, "objective")])
def test_bad_arguments_are_spec_errors(cls, kwargs, needle, conv, eyeriss) -> None:
    args = {"objective": "edp", "budget": 10} | kwargs
    with pytest.raises(SpecError, match=needle):
        cls().search(conv, eyeriss, args["objective"], args["budget"], 0)


def test_ga_and_sa_beat_random(eyeriss) -> None:
    layers = [
        load_network("resnet50").layer("conv1"),
        load_network("resnet50").layer("layer1.0.conv2"),
        load_network("mobilenetv2").layer("block2.dw"),
        load_network("bert_base").layer("q_proj"),
    ]
    logs: dict[str, list[float]] = {"ga": [], "sa": []}
    for layer in layers:
        model = CostModel(layer, eyeriss)
        for seed in (0, 1):
            rnd = RandomMapper().search(layer, eyeriss, "edp", 2000, seed, model).best
            for cls in (GeneticMapper, AnnealingMapper):
                best = cls().search(layer, eyeriss, "edp", 2000, seed, model).best
                logs[cls.name].append(math.log(best / rnd))
    for name, vals in logs.items():
        ratio = math.exp(sum(vals) / len(vals))
        assert ratio < 0.6, f"{name}: geometric-mean EDP ratio vs random {ratio:.3f}"


# ---------------------------------------------------------------------------- operators and accounting
@pytest.fixture(scope="module")
def space(eyeriss) -> MapSpace:
    return MapSpace(load_network("bert_base").layer("attn_scores"), eyeriss)


def _legal(space: MapSpace, g: Genome) -> None:
    assert space.allowed[space.gene_dim[None, :], g.slots].all()
    assert (np.sort(g.order, axis=2) == np.arange(g.order.shape[2])).all()
    b = space.decode(g)
    for lvl, level in enumerate(space.arch.levels):
        assert (b.spatial_x[:, lvl].prod(axis=1) <= level.fanout.x).all()
        assert (b.spatial_y[:, lvl].prod(axis=1) <= level.fanout.y).all()


def test_operators_keep_genomes_legal_and_fitting_fanouts(space) -> None:
    ops = Operators(space)
    rng = np.random.default_rng(0)
    g = ops.random(500, rng)
    _legal(space, g)
    m = ops.mutate(g, rng, rng.integers(1, 4, size=500))
    _legal(space, m)
    assert (m.slots != g.slots).any(axis=1).mean() > 0.5
    kid = ops.crossover(g, m.take(np.arange(499, -1, -1)), rng)
    _legal(space, ops.repair(kid, rng))


def test_repair_never_breaks_capacity(space) -> None:
    ops = Operators(space)
    rng = np.random.default_rng(1)
    g = space.random_genomes(4000, rng)
    before = space.model.evaluate_batch(space.decode(g))
    ops.repair(g, rng)
    after = space.model.evaluate_batch(space.decode(g))
    fanout_only = before.reason == 2
    assert after.valid.mean() > 5 * before.valid.mean()
    assert not (before.valid & ~after.valid).any()  # valid mappings are left alone
    assert (after.reason[fanout_only] != 2).all()


def test_evaluator_caches_and_stops_at_the_budget(space) -> None:
    ops = Operators(space)
    rng = np.random.default_rng(2)
    ev = BudgetedEvaluator(space, "edp", budget=10)
    g = ops.random(6, rng)
    v1 = ev.score(g)
    assert ev.used == 6
    v2 = ev.score(Genome.concat([g, g]))  # already scored: free
    assert ev.used == 6 and ev.cache_hits == 12
    np.testing.assert_array_equal(np.concatenate([v1, v1]), v2)
    v3 = ev.score(ops.random(8, rng))
    assert ev.used == 10 and ev.exhausted and np.isnan(v3[4:]).all() and not np.isnan(v3[:4]).any()
    res = ev.result("x", 0.0)
    assert len(res.curve) == res.evaluations == 10


# ---------------------------------------------------------------------------- network driver
@pytest.fixture(scope="module")
def head() -> Network:
    net = load_network("resnet18")
    return Network(name="resnet18_head", layers=net.layers[:3])


def test_network_totals_weight_layers_by_repeat(head, eyeriss) -> None:
    assert any(layer.repeat > 1 for layer in head.layers)
    res = map_network(head, eyeriss, "sa", "edp", budget=300, seed=4, progress=False)
    assert len(res.results) == len(head.layers) and res.mapper == "sa"
    energy = sum(r.cost.energy * layer.repeat for layer, r in zip(head.layers, res.results))
    cycles = sum(r.cost.cycles * layer.repeat for layer, r in zip(head.layers, res.results))
    assert res.energy == pytest.approx(energy) and res.cycles == pytest.approx(cycles)
    assert res.edp == pytest.approx(energy * cycles)
    assert res.macs == head.macs
    # layer i used seed layer_seed(4, i)
    solo = AnnealingMapper().search(head.layers[1], eyeriss, "edp", 300, layer_seed(4, 1))
    _same(solo, res.results[1])


def test_network_processes_do_not_change_results(head, eyeriss) -> None:
    one = map_network(head, eyeriss, GeneticMapper, "edp", budget=300, seed=9, processes=1, progress=False)
    two = map_network(head, eyeriss, GeneticMapper(), "edp", budget=300, seed=9, processes=2, progress=False)
    assert one.mapper == two.mapper == "ga"
    assert one.edp == two.edp and one.energy == two.energy and one.cycles == two.cycles
    for a, b in zip(one.results, two.results):
        _same(a, b)


def test_registry(head) -> None:
    assert {"random", "ga", "sa", "optimal"} <= set(MAPPERS)
    assert get_mapper("GA").name == "ga" and get_mapper("random").name == "random"
    assert get_mapper("optimal").name == "optimal"  # lazily imported
    with pytest.raises(SpecError, match="unknown mapper 'nope'.*random.*ga.*sa"):
        get_mapper("nope")
    with pytest.raises(SpecError, match="unknown mapper"):
        map_network(head, load_architecture("eyeriss"), "nope", progress=False)


@pytest.mark.parametrize("cls", SEARCHERS, ids=lambda c: c.name)
def test_time_limit_stops_with_the_best_so_far(cls, conv, eyeriss) -> None:
    import time

    t0 = time.perf_counter()
    res = cls().search(conv, eyeriss, "edp", budget=10_000_000, seed=0, time_limit=0.5)
    assert time.perf_counter() - t0 <= 0.5 + 1.0
    assert 0 < res.evaluations < 10_000_000
    assert res.notes["stopped"] == "time limit 0.5 s reached: best so far"
    assert res.mapping is not None and res.cost.edp == pytest.approx(res.best, rel=1e-9)
    # without a limit, or with one that the budget beats, nothing says it stopped early
    assert "stopped" not in cls().search(conv, eyeriss, "edp", budget=50, seed=0, time_limit=60).notes
    with pytest.raises(SpecError, match="time limit"):
        cls().search(conv, eyeriss, "edp", budget=50, time_limit=0)


def test_network_maps_each_distinct_layer_once(eyeriss) -> None:
    """Layers the cost model cannot tell apart (same shape, strides, densities; names and padding aside)
    are searched once and reported for each of them."""
    base = load_network("resnet18").layers[1]
    twin = base.model_copy(update={"name": "twin", "padding": (0, 0)})
    other = load_network("resnet18").layers[0]
    net = Network(name="dups", layers=[base, other, twin])
    calls = []

    class Counting(RandomMapper):
        def search(self, layer, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN201
            calls.append(layer.name)
            return super().search(layer, *args, **kw)

    res = map_network(net, eyeriss, Counting(), "edp", budget=3000, seed=1, progress=False)
    assert calls == [base.name, other.name]
    assert len(res.results) == 3 and res.results[2] is res.results[0] and res.extra["distinct_layers"] == 2
    assert res.energy == pytest.approx(sum(r.cost.energy * l.repeat for l, r in zip(net.layers, res.results)))
