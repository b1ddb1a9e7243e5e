"""What every command shares: one-line errors (exit 2), consoles, number formats, loading the problem
named by --network/--arch/--layer, and the per-layer report of a mapped network.

Every user mistake (a SpecError from loading a file, a bad option value, an unknown layer name, an
invalid mapping) prints ONE line, ``error: <where>: <message>``, to stderr and exits with code 2.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console

from rlmap.cli.tables import TENSOR_SHORT  # noqa: F401  (re-exported for the command modules)
from rlmap.spec import io
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer, Network

F = TypeVar("F", bound=Callable[..., Any])


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


# ----------------------------------------------------------------------------- option checks (before any work)
def check_positive(value: float | None, option: str, what: str = "a positive number") -> None:
    """A finite number > 0 (nan and inf are not), or None for 'not given'."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise SpecError(f"must be {what}, got {value:g}", option)


def check_seed(seed: int, option: str = "--seed") -> None:
    """A random seed is >= 0 (numpy's generators refuse negative ones)."""
    if seed < 0:
        raise SpecError(f"must be >= 0, got {seed}", option)


def check_at_most(value: int, limit: int, option: str, why: str) -> None:
    """Refuse a count past `limit` (what a run can finish and hold in memory), saying why."""
    if value > limit:
        raise SpecError(f"{value:,} is more than {limit:,}: {why}", option)


def _check_creatable(path: Path, option: str, start: Path | None = None) -> None:
    """The nearest existing folder at or above `start` (default `path`) is a writable folder, so `path` can be
    created (else one line naming `option` and `path`)."""
    start = path if start is None else start
    for above in [start, *start.absolute().parents]:
        if os.path.lexists(above):
            if not above.is_dir():
                raise SpecError(f"{above} is a file, so {path} cannot be created", f"{option} {path}")
            if not os.access(above, os.W_OK | os.X_OK):
                raise SpecError(f"{above} is not writable", f"{option} {path}")
            return


def check_output_dir(path: Optional[Path], option: str = "-o") -> None:
    """Fail before the work, not after it: `path` must be (or be creatable as) a writable folder."""
    if path is None:
        return
    if os.path.lexists(path) and not path.is_dir():
        raise SpecError("exists and is not a directory", f"{option} {path}")
    _check_creatable(path, option)


def check_output_file(path: Optional[Path], option: str = "-o") -> None:
    """Fail before the work: `path` must be a file path (not a folder) whose folder is or can be made writable."""
    if path is None:
        return
    if path.is_dir():
        raise SpecError("is a directory, expected a file path", f"{option} {path}")
    if os.path.lexists(path):
        if not os.access(path, os.W_OK):
            raise SpecError("exists and is not writable", f"{option} {path}")
        return
    _check_creatable(path, option, start=path.parent)


def load_network_option(name: str, option: str = "--network") -> Network:
    """io.load_network, with an unknown name blamed on the option it came from."""
    try:
        return io.load_network(name)
    except SpecError as exc:
        raise SpecError(exc.message, exc.where or option) from None


def load_architecture_option(name: str, option: str = "--arch") -> Architecture:
    """io.load_architecture, with an unknown name blamed on the option it came from."""
    try:
        return io.load_architecture(name)
    except SpecError as exc:
        raise SpecError(exc.message, exc.where or option) from None


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
    net = load_network_option(network)
    a = load_architecture_option(arch)
    return net, a, (find_layer(net, layer) if layer is not None else None)


def fmt(x: float) -> str:
    return f"{x:.6g}"


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
    """A file-name stem for `name`: letters and digits of every script kept, anything else (path separators,
    spaces, control characters) becomes '_'; never empty, hidden or longer than 200 bytes."""
    stem = re.sub(r"[^\w.-]+", "_", name).strip("._") or "layer"
    return stem.encode()[:200].decode(errors="ignore")


def mapping_file_names(names: list[str]) -> dict[str, str]:
    """A distinct file name per layer name (also on case-insensitive file systems): 'a b', 'a/b' and 'a_b'
    become a_b.yaml, a_b-2.yaml and a_b-3.yaml; summary.json records which layer went where."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem = candidate = safe_name(name)
        n = 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem}-{n}"
        taken.add(candidate.casefold())
        out[name] = f"{candidate}.yaml"
    return out


MAPPING_HELP = (
    "mapping YAML file: rlmap's own, a Timeloop mapping or an AccelForge LoopTree mapping (the format is detected)"
)
SEMANTICS_HELP = "modelling semantics, timeloop or accelforge (default: the architecture's `semantics`)"
WORKLOAD_HELP = (
    "AccelForge workload YAML whose Einsum names the LoopTree's rank variables and tensors "
    "(default: rlmap's names n g k c p q r s and I W O)"
)


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


def load_any_mapping(network: str, arch: str, mapping: Path, layer: Optional[str], workload: Optional[Path] = None):  # noqa: ANN201
    """(layer, architecture, Mapping, format) from a mapping file in rlmap's, Timeloop's or AccelForge's format
    (detected).  The layer comes from --layer, else from an rlmap file, else the network's only layer;
    `workload` (AccelForge) names the LoopTree's rank variables and tensors."""
    from rlmap.interop import mapping_import as mi

    net, a, _ = load_problem(network, arch, None)
    fmt, data = mi.read_mapping_file(mapping)
    named = data.get("arch") if fmt == "rlmap" and isinstance(data, dict) else None
    if named is not None and str(named) != a.name:  # a mapping of another architecture (its levels may even fit)
        raise SpecError(f"mapping is for {named}, --arch is {a.name}", f"{mapping}: arch")
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
    try:
        m = mi.mapping_from(fmt, data, lyr, a, str(mapping), names)
    except SpecError as exc:  # e.g. factors that do not multiply to this layer's dimensions: name the file
        if exc.where is not None:
            raise
        raise SpecError(f"invalid mapping for layer {lyr.name!r}: {exc.message}", str(mapping)) from None
    return lyr, a, m, fmt


