"""`rlmap search` and the per-network driver: totals with repeats, determinism, files `rlmap eval` reads."""

from __future__ import annotations

import json

import pytest

from rlmap.cli.app import run
from rlmap.model.costmodel import CostModel
from rlmap.search.driver import get_mapper, layer_seed, map_network
from rlmap.spec.errors import SpecError
from rlmap.spec.io import envs_dir, load_architecture, load_mapping, load_network
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
    rc = run(
        [
            "search",
            "--network",
            "resnet18",
            "--arch",
            "eyeriss",
            "--mapper",
            "random",
            "--budget",
            "2000",
            "--layer",
            "conv1",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"][0]["layer"] == "conv1" and summary["layers"][0]["evaluations"] == 2000
    arch = load_architecture("eyeriss")
    mapping, layer_name = load_mapping(out / "mappings" / "conv1.yaml", arch)
    layer = load_network("resnet18").layer(layer_name)
    assert CostModel(layer, arch).evaluate(mapping).edp == pytest.approx(summary["layers"][0]["edp"], rel=1e-12)
    capsys.readouterr()
    assert (
        run(["eval", "--network", "resnet18", "--arch", "eyeriss", "--mapping", str(out / "mappings" / "conv1.yaml")])
        == 0
    )
    assert "EDP" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--budget", "0"], "--budget"),
        (["--objective", "speed"], "--objective"),
        (["--layer", "nope"], "--layer"),
        (["--network", "no_such_net"], "no_such_net"),
    ],
)
def test_cli_search_bad_input_is_one_line_exit_2(args, needle, capsys) -> None:
    assert run(["search", "--network", "resnet18", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_cli_search_falls_back_to_the_all_outermost_mapping_when_no_draw_is_valid(tmp_path, capsys) -> None:
    # ~1 % of uniformly random conv1 mappings fit Eyeriss's spads: 5 draws almost surely find none; the
    # budget's last evaluation then goes to the mapping with every loop in DRAM (single-word inner tiles), valid
    rc = run(
        [
            "search",
            "--network",
            "resnet18",
            "--mapper",
            "random",
            "--budget",
            "5",
            "--layer",
            "conv1",
            "--seed",
            "0",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "none valid" not in out and "keeps the all-outermost one" in out
    row = json.loads((tmp_path / "out" / "summary.json").read_text())["layers"][0]
    assert row["evaluations"] == 5
    arch = load_architecture("eyeriss")
    mapping, _ = load_mapping(tmp_path / "out" / "mappings" / "conv1.yaml", arch)
    assert all(f == 1 for lvl in range(1, arch.n_levels) for f in mapping.temporal[lvl])  # every loop in DRAM
    assert all(f == 1 for m in (mapping.spatial_x, mapping.spatial_y) for row_ in m for f in row_)


def test_cli_search_reports_a_layer_that_fits_nowhere(tmp_path, capsys) -> None:
    """A spad of 2 shared words cannot hold one word of each of its 3 tensors: no mapping exists, and the hint
    says so instead of asking for a bigger budget."""
    import yaml

    data = yaml.safe_load((envs_dir() / "arch" / "eyeriss.yaml").read_text())
    data["levels"][-1]["capacity"] = 2
    data["levels"][-1]["keeps"] = ["inputs", "weights", "outputs"]
    (tmp_path / "tiny_spad.yaml").write_text(yaml.safe_dump(data))
    rc = run(
        [
            "search",
            "--network",
            "resnet18",
            "--arch",
            str(tmp_path / "tiny_spad.yaml"),
            "--mapper",
            "ga",
            "--budget",
            "50",
            "--layer",
            "conv1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "none valid" in out and "no mapping fits the architecture" in out
    assert "--mapper ga" not in out and "--budget" not in out


def test_search_hint_never_suggests_the_mapper_that_ran() -> None:
    from rlmap.cli.search import search_hint

    assert "--mapper ga" not in search_hint("ga") and "--mapper ga" in search_hint("random")
    assert search_hint("optimal") == "raise --time-limit"


def test_cli_search_optimal_time_limit_and_title(capsys) -> None:
    """The optimal mapper's title shows the limit it runs under and neither budget nor seed (it uses none);
    a layer the limit stops says how far from its bound it may be."""
    rc = run(
        [
            "search",
            "--network",
            "gpt2_small",
            "--arch",
            "tpu_like",
            "--mapper",
            "optimal",
            "--time-limit",
            "0.05",
            "--layer",
            "mlp_c_fc",
            "--objective",
            "energy",
        ]
    )
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
    rc = run(
        [
            "search",
            "--network",
            "resnet18",
            "--mapper",
            "ga",
            "--budget",
            "10000000",
            "--time-limit",
            "0.5",
            "--layer",
            "conv1",
        ]
    )
    assert rc == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "objective edp, budget 10000000, time limit 0.5 s per layer, seed 0" in out
    assert "time limit 0.5 s reached: best so far" in out


def test_cli_search_bad_time_limit(capsys) -> None:
    assert run(["search", "--network", "resnet18", "--time-limit", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --time-limit:") and "\n" not in err


@pytest.mark.parametrize("mapper", ["random", "ga", "sa"])
def test_a_huge_layer_is_mapped_not_reported_unmappable(mapper) -> None:
    """K = 10^12: random tilings all overflow a buffer, but the all-DRAM mapping is valid and is returned,
    within the budget; K = 2^70 cannot be modelled (int64) and is refused when the layer is read."""
    from rlmap.spec.io import load_layer

    layer = load_layer({"name": "fc", "kind": "gemm", "K": 10**12, "C": 16, "P": 4})
    arch = load_architecture("eyeriss")
    res = get_mapper(mapper).search(layer, arch, "edp", budget=100, seed=0)
    assert res.evaluations == 100 and res.cost is not None and res.cost.valid
    # random draws all overflow, so random returns the all-DRAM fallback; GA and SA capacity-repair their
    # candidates (issue 16) and find valid mappings by search, no fallback needed
    assert res.cost.macs == 10**12 * 16 * 4 and ("fallback" in res.notes) == (mapper == "random")
    assert CostModel(layer, arch).evaluate(res.mapping).edp == res.cost.edp
    with pytest.raises(SpecError, match="less than or equal to 1099511627776"):
        load_layer({"name": "fc", "kind": "gemm", "K": 2**70, "C": 16, "P": 4})


def test_annealing_start_batch_is_bounded_for_huge_budgets() -> None:
    """2 % of --budget 10^10 was 2*10^8 genomes allocated up front (22 GiB); now at most one cost-model slice."""
    from rlmap.search.annealing import AnnealingMapper
    from rlmap.search.random_search import BudgetedEvaluator

    sa = AnnealingMapper()
    assert sa.start_batch(1000) == 20 and sa.start_batch(10) == 10  # small budgets: as before (2 %, >= 16)
    assert sa.start_batch(10**10) == BudgetedEvaluator.SLICE == 4096


def test_mapping_file_names_are_unique_and_keep_unicode(tmp_path, capsys) -> None:
    """Layers 'a b', 'a/b' and 'a_b' used to share one file and a Hangul name became '_1.yaml', while the
    summary said every mapping was written."""
    import yaml

    names = ["a b", "a/b", "a_b", "층1", "A_B"]
    net = {
        "name": "names",
        "layers": [{"name": n, "kind": "gemm", "K": 16, "C": 16, "P": 2 + i} for i, n in enumerate(names)],
    }
    (tmp_path / "names.yaml").write_text(yaml.safe_dump(net, allow_unicode=True))
    out = tmp_path / "out"
    assert (
        run(["search", "-n", str(tmp_path / "names.yaml"), "--mapper", "random", "--budget", "50", "-o", str(out)]) == 0
    )
    assert "(5 mappings)" in capsys.readouterr().out
    files = sorted(p.name for p in (out / "mappings").iterdir())
    assert files == sorted(["a_b.yaml", "a_b-2.yaml", "a_b-3.yaml", "층1.yaml", "A_B-4.yaml"])
    rows = json.loads((out / "summary.json").read_text())["layers"]
    assert [r["mapping"] for r in rows] == [
        "mappings/a_b.yaml",
        "mappings/a_b-2.yaml",
        "mappings/a_b-3.yaml",
        "mappings/층1.yaml",
        "mappings/A_B-4.yaml",
    ]
    for r in rows:  # each file holds the mapping of the layer the summary says
        assert yaml.safe_load((out / r["mapping"]).read_text())["layer"] == r["layer"]
