"""Sparsity-aware search: density parsing, the robust objective (hand-checked against the cost model) and the
report of the robust mapping against every density's reference and against a single-density mapping."""

from __future__ import annotations

import numpy as np
import pytest

from rlmap.model.costmodel import CostModel
from rlmap.search.genetic import GeneticMapper
from rlmap.search.sparsity import RobustModel, SparsityAwareMapper, at_density, parse_densities
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture, load_network


def test_parse_densities():
    assert parse_densities("0.2,0.5,1.0") == ([0.2, 0.5, 1.0], None)
    d, p = parse_densities("0.2:1,1.0:3")
    assert d == [0.2, 1.0] and p == pytest.approx([0.25, 0.75])
    for bad in ("", "0,0.5", "1.5", "a,b", "0.2:1,0.5", "0.5,0.5"):
        with pytest.raises(SpecError):
            parse_densities(bad)


@pytest.fixture(scope="module")
def case():
    arch = load_architecture("sparse_eyeriss")
    layer = load_network("resnet50_sparse").layers[10]
    return layer, arch


def test_robust_objective_is_the_ratio_to_each_reference(case):
    layer, arch = case
    dens = [0.2, 1.0]
    models = [CostModel(at_density(layer, d), arch) for d in dens]
    m = GeneticMapper().search(at_density(layer, 1.0), arch, budget=200, seed=0).mapping
    edp = [mod.evaluate(m).edp for mod in models]
    refs = [edp[0] / 2, edp[1] / 4]  # so the ratios are exactly 2 and 4
    worst = RobustModel(models, refs, "edp", "worst", None)
    expected = RobustModel(models, refs, "edp", "expected", [0.75, 0.25])
    assert worst.evaluate_batch(m.to_arrays()).edp[0] == pytest.approx(4.0)
    assert expected.evaluate_batch(m.to_arrays()).edp[0] == pytest.approx(0.75 * 2 + 0.25 * 4)
    rep = worst.report(m)
    assert list(rep["ratio_per_density"].values()) == pytest.approx([2.0, 4.0]) and rep["worst"] == pytest.approx(4)


def test_sparsity_aware_search_reports_robust_and_single(case):
    layer, arch = case
    res = SparsityAwareMapper(GeneticMapper(), [0.2, 0.5, 1.0], mode="worst").search(layer, arch, budget=1200, seed=0)
    assert res.evaluations <= 1200
    rob, single = res.notes["robust"], res.notes["single"]
    assert res.notes["single_density"] == 0.5  # the layer's own input density
    # the robust mapping is valid at every density; its worst ratio is what the search minimised
    assert np.isfinite(rob["worst"]) and rob["worst"] == pytest.approx(max(rob["ratio_per_density"].values()))
    # the single-density mapping seeds the robust search, so the robust worst case can only be better;
    # references are the best found per density, so no ratio is below 1
    assert rob["worst"] <= single["worst"] * (1 + 1e-12)
    assert min(rob["ratio_per_density"].values()) >= 1 - 1e-12
    assert min(single["ratio_per_density"].values()) >= 1 - 1e-12
    for d, ref in res.notes["references"].items():
        m = CostModel(at_density(layer, float(d)), arch).evaluate(res.mapping)
        assert m.valid
        assert m.edp / ref == pytest.approx(rob["ratio_per_density"][f"({d}, 0.2, 1.0)"], rel=1e-9)
