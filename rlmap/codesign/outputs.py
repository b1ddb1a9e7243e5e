"""What a co-design run leaves a designer: the best design as an architecture YAML, its per-layer mappings,
the Pareto front (area vs latency, energy, EDP) as CSV and PNG, and search curves (best objective vs
evaluations and vs wall time) per optimiser as PNG and TensorBoard scalars.

`verify_design` re-reads the written YAML files and re-scores every layer with the cost model, so the
numbers a run reports are the numbers `rlmap eval` / `rlmap search` will see.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.codesign.evaluate import DesignCost, layer_space
from rlmap.codesign.problem import Problem, Record
from rlmap.search.mapspace import Genome
from rlmap.spec import io
from rlmap.spec.layer import Network, layer_key


def safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_design(
    out: Path,
    problem: Problem,
    hw: np.ndarray,
    maps: list[Genome],
    cost: DesignCost,
    network: Network,
    label: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """arch.yaml, mappings/<layer>.yaml (every layer of the network), design.json; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    arch = problem.space.decode(hw, name=f"{problem.space.template.name}_{safe(label)}")
    io.save_architecture(arch, out / "arch.yaml")
    by_key = {layer_key(l): i for i, l in enumerate(problem.workload.layers)}
    rows = []
    for layer in network.layers:
        i = by_key[layer_key(layer)]
        mapping = layer_space(problem.workload.layers[i], arch).decode(maps[i])[0]
        io.save_mapping(
            mapping,
            arch,
            out / "mappings" / f"{safe(layer.name)}.yaml",
            layer,
            extra={
                "network": network.name,
                "optimizer": label,
                "objective": problem.objective,
                "energy_pj": float(cost.layer_energy[i]),
                "cycles": float(cost.layer_cycles[i]),
            },
        )
        rows.append(
            {
                "layer": layer.name,
                "repeat": layer.repeat,
                "energy_pj": float(cost.layer_energy[i]),
                "cycles": float(cost.layer_cycles[i]),
                "valid": bool(cost.layer_valid[i]),
            }
        )
    summary = {
        "optimizer": label,
        "network": network.name,
        "template": problem.space.template.name,
        "objective": problem.objective,
        "area_budget_mm2": problem.budget_mm2 if math.isfinite(problem.budget_mm2) else None,
        "area_mm2": cost.area_mm2,
        "area_parts_mm2": cost.area_parts,
        "energy_pj": cost.energy,
        "cycles": cost.cycles,
        "edp": cost.edp,
        "feasible": cost.feasible,
        "hardware": {k: _plain(v) for k, v in problem.space.values(hw).items()},
        "layers": rows,
        **(extra or {}),
    }
    (out / "design.json").write_text(json.dumps(summary, indent=2))
    return summary


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def verify_design(folder: Path, network: Network) -> tuple[float, float, bool]:
    """Re-score the written design from its files: (energy, cycles, all equal to design.json's per layer)."""
    from rlmap.model.costmodel import CostModel

    arch = io.load_architecture(str(folder / "arch.yaml"))
    summary = json.loads((folder / "design.json").read_text())
    recorded = {r["layer"]: r for r in summary["layers"]}
    energy = cycles = 0.0
    same = True
    for layer in network.layers:
        mapping, _ = io.load_mapping(folder / "mappings" / f"{safe(layer.name)}.yaml", arch)
        c = CostModel(layer, arch).evaluate(mapping)
        energy += c.energy * layer.repeat
        cycles += c.cycles * layer.repeat
        r = recorded[layer.name]
        same &= c.valid == r["valid"] and c.energy == r["energy_pj"] and c.cycles == r["cycles"]
    return energy, cycles, bool(same)


# ----------------------------------------------------------------------------- Pareto front
METRICS = (("cycles", "latency (cycles)"), ("energy", "energy (pJ)"), ("edp", "EDP (pJ x cycles)"))


