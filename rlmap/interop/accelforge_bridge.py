"""Run AccelForge on rlmap mappings, in AccelForge's own interpreter (rlmap never imports AccelForge).

AccelForge needs Python 3.12 and lives in its own virtual environment.  `find_accelforge_python` looks for
its interpreter in $RLMAP_ACCELFORGE_PYTHON, then in the checkout's `.venv-accelforge/bin/python` (what
`.ci/run` creates: `python3.12 -m venv .venv-accelforge && .venv-accelforge/bin/pip install
accelforge==1.0.467`).  `evaluate_in_accelforge` exports each (layer, architecture, mapping) with
`to_accelforge`, evaluates the whole batch in ONE subprocess running rlmap/interop/accelforge_worker.py,
and reads AccelForge's per-component, per-tensor actions back onto rlmap's levels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlmap.interop.export import AF_TENSOR, af_memories, dump_yaml, to_accelforge
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.io import repo_dir
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import N_TENSORS, TENSORS

ACCELFORGE_VERSION = "1.0.467"
"""The AccelForge release the exporter and tests/data/accelforge_reference.json were checked against."""
ENV_VAR = "RLMAP_ACCELFORGE_PYTHON"
WORKER = Path(__file__).with_name("accelforge_worker.py")


def find_accelforge_python() -> Path | None:
    """AccelForge's interpreter: $RLMAP_ACCELFORGE_PYTHON, else `.venv-accelforge/bin/python` in the checkout."""
    env = os.environ.get(ENV_VAR)
    candidates = [Path(env)] if env else []
    candidates.append(repo_dir() / ".venv-accelforge" / "bin" / "python")
    for path in candidates:
        if path.exists():
            return path
    return None


def unavailable_reason(python: Path | None = None) -> str | None:
    """None if AccelForge can be run, else why not (one line, for messages and test skips)."""
    python = python or find_accelforge_python()
    if python is None:
        return (
            f"AccelForge not found: set {ENV_VAR} to its Python 3.12 interpreter or create "
            f".venv-accelforge (python3.12 -m venv .venv-accelforge && .venv-accelforge/bin/pip install "
            f"accelforge=={ACCELFORGE_VERSION})"
        )
    try:
        out = subprocess.run(
            [str(python), "-c", "from importlib.metadata import version; print(version('accelforge'))"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} does not run: {exc}"
    if out.returncode != 0:
        return f"{python} cannot import accelforge: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


@dataclass
class AFResult:
    """AccelForge's evaluation of one mapping, on rlmap's levels: accesses in words of each level [level][tensor]."""

    ok: bool
    error: str = ""
    energy: float = float("nan")
    cycles: float = float("nan")
    reads: list[list[float]] = field(default_factory=list)
    writes: list[list[float]] = field(default_factory=list)
    level_cycles: dict[str, float] = field(default_factory=dict)  # AccelForge component -> its latency, cycles
    load_s: float = float("nan")
    eval_s: float = float("nan")
    eval_cpu_s: float = float("nan")


def job_for(layer: Layer, arch: Architecture, mapping: Mapping, repeat: int = 1) -> dict:
    """The worker's input for one mapping: the three exported YAML files as text."""
    docs = to_accelforge(layer, arch, mapping)
    return {stem: dump_yaml(doc) for stem, doc in docs.items()} | {"repeat": repeat}


def run_accelforge(
    jobs: Sequence[dict], python: Path | None = None, timeout: float | None = None
) -> tuple[str, list[dict]]:
    """Evaluate the jobs in one AccelForge subprocess; returns (AccelForge version, raw results)."""
    python = python or find_accelforge_python()
    why = unavailable_reason(python)
    if why:
        raise SpecError(why, "accelforge")
    proc = subprocess.run(
        [str(python), str(WORKER)],
        input=json.dumps({"jobs": list(jobs)}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(f"the AccelForge worker failed (exit {proc.returncode}): {tail}", "accelforge")
    out = json.loads(proc.stdout)
    return out["accelforge"], out["results"]


def read_result(raw: dict, arch: Architecture) -> AFResult:
    """Fold AccelForge's (component, tensor, action) counts onto rlmap's levels (partitioned memories summed)."""
    if not raw.get("ok"):
        return AFResult(ok=False, error=raw.get("error", "unknown error"))
    level_of = {comp: lvl for comp, lvl, _ in af_memories(arch)}
    tensor_of = {name: TENSORS.index(t) for t, name in AF_TENSOR.items()}
    reads = [[0.0] * N_TENSORS for _ in range(arch.n_levels)]
    writes = [[0.0] * N_TENSORS for _ in range(arch.n_levels)]
    for comp, tensor, action, count in raw["actions"]:
        if comp not in level_of or tensor not in tensor_of:
            continue  # the MAC's compute actions
        target = reads if action == "read" else writes if action == "write" else None
        if target is not None:
            target[level_of[comp]][tensor_of[tensor]] += count
    hz = arch.clock_ghz * 1e9
    return AFResult(
        ok=True,
        energy=raw["energy"],
        cycles=raw["latency"] * hz,
        reads=reads,
        writes=writes,
        level_cycles={c: t * hz for c, t in raw.get("latency_per_component", {}).items()},
        load_s=raw.get("load_s", float("nan")),
        eval_s=raw.get("eval_s", float("nan")),
        eval_cpu_s=raw.get("eval_cpu_s", float("nan")),
    )


def evaluate_in_accelforge(
    cases: Sequence[tuple[Layer, Architecture, Mapping]],
    repeat: int | Sequence[int] = 1,
    python: Path | None = None,
    timeout: float | None = None,
) -> tuple[str, list[AFResult]]:
    """Export and evaluate every (layer, architecture, mapping) in one AccelForge run.

    `repeat` (one number, or one per case) times that many evaluations of the loaded spec (`AFResult.eval_s`
    is their median).  Returns (AccelForge version, one AFResult per case).  A mapping AccelForge rejects
    comes back with ok=False and its error; a missing AccelForge raises SpecError (see `unavailable_reason`).
    """
    repeats = [repeat] * len(cases) if isinstance(repeat, int) else list(repeat)
    jobs = [job_for(layer, arch, m, n) for (layer, arch, m), n in zip(cases, repeats)]
    version, raw = run_accelforge(jobs, python, timeout)
    return version, [read_result(r, arch) for r, (_, arch, _) in zip(raw, cases)]


if __name__ == "__main__":  # pragma: no cover - a quick manual check: python -m rlmap.interop.accelforge_bridge
    print(unavailable_reason() or f"AccelForge at {find_accelforge_python()}", file=sys.stderr)
