"""GAMMA-style genetic mapper (Kao & Krishna, ICCAD 2020) on the map-space genome, and its operators.

Genome (see rlmap.search.mapspace): one slot per prime-factor copy of every dimension (slot = 3*level + 0
temporal / 1 spatial X / 2 spatial Y) plus one loop-order permutation per level.

Operators (shared with the annealing mapper):

* crossover -- every prime group (all copies of one prime of one dim) comes whole from one parent, and
  every level's loop order from one parent;
* mutation -- `move` a prime copy to another allowed slot (anywhere, or `near`: same or adjacent level),
  `swap` the slots of two copies of different dims, `order-swap` two loops of one level, `reorder`
  (move one loop of a level to another position).  Order moves only touch loops with a factor > 1, the
  only ones the cost model can tell apart;
* repair -- a spatial slot whose primes exceed its fanout gives random copies back to the temporal slot
  of the same level until it fits (structural, like Timeloop's map-space pruning by fanout); then
  *capacity repair* (rlmap.search.repair.capacity_repair): a genome whose tiles overflow a buffer sends
  random prime copies out to DRAM until it fits.  Both are spec checks that compute no energy or latency,
  so they are not counted as evaluations (the surrogate mapper uses the same convention).

Why capacity repair (measured, issue 16): without it a move of one big prime (a ViT layer's 197 tokens)
inward overflows a buffer, the offspring is invalid, and a population that converged with that prime at
DRAM cannot leave: GA-1000 on ViT fc1 / Eyeriss ended 2,000x apart between seeds.  With it, such a move
comes with the other primes it displaces, and the spread falls to < 2x.  For diversity a fraction
`immigrant_rate` of each generation's offspring are fresh uniform genomes (capacity-repaired too), and
survivors are distinct mappings, so the population cannot collapse onto one point.

Budget accounting: every mapping the cost model scores is one evaluation, the initial population
included.  The initial population is drawn uniformly (`MapSpace.random_genomes`) and repaired, not taken
from `MapSpace.sample`, whose rejection sampling would spend uncounted evaluations.  With warm-start
mappings (`initial`), those and mutants of them fill up to half of the initial population.  An
offspring equal (in effect) to a mapping already scored takes the cached score and costs nothing.

Selection is (mu + lambda) with elitism: parents by tournament, the next population the best distinct
members of parents and offspring together.  The population size follows the budget
(budget / 40, between 16 and 100).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.search.base import SearchResult
from rlmap.search.mapspace import TEMPORAL, Genome, MapSpace
from rlmap.search.random_search import BudgetedEvaluator, check_args, effective_keys, make_space
from rlmap.search.repair import capacity_repair, fanout_limits, fanout_repair, random_true
from rlmap.search.warmstart import initial_genomes
from rlmap.spec.arch import Architecture
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping

MOVE_ANY, MOVE_NEAR, SWAP, ORDER_SWAP, REORDER = range(5)
MUTATIONS = ("move", "move-near", "swap", "order-swap", "reorder")
DEFAULT_MUTATION_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)


class Operators:
    """Genome operators for one map space, all vectorised over a batch of genomes."""

    def __init__(self, space: MapSpace, weights: tuple[float, ...] = DEFAULT_MUTATION_WEIGHTS) -> None:
        self.space = space
        self.L = space.L
        self.allowed = space.allowed  # (D, S)
        self.gene_dim = space.gene_dim
        self.log_prime = np.log(space.gene_prime.astype(np.float64))
        self.slot_level = np.arange(space.n_slots) // 3
        w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        # group index of every gene, for crossover
        gid = []
        for k, (_d, _p, a) in enumerate(space.groups):
            gid += [k] * a
        self.gene_group = np.array(gid, dtype=np.int64)
        self.n_groups = len(space.groups)
        self.limits = fanout_limits(space)

    # ------------------------------------------------------------------ initial genomes
    def random(self, n: int, rng: np.random.Generator, capacity: bool = False) -> Genome:
        """Uniform genomes (MapSpace.random_genomes), fanout-repaired (and capacity-repaired if asked)."""
        g = self.space.random_genomes(n, rng)
        self.repair(g, rng)
        if capacity:
            capacity_repair(self.space, g, rng)
        return g

    # ------------------------------------------------------------------ repair
    def repair(self, g: Genome, rng: np.random.Generator) -> Genome:
        """In place: move random prime copies out of over-full spatial slots to the level's temporal slot."""
        return fanout_repair(self.space, g, rng, self.limits)

    # ------------------------------------------------------------------ crossover
    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Prime groups and per-level loop orders each taken whole from one parent at random."""
        B = len(a)
        from_b = rng.random((B, self.n_groups)) < 0.5
        gene_b = from_b[:, self.gene_group] if self.n_groups else np.zeros(a.slots.shape, dtype=bool)
        slots = np.where(gene_b, b.slots, a.slots)
        order_b = rng.random((B, self.L)) < 0.5
        order = np.where(order_b[:, :, None], b.order, a.order)
        return Genome(slots, order)

    # ------------------------------------------------------------------ mutation
    def mutate(self, g: Genome, rng: np.random.Generator, n_moves: np.ndarray | int = 1) -> Genome:
        """A mutated copy: row i gets n_moves[i] random moves (fanout-repaired afterwards)."""
        out = Genome(g.slots.copy(), g.order.copy())
        B = len(out)
        moves = np.broadcast_to(np.asarray(n_moves), (B,))
        for r in range(int(moves.max(initial=0))):
            rows = np.flatnonzero(moves > r)
            kind = rng.choice(len(self.weights), size=len(rows), p=self.weights)
            self._apply(out, rows, kind, rng)
        return self.repair(out, rng)

    def _apply(self, g: Genome, rows: np.ndarray, kind: np.ndarray, rng: np.random.Generator) -> None:
        G = g.slots.shape[1]
        order_rows = rows[(kind == ORDER_SWAP) | (kind == REORDER)]
        order_kind = kind[(kind == ORDER_SWAP) | (kind == REORDER)]
        failed = self._order_moves(g, order_rows, order_kind, rng) if len(order_rows) else np.zeros(0, dtype=np.int64)
        gene_rows = np.concatenate([rows[kind <= SWAP], failed])
        gene_kind = np.concatenate([kind[kind <= SWAP], np.full(len(failed), MOVE_ANY)])
        if G == 0 or len(gene_rows) == 0:
            return
        n = len(gene_rows)
        i = rng.integers(G, size=n)
        d = self.gene_dim[i]
        cur = g.slots[gene_rows, i]
        # swap: a copy of another dim in another slot, each allowed in the other's slot
        sw = gene_kind == SWAP
        swapped = np.zeros(n, dtype=bool)
        if sw.any():
            sr = np.flatnonzero(sw)
            other = g.slots[gene_rows[sr]]  # (m, G)
            mask = (
                (self.gene_dim[None, :] != d[sr, None])
                & (other != cur[sr, None])
                & self.allowed[d[sr][:, None], other]
                & self.allowed[self.gene_dim[None, :], cur[sr, None]]
            )
            j, ok = random_true(mask, rng)
            sr, j = sr[ok], j[ok]
            g.slots[gene_rows[sr], i[sr]] = g.slots[gene_rows[sr], j]
            g.slots[gene_rows[sr], j] = cur[sr]
            swapped[sr] = True
        mv = ~swapped  # moves, and swaps with no partner
        if mv.any():
            mr = np.flatnonzero(mv)
            mask = self.allowed[d[mr]].copy()
            mask[np.arange(len(mr)), cur[mr]] = False
            near = gene_kind[mr] == MOVE_NEAR
            if near.any():
                close = np.abs(self.slot_level[None, :] - self.slot_level[cur[mr]][:, None]) <= 1
                near_mask = mask & close
                use = near & near_mask.any(axis=1)
                mask[use] = near_mask[use]
            s, ok = random_true(mask, rng)
            g.slots[gene_rows[mr[ok]], i[mr[ok]]] = s[ok]

    def active_loops(self, g: Genome) -> np.ndarray:
        """(B, L, D) bool: level l has a temporal factor > 1 on dim d (from the slots, no decode)."""
        B = len(g)
        act = np.zeros((B, self.L, len(self.space.dims)), dtype=bool)
        temporal = g.slots % 3 == TEMPORAL
        r, i = np.nonzero(temporal)
        act[r, g.slots[r, i] // 3, self.gene_dim[i]] = True
        return act

    def _order_moves(self, g: Genome, rows: np.ndarray, kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Swap or reorder loops with factor > 1 within one level; rows with no such pair are returned."""
        m = len(rows)
        order = g.order[rows]  # (m, L, D)
        act = self.active_loops(g.take(rows))
        active = np.take_along_axis(act, order, axis=2)  # by loop position
        lvl, ok = random_true(active.sum(axis=2) >= 2, rng)
        if not ok.any():
            return rows
        ar = np.arange(m)
        pos = active[ar, lvl]  # (m, D)
        a, _ = random_true(pos, rng)
        pos[ar, a] = False
        b, _ = random_true(pos, rng)
        row = order[ar, lvl]  # (m, D)
        D = row.shape[1]
        p = np.arange(D)[None, :]
        a_, b_ = a[:, None], b[:, None]
        # reorder: the loop at a is taken out and re-inserted at b
        src = p + ((p >= a_) & (p < b_)) - ((p > b_) & (p <= a_))
        src = np.where(p == b_, a_, src)
        # swap: positions a and b exchange
        swap = np.where(p == a_, b_, np.where(p == b_, a_, p))
        src = np.where((kind == ORDER_SWAP)[:, None], swap, src)
        new = np.take_along_axis(row, src, axis=1)
        g.order[rows[ok], lvl[ok]] = new[ok]
        return rows[~ok]


