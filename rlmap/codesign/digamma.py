"""DiGamma-style genetic co-design (Kao, Pellauer, Parashar, Krishna, DATE 2022) over the joint genome.

An individual is hardware genes (one index per knob of the DesignSpace) plus one mapping genome per
distinct layer (rlmap.search.mapspace: a slot per prime-factor copy, a loop order per level).  Domain-aware
operators, as in the paper:

* hardware crossover (each knob from either parent) and hardware mutation (a knob steps to a neighbouring
  value of its grid, or jumps anywhere); after any hardware change every layer's mapping is *repaired* to
  the new hardware (rlmap.codesign.evaluate.repair: forbidden spatial dims, over-full fanouts, overflowing
  tiles), so a mutation that shrinks a buffer does not throw away the mappings;
* per-layer mapping crossover and mutation (rlmap.search.genetic.Operators, the GAMMA operators) on a few
  layers per child, chosen with probability growing with their share of the objective (bottleneck layers
  first); on unchanged hardware the other layers are untouched, so their cached figures cost nothing;
* area awareness: a child over the area budget has a random shrinkable knob (array side or capacity)
  stepped down until it fits (area is a closed form, no evaluation), and selection ranks feasible designs
  by objective, then over-budget ones by area, then unmappable ones by how many layers fail.
"""

from __future__ import annotations

import math

import numpy as np

from rlmap.codesign.evaluate import DesignCost, layer_space, repair
from rlmap.codesign.problem import Problem
from rlmap.search.genetic import Operators
from rlmap.search.mapspace import Genome


def rank_key(cost: DesignCost, objective: str) -> tuple[float, float, float]:
    """Lexicographic fitness: (class, secondary, objective); lower is better.  Class 0 feasible, 1 over budget,
    2 some layer unmapped."""
    if not cost.mapped:
        return (2.0, float((~cost.layer_valid).sum()), cost.area_mm2)
    if not cost.within_budget:
        return (1.0, cost.area_mm2, 0.0)
    return (0.0, cost.objective(objective), cost.area_mm2)


def random_maps(problem: Problem, hw: np.ndarray, rng: np.random.Generator, fix: bool = True) -> list[Genome]:
    """One uniform mapping genome per layer for this hardware (repaired to it when `fix`)."""
    arch = problem.space.decode(hw)
    out = []
    for layer in problem.workload.layers:
        ms = layer_space(layer, arch)
        g = ms.random_genomes(1, rng)
        out.append(repair(ms, g, rng) if fix else g)
    return out


def shrink_to_budget(problem: Problem, hw: np.ndarray, rng: np.random.Generator, max_steps: int = 200) -> np.ndarray:
    """Step random shrinkable knobs (array sides, capacities) down one grid value until the area fits."""
    hw = np.array(hw)
    if not math.isfinite(problem.budget_mm2):
        return hw
    space = problem.space
    shrinkable = [i for i, k in enumerate(space.knobs) if k.name.startswith("array_") or ".capacity" in k.name]
    for _ in range(max_steps):
        if problem.area(hw) <= problem.budget_mm2:
            break
        can = [i for i in shrinkable if hw[i] > 0]
        if not can:
            break
        hw[can[int(rng.integers(len(can)))]] -= 1
    return hw


def merge_layers(
    problem: Problem, child: DesignCost, parent: DesignCost, child_maps: list[Genome], parent_maps: list[Genome]
) -> tuple[DesignCost, list[Genome]] | None:
    """Same hardware: each layer keeps the better of the child's and the parent's mapping.  The figures of both
    are known exactly (same hardware, same mapping, same cost), so the merged design costs no evaluation.
    Only for objectives that add up over layers (latency, energy); None when nothing changes."""
    if problem.objective not in ("latency", "energy"):
        return None
    per = "layer_cycles" if problem.objective == "latency" else "layer_energy"
    cv, pv = getattr(child, per), getattr(parent, per)
    take_p = np.where(child.layer_valid, np.where(parent.layer_valid, pv < cv, False), parent.layer_valid)
    if not take_p.any() or take_p.all():
        return None
    w = np.asarray(problem.workload.weights, dtype=np.float64)
    e = np.where(take_p, parent.layer_energy, child.layer_energy)
    c = np.where(take_p, parent.layer_cycles, child.layer_cycles)
    v = np.where(take_p, parent.layer_valid, child.layer_valid)
    cost = DesignCost(
        area_mm2=child.area_mm2,
        energy=float((e * w).sum()),
        cycles=float((c * w).sum()),
        layer_valid=v,
        layer_energy=e,
        layer_cycles=c,
        budget_mm2=child.budget_mm2,
        area_parts=child.area_parts,
    )
    maps = [parent_maps[i] if take_p[i] else child_maps[i] for i in range(len(child_maps))]
    return cost, maps


