"""rlmap.codesign and rlmap.hardware.area: design space, area model, evaluation, repair, optimisers, outputs, CLI."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from rlmap.cli.app import run as cli_run
from rlmap.codesign.baselines import FlatEncoding, penalised
from rlmap.codesign.digamma import merge_layers, random_maps
from rlmap.codesign.evaluate import DesignCost, Workload, evaluate_design, layer_space, overflows, repair
from rlmap.codesign.outputs import pareto_mask, verify_design, write_design
from rlmap.codesign.problem import Problem
from rlmap.codesign.runner import OPTIMIZERS, make_optimizer, run, save_checkpoint
from rlmap.codesign.space import DesignSpace, SpaceSpec, load_space, value_list
from rlmap.hardware import tech
from rlmap.hardware.area import AREA_BUDGETS, buffer_area_um2, design_area, resolve_budget
from rlmap.hardware.energy import mac_area, sram_access_energy
from rlmap.model.costmodel import CostModel
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture
from rlmap.spec.layer import Layer, Network
from rlmap.spec.problem import DIMS

TINY = Network(
    name="tiny",
    layers=[
        Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=(1, 1)),
        Layer(name="conv_b", K=16, C=8, P=8, Q=8, R=3, S=3, padding=(1, 1), repeat=2),  # same shape: merged
        Layer(name="fc", kind="gemm", K=32, C=16, P=4),
    ],
)


def edge_space() -> DesignSpace:
    return load_space(None, "envs/space/edge.yaml")


# ----------------------------------------------------------------------------- space
def test_value_lists() -> None:
    assert value_list([4, 64], "x") == [4, 8, 16, 32, 64]
    assert value_list([3, 7], "x") == [3, 6]
    assert value_list({"values": [12, 4, 4]}, "x") == [4, 12]
    for bad in ([0, 4], [8, 4], [1, 2, 3], {"values": []}, "big"):
        with pytest.raises(SpecError):
            value_list(bad, "x")


def test_default_space_brackets_the_template_and_decodes_it_back() -> None:
    tmpl = load_architecture("edge")
    ds = DesignSpace(tmpl)
    assert [k.name for k in ds.knobs] == ["array_x", "array_y", "dataflow", "SL2.capacity", "SL1.capacity"]
    assert ds.knobs[0].values == (4, 8, 16, 32, 64)  # 16 / 4 .. 16 * 4
    assert ds.knobs[4].values[0] == 32 and ds.knobs[4].values[-1] == 8192  # 512 / 16 .. 512 * 16
    g = ds.template_genes()
    arch = ds.decode(g)
    assert arch.levels[1].fanout == tmpl.levels[1].fanout
    assert [lvl.capacity for lvl in arch.levels] == [lvl.capacity for lvl in tmpl.levels]
    # the edge preset's energies were made with the same 45 nm laws (rounded in the YAML)
    for new, old in zip(arch.levels, tmpl.levels):
        assert new.read_energy == pytest.approx(old.read_energy, rel=2e-3)
    assert arch.compute.mac_energy == pytest.approx(0.315)


def test_bigger_buffer_costs_more_area_and_more_energy_per_access() -> None:
    ds = edge_space()
    g = np.zeros(ds.n_genes, dtype=np.int64)
    i = ds.index["SL2.capacity"]
    small, big = ds.decode(g), ds.decode(np.where(np.arange(ds.n_genes) == i, 3, g))
    assert big.levels[1].capacity == 8 * small.levels[1].capacity
    assert big.levels[1].read_energy > small.levels[1].read_energy
    assert big.levels[1].read_energy == pytest.approx(sram_access_energy(32768, 8))
    assert design_area(big).total_mm2 > design_area(small).total_mm2


def test_dataflow_partitioned_and_either_forms(tmp_path: Path) -> None:
    spec = SpaceSpec.model_validate(
        {
            "array": {"dataflows": [{"x": ["K"], "y": ["c", "R"]}]},
            "capacities": {"spad": {"range": [8, 64], "form": "either"}},
        }
    )
    ds = DesignSpace(load_architecture("eyeriss"), spec)
    names = [k.name for k in ds.knobs]
    assert names[3:] == [
        "spad.capacity",
        "spad.capacity.inputs",
        "spad.capacity.weights",
        "spad.capacity.outputs",
        "spad.form",
    ]
    g = np.zeros(ds.n_genes, dtype=np.int64)
    g[ds.index["spad.capacity.weights"]] = 3
    g[ds.index["spad.form"]] = 1
    arch = ds.decode(g)
    assert arch.levels[1].fanout.x_dims == ("K",) and arch.levels[1].fanout.y_dims == ("C", "R")
    assert arch.levels[2].capacity == {"inputs": 8, "weights": 64, "outputs": 8}
    g[ds.index["spad.form"]] = 0
    assert ds.decode(g).levels[2].capacity == 8


def test_space_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("template: edge\ncapacities:\n  NOPE: [4, 8]\n")
    with pytest.raises(SpecError, match="capacities.NOPE.*no level 'NOPE'"):
        load_space(None, str(bad))
    bad.write_text("template: edge\ncapacities:\n  DRAM: [4, 8]\n")
    with pytest.raises(SpecError, match="unbounded"):
        load_space(None, str(bad))
    with pytest.raises(SpecError, match="no template"):
        load_space(None, None)


# ----------------------------------------------------------------------------- area
def test_area_of_the_edge_preset_by_hand() -> None:
    def sram(words: int, bits: int) -> float:
        return words * bits * 0.346 / 0.7

    want = 256 * (282 + 36) + sram(108000, 8) + 256 * sram(512, 8)
    assert design_area(load_architecture("edge")).total_mm2 == pytest.approx(want / 1e6, rel=1e-12)
    for name, budget in AREA_BUDGETS.items():
        assert round(design_area(load_architecture(name)).total_mm2, 2) == budget


def test_small_partitions_are_register_files() -> None:
    # eyeriss spad: ifmap 12 and psum 24 words are flip-flops, the 224-word filter spad an SRAM macro
    want = (12 + 24) * 16 * tech.FLIPFLOP_UM2 + 224 * 16 * 0.346 / 0.7
    lvl = load_architecture("eyeriss").levels[2]
    from rlmap.hardware.area import level_area_um2

    assert level_area_um2(lvl) == pytest.approx(want)
    assert buffer_area_um2(64, 8) == 64 * 8 * tech.FLIPFLOP_UM2 and buffer_area_um2(65, 8) < 65 * 8 * 4.5
    assert mac_area(8) == pytest.approx(318.0)


def test_budgets() -> None:
    assert resolve_budget("edge") == 1.03 and resolve_budget(" Cloud ") == 34.47
    assert resolve_budget("2.5") == 2.5 and resolve_budget(None) == math.inf
    for bad in ("-1", "0", "huge", "inf"):
        with pytest.raises(ValueError):
            resolve_budget(bad)


# ----------------------------------------------------------------------------- evaluation and repair
def test_workload_merges_equal_layers_and_counts_repeats() -> None:
    wl = Workload.from_network(TINY)
    assert [l.name for l in wl.layers] == ["conv", "fc"] and wl.weights == (3, 1)


def test_design_totals_are_the_layer_costs_with_repeats() -> None:
    ds, wl = edge_space(), Workload.from_network(TINY)
    rng = np.random.default_rng(1)
    hw = ds.template_genes() if ds.template_genes() is not None else np.array([2, 2, 0, 4, 5])
    maps = random_maps(Problem(ds, wl), hw, rng)
    cost = evaluate_design(ds, hw, maps, wl, budget_mm2=10.0)
    arch = ds.decode(hw)
    e = c = 0.0
    for layer in TINY.layers:
        i = 0 if layer.kind == "conv" else 1
        ref = CostModel(layer, arch).evaluate_reference(layer_space(wl.layers[i], arch).decode(maps[i])[0])
        assert ref.valid
        e, c = e + ref.energy * layer.repeat, c + ref.cycles * layer.repeat
    assert cost.energy == pytest.approx(e, rel=1e-9) and cost.cycles == pytest.approx(c, rel=1e-9)
    assert cost.feasible and cost.area_mm2 == pytest.approx(design_area(arch).total_mm2)
    assert evaluate_design(ds, hw, maps, wl, budget_mm2=cost.area_mm2 / 2).objective("latency") == math.inf


def test_hardware_shrink_repair_keeps_factors_and_makes_the_mapping_valid() -> None:
    ds = edge_space()
    layer = TINY.layers[0]
    big = np.array([4, 4, 0, 8, 8])  # 64 x 64, 1 MB SL2, 4 KB SL1
    small = np.array([0, 0, 1, 0, 0])  # 4 x 4, K x C dataflow, 4 KB SL2, 16 B SL1
    rng = np.random.default_rng(0)
    ms_big = layer_space(layer, ds.decode(big))
    g = ms_big.sample(30, rng)[0]  # valid on the big design
    ms_small = layer_space(layer, ds.decode(small))
    before = ms_small.model.evaluate_batch(ms_small.decode(g)).valid
    fixed = repair(ms_small, g, rng)
    b = ms_small.decode(fixed)
    assert not before.all()  # the shrink broke some mappings ...
    assert ms_small.model.evaluate_batch(b).valid.all()  # ... repair fixed every one
    assert not overflows(ms_small, fixed).any()
    prod = (b.temporal * b.spatial_x * b.spatial_y).prod(axis=1)
    assert (prod == np.array(layer.problem_dims)).all()
    allowed = {"K": 1, "C": 1}
    sx, sy = b.spatial_x[:, 1], b.spatial_y[:, 1]
    for d, name in enumerate(DIMS):
        assert (sx[:, d] == 1).all() or name in allowed
        assert (sy[:, d] == 1).all() or name == "C"


def test_a_layer_scored_before_is_not_charged_again() -> None:
    ds, wl = edge_space(), Workload.from_network(TINY)
    p = Problem(ds, wl, "latency", 10.0, 100)
    rng = np.random.default_rng(2)
    hw = np.array([2, 2, 0, 4, 5])
    maps = random_maps(p, hw, rng)
    first = p.score(hw, maps)
    assert p.evaluations == 2
    again = p.score(hw, maps)
    assert p.evaluations == 2 and again.cycles == first.cycles and len(p.history) == 2
    other = random_maps(p, hw, rng)
    mixed = p.score(hw, [maps[0], other[1]])
    assert p.evaluations == 3
    assert mixed.cycles == evaluate_design(ds, hw, [maps[0], other[1]], wl, 10.0).cycles
    p.score(np.array([2, 2, 0, 4, 4]), maps)  # other hardware: every layer again
    assert p.evaluations == 5


def test_merge_layers_takes_the_better_mapping_per_layer() -> None:
    ds, wl = edge_space(), Workload.from_network(TINY)
    p = Problem(ds, wl, "latency")

    def mk(c: list[float], v: list[bool]) -> DesignCost:
        return DesignCost(
            1.0, float(np.dot(c, [3, 1])), float(np.dot(c, [3, 1])), np.array(v), np.array(c, float), np.array(c, float)
        )

    child, parent = mk([10.0, 5.0], [True, True]), mk([7.0, 9.0], [True, True])
    cost, maps = merge_layers(p, child, parent, ["c0", "c1"], ["p0", "p1"])  # type: ignore[arg-type]
    assert maps == ["p0", "c1"] and cost.cycles == 3 * 7 + 5
    assert merge_layers(p, parent, child, ["p0", "p1"], ["c0", "c1"]) is not None
    assert merge_layers(p, mk([1.0, 1.0], [True, True]), parent, [], []) is None  # child better everywhere
    assert merge_layers(Problem(ds, wl, "edp"), child, parent, [], []) is None  # EDP does not add up


def test_flat_encoding_round_trip_shapes_and_penalty() -> None:
    ds, wl = edge_space(), Workload.from_network(TINY)
    p = Problem(ds, wl, "latency", 1.0)
    enc = FlatEncoding(p)
    hw, maps = enc.decode(np.full(enc.n, 0.999999))
    assert (hw == ds.sizes - 1).all()
    assert all((m.slots == 3 * ds.template.n_levels - 1).all() for m in maps)
    cost = evaluate_design(ds, hw, maps, wl, 1.0)
    assert not cost.feasible and penalised(cost, "latency") >= 1e3


# ----------------------------------------------------------------------------- optimisers
def _problem(evals: int = 240, budget: float = 1.03) -> Problem:
    return Problem(edge_space(), Workload.from_network(TINY), "latency", budget, evals)


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "learned"])
def test_every_optimiser_stays_within_the_evaluation_budget(name: str) -> None:
    opt = make_optimizer(name, population=6, inner_budget=20)
    _, p = run(opt, _problem(150), seed=0)
    assert 0 < p.evaluations <= 150
    if name == "random":
        assert p.evaluations == 150 and len(p.history) == 75
    elif name != "two-loop":  # a child repeating a layer's mapping on its hardware gets it free: may end short
        assert p.evaluations >= 150 - p.per_design and len(p.history) >= 75
    ev, _, best = p.curve()
    assert (best[1:] <= best[:-1]).all() and ev[-1] == p.evaluations


def test_digamma_is_deterministic_and_beats_random_search() -> None:
    a = run(make_optimizer("digamma", population=8), _problem(400), seed=3)[1]
    b = run(make_optimizer("digamma", population=8), _problem(400), seed=3)[1]
    c = run(make_optimizer("digamma", population=8), _problem(400), seed=4)[1]
    r = run(make_optimizer("random", population=8), _problem(400), seed=3)[1]
    assert [x.hw for x in a.history] == [x.hw for x in b.history] and a.best_value == b.best_value
    assert [x.cycles for x in a.history] != [x.cycles for x in c.history]
    assert math.isfinite(a.best_value) and a.best_value < r.best_value
    assert a.best_cost.area_mm2 <= 1.03  # type: ignore[union-attr]


def test_resume_gives_the_same_run(tmp_path: Path) -> None:
    full = run(make_optimizer("digamma", population=6), _problem(300), seed=5)[1]
    # interrupted after two generations: checkpoint written by hand, as `run` does after each step
    opt, p, rng = make_optimizer("digamma", population=6), _problem(300), np.random.default_rng(5)
    ck = tmp_path / "ck.pkl"
    for _ in range(2):
        opt.step(p, rng)
    save_checkpoint(ck, opt, p, rng, {"k": 1})
    _, resumed = run(
        make_optimizer("digamma", population=6), _problem(300), seed=99, checkpoint=ck, resume=True, meta={"k": 1}
    )
    assert [x.hw for x in resumed.history] == [x.hw for x in full.history]
    assert resumed.best_value == full.best_value and resumed.evaluations == full.evaluations
    with pytest.raises(SpecError, match="different run"):
        run(make_optimizer("digamma"), _problem(300), seed=0, checkpoint=ck, resume=True, meta={"k": 2})
    assert pickle.loads(pickle.dumps(resumed)).evaluations == full.evaluations


def test_an_interrupted_checkpoint_write_leaves_no_tmp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opt, p, rng = make_optimizer("random", population=4), _problem(12), np.random.default_rng(0)
    opt.step(p, rng)
    ck = tmp_path / "random.pkl"
    save_checkpoint(ck, opt, p, rng, {"k": 1})
    good = ck.read_bytes()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ck, opt, p, rng, {"k": 1})
    assert sorted(x.name for x in tmp_path.iterdir()) == ["random.pkl"] and ck.read_bytes() == good


def test_learned_loop_maps_with_the_policy_and_reports_the_optimal_remap() -> None:
    from rlmap.rl.checkpoint import load_policy

    pol = load_policy("checkpoints/policy_eyeriss")
    opt = make_optimizer("learned", policy=pol, optimal_time_limit=5.0)
    _, p = run(opt, _problem(12), seed=0)
    assert p.evaluations == 12 and len(p.history) == 6  # greedy: one episode per layer per design, nothing more
    final = opt.finish(p)
    assert math.isfinite(final["policy_objective"])
    assert final["optimal_objective"] <= final["policy_objective"] * (1 + 1e-12)  # never worse than the policy's
    assert final["cost"].cycles == final["optimal_objective"] and final["cost"].feasible


# ----------------------------------------------------------------------------- outputs and CLI
def test_pareto_mask() -> None:
    area = np.array([1.0, 2.0, 2.0, 3.0, 0.5])
    val = np.array([5.0, 4.0, 6.0, 4.0, 9.0])
    assert pareto_mask(area, val).tolist() == [True, True, False, False, True]


def test_written_design_reproduces_exactly(tmp_path: Path) -> None:
    _, p = run(make_optimizer("digamma", population=6), _problem(120), seed=1)
    s = write_design(tmp_path, p, p.best_hw, p.best_maps, p.best_cost, TINY, "digamma")  # type: ignore[arg-type]
    e, c, same = verify_design(tmp_path, TINY)
    assert same and c == s["cycles"] == p.best_value and e == s["energy_pj"]


def test_cli_codesign_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "tiny.yaml"
    from rlmap.spec.io import save_network

    save_network(TINY, net)
    out = tmp_path / "out"
    code = cli_run(
        [
            "codesign",
            "--space",
            "envs/space/edge.yaml",
            "--network",
            str(net),
            "--area",
            "edge",
            "-O",
            "digamma,random",
            "-e",
            "120",
            "--population",
            "6",
            "-o",
            str(out),
            "--no-tensorboard",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "best design: digamma" in text
    for f in (
        "pareto.csv",
        "pareto.png",
        "curves.png",
        "best/arch.yaml",
        "best/design.json",
        "best/mappings/conv_b.yaml",
        "checkpoints/digamma.pkl",
    ):
        assert (out / f).exists(), f
    design = json.loads((out / "best" / "design.json").read_text())
    conv = next(r for r in design["layers"] if r["layer"] == "conv")
    code = cli_run(
        [
            "eval",
            "--network",
            str(net),
            "--arch",
            str(out / "best" / "arch.yaml"),
            "--mapping",
            str(out / "best" / "mappings" / "conv.yaml"),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and f"{conv['cycles']:,.0f}" in text.replace(" ", "") or f"{conv['cycles']:.6g}" in text
    # resuming the finished run changes nothing
    assert (
        cli_run(
            [
                "codesign",
                "--space",
                "envs/space/edge.yaml",
                "--network",
                str(net),
                "--area",
                "edge",
                "-O",
                "digamma",
                "-e",
                "120",
                "--population",
                "6",
                "-o",
                str(out),
                "--no-tensorboard",
                "--resume",
            ]
        )
        == 0
    )
    assert json.loads((out / "designs" / "digamma" / "design.json").read_text())["cycles"] == design["cycles"]


def test_no_feasible_design_draws_no_empty_legend(tmp_path: Path) -> None:
    import warnings

    from rlmap.codesign.outputs import write_curves, write_pareto

    _, p = run(make_optimizer("random", population=4), _problem(12, budget=1e-9), seed=0)
    assert p.best_cost is None and not any(r.feasible for r in p.history)  # nothing fits 1e-9 mm^2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        write_curves(tmp_path, {"random": p}, "latency", tensorboard=False)
        write_pareto(tmp_path, {"random": _problem(12, budget=math.inf)}, math.inf)  # no design, no budget line
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "pareto.png").stat().st_size > 0


def test_cli_codesign_resume_without_a_checkpoint_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlmap.spec.io import save_network

    net = tmp_path / "tiny.yaml"
    save_network(TINY, net)
    out = tmp_path / "cd_none"
    args = ["codesign", "--space", "envs/space/edge.yaml", "-n", str(net), "-e", "12", "--population", "4"]
    args += ["-o", str(out), "--no-tensorboard", "--resume"]
    assert cli_run([*args, "-O", "random"]) == 0
    first = capsys.readouterr().out
    assert f"{out} holds no checkpoint to resume" in " ".join(first.split()), first
    assert (out / "checkpoints" / "random.pkl").exists()
    assert cli_run([*args, "-O", "random,ga"]) == 0  # random resumes (already finished), ga starts afresh
    second = " ".join(capsys.readouterr().out.split())
    assert f"{out} holds no checkpoint for ga: starting those from the beginning" in second, second
    assert "holds no checkpoint to resume" not in second
    assert cli_run([*args, "-O", "random,ga"]) == 0  # both have checkpoints now: nothing to say
    assert "holds no checkpoint" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, where",
    [
        (["--area", "-2"], "--area"),
        (["-O", "nope"], "--optimizer"),
        (["-e", "0"], "--evaluations"),
        (["--objective", "speed"], "--objective"),
        (["--template", "nope"], "nope"),
    ],
)
def test_cli_codesign_errors_are_one_line(args: list[str], where: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_run(["codesign", "--template", "edge", *args] if "--template" not in args else ["codesign", *args])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and where in lines[0], err
