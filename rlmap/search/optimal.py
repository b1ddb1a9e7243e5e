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
3. **Tilings** are enumerated dimension by dimension (N, G, R, S, K, C, P, Q), dropping partial tilings
   whose spatial factors exceed a fanout (or an axis, for dims only one axis takes) or whose tiles (a
   lower bound: unassigned factors sit in DRAM) exceed a capacity.
4. **Branch and bound.**  A partial tiling is cut when `PartialBound` -- a lower bound of the objective
   over all its completions and loop orders (traffic, reuse, loop-order conflicts, compute) -- is above
   the incumbent; survivors are expanded best bound first, from the all-in-DRAM mapping as first
   incumbent.  Complete tilings are then bounded by the order-relaxed evaluation before step 2.

`time_limit` (wall clock for the whole call) is checked before every compiled expansion step and every
`sweep_chunk` order sweeps.  If it runs out, or the fitting tilings exceed `max_tilings`, the search
returns the best mapping it evaluated, says it is *not* proven optimal, and gives a lower bound on the
optimum: the least bound of the partial tilings it had not explored.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rlmap.model.costmodel import CostModel, footprint, format_factor, objective_value
from rlmap.search.base import SearchResult
from rlmap.search.mapspace import MapSpace
from rlmap.search.tiling_kernel import (
    OBJECTIVE_CODES,
    BoundStatic,
    best_combinations,
    bounds,
    expand_fitting,
    order_variants,
)
from rlmap.spec.arch import Architecture, Fanout
from rlmap.spec.factors import divisors, ordered_factorizations
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import DIMS, INPUTS, N_DIMS, N_TENSORS, OUTPUTS, RELEVANCE_MATRIX, C, G, K, N, P, Q, R, S

_HALO_DIMS = frozenset({P, Q, R, S})

_DIM_ORDER = (N, G, R, S, K, C, P, Q)

DEFAULT_TIME_LIMIT = 60.0
"""Seconds of wall clock an `OptimalMapper()` gives one layer unless told otherwise (`rlmap search` too)."""


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
        sig = (tuple(t if active >> v & 1 else frozenset() for v, t in enumerate(trailing)), halo if active & 1 else -1)
        sigs.setdefault(sig, perm)

    def dominates(a: tuple, b: tuple) -> bool:
        return a[1] == b[1] and all(x >= y for x, y in zip(a[0], b[0]))

    keep = [s for s in sigs if not any(o != s and dominates(o, s) for o in sigs)]
    return tuple(tuple(rest) + sigs[s] for s in keep)


class ClassTable:
    """`order_classes` of every (level mask, deciding tensors) code met so far, flat for the compiled code:
    code = mask * 8 + active; classes of a code are orders[start[code]:start[code] + count[code]]."""

    def __init__(self) -> None:
        self.start = np.zeros(1 << (N_DIMS + N_TENSORS), dtype=np.int64)
        self.count = np.zeros(1 << (N_DIMS + N_TENSORS), dtype=np.int64)
        self.orders = np.zeros((0, N_DIMS), dtype=np.int64)

    def ensure(self, codes: np.ndarray) -> ClassTable:
        missing = [int(c) for c in codes if self.count[c] == 0]
        if missing:
            new = [self.orders]
            at = len(self.orders)
            for code in missing:
                classes = np.array(order_classes(code >> N_TENSORS, code & ((1 << N_TENSORS) - 1)), dtype=np.int64)
                self.start[code], self.count[code] = at, len(classes)
                at += len(classes)
                new.append(classes)
            self.orders = np.concatenate(new)
        return self


_CLASS_TABLE = ClassTable()


def compulsory_words(model: CostModel) -> list[float]:
    """Dense words of each tensor that every mapping moves at least once; inputs count only the elements
    some MAC touches (a strided or dilated window box has holes)."""
    full = model.dims
    sizes = [float(footprint(v, full, model.sh, model.sw, model.dh, model.dw)) for v in range(N_TENSORS)]
    rows = len({p * model.sh + r * model.dh for p in range(full[P]) for r in range(full[R])})
    cols = len({q * model.sw + s * model.dw for q in range(full[Q]) for s in range(full[S])})
    sizes[INPUTS] = float(full[N] * full[G] * full[C] * rows * cols)
    return sizes


def min_format_factors(model: CostModel) -> np.ndarray:
    """(L, tensors): the fewest stored words per dense word any tile of the tensor can have at the level."""
    return np.array(
        [
            [
                float(model.fmt_const[lvl][v] or format_factor("coordinate", model.density[v], 2, model.data_bits))
                for v in range(N_TENSORS)
            ]
            for lvl in range(model.L)
        ]
    )


