"""Two-loop co-design: hardware in an outer loop, every layer mapped by a mapper inside it.

The outer loop is a small evolutionary search over hardware genes only: `init` designs drawn uniformly
(stepped down to the area budget), then each new design is a tournament winner's hardware with one knob
stepped to a neighbouring value (a design already tried is not mapped again).  The inner mapper is either
rlmap's GA mapper with `inner_budget` evaluations per layer (`TwoLoop`, the approach DiGamma compares
with) or a trained policy, zero-shot, greedy or best of K samples (`LearnedLoop`: one evaluation per
episode).  Every evaluation the inner mapper spends is charged to the problem's counter; the design's
figures are those of the mappings the inner mapper scored (recomputed, not charged twice).  The inner mappings
run as backend tasks (`Problem.run`): one per layer for the GA mapper, one per design for the policy.

`LearnedLoop.finish` re-maps the best design with the optimal mapper (its evaluations reported apart, not
charged to the search), so the report has both figures: policy-mapped and optimally re-mapped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlmap.codesign.digamma import shrink_to_budget
from rlmap.codesign.evaluate import evaluate_design, layer_space
from rlmap.codesign.problem import Problem
from rlmap.search.base import SearchResult
from rlmap.search.mapspace import Genome
from rlmap.spec.arch import Architecture


def genomes_from_results(
    problem: Problem, arch: Architecture, results: list[SearchResult], rng: np.random.Generator
) -> list[Genome]:
    """Each layer's best mapping as a one-row genome (a random one where the mapper found none)."""
    out = []
    for layer, r in zip(problem.workload.layers, results):
        ms = layer_space(layer, arch)
        out.append(ms.encode(r.mapping.to_arrays()) if r.mapping is not None else ms.random_genomes(1, rng))
    return out


class TwoLoop:
    """Outer hardware evolution, inner rlmap mapper (default: GA) per layer."""

    name = "two-loop"

    def __init__(self, inner: str = "ga", inner_budget: int = 200, init: int = 6, tournament: int = 2) -> None:
        self.inner = inner
        self.inner_budget = inner_budget
        self.init = init
        self.tournament = tournament
        self.tried: dict[tuple[int, ...], float] = {}
        self.done: list[tuple[np.ndarray, float]] = []

    def _next_hw(self, problem: Problem, rng: np.random.Generator) -> np.ndarray:
        space = problem.space
        for _ in range(50):
            if len(self.done) < self.init:
                hw = space.random(1, rng)[0]
            else:
                cand = rng.integers(len(self.done), size=self.tournament)
                hw = np.array(self.done[int(min(cand, key=lambda i: self.done[i][1]))][0])
                i = int(rng.integers(space.n_genes))
                hw[i] = int(np.clip(hw[i] + rng.choice([-1, 1]), 0, space.knobs[i].size - 1))
            hw = shrink_to_budget(problem, hw, rng)
            if space.key(hw) not in self.tried:
                return hw
        return hw

    def inner_cost(self, problem: Problem) -> int:
        """Evaluations one design costs at most (the inner mapper's, per layer)."""
        return problem.per_design * self.inner_budget

    def map_layers(self, problem: Problem, arch: Architecture, seed: int) -> list[SearchResult]:
        from rlmap.search.driver import layer_seed

        return problem.run(
            inner_search_task,
            [
                (self.inner, layer, arch, problem.objective, self.inner_budget, layer_seed(seed, i))
                for i, layer in enumerate(problem.workload.layers)
            ],
        )

    def step(self, problem: Problem, rng: np.random.Generator) -> None:
        if problem.evaluations + self.inner_cost(problem) > problem.max_evaluations or problem.exhausted:
            problem.max_evaluations = problem.evaluations  # nothing more fits: the run ends here
            return
        hw = self._next_hw(problem, rng)
        arch = problem.space.decode(hw)
        results = self.map_layers(problem, arch, int(rng.integers(2**31 - 1)))
        # the inner mapper scored every mapping it returns: the design's figures are charged as its evaluations
        problem.charge(sum(r.evaluations for r in results))
        maps = genomes_from_results(problem, arch, results, rng)
        cost = evaluate_design(problem.space, hw, maps, problem.workload, problem.budget_mm2)
        problem.record(hw, maps, cost)
        value = cost.objective(problem.objective)
        self.tried[problem.space.key(hw)] = value
        self.done.append((hw, value if math.isfinite(value) else math.inf))


