"""Systematic comparison of rlmap's mappers (Kao et al., IISWC 2022) and the figures for issue 16's targets.

    python benchmarks/mapper_comparison.py [--parts comparison,warmstart,sparsity,spread,marvel]
        [--networks resnet50,mobilenetv2,bert_base,resnet50_sparse] [--budgets 100,1000,10000]
        [--max-layers N] [--seeds 5] [--optimal-time 30] [--out docs/mapper_comparison]
        [-j N | --ray auto|local|HOST:PORT] [--warm-wave N]

Parts (each prints a table and adds to OUT/mapper_comparison.json; PNGs in OUT):

* comparison -- every mapper (random, ga, sa, surrogate, marvel; each cold and warm-started; the policy
  greedy and best of 100 samples, unless --no-policy) on each network's distinct layers, per budget: geomean
  over layers of EDP / reference, geomean evaluations to reach 1.05x of the reference (a run that never
  reaches it counts as its budget: a lower bound, the table says how many reached), and wall time (of the
  run with its layers on the -j/--ray workers).
* warmstart -- GA cold vs warm-started on whole networks (ResNet-50, MobileNetV2 by default): geomean over
  layers of evaluations to 1.05x; target: warm needs >= 5x fewer.
* sparsity -- sparsity-aware GA (worst case over input densities 0.2, 0.5, 1.0) on sparse-network layers
  on sparse_eyeriss, against each density's optimum (the optimal mapper) and against the mapping optimised
  for the layer's own density alone; target: within 1.10x at every density.
* spread -- GA and SA at 1,000 evaluations, 5 seeds, on layers not used to design the robustness fixes
  (those used ViT fc1/fc2/qkv on eyeriss and simba): worst / best seed; target: < 2x on every layer.
* marvel -- Marvel vs the optimum and vs GA at the same budget: EDP ratio and wall time; target: within
  1.2x at a fraction of the optimal mapper's time.

The reference per layer is the optimal mapper's result (time limit --optimal-time); where it was not
proven the best EDP any run found is used instead and the JSON says so.  Timings are wall-clock on a shared
machine.

With -j N / --ray the independent searches run as execution-backend tasks (local processes or Ray,
docs/distributed.md): the optimal references (one task per distinct layer and architecture), each network run's
layers (`map_network(..., backend=...)`), and the sparsity, spread and Marvel searches.  Every figure is the same
for any backend and worker count (the optimal mapper's time limit aside, which no backend makes deterministic:
an unproven reference is whatever the search reached in its time); warm-started runs search --warm-wave layers at
once (default 1), and their results depend on that number, never on the workers.  Wall times then measure the
run with N workers: the comparison table's "time s" is the network run's wall clock with its layers spread over
the workers, and the per-search times (Marvel, GA, optimal) are measured in the worker while others run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import rlmap  # noqa: F401  (registers the surrogate and policy mappers)
from rlmap.execution import Backend, backend_from_options, run_tasks
from rlmap.search.analysis import evaluations_to_reach
from rlmap.search.driver import get_mapper, layer_seed, map_network
from rlmap.search.genetic import GeneticMapper
from rlmap.search.optimal import OptimalMapper
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import Layer, Network, layer_key

ARCH_OF = {"resnet50_sparse": "sparse_eyeriss"}
REFS: dict[tuple, dict[str, Any]] = {}


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0]
    return float(math.exp(np.mean(np.log(xs)))) if xs else math.nan


def distinct(net: Network, max_layers: int | None) -> Network:
    """The network's distinct layers (first of each shape), evenly thinned to `max_layers` if given."""
    seen, layers = set(), []
    for la in net.layers:
        k = layer_key(la)
        if k not in seen:
            seen.add(k)
            layers.append(la)
    if max_layers and len(layers) > max_layers:
        idx = np.unique(np.linspace(0, len(layers) - 1, max_layers).round().astype(int))
        layers = [layers[i] for i in idx]
    return Network(name=net.name, layers=[la.model_copy(update={"repeat": 1}) for la in layers])


def reference_task(task: tuple) -> dict[str, Any]:
    """A backend task: one (layer, architecture)'s optimal-mapper reference."""
    layer, arch_name, optimal_time = task
    r = OptimalMapper().search(layer, load_architecture(arch_name), "edp", time_limit=optimal_time)
    return {"edp": r.best, "proven": r.proven_optimal, "seconds": r.seconds}


