"""Compiled inner loop of the optimal mapper's tiling enumeration: extend partial tilings by one dim.

`expand_fitting(part, opts, d, ...)` returns every row "part[i] with dim d's factors replaced by
opts[j]" whose spatial factors fit each fanout and whose tiles fit every capacity -- the same test as
`OptimalMapper._fits_numpy` (kept as the readable reference and checked against this in the tests),
without materialising the rows that fail.  The capacity test uses the cost kernel's own footprint and
format formulas (rlmap.model.kernel).  Given a `PartialBound` and a threshold it also drops the rows whose
bound exceeds the threshold (the same test as `PartialBound.__call__`), before the costlier capacity test.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.model.kernel import _fits_capacity, _level_tiles


@numba.njit(cache=True, error_model="numpy")
def _expand_fitting(part: np.ndarray, opts: np.ndarray, d: int, fan_size: np.ndarray, geom: np.ndarray,
                    keeps: np.ndarray, fmt: np.ndarray, fmt_const: np.ndarray, density: np.ndarray,
                    word_scale: np.ndarray, cap_kind: np.ndarray, cap_val: np.ndarray, data_bits: float,
                    rle_bits: float, b_on: bool, room: np.ndarray, total_room: float, c_lb: float, mult: float,
                    macs_eff: float, threshold: float, pruned: np.ndarray) -> np.ndarray:
    n_part, D, L2 = part.shape
    L = L2 // 2
    n_opt = opts.shape[0]
    sh, sw, dh, dw = geom[0], geom[1], geom[2], geom[3]
    out = np.empty((n_part * n_opt, D, L2), dtype=np.int64)
    E = np.ones((L + 1, D))
    ec = np.empty(D)
    sp = np.ones(L)
    fps = np.ones((L, 3))  # scratch: the capacity test needs only the words
    fmt_f = np.ones((L, 3))
    words = np.zeros(3)
    n = 0
    for i in range(n_part):
        for j in range(n_opt):
            ok = True
            for lvl in range(L):
                if fan_size[lvl] > 1.0:
                    prod = 1.0
                    for dd in range(D):
                        prod *= opts[j, 2 * lvl + 1] if dd == d else part[i, dd, 2 * lvl + 1]
                    sp[lvl] = prod
                    if prod > fan_size[lvl]:
                        ok = False
                        break
            if not ok:
                continue
            if b_on:
                pes = 1.0
                placed = 1.0
                for lvl in range(L):
                    if fan_size[lvl] > 1.0:
                        placed *= sp[lvl]
                        pes *= min(fan_size[lvl], sp[lvl] * room[lvl])
                pes = min(pes, placed * total_room)
                if mult * max(c_lb, macs_eff / pes) > threshold:
                    pruned[0] += 1
                    continue
            for lvl in range(L - 1, -1, -1):
                for dd in range(D):
                    if dd == d:
                        f = opts[j, 2 * lvl] * opts[j, 2 * lvl + 1]
                    else:
                        f = part[i, dd, 2 * lvl] * part[i, dd, 2 * lvl + 1]
                    E[lvl, dd] = E[lvl + 1, dd] * f
            for lvl in range(L):
                if cap_kind[lvl] != 0:
                    _level_tiles(lvl, E, ec, sh, sw, dh, dw, keeps, fmt, fmt_const, density, word_scale, data_bits,
                                 rle_bits, fps, fmt_f, words)
                    if not _fits_capacity(lvl, words, keeps, cap_kind, cap_val):
                        ok = False
                        break
            if ok:
                out[n] = part[i]
                out[n, d, :] = opts[j]
                n += 1
    return out[:n]


def expand_fitting(model: CostModel, fan_size: np.ndarray, part: np.ndarray, opts: np.ndarray, d: int,
                   bound: Any = None, k: int = 0, threshold: float = np.inf, pruned: np.ndarray | None = None
                   ) -> np.ndarray:
    """Rows of part (B, D, 2L) x options of dim d (O, 2L) that fit fanouts (fan_size per level) and capacities.

    With a PartialBound `bound`, rows whose first k enumerated dims are placed (d among them) and whose
    bound exceeds `threshold` are dropped too; `pruned[0]` counts them.
    """
    ks = model.kernel_static
    if pruned is None:
        pruned = np.zeros(1, dtype=np.int64)
    on = bound is not None
    room = bound.room[k] if on else np.ones(len(fan_size))
    return _expand_fitting(np.ascontiguousarray(part, dtype=np.int64), np.ascontiguousarray(opts, dtype=np.int64),
                           d, fan_size, ks.geom, ks.keeps, ks.fmt, ks.fmt_const, ks.density, ks.word_scale,
                           ks.cap_kind, ks.cap_val, float(model.data_bits), float(ks.scalars[6]), on, room,
                           float(bound.total_room[k]) if on else 1.0, float(bound.c_lb) if on else 0.0,
                           float(bound.mult) if on else 0.0, float(bound.macs_eff) if on else 0.0,
                           float(threshold), pruned)
