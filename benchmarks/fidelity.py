"""Fidelity of rlmap against AccelForge, per layer, under each modelling semantics; and evaluation speed.

    python benchmarks/fidelity.py [--archs eyeriss,simba,edge] [--per-layer 30] [--seed 0]

For real network layers (ResNet-18, MobileNetV2, BERT-base, plus a dilated 3x3) on each architecture it
draws `--per-layer` uniform random valid mappings (MapSpace.sample) and the best mapping of a short
genetic search, evaluates every one in AccelForge (one subprocess; AccelForge from $RLMAP_ACCELFORGE_PYTHON
or .venv-accelforge) and in rlmap under both semantics, and prints per (layer, architecture): the median and
max relative error of energy and of cycles, and the Spearman rank correlation of EDP over the mappings.

Then, per layer, the time of one fixed-mapping evaluation in each tool, same mapping, same run: rlmap's
`CostModel.evaluate` (median over 20 rounds of 100 calls) and AccelForge's `evaluate_mapping` on a fresh copy
of the loaded spec (median of 5 calls; loading the YAML, `Spec.from_yaml`, is shown apart), wall and CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from rlmap.interop.accelforge_bridge import evaluate_in_accelforge, unavailable_reason
from rlmap.model.costmodel import CostModel
from rlmap.search.genetic import GeneticMapper
from rlmap.search.mapspace import MapSpace
from rlmap.spec.io import load_architecture, load_network
from rlmap.spec.layer import Layer
from rlmap.surrogate.model import spearman

LAYERS = [
    ("resnet18", "conv1"),
    ("resnet18", "layer2.0.conv2"),
    ("resnet18", "layer2.0.downsample"),
    ("mobilenetv2", "block3.dw"),
    ("mobilenetv2", "block2.dw"),
    ("mobilenetv2", "block3.project"),
    ("bert_base", "q_proj"),
    ("bert_base", "attn_scores"),
]
DILATED = Layer(name="aspp_d2", K=256, C=256, P=33, Q=33, R=3, S=3, dilation=2, padding=2)
SEMANTICS = ("timeloop", "accelforge")


def layers() -> list[tuple[str, Layer]]:
    out = [(f"{net}/{name}", load_network(net).layer(name)) for net, name in LAYERS]
    return out + [("deeplab-like/aspp_d2", DILATED)]


def rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="eyeriss,simba,edge")
    ap.add_argument("--per-layer", type=int, default=30, help="random valid mappings per (layer, architecture)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    why = unavailable_reason()
    if why:
        sys.exit(f"error: {why}")
    archs = [load_architecture(a.strip()) for a in args.archs.split(",")]
    groups = []  # (label, layer, arch, [mappings]); the GA best is the last one
    for li, (label, layer) in enumerate(layers()):
        for ai, arch in enumerate(archs):
            space = MapSpace(layer, arch)
            genomes, _ = space.sample(args.per_layer, np.random.default_rng(args.seed + 100 * li + ai))
            batch = space.decode(genomes)
            maps = [batch[i] for i in range(len(batch))]
            best = GeneticMapper().search(layer, arch, objective="edp", budget=3000, seed=args.seed + li).mapping
            if best is not None:
                maps.append(best)
            groups.append((label, layer, arch, maps))
    cases, timing = [], []
    for label, layer, arch, maps in groups:
        for k, m in enumerate(maps):
            timed = arch is archs[0] and k == len(maps) - 1  # per layer: the GA best on the first architecture
            cases.append((layer, arch, m, 5 if timed else 1))
            if timed:
                timing.append((label, arch, layer, m, len(cases) - 1))
    t0 = time.perf_counter()
    version, results = evaluate_in_accelforge(
        [(layer, arch, m) for layer, arch, m, _ in cases], repeat=[n for *_, n in cases]
    )
    wall = time.perf_counter() - t0

    print(
        f"rlmap vs AccelForge {version}: {len(cases)} mappings ({args.per_layer} random valid + the best of a "
        f"3,000-evaluation genetic search per layer and architecture); AccelForge took {wall:.0f} s"
    )
    print("relative error |rlmap - AccelForge| / AccelForge, median / max; Spearman of EDP over the mappings\n")
    head = f"{'layer':30s} {'arch':8s} {'n':>3s}"
    for sem in SEMANTICS:
        head += f" | {sem + ' energy med/max':>19s} {'cycles med/max':>17s} {'rho':>6s}"
    print(head)
    print("-" * len(head))
    pos = 0
    totals = {sem: {"e": [], "c": [], "rho": []} for sem in SEMANTICS}
    failed = 0
    for label, layer, arch, maps in groups:
        res = results[pos : pos + len(maps)]
        pos += len(maps)
        ok = [i for i, r in enumerate(res) if r.ok]
        failed += len(maps) - len(ok)
        af_e = np.array([res[i].energy for i in ok])
        af_c = np.array([res[i].cycles for i in ok])
        row = f"{label:30s} {arch.name:8s} {len(ok):3d}"
        for sem in SEMANTICS:
            model = CostModel(layer, arch.model_copy(update={"semantics": sem}))
            costs = [model.evaluate(maps[i]) for i in ok]
            e = np.array([c.energy for c in costs])
            c = np.array([c.cycles for c in costs])
            ee, ce = rel_err(e, af_e), rel_err(c, af_c)
            rho = spearman(e * c, af_e * af_c)
            totals[sem]["e"] += list(ee)
            totals[sem]["c"] += list(ce)
            totals[sem]["rho"].append(rho)
            row += f" | {pct(np.median(ee))} {pct(ee.max())} {pct(np.median(ce))} {pct(ce.max())} {rho:6.3f}"
        print(row)
    print("-" * len(head))
    row = f"{'all':30s} {'':8s} {len(cases) - failed:3d}"
    for sem in SEMANTICS:
        ee, ce = np.array(totals[sem]["e"]), np.array(totals[sem]["c"])
        row += (
            f" | {pct(np.median(ee))} {pct(ee.max())} {pct(np.median(ce))} {pct(ce.max())}"
            f" {min(totals[sem]['rho']):6.3f}"
        )
    print(row + "   (rho: the smallest)")
    if failed:
        print(f"AccelForge could not evaluate {failed} mapping(s)")

    print(
        "\nOne fixed-mapping evaluation, same mapping in both tools (the GA best, first architecture); wall and CPU "
        "time (the machine is shared: CPU time is the steadier figure)"
    )
    print(
        f"{'layer':30s} {'arch':8s} {'rlmap evaluate':>22s} {'AccelForge evaluate':>22s} {'(+ load)':>9s} "
        f"{'ratio wall / cpu':>18s}"
    )
    ratios, ratios_cpu = [], []
    for label, arch, layer, m, idx in timing:
        model = CostModel(layer, arch)
        model.evaluate(m)
        wall, cpu = [], []
        for _ in range(20):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(100):
                model.evaluate(m)
            wall.append((time.perf_counter() - t0) / 100)
            cpu.append((time.process_time() - c0) / 100)
        mine, mine_cpu = statistics.median(wall), statistics.median(cpu)
        r = results[idx]
        if not r.ok:
            continue
        ratios.append(r.eval_s / mine)
        ratios_cpu.append(r.eval_cpu_s / mine_cpu)
        print(
            f"{label:30s} {arch.name:8s} {mine * 1e6:7.1f} / {mine_cpu * 1e6:5.1f} us "
            f"{r.eval_s * 1e3:7.1f} / {r.eval_cpu_s * 1e3:5.1f} ms {r.load_s * 1e3:6.1f} ms "
            f"{ratios[-1]:8.0f}x / {ratios_cpu[-1]:6.0f}x"
        )
    if ratios:
        print(
            f"median ratio AccelForge / rlmap: {statistics.median(ratios):,.0f}x wall, "
            f"{statistics.median(ratios_cpu):,.0f}x CPU"
        )


def pct(x: float) -> str:
    """A relative error as a percentage, 3 significant digits (AccelForge's float rounding shows as ~1e-6 %)."""
    return f"{100 * x:8.3g}%"


if __name__ == "__main__":
    main()
