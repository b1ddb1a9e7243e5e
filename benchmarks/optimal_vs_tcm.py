"""rlmap's optimal mapper against AccelForge's TCM (its FFM mapper) on the same architecture, in AccelForge.

    python benchmarks/optimal_vs_tcm.py [--tcm-cap 600] [--sweep-cap 120] [--resnet50 N] [--time-limit 600]
                                        [--objective energy] [--tcm-jobs 0]

Architecture (as the issue's table): DRAM -> a 128 KiB buffer (65,536 16-bit words) -> 16 x 16 PEs -> a
64-word register file per PE -> one MAC each; the register file may bypass any tensor (TCM and rlmap both
decide), energies per word in MAC units (DRAM 200, buffer 6, register file 1, MAC 1), `semantics:
accelforge`.  Layers: the issue's three (1x1 conv C256 K64 56x56, GEMM 1024^3, 3x3 conv C=K=64 56x56),
then the distinct ResNet-50 layers (`--resnet50 N`: the first N; 0 = none, -1 = all).

Per layer, in one run: rlmap's `OptimalMapper` (its wall clock; proven or not), its mapping scored by
AccelForge (the exported LoopTree evaluated by `evaluate_mapping`), and TCM (`map_workload_to_arch(spec,
eval_in_detail=False)` with AccelForge's default of one process per CPU unless `--tcm-jobs N`, run as a
subprocess of AccelForge's Python 3.12 interpreter and killed at its cap: `--tcm-cap` seconds for the issue's
three layers, `--sweep-cap` for the ResNet-50 ones); TCM's mapping is then scored by AccelForge's model
(`evaluate_mapping`, outside TCM's timed call).  TCM gets the layer without rank variables of extent 1
(`accelforge_problem`): the same layer and architecture, without the loops over size-1 ranks that
multiplied its templates (1,176 instead of 96 on a GEMM) and made it time out.  "TCM/rlmap" is TCM's
objective over rlmap's, both in AccelForge (> 1:
rlmap's is better); "speedup" is TCM's wall time over rlmap's.  Both wall times come from this run, on
whatever else the machine is doing (the load average is printed at the start and the end).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlmap.interop.accelforge_bridge import evaluate_in_accelforge, find_accelforge_python, unavailable_reason
from rlmap.interop.export import accelforge_problem, dump_yaml
from rlmap.model.costmodel import objective_value
from rlmap.search.optimal import OptimalMapper, load_kernels
from rlmap.spec.arch import Architecture
from rlmap.spec.io import load_network
from rlmap.spec.layer import Layer, distinct_layers

ARCH = {
    "name": "tcm16x16",
    "semantics": "accelforge",
    "data_bits": 16,
    "clock_ghz": 1.0,
    "levels": [
        {"name": "DRAM", "read_energy": 200, "write_energy": 200},
        {"name": "Buffer", "capacity": 65536, "read_energy": 6, "write_energy": 6, "fanout": {"x": 16, "y": 16}},
        {
            "name": "RF",
            "capacity": 64,
            "read_energy": 1,
            "write_energy": 1,
            "may_bypass": ["inputs", "weights", "outputs"],
        },
    ],
    "compute": {"mac_energy": 1.0},
}

ISSUE_LAYERS = [
    Layer(name="1x1 conv C256 K64 56x56", K=64, C=256, P=56, Q=56),
    Layer(name="GEMM 1024^3", kind="gemm", K=1024, C=1024, P=1024),
    Layer(name="3x3 conv C=K=64 56x56", K=64, C=64, P=56, Q=56, R=3, S=3, padding=1),
]
WORKER = Path(__file__).with_name("tcm_worker.py")


def run_tcm(layer: Layer, arch: Architecture, objective: str, cap: float, jobs: int = 0) -> dict:
    """TCM on one layer in AccelForge's interpreter (`jobs` processes, 0 = its default), killed after `cap` s."""
    docs = accelforge_problem(layer, arch)
    job = {stem: dump_yaml(doc) for stem, doc in docs.items()} | {"metric": objective, "jobs": jobs or None}
    t0 = time.perf_counter()
    # own session, so that a timeout ends TCM's worker processes (joblib's) with it
    proc = subprocess.Popen(
        [str(find_accelforge_python()), str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(json.dumps(job), timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"ok": False, "error": f"did not finish in {cap:g} s", "wall": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "error": (stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
    out = json.loads(stdout)
    out["wall"] = wall
    return out


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcm-cap", type=float, default=600.0, help="seconds TCM gets per layer of the issue's three")
    ap.add_argument("--sweep-cap", type=float, default=120.0, help="seconds TCM gets per ResNet-50 layer")
    ap.add_argument("--resnet50", type=int, default=-1, help="distinct ResNet-50 layers to run (-1 = all, 0 = none)")
    ap.add_argument(
        "--issue-layers",
        default="0,1,2",
        help="which of the issue's three layers (comma-separated indices; empty = none)",
    )
    ap.add_argument("--time-limit", type=float, default=600.0, help="rlmap's optimal mapper limit per layer (s)")
    ap.add_argument("--objective", default="energy", choices=["energy", "latency", "edp"])
    ap.add_argument("--no-placement", action="store_true", help="rlmap's mapper without per-tensor placements")
    ap.add_argument(
        "--tcm-jobs", type=int, default=0, help="TCM's parallel processes (0 = AccelForge's default, one per CPU)"
    )
    args = ap.parse_args()
    why = unavailable_reason()
    if why:
        sys.exit(f"error: {why}")
    arch = Architecture.model_validate(ARCH)
    layers = [(ISSUE_LAYERS[int(i)], args.tcm_cap) for i in args.issue_layers.split(",") if i.strip()]
    if args.resnet50:
        rn = distinct_layers(load_network("resnet50").layers)
        layers += [(layer, args.sweep_cap) for layer in (rn if args.resnet50 < 0 else rn[: args.resnet50])]
    load_kernels()
    mapper = OptimalMapper(time_limit=args.time_limit, placement=not args.no_placement)
    print(
        f"rlmap optimal vs AccelForge TCM, objective {args.objective}, architecture {arch.name} "
        f"(16x16 PEs, 128 KiB buffer, 64-word RF, RF may bypass every tensor); TCM with "
        f"{args.tcm_jobs or 'its default (one per CPU)'} process(es); {_load()} on {os.cpu_count()} cores"
    )
    head = (
        f"{'layer':<32} {'rlmap s':>8} {'proven':>6} {'rlmap (AF)':>12} {'TCM s':>8} {'TCM (AF)':>12} "
        f"{'TCM/rlmap':>9} {'speedup':>8}"
    )
    print(head, flush=True)
    rows = []
    for layer, cap in layers:
        t0 = time.perf_counter()
        res = mapper.search(layer, arch, args.objective)
        r_s = time.perf_counter() - t0
        _, (af,) = evaluate_in_accelforge([(layer, arch, res.mapping)])
        r_obj = objective_value(af.energy, af.cycles, args.objective) if af.ok else float("nan")
        tcm = run_tcm(layer, arch, args.objective, cap, args.tcm_jobs)
        if tcm["ok"]:
            t_obj = objective_value(tcm["energy"], tcm["latency"] * arch.clock_ghz * 1e9, args.objective)
            ratio, speed = t_obj / r_obj, tcm["wall"] / r_s
            t_cell, ratio_cell, speed_cell = f"{t_obj:>12.6g}", f"{ratio:>9.5f}", f"{speed:>7.1f}x"
        else:
            t_cell, ratio_cell, speed_cell = f"{'-':>12}", f"{'-':>9}", f"{'-':>8}"
        line = (
            f"{layer.name[:32]:<32} {r_s:>8.1f} {'yes' if res.proven_optimal else 'no':>6} {r_obj:>12.6g} "
            f"{tcm['wall']:>8.1f} {t_cell} {ratio_cell} {speed_cell}"
        )
        if not tcm["ok"]:
            line += f"   TCM: {tcm['error']}"
        if not af.ok:
            line += f"   AccelForge rejected rlmap's mapping: {af.error}"
        print(line, flush=True)
        rows.append((res, af, tcm))
    done = [(r, a, t) for r, a, t in rows if t["ok"] and a.ok]
    better = sum(
        objective_value(t["energy"], t["latency"] * 1e9, args.objective)
        >= objective_value(a.energy, a.cycles, args.objective) * (1 - 1e-9)
        for r, a, t in done
    )
    print(
        f"\n{len(rows)} layers run; TCM finished on {len(done)}; rlmap's optimum equal or better in AccelForge on "
        f"{better}/{len(done)}; rlmap proved {sum(r.proven_optimal for r, _, _ in rows)}/{len(rows)}"
    )
    print(_load())


if __name__ == "__main__":
    main()
