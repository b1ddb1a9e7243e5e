"""Marvel's CPU time (time.process_time) and wall time over the layers of mapper_comparison's marvel part.

    PYTHONPATH=CODE_TREE python benchmarks/marvel_time.py [--budget 10000]

CPU time is the figure to compare on a shared machine (wall time counts other jobs); run two code trees back
to back (PYTHONPATH picks which rlmap is imported) to compare them.
"""

from __future__ import annotations

import argparse
import time

from mapper_comparison import ARCH_OF, distinct

import rlmap
from rlmap.search.driver import get_mapper
from rlmap.spec.io import load_architecture, load_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=10000)
    ap.add_argument("--networks", default="resnet50,mobilenetv2,bert_base,resnet50_sparse")
    ap.add_argument("--max-layers", type=int, default=6)
    args = ap.parse_args()
    mapper = get_mapper("marvel")
    mapper.search(load_network("resnet18").layers[3], load_architecture("eyeriss"), "edp", 200, 0)  # numba cache load
    cpu = wall = 0.0
    n = 0
    for net in args.networks.split(","):
        arch = load_architecture(ARCH_OF.get(net, "eyeriss"))
        for la in distinct(load_network(net), args.max_layers).layers:
            c, t = time.process_time(), time.perf_counter()
            mapper.search(la, arch, "edp", args.budget, 0)
            cpu += time.process_time() - c
            wall += time.perf_counter() - t
            n += 1
    print(f"rlmap from {rlmap.__file__}: marvel@{args.budget} on {n} layers: CPU {cpu:.1f} s, wall {wall:.1f} s")


if __name__ == "__main__":
    main()
