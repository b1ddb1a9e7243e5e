"""Map-space insight for one layer (Kao et al., IISWC 2022): how the objective is distributed over the map
space, how much each mapping axis matters, and how each mapper's search progresses.

* **Distribution** -- the objective of `samples` mappings drawn uniformly from the *valid* map space
  (`MapSpace.sample`: uniform tilings and loop orders, invalid draws rejected), as ratios to the optimum.
* **Sensitivity per axis** -- around a base mapping, `neighbours` one-move variants that change one axis
  only, scored by the cost model:
  - tiling: one prime factor moves between two *temporal* slots (another level's tile size),
  - order: one level's loop order is shuffled,
  - parallelism: one prime factor moves between a spatial slot and its level's temporal slot;
  - bypass: where a tensor is kept is fixed by the architecture spec in rlmap (no mapping axis), so it is
    reported as not applicable.
  Per axis: the median and 90th percentile of |log10(variant / base)| over valid variants, and the share of
  variants that are invalid.  Bases: the optimum (or the best found) and `random_points` uniform valid
  mappings.
* **Search curves** -- best-so-far objective / optimum after each evaluation for every mapper asked for,
  over seeds: the median and the 25-75% band per evaluation count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlmap.search.mapspace import SPATIAL_X, SPATIAL_Y, TEMPORAL, Genome, MapSpace

AXES = ("tiling", "order", "parallelism", "bypass")


def distribution(space: MapSpace, objective: str, samples: int, rng: np.random.Generator) -> dict[str, Any]:
    """Objective of uniformly sampled valid mappings (values, acceptance rate of the uniform draw)."""
    g, rate = space.sample(samples, rng)
    v = space.model.evaluate_batch(space.decode(g)).objective(objective)
    return {"values": v[np.isfinite(v)], "acceptance": rate}


def variants(space: MapSpace, base: Genome, axis: str, n: int, rng: np.random.Generator) -> Genome:
    """`n` one-move variants of a single genome that change only `axis` (see the module docstring)."""
    g = Genome(np.repeat(base.slots, n, axis=0), np.repeat(base.order, n, axis=0))
    if axis == "order":
        lvls = rng.integers(space.L, size=n)
        g.order[np.arange(n), lvls] = np.argsort(rng.random((n, base.order.shape[2])), axis=1)
        return g
    if space.n_genes == 0:
        return g
    allowed = space.allowed
    for r in range(n):
        for _ in range(32):  # a gene with somewhere to go on this axis
            i = int(rng.integers(space.n_genes))
            d, cur = int(space.gene_dim[i]), int(g.slots[r, i])
            kind, lvl = cur % 3, cur // 3
            if axis == "tiling":
                if kind != TEMPORAL:
                    continue
                opts: list[int] = [
                    3 * lv + TEMPORAL for lv in range(space.L) if lv != lvl and allowed[d, 3 * lv + TEMPORAL]
                ]
            else:  # parallelism
                if kind == TEMPORAL:
                    opts = [3 * lvl + k for k in (SPATIAL_X, SPATIAL_Y) if allowed[d, 3 * lvl + k]]
                else:
                    opts = [3 * lvl + TEMPORAL]
            if opts:
                g.slots[r, i] = opts[int(rng.integers(len(opts)))]
                break
    return g


def sensitivity(
    space: MapSpace, bases: Genome, objective: str, neighbours: int, rng: np.random.Generator
) -> dict[str, dict[str, float | str | None]]:
    """Per axis: median / p90 of |log10(variant/base)| over valid variants and the invalid share."""
    out: dict[str, dict[str, float | str | None]] = {}
    base_v = space.model.evaluate_batch(space.decode(bases)).objective(objective)
    for axis in AXES:
        if axis == "bypass":
            out[axis] = {
                "median_abs_log10": None,
                "p90_abs_log10": None,
                "invalid_share": None,
                "note": "fixed by the architecture (keeps), not a mapping axis in rlmap",
            }
            continue
        moves, invalid, total = [], 0, 0
        for b in range(len(bases)):
            g = variants(space, bases.take(np.array([b])), axis, neighbours, rng)
            v = space.model.evaluate_batch(space.decode(g)).objective(objective)
            ok = np.isfinite(v)
            invalid += int((~ok).sum())
            total += len(v)
            moves.append(np.abs(np.log10(v[ok] / base_v[b])))
        m = np.concatenate(moves) if moves else np.zeros(0)
        out[axis] = {
            "median_abs_log10": float(np.median(m)) if len(m) else None,
            "p90_abs_log10": float(np.percentile(m, 90)) if len(m) else None,
            "invalid_share": invalid / max(total, 1),
        }
    return out


def curve_band(curves: Sequence[np.ndarray], optimum: float, length: int | None = None) -> dict[str, list[float]]:
    """Median and 25/75% of best-so-far / optimum per evaluation over runs (a run that stopped early holds
    its last value; inf where no valid mapping yet)."""
    n = length or max((len(c) for c in curves), default=0)
    if n == 0 or not curves:
        return {"median": [], "p25": [], "p75": []}
    arr = np.full((len(curves), n), np.inf)
    for i, c in enumerate(curves):
        if len(c):
            arr[i, : len(c)] = c[:n]
            arr[i, len(c) :] = c[-1]
    arr = arr / optimum
    out = {}
    with np.errstate(invalid="ignore"):  # inf - inf inside the interpolation while no run is valid yet
        for k, q in (("median", 50), ("p25", 25), ("p75", 75)):
            v = np.percentile(arr, q, axis=0, method="nearest")
            out[k] = [float(x) for x in np.where(np.isnan(v), np.inf, v)]
    return out


def evaluations_to_reach(curve: np.ndarray, target: float) -> float:
    """First evaluation count (1-based) whose best-so-far is <= target; inf if never."""
    hit = np.flatnonzero(np.asarray(curve) <= target)
    return float(hit[0] + 1) if len(hit) else math.inf