def references(pairs: Iterable[tuple[Layer, str]], optimal_time: float, backend: Backend) -> None:
    """The optimal references of these (layer, architecture name) pairs not in REFS yet: one backend task per
    distinct pair, added to REFS in the order of `pairs`."""
    todo: dict[tuple, tuple] = {}
    for la, arch_name in pairs:
        key = (layer_key(la), arch_name)
        if key not in REFS and key not in todo:
            todo[key] = (la, arch_name, optimal_time)
    for key, ref in zip(todo, run_tasks(backend, reference_task, list(todo.values()))):
        REFS[key] = ref


def note_best(layer: Layer, arch_name: str, edp: float) -> None:
    """An unproven reference is lowered to the best EDP any run found."""
    ref = REFS[(layer_key(layer), arch_name)]
    if not ref["proven"] and edp < ref["edp"]:
        ref["edp"] = edp


def run_network(
    net: Network,
    arch_name: str,
    mapper: str,
    budget: int,
    warm: bool,
    backend: Backend,
    seed: int = 0,
    warm_wave: int = 1,
) -> Any:
    """One network run, its distinct layers' searches on `backend` (warm-started: `warm_wave` layers at once)."""
    return map_network(
        net,
        load_architecture(arch_name),
        mapper,
        "edp",
        budget,
        seed,
        progress=False,
        backend=backend,
        warm_start=True if warm else None,
        warm_wave=warm_wave,
    )


def search_task(task: tuple) -> tuple[float, float]:
    """A backend task: one layer searched by a named mapper ("ga", "sa", "ga-before", "sa-before", or a
    registered name such as "marvel"): (best, seconds)."""
    label, layer, arch_name, budget, seed = task
    r = _mapper(label).search(layer, load_architecture(arch_name), "edp", budget, seed=seed)
    return r.best, r.seconds


def _mapper(label: str) -> Any:
    from rlmap.search.annealing import AnnealingMapper

    if label == "ga":
        return GeneticMapper()
    if label == "sa":
        return AnnealingMapper()
    if label == "ga-before":  # the mappers as they were before the fix: no capacity repair, no immigrants
        return GeneticMapper(repair_capacity=False, immigrant_rate=0.0)
    if label == "sa-before":
        return AnnealingMapper(repair_capacity=False)
    return get_mapper(label)


def sparsity_task(task: tuple) -> Any:
    """A backend task of the sparsity parts, on sparse_eyeriss: ("optimal", layer, density, time limit) -> the
    optimal mapper's result at that input density; ("robust", layer, densities, probs, mode, budget, reference,
    time limit) -> the sparsity-aware GA's result (per-density references by GA, or by the optimal mapper)."""
    from rlmap.search.sparsity import SparsityAwareMapper, at_density

    kind, la, *rest = task
    arch = load_architecture("sparse_eyeriss")
    if kind == "optimal":
        density, optimal_time = rest
        return OptimalMapper().search(at_density(la, density), arch, "edp", time_limit=optimal_time)
    dens, probs, mode, budget, ref, optimal_time = rest
    ref_mapper = OptimalMapper(time_limit=optimal_time) if ref == "optimal" else None
    return SparsityAwareMapper(GeneticMapper(), dens, probs=probs, mode=mode, reference=ref_mapper).search(
        la, arch, "edp", budget, 0
    )


