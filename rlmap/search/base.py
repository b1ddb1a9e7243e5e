"""One interface for every mapper: layer, architecture, objective, budget, seed -> SearchResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rlmap.arch import Architecture
from rlmap.costmodel import Cost, CostModel
from rlmap.layer import Layer
from rlmap.mapping import Mapping


@dataclass
class SearchResult:
    """Best mapping found, its cost, and the best-so-far objective after each evaluation.

    `curve[i]` is the best objective among the first i+1 cost-model evaluations (inf while none was
    valid).  `proven_optimal` is True only when the mapper proved that no mapping is better.
    """

    mapper: str
    objective: str
    mapping: Mapping | None
    cost: Cost | None
    evaluations: int
    curve: np.ndarray
    proven_optimal: bool = False
    seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return float(self.curve[-1]) if len(self.curve) else float("inf")


class Mapper(Protocol):
    name: str

    def search(self, layer: Layer, arch: Architecture, objective: str = "edp", budget: int = 1000,
               seed: int = 0, model: CostModel | None = None) -> SearchResult: ...


def best_so_far(values: np.ndarray) -> np.ndarray:
    """Running minimum of objective values in evaluation order (invalid = inf)."""
    return np.minimum.accumulate(np.asarray(values, dtype=np.float64)) if len(values) else np.zeros(0)
