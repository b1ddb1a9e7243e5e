"""benchmarks/mapper_comparison.py on the execution backend: the same figures with -j 1 and -j 2 (only the
wall-clock fields may differ), on a tiny case run as the script itself."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "mapper_comparison.py"
TIME_FIELDS = {"seconds"}


def _run(out: Path, processes: int) -> dict:
    args = [
        sys.executable,
        str(SCRIPT),
        "--parts",
        "comparison",
        "--networks",
        "resnet18",
        "--mappers",
        "random,ga",
        "--budgets",
        "30",
        "--max-layers",
        "2",
        "--optimal-time",
        "5",
        "--no-policy",
        "--out",
        str(out),
        "-j",
        str(processes),
    ]
    proc = subprocess.run(args, cwd=out.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "time s: wall clock of each network run" in proc.stdout, proc.stdout
    assert (out / "mapper_comparison.png").exists()
    return json.loads((out / "mapper_comparison_comparison.json").read_text())


def _figures(res: dict) -> dict:
    """Everything but the wall-clock times and the run's own options."""
    return {
        "comparison": [{k: v for k, v in row.items() if k not in TIME_FIELDS} for row in res["comparison"]],
        "references": [{k: v for k, v in ref.items() if k not in TIME_FIELDS} for ref in res["references"]],
    }


def test_mapper_comparison_same_figures_with_one_or_two_processes(tmp_path: Path) -> None:
    one, two = _run(tmp_path / "j1", 1), _run(tmp_path / "j2", 2)
    assert one["args"]["processes"] == 1 and two["args"]["processes"] == 2
    assert _figures(one) == _figures(two)
    rows = one["comparison"]
    assert [(r["mapper"], r["budget"]) for r in rows] == [
        ("random", 30),
        ("random warm", 30),
        ("ga", 30),
        ("ga warm", 30),
    ]
    for row in rows:
        assert row["layers"] == 2
        # the reference is the optimum or the best EDP any run found: no run beats it
        for key in ("edp_over_ref_geomean", "edp_over_ref_worst"):
            assert math.isfinite(row[key]) and row[key] >= 1 - 1e-9, row
        assert row["evals_to_1.05x_geomean"] >= 1
    assert len(one["references"]) == 2
    # figures are backend-independent only where the time-limited optimal mapper proved its optimum
    assert all(ref["proven"] for ref in one["references"]), one["references"]
    assert all(math.isfinite(ref["edp"]) and ref["edp"] > 0 for ref in one["references"])