# ----------------------------------------------------------------------------- parts
def part_comparison(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    rows = []
    nets = {n: distinct(load_network(n), args.max_layers) for n in args.networks}
    references(
        ((la, ARCH_OF.get(n, "eyeriss")) for n, net in nets.items() for la in net.layers), args.optimal_time, backend
    )
    for net_name, net in nets.items():
        arch_name = ARCH_OF.get(net_name, "eyeriss")
        runs: list[tuple[str, int, Any]] = []
        for budget in args.budgets:
            for m in args.mappers:
                if m == "surrogate" and budget > args.surrogate_max_budget:
                    continue
                for warm in (False, True):
                    label = f"{m}{' warm' if warm else ''}"
                    try:
                        res = run_network(net, arch_name, m, budget, warm, backend, warm_wave=args.warm_wave)
                    except Exception as exc:  # noqa: BLE001 - e.g. no surrogate checkpoint for this arch
                        print(f"  {net_name} {label} @{budget}: skipped ({str(exc).splitlines()[0][:80]})")
                        break
                    runs.append((label, budget, res))
        for label, samples in (("policy greedy", 1), ("policy best-of-100", 100)) if args.policy else ():
            try:
                runs.append((label, samples, run_network(net, arch_name, "policy", samples, False, backend)))
            except Exception as exc:  # noqa: BLE001 - no shipped policy for this arch
                print(f"  {net_name} {label}: skipped ({str(exc).splitlines()[0][:80]})")
        for _label, _b, res in runs:
            for la, r in zip(res.layers, res.results):
                note_best(la, arch_name, r.best)
        for label, budget, res in runs:
            refs = [REFS[(layer_key(la), arch_name)]["edp"] for la in res.layers]
            ratios = [r.best / ref for r, ref in zip(res.results, refs)]
            evals = [min(evaluations_to_reach(r.curve, 1.05 * ref), r.evaluations) for r, ref in zip(res.results, refs)]
            reached = sum(evaluations_to_reach(r.curve, 1.05 * ref) < math.inf for r, ref in zip(res.results, refs))
            rows.append(
                {
                    "network": net_name,
                    "arch": arch_name,
                    "mapper": label,
                    "budget": budget,
                    "layers": len(res.layers),
                    "edp_over_ref_geomean": geomean(ratios),
                    "edp_over_ref_worst": max(ratios),
                    "evals_to_1.05x_geomean": geomean(evals),
                    "reached_1.05x": reached,
                    "seconds": res.seconds,
                }
            )
    print(
        f"\n{'network':16} {'mapper':20} {'budget':>6} {'EDP/ref':>8} {'worst':>8} {'evals->1.05x':>12} "
        f"{'reached':>8} {'time s':>7}"
    )
    for r in rows:
        print(
            f"{r['network']:16} {r['mapper']:20} {r['budget']:>6} {r['edp_over_ref_geomean']:8.3f} "
            f"{r['edp_over_ref_worst']:8.3f} {r['evals_to_1.05x_geomean']:12.1f} "
            f"{r['reached_1.05x']:>4}/{r['layers']:<3} {r['seconds']:7.1f}"
        )
    print(f"time s: wall clock of each network run, its layers searched on {backend.describe()}")
    out["comparison"] = rows
    _plot_comparison(rows, Path(args.out))


def part_warmstart(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    res_rows = []
    budget = args.warm_budget
    nets = {n: distinct(load_network(n), args.max_layers) for n in args.warm_networks}
    references(
        ((la, ARCH_OF.get(n, "eyeriss")) for n, net in nets.items() for la in net.layers), args.optimal_time, backend
    )
    for net_name, net in nets.items():
        arch_name = ARCH_OF.get(net_name, "eyeriss")
        per_seed = []
        for s in range(args.warm_seeds):
            cold = run_network(net, arch_name, "ga", budget, False, backend, seed=s)
            warm = run_network(net, arch_name, "ga", budget, True, backend, seed=s, warm_wave=args.warm_wave)
            for la, a, b in zip(net.layers, cold.results, warm.results):
                note_best(la, arch_name, min(a.best, b.best))
            per_seed.append((cold, warm))
        for s, (cold, warm) in enumerate(per_seed):
            refs = [REFS[(layer_key(la), arch_name)]["edp"] for la in net.layers]
            ce_raw = [evaluations_to_reach(r.curve, 1.05 * f) for r, f in zip(cold.results, refs)]
            we_raw = [evaluations_to_reach(r.curve, 1.05 * f) for r, f in zip(warm.results, refs)]
            ce, we = [min(x, budget) for x in ce_raw], [min(x, budget) for x in we_raw]
            # the first layer has nothing to warm-start from: it is left out of the comparison
            row = {
                "network": net_name,
                "seed": s,
                "budget": budget,
                "layers": len(refs) - 1,
                "cold_evals_geomean": geomean(ce[1:]),
                "warm_evals_geomean": geomean(we[1:]),
                "cold_reached": sum(x < math.inf for x in ce_raw[1:]),
                "warm_reached": sum(x < math.inf for x in we_raw[1:]),
                "cold_edp_over_ref": geomean([r.best / f for r, f in zip(cold.results, refs)]),
                "warm_edp_over_ref": geomean([r.best / f for r, f in zip(warm.results, refs)]),
                "cold_seconds": cold.seconds,
                "warm_seconds": warm.seconds,
            }
            row["speedup"] = row["cold_evals_geomean"] / row["warm_evals_geomean"]
            res_rows.append(row)
            print(
                f"warm-start {net_name} seed {s} GA-{budget}: evals to 1.05x geomean cold "
                f"{row['cold_evals_geomean']:.1f} ({row['cold_reached']}/{row['layers']} reached) vs warm "
                f"{row['warm_evals_geomean']:.1f} ({row['warm_reached']}/{row['layers']}): {row['speedup']:.2f}x; "
                f"EDP/ref {row['cold_edp_over_ref']:.3f} -> {row['warm_edp_over_ref']:.3f}"
            )
    out["warmstart"] = res_rows


def part_sparsity(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    from rlmap.model.costmodel import CostModel
    from rlmap.search.sparsity import at_density

    dens = [0.2, 0.5, 1.0]
    modes = ("worst", "expected")
    arch = load_architecture("sparse_eyeriss")
    net = distinct(load_network("resnet50_sparse"), args.sparse_layers)
    # per layer: its optimum at each density, then the robust search in each mode (all layers' tasks at once)
    tasks: list[tuple] = []
    for la in net.layers:
        tasks += [("optimal", la, d, args.optimal_time) for d in dens]
        tasks += [
            ("robust", la, dens, None, mode, args.sparse_budget, args.sparse_reference, args.optimal_time)
            for mode in modes
        ]
    results = run_tasks(backend, sparsity_task, tasks)
    per_layer = len(dens) + len(modes)
    rows = []
    for k, la in enumerate(net.layers):
        refs = results[k * per_layer : k * per_layer + len(dens)]
        row: dict[str, Any] = {"layer": la.name, "proven": [r.proven_optimal for r in refs]}
        for mode, res in zip(modes, results[k * per_layer + len(dens) : (k + 1) * per_layer]):
            for name, m in (("robust", res.mapping),):
                row[f"{mode}_{name}"] = [
                    CostModel(at_density(la, d), arch).evaluate(m).edp / r.best for d, r in zip(dens, refs)
                ]
        own = la.density.inputs
        single = refs[dens.index(own)].mapping if own in dens else refs[-1].mapping
        row["single_density"] = own
        row["single"] = [CostModel(at_density(la, d), arch).evaluate(single).edp / r.best for d, r in zip(dens, refs)]
        rows.append(row)

        def f(xs: list[float]) -> str:
            return " ".join("inf" if not math.isfinite(x) else f"{x:.3f}" for x in xs)

        print(
            f"sparsity {la.name}: robust(worst) {f(row['worst_robust'])} | robust(expected) "
            f"{f(row['expected_robust'])} | single@{own} {f(row['single'])}  (densities {dens}, / own optimum)"
        )
    out["sparsity"] = {"densities": dens, "budget": args.sparse_budget, "rows": rows}


def part_sparsity_bound(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    """Why a robust mapping cannot reach each density's own optimum: the best EDP at density 0.2 among
    mappings that are also valid when the inputs are dense (GA on the 0.2 objective under the dense
    capacity), over the optimum at 0.2 alone."""
    from rlmap.model.costmodel import CostModel
    from rlmap.search.sparsity import at_density

    arch = load_architecture("sparse_eyeriss")
    rows = []
    layers = distinct(load_network("resnet50_sparse"), args.sparse_layers).layers
    tasks: list[tuple] = []
    for la in layers:
        tasks.append(("optimal", la, 0.2, args.optimal_time))
        tasks.append(("robust", la, [0.2, 1.0], [1.0, 0.0], "expected", 20000, "optimal", args.optimal_time))
    results = run_tasks(backend, sparsity_task, tasks)
    for la, opt, r in zip(layers, results[0::2], results[1::2]):
        ratio = CostModel(at_density(la, 0.2), arch).evaluate(r.mapping).edp / opt.best
        rows.append({"layer": la.name, "ratio_at_0.2_valid_dense": ratio})
        print(
            f"sparsity bound {la.name}: best at density 0.2 among mappings valid at 1.0 (GA-20000) / optimum at "
            f"0.2 = {ratio:.3f}"
        )
    out["sparsity_bound"] = rows


def part_spread(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    seeds = 5
    cases: list[tuple[str, str, Layer, str]] = []  # (network, arch, layer, mapper label)
    for net_name, arch_name in (
        ("mnasnet", "eyeriss"),
        ("vgg16", "eyeriss"),
        ("gpt2_small", "eyeriss"),
        ("mnasnet", "simba"),
        ("gpt2_small", "edge"),
    ):
        net = distinct(load_network(net_name), args.spread_layers)
        for la in net.layers:
            variants = ["ga", "sa"]
            if args.spread_baseline:  # the mappers as they were before the fix: no capacity repair, no immigrants
                variants += ["ga-before", "sa-before"]
            cases += [(net_name, arch_name, la, label) for label in variants]
    # every seed of every case is one search task
    tasks = [(label, la, arch_name, 1000, layer_seed(s, 0)) for _n, arch_name, la, label in cases for s in range(seeds)]
    results = run_tasks(backend, search_task, tasks)
    rows = []
    for k, (net_name, arch_name, la, label) in enumerate(cases):
        b = [best for best, _t in results[k * seeds : (k + 1) * seeds]]
        rows.append(
            {
                "network": net_name,
                "arch": arch_name,
                "layer": la.name,
                "mapper": label,
                "worst_over_best": max(b) / min(b),
                "best": b,
            }
        )
    for m in dict.fromkeys(r["mapper"] for r in rows):
        sel = [r for r in rows if r["mapper"] == m]
        worst = max(sel, key=lambda r: r["worst_over_best"])
        over = sum(r["worst_over_best"] >= 2 for r in sel)
        print(
            f"spread {m}-1000, 5 seeds, {len(sel)} layer/arch pairs: worst/best median "
            f"{np.median([r['worst_over_best'] for r in sel]):.3f}, max {worst['worst_over_best']:.3f} "
            f"({worst['network']}/{worst['layer']} on {worst['arch']}); >= 2x on {over}"
        )
    out["spread"] = rows


def part_marvel(args: argparse.Namespace, out: dict[str, Any], backend: Backend) -> None:
    rows = []
    cases = [  # (network, arch, layer)
        (net_name, ARCH_OF.get(net_name, "eyeriss"), la)
        for net_name in args.networks
        for la in distinct(load_network(net_name), args.max_layers).layers
    ]
    references(((la, arch_name) for _n, arch_name, la in cases), args.optimal_time, backend)
    # per layer and budget: Marvel's search, then GA's
    tasks = [
        (m, la, arch_name, budget, 0)
        for _n, arch_name, la in cases
        for budget in args.budgets
        for m in ("marvel", "ga")
    ]
    results = iter(run_tasks(backend, search_task, tasks))
    for net_name, arch_name, la in cases:
        ref = REFS[(layer_key(la), arch_name)]
        for budget in args.budgets:
            (mv_best, mv_s), (ga_best, ga_s) = next(results), next(results)
            note_best(la, arch_name, min(mv_best, ga_best))
            rows.append(
                {
                    "network": net_name,
                    "layer": la.name,
                    "budget": budget,
                    "marvel": mv_best,
                    "ga": ga_best,
                    "marvel_s": mv_s,
                    "ga_s": ga_s,
                    "optimal_s": ref["seconds"],
                    "ref_proven": ref["proven"],
                    "key": (layer_key(la), arch_name),
                }
            )
    for r in rows:
        ref = REFS[r.pop("key")]["edp"]
        r["marvel_over_ref"], r["ga_over_ref"] = r["marvel"] / ref, r["ga"] / ref
    for budget in args.budgets:
        sel = [r for r in rows if r["budget"] == budget]
        print(
            f"marvel @{budget}: EDP/ref geomean {geomean([r['marvel_over_ref'] for r in sel]):.3f} "
            f"(worst {max(r['marvel_over_ref'] for r in sel):.3f}, within 1.2x on "
            f"{sum(r['marvel_over_ref'] <= 1.2 for r in sel)}/{len(sel)}), "
            f"GA {geomean([r['ga_over_ref'] for r in sel]):.3f}; "
            f"time marvel {sum(r['marvel_s'] for r in sel):.1f} s, GA {sum(r['ga_s'] for r in sel):.1f} s, optimal "
            f"{sum(r['optimal_s'] for r in sel):.1f} s ({sum(r['ref_proven'] for r in sel)}/{len(sel)} proven)"
        )
    print(f"marvel times: wall clock of each search, summed; searches run on {backend.describe()}")
    out["marvel"] = rows


def _plot_comparison(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = sorted({r["network"] for r in rows})
    fig, axes = plt.subplots(1, len(nets), figsize=(4.5 * len(nets), 3.8), squeeze=False)
    for ax, net in zip(axes[0], nets):
        sel = [r for r in rows if r["network"] == net]
        for m in dict.fromkeys(r["mapper"] for r in sel):
            pts = sorted((r["budget"], r["edp_over_ref_geomean"]) for r in sel if r["mapper"] == m)
            if len(pts) > 1:
                ax.plot(*zip(*pts), marker="o", label=m, linestyle="--" if "warm" in m else "-")
            else:
                ax.scatter(*zip(*pts), label=m, marker="x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(net)
        ax.set_xlabel("evaluations per layer")
        ax.set_ylabel("EDP / reference (geomean over layers)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "mapper_comparison.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="comparison,warmstart,sparsity,spread,marvel")
    ap.add_argument("--networks", default="resnet50,mobilenetv2,bert_base,resnet50_sparse")
    ap.add_argument("--mappers", default="random,ga,sa,surrogate,marvel")
    ap.add_argument("--budgets", default="100,1000,10000")
    ap.add_argument("--max-layers", type=int, default=0, help="evenly chosen distinct layers per network (0 = all)")
    ap.add_argument("--optimal-time", type=float, default=30.0)
    ap.add_argument(
        "--surrogate-max-budget",
        type=int,
        default=1000,
        help="the surrogate mapper only up to this budget (its screening makes 10,000 slow)",
    )
    ap.add_argument("--warm-networks", default="resnet50,mobilenetv2")
    ap.add_argument("--warm-budget", type=int, default=2000)
    ap.add_argument("--warm-seeds", type=int, default=1)
    ap.add_argument("--sparse-layers", type=int, default=4)
    ap.add_argument("--sparse-budget", type=int, default=6000)
    ap.add_argument(
        "--sparse-reference",
        default="ga",
        choices=("ga", "optimal"),
        help="per-density references inside the robust search: GA (half the budget) or the optimal mapper",
    )
    ap.add_argument("--spread-layers", type=int, default=4)
    ap.add_argument("--spread-baseline", action="store_true", help="also run GA/SA without the robustness fixes")
    ap.add_argument("--no-policy", dest="policy", action="store_false", help="comparison: leave out the policy's rows")
    ap.add_argument("--out", default="docs/mapper_comparison")
    ap.add_argument(
        "-j",
        "--processes",
        type=int,
        default=1,
        help="searches in parallel local processes (same figures for any N; wall times are then with N workers)",
    )
    ap.add_argument(
        "--ray",
        default=None,
        help="run the searches on Ray: auto, local or HOST:PORT (see docs/distributed.md)",
        metavar="ADDRESS",
    )
    ap.add_argument(
        "--warm-wave",
        type=int,
        default=1,
        metavar="N",
        help="with warm start, layers searched at once (each uses only layers of earlier waves); raise it with "
        "-j/--ray to run warm-started runs in parallel -- results depend on N, never on the workers",
    )
    args = ap.parse_args()
    args.networks = [n for n in args.networks.split(",") if n]
    args.warm_networks = [n for n in args.warm_networks.split(",") if n]
    args.mappers = [m for m in args.mappers.split(",") if m]
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.max_layers = args.max_layers or None
    out: dict[str, Any] = {"args": {k: v for k, v in vars(args).items()}}
    t0 = time.perf_counter()
    parts = {
        "comparison": part_comparison,
        "warmstart": part_warmstart,
        "sparsity": part_sparsity,
        "spread": part_spread,
        "marvel": part_marvel,
        "sparsity-bound": part_sparsity_bound,
    }
    for p in args.parts.split(","):
        if p not in parts:
            raise SystemExit(f"unknown part {p!r} (expected one of {', '.join(parts)})")
    with backend_from_options(args.processes, args.ray, env=False) as backend:
        for p in args.parts.split(","):
            parts[p](args, out, backend)
    out["references"] = [{"arch": k[1], "layer_key": str(k[0]), **v} for k, v in REFS.items()]
    out["seconds"] = time.perf_counter() - t0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"mapper_comparison_{'_'.join(args.parts.split(','))}.json"
    (Path(args.out) / name).write_text(
        json.dumps(out, indent=1, default=lambda x: None if isinstance(x, float) else str(x))
    )
    print(f"wrote {Path(args.out) / name} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
