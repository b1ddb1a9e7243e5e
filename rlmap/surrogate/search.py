"""Surrogate-guided search: screen many candidates with a learned cost model, spend true evaluations on the best.

Name 'surrogate', same interface as every mapper (`search(layer, arch, objective, budget, seed, model)`).

1. **Screening.**  Several islands each draw a pool of uniform, fanout-repaired genomes, push prime
   factors out to DRAM until the tiles fit (`capacity_repair`), and evolve them for a few generations with
   the genetic mapper's operators, *fitness = the surrogate's prediction*.  None of this costs a true
   evaluation.
2. **Rounds of true evaluations.**  Each round sends the best not-yet-scored candidates to the true cost
   model (the first round takes them round-robin from the islands, for diversity).  Between rounds the
   islands keep evolving with the best truly-scored mappings injected, and 1-2-move neighbours of the
   true elite are screened by the surrogate; the most promising of both are scored next.
3. **Reporting.**  The result is the best mapping by the TRUE model, re-scored by its reference (scalar)
   evaluation -- never a surrogate number.  `budget` counts true cost-model evaluations exactly as the
   other mappers do (rlmap.mappers.random_search.BudgetedEvaluator); a mapping proposed twice is scored once.

Feasibility: candidates are screened with the *structural* check of the spec (factors, fanouts and
their allowed dims, tile capacities; rlmap.surrogate_data.structural_valid), which computes no energy or
latency and so is not counted as an evaluation.  The random and genetic mappers do not use this check:
every draw they make is a counted evaluation, invalid ones included.

The surrogate comes from `checkpoint` (default: the shipped Eyeriss surrogate in
checkpoints/surrogate_eyeriss/).  On an architecture it was not trained on it still runs, but its
predictions may be poor; `notes['trained_on']` says which architectures the checkpoint knows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.search.base import SearchResult
from rlmap.search.genetic import GeneticMapper, Operators
from rlmap.search.mapspace import Genome, MapSpace
from rlmap.search.random_search import BudgetedEvaluator, check_args, effective_keys, make_space
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping

_MODELS: dict[str, Any] = {}


def _reward_model(checkpoint: str | Path | None) -> Any:
    """Load (once per path) the SurrogateRewardModel of a checkpoint."""
    from rlmap.surrogate.model import SurrogateRewardModel, default_checkpoint

    path = str(Path(checkpoint) if checkpoint is not None else default_checkpoint())
    m = _MODELS.get(path)
    if m is None:
        if not Path(path).exists():
            raise SpecError(
                "no surrogate checkpoint here; train one with `rlmap surrogate train` or pass checkpoint=", path
            )
        m = _MODELS[path] = SurrogateRewardModel(path)
    return m


class SurrogateMapper:
    """Surrogate-screened evolutionary search; see the module docstring."""

    name = "surrogate"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        reward_model: Any = None,
        islands: int = 4,
        pool: int = 4096,
        population: int = 192,
        generations: int = 12,
        first_round: float = 0.25,
        round_frac: float = 0.05,
        neighbours_per_pick: int = 24,
        round_generations: int = 2,
    ) -> None:
        self.checkpoint = checkpoint
        self._model = reward_model
        self.islands = islands
        self.pool = pool
        self.population = population
        self.generations = generations
        self.first_round = first_round
        self.round_frac = round_frac
        self.neighbours_per_pick = neighbours_per_pick
        self.round_generations = round_generations

    @property
    def reward_model(self) -> Any:
        if self._model is None:
            self._model = _reward_model(self.checkpoint)
        return self._model

    def search(
        self,
        layer: Layer,
        arch: Architecture,
        objective: str = "edp",
        budget: int = 1000,
        seed: int = 0,
        model: CostModel | None = None,
        time_limit: float | None = None,
        initial: Sequence[Mapping] | None = None,
    ) -> SearchResult:
        """`budget` true evaluations at most; with `time_limit` (seconds), stop there with the best so far
        (the first round of true evaluations is always made).  `initial`: warm-start mappings for this layer
        (rlmap.search.warmstart): they join every island and are the first of the first round."""
        from rlmap.search.warmstart import initial_genomes
        from rlmap.surrogate.data import capacity_repair, structural_valid

        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        sm = self.reward_model
        space = make_space(layer, arch, model)
        ops = Operators(space)
        rng = np.random.default_rng(seed)
        ev = BudgetedEvaluator(space, objective, budget, time_limit=time_limit, started=started)
        stats = {"predictions": 0, "rounds": 0}
        evaluated: set[bytes] = set()

        def predict(g: Genome) -> np.ndarray:
            v = np.full(len(g), np.inf)
            if len(g) == 0:
                return v
            b = space.decode(g)
            ok = structural_valid(space.model, b)
            idx = np.flatnonzero(ok)
            if len(idx):
                v[idx] = sm.predict_log2_objective(layer, arch, b.take(idx), objective)
                stats["predictions"] += len(idx)
            return v

        # ---------------------------------------------------------------- 1. islands
        P = self.population
        islands: list[tuple[Genome, np.ndarray]] = []
        seeds = initial_genomes(space, initial, rng)
        for _ in range(self.islands):
            g = ops.random(self.pool, rng)
            capacity_repair(space, g, rng)
            if len(seeds):
                g = Genome.concat([seeds, g])
            v = predict(g)
            islands.append(_survivors(space, g, v, P))
        islands = [
            self._evolve(space, ops, pop, val, self.generations, predict, rng, ev.deadline) for pop, val in islands
        ]

        # ---------------------------------------------------------------- 2. rounds of true evaluations
        first = max(1, min(budget, int(math.ceil(self.first_round * budget))))
        per_round = max(2, int(math.ceil(self.round_frac * budget)))
        picks = _round_robin(space, islands, first, evaluated)
        if len(seeds):  # the warm-start seeds are scored first, whatever the surrogate thinks of them
            seen = set(effective_keys(space, seeds))
            rest = [i for i, k in enumerate(effective_keys(space, picks)) if k not in seen] if len(picks) else []
            picks = Genome.concat(
                [seeds.take(slice(0, first)), picks.take(np.array(rest[: max(0, first - len(seeds))], dtype=np.int64))]
            )
        elite_g: Genome | None = None
        elite_v = np.zeros(0)
        while True:
            if len(picks) == 0:
                # nothing new to propose: fall back to fresh random feasible genomes
                g = ops.random(4 * per_round, rng)
                capacity_repair(space, g, rng)
                picks = _top_new(space, g, predict(g), per_round, evaluated)
                if len(picks) == 0:
                    break
            vals = ev.score(picks)
            stats["rounds"] += 1
            done = ~np.isnan(vals)
            for k in np.array(effective_keys(space, picks), dtype=object)[done]:
                evaluated.add(k)
            picks_done = picks.take(np.flatnonzero(done))
            vals = vals[done]
            if elite_g is None:
                elite_g, elite_v = picks_done, vals
            else:
                elite_g = Genome.concat([elite_g, picks_done])
                elite_v = np.concatenate([elite_v, vals])
            keep = np.argsort(elite_v, kind="stable")[:16]
            elite_g, elite_v = elite_g.take(keep), elite_v[keep]
            if ev.exhausted:
                break
            n_next = min(per_round, ev.affordable())
            picks = self._next_round(
                space, ops, islands, elite_g, elite_v, n_next, predict, rng, evaluated, ev.deadline
            )
        from rlmap.surrogate.model import SurrogateRewardModel

        notes: dict[str, Any] = {
            "surrogate_predictions": stats["predictions"],
            "rounds": stats["rounds"],
            "checkpoint": getattr(sm, "path", ""),
            "trained_on": list(getattr(sm, "trained_archs", [])),
        }
        if isinstance(sm, SurrogateRewardModel) and sm.trained_archs and arch.name not in sm.trained_archs:
            notes["warning"] = f"surrogate trained on {sm.trained_archs}, not on {arch.name!r}"
        if getattr(sm, "costmodel_changed", False):
            notes["costmodel_changed"] = (
                "rlmap/model/costmodel.py changed since the surrogate's training data was made; "
                "results are still true costs, but screening may be less sharp"
            )
        return ev.result(self.name, started, notes)

    # ------------------------------------------------------------------ helpers
    def _evolve(
        self,
        space: MapSpace,
        ops: Operators,
        pop: Genome,
        val: np.ndarray,
        generations: int,
        predict: Any,
        rng: np.random.Generator,
        deadline: float = math.inf,
    ) -> tuple[Genome, np.ndarray]:
        """`generations` of surrogate-scored evolution (fewer if the wall clock passes `deadline`)."""
        P = len(pop)
        if P == 0:
            return pop, val
        for _ in range(generations):
            if time.perf_counter() > deadline:
                break
            pa = _tournament(val, P, rng)
            pb = _tournament(val, P, rng)
            a, b = pop.take(pa), pop.take(pb)
            cross = rng.random(P) < 0.7
            kids = ops.crossover(a, b, rng)
            kids = Genome(
                np.where(cross[:, None], kids.slots, a.slots), np.where(cross[:, None, None], kids.order, a.order)
            )
            kids = ops.mutate(ops.repair(kids, rng), rng, rng.geometric(0.5, size=P))
            kv = predict(kids)
            pop, val = _survivors(space, Genome.concat([pop, kids]), np.concatenate([val, kv]), P)
        return pop, val

    def _next_round(
        self,
        space: MapSpace,
        ops: Operators,
        islands: list[tuple[Genome, np.ndarray]],
        elite_g: Genome,
        elite_v: np.ndarray,
        n: int,
        predict: Any,
        rng: np.random.Generator,
        evaluated: set[bytes],
        deadline: float = math.inf,
    ) -> Genome:
        finite = np.isfinite(elite_v)
        cands: list[Genome] = []
        vals: list[np.ndarray] = []
        if finite.any():
            eg = elite_g.take(np.flatnonzero(finite))
            # neighbours of the true elite, weighted toward the best
            m = max(64, self.neighbours_per_pick * n)
            w = 1.0 / (1.0 + np.arange(len(eg)))
            parents = eg.take(rng.choice(len(eg), size=m, p=w / w.sum()))
            kids = ops.mutate(parents, rng, rng.integers(1, 3, size=m))
            cands.append(kids)
            vals.append(predict(kids))
            # inject the true elite into the islands and evolve a little further
            ev_pred = predict(eg)
            new_islands = []
            for pop, val in islands:
                pop2, val2 = _survivors(space, Genome.concat([pop, eg]), np.concatenate([val, ev_pred]), len(pop))
                new_islands.append(self._evolve(space, ops, pop2, val2, self.round_generations, predict, rng, deadline))
            islands[:] = new_islands
        for pop, val in islands:
            cands.append(pop)
            vals.append(val)
        g = Genome.concat(cands)
        return _top_new(space, g, np.concatenate(vals), n, evaluated)


def _tournament(val: np.ndarray, n: int, rng: np.random.Generator, k: int = 3) -> np.ndarray:
    cand = rng.integers(len(val), size=(n, k))
    return cand[np.arange(n), np.argmin(val[cand], axis=1)]


_survivors = GeneticMapper._survivors  # the P best distinct members of a pool (one implementation)


def _top_new(space: MapSpace, g: Genome, val: np.ndarray, n: int, evaluated: set[bytes]) -> Genome:
    """Up to n distinct, feasible (finite prediction), not yet truly scored genomes with the best predictions."""
    order = np.argsort(val, kind="stable")
    order = order[np.isfinite(val[order])]
    if len(order) == 0:
        return g.take(np.zeros(0, dtype=np.int64))
    keys = effective_keys(space, g.take(order))
    chosen, seen = [], set()
    for i, k in zip(order, keys):
        if k in evaluated or k in seen:
            continue
        seen.add(k)
        chosen.append(i)
        if len(chosen) >= n:
            break
    return g.take(np.array(chosen, dtype=np.int64))


def _round_robin(space: MapSpace, islands: list[tuple[Genome, np.ndarray]], n: int, evaluated: set[bytes]) -> Genome:
    """n distinct candidates taken in turn from each island's ranking (diversity for the first round)."""
    ranked = [_top_new(space, pop, val, n, evaluated) for pop, val in islands]
    out: list[Genome] = []
    seen: set[bytes] = set()
    keys = [effective_keys(space, r) if len(r) else [] for r in ranked]
    for j in range(n):
        for r, ks in zip(ranked, keys):
            if j < len(r) and ks[j] not in seen:
                seen.add(ks[j])
                out.append(r.take(slice(j, j + 1)))
                if len(out) >= n:
                    return Genome.concat(out)
    return (
        Genome.concat(out)
        if out
        else Genome(np.zeros((0, space.n_genes), dtype=np.int64), np.zeros((0, space.L, 8), dtype=np.int64))
    )