class LearnedLoop(TwoLoop):
    """Outer hardware evolution, every layer mapped zero-shot by a trained policy (greedy or best of K)."""

    def __init__(self, policy: Any, samples: int = 1, init: int = 6, optimal_time_limit: float = 5.0) -> None:
        super().__init__(inner="policy", inner_budget=samples, init=init)
        self.policy = policy
        self.samples = samples
        self.optimal_time_limit = optimal_time_limit
        self.name = "learned" if samples == 1 else f"learned-k{samples}"
        self.final: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["policy"] = None  # reloaded by the runner on resume
        return state

    def map_layers(self, problem: Problem, arch: Architecture, seed: int) -> list[SearchResult]:
        # one task per design: the policy maps all layers in one batched call (its episodes share one random stream)
        return problem.run(
            policy_task, [(self.policy, list(problem.workload.layers), arch, problem.objective, self.samples, seed)]
        )[0]

    def finish(self, problem: Problem) -> dict[str, Any]:
        """Re-map the best design with the optimal mapper; both figures (policy-mapped, optimal) in `final`."""
        from rlmap.search.optimal import OptimalMapper

        if problem.best_hw is None or problem.best_cost is None or problem.best_maps is None:
            return {}
        arch = problem.space.decode(problem.best_hw)
        mapper = OptimalMapper()
        results = [
            mapper.search(layer, arch, problem.objective, time_limit=self.optimal_time_limit)
            for layer in problem.workload.layers
        ]
        opt_maps = genomes_from_results(problem, arch, results, np.random.default_rng(0))
        # a layer the optimal mapper could not prove in time keeps the policy's mapping if that is better
        per = {"latency": "layer_cycles", "energy": "layer_energy"}.get(problem.objective)
        opt_cost = evaluate_design(problem.space, problem.best_hw, opt_maps, problem.workload, problem.budget_mm2)
        maps = []
        for i, r in enumerate(results):
            worse = (
                per is not None
                and not r.proven_optimal
                and opt_cost.layer_valid[i]
                and getattr(opt_cost, per)[i] > getattr(problem.best_cost, per)[i]
            )
            maps.append(problem.best_maps[i] if worse or not opt_cost.layer_valid[i] else opt_maps[i])
        cost = evaluate_design(problem.space, problem.best_hw, maps, problem.workload, problem.budget_mm2)
        self.final = {
            "policy_objective": problem.best_value,
            "optimal_objective": cost.objective(problem.objective),
            "optimal_evaluations": int(sum(r.evaluations for r in results)),
            "optimal_proven": all(r.proven_optimal for r in results),
            "cost": cost,
            "maps": maps,
        }
        return self.final


def inner_search_task(arg: tuple) -> SearchResult:
    """A backend task: one layer mapped by the two-loop optimiser's inner rlmap mapper."""
    from rlmap.search.driver import get_mapper

    inner, layer, arch, objective, budget, seed = arg
    return get_mapper(inner).search(
        layer, arch, objective, budget=budget, seed=seed, model=layer_space(layer, arch).model
    )


def policy_task(arg: tuple) -> list[SearchResult]:
    """A backend task: every layer of a design mapped by a trained policy (rlmap.rl.mapper.map_layers)."""
    from rlmap.rl.mapper import map_layers

    policy, layers, arch, objective, samples, seed = arg
    return map_layers(policy, layers, arch, objective, samples=samples, seed=seed)
