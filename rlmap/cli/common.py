"""What every command shares: one-line errors (exit 2), consoles, number formats, loading the problem
named by --network/--arch/--layer, and the per-layer report of a mapped network.

Every user mistake (a SpecError from loading a file, a bad option value, an unknown layer name, an
invalid mapping) prints ONE line, ``error: <where>: <message>``, to stderr and exits with code 2.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console

from rlmap.spec import io
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer, Network

F = TypeVar("F", bound=Callable[..., Any])

TENSOR_SHORT = {"inputs": "I", "weights": "W", "outputs": "O"}


def console(stderr: bool = False) -> Console:
    """A rich console on the *current* stdout/stderr (so test runners capture it); piped output is not padded."""
    from rlmap.cli.tables import make_console

    return make_console(stderr)


def error_line(exc: BaseException | str) -> str:
    """The one-line form of an error: 'error: <where>: <message>'."""
    text = exc if isinstance(exc, str) else str(exc)
    return "error: " + " ".join(text.split())


def fail(message: str, where: str | None = None) -> typer.Exit:
    """Print the error line and return an Exit(2) to raise."""
    typer.echo(error_line(f"{where}: {message}" if where else message), err=True)
    return typer.Exit(2)


def user_errors(fn: F) -> F:
    """Decorator for commands: a SpecError becomes the one-line error and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            typer.echo(error_line(exc), err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def find_layer(net: Network, name: str) -> Layer:
    """The layer called `name`; SpecError (naming --layer) listing a few valid names otherwise."""
    for layer in net.layers:
        if layer.name == name:
            return layer
    names = [l.name for l in net.layers]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} layers)" if len(names) > 8 else "")
    raise SpecError(f"network {net.name!r} has no layer {name!r} (layers: {shown})", "--layer")


def load_problem(network: str, arch: str, layer: Optional[str]) -> tuple[Network, Architecture, Optional[Layer]]:
    """Load the network and architecture named on the command line, and the layer if one is given."""
    net = io.load_network(network)
    a = io.load_architecture(arch)
    return net, a, (find_layer(net, layer) if layer is not None else None)


def fmt(x: float) -> str:
    return f"{x:.6g}"


