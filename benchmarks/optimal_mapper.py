"""Optimal mapper on real layers: map-space sizes after each pruning step, time, proof or gap.

    python benchmarks/optimal_mapper.py [--networks resnet50,mobilenetv2] [--arch eyeriss]
                                        [--time-limit 10] [--objective edp] [--layers N]

For each layer: the map-space size (tilings x loop orders), the tilings that fit the fanouts, the partial
tilings cut by the partial-tiling bound before they were expanded ("cut early"), the complete fitting
tilings the search visited, how many of those survived the order-relaxed lower bound and had their orders
optimised ("swept"), the seconds spent, whether the optimum was proven, and the ratio of the best EDP
found to the compulsory-traffic lower bound (when not proven, it caps how far from optimal it can be).
"""

from __future__ import annotations

import argparse
import time

from rlmap.search.mapspace import format_big
from rlmap.search.optimal import OptimalMapper
from rlmap.spec.io import load_architecture, load_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="resnet50,mobilenetv2")
    ap.add_argument("--arch", default="eyeriss")
    ap.add_argument("--objective", default="edp")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds of exhaustive search per layer")
    ap.add_argument("--layers", type=int, default=0, help="only the first N layers of each network (0 = all)")
    args = ap.parse_args()
    arch = load_architecture(args.arch)
    mapper = OptimalMapper(time_limit=args.time_limit)
    print(f"optimal mapper, {args.arch}, objective {args.objective}, exhaustive time limit {args.time_limit:g} s")
    head = (f"{'network':<12} {'layer':<34} {'map space':>9} {'fit fanout':>10} {'cut early':>9} {'visited':>9}"
            f" {'swept':>8} {'seconds':>8} {'proven':>6} {'best/LB':>8}")
    print(head)
    for net_name in args.networks.split(","):
        net = load_network(net_name)
        layers = net.layers[: args.layers] if args.layers else net.layers
        proven = 0
        total = 0.0
        slowest = 0.0
        for layer in layers:
            t0 = time.perf_counter()
            r = mapper.search(layer, arch, args.objective)
            dt = time.perf_counter() - t0
            total += dt
            slowest = max(slowest, dt)
            proven += r.proven_optimal
            n = r.notes
            print(f"{net_name:<12} {layer.name[:34]:<34} {format_big(n['total']):>9} "
                  f"{format_big(n['tilings_fitting_fanout']):>10} {format_big(n['partial_tilings_pruned']):>9} "
                  f"{format_big(n['fitting_tilings_seen']):>9} "
                  f"{format_big(n['tilings_swept']):>8} {dt:>8.1f} {'yes' if r.proven_optimal else 'no':>6} "
                  f"{n['gap_to_lower_bound']:>8.2f}", flush=True)
        print(f"{net_name}: {proven}/{len(layers)} layers proven optimal, {total:.0f} s in all, "
              f"{total / max(len(layers), 1):.1f} s per layer on average, {slowest:.1f} s at most")


if __name__ == "__main__":
    main()
