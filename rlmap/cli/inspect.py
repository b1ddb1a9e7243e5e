"""`rlmap list` and `rlmap show network|arch`: what presets, networks and pretrained policies there are."""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.table import Table

from rlmap.cli.common import TENSOR_SHORT, console, error_line, first_sentence, gmacs, user_errors
from rlmap.spec import io
from rlmap.spec.errors import SpecError

show_app = typer.Typer(help="Show a network or an architecture (preset name or YAML file).", no_args_is_help=True)


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
            t.add_row(name, f"{a.num_pes:,}", str(a.n_levels), first_sentence(a.description))
        except SpecError as exc:
            t.add_row(name, "-", "-", f"[red]{error_line(exc)}[/red]")
    out.print(t)
    generated = io.list_generated()
    if generated:  # held out of training, loadable by name like the presets
        out.print(
            f"generated (envs/generated, held out; `rlmap generate` makes more): {', '.join(generated)}", markup=False
        )
    out.print()
    t = Table(title="Networks", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("name", style="bold")
    t.add_column("layers", justify="right")
    t.add_column("MACs", justify="right", no_wrap=True)
    t.add_column("description")
    for name in io.list_networks():
        try:
            n = io.load_network(name)
            reps = sum(l.repeat for l in n.layers)
            count = f"{len(n.layers)}" + (f" ({reps})" if reps != len(n.layers) else "")
            t.add_row(name, count, gmacs(n.macs), first_sentence(n.description))
        except SpecError as exc:
            t.add_row(name, "-", "-", f"[red]{error_line(exc)}[/red]")
    out.print(t)
    out.print("layers: distinct layers (with repeats in parentheses); MACs count repeats.")
    out.print()
    from rlmap.rl.checkpoint import trained_steps
    from rlmap.rl.config import load_run_config
    from rlmap.spec.io import checkpoints_dir

    t = Table(
        title="Pretrained policies (checkpoints/; `rlmap map --arch NAME` picks the best measured one)",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    for col in ("policy", "architectures", "agent", "steps", "trained on"):
        t.add_column(col, justify="right" if col == "steps" else "left")
    for folder in sorted(checkpoints_dir().glob("policy_*")):
        try:
            cfg = load_run_config(folder)
            archs = cfg.arch + (f" + {cfg.generated} generated" if cfg.generated else "")
            t.add_row(
                folder.name,
                archs,
                cfg.agent_name,
                f"{trained_steps(folder / 'model.zip'):,}",
                ", ".join(cfg.networks) + (" + synthetic" if cfg.agent.env.synthetic > 0 else ""),
            )
        except SpecError as exc:
            t.add_row(folder.name, "-", "-", "-", f"[red]{error_line(exc)}[/red]")
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
    for col in (
        "layer",
        "kind",
        "N",
        "K",
        "C",
        "P",
        "Q",
        "R",
        "S",
        "groups",
        "stride",
        "repeat",
        "MACs",
        "density I/W/O",
    ):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for l in net.layers:
        dens = "dense" if l.density.is_dense else "/".join(f"{x:g}" for x in l.density.as_tuple())
        t.add_row(
            l.name,
            l.kind,
            *(str(getattr(l, d)) for d in "NKCPQRS"),
            str(l.groups),
            "x".join(map(str, l.stride)),
            str(l.repeat),
            f"{l.macs:,}",
            dens,
        )
    out.print(t)
    reps = sum(l.repeat for l in net.layers)
    out.print(
        f"total: {len(net.layers)} layers ({reps} with repeats), {net.macs:,} MACs"
        + (f" = {gmacs(net.macs)}" if net.macs >= 1e4 else "")
    )


def _capacity_str(cap: Any) -> str:
    if cap is None:
        return "unbounded"
    if isinstance(cap, int):
        return f"{cap:,} shared"
    return " / ".join(f"{TENSOR_SHORT[t]} {w:,}" for t, w in cap.items())


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
    for col in (
        "level",
        "instances",
        "capacity (words)",
        "word bits",
        "keeps",
        "read pJ",
        "write pJ",
        "bandwidth (w/cyc)",
        "fanout XxY",
        "formats",
    ):
        t.add_column(
            col, justify="left" if col in ("level", "capacity (words)", "keeps", "fanout XxY", "formats") else "right"
        )
    for i, lvl in enumerate(a.levels):
        fmts = ", ".join(f"{TENSOR_SHORT[k]}:{v}" for k, v in lvl.formats.items()) or "-"
        t.add_row(
            lvl.name,
            f"{a.instances(i):,}",
            _capacity_str(lvl.capacity),
            str(lvl.word_bits),
            " ".join(TENSOR_SHORT[k] for k in lvl.keeps),
            f"{lvl.read_energy:g}",
            f"{lvl.write_energy:g}",
            "unbounded" if lvl.bandwidth is None else f"{lvl.bandwidth:g}",
            _fanout_str(lvl),
            fmts,
        )
    out.print(t)
    c = a.compute
    sparse = "none" if c.sparse == "none" else f"{c.sparse} on {', '.join(c.on)}"
    out.print(f"compute: {c.mac_energy:g} pJ/MAC, sparse acceleration: {sparse}")
    out.print(f"PEs: {a.num_pes:,}   data bits: {a.data_bits}   clock: {a.clock_ghz:g} GHz")
    if a.source:
        out.print(f"source: {' '.join(a.source.split())}")
