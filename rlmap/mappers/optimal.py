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
from typing import Iterator

import numpy as np

from rlmap.arch import Architecture
from rlmap.costmodel import CostModel, footprint, format_factor, objective_value
from rlmap.layer import Layer
from rlmap.mapping import MappingBatch
from rlmap.mappers.base import SearchResult
from rlmap.mapspace import MapSpace, ordered_factorizations
from rlmap.problem import C, G, INPUTS, N, N_DIMS, N_TENSORS, OUTPUTS, RELEVANCE_MATRIX, P, Q, R, S

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


@functools.lru_cache(maxsize=1024)
def order_classes(mask: int) -> tuple[tuple[int, ...], ...]:
    """Representative full orders (outermost first) of the non-dominated classes for the dims in `mask`."""
    dims = [d for d in range(N_DIMS) if mask >> d & 1]
    rest = [d for d in range(N_DIMS) if not mask >> d & 1]
    sigs: dict[tuple, tuple[int, ...]] = {}
    for perm in itertools.permutations(dims):
        sigs.setdefault(order_signature(perm), perm)

    def dominates(a: tuple, b: tuple) -> bool:
        return a[1] == b[1] and all(x >= y for x, y in zip(a[0], b[0]))

    keep = [s for s in sigs if not any(o != s and dominates(o, s) for o in sigs)]
    return tuple(tuple(rest) + sigs[s] for s in keep)


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


class OptimalMapper:
    """Exhaustive over the pruned map space; `proven_optimal` only when the enumeration completed."""

    name = "optimal"

    def __init__(self, max_tilings: int = 2_000_000, time_limit: float = 60.0, chunk: int = 20_000) -> None:
        self.max_tilings = max_tilings
        self.time_limit = time_limit
        self.chunk = chunk

    # ------------------------------------------------------------------ tilings
    def _dim_options(self, space: MapSpace) -> list[np.ndarray]:
        """Per dim: every factorisation over its allowed slots, as (n_options, n_slots) int arrays."""
        out = []
        for d, n in enumerate(space.dims):
            slots = np.flatnonzero(space.allowed[d])
            facs = ordered_factorizations(n, len(slots))
            arr = np.ones((len(facs), space.n_slots), dtype=np.int64)
            arr[:, slots] = np.array(facs, dtype=np.int64)
            out.append(arr)
        return out

    def tilings(self, space: MapSpace, model: CostModel) -> Iterator[np.ndarray]:
        """Chunks of fitting tilings as factor arrays (B, D, n_slots)."""
        options = self._dim_options(space)
        # dims with many options last, so pruning acts on small partial sets first
        dim_order = sorted(range(N_DIMS), key=lambda d: len(options[d]))
        L = space.L
        fan = np.array([[lvl.fanout.x, lvl.fanout.y] for lvl in space.arch.levels], dtype=np.int64)

        def fits(fac: np.ndarray) -> np.ndarray:
            f = fac.reshape(len(fac), N_DIMS, L, 3)
            sx = f[..., 1].prod(axis=1)  # (B, L)
            sy = f[..., 2].prod(axis=1)
            ok = (sx <= fan[:, 0]).all(axis=1) & (sy <= fan[:, 1]).all(axis=1)
            if not ok.any():
                return ok
            per_level = f.prod(axis=3).astype(np.float64)  # (B, D, L)
            E = np.ones((L + 1, N_DIMS, len(fac)))
            for lvl in range(L - 1, -1, -1):
                E[lvl] = E[lvl + 1] * per_level[:, :, lvl].T
            _, over = model.tile_check(E)
            return ok & ~over

        def expand(partial: np.ndarray, k: int) -> Iterator[np.ndarray]:
            if k == N_DIMS:
                yield partial
                return
            d = dim_order[k]
            opts = options[d]
            step = max(1, self.chunk // len(opts))
            for i in range(0, len(partial), step):
                part = partial[i:i + step]
                new = np.repeat(part, len(opts), axis=0)
                new[:, d, :] = np.tile(opts, (len(part), 1))
                new = new[fits(new)]
                if len(new):
                    yield from expand(new, k + 1)

        start = np.ones((1, N_DIMS, space.n_slots), dtype=np.int64)
        yield from expand(start, 0)

    # ------------------------------------------------------------------ orders
    def _best_orders(self, model: CostModel, fac: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray, int]:
        """For tilings `fac` (B, D, n_slots): the best order per level (B, L, D), its objective, evaluations.

        Tilings are grouped by which dims have factor > 1 at each level (that fixes the order classes);
        all groups' sweeps are scored in one batched call.
        """
        B = len(fac)
        L = model.L
        f = fac.reshape(B, N_DIMS, L, 3).transpose(0, 2, 1, 3)  # (B, L, D, 3)
        temporal = np.ascontiguousarray(f[..., 0])
        sx = np.ascontiguousarray(f[..., 1])
        sy = np.ascontiguousarray(f[..., 2])
        masks = ((temporal > 1) * (1 << np.arange(N_DIMS))).sum(axis=2)  # (B, L)
        keys, inverse = np.unique(masks, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = []
        parts_idx, parts_order = [], []
        offset = 0
        for gi, key in enumerate(keys):
            idx = np.flatnonzero(inverse == gi)
            classes = [np.array(order_classes(int(m)), dtype=np.int64) for m in key]
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
    def search(self, layer: Layer, arch: Architecture, objective: str = "edp", budget: int | None = None,
               seed: int = 0, model: CostModel | None = None) -> SearchResult:
        """`budget` is ignored: the search runs until it has proved the optimum or hits its limits."""
        t0 = time.perf_counter()
        model = model or CostModel(layer, arch)
        space = MapSpace(layer, arch, model)
        best = (math.inf, None)
        curve_parts: list[np.ndarray] = []
        evaluations = 0
        n_tilings = 0
        curve_evals: list[int] = []
        complete = True
        why = ""
        for fac in self.tilings(space, model):
            n_tilings += len(fac)
            if n_tilings > self.max_tilings:
                complete, why = False, f"more than {self.max_tilings:,} fitting tilings"
                break
            if time.perf_counter() - t0 > self.time_limit:
                complete, why = False, f"time limit {self.time_limit:g} s reached"
                break
            orders, obj, evals = self._best_orders(model, fac, objective)
            evaluations += evals
            i = int(np.argmin(obj))
            if obj[i] < best[0]:
                f = fac[i].reshape(N_DIMS, model.L, 3).transpose(1, 0, 2)
                best = (float(obj[i]), MappingBatch(f[None, ..., 0].copy(), f[None, ..., 1].copy(),
                                                    f[None, ..., 2].copy(), orders[i][None])[0])
            curve_parts.append(np.full(1, best[0]))
            curve_evals.append(evaluations)
        mapping = best[1]
        cost = model.evaluate(mapping) if mapping is not None else None
        # one curve point per chunk of tilings; notes["curve_evaluations"] gives the evaluations behind each
        curve = np.array([c[0] for c in curve_parts]) if curve_parts else np.zeros(0)
        return SearchResult(
            mapper=self.name, objective=objective, mapping=mapping, cost=cost, evaluations=evaluations,
            curve=curve, proven_optimal=complete and mapping is not None, seconds=time.perf_counter() - t0,
            notes={"fitting_tilings": n_tilings, "curve_evaluations": curve_evals, "complete": complete, "stopped": why, **space.sizes()},
        )