def seeded_population(
    ops: Operators, n: int, rng: np.random.Generator, seeds: Genome, capacity: bool = True, seeded_frac: float = 0.5
) -> Genome:
    """`n` genomes: the warm-start seeds, 1-2-move mutants of them up to `seeded_frac` of n, the rest uniform."""
    n_seeded = min(len(seeds), n)
    if n_seeded == 0:
        return ops.random(n, rng, capacity=capacity)
    parts = [seeds.take(slice(0, n_seeded))]
    n_mut = max(0, int(seeded_frac * n) - n_seeded)
    if n_mut:
        mut = ops.mutate(seeds.take(rng.integers(n_seeded, size=n_mut)), rng, rng.integers(1, 3, size=n_mut))
        if capacity:
            capacity_repair(ops.space, mut, rng)
        parts.append(mut)
    rest = n - n_seeded - n_mut
    if rest:
        parts.append(ops.random(rest, rng, capacity=capacity))
    return Genome.concat(parts)


def _fitness(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), np.inf, values)


class GeneticMapper:
    """Genetic search over genomes; see the module docstring for operators and accounting."""

    name = "ga"

    def __init__(
        self,
        population: int | None = None,
        tournament: int = 3,
        crossover_rate: float = 0.7,
        extra_move_rate: float = 0.5,
        mutation_weights: tuple[float, ...] = DEFAULT_MUTATION_WEIGHTS,
        repair_capacity: bool = True,
        immigrant_rate: float = 0.1,
        constraint: Any = None,
    ) -> None:
        self.population = population
        self.constraint = constraint  # apply(genome) in place, .target slot and .movable genes for capacity repair
        self.immigrant_rate = immigrant_rate
        self.repair_capacity = repair_capacity
        self.tournament = tournament
        self.crossover_rate = crossover_rate
        self.extra_move_rate = extra_move_rate
        self.mutation_weights = mutation_weights

    def population_size(self, budget: int) -> int:
        if self.population is not None:
            return max(2, min(self.population, budget))
        return max(2, min(budget, int(np.clip(budget // 40, 16, 100))))

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
        """`budget` evaluations at most; with `time_limit` (seconds), stop there with the best so far.
        `initial`: warm-start mappings for this layer (rlmap.search.warmstart), seeding the population."""
        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        space = make_space(layer, arch, model)
        return self.search_many(space, objective, [budget], seed, time_limit, [initial], [self.constraint], started)[0]

    def search_many(
        self,
        space: MapSpace,
        objective: str,
        budgets: Sequence[int],
        seed: int = 0,
        time_limit: float | None = None,
        initials: Sequence[Sequence[Mapping] | None] | None = None,
        constraints: Sequence[Any] | None = None,
        started: float | None = None,
    ) -> list[SearchResult]:
        """Independent GA runs on one map space, one per budget, each with its own warm start, constraint,
        population, evaluator (budget, cache) and stopping rule, stepped in lockstep.

        Why: a run on a small budget has a small population, so its time goes to numpy call overhead, not
        to work; stepping the runs together applies the genome operators (crossover, mutation, repair,
        constraint, capacity repair) once per generation to all their offspring at once.  Only selection,
        scoring and survival stay per run.  One run is exactly `search` (same random stream)."""
        started = time.perf_counter() if started is None else started
        n = len(budgets)
        initials = list(initials) if initials is not None else [None] * n
        cons = list(constraints) if constraints is not None else [None] * n
        ops = Operators(space, self.mutation_weights)
        rng = np.random.default_rng(seed)
        evs = [BudgetedEvaluator(space, objective, b, time_limit=time_limit, started=started) for b in budgets]
        sizes = [self.population_size(b) for b in budgets]
        pops: list[Genome] = []
        fits: list[np.ndarray] = []
        for k in range(n):
            pop = seeded_population(
                ops, sizes[k], rng, initial_genomes(space, initials[k], rng), capacity=self.repair_capacity
            )
            if cons[k] is not None:
                pop = self._finish(ops, pop, rng, [cons[k]], [len(pop)])
            pops.append(pop)
            fits.append(_fitness(evs[k].score(pop)))
        generations, stalls = [0] * n, [0] * n
        while True:
            live = [k for k in range(n) if not evs[k].exhausted and stalls[k] < 50]
            if not live:
                break
            used = [evs[k].used for k in live]
            children = self._offspring(
                ops,
                [pops[k] for k in live],
                [fits[k] for k in live],
                [sizes[k] for k in live],
                rng,
                [cons[k] for k in live],
            )
            at = 0
            for k, u in zip(live, used):
                kids = children.take(slice(at, at + sizes[k]))
                at += sizes[k]
                cfit = _fitness(evs[k].score(kids))
                pops[k], fits[k] = self._survivors(
                    space, Genome.concat([pops[k], kids]), np.concatenate([fits[k], cfit]), sizes[k]
                )
                generations[k] += 1
                stalls[k] = stalls[k] + 1 if evs[k].used == u else 0
        return [
            evs[k].result(self.name, started, {"population": sizes[k], "generations": generations[k]}) for k in range(n)
        ]

    def _offspring(
        self,
        ops: Operators,
        pops: list[Genome],
        fits: list[np.ndarray],
        sizes: list[int],
        rng: np.random.Generator,
        constraints: list[Any],
    ) -> Genome:
        """sizes[k] offspring of every population k (parents by tournament within it), concatenated."""
        a_parts, b_parts = [], []
        for pop, fit, m in zip(pops, fits, sizes):
            pa = self._tournament(fit, m, rng)
            pb = self._tournament(fit, m, rng)
            a_parts.append(pop.take(pa))
            b_parts.append(pop.take(pb))
        a, b = Genome.concat(a_parts), Genome.concat(b_parts)
        n = len(a)
        cross = rng.random(n) < self.crossover_rate
        kids = ops.crossover(a, b, rng)
        kids = Genome(
            np.where(cross[:, None], kids.slots, a.slots), np.where(cross[:, None, None], kids.order, a.order)
        )
        moves = rng.geometric(1 - self.extra_move_rate, size=n) if self.extra_move_rate > 0 else np.ones(n, np.int64)
        kids = ops.mutate(ops.repair(kids, rng), rng, moves)
        fresh = np.flatnonzero(rng.random(n) < self.immigrant_rate)  # diversity: fresh uniform genomes
        if len(fresh):
            new = ops.random(len(fresh), rng)
            kids.slots[fresh], kids.order[fresh] = new.slots, new.order
        return self._finish(ops, kids, rng, constraints, sizes)

    def _finish(
        self, ops: Operators, g: Genome, rng: np.random.Generator, constraints: list[Any], sizes: list[int]
    ) -> Genome:
        """Each run's constraint (if any: Marvel's fixed off-chip part) on its rows, then capacity repair."""
        edges = np.cumsum([0, *sizes])
        for c, lo, hi in zip(constraints, edges[:-1], edges[1:]):
            if c is not None:
                c.apply(g.take(slice(int(lo), int(hi))))  # a view: applied in place
        if not self.repair_capacity:
            return g
        if all(c is None for c in constraints):
            capacity_repair(ops.space, g, rng)
        elif len(constraints) == 1:
            capacity_repair(ops.space, g, rng, target=constraints[0].target, movable=constraints[0].movable)
        else:
            every = np.ones(ops.space.n_genes, dtype=bool)
            target = np.repeat([0 if c is None else c.target for c in constraints], sizes)
            movable = np.repeat(np.stack([every if c is None else c.movable for c in constraints]), sizes, axis=0)
            capacity_repair(ops.space, g, rng, target=target, movable=movable)
        return g

    def _tournament(self, fit: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        cand = rng.integers(len(fit), size=(n, self.tournament))
        # rank-based: ties (e.g. several invalid) resolved by position, which is random
        return cand[np.arange(n), np.argmin(fit[cand], axis=1)]

    @staticmethod
    def _survivors(space: MapSpace, pool: Genome, fit: np.ndarray, P: int) -> tuple[Genome, np.ndarray]:
        """The P best distinct members of the pool (duplicates only fill places left over)."""
        keys = effective_keys(space, pool)
        seen: set[bytes] = set()
        first = np.zeros(len(pool), dtype=bool)
        for i, k in enumerate(keys):
            if k not in seen:
                seen.add(k)
                first[i] = True
        rank = np.lexsort((fit, ~first))  # distinct ones first, each part by fitness
        keep = rank[:P]
        return pool.take(keep), fit[keep]
