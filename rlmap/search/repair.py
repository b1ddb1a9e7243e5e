"""Structural validity and repair of genomes: spec checks that compute no energy or latency.

`structural_valid` checks factors, loop orders, fanouts and tile capacities -- the spec's legality, no
cost -- so it is not a cost-model evaluation and the search mappers do not count it against a budget.
`capacity_repair` pushes prime copies out to the outermost temporal slot (DRAM) until every tile fits:
with the fanout repair of rlmap.search.genetic.Operators it turns any genome into a valid mapping
whenever the layer fits at all (the everything-in-DRAM mapping is valid whenever one element of each
tensor fits every level).
"""

from __future__ import annotations

import math

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import TEMPORAL, Genome, MapSpace
from rlmap.spec.mapping import MappingBatch
from rlmap.spec.problem import N_DIMS


def random_true(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a uniformly chosen True column (0 where none) and whether the row had one."""
    r = rng.random(mask.shape) * mask
    return np.argmax(r, axis=1), np.asarray(mask.any(axis=1))


def fanout_limits(space: MapSpace) -> list[tuple[int, float]]:
    """(slot, log fanout) of every spatial slot that exists in the map space."""
    out = []
    for lvl, level in enumerate(space.arch.levels):
        for k, lim in ((1, level.fanout.x), (2, level.fanout.y)):
            if lim > 1 and space.allowed[:, 3 * lvl + k].any():
                out.append((3 * lvl + k, math.log(lim) + 1e-9))
    return out


def fanout_repair(
    space: MapSpace, g: Genome, rng: np.random.Generator, limits: list[tuple[int, float]] | None = None
) -> Genome:
    """In place: move random prime copies out of over-full spatial slots to the level's temporal slot."""
    if g.slots.shape[1] == 0:
        return g
    log_prime = np.log(space.gene_prime.astype(np.float64))
    slots = g.slots
    for s, lim in fanout_limits(space) if limits is None else limits:
        temporal = 3 * (s // 3) + TEMPORAL
        while True:
            in_s = slots == s
            over = (in_s * log_prime).sum(axis=1) > lim
            if not over.any():
                break
            rows = np.flatnonzero(over)
            pick, _ = random_true(in_s[rows], rng)
            slots[rows, pick] = temporal
    return g


def structural_valid(model: CostModel, b: MappingBatch) -> np.ndarray:
    """Mask of mappings whose factors, loop orders, spatial fanouts and tile capacities are legal.

    Pure spec checks (layer dims, the architecture's fanouts and capacities); no energy or latency is
    computed, so this is not a cost-model evaluation.
    """
    B = len(b)
    if B == 0:
        return np.zeros(0, dtype=bool)
    T = b.temporal.astype(np.float64)
    SX = b.spatial_x.astype(np.float64)
    SY = b.spatial_y.astype(np.float64)
    L = model.L
    ok = np.ones(B, dtype=bool)
    order = b.order
    ok &= (np.sort(order, axis=2) == np.arange(N_DIMS)).all(axis=(1, 2))
    for lvl in range(L):
        ok &= SX[:, lvl].prod(axis=1) <= model.fan_x[lvl]
        ok &= SY[:, lvl].prod(axis=1) <= model.fan_y[lvl]
        ax = ~np.array(model.allow_x[lvl])
        ay = ~np.array(model.allow_y[lvl])
        if ax.any():
            ok &= ~(SX[:, lvl, ax] > 1).any(axis=1)
        if ay.any():
            ok &= ~(SY[:, lvl, ay] > 1).any(axis=1)
    TS = T * SX * SY  # (B, L, D)
    E = np.ones((L + 1, N_DIMS, B))
    for lvl in range(L - 1, -1, -1):
        E[lvl] = E[lvl + 1] * TS[:, lvl].T
    ok &= (E[0] == np.array(model.dims, dtype=np.float64)[:, None]).all(axis=0)
    _, over = model.tile_check(E)
    return ok & ~over


def capacity_repair(
    space: MapSpace,
    g: Genome,
    rng: np.random.Generator,
    valid: np.ndarray | None = None,
    target: int | np.ndarray = 0,
    movable: np.ndarray | None = None,
) -> np.ndarray:
    """In place: rows whose tiles overflow a buffer get random prime copies moved out to slot `target`
    (default 0, the outermost temporal slot: DRAM) until they fit.  Only copies inside `target` (slot >
    target) and, if given, with `movable[gene]` set are moved.  `target` (B,) and `movable` (B, G) may
    also be given per row (several constrained searches repaired in one batch).  Returns the validity
    mask afterwards."""
    model = space.model
    if valid is None:
        valid = structural_valid(model, space.decode(g))
    tgt = np.broadcast_to(np.asarray(target), (len(g),))
    for _ in range(space.n_genes + 1):
        bad = np.flatnonzero(~valid)
        if len(bad) == 0:
            break
        inner = g.slots[bad] > tgt[bad, None]
        if movable is not None:
            inner &= movable[bad] if movable.ndim == 2 else movable[None, :]
        has = inner.any(axis=1)
        if not has.any():
            break
        r = rng.random(inner.shape) * inner
        pick = np.argmax(r, axis=1)
        rows = bad[has]
        g.slots[rows, pick[has]] = tgt[rows]
        valid[rows] = structural_valid(model, space.decode(g.take(rows)))
    return valid
