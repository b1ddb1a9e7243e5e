"""`rlmap search`: map every layer of a network with a search mapper (random, ga, sa, optimal, surrogate, policy)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rlmap.cli.common import load_problem, report_network_result
from rlmap.search.optimal import DEFAULT_TIME_LIMIT as OPTIMAL_DEFAULT_LIMIT
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Network


def search_cmd(
    network: str = typer.Option("resnet50", "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help="architecture preset or YAML file"),
    mapper: str = typer.Option("ga", "--mapper", help="random, ga, sa, optimal, surrogate or policy (the shipped policy; --budget = samples)"),
    budget: int = typer.Option(2000, "--budget", help="cost-model evaluations per layer (policy: samples; "
                               "optimal: not used, it runs until proven or --time-limit)"),
    time_limit: Optional[float] = typer.Option(
        None, "--time-limit", metavar="SECONDS",
        help=f"wall-clock seconds per distinct layer; the mapper stops there with its best so far and says so "
             f"(default: {OPTIMAL_DEFAULT_LIMIT:g} s for optimal, which then reports 'not proven, within X of the "
             f"bound'; none for the other mappers, which stop at --budget)"),
    objective: str = typer.Option("edp", "--objective", help="energy, latency or edp"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same result; optimal: not used)"),
    processes: int = typer.Option(1, "--processes", "-j", help="layers mapped in parallel processes"),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="map only this layer"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="directory for mappings (YAML) and summary.json"),
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
    if time_limit is not None and not time_limit > 0:
        raise SpecError(f"must be a positive number of seconds, got {time_limit:g}", "--time-limit")
    get_mapper(mapper)
    exhaustive = mapper.strip().lower() == "optimal"
    if exhaustive and time_limit is None:
        time_limit = OPTIMAL_DEFAULT_LIMIT
    net, a, one = load_problem(network, arch, layer)
    if one is not None:
        net = Network(name=net.name, description=net.description, source=net.source, layers=[one])
    res = map_network(net, a, mapper, objective, budget, seed, processes, progress=True,
                      time_limit=time_limit)
    # the title names only the options the mapper uses (the optimal mapper has no budget and no randomness)
    limit = f", time limit {time_limit:g} s per layer" if time_limit is not None else ""
    used = "" if exhaustive else f", budget {budget}"
    seeded = "" if exhaustive else f", seed {seed}"
    meta = {"mapper": mapper, **({} if exhaustive else {"budget": budget, "seed": seed}),
            **({} if time_limit is None else {"time_limit_s": time_limit})}
    report_network_result(res, a, f"{mapper} on {net.name} / {a.name}, objective {objective}{used}{limit}{seeded}",
                          output, meta, hint="raise --time-limit" if exhaustive else "raise --budget or use --mapper ga")
