"""One interface for every mapper: layer, architecture, objective, budget, seed -> SearchResult."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rlmap.model.costmodel import Cost, CostModel
from rlmap.spec.arch import Architecture
from rlmap.spec.layer import Layer, Network, layer_key
from rlmap.spec.mapping import Mapping


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
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return float(self.curve[-1]) if len(self.curve) else float("inf")


class Mapper(Protocol):
    """Every mapper: `budget` evaluations at most (the optimal mapper ignores it); with `time_limit`
    (wall-clock seconds for the call) it stops there with its best so far and says so in notes["stopped"]."""

    name: str

    def search(
        self,
        layer: Layer,
        arch: Architecture,
        objective: str = "edp",
        budget: int = 1000,
        seed: int = 0,
        model: CostModel | None = None,
        time_limit: float | None = None,
    ) -> SearchResult: ...


def best_so_far(values: np.ndarray) -> np.ndarray:
    """Running minimum of objective values in evaluation order (invalid = inf)."""
    return np.minimum.accumulate(np.asarray(values, dtype=np.float64)) if len(values) else np.zeros(0)


@dataclass
class NetworkResult:
    network: str
    arch: str
    mapper: str
    objective: str
    layers: list[Layer]
    results: list[SearchResult]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_distinct(
        cls,
        network: Network,
        arch: str,
        mapper: str,
        objective: str,
        by_key: dict[Any, SearchResult],
        seconds: float,
        extra: dict[str, Any],
        partial: bool = False,
    ) -> NetworkResult:
        """Every layer of `network` whose shape (layer_key) has a result in `by_key`, in network order; with
        `partial` (an interrupted run) marked so, with the network's layer count and the distinct layers done."""
        kept = [lyr for lyr in network.layers if layer_key(lyr) in by_key]  # all of them unless interrupted
        res = cls(
            network=network.name,
            arch=arch,
            mapper=mapper,
            objective=objective,
            layers=kept,
            results=[by_key[layer_key(lyr)] for lyr in kept],
            seconds=seconds,
            extra=dict(extra),
        )
        if partial:
            res.extra.update(partial=True, total_layers=len(network.layers), distinct_done=len(by_key))
        return res

    @property
    def energy(self) -> float:
        return sum(r.cost.energy * l.repeat if r.cost else math.inf for l, r in zip(self.layers, self.results))

    @property
    def cycles(self) -> float:
        return sum(r.cost.cycles * l.repeat if r.cost else math.inf for l, r in zip(self.layers, self.results))

    @property
    def edp(self) -> float:
        """Network EDP: total energy x total cycles (layers run one after another)."""
        return self.energy * self.cycles

    @property
    def macs(self) -> int:
        return sum(l.macs * l.repeat for l in self.layers)
