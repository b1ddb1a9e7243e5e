"""Baseline co-design optimisers over one flat encoding of the joint genome (as DiGamma's baselines).

`FlatEncoding` writes a design as a vector in [0, 1)^n: one number per hardware knob (its value index is
floor(u * values)), one per prime-factor copy of every layer (its slot is floor(u * 3 * levels), any slot:
these optimisers know nothing about fanouts or dataflows) and one random key per loop of every level (the
loop order is their argsort).  Random search, the plain GA and nevergrad's CMA-ES / DE / PSO all search
this vector, with no repair: a design whose mapping breaks a fanout, a dataflow or a capacity is scored
(and counted) like any other and is infeasible.  Black-box optimisers are told a finite penalty for an
infeasible design (1e3 + unmapped layers + relative area excess; feasible designs get log(objective) < 1e3)
so that they can still tell worse from better.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlmap.codesign.evaluate import DesignCost
from rlmap.codesign.problem import Problem
from rlmap.search.mapspace import Genome
from rlmap.spec.problem import N_DIMS


class FlatEncoding:
    """[0, 1)^n <-> (hardware genes, per-layer mapping genomes)."""

    def __init__(self, problem: Problem) -> None:
        from rlmap.search.mapspace import MapSpace

        self.sizes = problem.space.sizes
        self.L = problem.space.template.n_levels
        tmpl = problem.space.template
        self.genes = [MapSpace(layer, tmpl).n_genes for layer in problem.workload.layers]
        self.n = len(self.sizes) + sum(g + self.L * N_DIMS for g in self.genes)

    def decode(self, x: np.ndarray) -> tuple[np.ndarray, list[Genome]]:
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0 - 1e-12)
        H = len(self.sizes)
        hw = np.minimum((x[:H] * self.sizes).astype(np.int64), self.sizes - 1)
        maps, at = [], H
        for g in self.genes:
            slots = np.minimum((x[at : at + g] * 3 * self.L).astype(np.int64), 3 * self.L - 1)[None, :]
            at += g
            keys = x[at : at + self.L * N_DIMS].reshape(1, self.L, N_DIMS)
            at += self.L * N_DIMS
            maps.append(Genome(slots, np.argsort(keys, axis=2, kind="stable")))
        return hw, maps


def penalised(cost: DesignCost, objective: str) -> float:
    """A finite loss for black-box optimisers: log(objective) when feasible, 1e3 + violation otherwise."""
    if cost.feasible:
        return math.log(max(cost.objective(objective), 1e-300))
    unmapped = float((~cost.layer_valid).sum())
    excess = max(0.0, cost.area_mm2 / cost.budget_mm2 - 1.0) if math.isfinite(cost.budget_mm2) else 0.0
    return 1e3 + unmapped + excess


class RandomSearch:
    """Uniform draws of the flat encoding."""

    name = "random"

    def __init__(self, batch: int = 20) -> None:
        self.batch = batch
        self.enc: FlatEncoding | None = None

    def step(self, problem: Problem, rng: np.random.Generator) -> None:
        if self.enc is None:
            self.enc = FlatEncoding(problem)
        enc = self.enc
        problem.score_many(problem.draw(self.batch, lambda: enc.decode(rng.random(enc.n))))


class PlainGA:
    """A textbook GA on the flat encoding: tournament selection, uniform crossover, random-reset mutation
    (each gene with probability 1/n, at least one), elitism; infeasible designs rank by the penalty."""

    name = "ga"

    def __init__(self, population: int = 20, tournament: int = 3, crossover: float = 0.7) -> None:
        self.P = population
        self.tournament = tournament
        self.crossover = crossover
        self.enc: FlatEncoding | None = None
        self.pop: np.ndarray | None = None
        self.fit: np.ndarray | None = None

    def _score(self, problem: Problem, make: Any) -> tuple[list[np.ndarray], list[float]]:
        """Draw vectors from `make()` while the budget allows, score them as one batch: (vectors, losses)."""
        xs: list[np.ndarray] = []
        enc = self.enc
        assert enc is not None

        def design() -> tuple[np.ndarray, list[Genome]]:
            xs.append(make())
            return enc.decode(xs[-1])

        costs = problem.score_many(problem.draw(self.P, design))
        return xs, [penalised(c, problem.objective) for c in costs]

    def step(self, problem: Problem, rng: np.random.Generator) -> None:
        if self.enc is None:
            self.enc = FlatEncoding(problem)
        n = self.enc.n
        if self.pop is None:
            xs, fs = self._score(problem, lambda: rng.random(n))
            if xs:
                self.pop, self.fit = np.array(xs), np.array(fs)
            return
        assert self.fit is not None
        pop = self.pop

        def kid() -> np.ndarray:
            a, b = pop[self._pick(rng)], pop[self._pick(rng)]
            x = np.where(rng.random(n) < 0.5, a, b) if rng.random() < self.crossover else a.copy()
            mut = rng.random(n) < 1.0 / n
            mut[int(rng.integers(n))] = True
            x[mut] = rng.random(int(mut.sum()))
            return x

        kids, kfit = self._score(problem, kid)
        if not kids:
            return
        pool, fit = np.concatenate([self.pop, np.array(kids)]), np.concatenate([self.fit, np.array(kfit)])
        keep = np.argsort(fit, kind="stable")[: self.P]
        self.pop, self.fit = pool[keep], fit[keep]

    def _pick(self, rng: np.random.Generator) -> int:
        assert self.fit is not None
        cand = rng.integers(len(self.fit), size=self.tournament)
        return int(cand[np.argmin(self.fit[cand])])


NEVERGRAD = {"cma": "CMA", "de": "DE", "pso": "PSO"}
"""rlmap name -> nevergrad optimiser (ng.optimizers.registry key)."""


class Nevergrad:
    """A nevergrad optimiser (CMA-ES, differential evolution, PSO): each step asks `batch` designs (nevergrad's
    num_workers = batch), scores them as one batch of backend tasks, then tells their losses."""

    def __init__(self, method: str, batch: int = 20) -> None:
        if method not in NEVERGRAD:
            raise ValueError(f"unknown nevergrad method {method!r} (expected one of {', '.join(NEVERGRAD)})")
        self.method = method
        self.name = method
        self.batch = batch
        self.enc: FlatEncoding | None = None
        self.opt: Any = None

    def step(self, problem: Problem, rng: np.random.Generator) -> None:
        import warnings

        import nevergrad as ng

        warnings.filterwarnings("ignore", module="nevergrad")  # bounds-vs-sigma advice, not a problem here
        warnings.filterwarnings("ignore", module="cma")
        if self.opt is None:
            self.enc = FlatEncoding(problem)
            param = ng.p.Array(init=np.full(self.enc.n, 0.5)).set_bounds(0.0, 1.0, method="clipping")
            param.random_state = np.random.RandomState(int(rng.integers(2**31 - 1)))
            budget = max(1, problem.max_evaluations // problem.per_design)
            self.opt = ng.optimizers.registry[NEVERGRAD[self.method]](
                parametrization=param, budget=budget, num_workers=self.batch
            )
        enc = self.enc
        assert enc is not None
        cands: list[Any] = []

        def ask() -> tuple[np.ndarray, list[Genome]]:
            cands.append(self.opt.ask())
            return enc.decode(cands[-1].value)

        costs = problem.score_many(problem.draw(self.batch, ask))  # a batch of asks, then their tells
        for cand, cost in zip(cands, costs):
            self.opt.tell(cand, penalised(cost, problem.objective))
