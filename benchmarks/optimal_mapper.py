"""Optimal mapper on real layers: map-space sizes after each pruning step, time, proof or gap.

    python benchmarks/optimal_mapper.py [--networks resnet50,mobilenetv2] [--arch eyeriss,simba,tpu_like]
                                        [--objective edp,energy,latency] [--time-limit 10] [--layers N]
                                        [--all-layers]

Every distinct layer (same shape, strides and densities = same layer: `rlmap.spec.layer.layer_key`) of each
network is searched once per architecture and objective, under the mapper's enforced wall-clock limit.
Per layer: the map-space size (tilings x loop orders), the tilings that fit the fanouts, the partial
tilings cut by the partial-tiling bound before they were expanded ("cut early"), the complete fitting
tilings the search visited, how many of those survived the order-relaxed lower bound and had their orders
optimised ("swept"), how many tilings overflowed a level with whole tiles and had their per-tensor tile
placements searched ("placed"), the wall-clock seconds spent and the CPU seconds of this process (on a shared machine
the wall clock also counts other jobs' time slices; the limit is wall clock), whether the optimum was proven,
the ratio of the best objective found to the layer's compulsory-traffic bound ("best/LB": how much room the
mapping problem has), and when not proven its ratio to the search's own lower bound on the optimum ("gap").  Each (network, architecture, objective) ends with a summary line:
layers proven, mean and max seconds.  The compiled kernels are loaded before the first layer (once per
process; `load_kernels`).  The load average is printed at the start and the end (the machine
may be shared).
"""

from __future__ import annotations

import argparse
import os
import time

from rlmap.search.mapspace import format_big
from rlmap.search.optimal import OptimalMapper, load_kernels
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import distinct_layers


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="resnet50,mobilenetv2")
    ap.add_argument("--arch", default="eyeriss", help="comma-separated architecture presets or files")
    ap.add_argument("--objective", default="edp", help="comma-separated objectives (energy, latency, edp)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="wall-clock seconds per layer (enforced)")
    ap.add_argument("--layers", type=int, default=0, help="only the first N distinct layers of each network (0 = all)")
    ap.add_argument("--all-layers", action="store_true", help="every layer, repeated shapes included")
    ap.add_argument("--placement", action="store_true", help="search per-tensor tile placements too")
    args = ap.parse_args()
    mapper = OptimalMapper(time_limit=args.time_limit, placement=args.placement)
    load_kernels()  # once per process, outside every clock (the mapper's own limit does not count it either)
    space = "per-tensor placements and bypass choices" if args.placement else "one tile per level, bypass choices"
    print(f"optimal mapper ({space}), time limit {args.time_limit:g} s per layer; {_load()} on {os.cpu_count()} cores")
    head = (f"{'network':<12} {'arch':<9} {'obj':<7} {'layer':<30} {'map space':>9} {'fit fanout':>10} "
            f"{'cut early':>9} {'visited':>9} {'swept':>8} {'placed':>8} {'seconds':>8} {'cpu s':>6} {'proven':>6} {'best/LB':>8} "
            f"{'gap':>6}")
    summary = []
    for arch_name in args.arch.split(","):
        arch = load_architecture(arch_name)
        for objective in args.objective.split(","):
            print(head)
            for net_name in args.networks.split(","):
                net = load_network(net_name)
                layers = list(net.layers) if args.all_layers else distinct_layers(net.layers)
                layers = layers[: args.layers] if args.layers else layers
                proven = 0
                times = []
                cpus = []
                for layer in layers:
                    t0, c0 = time.perf_counter(), time.process_time()
                    r = mapper.search(layer, arch, objective)
                    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                    times.append(dt)
                    cpus.append(cpu)
                    proven += r.proven_optimal
                    n = r.notes
                    print(f"{net_name[:12]:<12} {arch.name[:9]:<9} {objective:<7} {layer.name[:30]:<30} "
                          f"{format_big(n['total']):>9} {format_big(n['tilings_fitting_fanout']):>10} "
                          f"{format_big(n['partial_tilings_pruned']):>9} {format_big(n['fitting_tilings_seen']):>9} "
                          f"{format_big(n['tilings_swept']):>8} {format_big(n['tilings_placed']):>8} {dt:>8.1f} {cpu:>6.1f} {'yes' if r.proven_optimal else 'no':>6} "
                          f"{n['gap_to_lower_bound']:>8.3g} {'' if r.proven_optimal else format(n['gap_to_bound'], '.3g'):>6}",
                          flush=True)
                line = (f"{net_name}, {arch.name}, {objective}: {proven}/{len(layers)} layers proven optimal; wall "
                        f"{sum(times) / max(len(times), 1):.1f} s per layer on average, {max(times, default=0):.1f} s "
                        f"at most; CPU {sum(cpus) / max(len(cpus), 1):.1f} s on average, {max(cpus, default=0):.1f} s "
                        f"at most")
                summary.append(line)
                print(line, flush=True)
    print("\nsummary")
    for line in summary:
        print(line)
    print(_load())


if __name__ == "__main__":
    main()
