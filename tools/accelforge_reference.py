"""Build the AccelForge reference data set that tests/test_accelforge_reference.py holds rlmap to.

    python tools/accelforge_reference.py [--per-pair 8] [-o tests/data/accelforge_reference.json]

For every (architecture preset, layer) pair below it draws random valid rlmap mappings (MapSpace.sample,
seeded) plus the best of a short random search, exports each with `rlmap.interop.export.to_accelforge`,
evaluates all of them in AccelForge (one subprocess, rlmap/interop/accelforge_bridge.py) and stores
AccelForge's numbers -- energy, cycles, reads and writes per level and tensor, in words of the level --
together with the architectures, layers and mappings, so the test needs neither AccelForge nor the
presets as they are today.  Run it again to re-check rlmap against a newer AccelForge (set
RLMAP_ACCELFORGE_PYTHON or create .venv-accelforge); it prints how far rlmap (accelforge semantics) is
from every new number before writing.

Layers: 3x3, 1x1, depthwise, GEMM, attention batched matmul (groups), strided 3x3, dilated 3x3, 7x7
stride 2.  No sparse layer: AccelForge 1.0.467 has no sparsity model (no densities, formats or SAFs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from rlmap.interop.accelforge_bridge import evaluate_in_accelforge, unavailable_reason
from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import MapSpace
from rlmap.search.random_search import RandomMapper
from rlmap.spec.io import dump_model, load_architecture
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping

ARCHS = ("eyeriss", "simba", "edge", "cloud", "tpu_like")
LAYERS = [
    Layer(name="conv3x3", K=16, C=8, P=8, Q=8, R=3, S=3, padding=1),
    Layer(name="pw1x1", kind="pointwise", K=32, C=16, P=8, Q=8),
    Layer(name="dw3x3", kind="depthwise", K=16, C=16, groups=16, P=8, Q=8, R=3, S=3, padding=1),
    Layer(name="gemm", kind="gemm", K=32, C=32, P=16),
    Layer(name="bmm", kind="matmul", K=16, C=32, P=16, groups=4),
    Layer(name="conv3x3_s2", K=16, C=8, P=4, Q=4, R=3, S=3, stride=2, padding=1),
    Layer(name="conv3x3_d2", K=8, C=8, P=6, Q=6, R=3, S=3, dilation=2, padding=2),
    Layer(name="conv7x7_s2", K=8, C=3, P=8, Q=8, R=7, S=7, stride=2, padding=3),
]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "accelforge_reference.json"


def mapping_rows(m: Mapping) -> dict[str, list]:
    return {
        "t": [list(r) for r in m.temporal],
        "x": [list(r) for r in m.spatial_x],
        "y": [list(r) for r in m.spatial_y],
        "o": [list(r) for r in m.order],
    }


def mapping_from_rows(d: dict[str, list]) -> Mapping:
    def mat(key: str) -> tuple:
        return tuple(tuple(r) for r in d[key])

    return Mapping(mat("t"), mat("x"), mat("y"), mat("o"))


def _compact(rows: list[list[float]]) -> list[list[float | int]]:
    """Counts as ints where they are integral (they nearly always are): a smaller file."""
    return [[int(x) if float(x).is_integer() else x for x in row] for row in rows]


def draw_cases(per_pair: int) -> list[tuple[str, Layer, Mapping]]:
    cases = []
    for a_i, name in enumerate(ARCHS):
        arch = load_architecture(name)
        for l_i, layer in enumerate(LAYERS):
            model = CostModel(layer, arch)
            space = MapSpace(layer, arch, model)
            genomes, _ = space.sample(per_pair, np.random.default_rng(1000 * a_i + l_i))
            batch = space.decode(genomes)
            maps = [batch[i] for i in range(len(batch))]
            best = RandomMapper().search(layer, arch, objective="edp", budget=400, seed=l_i, model=model).mapping
            if best is not None:
                maps.append(best)
            cases += [(name, layer, m) for m in maps]
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-pair", type=int, default=8, help="random mappings per (architecture, layer) pair")
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    why = unavailable_reason()
    if why:
        sys.exit(f"error: {why}")
    cases = draw_cases(args.per_pair)
    archs = {name: load_architecture(name) for name in ARCHS}
    t0 = time.perf_counter()
    version, results = evaluate_in_accelforge([(layer, archs[a], m) for a, layer, m in cases])
    print(f"AccelForge {version}: {len(cases)} mappings in {time.perf_counter() - t0:.0f} s")
    rows, worst = [], 0.0
    for (a, layer, m), r in zip(cases, results):
        if not r.ok:
            print(f"  AccelForge rejected a mapping of {layer.name} on {a}: {r.error}")
            continue
        rows.append(
            {
                "arch": a,
                "layer": layer.name,
                "mapping": mapping_rows(m),
                "energy": r.energy,
                "cycles": r.cycles,
                "reads": _compact(r.reads),
                "writes": _compact(r.writes),
            }
        )
        mine = CostModel(layer, archs[a].model_copy(update={"semantics": "accelforge"})).evaluate(m)
        worst = max(
            worst,
            abs(mine.energy / r.energy - 1),
            abs(mine.cycles / r.cycles - 1),
            *(
                abs(x - y) / max(y, 1.0)
                for kind in ("reads", "writes")
                for rx, ry in zip(getattr(mine, kind), getattr(r, kind))
                for x, y in zip(rx, ry)
            ),
        )
    print(f"rlmap (accelforge semantics) vs these numbers: largest relative difference {worst:.2e}")
    data = {
        "about": "AccelForge's evaluation of rlmap mappings (energy pJ, cycles, reads/writes [level][I, W, O] in "
        "words of the level); written by tools/accelforge_reference.py",
        "accelforge": version,
        "date": datetime.date.today().isoformat(),
        "archs": {name: dump_model(arch) for name, arch in archs.items()},
        "layers": {layer.name: dump_model(layer) for layer in LAYERS},
        "cases": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w") as fh:  # one case per line: small diffs when the data is regenerated
        head = json.dumps({k: v for k, v in data.items() if k != "cases"}, indent=1)[:-2]
        fh.write(head + ',\n "cases": [\n' + ",\n".join(json.dumps(r) for r in rows) + "\n ]\n}\n")
    print(f"wrote {len(rows)} cases to {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