def lower_bound(model: CostModel) -> tuple[float, float]:
    """(energy, cycles) no mapping can beat: compulsory traffic plus the MACs, and full-array compute.

    Every element of a tensor crosses each (parent, child) pair of levels keeping it at least once;
    a MAC-facing read serves at most all the MACs below its level; the array never beats one MAC per PE
    per cycle, and no level moves data faster than all its instances' bandwidth.
    """
    L = model.L
    arch = model.arch
    sizes = compulsory_words(model)
    fmin = min_format_factors(model)
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
            if v == OUTPUTS:
                parent, child = sizes[v] * model.word_scale[p], sizes[v] * model.word_scale[c]
                energy += parent * model.write_e[p] + child * model.read_e[c]
            else:
                parent, child = sizes[v] * fmin[p, v] * model.word_scale[p], sizes[v] * fmin[c, v] * model.word_scale[c]
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
    """Lower bound of the objective over every completion of a partial tiling (any factors of the dims not
    yet placed, any loop orders): the compiled `tiling_kernel._row_bound`, derived in its module docstring
    and in docs/costmodel.md.  `static` holds its arrays; `model` is the layer's cost model."""

    model: CostModel
    static: BoundStatic

    def __call__(self, partial: np.ndarray, k: int) -> np.ndarray:
        """The bound of partial tilings (B, D, 2L) whose first k enumerated dims are placed."""
        return bounds(self.model, self.static, partial, k)


_KERNELS_LOADED = False


def load_kernels() -> None:
    """Run the compiled kernels once per process on a two-dim toy problem, before any clock starts.

    Numba compiles a kernel at its first call (tens of seconds after an install or a change, then cached
    on disk) and loads it from the cache at its first call in a process (a fraction of a second); neither
    can be interrupted, so neither is charged to a search's time limit.
    """
    global _KERNELS_LOADED
    if _KERNELS_LOADED:
        return
    arch = Architecture.model_validate(
        {
            "name": "toy",
            "levels": [
                {"name": "DRAM", "read_energy": 100, "write_energy": 100, "bandwidth": 1},
                {"name": "RF", "capacity": 8, "read_energy": 1, "write_energy": 1, "fanout": {"x": 2}},
            ],
            "compute": {"mac_energy": 1.0},
        }
    )
    _KERNELS_LOADED = True
    for objective in OBJECTIVE_CODES:
        OptimalMapper(time_limit=None).search(Layer(name="toy", K=2, C=2, P=2), arch, objective)


class _Stopped(Exception):
    """Raised through the enumeration when a limit is hit; collects the least bound of what is unexplored."""

    def __init__(self, why: str, frontier: float = math.inf) -> None:
        super().__init__(why)
        self.why = why
        self.frontier = frontier


