"""Map-space analysis: one-axis variants change only their axis, curve bands and evaluations-to-target by
hand, and `rlmap analyze` end to end (JSON numbers re-derived from the cost model, PNGs written)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from rlmap.cli.app import app
from rlmap.search.analysis import curve_band, evaluations_to_reach, variants
from rlmap.search.mapspace import MapSpace
from rlmap.spec.io import load_architecture, load_network


@pytest.fixture(scope="module")
def space():
    return MapSpace(load_network("resnet18").layer("layer3.0.conv2"), load_architecture("eyeriss"))


def test_variants_change_one_axis_only(space):
    rng = np.random.default_rng(0)
    base = space.sample(1, rng)[0]
    b0 = space.decode(base)
    per_level = b0.temporal * b0.spatial_x * b0.spatial_y
    t = space.decode(variants(space, base, "tiling", 50, rng))
    assert (t.spatial_x == b0.spatial_x).all() and (t.spatial_y == b0.spatial_y).all() and (t.order == b0.order).all()
    assert (t.temporal != b0.temporal).any(axis=(1, 2)).all()  # every variant moved a temporal factor
    o = space.decode(variants(space, base, "order", 50, rng))
    assert (o.temporal == b0.temporal).all() and (o.spatial_x == b0.spatial_x).all()
    p = space.decode(variants(space, base, "parallelism", 50, rng))
    assert (p.order == b0.order).all()
    assert (p.temporal * p.spatial_x * p.spatial_y == per_level).all()  # factors stay in their level
    assert ((p.spatial_x != b0.spatial_x) | (p.spatial_y != b0.spatial_y)).any(axis=(1, 2)).all()


def test_curve_band_and_evaluations_to_reach():
    a = np.array([4.0, 2.0, 1.0])
    b = np.array([np.inf, 3.0])  # stopped early: holds its last value
    band = curve_band([a, b], optimum=1.0)
    assert band["p25"][1] == 2.0 and band["p75"][1] == 3.0 and band["median"][2] in (1.0, 3.0)
    assert evaluations_to_reach(a, 2.0) == 2 and math.isinf(evaluations_to_reach(b, 1.0))


def test_analyze_command(tmp_path):
    out = tmp_path / "an"
    r = CliRunner().invoke(
        app,
        [
            "analyze",
            "-n",
            "mobilenetv2",
            "-l",
            "block14.project",
            "-a",
            "eyeriss",
            "--samples",
            "200",
            "--neighbours",
            "16",
            "--random-points",
            "2",
            "--mappers",
            "random,ga",
            "--budget",
            "60",
            "--seeds",
            "2",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "analysis.json").read_text())
    for png in ("distribution.png", "sensitivity.png", "curves.png"):
        assert (out / png).stat().st_size > 1000
    assert data["reference_proven"] and len(data["distribution"]["ratios"]) == 200
    assert min(data["distribution"]["ratios"]) >= 1 - 1e-9  # nothing beats the proven optimum
    assert set(data["sensitivity"]["optimum"]) == {"tiling", "order", "parallelism", "bypass"}
    assert data["sensitivity"]["optimum"]["bypass"]["median_abs_log10"] is None
    for name in ("random", "ga"):
        c = data["curves"][name]
        assert len(c["median"]) == 60 and len(c["final"]) == 2
        assert all(x >= 1 - 1e-9 for x in c["final"])
        assert c["median"] == sorted(c["median"], reverse=True)  # best so far never gets worse
    bad = CliRunner().invoke(app, ["analyze", "--mappers", "nope"])
    assert bad.exit_code == 2 and "unknown mapper" in bad.output
