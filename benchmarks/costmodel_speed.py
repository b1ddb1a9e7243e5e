"""Cost-model speed: one mapping through the public API, and batched mappings per second.

    python benchmarks/costmodel_speed.py [--arch eyeriss] [--batch 1000000]

Targets (issue 3): <= 50 us for one mapping; >= 1,000,000 mappings/s batched on one core.
Mappings are valid ones drawn uniformly by MapSpace.sample for several ResNet-50 layers.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rlmap.model.costmodel import CostModel  # noqa: E402
from rlmap.search.mapspace import MapSpace  # noqa: E402
from rlmap.spec.io import load_architecture, load_network  # noqa: E402
from rlmap.spec.mapping import MappingBatch  # noqa: E402


def bench_arch(arch_name: str, layers: list, batch: int, repeats: int) -> tuple[float, float, float, float]:
    """Median over layers of (wall s per single mapping, wall mappings/s batched) and the same in CPU time."""
    arch = load_architecture(arch_name)
    singles, rates, singles_cpu, rates_cpu = [], [], [], []
    for layer in layers:
        model = CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        genomes, _ = space.sample(2048, np.random.default_rng(0))
        mb = space.decode(genomes)
        one = [mb[i] for i in range(len(mb))]
        model.evaluate(one[0])
        t0, c0 = time.perf_counter(), time.process_time()
        for m in one:
            model.evaluate(m)
        singles.append((time.perf_counter() - t0) / len(one))
        singles_cpu.append((time.process_time() - c0) / len(one))
        reps = -(-batch // len(mb))
        big = MappingBatch(
            *(np.tile(getattr(mb, f), (reps, 1, 1))[:batch] for f in ("temporal", "spatial_x", "spatial_y", "order"))
        )
        model.evaluate_batch(big.take(slice(0, 8192)))
        best = best_cpu = np.inf
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            model.evaluate_batch(big)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        rates.append(batch / best)
        rates_cpu.append(batch / best_cpu)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return med(singles), med(rates), med(singles_cpu), med(rates_cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", help="preset(s); default: eyeriss and simba (4 storage levels)")
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    net = load_network("resnet50")
    layers = [net.layers[i] for i in (0, 2, 10, 30)]
    print("wall = elapsed time; cpu = this process's CPU time (less sensitive to other load on the machine)")
    print(f"{'arch':<10} {'levels':>6} {'one mapping us (wall/cpu)':>26} {'batched mappings/s (wall/cpu)':>30}")
    for name in args.arch or ["eyeriss", "simba"]:
        single, rate, single_cpu, rate_cpu = bench_arch(name, layers, args.batch, args.repeats)
        print(
            f"{name:<10} {load_architecture(name).n_levels:>6} {single * 1e6:>12.1f} / {single_cpu * 1e6:<11.1f}"
            f" {rate:>14,.0f} / {rate_cpu:<13,.0f}"
        )


if __name__ == "__main__":
    main()
