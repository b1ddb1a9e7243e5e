"""`rlmap eval`: score one mapping file with the cost model, with the per-level, per-tensor breakdown."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rlmap.cli.common import (
    MAPPING_HELP,
    SEMANTICS_HELP,
    WORKLOAD_HELP,
    check_finite_cost,
    console,
    fmt,
    load_any_mapping,
    with_semantics,
)
from rlmap.spec.errors import SpecError


def eval_cmd(
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help=MAPPING_HELP),
    layer: Optional[str] = typer.Option(
        None, "--layer", "-l", help="layer name (default: the one an rlmap file names, or the network's only layer)"
    ),
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
    check_finite_cost(cost, arch)
    from rlmap.cli.tables import energy_unit, eval_table

    unit = energy_unit(a)
    out = console()
    out.print(f"layer        {lyr.name} ({lyr.kind} {lyr.shape_str()}, groups {lyr.groups}) on {a.name}")
    out.print(f"mapping      {mapping} ({source} format), semantics {a.semantics}")
    out.print(f"MACs         {cost.macs:,}")
    out.print(f"energy       {fmt(cost.energy)} {unit}" + (f" ({fmt(cost.energy / 1e6)} µJ)" if unit == "pJ" else ""))
    out.print(f"cycles       {fmt(cost.cycles)} (compute {fmt(cost.compute_cycles)})")
    out.print(f"EDP          {fmt(cost.edp)} {unit}*cycles")
    out.print(f"utilization  {cost.utilization * 100:.2f} % of {a.num_pes:,} PEs")
    out.print(f"energy/MAC   {fmt(cost.energy / max(cost.macs, 1))} {unit}")
    t = eval_table(cost, a, out.width)
    out.print(t)
