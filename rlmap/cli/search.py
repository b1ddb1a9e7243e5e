"""`rlmap search`: map every layer of a network with a search mapper (random, ga, sa, marvel, optimal, surrogate,
policy), optionally warm-started (replay buffer) and sparsity-aware (--densities)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rlmap.cli.common import (
    check_at_most,
    check_output_dir,
    check_positive,
    check_seed,
    load_problem,
    report_network_result,
)
from rlmap.cli.execution import open_backend, ray_option
from rlmap.search.base import NetworkResult
from rlmap.search.optimal import DEFAULT_TIME_LIMIT as OPTIMAL_DEFAULT_LIMIT
from rlmap.search.random_search import MAX_BUDGET
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import EXIT_INTERRUPTED, Interrupted, SpecError
from rlmap.spec.layer import Network

PANEL = "Warm start and sparsity-aware search"


def budget_refusal(budget: int, net: Network, arch: Architecture, objective: str) -> str:
    """Why a budget past MAX_BUDGET is refused, with the time it would take at the pace measured here."""
    from rlmap.search.random_search import RandomMapper
    from rlmap.spec.layer import distinct_layers

    layers = distinct_layers(net.layers)
    RandomMapper().search(layers[0], arch, objective, budget=256, seed=0)  # warm up (compiled kernel, caches)
    probe = RandomMapper().search(layers[0], arch, objective, budget=4096, seed=0)
    rate = probe.evaluations / max(probe.seconds, 1e-9)
    days = budget * len(layers) / rate / 86400
    return (
        f"{budget:,} evaluations per layer is more than {MAX_BUDGET:,}: at the {rate:,.0f} evaluations/s measured "
        f"on {layers[0].name}, {len(layers)} distinct layer(s) would take about {days:.3g} days and keep "
        f"{budget * 8 / 2**30:.3g} GiB of convergence curve per layer; give a smaller --budget or bound the run "
        f"with --time-limit"
    )


def search_hint(mapper: str) -> str:
    """What to try when a layer got no valid mapping (never the mapper the user already ran)."""
    key = mapper.strip().lower()
    if key == "optimal":
        return "raise --time-limit"
    return "raise --budget" + ("" if key == "ga" else " or use --mapper ga")


def search_cmd(
    network: str = typer.Option("resnet50", "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help="architecture preset or YAML file"),
    mapper: str = typer.Option(
        "ga",
        "--mapper",
        help="random, ga, sa, marvel (decoupled off-chip/on-chip), optimal, "
        "surrogate or policy (the shipped policy; --budget = samples)",
    ),
    budget: int = typer.Option(
        2000,
        "--budget",
        help="cost-model evaluations per layer (policy: samples; "
        "optimal: not used, it runs until proven or --time-limit)",
    ),
    time_limit: Optional[float] = typer.Option(
        None,
        "--time-limit",
        metavar="SECONDS",
        help=f"wall-clock seconds per distinct layer; the mapper stops there with its best so far and says so "
        f"(default: {OPTIMAL_DEFAULT_LIMIT:g} s for optimal, which then reports 'not proven, within X of the "
        f"bound'; none for the other mappers, which stop at --budget)",
    ),
    placement: bool = typer.Option(
        False,
        "--placement",
        help="optimal only, experimental: search per-tensor tile placements too (a larger "
        "space: proofs take longer; on large 3x3 convolutions it can overrun --time-limit and use over 15 GB, see "
        "docs/optimal_vs_tcm.txt); bypass choices are always searched",
    ),
    objective: str = typer.Option("edp", "--objective", help="energy, latency or edp"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same result; optimal: not used)"),
    processes: int = typer.Option(1, "--processes", "-j", help="layers mapped in parallel processes"),
    ray: Optional[str] = ray_option(),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="map only this layer"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="directory for mappings (YAML) and summary.json"
    ),
    warm_start: Optional[bool] = typer.Option(
        None,
        "--warm-start/--no-warm-start",
        rich_help_panel=PANEL,
        help="seed each layer's search with the adapted best mappings of the nearest layers mapped before it "
        "(default: on for a whole network, off with --layer; the policy always runs cold)",
    ),
    warm_start_file: Optional[Path] = typer.Option(
        None,
        "--warm-start-file",
        metavar="JSON",
        rich_help_panel=PANEL,
        help="replay buffer kept across runs: read if it exists, written back with this run's layers",
    ),
    warm_wave: int = typer.Option(
        1,
        "--warm-wave",
        metavar="N",
        rich_help_panel=PANEL,
        help="with warm start, layers searched at once (each uses only layers of earlier waves); raise it "
        "with -j/--ray to run in parallel -- results depend on N, never on the workers",
    ),
    densities: Optional[str] = typer.Option(
        None,
        "--densities",
        metavar="D1,D2,..",
        rich_help_panel=PANEL,
        help="sparsity-aware search: one mapping robust over these input densities (e.g. 0.2,0.5,1.0, or "
        "0.2:0.3,1.0:0.7 with probabilities); needs a search mapper (random, ga, sa, marvel)",
    ),
    robust: str = typer.Option(
        "worst",
        "--robust",
        rich_help_panel=PANEL,
        help="with --densities: minimise the worst or the expected ratio to each density's own best",
    ),
    density_tensor: str = typer.Option(
        "inputs",
        "--density-tensor",
        rich_help_panel=PANEL,
        help="with --densities: the tensor whose density varies (inputs, weights or outputs)",
    ),
) -> None:
    """Map every layer of a network with a classical mapper; per-layer table and network totals."""
    from rlmap.model.costmodel import OBJECTIVES
    from rlmap.search.driver import get_mapper, map_network

    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})", "--objective")
    if budget <= 0:
        raise SpecError(f"must be a positive number of evaluations, got {budget}", "--budget")
    if processes <= 0:
        raise SpecError(f"must be >= 1, got {processes}", "--processes")
    check_positive(time_limit, "--time-limit", "a positive number of seconds")
    check_seed(seed)
    get_mapper(mapper)
    key = mapper.strip().lower()
    exhaustive = key == "optimal"
    if exhaustive and time_limit is None:
        time_limit = OPTIMAL_DEFAULT_LIMIT
    if key == "policy":
        from rlmap.rl.mapper import MAX_SAMPLES, SAMPLES_WHY

        check_at_most(budget, MAX_SAMPLES, "--budget", f"for --mapper policy it counts samples; {SAMPLES_WHY}")
    check_output_dir(output)
    net, a, one = load_problem(network, arch, layer)
    if one is not None:
        net = Network(name=net.name, description=net.description, source=net.source, layers=[one])
    if warm_start is None:
        warm_start = one is None or warm_start_file is not None
    buffer = None
    if warm_start:
        from rlmap.search.warmstart import ReplayBuffer

        buffer = ReplayBuffer(path=warm_start_file)
    elif warm_start_file is not None:
        raise SpecError("needs warm start (drop --no-warm-start)", "--warm-start-file")
    the_mapper: object = mapper
    if placement:
        if key != "optimal":
            raise SpecError(f"only the optimal mapper searches placements, not {mapper!r}", "--placement")
        from rlmap.search.optimal import OptimalMapper

        the_mapper = OptimalMapper(placement=True)
    if densities is not None:
        from rlmap.search.sparsity import MODES, SparsityAwareMapper, parse_densities

        if robust not in MODES:
            raise SpecError(f"unknown mode {robust!r} (expected one of {', '.join(MODES)})", "--robust")
        if mapper.strip().lower() not in ("random", "ga", "sa", "marvel"):
            raise SpecError(f"--densities needs a search mapper (random, ga, sa, marvel), not {mapper!r}", "--mapper")
        dens, probs = parse_densities(densities)
        the_mapper = SparsityAwareMapper(get_mapper(mapper), dens, probs, mode=robust, tensor=density_tensor)
    if not exhaustive and key != "policy" and budget > MAX_BUDGET:
        raise SpecError(budget_refusal(budget, net, a, objective), "--budget")
    # finished layers; a rerun resumes from them (not for a sparsity-aware run: its mapper is an object)
    resume_dir = output / ".tasks" if output is not None and densities is None and not placement else None
    with open_backend(processes, ray, resume_dir) as backend:
        where = backend.describe()  # recorded in run.json
        try:
            res = map_network(
                net,
                a,
                the_mapper,
                objective,
                budget,
                seed,
                processes,
                progress=True,
                time_limit=time_limit,
                backend=backend,
                resume_dir=resume_dir,
                warm_start=buffer,
                warm_wave=warm_wave,
            )
            interrupted = False
        except Interrupted as exc:  # Ctrl-C: report and write the layers finished, marked partial
            res, interrupted = exc.partial, True
    # the title names only the options the mapper uses (the optimal mapper has no budget and no randomness)
    limit = f", time limit {time_limit:g} s per layer" if time_limit is not None else ""
    used = "" if exhaustive else f", budget {budget}"
    seeded = "" if exhaustive else f", seed {seed}"
    meta = {
        "mapper": mapper,
        **({} if exhaustive else {"budget": budget, "seed": seed}),
        **({} if time_limit is None else {"time_limit_s": time_limit}),
    }
    warm = ", warm-started" if res.extra.get("warm_start") else ""
    if placement:
        meta["placement"] = True
        warm += ", per-tensor placements"
    if densities is not None:
        meta.update({"densities": densities, "robust": robust, "density_tensor": density_tensor})
    report_network_result(
        res,
        a,
        f"{mapper} on {net.name} / {a.name}, objective {objective}{used}{limit}{seeded}{warm}",
        output,
        meta,
        hint=search_hint(mapper),
        backend=where,
    )
    if interrupted:
        if resume_dir is not None and res.results:
            typer.echo(f"the same command resumes from the finished layers (kept in {resume_dir})", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if resume_dir is not None:
        from rlmap.execution import ResultStore

        ResultStore(resume_dir).clear()  # the summary is written: nothing left to resume
    if densities is not None:
        _density_report(res)


def _density_report(res: NetworkResult) -> None:
    """Per layer: the robust mapping's and the single-density mapping's ratio to each density's reference."""
    from rich import box
    from rich.table import Table

    from rlmap.cli.common import console

    results = res.results
    first = next((r for r in results if "robust" in r.notes), None)
    if first is None:
        return
    keys = list(first.notes["robust"]["ratio_per_density"])
    dens = [str(d) for d in first.notes["densities"]]
    t = Table(
        box=box.SIMPLE_HEAD,
        title=f"objective / each density's own best ({first.notes['mode']} case "
        f"optimised; single = best for density {first.notes['single_density']})",
    )
    t.add_column("layer")
    for d in dens:
        t.add_column(f"robust @{d}", justify="right")
    for d in dens:
        t.add_column(f"single @{d}", justify="right")
    seen = set()
    for layer, r in zip(res.layers, results):
        if id(r) in seen or "robust" not in r.notes:
            continue
        seen.add(id(r))
        cells = [f"{r.notes['robust']['ratio_per_density'][k]:.3f}" for k in keys]
        cells += [f"{r.notes['single']['ratio_per_density'][k]:.3f}" for k in keys]
        t.add_row(layer.name, *cells)
    console().print(t)
