"""`rlmap search`: map every layer of a network with a search mapper (random, ga, sa, optimal, surrogate, policy)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rlmap.cli.common import load_problem, report_network_result
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Network


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
    from rlmap.model.costmodel import OBJECTIVES
    from rlmap.search.driver import get_mapper, map_network

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
