"""Marvel (Chatarasi et al., 2020): decoupled search, the off-chip subspace first, then the on-chip one.

Why decouple: off-chip (DRAM) accesses cost two to three orders of magnitude more energy than on-chip
ones, so the DRAM-level tiling and loop order decide most of a mapping's cost, and searching them first
with a cheap analytical model shrinks the >10^19-mapping space of a layer to a few small on-chip spaces.

**Phase 1, off-chip subspace** (no cost-model evaluation).  A candidate is a DRAM-level tiling (one
divisor of every dim: the DRAM loop bounds; the on-chip tile is dims / bounds) and a DRAM loop order.
Its off-chip traffic is Marvel's distinct-block locality model: a tensor's tile is fetched once per
iteration of the DRAM loops outside and including its innermost *relevant* loop (loops inside that are
irrelevant to it reuse the tile on chip), so

    words(v) = footprint(v, tile) x prod(bounds of the DRAM loops at or outside v's innermost relevant loop)

with outputs written that many times and read back that many times less once (partial sums).  The tile
footprints are `rlmap.model.costmodel.footprint` (sliding-window input halo included), times the stored
words per dense word of the tensor's format at that level (compressed sparse tensors).  This is exactly
the DRAM-level read/write count of rlmap's cost model for dense tensors when the first on-chip level
keeps every tensor and input windows do not overlap; where they do (R > stride) the cost model also
reuses the overlap of neighbouring tiles, so the distinct-block count is a slight upper bound
(tests/test_marvel.py checks both against the cost model).  For a tensor that bypasses
that level (Eyeriss's weights) it is the traffic if its whole on-chip tile stays in the scratchpads; the
on-chip phase may re-fetch it more often, and the cost model charges what it does.  Because every dim is irrelevant to
exactly one of weights {N, P, Q}, inputs {K}, outputs {C, R, S}, a DRAM order helps exactly one tensor --
the one whose irrelevant loops sit innermost -- so three orders (weight-, input-, output-stationary at
DRAM) cover every distinct traffic value.  Candidates whose on-chip tile does not fit on chip
(`onchip_fits`: each tensor in the first on-chip level that keeps it, over all its instances) are dropped;
the `candidates` with least traffic go on, taken in turn from
the three DRAM orders (least traffic first) so that each dataflow gets a share.

Data layout (dimension permutation of a tensor in DRAM) is part of Marvel's off-chip subspace, but rlmap's
cost model charges DRAM per word, not per burst or row, so layout changes no cost here and is not searched.

**Phase 2, on-chip subspace.**  For each off-chip candidate the genetic mapper searches the rest --
the on-chip levels' tiling, spatial unrolling and loop orders -- with the DRAM bounds and order held fixed
(`OffChipConstraint`; capacity repair pushes primes out to the first on-chip level, not to DRAM).  The
budget (cost-model evaluations): `explore_frac` of it split evenly over the candidates, the rest on the
best candidate, seeded with its best mapping.  The result is the best mapping found.  The GA runs of one
round are stepped in lockstep (`GeneticMapper.search_many`): each keeps its own population, budget and
evaluator, but the genome operators run once per generation on all their offspring together -- small
budgets mean small populations, whose time would otherwise go to per-call numpy overhead.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmap.model.costmodel import CostModel, footprint, format_factor
from rlmap.search.base import SearchResult, best_so_far
from rlmap.search.genetic import GeneticMapper
from rlmap.search.mapspace import TEMPORAL, Genome, MapSpace
from rlmap.search.random_search import check_args, make_space, time_limit_note
from rlmap.spec.arch import Architecture
from rlmap.spec.factors import divisors, prime_factors
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import N_DIMS, N_TENSORS, OUTPUTS, RELEVANT, TENSORS

STATIONARY = TENSORS
"""The three DRAM orders: the named tensor's irrelevant loops innermost (that tensor is reused on chip)."""


def stationary_orders() -> np.ndarray:
    """(3, D) DRAM loop orders, outermost first: tensor t's irrelevant dims innermost."""
    out = []
    for t in range(N_TENSORS):
        irrelevant = [d for d in range(N_DIMS) if d not in RELEVANT[t]]
        out.append([d for d in range(N_DIMS) if d in RELEVANT[t]] + irrelevant)
    return np.array(out, dtype=np.int64)


