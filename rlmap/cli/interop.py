"""`rlmap import` (a PyTorch model -> network YAML) and `rlmap export` (a mapping -> Timeloop / AccelForge files)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from rlmap.cli.common import console, gmacs, mapping_problem
from rlmap.spec import io
from rlmap.spec.errors import SpecError


def import_cmd(
    spec: str = typer.Argument(..., metavar="MODEL.py:BUILD_FN", help="Python file and the function that returns the model"),
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

    shape = parse_input_shape(input_shape)
    builder = load_builder(spec)
    path_str = spec.rpartition(":")[0]
    try:
        model = builder()
    except Exception as exc:  # user code
        raise SpecError(f"calling {spec.rpartition(':')[2]}() failed: {type(exc).__name__}: {exc}", path_str) from None
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec.rpartition(':')[2]}() returned a {type(model).__name__}, not a torch.nn.Module",
                        path_str)
    result = import_module(model.eval(), torch.zeros(shape), name or Path(path_str).stem)
    if output.exists() and output.is_dir():
        raise SpecError("is a directory, expected a YAML file path", str(output))
    io.save_network(result.network, output)
    out = console()
    net = result.network
    t = Table(title=f"{net.name}: {len(net.layers)} layers, {gmacs(net.macs)} GMACs", box=box.SIMPLE_HEAVY,
              title_justify="left")
    for col in ("layer", "kind", "N", "K", "C", "P", "Q", "R", "S", "groups", "stride", "MACs"):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for l in net.layers:
        t.add_row(l.name, l.kind, *(str(getattr(l, d)) for d in "NKCPQRS"), str(l.groups),
                  "x".join(map(str, l.stride)), f"{l.macs:,}")
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
    mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping YAML file (as written by rlmap)"),
    fmt: str = typer.Option(..., "--format", "-f", help="timeloop or accelforge"),
    output: Path = typer.Option(..., "-o", "--output", help="directory to write the files into"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="layer name (default: the one the file names)"),
) -> None:
    """Write a mapping (with its problem and architecture) as Timeloop or AccelForge input files."""
    from rlmap.interop import export
    from rlmap.model.costmodel import CostModel

    key = fmt.strip().lower()
    if key not in export.FORMATS:
        raise SpecError(f"unknown format {fmt!r} (expected one of {', '.join(export.FORMATS)})", "--format")
    lyr, a, m = mapping_problem(network, arch, mapping, layer)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    paths = export.export(key, lyr, a, m, output)
    out = console()
    out.print(f"exported layer {lyr.name} on {a.name} for {key}:")
    for p in paths:
        out.print(f"  {p}")
