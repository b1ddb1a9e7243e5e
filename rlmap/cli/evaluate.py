"""`rlmap eval`: score one mapping file with the cost model, with the per-level, per-tensor breakdown."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from rlmap.cli.common import TENSOR_SHORT, console, fmt, fmt_int, load_any_mapping, with_semantics
from rlmap.cli.common import MAPPING_HELP, SEMANTICS_HELP, WORKLOAD_HELP
from rlmap.spec.errors import SpecError
from rlmap.spec.problem import TENSORS


def eval_cmd(
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help=MAPPING_HELP),
    layer: Optional[str] = typer.Option(None, "--layer", "-l",
                                        help="layer name (default: the one an rlmap file names, or the network's only layer)"),
    semantics: Optional[str] = typer.Option(None, "--semantics", help=SEMANTICS_HELP),
    workload: Optional[Path] = typer.Option(None, "--workload", help=WORKLOAD_HELP),
) -> None:
    """Score one mapping with the analytical cost model: energy, cycles, EDP and per-level accesses."""
    from rlmap.model.costmodel import CostModel

    lyr, a, m, source = load_any_mapping(network, arch, mapping, layer, workload)
    a = with_semantics(a, semantics)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    out = console()
    out.print(f"layer        {lyr.name} ({lyr.kind} {lyr.shape_str()}, groups {lyr.groups}) on {a.name}")
    out.print(f"mapping      {mapping} ({source} format), semantics {a.semantics}")
    out.print(f"MACs         {cost.macs:,}")
    out.print(f"energy       {fmt(cost.energy)} pJ ({fmt(cost.energy / 1e6)} µJ)")
    out.print(f"cycles       {fmt(cost.cycles)} (compute {fmt(cost.compute_cycles)})")
    out.print(f"EDP          {fmt(cost.edp)} pJ*cycles")
    out.print(f"utilization  {cost.utilization * 100:.2f} % of {a.num_pes:,} PEs")
    out.print(f"energy/MAC   {fmt(cost.energy / max(cost.macs, 1))} pJ")
    t = Table(title="accesses (words of each level) and energy", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("level")
    for v in TENSORS:
        t.add_column(f"{TENSOR_SHORT[v]} reads", justify="right")
        t.add_column(f"{TENSOR_SHORT[v]} writes", justify="right")
    t.add_column("energy pJ", justify="right")
    t.add_column("share", justify="right")
    t.add_column("cycles (bw)", justify="right")
    total = cost.energy if cost.energy > 0 else 1.0
    for i, lvl in enumerate(a.levels):
        cells = []
        for v in range(len(TENSORS)):
            kept = TENSORS[v] in lvl.keeps
            cells += [fmt_int(cost.reads[i][v]) if kept else "-", fmt_int(cost.writes[i][v]) if kept else "-"]
        cyc = cost.level_cycles[i] if i < len(cost.level_cycles) else 0.0
        t.add_row(lvl.name, *cells, fmt(cost.level_energy[i]), f"{cost.level_energy[i] / total * 100:.1f}%",
                  fmt(cyc) if lvl.bandwidth is not None else "-")
    t.add_row("MAC", *([""] * 6), fmt(cost.mac_energy), f"{cost.mac_energy / total * 100:.1f}%",
              fmt(cost.compute_cycles))
    t.add_row("total", *([""] * 6), fmt(cost.energy), "100.0%", fmt(cost.cycles))
    out.print(t)

