"""Compiled inner loops of the optimal mapper: extend partial tilings by one dim, and bound them.

A tiling row is a (D, 2L) int array: `row[d, 2*l]` is dim d's temporal factor at level l and
`row[d, 2*l + 1]` its spatial factor (X*Y) at level l.  Dims not yet placed have all factors 1.

`expand_fitting(part, opts, d, ...)` returns every row "part[i] with dim d's factors replaced by
opts[j]" whose spatial factors fit each fanout and whose tiles fit every capacity -- the same test as
`OptimalMapper._fits_numpy` (kept as the readable reference and checked against this in the tests),
without materialising the rows that fail.  The capacity test uses the cost kernel's own footprint and
format formulas (rlmap.model.kernel).  With a `BoundStatic` and a threshold it also drops the rows whose
lower bound (`_row_bound`, below) exceeds the threshold, and returns the bound of every row it keeps.

The bound of a partial tiling holds for *every* completion (any factors of the unplaced dims, any loop
orders); docs/costmodel.md ('Optimal mapper', step 7) derives it term by term from the cost model:

* a (parent p, child c) transfer of a weights/outputs tile moves size(v) x prod over the dims d
  irrelevant to v of (spatial factors above the mover x temporal factors above the deciding level l*),
  where l* is the deepest level above c with a loop relevant to v.  Placed dims give their factors, and
  l* is at least the deepest level where a *placed* relevant dim loops; unplaced dims contribute >= 1.
  Inputs move at least the input elements some MAC touches times the same K multiplicity (the sliding
  windows of one sweep cover every touched element; halo credit never goes below their union).
* a MAC-facing read (child = the MACs) serves at most (spatial factors below p of the dims irrelevant to
  the tensor) MACs; for inputs, K times min(P, R) times min(Q, S) of them.  Unplaced dims can raise
  these only up to the fanout room the placed ones leave and to their own sizes.
* energy = sum of (bounded) accesses x per-access energies + MAC energy; cycles = max(compute cycles at
  the most PEs a completion can use, each bandwidth-limited level's bounded traffic / (most instances
  it can have x bandwidth)); both at least the layer's compulsory-traffic bound (`lower_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.model.jit import CACHE
from rlmap.model.kernel import REL, _fits_capacity, _level_tiles
from rlmap.spec.factors import divisors
from rlmap.spec.problem import INPUTS, OUTPUTS, K, P, Q, R, S

OBJECTIVE_CODES = {"energy": 0, "latency": 1, "edp": 2}


@dataclass(frozen=True)
class BoundStatic:
    """What `_row_bound` needs about a (layer, architecture, objective, dim order), as flat arrays."""

    objective: int  # OBJECTIVE_CODES
    dims: np.ndarray  # (D,) float
    placed: np.ndarray  # (D + 1, D) bool: placed[k, d] = d is among the first k dims of the enumeration
    allowed: np.ndarray  # (L, D) bool: d may be unrolled at level l (a fanout level)
    fan_size: np.ndarray  # (L,) float
    chain_p: np.ndarray  # (3, L) int: parent of each (parent, child) pair, per tensor
    chain_c: np.ndarray  # (3, L) int: child (L = the MACs)
    n_pairs: np.ndarray  # (3,) int
    word_scale: np.ndarray  # (L,)
    read_e: np.ndarray  # (L,)
    write_e: np.ndarray  # (L,)
    bandwidth: np.ndarray  # (L,), <= 0 for unbounded
    fmt_min: np.ndarray  # (L, 3): the smallest stored words per dense word any tile can have
    size: np.ndarray  # (3,) dense words of each tensor (inputs: only the elements some MAC touches)
    scalars: np.ndarray  # macs, phi, mac_energy, macs_eff (compute cycles at one PE), e_floor, c_floor


@numba.njit(cache=CACHE, error_model="numpy")
def _unplaced_room(
    dset: np.ndarray,
    p: int,
    pl: np.ndarray,
    dims: np.ndarray,
    allowed: np.ndarray,
    fan_size: np.ndarray,
    room: np.ndarray,
) -> float:
    """Upper bound of the product, over the unplaced dims in `dset`, of their spatial factors at levels >= p."""
    L, D = allowed.shape
    total = 1.0
    for d in range(D):
        if dset[d] and not pl[d]:
            total *= dims[d]
    if total == 1.0:
        return 1.0
    fan = 1.0
    for lvl in range(p, L):
        if fan_size[lvl] > 1.0:
            here = 1.0
            for d in range(D):
                if dset[d] and not pl[d] and allowed[lvl, d]:
                    here *= dims[d]
            fan *= min(room[lvl], here)
    return min(total, fan)


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _conflicts(ne: np.ndarray, px: np.ndarray) -> float:
    """Energy that loop-order conflicts add at least: sum over levels l of the max over tensor pairs (a, b)
    of min(ne[a, l] (px[l, a, b] - 1), ne[b, l] (px[l, b, a] - 1)).

    ne[v, l]: the fetch-proportional energy of v's transfers whose deciding level is at least l (l* >= l
    for every completion); px[l, a, b]: product of the loops at l over dims relevant to b, irrelevant to a.
    Whatever the completion and the order at l, of the innermost loop relevant to just one of a and b,
    say to b: every loop at l relevant only to a is outside it, so each a transfer decided at l refetches
    across them (one decided deeper refetches across all of l anyway): the a side pays px[l, a, b].
    Different levels decide different transfers, so levels add up; pairs at one level do not."""
    L = ne.shape[1]
    extra = 0.0
    for lvl in range(L):
        best = 0.0
        for a in range(3):
            for b in range(a + 1, 3):
                pay = min(ne[a, lvl] * (px[lvl, a, b] - 1.0), ne[b, lvl] * (px[lvl, b, a] - 1.0))
                best = max(best, pay)
        extra += best
    return extra


@numba.njit(cache=CACHE, error_model="numpy")
def _row_bound(
    T: np.ndarray,
    SP: np.ndarray,
    pl: np.ndarray,
    objective: int,
    dims: np.ndarray,
    allowed: np.ndarray,
    fan_size: np.ndarray,
    chain_p: np.ndarray,
    chain_c: np.ndarray,
    n_pairs: np.ndarray,
    word_scale: np.ndarray,
    read_e: np.ndarray,
    write_e: np.ndarray,
    bandwidth: np.ndarray,
    fmt_min: np.ndarray,
    size: np.ndarray,
    scalars: np.ndarray,
    SPab: np.ndarray,
    SPbel: np.ndarray,
    room: np.ndarray,
    rd: np.ndarray,
    wr: np.ndarray,
    irr: np.ndarray,
    dset: np.ndarray,
    ne: np.ndarray,
    px: np.ndarray,
) -> float:
    """Lower bound of the objective over every completion of the partial tiling (T, SP) (L, D) whose placed
    dims are `pl`; scratch arrays are passed in.  See the module docstring for the derivation."""
    L, D = T.shape
    for lvl in range(L):
        for a in range(3):
            ne[a, lvl] = 0.0
            for b in range(3):
                prod = 1.0
                for d in range(D):
                    if REL[b, d] and not REL[a, d]:
                        prod *= T[lvl, d]
                px[lvl, a, b] = prod
    macs, phi, mac_energy, macs_eff, e_floor, c_floor = (
        scalars[0],
        scalars[1],
        scalars[2],
        scalars[3],
        scalars[4],
        scalars[5],
    )
    for d in range(D):
        SPab[0, d] = 1.0
        SPbel[L, d] = 1.0
    for lvl in range(L):
        for d in range(D):
            SPab[lvl + 1, d] = SPab[lvl, d] * SP[lvl, d]
    for lvl in range(L - 1, -1, -1):
        for d in range(D):
            SPbel[lvl, d] = SPbel[lvl + 1, d] * SP[lvl, d]
    for lvl in range(L):
        room[lvl] = 1.0
        if fan_size[lvl] > 1.0:
            prod = 1.0
            for d in range(D):
                prod *= SP[lvl, d]
            room[lvl] = fan_size[lvl] / prod
        rd[lvl] = 0.0
        wr[lvl] = 0.0
    for v in range(3):
        for d in range(D):
            irr[d] = not REL[v, d]
        s = size[v]
        for ip in range(n_pairs[v]):
            p = chain_p[v, ip]
            c = chain_c[v, ip]
            if c < L:
                lst = -1
                for lvl in range(c - 1, -1, -1):
                    rp = 1.0
                    for d in range(D):
                        if REL[v, d]:
                            rp *= T[lvl, d]
                    if rp > 1.0:
                        lst = lvl
                        break
                mA = 1.0
                mB = 1.0
                mS = 1.0
                for d in range(D):
                    if irr[d]:
                        t = 1.0
                        for lvl in range(lst):
                            t *= T[lvl, d]
                        mA *= SPab[p, d] * t
                        mB *= SPab[c, d] * t
                        mS *= SPab[p, d]
                if v == OUTPUTS:
                    refetch = s * (mA - mS)
                    rd[p] += refetch * fmt_min[p, v] * word_scale[p]
                    wr[p] += s * mA * fmt_min[p, v] * word_scale[p]
                    wr[c] += refetch * word_scale[c]
                    rd[c] += s * mB * word_scale[c]
                    if lst >= 0:
                        ne[v, lst] += s * (
                            mA * (fmt_min[p, v] * word_scale[p] * (read_e[p] + write_e[p]) + word_scale[c] * write_e[c])
                            + mB * word_scale[c] * read_e[c]
                        )
                else:
                    rd[p] += s * mA * fmt_min[p, v] * word_scale[p]
                    wr[c] += s * mB * fmt_min[c, v] * word_scale[c]
                    if lst >= 0:
                        ne[v, lst] += s * (
                            mA * fmt_min[p, v] * word_scale[p] * read_e[p]
                            + mB * fmt_min[c, v] * word_scale[c] * write_e[c]
                        )
                continue
            # MAC-facing: one read serves at most `reuse` MACs
            if v == INPUTS:
                reuse = np.inf
                for a, b in ((P, Q), (R, S)):
                    for d in range(D):
                        dset[d] = d == K or d == a or d == b
                    r = _unplaced_room(dset, p, pl, dims, allowed, fan_size, room)
                    for d in range(D):
                        if dset[d] and pl[d]:
                            r *= SPbel[p, d]
                    reuse = min(reuse, r)
            else:
                reuse = _unplaced_room(irr, p, pl, dims, allowed, fan_size, room)
                for d in range(D):
                    if irr[d] and pl[d]:
                        reuse *= SPbel[p, d]
            term = macs / reuse
            if v != INPUTS:  # size x prod over placed irrelevant dims of (spatial above p x all temporal)
                mS = 1.0
                tt = 1.0
                for d in range(D):
                    if irr[d]:
                        mS *= SPab[p, d]
                        for lvl in range(L):
                            tt *= T[lvl, d]
                term = max(term, s * mS * tt)
                if v == OUTPUTS:
                    rd[p] += s * mS * (tt - 1.0) * phi * word_scale[p]
            if v == OUTPUTS:
                wr[p] += term * phi * word_scale[p]
            else:
                rd[p] += term * phi * word_scale[p]
    energy = macs * phi * mac_energy
    for lvl in range(L):
        energy += rd[lvl] * read_e[lvl] + wr[lvl] * write_e[lvl]
    energy = max(energy + _conflicts(ne, px), e_floor)
    if objective == 0:
        return energy
    # the most PEs (and instances of each level) a completion can use
    unplaced_total = 1.0
    placed_sp = 1.0
    for d in range(D):
        if not pl[d]:
            unplaced_total *= dims[d]
    cycles = c_floor
    used = 1.0
    for lvl in range(L + 1):
        if lvl < L and bandwidth[lvl] > 0.0:
            cycles = max(cycles, (rd[lvl] + wr[lvl]) / (min(used, placed_sp * unplaced_total) * bandwidth[lvl]))
        if lvl < L and fan_size[lvl] > 1.0:
            here = 1.0
            for d in range(D):
                if not pl[d] and allowed[lvl, d]:
                    here *= dims[d]
            sp = 1.0
            for d in range(D):
                sp *= SP[lvl, d]
            placed_sp *= sp
            used *= min(fan_size[lvl], sp * here)
    cycles = max(cycles, macs_eff / min(used, placed_sp * unplaced_total))
    if objective == 1:
        return cycles
    return energy * cycles


@numba.njit(cache=CACHE, error_model="numpy")
def _bounds(
    part: np.ndarray,
    k: int,
    objective: int,
    dims: np.ndarray,
    placed: np.ndarray,
    allowed: np.ndarray,
    fan_size: np.ndarray,
    chain_p: np.ndarray,
    chain_c: np.ndarray,
    n_pairs: np.ndarray,
    word_scale: np.ndarray,
    read_e: np.ndarray,
    write_e: np.ndarray,
    bandwidth: np.ndarray,
    fmt_min: np.ndarray,
    size: np.ndarray,
    scalars: np.ndarray,
) -> np.ndarray:
    n, D, L2 = part.shape
    L = L2 // 2
    T = np.empty((L, D))
    SP = np.empty((L, D))
    SPab = np.empty((L + 1, D))
    SPbel = np.empty((L + 1, D))
    room = np.empty(L)
    rd = np.empty(L)
    wr = np.empty(L)
    irr = np.empty(D, dtype=np.bool_)
    dset = np.empty(D, dtype=np.bool_)
    ne = np.empty((3, L))
    px = np.empty((L, 3, 3))
    out = np.empty(n)
    pl = placed[k]
    for i in range(n):
        for lvl in range(L):
            for d in range(D):
                T[lvl, d] = part[i, d, 2 * lvl]
                SP[lvl, d] = part[i, d, 2 * lvl + 1]
        out[i] = _row_bound(
            T,
            SP,
            pl,
            objective,
            dims,
            allowed,
            fan_size,
            chain_p,
            chain_c,
            n_pairs,
            word_scale,
            read_e,
            write_e,
            bandwidth,
            fmt_min,
            size,
            scalars,
            SPab,
            SPbel,
            room,
            rd,
            wr,
            irr,
            dset,
            ne,
            px,
        )
    return out


@numba.njit(cache=CACHE, error_model="numpy")
def _expand_fitting(
    part: np.ndarray,
    opts: np.ndarray,
    d: int,
    divs: np.ndarray,
    fan_size: np.ndarray,
    fan_x: np.ndarray,
    fan_y: np.ndarray,
    allow_x: np.ndarray,
    allow_y: np.ndarray,
    geom: np.ndarray,
    keeps: np.ndarray,
    fmt: np.ndarray,
    fmt_const: np.ndarray,
    density: np.ndarray,
    word_scale: np.ndarray,
    cap_kind: np.ndarray,
    cap_val: np.ndarray,
    data_bits: float,
    rle_bits: float,
    b_on: bool,
    k: int,
    objective: int,
    dims: np.ndarray,
    placed: np.ndarray,
    allowed: np.ndarray,
    chain_p: np.ndarray,
    chain_c: np.ndarray,
    n_pairs: np.ndarray,
    read_e: np.ndarray,
    write_e: np.ndarray,
    bandwidth: np.ndarray,
    fmt_min: np.ndarray,
    size: np.ndarray,
    scalars: np.ndarray,
    threshold: float,
    pruned: np.ndarray,
    min_tile: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`_row_bound`'s tests, reorganised so that a candidate (partial row i, option j) costs O(levels x pairs):
    everything that depends on the other dims is computed once per row, everything about dim d's option
    once per call.  Capacity: a level's tiles grow with dim d's extent there, so per row and level the
    largest fitting extent among d's divisors is found by bisection, with the cost kernel's own test.
    Fanout: the spatial product fits the fanout, and the dims only one axis takes (X-only, Y-only) fit that
    axis -- necessary for an X/Y split to exist (`OptimalMapper._split`, run on complete tilings, decides).
    At a level with `min_tile` the capacity test takes the smallest tile a placement can give it (every
    loop of the level above the tiles: the extents of its spatial loops and the levels inside)."""
    n_part, D, L2 = part.shape
    L = L2 // 2
    n_opt = opts.shape[0]
    sh, sw, dh, dw = geom[0], geom[1], geom[2], geom[3]
    macs, phi, mac_energy, macs_eff, e_floor, c_floor = (
        scalars[0],
        scalars[1],
        scalars[2],
        scalars[3],
        scalars[4],
        scalars[5],
    )
    out = np.empty((n_part * n_opt, D, L2), dtype=np.int64)
    vals = np.empty(n_part * n_opt)
    # ---- dim d's options
    oT = np.empty((n_opt, L))
    oS = np.empty((n_opt, L))
    oE = np.ones((n_opt, L + 1))  # extent of d in one tile of each level
    oTpre = np.ones((n_opt, L + 1))  # product of d's temporal factors above each level
    oSab = np.ones((n_opt, L + 1))
    oSbel = np.ones((n_opt, L + 1))
    oLast = np.full((n_opt, L + 1), -1, dtype=np.int64)  # deepest level above c where d loops (-1: none)
    for j in range(n_opt):
        for lvl in range(L):
            oT[j, lvl] = opts[j, 2 * lvl]
            oS[j, lvl] = opts[j, 2 * lvl + 1]
        for lvl in range(L - 1, -1, -1):
            oE[j, lvl] = oE[j, lvl + 1] * oT[j, lvl] * oS[j, lvl]
            oSbel[j, lvl] = oSbel[j, lvl + 1] * oS[j, lvl]
        for lvl in range(L):
            oTpre[j, lvl + 1] = oTpre[j, lvl] * oT[j, lvl]
            oSab[j, lvl + 1] = oSab[j, lvl] * oS[j, lvl]
            oLast[j, lvl + 1] = lvl if oT[j, lvl] > 1.0 else oLast[j, lvl]
    # ---- the unplaced dims after this step: per dim set, their product (tot) and what each fanout may take
    pl = placed[k] if b_on else np.zeros(D, dtype=np.bool_)
    sets = np.zeros((6, D), dtype=np.bool_)  # irrelevant to I, W, O; {K, P, Q}; {K, R, S}; every dim
    for dd in range(D):
        for v in range(3):
            sets[v, dd] = not REL[v, dd]
        sets[3, dd] = dd == K or dd == P or dd == Q
        sets[4, dd] = dd == K or dd == R or dd == S
        sets[5, dd] = True
    tot = np.ones(6)
    here = np.ones((6, L))
    for si in range(6):
        for dd in range(D):
            if sets[si, dd] and not pl[dd]:
                tot[si] *= dims[dd]
                for lvl in range(L):
                    if allowed[lvl, dd]:
                        here[si, lvl] *= dims[dd]
    # ---- scratch
    T = np.empty((L, D))
    SP = np.empty((L, D))
    E = np.ones((L + 1, D))
    ec = np.empty(D)
    fps = np.ones((L, 3))
    fmt_f = np.ones((L, 3))
    words = np.zeros(3)
    emax = np.empty(L)
    pSP = np.empty(L)
    pX = np.empty(L)
    pY = np.empty(L)
    x_only = np.zeros((L, D), dtype=np.bool_)
    y_only = np.zeros((L, D), dtype=np.bool_)
    for lvl in range(L):
        for dd in range(D):
            on_x = fan_x[lvl] > 1.0 and allow_x[lvl, dd]
            on_y = fan_y[lvl] > 1.0 and allow_y[lvl, dd]
            x_only[lvl, dd] = on_x and not on_y
            y_only[lvl, dd] = on_y and not on_x
    SPab = np.empty((L + 1, D))
    SPbel = np.empty((L + 1, D))
    lst = np.full((3, L), -1, dtype=np.int64)
    PA = np.ones((3, L, L + 1))
    PB = np.ones((3, L, L + 1))
    PS = np.ones((3, L))
    Qab = np.ones(3)
    Qt = np.ones(3)
    Qbel = np.ones(5)
    room = np.ones(L)
    rd = np.empty(L)
    wr = np.empty(L)
    ne = np.empty((3, L))
    px = np.empty((L, 3, 3))
    pxo = np.ones((L, 3, 3))  # px over the other dims
    n = 0
    for i in range(n_part):
        # ---- the other dims of row i (dim d's own factors set to 1)
        for lvl in range(L):
            prod = 1.0
            px_ = 1.0
            py_ = 1.0
            for dd in range(D):
                if dd == d:
                    T[lvl, dd] = 1.0
                    SP[lvl, dd] = 1.0
                else:
                    T[lvl, dd] = part[i, dd, 2 * lvl]
                    SP[lvl, dd] = part[i, dd, 2 * lvl + 1]
                prod *= SP[lvl, dd]
                if x_only[lvl, dd]:
                    px_ *= SP[lvl, dd]
                if y_only[lvl, dd]:
                    py_ *= SP[lvl, dd]
            pSP[lvl] = prod
            pX[lvl] = px_
            pY[lvl] = py_
        for lvl in range(L - 1, -1, -1):
            for dd in range(D):
                E[lvl, dd] = E[lvl + 1, dd] * T[lvl, dd] * SP[lvl, dd]
        dead = False
        for lvl in range(L):
            emax[lvl] = np.inf
            if cap_kind[lvl] == 0:
                continue
            if min_tile[lvl]:
                for dd in range(D):
                    E[lvl, dd] = E[lvl + 1, dd] * SP[lvl, dd]
            lo = 0
            hi = len(divs) - 1
            E[lvl, d] = divs[0]
            _level_tiles(
                lvl,
                E,
                ec,
                sh,
                sw,
                dh,
                dw,
                keeps,
                fmt,
                fmt_const,
                density,
                word_scale,
                data_bits,
                rle_bits,
                fps,
                fmt_f,
                words,
            )
            if not _fits_capacity(lvl, words, keeps, cap_kind, cap_val):
                dead = True
                break
            while lo < hi:  # invariant: divs[lo] fits; find the largest divisor that fits
                mid = (lo + hi + 1) // 2
                E[lvl, d] = divs[mid]
                _level_tiles(
                    lvl,
                    E,
                    ec,
                    sh,
                    sw,
                    dh,
                    dw,
                    keeps,
                    fmt,
                    fmt_const,
                    density,
                    word_scale,
                    data_bits,
                    rle_bits,
                    fps,
                    fmt_f,
                    words,
                )
                if _fits_capacity(lvl, words, keeps, cap_kind, cap_val):
                    lo = mid
                else:
                    hi = mid - 1
            emax[lvl] = divs[lo]
            for dd in range(D):
                E[lvl, dd] = E[lvl + 1, dd] * T[lvl, dd] * SP[lvl, dd]
        if dead:
            continue
        if b_on:
            for lvl in range(L):
                for a in range(3):
                    for b in range(3):
                        prod = 1.0
                        for dd in range(D):
                            if REL[b, dd] and not REL[a, dd]:
                                prod *= T[lvl, dd]
                        pxo[lvl, a, b] = prod
            for dd in range(D):
                SPab[0, dd] = 1.0
                SPbel[L, dd] = 1.0
            for lvl in range(L):
                for dd in range(D):
                    SPab[lvl + 1, dd] = SPab[lvl, dd] * SP[lvl, dd]
            for lvl in range(L - 1, -1, -1):
                for dd in range(D):
                    SPbel[lvl, dd] = SPbel[lvl + 1, dd] * SP[lvl, dd]
            for v in range(3):
                for ip in range(n_pairs[v]):
                    p = chain_p[v, ip]
                    c = chain_c[v, ip]
                    if c < L:
                        ls = -1
                        for lvl in range(c - 1, -1, -1):
                            rp = 1.0
                            for dd in range(D):
                                if REL[v, dd]:
                                    rp *= T[lvl, dd]
                            if rp > 1.0:
                                ls = lvl
                                break
                        lst[v, ip] = ls
                        for x in range(-1, c):
                            mA = 1.0
                            mB = 1.0
                            mS = 1.0
                            for dd in range(D):
                                if not REL[v, dd]:
                                    t = 1.0
                                    for lvl in range(x):
                                        t *= T[lvl, dd]
                                    mA *= SPab[p, dd] * t
                                    mB *= SPab[c, dd] * t
                                    mS *= SPab[p, dd]
                            PA[v, ip, x + 1] = mA
                            PB[v, ip, x + 1] = mB
                            PS[v, ip] = mS
                    else:
                        qab = 1.0
                        qt = 1.0
                        qbel = 1.0
                        for dd in range(D):
                            if not REL[v, dd]:
                                qab *= SPab[p, dd]
                                for lvl in range(L):
                                    qt *= T[lvl, dd]
                                if pl[dd]:
                                    qbel *= SPbel[p, dd]
                        Qab[v] = qab
                        Qt[v] = qt
                        Qbel[v] = qbel
                        if v == INPUTS:
                            for si in range(3, 5):
                                qbel = 1.0
                                for dd in range(D):
                                    if sets[si, dd] and pl[dd]:
                                        qbel *= SPbel[p, dd]
                                Qbel[si] = qbel
        # ---- the options of dim d
        for j in range(n_opt):
            ok = True
            for lvl in range(L):
                if fan_size[lvl] > 1.0:
                    if pSP[lvl] * oS[j, lvl] > fan_size[lvl]:
                        ok = False
                        break
                    if (
                        (x_only[lvl, d] and pX[lvl] * oS[j, lvl] > fan_x[lvl])
                        or (y_only[lvl, d] and pY[lvl] * oS[j, lvl] > fan_y[lvl])
                        or (pX[lvl] > fan_x[lvl] or pY[lvl] > fan_y[lvl])
                    ):
                        ok = False
                        break
                if (oE[j, lvl + 1] * oS[j, lvl] if min_tile[lvl] else oE[j, lvl]) > emax[lvl]:
                    ok = False
                    break
            if not ok:
                continue
            val = 0.0
            if b_on:
                # cheap part first: compute cycles at the most PEs a completion can use
                used = 1.0
                placed_sp = 1.0
                for lvl in range(L):
                    room[lvl] = 1.0
                    rd[lvl] = 0.0
                    wr[lvl] = 0.0
                    for a in range(3):
                        ne[a, lvl] = 0.0
                        for b in range(3):
                            px[lvl, a, b] = pxo[lvl, a, b] * (oT[j, lvl] if REL[b, d] and not REL[a, d] else 1.0)
                    if fan_size[lvl] > 1.0:
                        sp = pSP[lvl] * oS[j, lvl]
                        room[lvl] = fan_size[lvl] / sp
                        placed_sp *= sp
                        used *= min(fan_size[lvl], sp * here[5, lvl])
                c_cheap = max(c_floor, macs_eff / min(used, placed_sp * tot[5]))
                if (objective == 1 and c_cheap > threshold) or (objective == 2 and e_floor * c_cheap > threshold):
                    pruned[0] += 1
                    continue
                # energy terms; the partial sum only grows, so stop as soon as it alone is too much
                e_scale = c_cheap if objective == 2 else 1.0
                energy = macs * phi * mac_energy
                over = False
                for v in range(3):
                    drel = REL[v, d]
                    s = size[v]
                    for ip in range(n_pairs[v]):
                        p = chain_p[v, ip]
                        c = chain_c[v, ip]
                        if c < L:
                            if drel:
                                ls = max(lst[v, ip], oLast[j, c])
                                mA = PA[v, ip, ls + 1]
                                mB = PB[v, ip, ls + 1]
                                mS = PS[v, ip]
                            else:
                                ls = lst[v, ip]
                                t = oTpre[j, max(ls, 0)]
                                mA = PA[v, ip, ls + 1] * oSab[j, p] * t
                                mB = PB[v, ip, ls + 1] * oSab[j, c] * t
                                mS = PS[v, ip] * oSab[j, p]
                            if v == OUTPUTS:
                                refetch = s * (mA - mS)
                                rd[p] += refetch * fmt_min[p, v] * word_scale[p]
                                wr[p] += s * mA * fmt_min[p, v] * word_scale[p]
                                wr[c] += refetch * word_scale[c]
                                rd[c] += s * mB * word_scale[c]
                                if ls >= 0:
                                    ne[v, ls] += s * (
                                        mA
                                        * (
                                            fmt_min[p, v] * word_scale[p] * (read_e[p] + write_e[p])
                                            + word_scale[c] * write_e[c]
                                        )
                                        + mB * word_scale[c] * read_e[c]
                                    )
                            else:
                                rd[p] += s * mA * fmt_min[p, v] * word_scale[p]
                                wr[c] += s * mB * fmt_min[c, v] * word_scale[c]
                                if ls >= 0:
                                    ne[v, ls] += s * (
                                        mA * fmt_min[p, v] * word_scale[p] * read_e[p]
                                        + mB * fmt_min[c, v] * word_scale[c] * write_e[c]
                                    )
                            continue
                        if v == INPUTS:
                            reuse = np.inf
                            for si in range(3, 5):
                                fan = 1.0
                                for lvl in range(p, L):
                                    if fan_size[lvl] > 1.0:
                                        fan *= min(room[lvl], here[si, lvl])
                                r = min(tot[si], fan) * Qbel[si] * (oSbel[j, p] if sets[si, d] else 1.0)
                                reuse = min(reuse, r)
                            rd[p] += macs / reuse * phi * word_scale[p]
                            continue
                        fan = 1.0
                        for lvl in range(p, L):
                            if fan_size[lvl] > 1.0:
                                fan *= min(room[lvl], here[v, lvl])
                        reuse = min(tot[v], fan) * Qbel[v]
                        mS = Qab[v]
                        tt = Qt[v]
                        if not drel:
                            reuse *= oSbel[j, p]
                            mS *= oSab[j, p]
                            tt *= oTpre[j, L]
                        term = max(macs / reuse, s * mS * tt)
                        if v == OUTPUTS:
                            rd[p] += s * mS * (tt - 1.0) * phi * word_scale[p]
                            wr[p] += term * phi * word_scale[p]
                        else:
                            rd[p] += term * phi * word_scale[p]
                    if objective != 1:
                        energy = macs * phi * mac_energy
                        for lvl in range(L):
                            energy += rd[lvl] * read_e[lvl] + wr[lvl] * write_e[lvl]
                        if energy * e_scale > threshold:
                            over = True
                            break
                if over:
                    pruned[0] += 1
                    continue
                energy = macs * phi * mac_energy
                for lvl in range(L):
                    energy += rd[lvl] * read_e[lvl] + wr[lvl] * write_e[lvl]
                energy = max(energy + _conflicts(ne, px), e_floor)
                if objective == 0:
                    val = energy
                else:
                    cycles = c_cheap
                    used = 1.0
                    placed_sp = 1.0
                    for lvl in range(L):
                        if bandwidth[lvl] > 0.0:
                            cycles = max(cycles, (rd[lvl] + wr[lvl]) / (min(used, placed_sp * tot[5]) * bandwidth[lvl]))
                        if fan_size[lvl] > 1.0:
                            sp = pSP[lvl] * oS[j, lvl]
                            placed_sp *= sp
                            used *= min(fan_size[lvl], sp * here[5, lvl])
                    val = cycles if objective == 1 else energy * cycles
                if val > threshold:
                    pruned[0] += 1
                    continue
            out[n] = part[i]
            out[n, d, :] = opts[j]
            vals[n] = val
            n += 1
    return out[:n], vals[:n]