def pareto_mask(area: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Points no other point beats on both area and value (ties kept once, the first)."""
    order = np.lexsort((value, area))
    keep = np.zeros(len(area), dtype=bool)
    best = math.inf
    for i in order:
        if value[i] < best:
            keep[i] = True
            best = value[i]
    return keep


def write_pareto(out: Path, runs: dict[str, Problem], budget_mm2: float) -> Path:
    """pareto.csv (every mapped design, with Pareto flags per metric) and pareto.png."""
    rows: list[tuple[str, Record]] = [(name, r) for name, p in runs.items() for r in p.history if r.mapped]
    space = next(iter(runs.values())).space
    area = np.array([r.area_mm2 for _, r in rows])
    vals = {m: np.array([getattr(r, m) if m != "edp" else r.energy * r.cycles for _, r in rows]) for m, _ in METRICS}
    flags = {m: pareto_mask(area, v) if len(rows) else np.zeros(0, bool) for m, v in vals.items()}
    path = out / "pareto.csv"
    out.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "optimizer",
                "evaluations",
                "area_mm2",
                "cycles",
                "energy_pj",
                "edp",
                "within_budget",
                *(f"pareto_{m}" for m, _ in METRICS),
                *(k.name for k in space.knobs),
            ]
        )
        for j, (name, r) in enumerate(rows):
            knobs = [_fmt_knob(v) for v in space.values(np.array(r.hw)).values()]
            w.writerow(
                [
                    name,
                    r.evaluations,
                    f"{r.area_mm2:.6g}",
                    f"{r.cycles:.10g}",
                    f"{r.energy:.10g}",
                    f"{r.energy * r.cycles:.10g}",
                    int(r.area_mm2 <= budget_mm2),
                    *(int(flags[m][j]) for m, _ in METRICS),
                    *knobs,
                ]
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (m, label) in zip(axes, METRICS):
        if len(rows):
            ax.scatter(area, vals[m], s=6, c="lightgray", label="designs scored")
            f = flags[m]
            o = np.argsort(area[f])
            ax.step(area[f][o], vals[m][f][o], where="post", color="C3", label="Pareto front")
            ax.scatter(area[f], vals[m][f], s=14, color="C3")
        if math.isfinite(budget_mm2):
            ax.axvline(budget_mm2, color="k", ls="--", lw=1, label=f"budget {budget_mm2:g} mm²")
        ax.set_xlabel("area (mm²)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        legend(ax, fontsize=7)
    fig.suptitle(f"Pareto fronts, {len(rows)} mapped designs")
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=110)
    plt.close(fig)
    return path


def legend(ax: Any, **kw: Any) -> None:
    """A legend when the axes has labelled artists (else matplotlib warns 'No artists with labels found')."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _fmt_knob(v: Any) -> str:
    if isinstance(v, tuple):
        return f"x:{''.join(v[0]) or 'any'}/y:{''.join(v[1]) or 'any'}"
    return str(v)


# ----------------------------------------------------------------------------- search curves
def write_curves(out: Path, runs: dict[str, Problem], objective: str, tensorboard: bool = True) -> Path:
    """curves.png (best objective vs evaluations and vs seconds, one line per optimiser) and TensorBoard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, p in runs.items():
        ev, sec, best = p.curve()
        ok = np.isfinite(best)
        if ok.any():
            a1.step(ev[ok], best[ok], where="post", label=name)
            a2.step(sec[ok], best[ok], where="post", label=name)
    for ax, xl in ((a1, "cost-model evaluations"), (a2, "wall time (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel(f"best feasible {objective}")
        ax.set_yscale("log")
        legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        for name, p in runs.items():
            ev, sec, best = p.curve()
            w = SummaryWriter(str(out / "tensorboard" / safe(name)))
            for e, s, b in zip(ev, sec, best):
                if math.isfinite(b):
                    w.add_scalar(f"best_{objective}/vs_evaluations", b, global_step=int(e), walltime=1e9 + s)
                    w.add_scalar(f"best_{objective}/vs_milliseconds", b, global_step=int(s * 1000))
            w.close()
    return out / "curves.png"
