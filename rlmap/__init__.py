"""rlmap: learn and search mappings of DNN layers onto spatial accelerators.

The public entry points, one import away:

    from rlmap import load_network, load_architecture, CostModel, MapSpace
    net, arch = load_network("resnet50"), load_architecture("eyeriss")
    model = CostModel(net.layers[0], arch)

The package follows the data's path, each subpackage importing only those before it:
spec -> model -> search -> rl | surrogate -> interop -> cli (checked by import-linter, see pyproject.toml).
"""

import rlmap.rl  # noqa: F401  (registers the "policy" mapper; light: torch loads on use)
import rlmap.surrogate  # noqa: F401  (registers the "surrogate" mapper)
from rlmap.model.costmodel import Cost, CostModel, evaluate
from rlmap.search.mapspace import MapSpace
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import InvalidMappingError, SpecError
from rlmap.spec.io import load_architecture, load_mapping, load_network, save_mapping
from rlmap.spec.layer import Layer, Network
from rlmap.spec.mapping import Mapping, MappingBatch

__version__ = "0.1.0"
__all__ = [
    "Architecture",
    "Cost",
    "CostModel",
    "InvalidMappingError",
    "Layer",
    "Mapping",
    "MappingBatch",
    "MapSpace",
    "Network",
    "SpecError",
    "evaluate",
    "load_architecture",
    "load_mapping",
    "load_network",
    "save_mapping",
]
