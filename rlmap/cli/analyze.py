"""`rlmap analyze`: map-space insight for one layer -- EDP distribution over uniform valid mappings, per-axis
sensitivity, and every mapper's search curve -- as tables, PNG plots and a JSON of the numbers."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from rlmap.cli.common import check_at_most, check_output_dir, check_seed, console, load_problem
from rlmap.spec.errors import SpecError

DEFAULT_MAPPERS = "random,ga,sa,marvel,surrogate,policy"

MAX_SAMPLES = 100_000
"""Most uniform valid mappings for the distribution (--samples), as the map space draws them at most."""

MAX_CURVE_BUDGET = 1_000_000
"""Most evaluations per search-curve run (--budget): every run keeps, and the plot draws, one point per evaluation."""

MAX_COUNT = 10_000
"""Most --neighbours, --random-points and --seeds."""


def analyze_cmd(
    network: str = typer.Option("resnet50", "--network", "-n", help="network preset or YAML file"),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help="architecture preset or YAML file"),
    layer: Optional[str] = typer.Option(
        None, "--layer", "-l", help="layer to analyse (default: the network's layer with the most MACs)"
    ),
    objective: str = typer.Option("edp", "--objective", help="energy, latency or edp"),
    samples: int = typer.Option(2000, "--samples", help="uniform valid mappings for the distribution, at most 100,000"),
    neighbours: int = typer.Option(64, "--neighbours", help="one-move variants per base mapping and axis"),
    random_points: int = typer.Option(8, "--random-points", help="random valid base mappings for the sensitivity"),
    mappers: str = typer.Option(
        DEFAULT_MAPPERS,
        "--mappers",
        help="comma-separated mappers for the search curves "
        "(a mapper that cannot run here, e.g. a surrogate without a checkpoint, is skipped)",
    ),
    budget: int = typer.Option(
        1000,
        "--budget",
        help="evaluations per search-curve run, at most 1,000,000 (policy: samples, at most 100,000)",
    ),
    seeds: int = typer.Option(3, "--seeds", help="runs per mapper for the curves' median and spread"),
    optimal_time: float = typer.Option(
        30.0, "--optimal-time", metavar="SECONDS", help="time limit of the optimal mapper that gives the reference"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    output: Path = typer.Option(Path("analysis"), "-o", "--output", help="directory for analysis.json and the PNGs"),
) -> None:
    """Map-space insight for one layer: distribution, per-axis sensitivity and search curves (PNG + JSON)."""
    from rlmap.model.costmodel import OBJECTIVES
    from rlmap.search.analysis import curve_band, distribution, evaluations_to_reach, sensitivity
    from rlmap.search.driver import get_mapper
    from rlmap.search.mapspace import MapSpace
    from rlmap.search.optimal import OptimalMapper

    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})", "--objective")
    for name, v in (("--samples", samples), ("--neighbours", neighbours), ("--budget", budget), ("--seeds", seeds)):
        if v <= 0:
            raise SpecError(f"must be positive, got {v}", name)
    if random_points < 0:
        raise SpecError(f"must be >= 0, got {random_points}", "--random-points")
    check_at_most(samples, MAX_SAMPLES, "--samples", "they are drawn and scored at once, in memory")
    check_at_most(budget, MAX_CURVE_BUDGET, "--budget", "every run keeps and plots one point per evaluation")
    for name, v in (("--neighbours", neighbours), ("--random-points", random_points), ("--seeds", seeds)):
        check_at_most(v, MAX_COUNT, name, "each is a batch of cost-model evaluations held in memory")
    if not optimal_time > 0:
        raise SpecError(f"must be a positive number of seconds, got {optimal_time:g}", "--optimal-time")
    names = [m.strip().lower() for m in mappers.split(",") if m.strip()]
    for m in names:
        try:
            get_mapper(m)
        except SpecError as exc:  # get_mapper blames --mapper, search's option; here it is --mappers
            raise SpecError(exc.message, "--mappers") from None
    if "policy" in names:
        from rlmap.rl.mapper import MAX_SAMPLES as POLICY_SAMPLES
        from rlmap.rl.mapper import SAMPLES_WHY

        why = f"the policy in --mappers counts it in samples; {SAMPLES_WHY}"
        check_at_most(budget, POLICY_SAMPLES, "--budget", why)
    check_output_dir(output)
    check_seed(seed)
    net, a, one = load_problem(network, arch, layer)
    lay = one if one is not None else max(net.layers, key=lambda la: la.macs)
    out = console()
    rng = np.random.default_rng(seed)
    space = MapSpace(lay, a)
    t0 = time.perf_counter()
    opt = OptimalMapper().search(lay, a, objective, time_limit=optimal_time)
    if opt.mapping is None:
        raise SpecError(f"no valid mapping of {lay.name!r} on {a.name!r} was found", "--layer")
    ref = opt.best
    out.print(
        f"[bold]{lay.name}[/] on {a.name}: reference {objective} {ref:.4g} "
        f"({'proven optimum' if opt.proven_optimal else 'best found by the optimal mapper, not proven'}, "
        f"{time.perf_counter() - t0:.1f} s)"
    )

    dist = distribution(space, objective, samples, rng)
    ratios = dist["values"] / ref
    q = {f"p{p}": float(np.percentile(ratios, p)) for p in (0, 1, 10, 50, 90, 100)} if len(ratios) else {}
    out.print(
        f"distribution of {len(ratios)} uniform valid mappings ({objective} / reference): "
        + ", ".join(f"{k} {v:.3g}" for k, v in q.items())
        + f"; valid share of uniform draws {dist['acceptance']:.2%}"
    )

    best = space.encode(opt.mapping.to_arrays())
    bases = {"optimum": best}
    if random_points:
        bases["random"] = space.sample(random_points, rng)[0]
    sens = {k: sensitivity(space, g, objective, neighbours, rng) for k, g in bases.items()}
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, title="sensitivity: |log10 change| of one-move variants (median / p90, invalid)")
    t.add_column("axis")
    for k in sens:
        t.add_column(f"around {k}", justify="right")
    for axis in sens["optimum"]:
        cells = []
        for k in sens:
            s = sens[k][axis]
            cells.append(
                "n/a"
                if s["median_abs_log10"] is None
                else f"{s['median_abs_log10']:.3f} / {s['p90_abs_log10']:.3f}, {s['invalid_share']:.0%}"
            )
        t.add_row(axis, *cells)
    out.print(t)

    curves: dict[str, Any] = {}
    from rlmap.search.progress import progress_bar

    with progress_bar(enabled=True) as bar:
        task = bar.add_task("search curves", total=len(names) * seeds, info="")
        for name in names:
            runs: list[np.ndarray] = []
            secs: list[float] = []
            skipped = ""
            for run_i in range(seeds):
                bar.update(task, description=f"{name} seed {run_i}")
                try:
                    r = get_mapper(name).search(lay, a, objective, budget=budget, seed=seed + run_i)
                except (SpecError, ImportError, FileNotFoundError, KeyError) as exc:
                    skipped = str(exc).splitlines()[0]
                    bar.advance(task, seeds - run_i)
                    break
                runs.append(r.curve)
                secs.append(r.seconds)
                bar.advance(task)
            if skipped:
                curves[name] = {"skipped": skipped}
                continue
            curves[name] = {
                **curve_band(runs, ref, budget),
                "final": [float(c[-1] / ref) for c in runs],
                "evals_to_1.05x": [evaluations_to_reach(c, 1.05 * ref) for c in runs],
                "seconds": secs,
            }
    t = Table(box=box.SIMPLE_HEAD, title=f"search curves ({seeds} seeds, budget {budget}): best / reference")
    for c in ("mapper", "median final", "worst seed", "evals to 1.05x (median)"):
        t.add_column(c, justify="right" if c != "mapper" else "left")
    for name, c in curves.items():
        if "skipped" in c:
            t.add_row(name, "skipped", "", c["skipped"][:50])
            continue
        e = float(np.median(c["evals_to_1.05x"]))
        t.add_row(
            name, f"{np.median(c['final']):.3f}", f"{max(c['final']):.3f}", "never" if math.isinf(e) else f"{e:.0f}"
        )
    out.print(t)

    output.mkdir(parents=True, exist_ok=True)
    data = {
        "network": net.name,
        "layer": lay.name,
        "arch": a.name,
        "objective": objective,
        "reference": ref,
        "reference_proven": opt.proven_optimal,
        "map_space": {k: float(v) for k, v in space.sizes().items()},
        "distribution": {
            "samples": len(ratios),
            "valid_share_of_uniform_draws": dist["acceptance"],
            "quantiles": q,
            "ratios": [float(x) for x in ratios],
        },
        "sensitivity": sens,
        "curves": curves,
        "budget": budget,
        "seeds": seeds,
    }
    (output / "analysis.json").write_text(json.dumps(data, default=_finite))
    _plots(output, data)
    out.print(f"wrote {output / 'analysis.json'}, distribution.png, sensitivity.png, curves.png")


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _plots(output: Path, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlmap.codesign.outputs import legend

    title = f"{data['layer']} on {data['arch']}"
    r = np.asarray(data["distribution"]["ratios"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(r):
        ax.hist(np.log10(r), bins=60, color="tab:blue")
    ax.set_xlabel(f"log10({data['objective']} / reference)")
    ax.set_ylabel("uniform valid mappings")
    ax.set_title(f"{title}: distribution")
    fig.tight_layout()
    fig.savefig(output / "distribution.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    axes = [
        a for a in data["sensitivity"]["optimum"] if data["sensitivity"]["optimum"][a]["median_abs_log10"] is not None
    ]
    width = 0.8 / max(len(data["sensitivity"]), 1)
    for i, (k, s) in enumerate(data["sensitivity"].items()):
        ax.bar(
            np.arange(len(axes)) + i * width, [s[a]["median_abs_log10"] or 0 for a in axes], width, label=f"around {k}"
        )
    ax.set_xticks(np.arange(len(axes)) + width * (len(data["sensitivity"]) - 1) / 2, axes)
    ax.set_ylabel("median |log10 change|")
    ax.set_title(f"{title}: sensitivity per axis")
    legend(ax)
    fig.tight_layout()
    fig.savefig(output / "sensitivity.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in data["curves"].items():
        if "median" not in c or not c["median"]:
            continue
        x = np.arange(1, len(c["median"]) + 1)
        ax.plot(x, c["median"], label=name)
        ax.fill_between(x, c["p25"], c["p75"], alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best so far / reference")
    ax.set_title(f"{title}: search curves (median, 25-75%)")
    legend(ax)
    fig.tight_layout()
    fig.savefig(output / "curves.png", dpi=120)
    plt.close(fig)