@numba.njit(cache=CACHE)
def order_variants(
    codes: np.ndarray, start: np.ndarray, count: np.ndarray, orders: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For tilings with per-level class codes (B, L): the loop orders to score, tiling by tiling -- class 0 at
    every level, then each other class of one level at a time (the rest at class 0).  Returns offsets
    (B + 1,) into the variants, the tiling of each variant and its orders (V, L, D)."""
    B, L = codes.shape
    D = orders.shape[1]
    offsets = np.zeros(B + 1, dtype=np.int64)
    for b in range(B):
        n = 1
        for lvl in range(L):
            n += count[codes[b, lvl]] - 1
        offsets[b + 1] = offsets[b] + n
    V = offsets[B]
    var_tiling = np.empty(V, dtype=np.int64)
    var_order = np.empty((V, L, D), dtype=np.int64)
    for b in range(B):
        o = offsets[b]
        for vi in range(offsets[b + 1] - o):
            var_tiling[o + vi] = b
            for lvl in range(L):
                row = orders[start[codes[b, lvl]]]
                for x in range(D):
                    var_order[o + vi, lvl, x] = row[x]
        vi = 1
        for lvl in range(L):
            for kc in range(1, count[codes[b, lvl]]):
                row = orders[start[codes[b, lvl]] + kc]
                for x in range(D):
                    var_order[o + vi, lvl, x] = row[x]
                vi += 1
    return offsets, var_tiling, var_order


@numba.njit(cache=CACHE)
def best_combinations(
    offsets: np.ndarray,
    codes: np.ndarray,
    count: np.ndarray,
    energy: np.ndarray,
    level_cycles: np.ndarray,
    compute_cycles: np.ndarray,
    objective: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The best class per level (B, L) and its objective (B,), from the scores of `order_variants`.

    Each access term is decided by one level's order, so energy and every level's traffic are the base's
    plus, per level, the change its class makes alone; every combination is enumerated (energy alone
    would separate, latency and EDP take a max over levels)."""
    B, L = codes.shape
    pick = np.zeros((B, L), dtype=np.int64)
    best = np.full(B, np.inf)
    n_cls = np.empty(L, dtype=np.int64)
    first = np.empty(L, dtype=np.int64)
    combo = np.zeros(L, dtype=np.int64)
    lc = np.empty(L)
    for b in range(B):
        o = offsets[b]
        at = o + 1
        total = 1
        for lvl in range(L):
            n_cls[lvl] = count[codes[b, lvl]]
            first[lvl] = at  # variant of class kc >= 1 of this level: first[lvl] + kc - 1
            at += n_cls[lvl] - 1
            total *= n_cls[lvl]
        e0 = energy[o]
        for lvl in range(L):
            combo[lvl] = 0
        for _ in range(total):
            e = e0
            for lv in range(L):
                lc[lv] = level_cycles[lv, o]
            for lvl in range(L):
                if combo[lvl] > 0:
                    vi = first[lvl] + combo[lvl] - 1
                    e += energy[vi] - e0
                    for lv in range(L):
                        lc[lv] += level_cycles[lv, vi] - level_cycles[lv, o]
            cyc = compute_cycles[o]
            for lv in range(L):
                cyc = max(cyc, lc[lv])
            val = e if objective == 0 else (cyc if objective == 1 else e * cyc)
            if val < best[b]:
                best[b] = val
                for lvl in range(L):
                    pick[b, lvl] = combo[lvl]
            for lvl in range(L):  # next combination (mixed radix)
                combo[lvl] += 1
                if combo[lvl] < n_cls[lvl]:
                    break
                combo[lvl] = 0
    return pick, best


def bounds(model: CostModel, bs: BoundStatic, part: np.ndarray, k: int) -> np.ndarray:
    """The lower bound of every row of part (B, D, 2L) whose first k enumerated dims are placed."""
    return _bounds(
        np.ascontiguousarray(part, dtype=np.int64),
        k,
        bs.objective,
        bs.dims,
        bs.placed,
        bs.allowed,
        bs.fan_size,
        bs.chain_p,
        bs.chain_c,
        bs.n_pairs,
        bs.word_scale,
        bs.read_e,
        bs.write_e,
        bs.bandwidth,
        bs.fmt_min,
        bs.size,
        bs.scalars,
    )


def expand_fitting(
    model: CostModel,
    fan_size: np.ndarray,
    part: np.ndarray,
    opts: np.ndarray,
    d: int,
    bound: BoundStatic | None = None,
    k: int = 0,
    threshold: float = np.inf,
    pruned: np.ndarray | None = None,
    min_tile: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of part (B, D, 2L) x options of dim d (O, 2L) that fit fanouts (fan_size per level) and capacities,
    and their bounds (zeros without `bound`).  `min_tile` (L,) bool: levels whose capacity test takes the
    smallest tile a per-tensor placement can give (default: none, every tile is its level's whole tile).

    With a BoundStatic `bound`, rows whose first k enumerated dims are placed (d among them) and whose
    bound exceeds `threshold` are dropped too; `pruned[0]` counts them.
    """
    ks = model.kernel_static
    if pruned is None:
        pruned = np.zeros(1, dtype=np.int64)
    on = bound is not None
    bs: Any = bound if on else _OFF
    divs = np.array(divisors(model.dims[d]), dtype=np.float64)
    return _expand_fitting(
        np.ascontiguousarray(part, dtype=np.int64),
        np.ascontiguousarray(opts, dtype=np.int64),
        d,
        divs,
        fan_size,
        ks.fan_x,
        ks.fan_y,
        ks.allow_x,
        ks.allow_y,
        ks.geom,
        ks.keeps,
        ks.fmt,
        ks.fmt_const,
        ks.density,
        ks.word_scale,
        ks.cap_kind,
        ks.cap_val,
        float(model.data_bits),
        float(ks.scalars[6]),
        on,
        k,
        bs.objective,
        bs.dims,
        bs.placed,
        bs.allowed,
        bs.chain_p,
        bs.chain_c,
        bs.n_pairs,
        bs.read_e,
        bs.write_e,
        bs.bandwidth,
        bs.fmt_min,
        bs.size,
        bs.scalars,
        float(threshold),
        pruned,
        np.zeros(model.L, dtype=np.bool_) if min_tile is None else min_tile,
    )


_OFF = BoundStatic(
    objective=0,
    dims=np.ones(8),
    placed=np.zeros((9, 8), dtype=np.bool_),
    allowed=np.zeros((1, 8), dtype=np.bool_),
    fan_size=np.ones(1),
    chain_p=np.zeros((3, 1), dtype=np.int64),
    chain_c=np.zeros((3, 1), dtype=np.int64),
    n_pairs=np.zeros(3, dtype=np.int64),
    word_scale=np.ones(1),
    read_e=np.zeros(1),
    write_e=np.zeros(1),
    bandwidth=np.zeros(1),
    fmt_min=np.ones((1, 3)),
    size=np.ones(3),
    scalars=np.zeros(6),
)
"""Placeholder arrays (right types) for calls without a bound."""