def fmt_int(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else fmt(x)


def gmacs(macs: int) -> str:
    """A MAC count with a unit that fits the model: '3,136 MACs', '23.59 MMACs', '4.089 GMACs'."""
    from rlmap.cli.tables import count

    return count(macs, "MACs")


def first_sentence(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    m = re.search(r"\.\s+(?=[A-Z])", text)
    s = text if m is None else text[: m.start() + 1]
    return s if len(s) <= limit else s[: limit - 1] + "…"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


MAPPING_HELP = ("mapping YAML file: rlmap's own, a Timeloop mapping or an AccelForge LoopTree mapping "
                "(the format is detected)")
SEMANTICS_HELP = "modelling semantics, timeloop or accelforge (default: the architecture's `semantics`)"
WORKLOAD_HELP = ("AccelForge workload YAML whose Einsum names the LoopTree's rank variables and tensors "
                 "(default: rlmap's names n g k c p q r s and I W O)")


def with_semantics(arch: Architecture, semantics: Optional[str]) -> Architecture:
    """The architecture with --semantics applied (None keeps its own)."""
    from rlmap.spec.arch import SEMANTICS

    if semantics is None:
        return arch
    key = semantics.strip().lower()
    if key not in SEMANTICS:
        raise SpecError(f"unknown semantics {semantics!r} (expected one of {', '.join(SEMANTICS)})", "--semantics")
    return arch.model_copy(update={"semantics": key})


def mapping_problem(network: str, arch: str, mapping: Path, layer: Optional[str]):  # noqa: ANN202
    """(layer, architecture, Mapping) from the eval/export options; the layer may come from the file."""
    lyr, a, m, _ = load_any_mapping(network, arch, mapping, layer)
    return lyr, a, m


def load_any_mapping(network: str, arch: str, mapping: Path, layer: Optional[str],
                     workload: Optional[Path] = None):  # noqa: ANN201
    """(layer, architecture, Mapping, format) from a mapping file in rlmap's, Timeloop's or AccelForge's format
    (detected).  The layer comes from --layer, else from an rlmap file, else the network's only layer;
    `workload` (AccelForge) names the LoopTree's rank variables and tensors."""
    from rlmap.interop import mapping_import as mi

    net, a, _ = load_problem(network, arch, None)
    fmt, data = mi.read_mapping_file(mapping)
    lname = layer if layer is not None else mi.file_layer_name(fmt, data)
    if lname is None:
        if len(net.layers) != 1:
            what = "names no layer" if fmt == "rlmap" else f"is a {fmt} mapping, which names no layer"
            raise SpecError(f"{what}; pass --layer", str(mapping))
        lyr = net.layers[0]
    elif layer is None:
        try:
            lyr = find_layer(net, lname)
        except SpecError:
            raise SpecError(f"names layer {lname!r}, which network {net.name!r} does not have", str(mapping)) from None
    else:
        lyr = find_layer(net, lname)
    names = None
    if workload is not None:
        if fmt != "accelforge":
            raise SpecError(f"applies to AccelForge mappings; {mapping} is a {fmt} mapping", "--workload")
        _, wl = mi.read_yaml_document(workload)
        names = mi.names_from_workload(wl, lyr, mi.compute_einsum(data), where=str(workload))
    return lyr, a, mi.mapping_from(fmt, data, lyr, a, str(mapping), names), fmt


def report_network_result(res: Any, arch: Architecture, title: str, output: Optional[Path], meta: dict[str, Any],
                          hint: str = "") -> None:
    """Per-layer table and network totals of a NetworkResult; with `output`, mappings (YAML) + summary.json."""
    from rlmap.cli.results import build_run, build_summary, write_results
    from rlmap.cli.tables import energy_unit, eng, network_table

    out = console()
    unit = energy_unit(arch)
    out.print(title, soft_wrap=True)
    out.print(network_table(res, unit))
    missing = [lyr.name for lyr, r in zip(res.layers, res.results) if r.cost is None]
    if missing:
        out.print(f"[yellow]{len(missing)} layer(s) without a valid mapping ({', '.join(missing)})"
                  f"{': ' + hint if hint else ''}; totals are infinite[/yellow]")
    stopped = {id(r): (lyr.name, r.notes["stopped"]) for lyr, r in zip(res.layers, res.results) if r.notes.get("stopped")}
    if stopped:
        name, why = next(iter(stopped.values()))
        out.print(f"[yellow]{len(stopped)} distinct layer(s) stopped early, e.g. {name}: {why}[/yellow]")
    distinct = res.extra.get("distinct_layers")
    same = f" ({distinct} distinct layers, each mapped once)" if distinct and distinct < len(res.layers) else ""
    out.print(f"network total (with repeats): energy {eng(res.energy)} {unit}, cycles {eng(res.cycles)}, "
              f"EDP {eng(res.edp)}, {res.macs:,} MACs, {res.seconds:.1f} s{same}")
    if output is None:
        return
    if output.exists() and not output.is_dir():
        raise SpecError("exists and is not a directory", str(output))
    mdir = output / "mappings"
    label = str(meta.get("mapper", res.mapper))
    files: dict[str, str] = {}
    for lyr, r in zip(res.layers, res.results):
        if r.mapping is None:
            continue
        rel = f"mappings/{safe_name(lyr.name)}.yaml"
        files[lyr.name] = rel
        io.save_mapping(r.mapping, arch, output / rel, lyr,
                        extra={"network": res.network, "mapper": label, "objective": res.objective,
                               "energy_pj": float(r.cost.energy), "cycles": float(r.cost.cycles)})
    write_results(output, build_summary(res, arch, meta, files), build_run(res))
    out.print(f"wrote {mdir}/ ({len(files)} mappings), {output / 'summary.json'} and {output / 'run.json'}")
