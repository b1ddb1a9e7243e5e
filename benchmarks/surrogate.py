"""Benchmark of the learned surrogate: accuracy on held-out networks, inference speed, surrogate-guided search.

    python benchmarks/surrogate.py                     # the shipped Eyeriss surrogate, full run (~15 min)
    python benchmarks/surrogate.py --quick             # fewer layers / seeds / samples (~4 min)
    python benchmarks/surrogate.py --checkpoint runs/x/model.pt --json results/surrogate.json
    python benchmarks/surrogate.py --quick -j 2        # section 3's searches as backend tasks (or --ray auto)

Prints, and checks against the targets:

1. accuracy on the held-out networks (resnet18, mnasnet, gpt2_small by default; their layer shapes were
   excluded from the training data): Spearman of predicted vs true EDP among the mappings of each layer
   (target >= 0.95) and the median |log2 EDP error| (target <= 0.10);
2. batched inference throughput, encoding included (target >= 100,000 mappings/s), wall-clock and
   process CPU time (the machine may be shared);
3. surrogate-guided search vs random search and the genetic mapper (and annealing, for reference) at
   100 and 1,000 TRUE evaluations, as EDP ratio to the optimum where OptimalMapper proves it within
   --optimal-seconds, else to the best EDP any method found with a large budget (marked 'best-known').
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rlmap.cli.surrogate import print_eval
from rlmap.execution import Backend, LocalBackend, backend_from_options, run_tasks
from rlmap.model.costmodel import CostModel
from rlmap.search.annealing import AnnealingMapper
from rlmap.search.genetic import GeneticMapper
from rlmap.search.mapspace import MapSpace
from rlmap.search.optimal import OptimalMapper
from rlmap.search.random_search import RandomMapper
from rlmap.spec import io
from rlmap.surrogate.data import random_valid
from rlmap.surrogate.model import SurrogateRewardModel, default_checkpoint
from rlmap.surrogate.search import SurrogateMapper
from rlmap.surrogate.workflow import evaluate_surrogate

HELD_OUT = ["resnet18", "mnasnet", "gpt2_small"]
# (network, layer) pairs for the search comparison: 3x3 / 1x1 / 7x7-stem convs, depthwise 3x3 and 5x5,
# strided projections, an FC layer, GEMMs and an attention matmul -- all from held-out networks
SEARCH_LAYERS = [
    ("resnet18", "conv1"),
    ("resnet18", "layer2.0.conv2"),
    ("resnet18", "layer3.0.downsample"),
    ("resnet18", "layer4.0.downsample"),
    ("resnet18", "fc"),
    ("mnasnet", "block2.dw"),
    ("mnasnet", "block4.dw"),
    ("mnasnet", "block3.expand"),
    ("gpt2_small", "c_attn"),
    ("gpt2_small", "attn_scores"),
]
QUICK_LAYERS = [("resnet18", "layer2.0.conv2"), ("resnet18", "fc"), ("mnasnet", "block2.dw"), ("gpt2_small", "c_attn")]


def _layer(net: str, name: str):
    n = io.load_network(net)
    try:
        return n.layer(name)
    except KeyError:
        # fall back to the first layer whose name starts with `name` (names of merged layers carry ranges)
        for lyr in n.layers:
            if lyr.name.startswith(name):
                return lyr
        raise


def gmean(x: list[float]) -> float:
    x = [v for v in x if np.isfinite(v)]
    return float(np.exp(np.mean(np.log(x)))) if x else float("inf")


def bench_accuracy(checkpoint: Path, samples: int, networks: list[str]) -> dict:
    print(f"\n== 1. accuracy on held-out networks {', '.join(networks)} ({samples} mappings per layer)")
    res = evaluate_surrogate(checkpoint, networks, "eyeriss", samples_per_layer=samples, progress=False)
    print_eval(res)
    return res


def bench_throughput(rm: SurrogateRewardModel, n: int = 100_000) -> dict:
    print(f"\n== 2. batched inference throughput ({n:,} mappings per layer, encoding included)")
    arch = io.load_architecture("eyeriss")
    out = {}
    for net, name in (("resnet18", "layer2.0.conv2"), ("mnasnet", "block2.dw"), ("gpt2_small", "c_attn")):
        layer = _layer(net, name)
        space = MapSpace(layer, arch)
        g, _ = random_valid(space, 4096, np.random.default_rng(0))
        batch = space.decode(g).take(np.resize(np.arange(len(g)), n))
        rm.predict_edp(layer, arch, batch.take(np.arange(2048)))  # warm-up (encoder cache)
        walls, cpus = [], []
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            rm.predict_edp(layer, arch, batch)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        model = CostModel(layer, arch)
        t = time.perf_counter()
        model.evaluate_batch(batch)
        cm = time.perf_counter() - t
        rec = {"wall_per_s": n / min(walls), "cpu_per_s": n / min(cpus), "builtin_costmodel_per_s": n / cm}
        out[f"{net}/{layer.name}"] = rec
        print(
            f"  {net}/{layer.name:<28} {rec['wall_per_s']:>10,.0f} mappings/s wall  {rec['cpu_per_s']:>10,.0f} /s CPU"
            f"   (built-in cost model: {rec['builtin_costmodel_per_s']:,.0f} /s)"
        )
    out["min_wall_per_s"] = min(v["wall_per_s"] for k, v in out.items() if isinstance(v, dict))
    out["min_cpu_per_s"] = min(v["cpu_per_s"] for k, v in out.items() if isinstance(v, dict))
    return out


MAPPERS = {"random": RandomMapper, "ga": GeneticMapper, "sa": AnnealingMapper, "surrogate": SurrogateMapper}
_mappers: dict[tuple[str, str], object] = {}  # per worker process: the surrogate checkpoint is loaded once


def _mapper(mname: str, checkpoint: Path):
    key = (mname, str(checkpoint))
    if key not in _mappers:
        _mappers[key] = SurrogateMapper(checkpoint=checkpoint) if mname == "surrogate" else MAPPERS[mname]()
    return _mappers[key]


def search_task(arg: tuple) -> tuple[float, float]:
    """A backend task: one (layer, budget, mapper, seed) search of section 3: (best EDP, seconds)."""
    net, name, budget, mname, seed, checkpoint = arg
    torch.set_num_threads(1)
    layer, arch = _layer(net, name), io.load_architecture("eyeriss")
    t = time.perf_counter()
    r = _mapper(mname, checkpoint).search(layer, arch, "edp", budget, seed)
    seconds = time.perf_counter() - t
    assert r.evaluations <= budget
    if r.mapping is not None:  # the reported cost is the true model's
        true = CostModel(layer, arch).evaluate(r.mapping)
        assert math.isclose(true.edp, r.best, rel_tol=1e-9), (mname, true.edp, r.best)
    return r.best, seconds


def reference_task(arg: tuple) -> tuple[float, bool, list[float]]:
    """A backend task: a layer's optimal-mapper result (best, proven) and, when not proven, the large-budget runs."""
    net, name, optimal_seconds, ref_budget = arg
    layer, arch = _layer(net, name), io.load_architecture("eyeriss")
    opt = OptimalMapper(time_limit=optimal_seconds).search(layer, arch, "edp")
    if opt.proven_optimal:
        return opt.best, True, []
    big = [GeneticMapper().search(layer, arch, "edp", ref_budget, s).best for s in range(2)]
    big.append(AnnealingMapper().search(layer, arch, "edp", ref_budget, 0).best)
    return opt.best, False, big


