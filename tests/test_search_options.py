"""`rlmap search` options of issue 16: --mapper marvel, warm-start (default on for a network, file across
runs), --densities with its report; bad values are one-line errors with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rlmap.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_marvel_and_warm_start_on_a_network(tmp_path):
    out = tmp_path / "o"
    buf = tmp_path / "buf.json"
    r = invoke(
        "search",
        "-n",
        "bert_base",
        "-a",
        "eyeriss",
        "--mapper",
        "marvel",
        "--budget",
        "60",
        "--warm-start-file",
        str(buf),
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert "warm-started" in r.output
    entries = json.loads(buf.read_text())["entries"]
    assert len(entries) == 5  # bert_base has 5 distinct layers
    cold = invoke("search", "-n", "bert_base", "-a", "eyeriss", "--mapper", "ga", "--budget", "60", "--no-warm-start")
    assert cold.exit_code == 0 and "warm-started" not in cold.output
    one = invoke("search", "-n", "bert_base", "-a", "eyeriss", "--budget", "60", "--layer", "attn_out")
    assert one.exit_code == 0 and "warm-started" not in one.output  # one layer: cold unless asked


def test_densities_report_and_errors():
    r = invoke(
        "search",
        "-n",
        "resnet50_sparse",
        "-a",
        "sparse_eyeriss",
        "--layer",
        "layer2.0.conv1",
        "--budget",
        "300",
        "--densities",
        "0.2,0.5,1.0",
    )
    assert r.exit_code == 0, r.output
    assert "robust" in r.output and "single" in r.output
    for args, where in (
        (("--densities", "0,1"), "--densities"),
        (("--densities", "0.5", "--robust", "best"), "--robust"),
        (("--densities", "0.5", "--mapper", "optimal"), "--mapper"),
        (("--no-warm-start", "--warm-start-file", "x.json"), "--warm-start-file"),
    ):
        bad = invoke("search", "-n", "resnet18", "--budget", "10", *args)
        assert bad.exit_code == 2 and where in bad.output and "Traceback" not in bad.output, bad.output


def test_optimal_placement_option_searches_a_superset(tmp_path):
    """`--placement` (optimal only) searches per-tensor placements: a superset of the plain space, so its proven
    optimum is never worse; the summary says the option was used; other mappers refuse it in one line."""
    runs = {}
    for flag in ((), ("--placement",)):
        out = tmp_path / ("placed" if flag else "plain")
        r = invoke(
            "search",
            "-n",
            "resnet18",
            "-a",
            "eyeriss",
            "--mapper",
            "optimal",
            "--layer",
            "fc",
            "--time-limit",
            "60",
            *flag,
            "-o",
            str(out),
        )
        assert r.exit_code == 0, r.output
        runs[bool(flag)] = json.loads((out / "summary.json").read_text())
    assert runs[True]["placement"] is True and "placement" not in runs[False]
    assert all(s["layers"][0]["proven_optimal"] for s in runs.values())
    assert runs[True]["total"]["edp"] <= runs[False]["total"]["edp"]
    bad = invoke("search", "-n", "resnet18", "--mapper", "ga", "--placement")
    assert bad.exit_code == 2 and "--placement" in bad.output
