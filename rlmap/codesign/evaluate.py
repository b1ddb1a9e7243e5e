"""Scoring one design point: a pure function of (design space, hardware genes, per-layer mapping genes).

`evaluate_design` builds the architecture the hardware genes pick, scores every distinct layer's mapping
with the cost model (one cost-model evaluation per layer) and adds up energy and cycles with the layers'
repeats; the area comes from rlmap.hardware.area.  It reads no global state and draws no random numbers,
so a candidate can be shipped to a worker process (or a Ray task) and scored there with the same result.

`repair` is the domain-aware fix-up a hardware change needs (DiGamma's "hardware mutation repairs the
mappings it invalidates"): prime factors sitting in a spatial slot the new dataflow forbids go to that
level's temporal loop, spatial slots over the new fanout give factors back to it (rlmap.search.genetic's
repair), and tiles over a shrunken buffer push factors outward one level at a time until they fit, checked
with the cost model's own footprint formulas (`CostModel.tile_check`, no evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlmap.codesign.space import DesignSpace
from rlmap.hardware.area import design_area
from rlmap.model.costmodel import CostModel, objective_value
from rlmap.search.genetic import Operators
from rlmap.search.mapspace import TEMPORAL, Genome, MapSpace
from rlmap.spec.arch import Architecture
from rlmap.spec.layer import Layer, Network, layer_key
from rlmap.spec.problem import N_DIMS


@dataclass(frozen=True)
class Workload:
    """A network's distinct layers (cost-model-equal layers once) and how many times each runs."""

    name: str
    layers: tuple[Layer, ...]
    weights: tuple[int, ...]

    @classmethod
    def from_network(cls, net: Network) -> Workload:
        keys: dict[tuple, int] = {}
        layers: list[Layer] = []
        weights: list[int] = []
        for layer in net.layers:
            k = layer_key(layer)
            if k not in keys:
                keys[k] = len(layers)
                layers.append(layer)
                weights.append(0)
            weights[keys[k]] += layer.repeat
        return cls(net.name, tuple(layers), tuple(weights))

    def __len__(self) -> int:
        return len(self.layers)


@dataclass
class DesignCost:
    """One design point's figures.  `feasible` = every layer has a valid mapping and the area fits the budget."""

    area_mm2: float
    energy: float
    cycles: float
    layer_valid: np.ndarray
    layer_energy: np.ndarray
    layer_cycles: np.ndarray
    budget_mm2: float = math.inf
    area_parts: dict[str, float] = field(default_factory=dict)

    @property
    def mapped(self) -> bool:
        return bool(self.layer_valid.all())

    @property
    def within_budget(self) -> bool:
        return self.area_mm2 <= self.budget_mm2 * (1 + 1e-12)

    @property
    def feasible(self) -> bool:
        return self.mapped and self.within_budget

    @property
    def edp(self) -> float:
        return self.energy * self.cycles

    def objective(self, objective: str) -> float:
        """The objective if feasible, else inf."""
        return float(objective_value(self.energy, self.cycles, objective)) if self.feasible else math.inf


def layer_space(layer: Layer, arch: Architecture) -> MapSpace:
    return MapSpace(layer, arch, CostModel(layer, arch))


def evaluate_layers(
    arch: Architecture, maps: list[Genome], workload: Workload, which: list[int]
) -> list[tuple[bool, float, float]]:
    """(valid, energy, cycles) of the listed layers' mappings on `arch`: one cost-model evaluation each."""
    out = []
    for i in which:
        ms = layer_space(workload.layers[i], arch)
        bc = ms.model.evaluate_batch(ms.decode(maps[i]))
        out.append((bool(bc.valid[0]), float(bc.energy[0]), float(bc.cycles[0])))
    return out


def compose(
    arch: Architecture, workload: Workload, valid: np.ndarray, energy: np.ndarray, cycles: np.ndarray, budget_mm2: float
) -> DesignCost:
    """A design's figures from its layers' (with repeats) and its area."""
    w = np.asarray(workload.weights, dtype=np.float64)
    area = design_area(arch)
    return DesignCost(
        area_mm2=area.total_mm2,
        energy=float((energy * w).sum()),
        cycles=float((cycles * w).sum()),
        layer_valid=valid,
        layer_energy=energy,
        layer_cycles=cycles,
        budget_mm2=budget_mm2,
        area_parts=area.parts_mm2,
    )


def evaluate_design(
    space: DesignSpace, hw: np.ndarray, maps: list[Genome], workload: Workload, budget_mm2: float = math.inf
) -> DesignCost:
    """Score one design: `hw` its hardware genes, `maps[i]` a one-row Genome for distinct layer i.

    Costs exactly len(workload) cost-model evaluations.  Pure: same inputs, same DesignCost.
    """
    arch = space.decode(hw)
    res = evaluate_layers(arch, maps, workload, list(range(len(workload))))
    valid = np.array([r[0] for r in res], dtype=bool)
    energy = np.array([r[1] for r in res])
    cycles = np.array([r[2] for r in res])
    return compose(arch, workload, valid, energy, cycles, budget_mm2)


# ----------------------------------------------------------------------------- repair
def tile_extents(ms: MapSpace, g: Genome) -> np.ndarray:
    """(L+1, D, B) extents of every level's tile (E[L] = one MAC), as the cost model defines them."""
    b = ms.decode(g)
    per_level = b.temporal * b.spatial_x * b.spatial_y  # (B, L, D)
    inner = np.cumprod(per_level[:, ::-1, :], axis=1)[:, ::-1, :]  # product over levels >= l
    B = len(g)
    E = np.ones((ms.L + 1, N_DIMS, B), dtype=np.float64)
    E[: ms.L] = inner.transpose(1, 2, 0)
    return E


def overflows(ms: MapSpace, g: Genome) -> np.ndarray:
    """(B,) bool: some tile exceeds its level's capacity (the cost model's footprints; not an evaluation)."""
    return ms.model.tile_check(tile_extents(ms, g))[1]


def repair(ms: MapSpace, g: Genome, rng: np.random.Generator, max_rounds: int = 400) -> Genome:
    """A copy of `g` made structurally valid on `ms.arch` (dataflow, fanout, capacity); see the module docstring."""
    out = Genome(g.slots.copy(), g.order.copy())
    if out.slots.shape[1] == 0:
        return out
    bad = ~ms.allowed[ms.gene_dim[None, :], out.slots]
    out.slots[bad] = 3 * (out.slots[bad] // 3) + TEMPORAL
    Operators(ms).repair(out, rng)
    for _ in range(max_rounds):
        over = overflows(ms, out)
        if not over.any():
            break
        rows = np.flatnonzero(over)
        inner = out.slots[rows] >= 3  # genes below DRAM
        r = rng.random(inner.shape) * inner
        pick = np.argmax(r, axis=1)
        has = inner.any(axis=1)
        rows, pick = rows[has], pick[has]
        if not len(rows):
            break
        lvl = out.slots[rows, pick] // 3
        # a spatial factor of level l leaves for l's temporal loop only if the overflow is below l; simplest
        # monotone move: one level outward, temporal
        out.slots[rows, pick] = 3 * (lvl - 1) + TEMPORAL
    return out