def offchip_words(
    model: CostModel, bounds: np.ndarray, order: np.ndarray, tensors: Sequence[int] = tuple(range(N_TENSORS))
) -> np.ndarray:
    """Distinct-block off-chip traffic (words read + written) of DRAM bounds (B, D) under one DRAM order (D,),
    summed over `tensors`."""
    dims = np.asarray(model.dims, dtype=np.float64)
    F = bounds.astype(np.float64)  # (B, D)
    tile = (dims[None, :] / F).T  # (D, B)
    sh, sw, dh, dw = model.sh, model.sw, model.dh, model.dw
    B = len(F)
    Fo = F[:, order]  # by loop position, outermost first
    cum = np.cumprod(Fo, axis=1)  # iterations of the loops at or outside each position
    total = np.zeros(B)
    for v in tensors:
        rel = np.array([d in RELEVANT[v] for d in order])
        active = (Fo > 1) & rel[None, :]
        has = active.any(axis=1)
        last = np.where(has, N_DIMS - 1 - np.argmax(active[:, ::-1], axis=1), 0)
        fetches = np.where(has, cum[np.arange(B), last], 1.0)
        fp = footprint(v, tile, sh, sw, dh, dw)
        words = fp * fetches
        if v == OUTPUTS:  # written once per fetch, read back for every write but the first of each element
            words = 2 * words - footprint(v, dims, sh, sw, dh, dw)
        total += words * stored_fraction(model, 0, v, fp)
    return total


def stored_fraction(model: CostModel, lvl: int, v: int, tile: Any) -> Any:
    """Stored words per dense word of tensor v at a level (its compressed format and density; 1 if dense)."""
    f = model.fmt_const[lvl][v]
    return f if f is not None else format_factor(model.formats[lvl][v], model.density[v], tile, model.data_bits)


def onchip_fits(model: CostModel, bounds: np.ndarray) -> np.ndarray:
    """Mask of DRAM bounds (B, D) whose on-chip tile fits on chip, tensor by tensor: each tensor's tile in the
    first on-chip level that keeps it, all of its instances together (a tensor that bypasses the first level,
    like Eyeriss's weights, lives in the PE scratchpads: capacity x PEs); a shared capacity holds the sum."""
    dims = np.asarray(model.dims, dtype=np.float64)
    tile = (dims[None, :] / bounds.astype(np.float64)).T  # (D, B)
    ok = np.ones(len(bounds), dtype=bool)
    shared: dict[int, np.ndarray] = {}
    for v in range(N_TENSORS):
        lvl = next((lv for lv in range(1, model.L) if model.keeps[lv][v]), -1)
        cap = model.capacity[lvl] if lvl >= 0 else None
        if cap is None:
            continue
        instances = float(np.prod([float(model.fan_x[lv] * model.fan_y[lv]) for lv in range(lvl)]))
        fp = footprint(v, tile, model.sh, model.sw, model.dh, model.dw)
        words = fp * model.word_scale[lvl] * stored_fraction(model, lvl, v, fp / instances) / instances
        if cap[0] == "shared":
            shared[lvl] = shared.get(lvl, 0.0) + words
            ok &= shared[lvl] <= cap[1] + 1e-9
        else:
            ok &= words <= cap[1][v] + 1e-9
    return ok


@dataclass
class OffChipCandidate:
    bounds: tuple[int, ...]  # DRAM loop bound per dim
    order: tuple[int, ...]  # DRAM loop order, outermost first
    stationary: str
    words: float


def offchip_candidates(
    model: CostModel, n: int, max_tilings: int = 200_000, rng: np.random.Generator | None = None, slack: float = 0.25
) -> tuple[list[OffChipCandidate], int]:
    """`n` off-chip candidates that fit on chip, within `slack` of the least traffic, spread over the traffic
    ranking; and how many tilings were scored.

    Every combination of divisors is scored when there are at most `max_tilings` (else a uniform sample)."""
    divs = [np.array(divisors(n_d), dtype=np.int64) for n_d in model.dims]
    count = int(np.prod([len(d) for d in divs], dtype=np.float64))
    if count <= max_tilings:
        F = np.array(list(itertools.product(*divs)), dtype=np.int64).reshape(-1, N_DIMS)
    else:
        rng = rng or np.random.default_rng(0)
        F = np.stack([d[rng.integers(len(d), size=max_tilings)] for d in divs], axis=1)
        F = np.unique(F, axis=0)
    F = F[onchip_fits(model, F)]
    orders = stationary_orders()
    words = np.stack([offchip_words(model, F, o) for o in orders], axis=1)  # (B, 3)
    best_o = np.argmin(words, axis=1)  # each tiling with its best DRAM order (first of equals)
    best_w = words[np.arange(len(F)), best_o]
    if len(F) == 0:
        return [], 0
    # eligible: within `slack` of the least traffic; ranked by traffic, then fewer DRAM iterations
    ok = np.flatnonzero(best_w <= (1 + slack) * best_w.min())
    rank = ok[np.lexsort((F[ok].prod(axis=1), best_w[ok]))]
    # n candidates spread evenly over the ranking (the best always first), for diverse on-chip tiles
    pick = np.unique(np.linspace(0, len(rank) - 1, min(n, len(rank))).round().astype(int))
    out = [
        OffChipCandidate(
            tuple(int(x) for x in F[b]),
            tuple(int(x) for x in orders[best_o[b]]),
            STATIONARY[best_o[b]],
            float(best_w[b]),
        )
        for b in rank[pick]
    ]
    return out, len(F)


