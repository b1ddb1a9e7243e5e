"""Output people look at (issue 18): progress when piped, 80-column tables, reproducible summary.json with
provenance, help text, energy units and MAC counts."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from rlmap.cli.app import run
from rlmap.search.driver import map_network
from rlmap.spec.io import agents_dir, checkpoints_dir, load_architecture, load_network

LONG = "encoder.block_with_a_really_long_name.attention.output_projection"
NET_YAML = f"""name: tiny
description: two small layers, one with a long name
layers:
- name: {LONG}
  K: 32
  C: 16
  P: 14
  Q: 14
  R: 3
  S: 3
  padding: [1, 1]
- name: fc
  kind: gemm
  K: 10
  C: 32
  P: 1
  Q: 1
  R: 1
  S: 1
  repeat: 2
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(NET_YAML)
    return p


# ----------------------------------------------------------------------------- numbers and units
def test_eng_keeps_four_significant_digits_and_fits() -> None:
    from rlmap.cli.tables import eng

    assert eng(862_746_074) == "862.7M"
    assert eng(2.41123e17) == "241.1P"
    assert eng(999_960) == "1M"  # rounds up into the next prefix, not "1000k"
    assert eng(0.53571234) == "0.5357"
    assert eng(float("inf")) == "inf"
    for x in (1.0, 12.5, 9.999e5, 3.3e9, 7.7e14, 1.2e20):
        assert len(eng(x)) <= 9 and float(eng(x).rstrip("kMGTPE").replace("e+", "e")) > 0


def test_mac_counts_never_round_to_zero() -> None:
    from rlmap.cli.tables import count

    assert count(3_136, "MACs") == "3,136 MACs"
    assert count(23_590_000, "MACs") == "23.59 MMACs"
    assert count(1_814_073_344, "MACs") == "1.814 GMACs"


def test_list_and_show_print_mac_counts_that_fit_small_models(tiny: Path, capsys) -> None:
    assert run(["show", "network", str(tiny)]) == 0
    out = capsys.readouterr().out
    macs = 32 * 16 * 14 * 14 * 9 + 2 * 10 * 32
    assert f"{macs:,} MACs = 903.8 kMACs" in out and "0.000" not in out
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    assert "0.000" not in out and "1.814 GMACs" in out  # resnet18
    from rlmap.spec.io import list_generated

    assert list_generated() and ", ".join(list_generated()) in out  # the held-out generated set, loadable by name


def test_energy_unit_of_normalized_presets_is_not_pj(capsys) -> None:
    assert load_architecture("eyeriss").energy_unit == "MAC-eq"
    assert load_architecture("simba").energy_unit == "pJ"
    assert run(["search", "-n", "resnet18", "-a", "eyeriss", "--mapper", "random", "--budget", "30", "-l", "fc"]) == 0
    out = capsys.readouterr().out
    assert "MAC-eq" in out and "pJ" not in out


# ----------------------------------------------------------------------------- progress
def test_plain_progress_prints_periodic_lines() -> None:
    from rlmap.search.progress import PlainProgress

    buf = io.StringIO()
    with PlainProgress(stream=buf, interval=0.05) as bar:
        task = bar.add_task("ga on tiny", total=4, info="")
        bar.update(task, advance=3, info="300 evaluations; conv: best edp 1.5e+09")
        time.sleep(0.4)
        bar.advance(task)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 3  # several heartbeats while the work ran, then the final line
    assert "3/4 (75%)" in lines[0] and "300 evaluations" in lines[0] and "running" in lines[0]
    assert lines[-1].startswith("ga on tiny: 4/4 (100%), done in")


def test_progress_bar_is_rich_on_a_terminal_and_plain_when_piped() -> None:
    """The one progress factory that search, training and the surrogate workflow share."""
    from rich.progress import Progress, TimeRemainingColumn

    from rlmap.search.progress import PlainProgress, progress_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped = io.StringIO()
    assert isinstance(progress_bar(stream=piped), PlainProgress)
    assert progress_bar(stream=piped).stream is piped
    plain = progress_bar(stream=Tty())
    assert isinstance(plain, Progress)
    assert not any(isinstance(c, TimeRemainingColumn) for c in plain.columns)
    timed = progress_bar(stream=Tty(), remaining=True, bar_width=24)
    assert sum(isinstance(c, TimeRemainingColumn) for c in timed.columns) == 1
    silent = progress_bar(stream=Tty(), enabled=False)
    assert isinstance(silent, PlainProgress) and not silent.enabled


