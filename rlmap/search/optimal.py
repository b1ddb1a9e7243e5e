"""Pruned exhaustive search that proves the optimum of the built-in cost model (where it can).

Pruning steps, each exact for rlmap's model (docs/costmodel.md, 'Optimal mapper'):

1. **Loop orders.** A level's order matters only through, per tensor, the set of trailing loops
   irrelevant to it (its stationarity) and, for inputs, which window dim (P, Q, R, S) is the innermost
   relevant loop (halo).  Orders with the same signature are equivalent; an order whose trailing sets
   are all contained in another's (same halo dim) is dominated.  Only loops with factor > 1 count.
2. **Orders are chosen per tiling, level by level.**  Every access term is decided by the order of one
   level (the deepest level above the child holding a loop relevant to the tensor), so energy and every
   level's traffic are sums of per-level contributions.  One sweep per level measures them; the best
   combination is then found exactly by enumerating the per-level Pareto-optimal candidates.
3. **Tilings** are enumerated dimension by dimension, dropping partial tilings whose spatial factors
   exceed a fanout or whose tiles (a lower bound: unassigned factors sit in DRAM) exceed a capacity.

If the number of fitting tilings exceeds `max_tilings`, or `time_limit` runs out, the search stops,
returns the best mapping it evaluated and says it is *not* proven optimal.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from rlmap.model.costmodel import CostModel, footprint, format_factor, objective_value
from rlmap.search.base import SearchResult
from rlmap.search.mapspace import MapSpace
from rlmap.search.tiling_kernel import expand_fitting
from rlmap.spec.arch import Architecture, Fanout
from rlmap.spec.factors import divisors, ordered_factorizations
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import DIMS, INPUTS, N_DIMS, N_TENSORS, OUTPUTS, RELEVANCE_MATRIX, C, G, N, P, Q, R, S

_HALO_DIMS = frozenset({P, Q, R, S})


def order_signature(perm: tuple[int, ...]) -> tuple:
    """What a level order (dims with factor > 1, outermost first) means for reuse."""
    trailing = []
    for v in range(N_TENSORS):
        run = []
        for d in reversed(perm):
            if RELEVANCE_MATRIX[v][d]:
                break
            run.append(d)
        trailing.append(frozenset(run))
    halo = -1
    for d in reversed(perm):
        if RELEVANCE_MATRIX[INPUTS][d]:
            halo = d if d in _HALO_DIMS else -1
            break
    return (tuple(trailing), halo)


@functools.lru_cache(maxsize=4096)
def order_classes(mask: int, active: int = 0b111) -> tuple[tuple[int, ...], ...]:
    """Representative full orders (outermost first) of the non-dominated classes for the dims in `mask`.

    Only tensors in `active` (bit v) are affected by this level's order (it is their deciding level for
    some pair); the others' trailing sets are ignored, and the halo dim only matters for active inputs.
    """
    dims = [d for d in range(N_DIMS) if mask >> d & 1]
    rest = [d for d in range(N_DIMS) if not mask >> d & 1]
    sigs: dict[tuple, tuple[int, ...]] = {}
    for perm in itertools.permutations(dims):
        trailing, halo = order_signature(perm)
        sig = (tuple(t if active >> v & 1 else frozenset() for v, t in enumerate(trailing)),
               halo if active & 1 else -1)
        sigs.setdefault(sig, perm)

    def dominates(a: tuple, b: tuple) -> bool:
        return a[1] == b[1] and all(x >= y for x, y in zip(a[0], b[0]))

    keep = [s for s in sigs if not any(o != s and dominates(o, s) for o in sigs)]
    return tuple(tuple(rest) + sigs[s] for s in keep)


def deciding_levels(model: CostModel, masks: Sequence[int]) -> list[int]:
    """Bit v of entry l: level l's order decides some (parent, child) fetch count of tensor v.

    `masks[l]` has bit d set when level l has a temporal loop over d with factor > 1.  A pair (p, c) with
    c inside the hierarchy is decided by the deepest level above c holding a loop relevant to the tensor;
    the MACs (c = L) have no operand reuse, so no order decides them.
    """
    active = [0] * model.L
    for v in range(N_TENSORS):
        rel_bits = sum(1 << d for d in range(N_DIMS) if RELEVANCE_MATRIX[v][d])
        for _p, c in model.chains[v]:
            if c == model.L:
                continue
            for lvl in range(c - 1, -1, -1):
                if masks[lvl] & rel_bits:
                    active[lvl] |= 1 << v
                    break
    return active


def lower_bound(model: CostModel) -> tuple[float, float]:
    """(energy, cycles) no mapping can beat: compulsory traffic plus the MACs, and full-array compute.

    Every element of a tensor crosses each (parent, child) pair of levels keeping it at least once;
    a MAC-facing read serves at most all the MACs below its level; the array never beats one MAC per PE
    per cycle, and no level moves data faster than all its instances' bandwidth.
    """
    L = model.L
    arch = model.arch
    full = model.dims
    sizes = [footprint(v, full, model.sh, model.sw, model.dh, model.dw) for v in range(N_TENSORS)]
    # inputs: only the rows/columns some MAC touches (a strided or dilated box has holes)
    rows = len({p * model.sh + r * model.dh for p in range(full[P]) for r in range(full[R])})
    cols = len({q * model.sw + s * model.dw for q in range(full[Q]) for s in range(full[S])})
    sizes[INPUTS] = full[N] * full[G] * full[C] * rows * cols
    below = [math.prod(arch.levels[i].fanout.size for i in range(lvl, L)) for lvl in range(L)]
    traffic = [0.0] * L
    energy = model.macs * model.phi * model.mac_energy
    for v in range(N_TENSORS):
        for p, c in model.chains[v]:
            if c == L:
                words = model.macs * model.phi / below[p] * model.word_scale[p]
                if v == OUTPUTS:  # updates only; refetches may be zero
                    energy += words * model.write_e[p]
                else:
                    energy += words * model.read_e[p]
                traffic[p] += words
                continue
            fp = float(model.fmt_const[p][v] or format_factor("coordinate", model.density[v], 2, model.data_bits))
            fc = float(model.fmt_const[c][v] or format_factor("coordinate", model.density[v], 2, model.data_bits))
            if v == OUTPUTS:
                parent, child = sizes[v] * model.word_scale[p], sizes[v] * model.word_scale[c]
                energy += parent * model.write_e[p] + child * model.read_e[c]
            else:
                parent, child = sizes[v] * fp * model.word_scale[p], sizes[v] * fc * model.word_scale[c]
                energy += parent * model.read_e[p] + child * model.write_e[c]
            traffic[p] += parent
            traffic[c] += child
    cycles = model.macs * (model.phi if model.skip else 1.0) / model.num_pes
    for lvl in range(L):
        bw = model.bandwidth[lvl]
        if bw is not None:
            cycles = max(cycles, traffic[lvl] / (arch.instances(lvl) * bw))
    return energy, cycles


@dataclass(frozen=True)
class PartialBound:
    """Lower bound of latency or EDP over every completion of a partial tiling.

    Energy is bounded by the compulsory-traffic bound of the whole layer (`lower_bound`; `mult` is that
    energy for EDP, 1 for latency).  Cycles are at least the compute cycles, MACs / (PEs used); the PEs a
    completion can use are at most, per fanout level, min(fanout, spatial product placed so far x the sizes
    of the unplaced dims that may be unrolled there: `room[k, level]`), and at most the placed spatial
    product times all unplaced sizes (`total_room[k]`), where k dims of the enumeration order are placed.
    So cycles >= max(the layer's cycle bound, MACs / that).  Strong when the placed spatial factors leave
    much of the array idle; not used for energy, where it would never cut.
    """

    c_lb: float
    mult: float
    macs_eff: float
    fan_size: np.ndarray  # (L,)
    room: np.ndarray  # (N_DIMS + 1, L)
    total_room: np.ndarray  # (N_DIMS + 1,)

    def __call__(self, partial: np.ndarray, k: int) -> np.ndarray:
        """The bound for partial tilings (B, D, 2L) with k dims placed (readable form of the kernel's test)."""
        pes = np.ones(len(partial))
        placed = np.ones(len(partial))
        for lvl, size in enumerate(self.fan_size):
            if size > 1:
                sp = partial[:, :, 2 * lvl + 1].prod(axis=1).astype(np.float64)
                placed *= sp
                pes *= np.minimum(size, sp * self.room[k, lvl])
        pes = np.minimum(pes, placed * self.total_room[k])
        return self.mult * np.maximum(self.c_lb, self.macs_eff / pes)


class OptimalMapper:
    """Exhaustive over the pruned map space; `proven_optimal` only when the enumeration completed."""

    name = "optimal"

    def __init__(self, max_tilings: int = 50_000_000, time_limit: float = 60.0, chunk: int = 20_000,
                 warm_budget: int = 20_000) -> None:
        self.max_tilings = max_tilings
        self.time_limit = time_limit
        self.chunk = chunk
        self.warm_budget = warm_budget

    # ------------------------------------------------------------------ tilings
    # The cost model sees only the product X*Y of a level's spatial factors per dim, so a tiling gives each
    # dim one temporal slot (2*level) and one spatial slot (2*level + 1) per level; the X/Y split is any
    # one that fits the fanout (found once per distinct spatial vector).

    @staticmethod
    def _spatial_allowed(arch: Architecture, lvl: int, d: int) -> bool:
        fan = arch.levels[lvl].fanout
        on_x = fan.x > 1 and (not fan.x_dims or DIMS[d] in fan.x_dims)
        on_y = fan.y > 1 and (not fan.y_dims or DIMS[d] in fan.y_dims)
        return on_x or on_y

    @staticmethod
    @functools.lru_cache(maxsize=200_000)
    def _split(fanout: Fanout, sp: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """An X/Y split of per-dim spatial factors `sp` that fits `fanout`, or None."""
        dims = [d for d in range(N_DIMS) if sp[d] > 1]
        ok_x = [not fanout.x_dims or DIMS[d] in fanout.x_dims for d in range(N_DIMS)]
        ok_y = [not fanout.y_dims or DIMS[d] in fanout.y_dims for d in range(N_DIMS)]
        x = [1] * N_DIMS

        def place(i: int, px: int, py: int) -> bool:
            if i == len(dims):
                return True
            d = dims[i]
            for xd in divisors(sp[d]):
                yd = sp[d] // xd
                if (xd > 1 and not ok_x[d]) or (yd > 1 and not ok_y[d]):
                    continue
                if px * xd <= fanout.x and py * yd <= fanout.y:
                    x[d] = xd
                    if place(i + 1, px * xd, py * yd):
                        return True
            return False

        if not place(0, 1, 1):
            return None
        return tuple(x), tuple(sp[d] // x[d] for d in range(N_DIMS))

    def _splits(self, arch: Architecture, lvl: int, sp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For spatial vectors sp (B, D) of level lvl: fits mask, X part, Y part."""
        fan = arch.levels[lvl].fanout
        code = np.zeros(len(sp), dtype=np.int64)  # exact mixed-radix code: factors are <= the fanout size
        for d in range(N_DIMS):
            code = code * (fan.size + 1) + sp[:, d]
        if (fan.size + 1) ** N_DIMS >= 2 ** 63:
            code = np.unique(sp, axis=0, return_inverse=True)[1].reshape(-1)
        _, first, inv = np.unique(code, return_index=True, return_inverse=True)
        uniq = sp[first]
        res = [self._split(fan, tuple(int(v) for v in row)) for row in uniq]
        ok = np.array([r is not None for r in res])
        xs = np.array([r[0] if r else (1,) * N_DIMS for r in res], dtype=np.int64)
        ys = np.array([r[1] if r else (1,) * N_DIMS for r in res], dtype=np.int64)
        inv = inv.reshape(-1)
        return ok[inv], xs[inv], ys[inv]

    def _dim_options(self, space: MapSpace) -> list[np.ndarray]:
        """Per dim: every factorisation over its allowed slots, as (n_options, 2L) int arrays."""
        L = space.L
        out = []
        for d, n in enumerate(space.dims):
            slots = [2 * lvl for lvl in range(L)] + [2 * lvl + 1 for lvl in range(L)
                                                     if self._spatial_allowed(space.arch, lvl, d)]
            slots.sort()
            facs = ordered_factorizations(n, len(slots))
            arr = np.ones((len(facs), 2 * L), dtype=np.int64)
            arr[:, slots] = np.array(facs, dtype=np.int64)
            out.append(arr)
        return out

    def dim_order(self, space: MapSpace) -> list[int]:
        """The order dims are placed in during enumeration: small option sets first."""
        options = self._dim_options(space)
        return sorted(range(N_DIMS), key=lambda d: len(options[d]))

    def partial_bound(self, space: MapSpace, model: CostModel, objective: str) -> "PartialBound | None":
        """Lower bound of the objective over every completion of a partial tiling (None for energy)."""
        if objective == "energy":
            return None
        arch = space.arch
        L = space.L
        e_lb, c_lb = lower_bound(model)
        order = self.dim_order(space)
        dims = space.dims
        fan_size = np.array([float(level.fanout.size) for level in arch.levels])
        room = np.ones((N_DIMS + 1, L))
        total_room = np.ones(N_DIMS + 1)
        for k in range(N_DIMS + 1):
            unplaced = order[k:]
            total_room[k] = float(math.prod(dims[d] for d in unplaced))
            for lvl in range(L):
                if fan_size[lvl] > 1:
                    room[k, lvl] = float(math.prod(dims[d] for d in unplaced
                                                   if self._spatial_allowed(arch, lvl, d)))
        return PartialBound(c_lb=c_lb, mult=1.0 if objective == "latency" else e_lb,
                            macs_eff=model.macs * (model.phi if model.skip else 1.0), fan_size=fan_size,
                            room=room, total_room=total_room)

    @staticmethod
    def _fits_numpy(model: CostModel, fac: np.ndarray) -> np.ndarray:
        """Readable reference of tiling_kernel.expand_fitting's test, for tilings fac (B, D, 2L)."""
        arch = model.arch
        L = model.L
        f = np.ascontiguousarray(fac.transpose(2, 1, 0), dtype=np.float64)  # (2L, D, B)
        ok = np.ones(len(fac), dtype=bool)
        for lvl in range(L):
            if arch.levels[lvl].fanout.size > 1:
                ok &= f[2 * lvl + 1].prod(axis=0) <= arch.levels[lvl].fanout.size
        E = np.ones((L + 1, N_DIMS, len(fac)))
        for lvl in range(L - 1, -1, -1):
            E[lvl] = E[lvl + 1] * f[2 * lvl] * f[2 * lvl + 1]
        _, over = model.tile_check(E)
        return ok & ~over

    def _symmetric(self, space: MapSpace) -> bool:
        """Swapping (P, R) with (Q, S) maps the problem onto itself (same sizes, strides, allowed axes)."""
        lay = space.layer
        if (lay.P, lay.R) != (lay.Q, lay.S) or lay.stride[0] != lay.stride[1] or lay.dilation[0] != lay.dilation[1]:
            return False
        for level in space.arch.levels:
            for dims in (level.fanout.x_dims, level.fanout.y_dims):
                if dims and (("P" in dims) != ("Q" in dims) or ("R" in dims) != ("S" in dims)):
                    return False
        return True

    def tilings(self, space: MapSpace, model: CostModel, bound: PartialBound | None = None,
                threshold: Callable[[], float] = lambda: math.inf, pruned: np.ndarray | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Chunks of fitting tilings as (temporal, spatial_x, spatial_y) arrays of shape (B, L, D).

        With a P/Q-symmetric problem only one tiling of each mirror pair is produced.  With a `bound`,
        partial tilings whose bound exceeds `threshold()` (read before each chunk, so it follows the
        incumbent) are not expanded; `pruned[0]` counts them.
        """
        options = self._dim_options(space)
        dim_order = self.dim_order(space)
        L = space.L
        arch = space.arch
        fan_levels = [lvl for lvl in range(L) if arch.levels[lvl].fanout.size > 1]
        symmetric = self._symmetric(space)

        fan_size = np.array([float(level.fanout.size) for level in arch.levels])

        def finish(fac: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
            if symmetric:  # keep the tiling whose (P, R) rows are lexicographically <= its mirror's (Q, S)
                a = np.concatenate([fac[:, P], fac[:, R]], axis=1)
                b = np.concatenate([fac[:, Q], fac[:, S]], axis=1)
                diff = a != b
                first = np.argmax(diff, axis=1)
                rows = np.arange(len(fac))
                fac = fac[~diff.any(axis=1) | (a[rows, first] < b[rows, first])]
            B = len(fac)
            if B == 0:
                return None
            temporal = np.ascontiguousarray(fac[:, :, 0::2].transpose(0, 2, 1))
            sx = np.ones((B, L, N_DIMS), dtype=np.int64)
            sy = np.ones((B, L, N_DIMS), dtype=np.int64)
            ok = np.ones(B, dtype=bool)
            for lvl in fan_levels:
                fit, xs, ys = self._splits(arch, lvl, fac[:, :, 2 * lvl + 1])
                ok &= fit
                sx[:, lvl], sy[:, lvl] = xs, ys
            if not ok.any():
                return None
            return temporal[ok], sx[ok], sy[ok]

        def expand(partial: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            if k == N_DIMS:
                done = finish(partial)
                if done is not None:
                    yield done
                return
            d = dim_order[k]
            opts = options[d]
            step = max(1, self.chunk // len(opts))
            for i in range(0, len(partial), step):
                new = expand_fitting(model, fan_size, partial[i:i + step], opts, d, bound, k + 1, threshold(), pruned)
                if len(new):
                    yield from expand(new, k + 1)

        yield from expand(np.ones((1, N_DIMS, 2 * L), dtype=np.int64), 0)

    # ------------------------------------------------------------------ orders
    def _best_orders(self, model: CostModel, temporal: np.ndarray, sx: np.ndarray, sy: np.ndarray,
                     objective: str) -> tuple[np.ndarray, np.ndarray, int]:
        """For tilings (B, L, D) arrays: the best order per level (B, L, D), its objective, evaluations.

        Tilings are grouped by which dims have factor > 1 at each level (that fixes the order classes);
        all groups' sweeps are scored in one batched call.
        """
        B = len(temporal)
        L = model.L
        masks = ((temporal > 1) * (1 << np.arange(N_DIMS))).sum(axis=2)  # (B, L)
        keys, inverse = np.unique(masks, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = []
        parts_idx, parts_order = [], []
        offset = 0
        for gi, key in enumerate(keys):
            idx = np.flatnonzero(inverse == gi)
            active = deciding_levels(model, [int(m) for m in key])
            classes = [np.array(order_classes(int(m), a), dtype=np.int64) for m, a in zip(key, active)]
            variants = [(-1, 0)] + [(lvl, k) for lvl in range(L) for k in range(1, len(classes[lvl]))]
            orders = np.empty((len(variants), len(idx), L, N_DIMS), dtype=np.int64)
            orders[:] = np.stack([classes[lvl][0] for lvl in range(L)])
            for vi, (lvl, k) in enumerate(variants):
                if lvl >= 0:
                    orders[vi, :, lvl, :] = classes[lvl][k]
            parts_idx.append(np.tile(idx, len(variants)))
            parts_order.append(orders.reshape(-1, L, N_DIMS))
            groups.append((idx, classes, variants, offset))
            offset += len(variants) * len(idx)
        sel = np.concatenate(parts_idx)
        cost = model.evaluate_batch(MappingBatch(temporal[sel], sx[sel], sy[sel], np.concatenate(parts_order)))
        best_order = np.zeros((B, L, N_DIMS), dtype=np.int64)
        best_obj = np.full(B, np.inf)
        for idx, classes, variants, off in groups:
            n, V = len(idx), len(variants)
            energy = cost.energy[off:off + V * n].reshape(V, n)
            lcyc = cost.level_cycles[:, off:off + V * n].reshape(L, V, n)
            ccyc = cost.compute_cycles[off:off + n]
            # per level: candidate deltas relative to the base (class 0 everywhere)
            e_tot = energy[0]
            lc_tot = lcyc[:, 0]  # (L, n)
            shape_all = [len(c) for c in classes]
            e_sum = np.broadcast_to(e_tot, tuple(shape_all) + (n,)).copy()
            lc_sum = np.broadcast_to(lc_tot.reshape((L,) + (1,) * L + (n,)), (L,) + tuple(shape_all) + (n,)).copy()
            vi = 1
            for lvl in range(L):
                k = len(classes[lvl])
                if k == 1:
                    continue
                dE = np.zeros((k, n))
                dC = np.zeros((L, k, n))
                dE[1:] = energy[vi:vi + k - 1] - e_tot
                dC[:, 1:] = lcyc[:, vi:vi + k - 1] - lc_tot[:, None]
                vi += k - 1
                shp = [1] * L
                shp[lvl] = k
                e_sum += dE.reshape(tuple(shp) + (n,))
                lc_sum += dC.reshape((L,) + tuple(shp) + (n,))
            cyc = np.maximum(ccyc, lc_sum.max(axis=0))
            objs = objective_value(e_sum, cyc, objective).reshape(-1, n)
            pick = np.argmin(objs, axis=0)
            best_obj[idx] = objs[pick, np.arange(n)]
            combo = np.unravel_index(pick, shape_all)
            for lvl in range(L):
                best_order[idx, lvl] = classes[lvl][combo[lvl]]
        return best_order, best_obj, len(sel)

    # ------------------------------------------------------------------ search
    def _warm_start(self, layer: Layer, arch: Architecture, objective: str, seed: int,
                    model: CostModel) -> tuple[float, Mapping | None, int]:
        """A good incumbent from the genetic mapper, so the bound prunes from the first chunk on."""
        if self.warm_budget <= 0 or MapSpace(layer, arch, model).fanout_valid_tiling_count < 200_000:
            return math.inf, None, 0  # small spaces: the exhaustive pass is quicker than a warm start
        from rlmap.search.genetic import GeneticMapper

        res = GeneticMapper().search(layer, arch, objective, budget=self.warm_budget, seed=seed, model=model)
        if res.mapping is None:
            return math.inf, None, res.evaluations
        return float(res.cost.objective(objective)), res.mapping, res.evaluations

    def search(self, layer: Layer, arch: Architecture, objective: str = "edp", budget: int | None = None,
               seed: int = 0, model: CostModel | None = None) -> SearchResult:
        """`budget` is ignored: the search runs until it has proved the optimum or hits its limits.

        Branch and bound: every fitting tiling is bounded by one order-relaxed evaluation
        (CostModel.evaluate_batch(relax_orders=True), a lower bound over all its loop orders); only
        tilings whose bound beats the incumbent get their orders optimised exactly.
        """
        t0 = time.perf_counter()
        model = model or CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        best_obj, best_map, evaluations = self._warm_start(layer, arch, objective, seed, model)
        warm = best_obj
        pruned = np.zeros(1, dtype=np.int64)

        curve: list[float] = [best_obj] if best_map is not None else []
        curve_evals: list[int] = [evaluations] if best_map is not None else []
        n_tilings = swept = 0
        complete, why = True, ""
        # a partial tiling is cut only when its bound is above the incumbent: a completion could still tie
        for temporal, sx, sy in self.tilings(space, model, self.partial_bound(space, model, objective),
                                             lambda: best_obj * (1 + 1e-9), pruned):
            n_tilings += len(temporal)
            if n_tilings > self.max_tilings:
                complete, why = False, f"more than {self.max_tilings:,} fitting tilings"
                break
            if time.perf_counter() - t0 > self.time_limit:
                complete, why = False, f"time limit {self.time_limit:g} s reached"
                break
            bound = model.evaluate_batch(MappingBatch(temporal, sx, sy, np.broadcast_to(
                np.arange(N_DIMS), temporal.shape).copy()), relax_orders=True).objective(objective)
            evaluations += len(temporal)
            keep = np.flatnonzero(bound < best_obj)
            if len(keep):
                swept += len(keep)
                orders, obj, evals = self._best_orders(model, temporal[keep], sx[keep], sy[keep], objective)
                evaluations += evals
                i = int(np.argmin(obj))
                if obj[i] < best_obj:
                    k = keep[i]
                    best_obj = float(obj[i])
                    best_map = MappingBatch(temporal[k:k + 1], sx[k:k + 1], sy[k:k + 1], orders[i:i + 1])[0]
            curve.append(best_obj)
            curve_evals.append(evaluations)
        cost = model.evaluate(best_map) if best_map is not None else None
        e_lb, c_lb = lower_bound(model)
        lb = objective_value(e_lb, c_lb, objective)
        notes = {"fitting_tilings_seen": n_tilings, "tilings_swept": swept, "partial_tilings_pruned": int(pruned[0]),
                 "complete": complete, "stopped": why,
                 "warm_start": warm, "lower_bound": lb, "gap_to_lower_bound": best_obj / lb if lb > 0 else math.inf,
                 "curve_evaluations": curve_evals, **space.sizes()}
        # one curve point per chunk of tilings; notes["curve_evaluations"] gives the evaluations behind each
        return SearchResult(
            mapper=self.name, objective=objective, mapping=best_map, cost=cost, evaluations=evaluations,
            curve=np.array(curve), proven_optimal=complete and best_map is not None,
            seconds=time.perf_counter() - t0, notes=notes,
        )
