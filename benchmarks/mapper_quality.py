"""Mapping quality of the classical mappers: EDP as a ratio to the optimum, per budget.

    python benchmarks/mapper_quality.py [--budgets 100,1000,10000] [--seeds 3] [--plot mapper_quality.png]

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="100,1000,10000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--objective", default="edp")
    ap.add_argument("--optimal-time", type=float, default=60.0, help="exhaustive-search seconds per layer")
    ap.add_argument("--plot", default="mapper_quality.png", help="PNG of best-so-far EDP vs evaluations ('' = none)")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    mappers = [RandomMapper(), GeneticMapper(), AnnealingMapper()]
    rows = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    for label, net_name, prefix, arch_name in CASES:
        layer = find(net_name, prefix)
        arch = load_architecture(arch_name)
        model = CostModel(layer, arch)
        t0 = time.perf_counter()
        ref = OptimalMapper(time_limit=args.optimal_time).search(layer, arch, args.objective, model=model)
        t_opt = time.perf_counter() - t0
        runs: dict[tuple[str, int], list[float]] = {}
        curves[label] = {}
        for mapper in mappers:
            for budget in budgets:
                vals = []
                for seed in range(args.seeds):
                    res = mapper.search(layer, arch, args.objective, budget=budget, seed=seed, model=model)
                    vals.append(res.best)
                    if budget == budgets[-1] and seed == 0:
                        curves[label][mapper.name] = res.curve
                runs[(mapper.name, budget)] = vals
        best_known = min([ref.best] + [v for vals in runs.values() for v in vals])
        reference = ref.best if ref.proven_optimal else best_known
        for (name, budget), vals in runs.items():
            ratio = math.exp(np.mean([math.log(v / reference) for v in vals]))
            rows.append((label, layer.name, arch_name, name, budget, ratio, ref.proven_optimal, t_opt))
        print(f"{label}: {layer.name} on {arch_name}: optimal EDP {ref.best:.4g} "
              f"({'proven' if ref.proven_optimal else 'NOT proven; ratios are to the best found'}, {t_opt:.0f} s)",
              flush=True)
    print()
    print(f"{'layer':<10} {'mapper':<7} " + " ".join(f"{'B=' + str(b):>9}" for b in budgets) + "   reference")
    for label, *_ in CASES:
        for mapper in mappers:
            cells = [r[5] for r in rows if r[0] == label and r[3] == mapper.name]
            proven = next(r[6] for r in rows if r[0] == label)
            print(f"{label:<10} {mapper.name:<7} " + " ".join(f"{c:>9.3f}" for c in cells)
                  + f"   {'optimum' if proven else 'best found'}")
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