def bench_search(
    checkpoint: Path,
    layers: list[tuple[str, str]],
    seeds: int,
    budgets: list[int],
    optimal_seconds: float,
    ref_budget: int,
    backend: Backend | None = None,
) -> dict:
    print(
        f"\n== 3. search at {', '.join(map(str, budgets))} true evaluations, {seeds} seeds, EDP / reference EDP "
        f"(geometric mean over seeds)"
    )
    mappers = list(MAPPERS)
    backend = backend or LocalBackend(1)
    # every search and every reference is a backend task (-j / --ray); results come back in task order
    tasks = [
        (net, name, budget, m, seed, checkpoint)
        for net, name in layers
        for budget in budgets
        for m in mappers
        for seed in range(seeds)
    ]
    t0 = time.perf_counter()
    found = dict(zip(tasks, run_tasks(backend, search_task, tasks)))
    refs = dict(
        zip(layers, run_tasks(backend, reference_task, [(n, m, optimal_seconds, ref_budget) for n, m in layers]))
    )
    per_layer = (time.perf_counter() - t0) / max(1, len(layers))
    rows = []
    for net, name in layers:
        layer = _layer(net, name)
        results: dict[tuple[str, int], list[float]] = {}
        times: dict[tuple[str, int], list[float]] = {}
        for budget in budgets:
            for mname in mappers:
                for seed in range(seeds):
                    best, sec = found[(net, name, budget, mname, seed, checkpoint)]
                    results.setdefault((mname, budget), []).append(best)
                    times.setdefault((mname, budget), []).append(sec)
        best_seen = min(v for vals in results.values() for v in vals)
        opt_best, proven, big = refs[(net, name)]
        if proven:
            ref, kind = opt_best, "optimum"
        else:
            ref, kind = min([best_seen, opt_best, *big]), "best-known"
        row = {
            "layer": f"{net}/{layer.name}",
            "shape": layer.shape_str(),
            "reference": ref,
            "reference_kind": kind,
            "ratios": {f"{m}@{b}": gmean([v / ref for v in vals]) for (m, b), vals in results.items()},
            "seconds": {f"{m}@{b}": float(np.mean(v)) for (m, b), v in times.items()},
            "layer_seconds": per_layer,
        }
        rows.append(row)
        cells = "  ".join(f"{k} {v:6.3f}" for k, v in row["ratios"].items() if not k.startswith("sa"))
        print(f"  {row['layer']:<34} [{kind:<10}] {cells}", flush=True)
    summary = {}
    for budget in budgets:
        for m in mappers:
            key = f"{m}@{budget}"
            summary[key] = gmean([r["ratios"][key] for r in rows])
    print("\n  geometric mean over layers of EDP / reference:")
    for budget in budgets:
        line = "  ".join(f"{m} {summary[f'{m}@{budget}']:.3f}" for m in mappers)
        wins_ga = sum(r["ratios"][f"surrogate@{budget}"] < r["ratios"][f"ga@{budget}"] for r in rows)
        wins_rand = sum(r["ratios"][f"surrogate@{budget}"] < r["ratios"][f"random@{budget}"] for r in rows)
        print(
            f"    budget {budget:>5}: {line}   (surrogate better than ga on {wins_ga}/{len(rows)} layers, "
            f"than random on {wins_rand}/{len(rows)})"
        )
        summary[f"wins_vs_ga@{budget}"] = wins_ga
        summary[f"wins_vs_random@{budget}"] = wins_rand
    print(
        "  mean seconds per search: "
        + ", ".join(f"{k} {np.mean([r['seconds'][k] for r in rows]):.2f}" for k in rows[0]["seconds"])
    )
    print(
        f"  references: {sum(r['reference_kind'] == 'optimum' for r in rows)} proven optima "
        f"(OptimalMapper within {optimal_seconds:g} s), the rest best-known (min over every run here, "
        f"OptimalMapper's best, 2 GA runs and 1 SA run of {ref_budget:,} evaluations)"
    )
    return {"rows": rows, "summary": summary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=default_checkpoint())
    ap.add_argument("--quick", action="store_true", help="4 layers, 2 seeds, 300 samples per layer")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None, help="mappings per held-out layer for the accuracy test")
    ap.add_argument("--optimal-seconds", type=float, default=20.0)
    ap.add_argument("--ref-budget", type=int, default=20_000)
    ap.add_argument("--skip", default="", help="comma list of sections to skip: accuracy,throughput,search")
    ap.add_argument("--json", type=Path, default=None, help="write all figures as JSON")
    ap.add_argument(
        "-j",
        "--processes",
        type=int,
        default=1,
        help="section 3's searches in parallel local processes (same figures for any N)",
    )
    ap.add_argument("--ray", default=None, help="run them on Ray: auto, local or HOST:PORT (see docs/distributed.md)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds or (2 if args.quick else 3)
    samples = args.samples or (300 if args.quick else 1000)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    rm = SurrogateRewardModel(args.checkpoint)
    meta = rm.meta
    print(
        f"surrogate {args.checkpoint}: trained on {meta.get('archs')} / {meta.get('networks')}, "
        f"{meta.get('samples', 0):,} samples, {meta.get('epochs')} epochs"
    )
    out: dict = {"checkpoint": str(args.checkpoint)}
    targets = []
    if "accuracy" not in skip:
        acc = bench_accuracy(args.checkpoint, samples, HELD_OUT)
        out["accuracy"] = acc
        o = acc["overall"]
        targets.append(("held-out Spearman (mean over layers) >= 0.95", o["spearman_mean"], o["spearman_mean"] >= 0.95))
        targets.append(
            (
                "held-out median |log2 EDP error| <= 0.10",
                o["median_abs_log2_edp_error"],
                o["median_abs_log2_edp_error"] <= 0.10,
            )
        )
    if "throughput" not in skip:
        thr = bench_throughput(rm)
        out["throughput"] = thr
        # judged on process CPU time (one torch thread): on a shared machine the wall-clock rate also
        # measures the other tenants; both are printed and stored
        targets.append(
            (
                "inference >= 100,000 mappings/s (slowest layer, CPU time of 1 thread)",
                thr["min_cpu_per_s"],
                thr["min_cpu_per_s"] >= 100_000,
            )
        )
        targets.append(
            (
                "  (same, wall clock -- depends on the machine's other load)",
                thr["min_wall_per_s"],
                thr["min_wall_per_s"] >= 100_000,
            )
        )
    if "search" not in skip:
        layers = QUICK_LAYERS if args.quick else SEARCH_LAYERS
        with backend_from_options(args.processes, args.ray, env=False) as backend:
            srch = bench_search(
                args.checkpoint,
                layers,
                seeds,
                [100, 1000],
                args.optimal_seconds,
                5_000 if args.quick else args.ref_budget,
                backend,
            )
        out["search"] = srch
        s = srch["summary"]
        for b in (100, 1000):
            ok = s[f"surrogate@{b}"] < s[f"ga@{b}"] and s[f"surrogate@{b}"] < s[f"random@{b}"]
            targets.append(
                (f"surrogate search beats random and GA at {b} evaluations (gmean EDP ratio)", s[f"surrogate@{b}"], ok)
            )
    print("\n== targets")
    for name, value, ok in targets:
        print(
            f"  [{'PASS' if ok else 'MISS'}] {name}: {value:,.4f}"
            if value < 1000
            else f"  [{'PASS' if ok else 'MISS'}] {name}: {value:,.0f}"
        )
    out["targets"] = [{"target": n, "value": v, "pass": bool(ok)} for n, v, ok in targets]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=lambda x: float(x) if np.isscalar(x) else str(x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
