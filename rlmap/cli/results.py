"""What a mapped network leaves in its results folder, and reading it back (for `rlmap report`).

    RESULTS/summary.json   deterministic: provenance (rlmap version, network, arch, options, layer shapes),
                           per-layer cost with the per-level / per-tensor energy breakdown, utilisation and the
                           search convergence; paths relative to RESULTS.  Two identical seeded runs write the
                           same bytes (the command line lives in run.json because -o differs between them).
    RESULTS/run.json       everything that changes between identical runs: command line, working folder,
                           timestamp, wall-clock seconds per layer and in all.
    RESULTS/mappings/*.yaml one mapping per layer (rlmap's format).

The convergence curve of a layer is stored as the steps of its best-so-far objective: [[evaluation, best], ...]
(1-based evaluation numbers, a point wherever the best improved, and the last evaluation), which is exact and
small (SearchResult.curve has one value per evaluation).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rlmap import __version__
from rlmap.cli.tables import energy_unit
from rlmap.model.costmodel import energy_by_level_tensor
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.problem import TENSORS

SUMMARY = "summary.json"
RUN = "run.json"
SCHEMA = 2


def portable_path(path: Any) -> str:
    """A path as it should be recorded: relative to the package's data (shipped checkpoints, presets) or to the
    working folder when under either, else as the user gave it."""
    p = Path(str(path))
    try:
        from rlmap.spec.io import checkpoints_dir

        roots = [checkpoints_dir().resolve().parent, Path.cwd().resolve()]
    except Exception:  # noqa: BLE001
        roots = [Path.cwd().resolve()]
    full = p.resolve() if p.exists() or p.is_absolute() else p
    for root in roots:
        try:
            return full.relative_to(root).as_posix()
        except ValueError:
            continue
    return str(path)


def curve_steps(curve: np.ndarray, evaluations: int, notes: dict[str, Any] | None = None) -> list[list[float]]:
    """Best-so-far as steps [[evaluation, best], ...]: where it improved, plus the last evaluation."""
    values = np.asarray(curve, dtype=np.float64)
    if len(values) == 0:
        return []
    at = (notes or {}).get("curve_evaluations")  # the optimal mapper: one point per chunk of tilings
    given = at is not None and len(at) == len(values)
    evals = np.asarray(at, dtype=np.int64) if given else np.arange(1, len(values) + 1)
    finite = np.isfinite(values)
    keep = finite & np.concatenate([[True], values[1:] < values[:-1]])
    steps = [[int(e), float(v)] for e, v in zip(evals[keep], values[keep])]
    last = max(int(evaluations), int(evals[-1]))
    if steps and steps[-1][0] != last:
        steps.append([last, steps[-1][1]])
    return steps


def layer_shape(layer: Any) -> dict[str, Any]:
    return {
        "kind": layer.kind,
        **{d: int(getattr(layer, d)) for d in "NKCPQRS"},
        "groups": int(layer.groups),
        "stride": list(layer.stride),
        "macs": int(layer.macs),
    }


def layer_row(layer: Any, r: Any, arch: Architecture, mapping_file: str | None) -> dict[str, Any]:
    """One layer of summary.json: shape, cost, breakdowns, convergence (no wall-clock times)."""
    row: dict[str, Any] = {
        "layer": layer.name,
        "repeat": int(layer.repeat),
        "shape": layer_shape(layer),
        "evaluations": int(r.evaluations),
    }
    c = r.cost
    if c is None:
        return {**row, "found": False, "curve": []}
    by_lt = energy_by_level_tensor(c, arch)
    row.update(
        {
            "found": True,
            "energy": float(c.energy),
            "cycles": float(c.cycles),
            "edp": float(c.edp),
            "utilization": float(c.utilization),
            "compute_cycles": float(c.compute_cycles),
            "proven_optimal": bool(r.proven_optimal),
            "energy_by_level": {
                **{lvl.name: float(e) for lvl, e in zip(arch.levels, c.level_energy)},
                "MAC": float(c.mac_energy),
            },
            "energy_by_tensor": {t: float(sum(row_[v] for row_ in by_lt)) for v, t in enumerate(TENSORS)},
            "energy_by_level_tensor": {
                lvl.name: dict(zip(TENSORS, map(float, row_))) for lvl, row_ in zip(arch.levels, by_lt)
            },
            "mapping": mapping_file,
            "curve": curve_steps(r.curve, r.evaluations, r.notes),
        }
    )
    gap = r.notes.get("gap_to_bound")
    if gap is not None:
        row["gap_to_bound"] = float(gap)
    if r.notes.get("stopped"):
        row["stopped"] = str(r.notes["stopped"])
    return row


def build_summary(res: Any, arch: Architecture, meta: dict[str, Any], mapping_files: dict[str, str]) -> dict[str, Any]:
    """summary.json's content for a NetworkResult; `mapping_files` maps layer names to paths relative to RESULTS."""
    meta = {k: (portable_path(v) if k in ("policy", "checkpoint") and v is not None else v) for k, v in meta.items()}
    return {
        "schema": SCHEMA,
        "rlmap_version": __version__,  # the one version (pyproject reads it, --version prints it)
        "network": res.network,
        "arch": res.arch,
        "objective": res.objective,
        **meta,
        "energy_unit": energy_unit(arch),
        "semantics": arch.semantics,
        "levels": [lvl.name for lvl in arch.levels],
        "tensors": list(TENSORS),
        "num_pes": int(arch.num_pes),
        "layers": [layer_row(lyr, r, arch, mapping_files.get(lyr.name)) for lyr, r in zip(res.layers, res.results)],
        "total": {
            "energy": float(res.energy),
            "cycles": float(res.cycles),
            "edp": float(res.edp),
            "macs": int(res.macs),
        },
        "run": RUN,
    }


