"""Optimal mapper on real layers: map-space sizes after each pruning step, time, proof or gap.

    python benchmarks/optimal_mapper.py [--networks resnet50,mobilenetv2] [--arch eyeriss,simba,tpu_like]
                                        [--objective edp,energy,latency] [--time-limit 10] [--layers N]
                                        [--all-layers] [-j N | --ray auto|local|HOST:PORT]

Every distinct layer (same shape, strides and densities = same layer: `rlmap.spec.layer.layer_key`) of each
network is searched once per architecture and objective, under the mapper's enforced wall-clock limit.
Per layer: the map-space size (tilings x loop orders), the tilings that fit the fanouts, the partial
tilings cut by the partial-tiling bound before they were expanded ("cut early"), the complete fitting
tilings the search visited, how many of those survived the order-relaxed lower bound and had their orders
optimised ("swept"), how many tilings overflowed a level with whole tiles and had their per-tensor tile
placements searched ("placed"), the wall-clock seconds spent and the CPU seconds of this process (on a shared machine
the wall clock also counts other jobs' time slices; the limit is wall clock), whether the optimum was proven,
the ratio of the best objective found to the layer's compulsory-traffic bound ("best/LB": how much room the
mapping problem has), and when not proven its ratio to the search's own lower bound on the optimum ("gap").
Each (network, architecture, objective) ends with a summary line:
layers proven, mean and max seconds.  The compiled kernels are loaded before the first layer (once per
process; `load_kernels`).  The load average is printed at the start and the end (the machine
may be shared).  With -j N / --ray the layers are searched as execution-backend tasks (docs/distributed.md), each
still under its own wall-clock limit; the rows come out in the same order.
"""

from __future__ import annotations

import argparse
import os
import time

from rlmap.execution import backend_from_options, run_tasks
from rlmap.search.mapspace import format_big
from rlmap.search.optimal import OptimalMapper, load_kernels
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import distinct_layers


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def search_task(arg: tuple) -> tuple[dict, bool, float, float]:
    """A backend task: one layer's optimal search: (notes, proven, wall seconds, CPU seconds of its process)."""
    layer, arch, objective, time_limit, placement = arg
    load_kernels()  # once per process, outside the clocks (a no-op once loaded)
    t0, c0 = time.perf_counter(), time.process_time()
    r = OptimalMapper(time_limit=time_limit, placement=placement).search(layer, arch, objective)
    return r.notes, bool(r.proven_optimal), time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="resnet50,mobilenetv2")
    ap.add_argument("--arch", default="eyeriss", help="comma-separated architecture presets or files")
    ap.add_argument("--objective", default="edp", help="comma-separated objectives (energy, latency, edp)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="wall-clock seconds per layer (enforced)")
    ap.add_argument("--layers", type=int, default=0, help="only the first N distinct layers of each network (0 = all)")
    ap.add_argument("--all-layers", action="store_true", help="every layer, repeated shapes included")
    ap.add_argument("--placement", action="store_true", help="search per-tensor tile placements too")
    ap.add_argument(
        "-j",
        "--processes",
        type=int,
        default=1,
        help="layers searched in parallel local processes (each still gets --time-limit of wall clock)",
    )
    ap.add_argument("--ray", default=None, help="search them on Ray: auto, local or HOST:PORT (docs/distributed.md)")
    args = ap.parse_args()
    load_kernels()  # once per process, outside every clock (the mapper's own limit does not count it either)
    space = "per-tensor placements and bypass choices" if args.placement else "one tile per level, bypass choices"
    print(f"optimal mapper ({space}), time limit {args.time_limit:g} s per layer; {_load()} on {os.cpu_count()} cores")
    head = (
        f"{'network':<12} {'arch':<9} {'obj':<7} {'layer':<30} {'map space':>9} {'fit fanout':>10} "
        f"{'cut early':>9} {'visited':>9} {'swept':>8} {'placed':>8} {'seconds':>8} {'cpu s':>6} {'proven':>6} "
        f"{'best/LB':>8} {'gap':>6}"
    )
    # the whole sweep as backend tasks (one per layer); the table is printed in sweep order as results arrive
    tasks: list[tuple] = []
    events: list[tuple] = []  # ("head",) | ("row", task, network) | ("summary", first, end, network, arch, objective)
    for arch_name in args.arch.split(","):
        arch = load_architecture(arch_name)
        for objective in args.objective.split(","):
            events.append(("head",))
            for net_name in args.networks.split(","):
                net = load_network(net_name)
                layers = list(net.layers) if args.all_layers else distinct_layers(net.layers)
                layers = layers[: args.layers] if args.layers else layers
                first = len(tasks)
                for layer in layers:
                    events.append(("row", len(tasks), net_name))
                    tasks.append((layer, arch, objective, args.time_limit, args.placement))
                events.append(("summary", first, len(tasks), net_name, arch.name, objective))
    results: dict[int, tuple] = {}
    summary: list[str] = []

    def emit(i: int, res: tuple, _from_store: bool) -> None:
        results[i] = res
        flush()

    def flush() -> None:
        while events:
            ev = events[0]
            if (
                ev[0] == "row"
                and ev[1] not in results
                or ev[0] == "summary"
                and not all(j in results for j in range(ev[1], ev[2]))
            ):
                return
            events.pop(0)
            if ev[0] == "head":
                print(head)
            elif ev[0] == "row":
                _print_row(ev[2], tasks[ev[1]], results[ev[1]])
            else:
                summary.append(_summary_line(ev[3], ev[4], ev[5], [results[j] for j in range(ev[1], ev[2])]))
                print(summary[-1], flush=True)

    flush()  # the first head
    with backend_from_options(args.processes, args.ray, env=False) as backend:
        run_tasks(backend, search_task, tasks, on_result=emit)
    flush()  # what no result released: heads and summaries of groups without layers
    print("\nsummary")
    for line in summary:
        print(line)
    print(_load())


def _print_row(net_name: str, task: tuple, res: tuple) -> None:
    layer, arch, objective = task[:3]
    n, proven, dt, cpu = res
    print(
        f"{net_name[:12]:<12} {arch.name[:9]:<9} {objective:<7} {layer.name[:30]:<30} "
        f"{format_big(n['total']):>9} {format_big(n['tilings_fitting_fanout']):>10} "
        f"{format_big(n['partial_tilings_pruned']):>9} {format_big(n['fitting_tilings_seen']):>9} "
        f"{format_big(n['tilings_swept']):>8} {format_big(n['tilings_placed']):>8} {dt:>8.1f} {cpu:>6.1f} "
        f"{'yes' if proven else 'no':>6} "
        f"{n['gap_to_lower_bound']:>8.3g} {'' if proven else format(n['gap_to_bound'], '.3g'):>6}",
        flush=True,
    )


def _summary_line(net_name: str, arch_name: str, objective: str, res: list[tuple]) -> str:
    times, cpus = [r[2] for r in res], [r[3] for r in res]
    return (
        f"{net_name}, {arch_name}, {objective}: {sum(r[1] for r in res)}/{len(res)} layers proven optimal; wall "
        f"{sum(times) / max(len(times), 1):.1f} s per layer on average, {max(times, default=0):.1f} s "
        f"at most; CPU {sum(cpus) / max(len(cpus), 1):.1f} s on average, {max(cpus, default=0):.1f} s "
        f"at most"
    )


if __name__ == "__main__":
    main()
