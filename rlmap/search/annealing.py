"""Simulated annealing on the map-space genome, with the genetic mapper's neighbourhood moves.

State: `chains` independent genomes (prime-copy slots plus per-level loop orders).  A step proposes
`neighbours` mutations of every chain's state (one move each, occasionally more; see
rlmap.mappers.genetic.Operators: move / move-near / swap / order-swap / reorder, fanout-repaired) and
scores all chains' proposals in one vectorised batch; per chain, the best proposal replaces the state by
the Metropolis rule on log(objective), so the temperature is scale-free: at temperature T a step that
makes the objective e^T times worse is taken with probability 1/e.  T falls geometrically from `t_start`
to `t_end` as the budget is spent.  A chain whose own best has not improved for `patience_frac` of its
share of the budget restarts from the best mapping found by any chain.

Defaults (4 chains x 4 neighbours, T 0.5 -> 0.005) were picked on Eyeriss, EDP, budgets 1000 and 10000,
over six layers (ResNet-50 conv1 / 3x3 / 1x1, MobileNetV2 depthwise, BERT GEMM and attention matmul).

Budget accounting is the genetic mapper's: every mapping scored is one evaluation (the random start
batch included, invalid ones included), a neighbour equal in effect to one already scored takes the
cached score at no cost.  The start is the best of a batch of uniform, fanout-repaired genomes, drawn
again (and counted) until one is valid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.search.base import SearchResult
from rlmap.search.genetic import DEFAULT_MUTATION_WEIGHTS, Operators
from rlmap.search.mapspace import Genome
from rlmap.search.random_search import BudgetedEvaluator, check_args, make_space
from rlmap.search.repair import capacity_repair
from rlmap.search.warmstart import initial_genomes
from rlmap.spec.arch import Architecture
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping


class AnnealingMapper:
    """Batched simulated annealing with `chains` independent chains; see the module docstring."""

    name = "sa"

    def __init__(
        self,
        chains: int = 4,
        neighbours: int = 4,
        t_start: float = 0.5,
        t_end: float = 0.005,
        extra_move_rate: float = 0.2,
        start_frac: float = 0.02,
        patience_frac: float = 0.15,
        mutation_weights: tuple[float, ...] = DEFAULT_MUTATION_WEIGHTS,
        repair_capacity: bool = True,
    ) -> None:
        self.chains = chains
        self.repair_capacity = repair_capacity
        self.neighbours = neighbours
        self.t_start = t_start
        self.t_end = t_end
        self.extra_move_rate = extra_move_rate
        self.start_frac = start_frac
        self.patience_frac = patience_frac
        self.mutation_weights = mutation_weights

    def start_batch(self, budget: int) -> int:
        """Random draws the start is picked from: `start_frac` of the budget, but at most one cost-model slice
        (BudgetedEvaluator.SLICE), so a huge budget allocates nothing big up front."""
        return max(1, min(budget, BudgetedEvaluator.SLICE, max(16, self.chains, int(self.start_frac * budget))))

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
        `initial`: warm-start mappings for this layer (rlmap.search.warmstart), scored first as chain starts."""
        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        space = make_space(layer, arch, model)
        ops = Operators(space, self.mutation_weights)
        rng = np.random.default_rng(seed)
        ev = BudgetedEvaluator(space, objective, budget, time_limit=time_limit, started=started)
        C, k = self.chains, self.neighbours

        # start: the best of uniform fanout-repaired draws, drawn again until one is valid
        n0 = self.start_batch(budget)
        starts: list[Genome] = []
        start_v: list[np.ndarray] = []
        drawn = 0
        seeds = initial_genomes(space, initial, rng)
        if len(seeds):  # warm start: the seeds compete with the random start draws
            starts.append(seeds)
            start_v.append(_clean(ev.score(seeds)))
            n0 = max(C, n0 // 4)
        while not ev.exhausted:  # in slices, so that a time limit is checked between them
            g = ops.random(min(n0 - drawn, ev.SLICE) if drawn < n0 else n0, rng, capacity=self.repair_capacity)
            v = _clean(ev.score(g))
            starts.append(g)
            start_v.append(v)
            drawn += len(g)
            if drawn >= n0 and np.isfinite(np.concatenate(start_v)).any():
                break
        pool, pool_v = Genome.concat(starts), np.concatenate(start_v)
        if not np.isfinite(pool_v).any():
            return ev.result(self.name, started, {"steps": 0, "accepted": 0, "restarts": 0})
        top = np.argsort(pool_v, kind="stable")[:C]
        top = top[np.isfinite(pool_v[top])]
        pick = top[np.arange(C) % len(top)]
        cur, cur_v = pool.take(pick), pool_v[pick].copy()
        b = int(np.argmin(cur_v))
        best, best_v = cur.take(np.array([b])), float(cur_v[b])  # fancy index: a copy
        chain_best = cur_v.copy()
        last_gain = np.full(C, ev.used)
        patience = max(4 * k, int(self.patience_frac * budget / C))
        log_ratio = math.log(self.t_end / self.t_start)
        steps = accepted = restarts = idle = 0
        ar = np.arange(C)
        while not ev.exhausted and idle < 200:
            temp = self.t_start * math.exp(log_ratio * ev.used / budget)
            parents = Genome(np.repeat(cur.slots, k, axis=0), np.repeat(cur.order, k, axis=0))
            moves = rng.geometric(1 - self.extra_move_rate, size=C * k) if self.extra_move_rate > 0 else 1
            nb = ops.mutate(parents, rng, moves)
            if self.repair_capacity:
                capacity_repair(space, nb, rng)
            used = ev.used
            v = _clean(ev.score(nb)).reshape(C, k)
            idle = idle + 1 if ev.used == used else 0
            steps += 1
            j = np.argmin(v, axis=1)
            vj = v[ar, j]
            with np.errstate(invalid="ignore", divide="ignore"):
                delta = np.log(vj) - np.log(cur_v)
            take = np.isfinite(vj) & ((delta <= 0) | (rng.random(C) < np.exp(-np.maximum(delta, 0) / temp)))
            if take.any():
                src = np.flatnonzero(take) * k + j[take]
                cur.slots[take] = nb.slots[src]
                cur.order[take] = nb.order[src]
                cur_v[take] = vj[take]
                accepted += int(take.sum())
                gained = cur_v < chain_best
                chain_best[gained] = cur_v[gained]
                last_gain[gained] = ev.used
                c = int(np.argmin(cur_v))
                if cur_v[c] < best_v:
                    best, best_v = cur.take(np.array([c])), float(cur_v[c])
            stale = ev.used - last_gain > patience
            if stale.any():
                cur.slots[stale] = best.slots[0]
                cur.order[stale] = best.order[0]
                cur_v[stale] = best_v
                chain_best[stale] = best_v
                last_gain[stale] = ev.used
                restarts += int(stale.sum())
        return ev.result(self.name, started, {"steps": steps, "accepted": accepted, "restarts": restarts})


def _clean(v: np.ndarray) -> np.ndarray:
    """Unscored (NaN, past the budget) counts as invalid."""
    return np.where(np.isnan(v), np.inf, v)