class OptimalMapper:
    """Exhaustive over the pruned map space; `proven_optimal` only when the enumeration completed."""

    name = "optimal"

    def __init__(
        self,
        max_tilings: int = 50_000_000,
        time_limit: float | None = DEFAULT_TIME_LIMIT,
        chunk: int = 20_000,
        sweep_chunk: int = 2_000,
        placement: bool = False,
        bypass: bool = True,
        max_placements: int = 20_000,
    ) -> None:
        """`placement`: search per-tensor tile placements too (off by default: with them most real layers are
        not proven within seconds, see docs/optimal_mapper.txt); `bypass`: search the architecture's bypass
        choices (`may_bypass`; off: every level keeps all it may keep); `max_placements` caps the (order,
        placement) combinations scored for one tiling (beyond it the result is not proven)."""
        self.placement = placement
        self.bypass = bypass
        self.placed_chunk = 64
        self.max_placements = max_placements
        self.max_tilings = max_tilings
        self.time_limit = time_limit
        self.chunk = chunk
        self.sweep_chunk = sweep_chunk

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
        if (fan.size + 1) ** N_DIMS >= 2**63:
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
            slots = [2 * lvl for lvl in range(L)] + [
                2 * lvl + 1 for lvl in range(L) if self._spatial_allowed(space.arch, lvl, d)
            ]
            slots.sort()
            facs = ordered_factorizations(n, len(slots))
            arr = np.ones((len(facs), 2 * L), dtype=np.int64)
            arr[:, slots] = np.array(facs, dtype=np.int64)
            out.append(arr)
        return out

    def dim_order(self, space: MapSpace) -> list[int]:
        """The order dims are placed in during enumeration: N, G, the filter window R, S, the channels K, C,
        then the output plane P, Q.

        Once the channels are placed the bound knows most of every tensor's reuse (K is the only dim the
        inputs ignore, C one the outputs ignore), so it cuts before the plane's many options multiply the
        partial tilings.  Measured against "fewest options first" (the order used before) on ResNet-50 and
        MobileNetV2 layers: up to 10x less CPU on Simba and the TPU-like array, the same on Eyeriss.
        """
        return list(_DIM_ORDER)

    def partial_bound(self, space: MapSpace, model: CostModel, objective: str) -> PartialBound:
        """Lower bound of the objective over every completion of a partial tiling (see `PartialBound`)."""
        arch = space.arch
        L = space.L
        order = self.dim_order(space)
        placed = np.zeros((N_DIMS + 1, N_DIMS), dtype=np.bool_)
        for k in range(N_DIMS + 1):
            placed[k, order[:k]] = True
        allowed = np.array(
            [
                [arch.levels[lvl].fanout.size > 1 and self._spatial_allowed(arch, lvl, d) for d in range(N_DIMS)]
                for lvl in range(L)
            ],
            dtype=np.bool_,
        )
        ks = model.kernel_static
        e_lb, c_lb = lower_bound(model)
        macs_eff = model.macs * (model.phi if model.skip else 1.0)
        static = BoundStatic(
            objective=OBJECTIVE_CODES[objective],
            dims=np.array(space.dims, dtype=np.float64),
            placed=placed,
            allowed=allowed,
            fan_size=np.array([float(level.fanout.size) for level in arch.levels]),
            chain_p=ks.chain_p,
            chain_c=ks.chain_c,
            n_pairs=ks.n_pairs,
            word_scale=ks.word_scale,
            read_e=ks.read_e,
            write_e=ks.write_e,
            bandwidth=ks.bandwidth,
            fmt_min=min_format_factors(model),
            size=np.array(compulsory_words(model)),
            scalars=np.array([float(model.macs), model.phi, model.mac_energy, macs_eff, e_lb, c_lb]),
        )
        return PartialBound(model, static)

    @staticmethod
    def _fits_numpy(model: CostModel, fac: np.ndarray, min_tile: np.ndarray | None = None) -> np.ndarray:
        """Readable reference of tiling_kernel.expand_fitting's test, for tilings fac (B, D, 2L); at levels with
        `min_tile` the capacity test takes the smallest tile a placement can give (the level's loops above)."""
        arch = model.arch
        L = model.L
        f = np.ascontiguousarray(fac.transpose(2, 1, 0), dtype=np.float64)  # (2L, D, B)
        ok = np.ones(len(fac), dtype=bool)
        for lvl in range(L):
            fan = arch.levels[lvl].fanout
            if fan.size > 1:
                ok &= f[2 * lvl + 1].prod(axis=0) <= fan.size
                # the dims only one axis may take must fit that axis (necessary for an X/Y split)
                on_x = np.array([fan.x > 1 and (not fan.x_dims or DIMS[d] in fan.x_dims) for d in range(N_DIMS)])
                on_y = np.array([fan.y > 1 and (not fan.y_dims or DIMS[d] in fan.y_dims) for d in range(N_DIMS)])
                ok &= f[2 * lvl + 1][on_x & ~on_y].prod(axis=0) <= fan.x
                ok &= f[2 * lvl + 1][on_y & ~on_x].prod(axis=0) <= fan.y
        E = np.ones((L + 1, N_DIMS, len(fac)))
        for lvl in range(L - 1, -1, -1):
            E[lvl] = E[lvl + 1] * f[2 * lvl] * f[2 * lvl + 1]
        if min_tile is not None:
            E = E.copy()
            for lvl_t in np.flatnonzero(min_tile):
                E[lvl_t] = E[lvl_t + 1] * f[2 * lvl_t + 1]
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

    def tilings(
        self,
        space: MapSpace,
        model: CostModel,
        bound: PartialBound | None = None,
        threshold: Callable[[], float] = lambda: math.inf,
        pruned: np.ndarray | None = None,
        deadline: float = math.inf,
        min_tile: np.ndarray | None = None,
    ) -> Generator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None, None]:
        """Chunks of fitting tilings as (temporal, spatial_x, spatial_y) arrays of shape (B, L, D), and their
        bounds (B,) (zeros without a `bound`).

        With a P/Q-symmetric problem only one tiling of each mirror pair is produced.  With a `bound`,
        partial tilings whose bound exceeds `threshold()` (read before each step, so it follows the
        incumbent) are not expanded (`pruned[0]` counts them), and each step's survivors are expanded
        best bound first, so good complete tilings come early.  Past `deadline` (perf_counter seconds),
        or when the consumer throws `_Stopped` in, `_Stopped` propagates out carrying the least bound of
        every partial tiling not yet expanded: with the incumbent, a lower bound on the optimum.
        """
        options = self._dim_options(space)
        dim_order = self.dim_order(space)
        L = space.L
        arch = space.arch
        fan_levels = [lvl for lvl in range(L) if arch.levels[lvl].fanout.size > 1]
        symmetric = self._symmetric(space)
        static = bound.static if bound is not None else None

        fan_size = np.array([float(level.fanout.size) for level in arch.levels])

        def finish(fac: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
            if symmetric:  # keep the tiling whose (P, R) rows are lexicographically <= its mirror's (Q, S)
                a = np.concatenate([fac[:, P], fac[:, R]], axis=1)
                b = np.concatenate([fac[:, Q], fac[:, S]], axis=1)
                diff = a != b
                first = np.argmax(diff, axis=1)
                rows = np.arange(len(fac))
                keep = ~diff.any(axis=1) | (a[rows, first] < b[rows, first])
                fac, vals = fac[keep], vals[keep]
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
            return temporal[ok], sx[ok], sy[ok], vals[ok]

        def expand(
            partial: np.ndarray, vals: np.ndarray, k: int
        ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
            if k == N_DIMS:
                done = finish(partial, vals)
                if done is not None:
                    yield done
                return
            d = dim_order[k]
            opts = options[d]
            step = max(1, self.chunk // len(opts))
            i = 0
            try:
                while i < len(partial):
                    if time.perf_counter() > deadline:
                        raise _Stopped("time")
                    new, nv = expand_fitting(
                        model, fan_size, partial[i : i + step], opts, d, static, k + 1, threshold(), pruned, min_tile
                    )
                    i += step
                    if len(new):
                        if static is not None:
                            best_first = np.argsort(nv, kind="stable")
                            new, nv = new[best_first], nv[best_first]
                        yield from expand(new, nv, k + 1)
            except _Stopped as stop:
                if i < len(partial):  # rows from i on are unexplored (earlier ones: done, or deeper frames)
                    stop.frontier = min(stop.frontier, float(vals[i:].min()) if static is not None else -math.inf)
                raise

        root = np.ones((1, N_DIMS, 2 * L), dtype=np.int64)
        yield from expand(root, bound(root, 0) if bound is not None else np.zeros(1), 0)

    # ------------------------------------------------------------------ orders
    def _best_orders(
        self, model: CostModel, temporal: np.ndarray, sx: np.ndarray, sy: np.ndarray, objective: str
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """For tilings (B, L, D) arrays: the best order per level (B, L, D), its objective, evaluations.

        Per tiling and level, the order classes follow from which dims loop there and which tensors that
        level decides (`order_classes`); one batched evaluation scores class 0 everywhere plus each other
        class of one level at a time, and the compiled `best_combinations` finds the best combination.
        """
        masks = ((temporal > 1) * (1 << np.arange(N_DIMS))).sum(axis=2)  # (B, L)
        active = np.zeros_like(masks)
        for v in range(N_TENSORS):
            rel_bits = sum(1 << d for d in range(N_DIMS) if RELEVANCE_MATRIX[v][d])
            for _p, c in model.chains[v]:
                if c == model.L:
                    continue
                found = np.zeros(len(masks), dtype=bool)
                for lvl in range(c - 1, -1, -1):
                    hit = ~found & ((masks[:, lvl] & rel_bits) != 0)
                    active[hit, lvl] |= 1 << v
                    found |= hit
        codes = masks * 8 + active
        table = _CLASS_TABLE.ensure(np.unique(codes))
        offsets, var_tiling, var_order = order_variants(codes, table.start, table.count, table.orders)
        cost = model.evaluate_batch(MappingBatch(temporal[var_tiling], sx[var_tiling], sy[var_tiling], var_order))
        pick, best_obj = best_combinations(
            offsets, codes, table.count, cost.energy, cost.level_cycles, cost.compute_cycles, OBJECTIVE_CODES[objective]
        )
        best_order = table.orders[table.start[codes] + pick]
        return best_order, best_obj, len(var_tiling)

    # ------------------------------------------------------------------ search
    @staticmethod
    def _trivial(model: CostModel) -> Mapping:
        """Every factor at the outermost level: valid whenever one element of each tensor fits every level."""
        ones = ((1,) * N_DIMS,) * model.L
        return Mapping(
            temporal=(tuple(model.dims),) + ones[1:],
            spatial_x=ones,
            spatial_y=ones,
            order=(tuple(range(N_DIMS)),) * model.L,
        )

    # ------------------------------------------------------------------ bypass and placement
    @staticmethod
    def bypass_variants(arch: Architecture) -> list[tuple[Architecture, tuple[tuple[int, ...], ...] | None]]:
        """Every choice of the tensors a mapping bypasses (`may_bypass`), as (architecture that keeps exactly
        what the choice keeps, bypass matrix or None); the choice that bypasses nothing first."""
        free = [(lvl, t) for lvl, level in enumerate(arch.levels) for t in level.may_bypass]
        out = []
        for bits in range(1 << len(free)):
            gone = {free[i] for i in range(len(free)) if bits >> i & 1}
            levels = [
                level.model_copy(
                    update={"keeps": tuple(t for t in level.keeps if (lvl, t) not in gone), "may_bypass": ()}
                )
                for lvl, level in enumerate(arch.levels)
            ]
            if any(not any(t in lv.keeps for lv in levels) for t in ("inputs", "weights", "outputs")):
                continue
            if any(isinstance(lv.capacity, dict) for lv in levels):  # a partition of a bypassed tensor goes too
                levels = [
                    lv.model_copy(update={"capacity": {t: w for t, w in lv.capacity.items() if t in lv.keeps} or None})
                    if isinstance(lv.capacity, dict)
                    else lv
                    for lv in levels
                ]
            matrix = tuple(
                tuple(int((lvl, t) in gone) for t in ("inputs", "weights", "outputs")) for lvl in range(arch.n_levels)
            )
            out.append((arch.model_copy(update={"levels": levels}), matrix if gone else None))
        return out

    @staticmethod
    def placeable(model: CostModel) -> list[int]:
        """Tensors whose tiles the search places below loops of their level.

        Sound only where moving a loop above a tile never lowers the traffic (then a level whose whole tiles
        fit keeps them whole, and placement-0 traffic bounds every placement): always for weights and
        outputs; for inputs when the window covers the stride on both axes without dilation (else a smaller
        window skips the rows between strided windows).  Tile-dependent storage formats (coordinate) are
        left whole too.
        """
        out = []
        for v in range(N_TENSORS):
            if any(model.fmt_const[lvl][v] is None for lvl in range(model.L)):
                continue
            if v == INPUTS:
                lay = model.layer
                if (model.dh, model.dw) != (1, 1) or lay.R < model.sh or lay.S < model.sw:
                    continue
            out.append(v)
        return out

    def _min_place(self, model: CostModel) -> np.ndarray | None:
        """(L, tensors): N_DIMS where a tile may be placed (the smallest tile: every loop of its level above),
        0 elsewhere; None when no level with a capacity holds a placeable tensor."""
        if not self.placement:
            return None
        safe = self.placeable(model)
        out = np.zeros((model.L, N_TENSORS), dtype=np.int64)
        for lvl in range(1, model.L):
            if model.capacity[lvl] is None:
                continue
            for v in safe:
                if model.keeps[lvl][v]:
                    out[lvl, v] = N_DIMS
        return out if out.any() else None

    def _level_choices(
        self, model: CostModel, lvl: int, T: tuple[int, ...], inner: tuple[int, ...], min_place: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(order, placement) candidates of one level, as arrays (n, D) and (n, tensors), from the level's
        temporal factors T and the extents `inner` below its loops (its spatial loops and the levels inside).

        If the whole tiles fit: placement 0 (moving a loop above a placeable tile never lowers a count) and
        the non-dominated order classes (`order_classes`).  Else every order of the level's loops and, per
        placeable tensor, every position right below a loop that indexes it (below a loop that does not, the
        tile and every count are the same: equivalent), kept when the level's tiles fit."""
        active = [d for d in range(N_DIMS) if T[d] > 1]
        rest = tuple(d for d in range(N_DIMS) if T[d] <= 1)
        A = len(active)
        keeps = model.keeps[lvl]
        cap = model.capacity[lvl]

        def words(ext: np.ndarray) -> np.ndarray:
            """Stored words (tensors, n) of tiles with extents ext (D, n)."""
            out = np.zeros((N_TENSORS, ext.shape[1]))
            for v in range(N_TENSORS):
                if keeps[v]:
                    tile = footprint(v, ext, model.sh, model.sw, model.dh, model.dw).astype(float)
                    f = model.fmt_const[lvl][v]
                    if f is None:
                        f = format_factor(model.formats[lvl][v], model.density[v], tile, model.data_bits)
                    out[v] = tile * model.word_scale[lvl] * f
            return out

        whole = np.array([e * f for e, f in zip(inner, T)], dtype=np.int64)[:, None]
        mask = sum(1 << d for d in active)
        if lvl == 0 or cap is None or not model._capacity_reason(lvl, cap, list(words(whole)[:, 0]), keeps):
            classes = order_classes(mask, 0b111)
            return np.array(classes, dtype=np.int64), np.zeros((len(classes), N_TENSORS), dtype=np.int64)
        n_cuts = [1 + sum(RELEVANCE_MATRIX[v][d] for d in active) if min_place[lvl, v] else 1 for v in range(N_TENSORS)]
        if math.factorial(A) * math.prod(n_cuts) > self.max_placements:
            return None  # too many to enumerate: the tiling is left unresolved (not proven)
        perms = np.array(list(itertools.permutations(active)), dtype=np.int64).reshape(-1, A)
        n = len(perms)
        # ext[k]: extents of a tile below the first k loops of each order (D, n)
        ext = np.repeat(whole, n, axis=1)
        per_k = [words(ext)]
        for k in range(A):
            ext = ext.copy()
            ext[perms[:, k], np.arange(n)] //= np.array(T)[perms[:, k]]
            per_k.append(words(ext))
        W = np.stack(per_k, axis=2)  # (tensors, n, A + 1)
        rel = np.array(RELEVANCE_MATRIX, dtype=bool)
        ok_cut = np.ones((N_TENSORS, n, A + 1), dtype=bool)
        for v in range(N_TENSORS):
            if min_place[lvl, v]:
                ok_cut[v, :, 1:] = rel[v][perms]  # right below a loop that indexes v
            else:
                ok_cut[v, :, 1:] = False
        m0, m1, m2 = np.meshgrid(np.arange(A + 1), np.arange(A + 1), np.arange(A + 1), indexing="ij")
        k0, k1, k2 = m0.ravel(), m1.ravel(), m2.ravel()
        ok = ok_cut[0][:, k0] & ok_cut[1][:, k1] & ok_cut[2][:, k2]  # (n, (A+1)^3)
        w0, w1, w2 = W[0][:, k0], W[1][:, k1], W[2][:, k2]
        if cap[0] == "shared":
            ok &= w0 + w1 + w2 <= cap[1] + 1e-9
        else:
            for v, wv in enumerate((w0, w1, w2)):
                if keeps[v]:
                    ok &= wv <= cap[1][v] + 1e-9
        pi, ci = np.nonzero(ok)
        orders = np.concatenate(
            [np.broadcast_to(np.array(rest, dtype=np.int64), (len(pi), len(rest))), perms[pi]], axis=1
        )
        ks = np.stack([k0[ci], k1[ci], k2[ci]], axis=1)
        place = np.where(ks > 0, ks + len(rest), 0)
        return orders.astype(np.int64), place.astype(np.int64)

    def _best_placed(
        self,
        model: CostModel,
        t: np.ndarray,
        sx: np.ndarray,
        sy: np.ndarray,
        objective: str,
        min_place: np.ndarray,
        cache: dict,
        deadline: float,
    ) -> tuple[float, Mapping | None, int, np.ndarray, int]:
        """The best (orders, placements) of tilings (B, L, D) whose whole tiles overflow some level: every
        combination of each tiling's `_level_choices` (cached in `cache` by what decides them), scored in
        batches of about `max_placements` rows.  Returns (objective, mapping, evaluations, mask of the tilings
        not resolved because their combinations exceed `max_placements`, number of tilings done: fewer than B
        when the deadline passed)."""
        L = model.L
        parts_t: list[np.ndarray] = []
        parts_o: list[np.ndarray] = []
        parts_p: list[np.ndarray] = []
        skipped = np.zeros(len(t), dtype=bool)
        best_obj, best_map, evals, rows = math.inf, None, 0, 0

        def flush() -> None:
            nonlocal best_obj, best_map, evals, rows
            which = np.concatenate(parts_t)
            orders, place = np.concatenate(parts_o), np.concatenate(parts_p)
            parts_t.clear()
            parts_o.clear()
            parts_p.clear()
            rows = 0
            cost = model.evaluate_batch(MappingBatch(t[which], sx[which], sy[which], orders, None, place))
            obj = cost.objective(objective)
            evals += len(which)
            i = int(np.argmin(obj))
            if obj[i] < best_obj:
                b = which[i]
                best_obj = float(obj[i])
                best_map = MappingBatch(
                    t[b : b + 1], sx[b : b + 1], sy[b : b + 1], orders[i : i + 1], None, place[i : i + 1]
                )[0]

        SP = sx * sy
        below = np.ones((len(t), L + 1, N_DIMS), dtype=np.int64)  # extents of each level's tile
        for lvl in range(L - 1, -1, -1):
            below[:, lvl] = below[:, lvl + 1] * t[:, lvl] * SP[:, lvl]
        inner = SP * below[:, 1:]  # below each level's temporal loops
        for b in range(len(t)):
            if time.perf_counter() > deadline:
                return best_obj, best_map, evals, skipped, b
            ids = []
            for lvl in range(L):
                if lvl == 0 or model.capacity[lvl] is None:  # whole tiles always: only the loops present matter
                    key = (lvl, (t[b, lvl] > 1).tobytes(), b"")
                else:
                    key = (lvl, t[b, lvl].tobytes(), inner[b, lvl].tobytes())
                table = cache.get(key)
                if table is None and key not in cache:
                    table = cache[key] = self._level_choices(
                        model, lvl, tuple(int(f) for f in t[b, lvl]), tuple(int(e) for e in inner[b, lvl]), min_place
                    )
                ids.append(key)
                if table is None:
                    break
            combo = cache.get(tuple(ids))
            if combo is None:
                tables = [cache[k] for k in ids]
                if any(tb is None for tb in tables) or math.prod(len(o) for o, _ in tables) > self.max_placements:
                    combo = cache[tuple(ids)] = (None, None)
                else:
                    sizes = [len(o) for o, _ in tables]
                    idx = np.indices(sizes).reshape(L, -1)
                    combo = cache[tuple(ids)] = (
                        np.stack([tables[lvl][0][idx[lvl]] for lvl in range(L)], axis=1),
                        np.stack([tables[lvl][1][idx[lvl]] for lvl in range(L)], axis=1),
                    )
            c_orders, c_place = combo
            if c_orders is None or c_place is None:  # both None together: too many combinations
                skipped[b] = True
                continue
            total = len(c_orders)
            if total == 0:
                continue
            parts_o.append(c_orders)
            parts_p.append(c_place)
            parts_t.append(np.full(total, b))
            rows += total
            if rows >= self.max_placements:
                flush()
        if parts_t:
            flush()
        return best_obj, best_map, evals, skipped, len(t)

    # ------------------------------------------------------------------ search
    def search(
        self,
        layer: Layer,
        arch: Architecture,
        objective: str = "edp",
        budget: int | None = None,
        seed: int = 0,
        model: CostModel | None = None,
        time_limit: float | None = None,
        initial: Sequence[Mapping] | None = None,
    ) -> SearchResult:
        """`initial`: warm-start mappings (rlmap.search.warmstart); the best valid one is the first incumbent.
        `budget` and `seed` are not used: the search is deterministic and runs until it has proved the
        optimum or hits its limits.

        `time_limit` (seconds; default: the mapper's) is wall-clock for the whole call, warm start and
        preprocessing included, checked inside the enumeration (every step of at most `chunk` candidate
        rows, and every `sweep_chunk` tilings of order sweeps).  When a limit stops it, the result is not
        proven and notes["bound"] is a lower bound on the optimum: the least bound of what was left.

        The space: every tiling, loop order, bypass choice (each level's `may_bypass`) and per-tensor tile
        placement (`placeable` tensors, at levels with a capacity).  Bypass choices are searched one after
        another (each is an architecture that keeps what the choice keeps), sharing the incumbent, and a
        choice whose compulsory-traffic bound cannot beat the incumbent is skipped.

        Branch and bound: every fitting tiling (fitting with its smallest placed tiles) is bounded by one
        order-relaxed evaluation (CostModel.evaluate_batch(relax_orders=True), a lower bound over all its
        loop orders and placements); only tilings whose bound beats the incumbent get their orders (and,
        where a whole tile overflows, placements) optimised exactly.
        """
        load_kernels()
        t0 = time.perf_counter()
        limit = self.time_limit if time_limit is None else time_limit
        deadline = t0 + (math.inf if limit is None else float(limit))
        model = model or CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        # the first incumbent, so that even a search stopped at once returns a mapping: everything in DRAM
        best_obj, best_map, evaluations = math.inf, None, 1
        trivial = self._trivial(model)
        trivial_cost = model.evaluate_reference(trivial)  # plain Python: no compiled code to load first
        if trivial_cost.valid:
            best_obj, best_map = float(trivial_cost.objective(objective)), trivial
        for m in initial or ():  # warm start: a better first incumbent prunes more
            c = model.evaluate(m) if len(m.temporal) == model.L else None
            evaluations += 1
            if c is not None and c.valid and c.objective(objective) < best_obj:
                best_obj, best_map = float(c.objective(objective)), m
        pruned = np.zeros(1, dtype=np.int64)
        warm_s = 0.0
        if self.placement or (self.bypass and any(level.may_bypass for level in arch.levels)):
            # warm start: the optimum of the next smaller space (fast to prove) is an incumbent the wider search
            # must beat, so most of its placements are cut at once -- with placements, the one-tile-per-level
            # space with bypass choices (so a stopped placement search never returns worse than it); with
            # bypass alone, the architecture's keeps
            plain = OptimalMapper(
                self.max_tilings,
                None,
                self.chunk,
                self.sweep_chunk,
                placement=False,
                bypass=self.bypass and self.placement,
            )
            remaining = deadline - time.perf_counter()
            if remaining > 0:
                warm = plain.search(layer, arch, objective, model=model, time_limit=remaining)
                evaluations += warm.evaluations
                warm_s = warm.seconds
                if warm.mapping is not None and warm.best < best_obj:
                    best_obj, best_map = warm.best, warm.mapping

        curve: list[float] = [best_obj] if best_map is not None else []
        curve_evals: list[int] = [evaluations] if best_map is not None else []
        n_tilings = swept = n_placed = placed_combos = variants_skipped = 0
        complete, why, frontier, unresolved = True, "", math.inf, math.inf
        variants = self.bypass_variants(arch) if self.bypass else [(arch, None)]
        models = [model if byp is None else CostModel(layer, arch_v, rules=model.rules) for arch_v, byp in variants]
        lbs = [objective_value(*lower_bound(m), objective) for m in models]
        lb = min(lbs)
        stopped_at = len(variants)
        for vi, ((arch_v, byp), model_v) in enumerate(zip(variants, models)):
            if lbs[vi] >= best_obj * (1 - 1e-9):
                variants_skipped += 1
                continue
            space_v = space if model_v is model else MapSpace(layer, arch_v, model_v)
            min_place = self._min_place(model_v)
            min_tile = None if min_place is None else np.asarray(min_place.any(axis=1))
            choice_cache: dict = {}
            bound = self.partial_bound(space_v, model_v, objective)
            # a partial tiling is cut when no completion can beat the incumbent by more than rounding (1e-9):
            # ties are not explored, so the optimum is proven to that relative precision
            gen = self.tilings(
                space_v,
                model_v,
                bound,
                lambda: best_obj * (1 - 1e-9),  # noqa: B023 - the live incumbent
                pruned,
                deadline,
                min_tile,
            )
            try:
                for temporal, sx, sy, tbound in gen:
                    n_tilings += len(temporal)
                    if n_tilings > self.max_tilings:
                        gen.throw(_Stopped(f"more than {self.max_tilings:,} fitting tilings", float(tbound.min())))
                    for s0 in range(0, len(temporal), self.sweep_chunk):
                        if time.perf_counter() > deadline:
                            gen.throw(_Stopped("time", float(tbound[s0:].min())))
                        part = slice(s0, s0 + self.sweep_chunk)
                        t, x, y = temporal[part], sx[part], sy[part]
                        ident = np.broadcast_to(np.arange(N_DIMS), t.shape).copy()
                        smallest = (
                            None if min_place is None else np.broadcast_to(min_place, (len(t),) + min_place.shape)
                        )
                        relaxed = model_v.evaluate_batch(
                            MappingBatch(t, x, y, ident, None, smallest), relax_orders=True
                        ).objective(objective)
                        evaluations += len(t)
                        keep = np.flatnonzero(relaxed < best_obj * (1 - 1e-9))
                        overflow = keep[:0]
                        if len(keep) and min_place is not None:  # tilings whose whole tiles overflow: placements
                            whole = model_v.evaluate_batch(
                                MappingBatch(t[keep], x[keep], y[keep], ident[keep]), relax_orders=True
                            ).valid
                            overflow = keep[~whole]
                            keep = keep[whole]
                        if len(keep):  # whole tiles first: placement 0 is their best, and they set the incumbent
                            swept += len(keep)
                            orders, obj, evals = self._best_orders(model_v, t[keep], x[keep], y[keep], objective)
                            evaluations += evals
                            i = int(np.argmin(obj))
                            if obj[i] < best_obj:
                                k = keep[i]
                                best_obj = float(obj[i])
                                best_map = self._with_bypass(
                                    MappingBatch(t[k : k + 1], x[k : k + 1], y[k : k + 1], orders[i : i + 1])[0], byp
                                )
                        overflow = overflow[np.argsort(relaxed[overflow], kind="stable")]  # best bound first
                        for g0 in range(0, len(overflow), self.placed_chunk):
                            group = overflow[g0 : g0 + self.placed_chunk]
                            group = group[relaxed[group] < best_obj * (1 - 1e-9)]
                            if not len(group):
                                break
                            assert min_place is not None  # overflow is only non-empty with placements
                            p_obj, p_map, evals, skipped, done = self._best_placed(
                                model_v, t[group], x[group], y[group], objective, min_place, choice_cache, deadline
                            )
                            n_placed += done
                            placed_combos += evals
                            evaluations += evals
                            if skipped.any():
                                unresolved = min(unresolved, float(relaxed[group[skipped]].min()))
                            if p_obj < best_obj and p_map is not None:  # (a better objective has a mapping)
                                best_obj, best_map = p_obj, self._with_bypass(p_map, byp)
                            if done < len(group):
                                left = np.concatenate(
                                    [relaxed[group[done:]], relaxed[overflow[g0 + self.placed_chunk :]]]
                                )
                                gen.throw(
                                    _Stopped(
                                        "time",
                                        float(min(tbound[s0 + self.sweep_chunk :].min(initial=np.inf), left.min())),
                                    )
                                )
                    curve.append(best_obj)
                    curve_evals.append(evaluations)
            except _Stopped as stop:
                complete, frontier = False, min(stop.frontier, min(lbs[vi + 1 :], default=math.inf))
                why = f"time limit {limit:g} s reached" if stop.why == "time" else stop.why
                stopped_at = vi
                break
        if best_map is not None and (not curve or curve[-1] > best_obj):  # found after the last curve point
            curve.append(best_obj)
            curve_evals.append(evaluations)
        if unresolved < math.inf:
            frontier = min(frontier, unresolved)
            if complete:
                complete = False
                why = f"a tiling's placement combinations exceed {self.max_placements:,}"
        cost = model.evaluate_reference(best_map) if best_map is not None else None
        # stopped with nothing left that could beat the incumbent (ties at most): proven all the same
        proven = best_map is not None and (complete or frontier >= best_obj * (1 - 1e-9))
        # a lower bound on the optimum: the optimum itself when proven, else the least bound left unexplored
        opt_lb = best_obj if proven else max(min(best_obj, frontier), lb)
        gap = best_obj / opt_lb if opt_lb > 0 else math.inf
        if proven and not complete:
            why += ", but nothing left could beat the incumbent: proven"
        elif not complete:
            why += (
                f": not proven, within {gap:.4g}x of the bound"
                if best_map is not None
                else ": no valid mapping found yet"
            )
        notes = {
            "fitting_tilings_seen": n_tilings,
            "tilings_swept": swept,
            "partial_tilings_pruned": int(pruned[0]),
            "bypass_choices": len(variants),
            "bypass_choices_skipped": variants_skipped,
            "bypass_choices_searched": min(stopped_at + 1, len(variants)) - variants_skipped,
            "tilings_placed": n_placed,
            "placement_combinations": placed_combos,
            "warm_start_s": warm_s,
            "placeable": [("inputs", "weights", "outputs")[v] for v in self.placeable(model)] if self.placement else [],
            "complete": complete,
            "stopped": why,
            "lower_bound": lb,
            "gap_to_lower_bound": best_obj / lb if lb > 0 else math.inf,
            "bound": opt_lb,
            "gap_to_bound": gap,
            "time_limit": limit,
            "curve_evaluations": curve_evals,
            **space.sizes(),
        }
        # one curve point per chunk of tilings; notes["curve_evaluations"] gives the evaluations behind each
        return SearchResult(
            mapper=self.name,
            objective=objective,
            mapping=best_map,
            cost=cost,
            evaluations=evaluations,
            curve=np.array(curve),
            proven_optimal=proven,
            seconds=time.perf_counter() - t0,
            notes=notes,
        )

    @staticmethod
    def _with_bypass(m: Mapping, bypass: tuple[tuple[int, ...], ...] | None) -> Mapping:
        return m if bypass is None else Mapping(m.temporal, m.spatial_x, m.spatial_y, m.order, bypass, m.place)
