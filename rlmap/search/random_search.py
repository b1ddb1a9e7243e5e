"""Random search, and the budget bookkeeping every search mapper in rlmap shares.

`RandomMapper` draws mappings uniformly from the whole map space (tilings by stars and bars per prime
group, loop orders uniformly; `MapSpace.random_genomes`) and scores them in batches with the vectorised
cost model.  Nothing is filtered beforehand: a draw that breaks a fanout or a capacity is still a
cost-model evaluation, counted against the budget, with an infinite objective.  (`MapSpace.sample` is not
used: it rejects invalid draws by scoring them, and those scorings would go uncounted -- at the 1-3%
acceptance typical of Eyeriss that hides ~50 evaluations behind each one reported.)

`BudgetedEvaluator` is the one place the search mappers call the cost model.  It counts every mapping
it scores, records the evaluation order for the best-so-far curve, keeps the best mapping, and caches
scores by the mapping's *effective* form (factors plus the order of the loops whose factor is > 1), so a
search that proposes a mapping it has already scored gets the cached value without spending budget.
It also holds the optional wall-clock limit: past it the evaluator reads as exhausted, so every mapper
stops at its next check with the best mapping so far, and the result says so (notes["stopped"]).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlmap.model.costmodel import OBJECTIVES, CostModel
from rlmap.search.base import SearchResult, best_so_far
from rlmap.search.mapspace import Genome, MapSpace
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import N_DIMS

MAX_BUDGET = 100_000_000
"""Most cost-model evaluations one search may be given per layer: every evaluation's value is kept for the
convergence curve (8 bytes each, 0.8 GB at this bound), and at the cost model's pace (roughly 1e5-1e6
evaluations/s) it is already minutes to hours per layer; --time-limit bounds a run by time instead."""


def check_args(objective: str, budget: int, time_limit: float | None = None) -> None:
    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise SpecError(f"budget must be a positive number of evaluations, got {budget!r}")
    if budget > MAX_BUDGET:
        raise SpecError(f"budget must be at most {MAX_BUDGET:,} evaluations per layer, got {budget:,}")
    if time_limit is not None and not time_limit > 0:
        raise SpecError(f"time limit must be a positive number of seconds, got {time_limit!r}")


def time_limit_note(time_limit: float) -> str:
    """How a result stopped by its wall-clock limit says so (notes["stopped"])."""
    return f"time limit {time_limit:g} s reached: best so far"


def make_space(layer: Layer, arch: Architecture, model: CostModel | None) -> MapSpace:
    return MapSpace(layer, arch, model if model is not None else CostModel(layer, arch))


def effective_keys(space: MapSpace, g: Genome, batch: MappingBatch | None = None) -> list[bytes]:
    """One byte string per mapping that is equal exactly when the cost model cannot tell them apart.

    The cost model ignores where a loop of factor 1 sits in a level's order, so the key holds the slot of
    every prime copy (sorted within a prime group, whose copies are interchangeable) and, per level, the
    dims with a temporal factor > 1 in loop order.
    """
    if batch is None:
        batch = space.decode(g)
    B = len(g)
    parts = [_group_sorted(space, g.slots).astype(np.int8)]
    t = batch.temporal  # (B, L, D)
    active = np.take_along_axis(t, g.order, axis=2) > 1  # (B, L, D) in loop-order positions
    eff = np.where(active, g.order, -1)
    # push inactive (-1) entries to the end, keeping the relative order of active ones
    pos = np.argsort(~active, axis=2, kind="stable")
    parts.append(np.take_along_axis(eff, pos, axis=2).reshape(B, -1).astype(np.int8))
    rows = np.concatenate(parts, axis=1)
    return [r.tobytes() for r in rows]


def _group_sorted(space: MapSpace, slots: np.ndarray) -> np.ndarray:
    """Slots sorted within each prime group (copies of one prime of one dim are interchangeable)."""
    out = slots.copy()
    col = 0
    for _d, _p, a in space.groups:
        if a > 1:
            out[:, col : col + a] = np.sort(out[:, col : col + a], axis=1)
        col += a
    return out


class BudgetedEvaluator:
    """Scores genomes with the vectorised cost model, never more than `budget` in all."""

    SLICE = 4096
    """Most mappings scored per cost-model call; between two calls the time limit is checked."""

    SLICE_SECONDS = 0.1
    """With a time limit, slices shrink so that one takes about this long (a slow cost model gets small ones)."""

    def __init__(
        self,
        space: MapSpace,
        objective: str,
        budget: int,
        cache: bool = True,
        time_limit: float | None = None,
        started: float | None = None,
    ) -> None:
        self.space = space
        self.time_limit = time_limit
        self.deadline = (time.perf_counter() if started is None else started) + (
            np.inf if time_limit is None else time_limit
        )
        self.timed_out = False
        self._slice = self.SLICE if time_limit is None else 64  # grows after the first call on a fast model
        self.seconds_per_evaluation: float | None = None
        self.objective = objective
        self.budget = int(budget)
        self.used = 0
        self.values: list[np.ndarray] = []  # objective per evaluation, in evaluation order
        self.valid_count = 0
        self.cache_hits = 0
        self.cache: dict[bytes, float] | None = {} if cache else None
        self.best_value = np.inf
        self.best_slots: np.ndarray | None = None
        self.best_order: np.ndarray | None = None
        self.fell_back = False  # the last evaluation went to the all-outermost mapping (see _evaluate)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def affordable(self) -> int:
        """Evaluations the budget and the time left still allow (the time by the last slice's pace)."""
        if self.time_limit is None or self.seconds_per_evaluation is None:
            return self.remaining
        left = max(self.deadline - time.perf_counter(), 0.0)
        return int(min(self.remaining, max(1.0, left / max(self.seconds_per_evaluation, 1e-9))))

    @property
    def exhausted(self) -> bool:
        """The budget is spent, or the time limit has passed."""
        if self.used >= self.budget:
            return True
        if time.perf_counter() > self.deadline:
            self.timed_out = True
        return self.timed_out

    def score(self, g: Genome) -> np.ndarray:
        """Objective per genome (inf if invalid).

        Mappings already scored come from the cache at no cost; new ones are evaluated in order, in slices
        of at most `SLICE` (fewer when the model is slow and there is a time limit), until the budget runs
        out or (after the first slice) the time limit passes; any left come back as NaN (not scored; the
        caller stops).
        """
        B = len(g)
        out = np.full(B, np.nan)
        if B == 0:
            return out
        batch = self.space.decode(g)
        if self.cache is None:
            n = min(B, self.remaining)
            s0 = 0
            while s0 < n and not (s0 and self.exhausted):
                part = slice(s0, min(n, s0 + self._slice))
                out[part] = self._evaluate(g.take(part), batch.take(part))
                s0 = part.stop
            return out
        keys = effective_keys(self.space, g, batch)
        todo: list[int] = []
        first: dict[bytes, int] = {}
        dup_of = np.full(B, -1)
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                out[i] = hit
                self.cache_hits += 1
            elif k in first:
                dup_of[i] = first[k]
                self.cache_hits += 1
            elif len(todo) < self.remaining:
                first[k] = i
                todo.append(i)
        s0 = 0
        while s0 < len(todo) and not (s0 and self.exhausted):
            idx = np.array(todo[s0 : s0 + self._slice])
            s0 += len(idx)
            vals = self._evaluate(g.take(idx), batch.take(idx))
            out[idx] = vals
            for i, v in zip(idx, vals):
                self.cache[keys[i]] = float(v)
        dups = np.flatnonzero(dup_of >= 0)
        out[dups] = out[dup_of[dups]]
        return out

    def _evaluate(self, g: Genome, batch: MappingBatch) -> np.ndarray:
        """Score a slice; when it spends the budget's last evaluation and nothing valid was found (huge layers,
        where almost every random tiling overflows a buffer), that last evaluation goes to the all-outermost
        mapping instead, so a search comes back empty-handed only for a layer no mapping fits.  Its value is
        returned in the last draw's place; the budget is spent then, so no search acts on it again."""
        n = len(batch)
        if n == 0 or self.used + n < self.budget or np.isfinite(self.best_value):
            return self._score(g, batch)
        head = self._score(g.take(slice(0, n - 1)), batch.take(slice(0, n - 1))) if n > 1 else np.zeros(0)
        if np.isfinite(self.best_value):
            return np.concatenate([head, self._score(g.take(slice(n - 1, n)), batch.take(slice(n - 1, n)))])
        self.fell_back = True
        last = self._outermost()
        return np.concatenate([head, self._score(last, self.space.decode(last))])

    def _score(self, g: Genome, batch: MappingBatch) -> np.ndarray:
        t0 = time.perf_counter()
        bc = self.space.model.evaluate_batch(batch)
        if self.time_limit is not None:  # size the next slice to take about SLICE_SECONDS
            self.seconds_per_evaluation = (time.perf_counter() - t0) / max(len(batch), 1)
            self._slice = int(min(self.SLICE, max(1, self.SLICE_SECONDS / max(self.seconds_per_evaluation, 1e-9))))
        vals = np.where(bc.valid, bc.objective(self.objective), np.inf).astype(np.float64)
        self.used += len(vals)
        self.valid_count += int(bc.valid.sum())
        self.values.append(vals)
        i = int(np.argmin(vals))
        if vals[i] < self.best_value:
            self.best_value = float(vals[i])
            self.best_slots = g.slots[i].copy()
            self.best_order = g.order[i].copy()
        return vals

    def _outermost(self) -> Genome:
        """Every prime copy in slot 0 (the outermost temporal loop), loops in canonical order: inner tiles are
        single words, so this mapping is valid whenever any mapping of the layer is."""
        return Genome(
            np.zeros((1, self.space.n_genes), dtype=np.int64),
            np.broadcast_to(np.arange(N_DIMS), (1, self.space.L, N_DIMS)).copy(),
        )

    def result(self, mapper: str, started: float, notes: dict[str, Any] | None = None) -> SearchResult:
        """The SearchResult: best mapping re-scored by the scalar (reference) cost model."""
        info: dict[str, Any] = {}
        if self.fell_back:
            if np.isfinite(self.best_value):
                info["fallback"] = "no sampled mapping was valid; kept the all-outermost one (every loop in DRAM)"
            else:
                outermost = self.space.decode(self._outermost())[0]
                info["unmappable"] = self.space.model.evaluate(outermost).reason
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        mapping = cost = None
        if self.best_slots is not None and self.best_order is not None and np.isfinite(self.best_value):
            best = Genome(self.best_slots[None, :], self.best_order[None, :, :])
            mapping = self.space.decode(best)[0]
            cost = self.space.model.evaluate(mapping)
        info["valid_evaluations"] = self.valid_count
        if self.cache is not None:
            info["cache_hits"] = self.cache_hits
        if self.timed_out and self.used < self.budget and self.time_limit is not None:  # (only a limit times out)
            info["stopped"] = time_limit_note(self.time_limit)
        info.update(notes or {})
        return SearchResult(
            mapper=mapper,
            objective=self.objective,
            mapping=mapping,
            cost=cost,
            evaluations=self.used,
            curve=best_so_far(values),
            seconds=time.perf_counter() - started,
            notes=info,
        )


class RandomMapper:
    """Uniform random sampling of the whole map space; every draw is one counted evaluation."""

    name = "random"

    def __init__(self, batch: int = 4096) -> None:
        self.batch = batch

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
        `initial`: warm-start mappings for this layer (rlmap.search.warmstart), scored before the draws."""
        from rlmap.search.warmstart import initial_genomes

        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        space = make_space(layer, arch, model)
        rng = np.random.default_rng(seed)
        ev = BudgetedEvaluator(space, objective, budget, cache=False, time_limit=time_limit, started=started)
        seeds = initial_genomes(space, initial, rng)
        if len(seeds):
            ev.score(seeds.take(slice(0, ev.remaining)))
        while not ev.exhausted:
            ev.score(space.random_genomes(min(self.batch, ev.remaining), rng))
        return ev.result(self.name, started)