def check_finite_cost(cost: Any, arch: str) -> None:
    """Refuse a cost whose energy, cycles or EDP is not a finite number (one line naming the --arch file), rather
    than print inf or nan as a result.  The architecture's bounds (rlmap/spec/bounds.py: energies at most 1e12 per
    action, bandwidths at least 1e-6) keep every total finite, so this is a last guard."""
    totals = (("energy", cost.energy), ("cycles", cost.cycles), ("EDP", cost.edp))
    bad = [f"{name} {value:g}" for name, value in totals if not math.isfinite(value)]
    if bad:
        raise SpecError(
            f"the cost model's totals are not finite ({', '.join(bad)}): the architecture's per-access energies "
            "or bandwidths are out of the modelled range",
            f"--arch {arch}",
        )


def report_network_result(
    res: Any,
    arch: Architecture,
    title: str,
    output: Optional[Path],
    meta: dict[str, Any],
    hint: str = "",
    backend: Optional[str] = None,
) -> None:
    """Per-layer table and network totals of a NetworkResult; with `output`, mappings (YAML) + summary.json, and
    run.json (with `backend`, where the tasks ran)."""
    from rlmap.cli.results import build_run, build_summary, write_results
    from rlmap.cli.tables import energy_unit, eng, network_table

    out = console()
    if res.extra.get("partial") and not res.results:
        out.print(
            f"[yellow]interrupted before any layer was mapped: nothing to report"
            f"{', nothing written to ' + str(output) if output is not None else ''}[/yellow]"
        )
        return
    unit = energy_unit(arch)
    out.print(title, soft_wrap=True)
    out.print(network_table(res, unit))
    missing = [lyr.name for lyr, r in zip(res.layers, res.results) if r.cost is None]
    if missing:
        unfit = [
            f"{lyr.name} ({r.notes['unmappable']})"
            for lyr, r in zip(res.layers, res.results)
            if r.cost is None and r.notes.get("unmappable")
        ]
        if unfit:  # even every loop in DRAM does not fit: no budget or mapper helps
            hint = f"no mapping fits the architecture: {', '.join(unfit)}"
        out.print(
            f"{len(missing)} layer(s) without a valid mapping ({', '.join(missing)})"
            f"{': ' + hint if hint else ''}; totals are infinite",
            style="yellow",
            markup=False,
        )
    stopped = {
        id(r): (lyr.name, r.notes["stopped"]) for lyr, r in zip(res.layers, res.results) if r.notes.get("stopped")
    }
    if stopped:
        name, why = next(iter(stopped.values()))
        out.print(f"[yellow]{len(stopped)} distinct layer(s) stopped early, e.g. {name}: {why}[/yellow]")
    fell = [lyr.name for lyr, r in zip(res.layers, res.results) if r.notes.get("fallback")]
    if fell:
        note = (
            f"note: no sampled mapping was valid for {len(fell)} layer(s); each keeps the all-outermost one "
            f"(every loop in DRAM)"
        )
        named = f"{note}: {', '.join(fell)}"
        out.print(named if len(named) <= 120 else note, style="yellow", markup=False)
    distinct = res.extra.get("distinct_layers")
    same = f" ({distinct} distinct layers, each mapped once)" if distinct and distinct < len(res.layers) else ""
    partial = bool(res.extra.get("partial"))
    if partial:
        out.print(
            f"[yellow]interrupted: {res.extra.get('distinct_done', len(res.results))} of {distinct or '?'} "
            f"distinct layers mapped ({len(res.layers)} of {res.extra.get('total_layers', '?')} layers); "
            f"the totals below cover those only[/yellow]"
        )
    out.print(
        f"network total (with repeats): energy {eng(res.energy)} {unit}, cycles {eng(res.cycles)}, "
        f"EDP {eng(res.edp)}, {res.macs:,} MACs, {res.seconds:.1f} s{same}"
    )
    if output is None:
        return
    check_output_dir(output)
    from rlmap.spec.outputs import staged_dir

    label = str(meta.get("mapper", res.mapper))
    names = mapping_file_names([lyr.name for lyr, r in zip(res.layers, res.results) if r.mapping is not None])
    files: dict[str, str] = {}
    with staged_dir(output) as stage:  # replaces mappings/, summary.json, run.json as a whole: nothing stale stays
        for lyr, r in zip(res.layers, res.results):
            if r.mapping is None:
                continue
            rel = f"mappings/{names[lyr.name]}"
            files[lyr.name] = rel
            io.save_mapping(
                r.mapping,
                arch,
                stage / rel,
                lyr,
                extra={
                    "network": res.network,
                    "mapper": label,
                    "objective": res.objective,
                    "energy": float(r.cost.energy),
                    "energy_unit": unit,  # pJ, or MAC-eq on presets normalised to a MAC (e.g. eyeriss)
                    "cycles": float(r.cost.cycles),
                },
            )
        (stage / "mappings").mkdir(exist_ok=True)
        summary = build_summary(res, arch, meta, files)
        if partial:  # Ctrl-C: only the layers finished are in it
            summary.update(partial=True, layers_total=res.extra.get("total_layers"))
        write_results(stage, summary, build_run(res, backend=backend))
    out.print(
        f"wrote {output / 'mappings'}/ ({len(files)} mappings), {output / 'summary.json'} and "
        f"{output / 'run.json'}" + (" (marked partial)" if partial else ""),
        markup=False,
    )
