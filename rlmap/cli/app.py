"""The `rlmap` command line: list and inspect presets, import PyTorch models, evaluate and export mappings.

Every user mistake (a SpecError from loading a file, a bad option value, an unknown layer name, an
invalid mapping) prints ONE line, ``error: <where>: <message>``, to stderr and exits with code 2;
`main()` catches whatever escapes the commands so no traceback reaches the user.

Adding a command (search, map, train, surrogate, ...): write it in its own module and register it in
the "Commands added by other modules" section at the bottom of this file, following the pattern
there.  Reuse `user_errors` (decorator), `load_problem` (network + arch + layer from options) and
`console()` so errors and output look the same everywhere.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from rlmap import io
from rlmap.arch import Architecture
from rlmap.errors import SpecError
from rlmap.layer import Layer, Network
from rlmap.problem import TENSORS

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="rlmap",
    help="Map DNN layers onto spatial accelerators: inspect presets, import models, evaluate and export mappings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
show_app = typer.Typer(help="Show a network or an architecture (preset name or YAML file).", no_args_is_help=True)
app.add_typer(show_app, name="show")

_TENSOR_SHORT = {"inputs": "I", "weights": "W", "outputs": "O"}


# ----------------------------------------------------------------------------- shared helpers
def console(stderr: bool = False) -> Console:
    """A rich console on the *current* stdout/stderr (so test runners capture it); wide when not a tty."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


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


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _int(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else _fmt(x)


def _gmacs(macs: int) -> str:
    return f"{macs / 1e9:.3f}"


def _first_sentence(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    m = re.search(r"\.\s+(?=[A-Z])", text)
    s = text if m is None else text[: m.start() + 1]
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ----------------------------------------------------------------------------- list
@app.command("list")
@user_errors
def list_cmd() -> None:
    """List the preset architectures and networks in envs/, and the shipped pretrained policies."""
    out = console()
    t = Table(title="Architectures", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("name", style="bold")
    t.add_column("PEs", justify="right")
    t.add_column("levels", justify="right")
    t.add_column("description")
    for name in io.list_architectures():
        try:
            a = io.load_architecture(name)
            t.add_row(name, f"{a.num_pes:,}", str(a.n_levels), _first_sentence(a.description))
        except SpecError as exc:
            t.add_row(name, "-", "-", f"[red]{error_line(exc)}[/red]")
    out.print(t)
    t = Table(title="Networks", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("name", style="bold")
    t.add_column("layers", justify="right")
    t.add_column("GMACs", justify="right")
    t.add_column("description")
    for name in io.list_networks():
        try:
            n = io.load_network(name)
            reps = sum(l.repeat for l in n.layers)
            count = f"{len(n.layers)}" + (f" ({reps})" if reps != len(n.layers) else "")
            t.add_row(name, count, _gmacs(n.macs), _first_sentence(n.description))
        except SpecError as exc:
            t.add_row(name, "-", "-", f"[red]{error_line(exc)}[/red]")
    out.print(t)
    out.print("layers: distinct layers (with repeats in parentheses); GMACs count repeats.")
    from rlmap.agents import checkpoints_dir, load_run_config, trained_steps

    t = Table(title="Pretrained policies (checkpoints/, used by `rlmap map --arch NAME`)", box=box.SIMPLE_HEAVY,
              title_justify="left")
    for col in ("arch", "agent", "steps", "trained on"):
        t.add_column(col, justify="right" if col == "steps" else "left")
    for folder in sorted(checkpoints_dir().glob("policy_*")):
        try:
            cfg = load_run_config(folder)
            t.add_row(cfg.arch, cfg.agent_name, f"{trained_steps(folder / 'model.zip'):,}",
                      ", ".join(cfg.networks) + (" + synthetic" if cfg.agent.env.synthetic > 0 else ""))
        except SpecError as exc:
            t.add_row(folder.name, "-", "-", f"[red]{error_line(exc)}[/red]")
    out.print(t)


# ----------------------------------------------------------------------------- show
@show_app.command("network")
@user_errors
def show_network(name: str = typer.Argument(..., help="preset name or path to a network YAML file")) -> None:
    """Per-layer table of a network: dimensions, stride, repeats, MACs, densities."""
    net = io.load_network(name)
    out = console()
    out.print(f"[bold]{net.name}[/bold]: {' '.join(net.description.split())}")
    if net.source:
        out.print(f"source: {' '.join(net.source.split())}")
    t = Table(box=box.SIMPLE_HEAVY)
    for col in ("layer", "kind", "N", "K", "C", "P", "Q", "R", "S", "groups", "stride", "repeat", "MACs",
                "density I/W/O"):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for l in net.layers:
        dens = "dense" if l.density.is_dense else "/".join(f"{x:g}" for x in l.density.as_tuple())
        t.add_row(l.name, l.kind, *(str(getattr(l, d)) for d in "NKCPQRS"), str(l.groups),
                  "x".join(map(str, l.stride)), str(l.repeat), f"{l.macs:,}", dens)
    out.print(t)
    reps = sum(l.repeat for l in net.layers)
    out.print(f"total: {len(net.layers)} layers ({reps} with repeats), {net.macs:,} MACs = {_gmacs(net.macs)} GMACs")


def _capacity_str(cap: Any) -> str:
    if cap is None:
        return "unbounded"
    if isinstance(cap, int):
        return f"{cap:,} shared"
    return " / ".join(f"{_TENSOR_SHORT[t]} {w:,}" for t, w in cap.items())


def _fanout_str(level: Any) -> str:
    f = level.fanout
    if f.size == 1:
        return "-"
    s = f"{f.x}x{f.y}"
    dims = []
    if f.x_dims:
        dims.append("X:" + ",".join(f.x_dims))
    if f.y_dims:
        dims.append("Y:" + ",".join(f.y_dims))
    return s + (f" ({'; '.join(dims)})" if dims else " (any dims)")


@show_app.command("arch")
@user_errors
def show_arch(name: str = typer.Argument(..., help="preset name or path to an architecture YAML file")) -> None:
    """Memory levels, fanouts and compute of an architecture."""
    a = io.load_architecture(name)
    out = console()
    out.print(f"[bold]{a.name}[/bold]: {' '.join(a.description.split())}")
    t = Table(box=box.SIMPLE_HEAVY)
    for col in ("level", "instances", "capacity (words)", "word bits", "keeps", "read pJ", "write pJ",
                "bandwidth (w/cyc)", "fanout XxY", "formats"):
        t.add_column(col, justify="left" if col in ("level", "capacity (words)", "keeps", "fanout XxY", "formats")
                     else "right")
    for i, lvl in enumerate(a.levels):
        fmts = ", ".join(f"{_TENSOR_SHORT[k]}:{v}" for k, v in lvl.formats.items()) or "-"
        t.add_row(lvl.name, f"{a.instances(i):,}", _capacity_str(lvl.capacity), str(lvl.word_bits),
                  " ".join(_TENSOR_SHORT[k] for k in lvl.keeps), f"{lvl.read_energy:g}", f"{lvl.write_energy:g}",
                  "unbounded" if lvl.bandwidth is None else f"{lvl.bandwidth:g}", _fanout_str(lvl), fmts)
    out.print(t)
    c = a.compute
    sparse = "none" if c.sparse == "none" else f"{c.sparse} on {', '.join(c.on)}"
    out.print(f"compute: {c.mac_energy:g} pJ/MAC, sparse acceleration: {sparse}")
    out.print(f"PEs: {a.num_pes:,}   data bits: {a.data_bits}   clock: {a.clock_ghz:g} GHz")
    if a.source:
        out.print(f"source: {' '.join(a.source.split())}")


# ----------------------------------------------------------------------------- import
@app.command("import")
@user_errors
def import_cmd(
    spec: str = typer.Argument(..., metavar="MODEL.py:BUILD_FN", help="Python file and the function that returns the model"),
    input_shape: str = typer.Option(..., "--input-shape", help="example input shape, e.g. 1,3,224,224"),
    output: Path = typer.Option(..., "-o", "--output", help="network YAML file to write"),
    name: Optional[str] = typer.Option(None, "--name", help="network name (default: the file's stem)"),
) -> None:
    """Trace a PyTorch model with torch.fx and write its conv / linear / matmul layers as a network YAML."""
    from rlmap.importer import import_module, load_builder, parse_input_shape  # torch: only when needed

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
    t = Table(title=f"{net.name}: {len(net.layers)} layers, {_gmacs(net.macs)} GMACs", box=box.SIMPLE_HEAVY,
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


# ----------------------------------------------------------------------------- eval / export
def _mapping_problem(network: str, arch: str, mapping: Path, layer: Optional[str]):  # noqa: ANN202
    """(layer, architecture, Mapping) from the eval/export options; the layer may come from the file."""
    net, a, _ = load_problem(network, arch, None)
    m, file_layer = io.load_mapping(mapping, a)
    lname = layer if layer is not None else file_layer
    if lname is None:
        raise SpecError("names no layer; pass --layer", str(mapping))
    if layer is None:
        try:
            return find_layer(net, lname), a, m
        except SpecError:
            raise SpecError(f"names layer {lname!r}, which network {net.name!r} does not have", str(mapping)) from None
    return find_layer(net, lname), a, m


@app.command("eval")
@user_errors
def eval_cmd(
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping YAML file (as written by rlmap)"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="layer name (default: the one the file names)"),
) -> None:
    """Score one mapping with the analytical cost model: energy, cycles, EDP and per-level accesses."""
    from rlmap.costmodel import CostModel

    lyr, a, m = _mapping_problem(network, arch, mapping, layer)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    out = console()
    out.print(f"layer        {lyr.name} ({lyr.kind} {lyr.shape_str()}, groups {lyr.groups}) on {a.name}")
    out.print(f"MACs         {cost.macs:,}")
    out.print(f"energy       {_fmt(cost.energy)} pJ ({_fmt(cost.energy / 1e6)} µJ)")
    out.print(f"cycles       {_fmt(cost.cycles)} (compute {_fmt(cost.compute_cycles)})")
    out.print(f"EDP          {_fmt(cost.edp)} pJ*cycles")
    out.print(f"utilization  {cost.utilization * 100:.2f} % of {a.num_pes:,} PEs")
    out.print(f"energy/MAC   {_fmt(cost.energy / max(cost.macs, 1))} pJ")
    t = Table(title="accesses (words of each level) and energy", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("level")
    for v in TENSORS:
        t.add_column(f"{_TENSOR_SHORT[v]} reads", justify="right")
        t.add_column(f"{_TENSOR_SHORT[v]} writes", justify="right")
    t.add_column("energy pJ", justify="right")
    t.add_column("share", justify="right")
    t.add_column("cycles (bw)", justify="right")
    total = cost.energy if cost.energy > 0 else 1.0
    for i, lvl in enumerate(a.levels):
        cells = []
        for v in range(len(TENSORS)):
            kept = TENSORS[v] in lvl.keeps
            cells += [_int(cost.reads[i][v]) if kept else "-", _int(cost.writes[i][v]) if kept else "-"]
        cyc = cost.level_cycles[i] if i < len(cost.level_cycles) else 0.0
        t.add_row(lvl.name, *cells, _fmt(cost.level_energy[i]), f"{cost.level_energy[i] / total * 100:.1f}%",
                  _fmt(cyc) if lvl.bandwidth is not None else "-")
    t.add_row("MAC", *([""] * 6), _fmt(cost.mac_energy), f"{cost.mac_energy / total * 100:.1f}%",
              _fmt(cost.compute_cycles))
    t.add_row("total", *([""] * 6), _fmt(cost.energy), "100.0%", _fmt(cost.cycles))
    out.print(t)


@app.command("export")
@user_errors
def export_cmd(
    network: str = typer.Option(..., "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option(..., "--arch", "-a", help="architecture preset or YAML file"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping YAML file (as written by rlmap)"),
    fmt: str = typer.Option(..., "--format", "-f", help="timeloop or accelforge"),
    output: Path = typer.Option(..., "-o", "--output", help="directory to write the files into"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="layer name (default: the one the file names)"),
) -> None:
    """Write a mapping (with its problem and architecture) as Timeloop or AccelForge input files."""
    from rlmap import export
    from rlmap.costmodel import CostModel

    key = fmt.strip().lower()
    if key not in export.FORMATS:
        raise SpecError(f"unknown format {fmt!r} (expected one of {', '.join(export.FORMATS)})", "--format")
    lyr, a, m = _mapping_problem(network, arch, mapping, layer)
    cost = CostModel(lyr, a).evaluate(m)
    if not cost.valid:
        raise SpecError(f"invalid mapping: {cost.reason}", str(mapping))
    paths = export.export(key, lyr, a, m, output)
    out = console()
    out.print(f"exported layer {lyr.name} on {a.name} for {key}:")
    for p in paths:
        out.print(f"  {p}")


# ============================================================================= Commands added by other modules
# search / map / train / surrogate live in their own modules; register them here, e.g.
#
#     from rlmap.search_cli import search_cmd      # def search_cmd(network: str = typer.Option(...), ...)
#     app.command("search")(user_errors(search_cmd))
#
# (or `app.add_typer(sub_app, name="train")` for a group).  Use load_problem() / find_layer() for the
# --network/--arch/--layer options and raise SpecError for user mistakes; user_errors() and main() turn
# it into the one-line error with exit code 2.
# =============================================================================


# ----------------------------------------------------------------------------- search
def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@app.command("search")
@user_errors
def search_cmd(
    network: str = typer.Option("resnet50", "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help="architecture preset or YAML file"),
    mapper: str = typer.Option("ga", "--mapper", help="random, ga, sa, optimal, surrogate or policy (the shipped policy; --budget = samples)"),
    budget: int = typer.Option(2000, "--budget", help="cost-model evaluations per layer (optimal: ignored)"),
    objective: str = typer.Option("edp", "--objective", help="energy, latency or edp"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same result)"),
    processes: int = typer.Option(1, "--processes", "-j", help="layers mapped in parallel processes"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="map only this layer"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="directory for mappings (YAML) and summary.json"),
) -> None:
    """Map every layer of a network with a classical mapper; per-layer table and network totals."""
    from rlmap.costmodel import OBJECTIVES
    from rlmap.mappers.network import get_mapper, map_network

    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})", "--objective")
    if budget <= 0:
        raise SpecError(f"must be a positive number of evaluations, got {budget}", "--budget")
    if processes <= 0:
        raise SpecError(f"must be >= 1, got {processes}", "--processes")
    get_mapper(mapper)
    net, a, one = load_problem(network, arch, layer)
    if one is not None:
        net = Network(name=net.name, description=net.description, source=net.source, layers=[one])
    res = map_network(net, a, mapper, objective, budget, seed, processes, progress=sys.stderr.isatty())
    report_network_result(res, a, f"{mapper} on {net.name} / {a.name}, objective {objective}, budget {budget}, seed {seed}",
                          output, {"mapper": mapper, "budget": budget, "seed": seed},
                          hint="raise --budget or use --mapper ga")


def report_network_result(res: Any, arch: Architecture, title: str, output: Optional[Path], meta: dict[str, Any],
                          hint: str = "") -> None:
    """Per-layer table and network totals of a NetworkResult; with `output`, mappings (YAML) + summary.json."""
    import json

    out = console()
    t = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("layer", "repeat", "energy pJ", "cycles", "EDP", "util %", "evals", "optimal"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    rows = []
    missing = []
    for lyr, r in zip(res.layers, res.results):
        c = r.cost
        if c is None:
            missing.append(lyr.name)
            t.add_row(lyr.name, str(lyr.repeat), "no valid mapping found", "", "", "", f"{r.evaluations:,}", "-")
            rows.append({"layer": lyr.name, "repeat": lyr.repeat, "evaluations": r.evaluations, "found": False})
            continue
        proven = "proven" if r.proven_optimal else "-"
        t.add_row(lyr.name, str(lyr.repeat), _fmt(c.energy), _fmt(c.cycles), _fmt(c.edp),
                  f"{c.utilization * 100:.1f}", f"{r.evaluations:,}", proven)
        rows.append({"layer": lyr.name, "repeat": lyr.repeat, "energy_pj": c.energy, "cycles": c.cycles,
                     "edp": c.edp, "utilization": c.utilization, "evaluations": r.evaluations,
                     "proven_optimal": r.proven_optimal, "seconds": r.seconds})
    out.print(t)
    if missing:
        out.print(f"[yellow]{len(missing)} layer(s) without a valid mapping ({', '.join(missing)})"
                  f"{': ' + hint if hint else ''}; totals are infinite[/yellow]")
    out.print(f"network total (with repeats): energy {_fmt(res.energy)} pJ, cycles {_fmt(res.cycles)}, "
              f"EDP {_fmt(res.edp)}, {res.macs:,} MACs, {res.seconds:.1f} s")
    if output is None:
        return
    if output.exists() and not output.is_dir():
        raise SpecError("exists and is not a directory", str(output))
    mdir = output / "mappings"
    label = str(meta.get("mapper", res.mapper))
    written = 0
    for lyr, r in zip(res.layers, res.results):
        if r.mapping is None:
            continue
        written += 1
        io.save_mapping(r.mapping, arch, mdir / f"{_safe_name(lyr.name)}.yaml", lyr,
                        extra={"network": res.network, "mapper": label, "objective": res.objective,
                               "energy_pj": float(r.cost.energy), "cycles": float(r.cost.cycles)})
    summary = {"network": res.network, "arch": res.arch, "objective": res.objective, **meta, "layers": rows,
               "total": {"energy_pj": res.energy, "cycles": res.cycles, "edp": res.edp, "macs": res.macs}}
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    out.print(f"wrote {mdir}/ ({written} mappings) and {output / 'summary.json'}")


# ----------------------------------------------------------------------------- train / map (rlmap.agents_cli)
from rlmap.agents_cli import map_cmd, train_cmd  # noqa: E402  (light: torch/SB3 load inside the commands)

app.command("train")(user_errors(train_cmd))
app.command("map")(user_errors(map_cmd))

_SURROGATE_HELP = "Train and evaluate a neural surrogate of the cost model (dataset, train, eval)."


def _mount_surrogate(real: bool) -> None:
    """The surrogate commands import torch (~1.5 s), so they are loaded only when asked for."""
    if real:
        from rlmap.surrogate import surrogate_app
    else:
        surrogate_app = typer.Typer(no_args_is_help=True)

        @surrogate_app.command("dataset")
        def _stub() -> None:  # pragma: no cover - replaced before it can run
            """Sample (layer, mapping) -> cost data; see `rlmap surrogate --help`."""

    app.add_typer(surrogate_app, name="surrogate", help=_SURROGATE_HELP)


# ----------------------------------------------------------------------------- entry point
def run(argv: Optional[list[str]] = None) -> int:
    """Run the CLI on `argv` (default sys.argv[1:]) and return the exit code; never raises for user errors."""
    from typer._click import exceptions as cx  # typer vendors click

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    if not any(g.name == "surrogate" for g in app.registered_groups):
        _mount_surrogate(real=args[0] == "surrogate")
    try:
        rv = app(args=args, prog_name="rlmap", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SpecError as exc:
        typer.echo(error_line(exc), err=True)
        return 2
    except cx.MissingParameter as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return 2
    except cx.BadParameter as exc:
        typer.echo(error_line(f"{_param_name(exc)}: {exc.message}"), err=True)
        return 2
    except cx.UsageError as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return 2
    except cx.ClickException as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return exc.exit_code or 1
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: aborted", err=True)
        return 1


def _param_name(exc: Any) -> str:
    """'--format' for a bad option value (the long name), else click's hint."""
    param = getattr(exc, "param", None)
    opts = list(getattr(param, "opts", None) or [])
    if opts:
        return next((o for o in opts if o.startswith("--")), opts[0])
    hint = exc.param_hint
    return " / ".join(hint) if isinstance(hint, (list, tuple)) else str(hint or "option")


def main() -> None:
    """Console-script entry point (`rlmap = "rlmap.cli:main"`)."""
    sys.exit(run())


if __name__ == "__main__":
    main()
