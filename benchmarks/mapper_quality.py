"""Mapping quality of the classical mappers: EDP as a ratio to the optimum, per budget.

    python benchmarks/mapper_quality.py [--budgets 100,1000,10000] [--seeds 3] [--plot mapper_quality.png]
                                        [-j N | --ray auto|local|HOST:PORT]

Layers: a depthwise and a pointwise convolution (MobileNetV2), a 3x3 convolution (ResNet-18), a GEMM
(BERT-base's attention output projection) and a sparse layer (ResNet-50 with pruned weights, on the
sparse Eyeriss preset).  The reference is the optimal mapper's result; where it could not prove the
optimum in its time limit the table says so and the ratio is to the best EDP any run found (so it is a
ratio to an upper bound of the optimum).  Ratios are geometric means over seeds.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from rlmap.execution import backend_from_options, run_tasks
from rlmap.model.costmodel import CostModel
from rlmap.search.annealing import AnnealingMapper
from rlmap.search.genetic import GeneticMapper
from rlmap.search.optimal import OptimalMapper
from rlmap.search.random_search import RandomMapper
from rlmap.spec.io import load_architecture, load_network

CASES = [  # (label, network, layer name prefix, arch)
    ("depthwise", "mobilenetv2", "block14.dw", "eyeriss"),
    ("pointwise", "mobilenetv2", "block14.project", "eyeriss"),
    ("conv3x3", "resnet18", "layer4.0.conv2", "eyeriss"),
    ("gemm", "bert_base", "attn_out", "eyeriss"),
    ("sparse", "resnet50_sparse", "layer4.0.conv2", "sparse_eyeriss"),
]


def find(net_name: str, prefix: str):  # noqa: ANN201
    net = load_network(net_name)
    for layer in net.layers:
        if layer.name.startswith(prefix):
            return layer
    raise SystemExit(f"{net_name} has no layer starting with {prefix!r}: {[l.name for l in net.layers][:20]}")


MAPPERS = {"random": RandomMapper, "ga": GeneticMapper, "sa": AnnealingMapper}


def run_one(task: tuple) -> tuple[float, bool, float, np.ndarray | None, str]:
    """One search of the sweep (a task for the execution backend): (best, proven, seconds, curve or None, layer)."""
    net_name, prefix, arch_name, mapper, budget, seed, objective, optimal_time, keep_curve = task
    layer, arch = find(net_name, prefix), load_architecture(arch_name)
    t0 = time.perf_counter()
    if mapper == "optimal":
        res = OptimalMapper(time_limit=optimal_time).search(layer, arch, objective, model=CostModel(layer, arch))
    else:
        res = MAPPERS[mapper]().search(layer, arch, objective, budget=budget, seed=seed)
    return res.best, res.proven_optimal, time.perf_counter() - t0, res.curve if keep_curve else None, layer.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="100,1000,10000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--objective", default="edp")
    ap.add_argument("--optimal-time", type=float, default=60.0, help="exhaustive-search seconds per layer")
    ap.add_argument("--plot", default="mapper_quality.png", help="PNG of best-so-far EDP vs evaluations ('' = none)")
    ap.add_argument("-j", "--processes", type=int, default=1, help="searches in parallel local processes")
    ap.add_argument(
        "--ray",
        default=None,
        help="run the searches on Ray: auto, local or HOST:PORT (see docs/distributed.md)",
        metavar="ADDRESS",
    )
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    names = list(MAPPERS)
    # every search of the sweep is one task (cases x mappers x budgets x seeds, plus each case's optimum)
    tasks = []
    for _label, net_name, prefix, arch_name in CASES:
        tasks.append((net_name, prefix, arch_name, "optimal", 0, 0, args.objective, args.optimal_time, False))
        tasks += [
            (net_name, prefix, arch_name, m, b, s, args.objective, args.optimal_time, b == budgets[-1] and s == 0)
            for m in names
            for b in budgets
            for s in range(args.seeds)
        ]
    with backend_from_options(args.processes, args.ray, env=False) as backend:
        results = dict(zip(tasks, run_tasks(backend, run_one, tasks)))
    rows = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    for label, net_name, prefix, arch_name in CASES:
        ref_best, proven, t_opt, _, layer_name = results[
            (net_name, prefix, arch_name, "optimal", 0, 0, args.objective, args.optimal_time, False)
        ]
        runs: dict[tuple[str, int], list[float]] = {}
        curves[label] = {}
        for task, (best, _p, _t, curve, _n) in results.items():
            if task[:3] == (net_name, prefix, arch_name) and task[3] != "optimal":
                runs.setdefault((task[3], task[4]), []).append(best)
                if curve is not None:
                    curves[label][task[3]] = curve
        best_known = min([ref_best] + [v for vals in runs.values() for v in vals])
        reference = ref_best if proven else best_known
        for (name, budget), vals in runs.items():
            ratio = math.exp(np.mean([math.log(v / reference) for v in vals]))
            rows.append((label, layer_name, arch_name, name, budget, ratio, proven, t_opt))
        print(
            f"{label}: {layer_name} on {arch_name}: optimal EDP {ref_best:.4g} "
            f"({'proven' if proven else 'NOT proven; ratios are to the best found'}, {t_opt:.0f} s)",
            flush=True,
        )
    print()
    print(f"{'layer':<10} {'mapper':<7} " + " ".join(f"{'B=' + str(b):>9}" for b in budgets) + "   reference")
    for label, *_ in CASES:
        for name in names:
            cells = [r[5] for r in rows if r[0] == label and r[3] == name]
            proven = next(r[6] for r in rows if r[0] == label)
            print(
                f"{label:<10} {name:<7} "
                + " ".join(f"{c:>9.3f}" for c in cells)
                + f"   {'optimum' if proven else 'best found'}"
            )
    print("\ncells: geometric mean over seeds of EDP / reference EDP (1.000 = optimal)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(CASES), figsize=(4 * len(CASES), 3.5))
        for ax, (label, *_rest) in zip(axes, CASES):
            for name, curve in curves[label].items():
                ax.loglog(np.arange(1, len(curve) + 1), curve, label=name)
            ax.set_title(label)
            ax.set_xlabel("evaluations")
        axes[0].set_ylabel("best EDP so far")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
