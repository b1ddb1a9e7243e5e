"""Scaling and overhead of the execution backends: the same layer-search job on 1 and 2 workers, locally and on Ray.

    python benchmarks/distributed.py [--network resnet50] [--mapper ga] [--budget 2000] [--noop 200]

Prints (1) the job's task count and the mean time of one task (a distinct layer searched in this process),
(2) wall time with the local backend on 1 and 2 processes and on a local Ray instance with 1 and 2 tasks in
flight, the speed-up, and whether every result equals the in-process one, (3) Ray's overhead per task: the
round trip of an empty task (submit, schedule, run, fetch, one at a time), as a share of the mean task time,
and the driver's throughput with many empty tasks in flight (what bounds a large cluster), and (4) a paper
estimate of a co-design run (`--estimate-candidates` accelerators, each mapping this network) on `--estimate-cores`
cores from those figures.
Nothing is tuned to this job; numbers depend on the load of the machine (print `nproc` and the load with them).
"""

from __future__ import annotations

import argparse
import os
import time

from rlmap.execution import LocalBackend, run_tasks
from rlmap.execution.ray_backend import RayBackend
from rlmap.search.driver import _map_one, layer_seed
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import layer_key


def noop(x: int) -> int:
    return x


def jobs_of(network: str, arch: str, mapper: str, budget: int, seed: int) -> list[tuple]:
    """The tasks `rlmap search` runs for this problem (one per distinct layer), built as rlmap.search.driver does."""
    net, a = load_network(network), load_architecture(arch)
    seen: set = set()
    out = []
    for i, layer in enumerate(net.layers):
        if layer_key(layer) not in seen:
            seen.add(layer_key(layer))
            out.append((mapper, layer, a, "edp", budget, layer_seed(seed, i), None))
    return out


def timed(backend, fn, args) -> tuple[float, list]:
    t0 = time.perf_counter()
    res = run_tasks(backend, fn, args)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="resnet50")
    ap.add_argument("--arch", default="eyeriss")
    ap.add_argument("--mapper", default="ga")
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="rounds over all configurations (best time kept)")
    ap.add_argument("--noop", type=int, default=200, help="empty tasks for the overhead figures")
    ap.add_argument(
        "--estimate-candidates",
        type=int,
        default=50_000,
        help="candidate accelerators of the paper estimate (co-design: each maps this job's network)",
    )
    ap.add_argument("--estimate-cores", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    jobs = jobs_of(args.network, args.arch, args.mapper, args.budget, args.seed)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared with other work)")
    run_tasks(LocalBackend(1), _map_one, jobs[:1])  # compile (numba) outside the timings
    _, ref = timed(LocalBackend(1), _map_one, jobs)

    def same(res: list) -> str:
        return "same results" if [r.best for r in res] == [r.best for r in ref] else "RESULTS DIFFER"

    best: dict[str, float] = {}
    notes: dict[str, str] = {}

    def record(name: str, t: float, res: list) -> None:
        best[name] = min(best.get(name, float("inf")), t)
        notes[name] = same(res) if notes.get(name, "same results") == "same results" else notes[name]

    with RayBackend("local", num_cpus=2) as ray1:
        timed(ray1, _map_one, jobs[:2])  # start the workers and load numba caches outside the timings
        for _ in range(args.repeats):  # configurations interleaved, best of the repeats: the load here varies
            record("in this process", *timed(LocalBackend(1), _map_one, jobs))
            for n in (1, 2):
                # spawned processes pay their imports and numba cache loads inside the timing, as `rlmap search -j` does
                record(f"local, {n} process{'es' if n > 1 else ''}", *timed(LocalBackend(n), _map_one, jobs))
                ray1.max_in_flight = n
                record(f"ray, {n} worker{'s' if n > 1 else ''}", *timed(ray1, _map_one, jobs))
        ray1.max_in_flight = 1
        timed(ray1, noop, list(range(20)))
        t_rt, _ = timed(ray1, noop, list(range(args.noop)))
        ray1.max_in_flight = 64
        t_tp, _ = timed(ray1, noop, list(range(args.noop * 5)))
        describe = ray1.describe()
    rows = [(name, best[name], notes[name]) for name in best]
    t_one = best["in this process"]
    per_task = t_one / len(jobs)
    print(
        f"job: {args.mapper} budget {args.budget} on {args.network} / {args.arch}: {len(jobs)} tasks "
        f"(distinct layers), mean task {per_task * 1000:.0f} ms in this process; best of {args.repeats} rounds"
    )
    print(f"Ray: {describe}")
    for name, t, note in rows:
        print(f"  {name:<22} {t:7.2f} s   {note}")
    loc = {name: t for name, t, _ in rows}
    print(
        f"speed-up 1 -> 2 workers: local {loc['local, 1 process'] / loc['local, 2 processes']:.2f}x, "
        f"ray {loc['ray, 1 worker'] / loc['ray, 2 workers']:.2f}x"
    )
    rt = t_rt / args.noop
    print(
        f"Ray round trip of an empty task (one at a time): {rt * 1000:.2f} ms = {100 * rt / per_task:.1f} % of the "
        f"mean layer-search task; ray 1 worker vs in-process: {100 * (loc['ray, 1 worker'] / t_one - 1):+.1f} %"
    )
    tput = args.noop * 5 / t_tp
    print(f"driver throughput, empty tasks, 64 in flight: {tput:.0f} tasks/s ({1000 / tput:.2f} ms per task)")
    n, cores = args.estimate_candidates, args.estimate_cores
    compute = n * len(jobs) * per_task / cores
    for label, tasks in (("one layer per task", n * len(jobs)), ("one candidate (whole network) per task", n)):
        driver = tasks / tput
        print(
            f"paper estimate, co-design of {n:,} candidates x {len(jobs)} layers ({per_task * 1000:.0f} ms each) on "
            f"{cores} cores, {label}: compute {compute / 60:.1f} min if perfectly spread, driver {driver / 60:.1f} "
            f"min to hand out and gather {tasks:,} tasks -> {max(compute, driver) / 60:.1f} min at best "
            f"({'driver' if driver > compute else 'compute'}-bound)"
        )


if __name__ == "__main__":
    main()