COMMAND: list[str] = []
"""The arguments of the running `rlmap` command (set by rlmap.cli.app.run; sys.argv[1:] when empty)."""


def build_run(res: Any, args: list[str] | None = None, backend: str | None = None) -> dict[str, Any]:
    """run.json's content: how and when this result was made, where it ran (`backend`, e.g. "local (2 workers)"
    or "Ray cluster HOST:PORT (2 nodes, 4 CPUs)": the results are the same anywhere), and how long it took."""
    args = list(args if args is not None else (COMMAND or sys.argv[1:]))
    return {
        "command": shlex.join(["rlmap", *args]),
        "cwd": os.getcwd(),
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        **({"backend": backend} if backend is not None else {}),
        "seconds": round(float(res.seconds), 3),
        "layer_seconds": {lyr.name: round(float(r.seconds), 3) for lyr, r in zip(res.layers, res.results)},
    }


def write_results(output: Path, summary: dict[str, Any], run: dict[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    (output / RUN).write_text(json.dumps(run, indent=2) + "\n")


def load_results(folder: Path) -> dict[str, Any]:
    """summary.json of a results folder (or the file itself), with `run.json` under "run" when present."""
    folder = Path(folder)
    path = folder if folder.is_file() else folder / SUMMARY
    if not path.exists():
        raise SpecError(f"no {SUMMARY} here (write one with `rlmap search -o` or `rlmap map -o`)", str(folder))
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise SpecError("is not an rlmap summary (no 'layers' list)", str(path))
    if data.get("schema", 1) < SCHEMA:
        raise SpecError(
            f"was written by an older rlmap (schema {data.get('schema', 1)}) without the breakdowns the "
            f"report needs; run the search again",
            str(path),
        )
    run_path = path.parent / RUN
    if run_path.exists():
        try:
            data["run"] = json.loads(run_path.read_text())
        except (OSError, json.JSONDecodeError):
            data["run"] = {}
    else:
        data["run"] = {}
    data["_folder"] = str(path.parent)
    return data