class OffChipConstraint:
    """Holds a genome's off-chip part fixed: the DRAM bound's prime copies at slot 0 (DRAM temporal), every
    other copy on chip, the DRAM loop order given.  Capacity repair moves copies to level 1's temporal slot."""

    def __init__(self, space: MapSpace, cand: OffChipCandidate) -> None:
        self.frozen = np.zeros(space.n_genes, dtype=bool)
        col = 0
        for d, p, a in space.groups:
            k = dict(prime_factors(cand.bounds[d])).get(p, 0) if cand.bounds[d] > 1 else 0
            self.frozen[col : col + k] = True
            col += a
        self.movable = ~self.frozen
        self.target = 3 + TEMPORAL  # level 1 temporal
        self.order0 = np.array(cand.order, dtype=np.int64)

    def apply(self, g: Genome) -> None:
        g.slots[:, self.frozen] = 0
        free = g.slots[:, self.movable]
        g.slots[:, self.movable] = np.where(free < 3, self.target, free)
        g.order[:, 0] = self.order0


class MarvelMapper:
    """Decoupled off-chip / on-chip search; see the module docstring."""

    name = "marvel"

    def __init__(self, candidates: int = 16, explore_frac: float = 0.5, max_tilings: int = 200_000) -> None:
        self.candidates = candidates
        self.explore_frac = explore_frac
        self.max_tilings = max_tilings

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
        """`budget` on-chip cost-model evaluations (the off-chip phase uses none); `time_limit` for the call."""
        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        space = make_space(layer, arch, model)
        if arch.n_levels < 2:  # nothing on chip to decouple: plain GA
            return GeneticMapper().search(layer, arch, objective, budget, seed, space.model, time_limit, initial)
        rng = np.random.default_rng(seed)
        n_cand = max(1, min(self.candidates, int(self.explore_frac * budget) // 64))
        cands, scored = offchip_candidates(space.model, n_cand, self.max_tilings, rng)
        t_off = time.perf_counter() - started
        if not cands:  # no on-chip tile fits level 1 (only possible with bypassing levels): full-space GA
            res = GeneticMapper().search(layer, arch, objective, budget, seed, space.model, time_limit, initial)
            res.mapper = self.name
            res.notes["marvel"] = "no off-chip candidate fits level 1: full-space GA"
            return res
        best: SearchResult | None = None
        best_cand = cands[0]
        values: list[np.ndarray] = []
        evaluations = 0
        stopped = ""
        alive = list(range(len(cands)))
        champion: dict[int, SearchResult] = {}
        explore = int(self.explore_frac * budget)
        rounds = max(1, math.ceil(math.log2(len(cands)))) if len(cands) > 1 else 1
        deadline = math.inf if time_limit is None else started + time_limit

        ga = GeneticMapper()

        def run(ids: list[int], n_eval: int) -> None:
            """One GA run of `n_eval` evaluations per candidate in `ids`, stepped together (search_many)."""
            nonlocal best, best_cand, evaluations, stopped
            left = None if time_limit is None else deadline - time.perf_counter()
            if n_eval <= 0 or not ids or (left is not None and left <= 0):
                return
            seeds: list[list[Mapping]] = []
            for i in ids:
                own = champion[i].mapping if i in champion else None
                seeds.append(list(initial or ()) + ([own] if own else []))
            results = ga.search_many(
                space,
                objective,
                [n_eval] * len(ids),
                int(rng.integers(2**31)),
                left,
                seeds,
                [OffChipConstraint(space, cands[i]) for i in ids],
            )
            for i, r in zip(ids, results):
                evaluations += r.evaluations
                values.append(r.curve)
                stopped = str(r.notes.get("stopped", stopped))
                if i not in champion or r.best < champion[i].best:
                    champion[i] = r
                if best is None or r.best < best.best:
                    best, best_cand = r, cands[i]

        # successive halving over the candidates: every round shares explore/rounds, the better half goes on
        for _ in range(rounds):
            run(alive, explore // rounds // max(len(alive), 1))
            alive = sorted(alive, key=lambda i: champion[i].best if i in champion else math.inf)
            alive = alive[: max(1, len(alive) // 2)]
        # the rest of the budget refines the best candidate, starting from its best mapping
        run([cands.index(best_cand)], budget - evaluations)
        per = [
            {
                "bounds": list(c.bounds),
                "stationary": c.stationary,
                "offchip_words": c.words,
                "best": champion[i].best if i in champion else None,
            }
            for i, c in enumerate(cands)
        ]
        curve = best_so_far(np.concatenate(values)) if values else np.zeros(0)
        notes: dict[str, Any] = {
            "offchip_tilings_scored": scored,
            "offchip_seconds": t_off,
            "candidates": per,
            "layout": "not searched: the cost model charges DRAM per word",
        }
        if time_limit is not None and time.perf_counter() - started > time_limit:
            notes["stopped"] = stopped or time_limit_note(time_limit)
        return SearchResult(
            mapper=self.name,
            objective=objective,
            mapping=best.mapping if best else None,
            cost=best.cost if best else None,
            evaluations=evaluations,
            curve=curve,
            seconds=time.perf_counter() - started,
            notes=notes,
        )
