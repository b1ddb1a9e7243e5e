"""`rlmap search` and the per-network driver: totals with repeats, determinism, files `rlmap eval` reads."""

from __future__ import annotations

import json

import pytest

from rlmap.cli.app import run
from rlmap.model.costmodel import CostModel
from rlmap.search.driver import get_mapper, layer_seed, map_network
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture, load_mapping, load_network
from rlmap.spec.layer import Network


@pytest.fixture(scope="module")
def small_net() -> Network:
    net = load_network("resnet18")
    return Network(name="r18_head", layers=net.layers[:3])  # includes a layer with repeat 2


def test_totals_count_repeats_and_match_the_cost_model(small_net: Network) -> None:
    arch = load_architecture("eyeriss")
    res = map_network(small_net, arch, "random", "edp", budget=200, seed=1, progress=False)
    assert any(l.repeat > 1 for l in small_net.layers)
    energy = cycles = 0.0
    for layer, r in zip(small_net.layers, res.results):
        cost = CostModel(layer, arch).evaluate(r.mapping)
        assert cost.valid and cost.energy == pytest.approx(r.cost.energy, rel=1e-12)
        energy += cost.energy * layer.repeat
        cycles += cost.cycles * layer.repeat
    assert res.energy == pytest.approx(energy, rel=1e-12)
    assert res.cycles == pytest.approx(cycles, rel=1e-12)
    assert res.edp == pytest.approx(energy * cycles, rel=1e-12)


def test_same_seed_same_result_and_processes_do_not_matter(small_net: Network) -> None:
    arch = load_architecture("eyeriss")
    a = map_network(small_net, arch, "ga", "edp", budget=300, seed=3, progress=False)
    b = map_network(small_net, arch, "ga", "edp", budget=300, seed=3, progress=False, processes=2)
    assert [r.mapping for r in a.results] == [r.mapping for r in b.results]
    assert a.edp == b.edp
    assert layer_seed(3, 0) != layer_seed(3, 1)


def test_unknown_mapper_is_a_user_error() -> None:
    with pytest.raises(SpecError, match="unknown mapper 'nope'"):
        get_mapper("nope")


def test_cli_search_writes_mappings_that_eval_reads(tmp_path, capsys) -> None:
    out = tmp_path / "res"
    rc = run(["search", "--network", "resnet18", "--arch", "eyeriss", "--mapper", "random", "--budget", "2000",
              "--layer", "conv1", "-o", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"][0]["layer"] == "conv1" and summary["layers"][0]["evaluations"] == 2000
    arch = load_architecture("eyeriss")
    mapping, layer_name = load_mapping(out / "mappings" / "conv1.yaml", arch)
    layer = load_network("resnet18").layer(layer_name)
    assert CostModel(layer, arch).evaluate(mapping).edp == pytest.approx(summary["layers"][0]["edp"], rel=1e-12)
    capsys.readouterr()
    assert run(["eval", "--network", "resnet18", "--arch", "eyeriss", "--mapping",
                str(out / "mappings" / "conv1.yaml")]) == 0
    assert "EDP" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["--budget", "0"], "--budget"),
    (["--objective", "speed"], "--objective"),
    (["--layer", "nope"], "--layer"),
    (["--network", "no_such_net"], "no_such_net"),
])
def test_cli_search_bad_input_is_one_line_exit_2(args, needle, capsys) -> None:
    assert run(["search", "--network", "resnet18", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_cli_search_reports_a_layer_without_valid_mapping(tmp_path, capsys) -> None:
    # ~1 % of uniformly random conv1 mappings fit Eyeriss's spads: 5 draws almost surely find none
    rc = run(["search", "--network", "resnet18", "--mapper", "random", "--budget", "5", "--layer", "conv1",
              "--seed", "0"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "none valid" in out and "without a valid mapping" in out and "totals are infinite" in out


def test_cli_search_optimal_time_limit_and_title(capsys) -> None:
    """The optimal mapper's title shows the limit it runs under and neither budget nor seed (it uses none);
    a layer the limit stops says how far from its bound it may be."""
    rc = run(["search", "--network", "gpt2_small", "--arch", "tpu_like", "--mapper", "optimal", "--time-limit", "0.05",
              "--layer", "mlp_c_fc", "--objective", "energy"])
    assert rc == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "optimal on gpt2_small / tpu_like, objective energy, time limit 0.05 s per layer" in out
    assert "budget" not in out and "seed" not in out
    assert "within" in out and "stopped early" in out


def test_cli_search_help_states_the_time_limit_default(capsys) -> None:
    assert run(["search", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--time-limit" in text and "60 s for optimal" in text


def test_cli_search_budgeted_mapper_time_limit(capsys) -> None:
    rc = run(["search", "--network", "resnet18", "--mapper", "ga", "--budget", "10000000", "--time-limit", "0.5",
              "--layer", "conv1"])
    assert rc == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "objective edp, budget 10000000, time limit 0.5 s per layer, seed 0" in out
    assert "time limit 0.5 s reached: best so far" in out


def test_cli_search_bad_time_limit(capsys) -> None:
    assert run(["search", "--network", "resnet18", "--time-limit", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --time-limit:") and "\n" not in err