class DiGamma:
    """The domain-aware GA; `step` runs one generation (population scored, offspring, survivors)."""

    name = "digamma"

    def __init__(
        self,
        population: int = 20,
        tournament: int = 3,
        hw_mutation: float = 0.3,
        map_mutation: float = 0.5,
        crossover: float = 0.7,
    ) -> None:
        self.P = population
        self.tournament = tournament
        self.hw_mutation = hw_mutation
        self.map_mutation = map_mutation
        self.crossover = crossover
        self.pop: list[tuple[np.ndarray, list[Genome], tuple[float, float, float], DesignCost]] = []

    def step(self, problem: Problem, rng: np.random.Generator) -> None:
        obj = problem.objective
        if not self.pop:

            def fresh() -> tuple[np.ndarray, list[Genome]]:
                hw = shrink_to_budget(problem, problem.space.random(1, rng)[0], rng)
                return hw, random_maps(problem, hw, rng)

            designs = problem.draw(self.P, fresh)
            for (hw, maps), cost in zip(designs, problem.score_many(designs)):
                self.pop.append((hw, maps, rank_key(cost, obj), cost))
            return
        parents: list[tuple] = []

        def child() -> tuple[np.ndarray, list[Genome]]:
            a, b = self.pop[self._pick(rng)], self.pop[self._pick(rng)]
            parents.append(a)
            return self._child(problem, a, b, rng)

        children = []

        def merge(i: int, cost: DesignCost) -> None:  # right after child i is recorded, as in a one-by-one loop
            hw, maps = designs[i]
            a = parents[i]
            if problem.space.key(hw) == problem.space.key(a[0]):
                merged = merge_layers(problem, cost, a[3], maps, a[1])
                if merged is not None:
                    cost, maps = merged
                    problem.record(hw, maps, cost)
            children.append((hw, maps, rank_key(cost, obj), cost))

        designs = problem.draw(self.P, child)
        problem.score_many(designs, merge)
        pool = self.pop + children  # (mu + lambda): the P best by rank, elitist
        keep = sorted(range(len(pool)), key=lambda i: pool[i][2])
        self.pop = [pool[i] for i in keep[: self.P]]

    def _layers(self, problem: Problem, cost: DesignCost, rng: np.random.Generator) -> np.ndarray:
        """Which layers' mappings a child changes: 1 + geometric(1 - map_mutation) layers, drawn with probability
        growing with their share of the parent's objective (the bottleneck layers get most of the search)."""
        n = len(problem.workload)
        per = cost.layer_energy if problem.objective == "energy" else cost.layer_cycles
        w = np.asarray(problem.workload.weights, dtype=np.float64) * np.where(np.isfinite(per), per, 0.0)
        share = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
        p = share + 1.0 / n + 10.0 * ~cost.layer_valid  # unmapped layers first
        k = min(n, int(rng.geometric(1.0 - self.map_mutation)))
        chosen = np.zeros(n, dtype=bool)
        chosen[rng.choice(n, size=k, replace=False, p=p / p.sum())] = True
        return chosen

    def _pick(self, rng: np.random.Generator) -> int:
        cand = rng.integers(len(self.pop), size=self.tournament)
        return int(min(cand, key=lambda i: self.pop[i][2]))

    def _child(self, problem: Problem, a: tuple, b: tuple, rng: np.random.Generator) -> tuple[np.ndarray, list[Genome]]:
        """Hardware from a (crossed with b, mutated) with probability hw_mutation, else a's; every layer's mapping
        from a, repaired to the child's hardware; a few layers (`_layers`) crossed with b's when b has the same
        hardware and mutated."""
        space = problem.space
        hw = np.array(a[0])
        if rng.random() < self.hw_mutation:
            if rng.random() < self.crossover:
                hw = np.where(rng.random(space.n_genes) < 0.5, b[0], a[0])
            i = int(rng.integers(space.n_genes))
            size = space.knobs[i].size
            if rng.random() < 0.7:  # neighbour step on the knob's grid
                hw[i] = int(np.clip(hw[i] + rng.choice([-1, 1]), 0, size - 1))
            else:
                hw[i] = int(rng.integers(size))
            hw = shrink_to_budget(problem, hw, rng)
        same_a = space.key(a[0]) == space.key(hw)
        same_b = space.key(b[0]) == space.key(hw)
        arch = space.decode(hw)
        chosen = self._layers(problem, a[3], rng)
        maps = []
        for li, layer in enumerate(problem.workload.layers):
            g = a[1][li]
            if same_a and not chosen[li]:
                maps.append(g)  # unchanged on unchanged hardware: its figures are cached, it costs nothing
                continue
            ms = layer_space(layer, arch)
            ops = Operators(ms)
            if chosen[li] and same_b and rng.random() < self.crossover:
                g = ops.crossover(g, b[1][li], rng)
            g = repair(ms, g, rng)
            if chosen[li]:
                g = repair(ms, ops.mutate(g, rng, int(rng.geometric(0.5))), rng)
            maps.append(g)
        return hw, maps
