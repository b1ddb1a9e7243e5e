"""Marvel's decoupled mapper: the off-chip locality model against the cost model, the fixed off-chip part,
and quality against the proven optimum."""

from __future__ import annotations

import numpy as np
import pytest

from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import MapSpace
from rlmap.search.marvel import MarvelMapper, OffChipConstraint, offchip_candidates, offchip_words, stationary_orders
from rlmap.search.optimal import OptimalMapper
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import N_DIMS


def _dram_mapping(layer: Layer, arch, bounds, order) -> Mapping:
    """DRAM bounds and order at level 0, the rest of every dim at level 1 (temporal), nothing below."""
    L = arch.n_levels
    dims = layer.problem_dims
    ones = (1,) * N_DIMS
    t = [tuple(bounds), tuple(d // b for d, b in zip(dims, bounds))] + [ones] * (L - 2)
    return Mapping(
        temporal=tuple(t),
        spatial_x=(ones,) * L,
        spatial_y=(ones,) * L,
        order=(tuple(order),) + (tuple(range(N_DIMS)),) * (L - 1),
    )


@pytest.mark.parametrize("rs, exact", [(1, True), (3, False)])
def test_locality_model_is_the_cost_models_dram_traffic(rs, exact):
    # the cloud preset's first on-chip level keeps every tensor: without a halo the distinct-block count
    # equals the cost model's DRAM reads + writes for every stationary order; with overlapping windows
    # (3x3, stride 2) the cost model also reuses the overlap between neighbouring tiles, so the
    # distinct-block count is an upper bound within a few percent
    layer = Layer(name="c", K=32, C=16, P=14, Q=14, R=rs, S=rs, stride=2)
    arch = load_architecture("cloud")
    model = CostModel(layer, arch)
    bounds = np.array([[1, 1, 4, 2, 7, 2, 1, 1]])
    for order in stationary_orders():
        cost = model.evaluate_reference(_dram_mapping(layer, arch, bounds[0], order))
        assert cost.valid, cost.reason
        expected = sum(cost.reads[0]) + sum(cost.writes[0])
        got = offchip_words(model, bounds, order)[0]
        if exact:
            assert got == pytest.approx(expected, rel=1e-12)
        else:
            assert expected <= got <= 1.05 * expected


def test_stationary_orders_reuse_exactly_one_tensor():
    orders = stationary_orders()
    assert orders.shape == (3, N_DIMS)
    assert all(sorted(o) == list(range(N_DIMS)) for o in orders)
    # weights-stationary: N, P, Q innermost
    assert set(orders[1][-3:]) == {0, 4, 5}


def test_candidates_are_near_the_least_traffic_distinct_and_fit():
    from rlmap.search.marvel import onchip_fits

    layer = load_network("resnet18").layer("layer4.0.conv2")
    model = CostModel(layer, load_architecture("eyeriss"))
    cands, scored = offchip_candidates(model, 9, slack=0.25)
    assert scored > 100 and len(cands) == 9
    words = [c.words for c in cands]
    assert words == sorted(words) and words[-1] <= 1.25 * words[0]
    assert len({c.bounds for c in cands}) == 9
    assert onchip_fits(model, np.array([c.bounds for c in cands])).all()
    # the first is the least traffic of every fitting tiling under every DRAM order (brute force)
    one, _ = offchip_candidates(model, 1, slack=0.0)
    assert one[0].words == words[0]
    for c in cands:  # each carries its best DRAM order
        assert c.words == pytest.approx(
            min(offchip_words(model, np.array([c.bounds]), o)[0] for o in stationary_orders())
        )


def test_constraint_holds_the_off_chip_part():
    layer = load_network("resnet18").layer("layer4.0.conv2")
    arch = load_architecture("eyeriss")
    space = MapSpace(layer, arch)
    cand = offchip_candidates(space.model, 1)[0][0]
    c = OffChipConstraint(space, cand)
    from rlmap.search.genetic import Operators

    g = Operators(space).random(64, np.random.default_rng(0))
    c.apply(g)
    b = space.decode(g)
    assert (b.temporal[:, 0] == np.array(cand.bounds)).all()
    assert (b.order[:, 0] == np.array(cand.order)).all()


def test_marvel_result_keeps_its_offchip_choice_and_is_near_the_optimum():
    layer = next(la for la in load_network("bert_base").layers if la.name.startswith("attn_out"))
    arch = load_architecture("eyeriss")
    res = MarvelMapper().search(layer, arch, "edp", budget=1000, seed=0)
    assert res.evaluations <= 1000 and res.mapping is not None
    cost = CostModel(layer, arch).evaluate(res.mapping)
    assert cost.valid and cost.edp == pytest.approx(res.best, rel=1e-9)
    assert tuple(res.mapping.temporal[0]) in {tuple(c["bounds"]) for c in res.notes["candidates"]}
    opt = OptimalMapper().search(layer, arch, "edp", time_limit=60)
    assert opt.proven_optimal
    assert res.best <= 1.2 * opt.best


def test_lockstep_runs_keep_their_own_offchip_part_budget_and_match_single_runs():
    """GeneticMapper.search_many: runs stepped together each keep their own constraint (the per-row capacity
    repair must not move a frozen DRAM copy) and budget; one run is exactly `search` (same random stream)."""
    from rlmap.search.genetic import GeneticMapper

    layer = load_network("resnet18").layer("layer4.0.conv2")
    arch = load_architecture("eyeriss")
    space = MapSpace(layer, arch)
    cands = offchip_candidates(space.model, 3)[0]
    assert len({c.bounds for c in cands}) == 3
    budgets = [150, 300, 450]
    res = GeneticMapper().search_many(
        space, "edp", budgets, seed=1, constraints=[OffChipConstraint(space, c) for c in cands]
    )
    for r, c, b in zip(res, cands, budgets):
        assert r.evaluations == b and r.mapping is not None
        assert tuple(r.mapping.temporal[0]) == c.bounds
        assert CostModel(layer, arch).evaluate(r.mapping).edp == pytest.approx(r.best, rel=1e-9)
    ga = GeneticMapper(constraint=OffChipConstraint(space, cands[1]))
    one = ga.search(layer, arch, "edp", 300, seed=4, model=space.model)
    many = GeneticMapper().search_many(space, "edp", [300], seed=4, constraints=[OffChipConstraint(space, cands[1])])[0]
    assert one.best == many.best and np.array_equal(one.curve, many.curve)


def test_capacity_repair_per_row_target_and_movable():
    """Rows repaired together with their own target slot and movable genes (search_many's batches)."""
    from rlmap.search.genetic import Operators
    from rlmap.search.repair import capacity_repair

    layer = load_network("resnet18").layer("layer4.0.conv2")
    space = MapSpace(layer, load_architecture("eyeriss"))
    g = Operators(space).random(64, np.random.default_rng(0))
    before = g.slots.copy()
    target = np.repeat([0, 3], 32)
    movable = np.ones((64, space.n_genes), dtype=bool)
    movable[32:, : space.n_genes // 2] = False
    ok = capacity_repair(space, g, np.random.default_rng(1), target=target, movable=movable)
    changed = g.slots != before
    assert changed[:32].any() and changed[32:].any()
    rows, genes = np.nonzero(changed)
    assert (g.slots[rows, genes] == target[rows]).all() and (before[rows, genes] > target[rows]).all()
    assert not (changed & ~movable).any()
    assert ok[:32].all()  # DRAM is always a way out for rows whose every copy may move there
