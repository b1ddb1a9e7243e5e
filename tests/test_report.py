"""`rlmap report`: a self-contained HTML page of several runs, rendered in headless Chromium without errors."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rlmap.cli.app import run

NET_YAML = """name: tiny2
description: three small layers
layers:
- {name: conv_a, K: 32, C: 16, P: 14, Q: 14, R: 3, S: 3, padding: [1, 1]}
- {name: conv_b, K: 64, C: 32, P: 7, Q: 7, R: 3, S: 3, padding: [1, 1], repeat: 2}
- {name: fc, kind: gemm, K: 10, C: 64, P: 1, Q: 1, R: 1, S: 1}
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def render(page: Path, png: Path, width: int = 1280, height: int = 2400) -> list[str]:
    """Screenshot `page` with headless Chromium; the console messages (errors, warnings, logs) it printed."""
    exe = chromium()
    assert exe is not None
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert png.exists(), proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    net = root / "tiny2.yaml"
    net.write_text(NET_YAML)
    out = []
    for mapper, budget in (("random", "80"), ("ga", "120"), ("sa", "120")):
        folder = root / mapper
        assert (
            run(["search", "-n", str(net), "-a", "eyeriss", "--mapper", mapper, "--budget", budget, "-o", str(folder)])
            == 0
        )
        out.append(folder)
    return out


@pytest.fixture(scope="module")
def report(runs: list[Path]) -> Path:
    page = runs[0].parent / "report.html"
    assert run(["report", *map(str, runs), "-o", str(page)]) == 0
    return page


def test_report_is_self_contained_and_compares_runs(runs: list[Path], report: Path) -> None:
    page = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "<script" not in page
    assert page.count("data:image/png;base64,") == 4  # per layer, by level, by tensor, convergence
    # the totals table shows each run's EDP over the best run's, from the summaries
    edps = {p.name: json.loads((p / "summary.json").read_text())["total"]["edp"] for p in runs}
    best = min(edps.values())
    for edp in edps.values():
        assert f"{edp / best:.3f}" in page
    assert "ga (120)" in page and "sa (120)" in page and "random (80)" in page


def test_report_renders_in_headless_chromium_without_console_errors(report: Path, tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip(
            "Chromium is not installed and could not be (.ci/run installs Debian's `chromium` package: "
            "apt-get install -y chromium)"
        )
    import matplotlib.image as mpimg

    png = tmp_path / "report.png"
    assert render(report, png) == []
    img = mpimg.imread(png)
    assert img.shape[1] == 1280 and img.shape[0] == 2400
    ink = (img[..., :3].mean(axis=2) < 0.9).mean()  # share of non-white pixels: the figures were drawn
    assert ink > 0.05, ink
    # the check can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>console.error('boom'); notDefined();</script></body></html>")
    messages = render(bad, tmp_path / "bad.png", 400, 300)
    assert any("boom" in m for m in messages) and any("notDefined" in m for m in messages)


def test_report_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert run(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no summary.json" in err


def test_report_refuses_the_same_run_twice(runs: list[Path], tmp_path: Path, capsys) -> None:
    """A folder and its own summary.json are one run: comparing it with itself is a mistake, said in one line."""
    out = tmp_path / "twice.html"
    assert run(["report", str(runs[0]), str(runs[0] / "summary.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "given twice" in err and not out.exists()


def _totals_rows(page: str) -> dict[str, list[str]]:
    """The totals table's rows, by run label (the first table of the page)."""
    table = page.split("<h2>Totals (with repeats)</h2>", 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        rows[cells[0]] = cells
    return rows


def test_report_marks_partial_runs_and_compares_only_the_same_problem(runs: list[Path], tmp_path: Path, capsys) -> None:
    """An interrupted run says so (5/15 style, not 3/3) and gets no EDP ratio; a run on another network is not
    compared with runs of tiny2 (its ratio and theirs ignore each other)."""
    cut = tmp_path / "cut"
    shutil.copytree(runs[0], cut)
    summary = json.loads((cut / "summary.json").read_text())
    summary.update(partial=True, layers_total=15)
    (cut / "summary.json").write_text(json.dumps(summary))
    other_net = tmp_path / "one.yaml"
    other_net.write_text("name: one\nlayers:\n- {name: fc, kind: gemm, K: 16, C: 8, P: 4}\n")
    other = tmp_path / "other"
    assert (
        run(["search", "-n", str(other_net), "-a", "eyeriss", "--mapper", "random", "--budget", "40", "-o", str(other)])
        == 0
    )
    page_path = tmp_path / "r.html"
    assert run(["report", str(runs[0]), str(runs[1]), str(cut), str(other), "-o", str(page_path)]) == 0
    capsys.readouterr()
    rows = _totals_rows(page_path.read_text())
    edp = {p.name: json.loads((p / "summary.json").read_text())["total"]["edp"] for p in (runs[0], runs[1], other)}
    best = min(edp["random"], edp["ga"])
    assert rows["random (80) [random]"][7:9] == [f"{edp['random'] / best:.3f}", "3/3"]
    assert rows["ga (120)"][7:9] == [f"{edp['ga'] / best:.3f}", "3/3"]
    assert rows["random (80) [cut]"][7:9] == ["-", "3/15 (partial: interrupted)"]
    assert rows["random (40)"][1] == "one" and rows["random (40)"][7:9] == ["-", "1/1"]
