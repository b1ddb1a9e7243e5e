"""`rlmap import` (a PyTorch model -> network YAML), `rlmap export` (a mapping -> Timeloop / AccelForge files) and
`rlmap import-mapping` (a Timeloop / AccelForge mapping -> rlmap's mapping YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from rlmap.cli.common import (
    MAPPING_HELP,
    SEMANTICS_HELP,
    WORKLOAD_HELP,
    check_finite_cost,
    check_output_dir,
    check_output_file,
    console,
    gmacs,
    load_any_mapping,
    mapping_problem,
    with_semantics,
)
from rlmap.cli.common import fmt as fmt_num
from rlmap.cli.tables import energy_unit
from rlmap.spec import io
from rlmap.spec.errors import SpecError
from rlmap.spec.problem import DIMS


def import_cmd(
    spec: str = typer.Argument(
        ..., metavar="MODEL.py:BUILD_FN", help="Python file and the function that returns the model"
    ),
    input_shape: str = typer.Option(..., "--input-shape", help="example input shape, e.g. 1,3,224,224"),
    output: Path = typer.Option(..., "-o", "--output", help="network YAML file to write"),
    name: Optional[str] = typer.Option(None, "--name", help="network name (default: the file's stem)"),
) -> None:
    """Trace a PyTorch model with torch.fx and write its conv / linear / matmul layers as a network YAML."""
    from rlmap.interop.pytorch import (  # torch: only when needed
        import_module,
        load_builder,
        parse_input_shape,
    )

    try:
        shape = parse_input_shape(input_shape)
    except SpecError as exc:
        raise SpecError(exc.message, exc.where or "--input-shape") from None
    check_output_file(output)
    builder = load_builder(spec)
    path_str = spec.rpartition(":")[0]
    try:
        model = builder()
    except Exception as exc:  # user code
        raise SpecError(f"calling {spec.rpartition(':')[2]}() failed: {type(exc).__name__}: {exc}", path_str) from None
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise SpecError(
            f"{spec.rpartition(':')[2]}() returned a {type(model).__name__}, not a torch.nn.Module", path_str
        )
    try:
        example = torch.zeros(shape)
    except (RuntimeError, MemoryError) as exc:  # not enough memory for the example input
        raise SpecError(
            f"cannot allocate an input of shape {shape}: {str(exc).splitlines()[0]}", "--input-shape"
        ) from None
    result = import_module(model.eval(), example, name or Path(path_str).stem)
    io.save_network(result.network, output)
    out = console()
    net = result.network
    t = Table(
        title=f"{net.name}: {len(net.layers)} layers, {gmacs(net.macs)}", box=box.SIMPLE_HEAVY, title_justify="left"
    )
    for col in ("layer", "kind", "N", "K", "C", "P", "Q", "R", "S", "groups", "stride", "MACs"):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for l in net.layers:
        t.add_row(
            l.name,
            l.kind,
            *(str(getattr(l, d)) for d in "NKCPQRS"),
            str(l.groups),
            "x".join(map(str, l.stride)),
            f"{l.macs:,}",
        )
    out.print(t)
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} operators (no MACs or unsupported):")
        for node, why in result.skipped:
            out.print(f"  {node}: {why}", markup=False)
    else:
        out.print("skipped operators: none")
    out.print(f"wrote {output}")


def export_cmd(
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help=MAPPING_HELP),
    fmt: str = typer.Option(..., "--format", "-f", help="timeloop or accelforge"),
    output: Path = typer.Option(..., "-o", "--output", help="directory to write the files into"),
    layer: Optional[str] = typer.Option(
        None, "--layer", "-l", help="layer name (default: the one an rlmap file names, or the network's only layer)"
    ),
) -> None:
    """Write a mapping (with its problem and architecture) as Timeloop or AccelForge input files.

    AccelForge evaluates the files to rlmap's numbers under `semantics: accelforge`, printed after export.
    """
    from rlmap.interop import export
    from rlmap.model.costmodel import CostModel

    key = fmt.strip().lower()
    if key not in export.FORMATS:
        raise SpecError(f"unknown format {fmt!r} (expected one of {', '.join(export.FORMATS)})", "--format")
    check_output_dir(output)
    lyr, a, m = mapping_problem(network, arch, mapping, layer)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    try:
        paths = export.export(key, lyr, a, m, output)
    except SpecError as exc:  # a refusal names the mapping file and the format it cannot be written in
        raise SpecError(exc.message, exc.where or f"{mapping} (--format {key})") from None
    out = console()
    out.print(f"exported layer {lyr.name} on {a.name} for {key}:")
    for p in paths:
        out.print(f"  {p}")
    for note in export.export_notes(key, lyr, a):
        out.print(f"note: {note}")
    if key == "accelforge":
        af = CostModel(lyr, with_semantics(a, "accelforge")).evaluate(m)
        out.print(
            f"rlmap under accelforge semantics (what AccelForge computes for these files): energy "
            f"{fmt_num(af.energy)} {energy_unit(a)}, cycles {fmt_num(af.cycles)}"
        )


def import_mapping_cmd(
    mapping: Path = typer.Argument(..., metavar="FILE", help="Timeloop or AccelForge mapping YAML (or rlmap's own)"),
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="layer name (default: the network's only layer)"),
    workload: Optional[Path] = typer.Option(None, "--workload", help=WORKLOAD_HELP),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="rlmap mapping YAML to write (default: print it)"
    ),
    semantics: Optional[str] = typer.Option(None, "--semantics", help=SEMANTICS_HELP),
) -> None:
    """Convert a Timeloop or AccelForge mapping into rlmap's mapping YAML, or say precisely what rlmap cannot express.

    The format is detected; the mapping is checked against the layer and the architecture and scored.
    """
    from rlmap.interop.export import dump_yaml
    from rlmap.model.costmodel import CostModel

    check_output_file(output)
    lyr, a, m, source = load_any_mapping(network, arch, mapping, layer, workload)
    a = with_semantics(a, semantics)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    check_finite_cost(cost, arch)
    out = console(stderr=output is None)
    out.print(f"read {mapping} ({source} format) for layer {lyr.name} on {a.name}")
    for lvl, level in enumerate(a.levels):
        parts = [
            f"{kind} " + " ".join(f"{d}{f}" for d, f in row.items())
            for kind, row in (
                ("T", _row(m.temporal[lvl])),
                ("X", _row(m.spatial_x[lvl])),
                ("Y", _row(m.spatial_y[lvl])),
            )
            if row
        ]
        order = "".join(DIMS[d] for d in m.order[lvl] if m.temporal[lvl][d] > 1)
        out.print(f"  {level.name:12s} {'  '.join(parts) or '-'}" + (f"  (order {order})" if len(order) > 1 else ""))
    out.print(
        f"energy {fmt_num(cost.energy)} {energy_unit(a)}, cycles {fmt_num(cost.cycles)}, EDP {fmt_num(cost.edp)} "
        f"({a.semantics} semantics)"
    )
    data = m.to_dict(a, lyr)
    data["source"] = f"{source}: {mapping}"
    if output is None:
        typer.echo(dump_yaml(data), nl=False)
    else:
        io.write_yaml(data, output)
        out.print(f"wrote {output}")


def _row(row: tuple[int, ...]) -> dict[str, int]:
    return {DIMS[d]: f for d, f in enumerate(row) if f > 1}
