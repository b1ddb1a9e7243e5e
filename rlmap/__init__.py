"""rlmap: learn and search mappings of DNN layers onto spatial accelerators.

The public entry points, one import away:

    from rlmap import load_network, load_architecture, CostModel, MapSpace
    net, arch = load_network("resnet50"), load_architecture("eyeriss")
    model = CostModel(net.layers[0], arch)
"""

from rlmap.arch import Architecture
from rlmap.costmodel import Cost, CostModel, evaluate
from rlmap.errors import InvalidMappingError, SpecError
from rlmap.io import load_architecture, load_mapping, load_network, save_mapping
from rlmap.layer import Layer, Network
from rlmap.mapping import Mapping, MappingBatch
from rlmap.mapspace import MapSpace

__version__ = "0.1.0"
__all__ = ["Architecture", "Cost", "CostModel", "InvalidMappingError", "Layer", "Mapping", "MappingBatch", "MapSpace",
           "Network", "SpecError", "evaluate", "load_architecture", "load_mapping", "load_network", "save_mapping"]