def test_piped_search_reports_progress_on_stderr(tiny: Path, capsys) -> None:
    assert run(["search", "-n", str(tiny), "-a", "eyeriss", "--mapper", "random", "--budget", "40"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"random on tiny: fc: 2/2 \(100%\), done in \d+ s, 80 evaluations; finished fc: best edp", err), (
        err
    )


# ----------------------------------------------------------------------------- tables
def test_network_table_fits_80_columns_without_cutting_numbers(tiny: Path) -> None:
    from rlmap.cli.tables import eng, network_table

    net = load_network(str(tiny))
    arch = load_architecture("eyeriss")
    res = map_network(net, arch, "random", "edp", budget=60, seed=0, progress=False)
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(network_table(res, arch.energy_unit))
    text = buf.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for r in res.results:
        for v in (r.cost.energy, r.cost.cycles, r.cost.edp):
            assert eng(v) in text
    body = text[text.index("━") :].splitlines()[1:]
    assert LONG in "".join(line.split()[0] for line in body if line.split())  # folded over lines, not cut


def test_piped_output_is_not_padded(tiny: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert run(["search", "-n", str(tiny), "-a", "eyeriss", "--mapper", "random", "--budget", "30"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line == line.rstrip() for line in lines)
    assert max(map(len, lines)) < 160
    assert any(LONG in line for line in lines)  # piped: the whole name on one line


def test_eval_table_fits_80_columns(tmp_path: Path, capsys, monkeypatch) -> None:
    assert (
        run(
            [
                "search",
                "-n",
                "resnet18",
                "-a",
                "eyeriss",
                "--mapper",
                "ga",
                "--budget",
                "100",
                "-l",
                "layer2.0.conv1",
                "-o",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert (
        run(["eval", "-n", "resnet18", "-a", "eyeriss", "-m", str(tmp_path / "r" / "mappings" / "layer2.0.conv1.yaml")])
        == 0
    )
    out = capsys.readouterr().out
    table = out[out.index("accesses") :]
    assert "…" not in table and max(len(line) for line in table.splitlines()) <= 80
    assert re.search(r"total\s+\S+\s+100\.0\s+\S+", table)


# ----------------------------------------------------------------------------- summary.json
def test_identical_seeded_runs_write_identical_summaries(tiny: Path, tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        assert (
            run(
                [
                    "search",
                    "-n",
                    str(tiny),
                    "-a",
                    "eyeriss",
                    "--mapper",
                    "ga",
                    "--budget",
                    "60",
                    "--seed",
                    "3",
                    "-o",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    capsys.readouterr()
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    for f in sorted((a / "mappings").iterdir()):
        assert f.read_bytes() == (b / "mappings" / f.name).read_bytes()
    s = json.loads((a / "summary.json").read_text())
    run_a = json.loads((a / "run.json").read_text())
    assert s["rlmap_version"] and s["run"] == "run.json" and s["energy_unit"] == "MAC-eq"
    assert str(tmp_path) not in (a / "summary.json").read_text()  # no absolute paths
    assert run_a["command"].startswith("rlmap search") and "--seed 3" in run_a["command"]
    assert run_a["backend"] == "local (1 worker)"
    for row_ in s["layers"]:  # each mapping file names its energy in the preset's unit, as the summary does
        m = yaml.safe_load((a / row_["mapping"]).read_text())
        assert m["energy"] == row_["energy"] and m["energy_unit"] == "MAC-eq" and "energy_pj" not in m
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", run_a["timestamp"]) and run_a["seconds"] >= 0
    row = s["layers"][0]
    assert row["shape"] == {
        "kind": "conv",
        "N": 1,
        "K": 32,
        "C": 16,
        "P": 14,
        "Q": 14,
        "R": 3,
        "S": 3,
        "groups": 1,
        "stride": [1, 1],
        "macs": 32 * 16 * 14 * 14 * 9,
    }
    assert (a / row["mapping"]).exists() and not Path(row["mapping"]).is_absolute()
    # breakdowns add up to the layer's energy; the convergence curve ends at the best, after every evaluation
    assert sum(row["energy_by_level"].values()) == pytest.approx(row["energy"], rel=1e-9)
    mac = row["energy_by_level"]["MAC"]
    assert sum(row["energy_by_tensor"].values()) + mac == pytest.approx(row["energy"], rel=1e-9)
    for lvl, parts in row["energy_by_level_tensor"].items():
        assert sum(parts.values()) == pytest.approx(row["energy_by_level"][lvl], rel=1e-9)
    assert row["curve"][-1] == [row["evaluations"], pytest.approx(row["edp"])]
    assert all(y2 < y1 for (_, y1), (_, y2) in zip(row["curve"][:-2], row["curve"][1:-1]))


def test_curve_steps_and_portable_paths() -> None:
    import numpy as np

    from rlmap.cli.results import curve_steps, portable_path

    inf = float("inf")
    assert curve_steps(np.array([inf, 5.0, 5.0, 3.0, 3.0]), 5) == [[2, 5.0], [4, 3.0], [5, 3.0]]
    assert curve_steps(np.array([4.0, 2.0]), 9, {"curve_evaluations": [100, 900]}) == [[100, 4.0], [900, 2.0]]
    assert portable_path(checkpoints_dir() / "policy_eyeriss") == "checkpoints/policy_eyeriss"


def test_old_summaries_are_refused_by_report_with_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"network": "x", "layers": []}))
    assert run(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "older rlmap" in err


# ----------------------------------------------------------------------------- help text
def test_help_texts(capsys) -> None:
    assert run(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "default: 1,000,000; on --resume: the run's" in out.replace("│ ", "").replace(" │", "")
    flat = re.sub(r"[│\s]+", "", out)
    for name in sorted(p.stem for p in agents_dir().glob("*.yaml")):
        assert name.replace("_", "") in flat.replace("_", ""), name
    from typer.testing import CliRunner

    from rlmap.cli.surrogate import surrogate_app

    out = CliRunner().invoke(surrogate_app, ["eval", "--help"], terminal_width=80).output
    assert str(checkpoints_dir()) not in out and "/" + checkpoints_dir().name not in out
    assert "shipped eyeriss surrogate" in " ".join(re.sub(r"[│]", " ", out).split())


@pytest.mark.parametrize(
    ("command", "cap"),
    [(["search"], "-j"), (["surrogate", "dataset"], "--workers"), (["codesign"], "-j"), (["train"], "-j")],
)
def test_ray_help_names_the_extra_and_the_option_that_caps_tasks(command: list[str], cap: str, capsys) -> None:
    """`[ray]` is rich markup unless escaped: the help once said "pip install 'rlmap'"."""
    assert run([*command, "--help"]) == 0
    flat = re.sub(r"[│\s]+", "", capsys.readouterr().out)
    assert "pipinstall'rlmap[ray]'" in flat and f"({cap}thencapsthetasksinflight" in flat


@pytest.mark.parametrize(
    ("command", "bounds"),
    [
        (["generate"], ["1to10,000"]),
        (["codesign"], ["atmost1,000,000", "atmost10,000"]),
        (["analyze"], ["atmost100,000", "atmost1,000,000"]),
    ],
)
def test_help_states_the_bounds_that_are_enforced(command: list[str], bounds: list[str], capsys) -> None:
    """The caps the commands refuse beyond are in their --help, and are the ones the code enforces."""
    from rlmap.cli import analyze, generate
    from rlmap.codesign import problem

    assert (generate.MAX_COUNT, problem.MAX_EVALUATIONS, problem.MAX_POPULATION) == (10_000, 1_000_000, 10_000)
    assert (analyze.MAX_SAMPLES, analyze.MAX_CURVE_BUDGET) == (100_000, 1_000_000)
    assert run([*command, "--help"]) == 0
    flat = re.sub(r"[│\s]+", "", capsys.readouterr().out)
    for b in bounds:
        assert b in flat, (b, flat)
