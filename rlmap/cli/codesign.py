"""`rlmap codesign`: search the hardware (over a template's design space) and every layer's mapping together
under an area budget, with one or several optimisers at the same number of cost-model evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rlmap.cli.execution import open_backend, ray_option
from rlmap.spec.errors import SpecError

EVALUATIONS_WHY = (
    "a run keeps every design it scores (Pareto front, curves) and checkpoints them after every step; "
    "give a smaller -e or bound the run with --time-limit"
)

DEFAULT_POLICIES = ("policy_general", "policy_eyeriss")
"""The learned loop's policy when --policy is not given: the first of these shipped checkpoints that exists."""


def default_policy_path() -> Path:
    from rlmap.spec.io import checkpoints_dir

    for name in DEFAULT_POLICIES:
        if (checkpoints_dir() / name).exists():
            return checkpoints_dir() / name
    raise SpecError(f"no shipped policy ({', '.join(DEFAULT_POLICIES)}); pass --policy", "--policy")


def codesign_cmd(
    template: str | None = typer.Option(
        None, "--template", "-t", help="template architecture (preset or YAML); default: the space file's"
    ),
    space: Path | None = typer.Option(
        None,
        "--space",
        "-s",
        help="design-space YAML (docs/codesign.md); default: array sides and capacities 1/16x..16x the template's",
    ),
    network: str = typer.Option("resnet18", "--network", "-n", help="network preset or YAML file"),
    area: str | None = typer.Option(
        None,
        "--area",
        metavar="MM2|edge|cloud",
        help="area budget in mm^2, or a preset: edge 1.03, cloud 34.47 "
        "(the edge / cloud presets' own areas; docs/codesign.md); default none",
    ),
    optimizer: str = typer.Option(
        "digamma", "--optimizer", "-O", help="comma-separated: digamma, random, ga, cma, de, pso, two-loop, learned"
    ),
    evaluations: int = typer.Option(
        5000,
        "--evaluations",
        "-e",
        help="cost-model evaluations per optimiser (one = one layer's mapping scored), at most 1,000,000",
    ),
    objective: str = typer.Option("latency", "--objective", help="latency, energy or edp (under the area budget)"),
    seed: int = typer.Option(0, "--seed", help="random seed: same seed, same designs"),
    population: int = typer.Option(
        20, "--population", help="population (GA family) / designs per step, at most 10,000"
    ),
    inner_budget: int = typer.Option(200, "--inner-budget", help="two-loop: GA-mapper evaluations per layer"),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="learned loop: policy checkpoint "
        f"(default: checkpoints/{DEFAULT_POLICIES[0]}, else {DEFAULT_POLICIES[1]})",
    ),
    samples: int = typer.Option(1, "--samples", help="learned loop: 1 = greedy, K = best of K episodes per layer"),
    optimal_time_limit: float = typer.Option(
        5.0, "--optimal-time-limit", help="learned loop: seconds per layer for the optimal re-mapping"
    ),
    time_limit: float | None = typer.Option(
        None, "--time-limit", metavar="SECONDS", help="wall-clock limit per optimiser (breaks determinism)"
    ),
    output: Path = typer.Option(Path("codesign_out"), "-o", "--output", help="output folder"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from OUTPUT/checkpoints"),
    tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard", help="write TensorBoard curves"),
    processes: int = typer.Option(
        1,
        "--processes",
        "-j",
        help="candidate evaluations in N parallel local processes (same designs and figures for any N)",
    ),
    ray: str | None = ray_option(),
) -> None:
    """Co-design hardware and mappings; writes the best design (arch.yaml that `rlmap map/search/eval` take),
    its per-layer mappings, the Pareto front (CSV, PNG) and search curves (PNG, TensorBoard)."""
    from rlmap.cli.common import (
        check_at_most,
        check_output_dir,
        check_positive,
        check_seed,
        console,
        fmt,
        load_network_option,
    )
    from rlmap.codesign.evaluate import Workload
    from rlmap.codesign.outputs import verify_design, write_curves, write_design, write_pareto
    from rlmap.codesign.problem import MAX_EVALUATIONS, MAX_POPULATION, Problem
    from rlmap.codesign.runner import OPTIMIZERS, make_optimizer, run
    from rlmap.codesign.space import load_space
    from rlmap.hardware.area import resolve_budget
    from rlmap.rl.mapper import MAX_SAMPLES, SAMPLES_WHY
    from rlmap.search.progress import progress_bar
    from rlmap.search.random_search import MAX_BUDGET

    if objective not in ("latency", "energy", "edp"):
        raise SpecError(f"unknown objective {objective!r} (expected latency, energy or edp)", "--objective")
    for name, v in (
        ("-e/--evaluations", evaluations),
        ("--population", population),
        ("--inner-budget", inner_budget),
        ("--samples", samples),
    ):
        if v <= 0:
            raise SpecError(f"must be a positive integer, got {v}", name)
    check_at_most(evaluations, MAX_EVALUATIONS, "-e/--evaluations", EVALUATIONS_WHY)
    check_at_most(population, MAX_POPULATION, "--population", "it is the number of designs scored per step")
    check_at_most(inner_budget, MAX_BUDGET, "--inner-budget", "it is the GA mapper's budget per layer")
    check_at_most(samples, MAX_SAMPLES, "--samples", SAMPLES_WHY)
    if processes <= 0:
        raise SpecError(f"must be >= 1, got {processes}", "--processes")
    check_positive(time_limit, "--time-limit", "a positive number of seconds")
    check_seed(seed)
    check_positive(optimal_time_limit, "--optimal-time-limit", "a positive number of seconds")
    names = [n.strip().lower() for n in optimizer.split(",") if n.strip()]
    if not names:
        raise SpecError("names no optimiser", "--optimizer")
    for n in names:
        if n not in OPTIMIZERS:
            raise SpecError(f"unknown optimiser {n!r} (expected one of {', '.join(OPTIMIZERS)})", "--optimizer")
    try:
        budget = resolve_budget(area)
    except ValueError as exc:
        raise SpecError(str(exc), "--area") from None
    check_output_dir(output)
    try:
        ds = load_space(template, str(space) if space is not None else None)
    except SpecError as exc:  # an unknown template name: blame the option it came from
        raise SpecError(exc.message, exc.where or "--template") from None
    net = load_network_option(network)
    wl = Workload.from_network(net)
    for n, option, per_layer in (("two-loop", "--inner-budget", inner_budget), ("learned", "--samples", samples)):
        if n in names and per_layer * len(wl) > evaluations:
            raise SpecError(
                f"{n} spends {per_layer:,} evaluations on each of {net.name}'s {len(wl)} distinct layer(s), "
                f"so one design costs {per_layer * len(wl):,}: more than -e/--evaluations {evaluations:,}",
                option,
            )
    pol = None
    if "learned" in names:
        from rlmap.rl.checkpoint import load_policy

        pol = load_policy(policy or default_policy_path())
        if pol.max_levels < ds.template.n_levels:
            raise SpecError(
                f"the policy handles {pol.max_levels} levels, template {ds.template.name!r} has {ds.template.n_levels}",
                "--policy",
            )
    out = console()
    out.print(
        f"design space over {ds.template.name}: {ds.size:,} designs "
        f"({'; '.join(f'{k}: {v}' for k, v in ds.describe())})"
    )
    out.print(
        f"{net.name}: {len(wl)} distinct layers; area budget "
        f"{'none' if budget == float('inf') else f'{budget:g} mm^2'}; objective {objective}; "
        f"{evaluations:,} evaluations per optimiser; seed {seed}"
    )
    if resume:
        fresh = [n for n in names if not (output / "checkpoints" / f"{n}.pkl").exists()]
        if fresh:
            line = (
                f"{output} holds no checkpoint to resume (no run, or one that never reached a checkpoint): "
                f"starting a fresh run"
                if len(fresh) == len(names)
                else f"{output} holds no checkpoint for {', '.join(fresh)}: starting those from the beginning"
            )
            out.print(line, markup=False)
    (output / "checkpoints").mkdir(parents=True, exist_ok=True)
    runs: dict[str, Problem] = {}
    finals: dict[str, dict[str, Any]] = {}
    opts: dict[str, Any] = {}
    with open_backend(processes, ray) as backend, progress_bar() as bar:
        for n in names:
            task = bar.add_task(n, total=evaluations, info="")
            opt = make_optimizer(
                n,
                population=population,
                inner_budget=inner_budget,
                policy=pol,
                samples=samples,
                optimal_time_limit=optimal_time_limit,
            )
            problem = Problem(ds, wl, objective, budget, evaluations, time_limit)
            meta = {
                "optimizer": n,
                "template": ds.template.name,
                "space": str(space),
                "network": net.name,
                "area": budget,
                "evaluations": evaluations,
                "objective": objective,
                "seed": seed,
                "population": population,
                "inner_budget": inner_budget,
                "samples": samples,
            }

            def tick(p: Problem, task: Any = task) -> None:
                bar.update(task, completed=p.evaluations, info=f"best {objective} {fmt(p.best_value)}")

            opt, problem = run(
                opt, problem, seed, output / "checkpoints" / f"{n}.pkl", resume, meta, tick, pol, backend
            )
            runs[n], opts[n] = problem, opt
            if hasattr(opt, "finish"):
                finals[n] = opt.finish(problem)
    _report(out, runs, finals, objective)
    # outputs
    write_pareto(output, runs, budget)
    write_curves(output, runs, objective, tensorboard)
    best_name = min(runs, key=lambda k: runs[k].best_value)
    summaries = {}
    for n, p in runs.items():
        if p.best_hw is None or p.best_maps is None or p.best_cost is None:
            continue
        extra: dict[str, Any] = {"evaluations": p.evaluations, "seconds": p.elapsed, "seed": seed}
        maps, cost = p.best_maps, p.best_cost
        if finals.get(n):
            extra["policy_mapped"] = {"objective": finals[n]["policy_objective"]}
            extra["optimal_remapped"] = {
                "objective": finals[n]["optimal_objective"],
                "evaluations": finals[n]["optimal_evaluations"],
                "proven": finals[n]["optimal_proven"],
            }
            maps, cost = finals[n]["maps"], finals[n]["cost"]  # the design as re-mapped by the optimal mapper
        folder = output / "designs" / n
        summaries[n] = write_design(folder, p, p.best_hw, maps, cost, net, n, extra)
        _e, _c, same = verify_design(folder, net)
        if not same:
            raise SpecError("re-evaluating the written design did not reproduce its numbers", str(folder))
    if best_name in summaries:
        import shutil

        shutil.copytree(output / "designs" / best_name, output / "best", dirs_exist_ok=True)
        s = summaries[best_name]
        out.print(
            f"best design: {best_name}, area {s['area_mm2']:.4g} mm^2, cycles {fmt(s['cycles'])}, energy "
            f"{fmt(s['energy_pj'])} pJ -> {output / 'best' / 'arch.yaml'} (re-evaluated from the YAML: same "
            f"numbers); try `rlmap eval` / `rlmap search --arch {output / 'best' / 'arch.yaml'}`"
        )
    else:
        out.print("[yellow]no optimiser found a feasible design: raise --evaluations or --area[/yellow]")
    out.print(
        f"wrote {output}/pareto.csv, pareto.png, curves.png"
        f"{', tensorboard/' if tensorboard else ''}, designs/<optimiser>/ (arch.yaml, mappings/, design.json)"
    )


def _report(out: Any, runs: dict[str, Any], finals: dict[str, dict[str, Any]], objective: str) -> None:
    from rich import box
    from rich.table import Table

    from rlmap.cli.common import fmt

    t = Table(title=f"co-design, best feasible {objective}", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in (
        "optimiser",
        "evaluations",
        "seconds",
        f"best {objective}",
        "area mm2",
        "designs scored",
        "feasible",
        "optimal re-map",
    ):
        t.add_column(col, justify="left" if col == "optimiser" else "right")
    for n, p in runs.items():
        feas = sum(r.feasible for r in p.history)
        remap = ""
        if finals.get(n):
            remap = fmt(finals[n]["optimal_objective"])
        t.add_row(
            n,
            f"{p.evaluations:,}",
            f"{p.elapsed:.1f}",
            fmt(p.best_value) if p.best_cost else "none",
            f"{p.best_cost.area_mm2:.4g}" if p.best_cost else "-",
            f"{len(p.history):,}",
            f"{feas:,}",
            remap,
        )
    out.print(t)
