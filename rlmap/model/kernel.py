"""Compiled (numba) form of the cost model's formulas, for speed: one loop over mappings.

It mirrors `CostModel.evaluate_reference` (the readable reference) statement by statement; the tests
check that both give the same numbers on thousands of mappings, under both modelling semantics.
`CostModel` packs the static layer/architecture data into arrays once (`KernelStatic`), the semantics as
rule flags (rlmap/model/semantics.py), and calls `evaluate_kernel`.  `window_union` is the one
implementation of the multicast union along a window axis; the reference calls it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rlmap.model.jit import CACHE
from rlmap.model.semantics import HALO_REUSE, REDUCED_PSUM_FILL, WINDOW_MULTICAST
from rlmap.spec.problem import INPUTS, OUTPUTS, RELEVANCE_MATRIX, WEIGHTS, C, G, K, N, P, Q, R, S

FMT_CODES = {"uncompressed": 0, "bitmask": 1, "rle": 2, "coordinate": 3}
REL = np.array(RELEVANCE_MATRIX, dtype=np.bool_)


@dataclass(frozen=True)
class KernelStatic:
    """Everything about a (layer, architecture) pair that the kernel needs, as flat arrays."""

    dims: np.ndarray  # (D,) float
    geom: np.ndarray  # (4,) float: sh, sw, dh, dw
    keeps: np.ndarray  # (L, 3) bool
    may_bypass: np.ndarray  # (L, 3) bool: a mapping may bypass the tensor at the level
    chain_p: np.ndarray  # (3, L) int: parent of each pair, per tensor
    chain_c: np.ndarray  # (3, L) int: child (L = the MACs)
    n_pairs: np.ndarray  # (3,) int
    word_scale: np.ndarray  # (L,)
    read_e: np.ndarray  # (L,)
    write_e: np.ndarray  # (L,)
    bandwidth: np.ndarray  # (L,), <= 0 for unbounded
    fmt: np.ndarray  # (L, 3) int codes
    fmt_const: np.ndarray  # (L, 3) float, NaN where the factor depends on the tile (coordinate)
    density: np.ndarray  # (3,)
    cap_kind: np.ndarray  # (L,) 0 unbounded, 1 shared, 2 partitioned
    cap_val: np.ndarray  # (L, 3) words (shared: column 0)
    fan_x: np.ndarray  # (L,)
    fan_y: np.ndarray
    allow_x: np.ndarray  # (L, D) bool
    allow_y: np.ndarray
    fans_between: np.ndarray  # (L+1, L+1) bool
    scalars: np.ndarray  # phi, skip, mac_energy, macs, num_pes, data_bits, rle_bits
    rules: np.ndarray  # (3,) bool: the semantics' rule flags (rlmap.model.semantics.Rules.as_array)
    max_span: int  # longest input axis (rows or columns of the padded input): scratch for window_union


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _footprint(v: int, e: np.ndarray, sh: float, sw: float, dh: float, dw: float) -> float:
    if v == INPUTS:
        h = (e[P] - 1.0) * sh + (e[R] - 1.0) * dh + 1.0
        w = (e[Q] - 1.0) * sw + (e[S] - 1.0) * dw + 1.0
        return e[N] * e[G] * e[C] * h * w
    if v == WEIGHTS:
        return e[G] * e[K] * e[C] * e[R] * e[S]
    return e[N] * e[G] * e[K] * e[P] * e[Q]


@numba.njit(cache=CACHE, error_model="numpy")
def window_union(ext: float, counts: np.ndarray, steps: np.ndarray, n: int, mark: np.ndarray) -> float:
    """Rows (or columns) covered by the union of windows `ext` long that start at every sum
    k_0*steps[0] + ... + k_{n-1}*steps[n-1], 0 <= k_t < counts[t]: what children spread along one input axis
    by n spatial unrolls hold together.  Exact (a gap between windows is not counted); `mark` is scratch
    at least as long as the span of the starts."""
    if n == 0:
        return ext
    if n == 1:
        return ext + (counts[0] - 1.0) * min(ext, steps[0])
    span = 1
    total_starts = 1
    for t in range(n):
        span += int((counts[t] - 1.0) * steps[t])
        total_starts *= int(counts[t])
    for i in range(span):
        mark[i] = False
    for k in range(total_starts):
        r = k
        s = 0
        for t in range(n):
            c = int(counts[t])
            s += (r % c) * int(steps[t])
            r //= c
        mark[s] = True
    e = int(ext)
    covered = 0
    end = 0  # first row past the windows seen so far
    for i in range(span):
        if mark[i]:
            covered += e if i >= end else i + e - end
            end = i + e
    return float(covered)


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _axis_terms(
    p: int,
    c: int,
    da: int,
    db: int,
    ca: float,
    cb: float,
    SP: np.ndarray,
    E: np.ndarray,
    counts: np.ndarray,
    steps: np.ndarray,
) -> int:
    """The spatial unrolls of window dims da (P or Q, coefficient ca = stride) and db (R or S, cb = dilation)
    between levels p and c, as (count, step in input rows) terms of window_union; returns how many."""
    n = 0
    for i in range(p, c):
        if SP[i, da] > 1.0:
            counts[n] = SP[i, da]
            steps[n] = ca * E[i + 1, da]
            n += 1
        if SP[i, db] > 1.0:
            counts[n] = SP[i, db]
            steps[n] = cb * E[i + 1, db]
            n += 1
    return n


@numba.njit(cache=CACHE, error_model="numpy")
def _fmt_factor(code: int, density: float, tile: float, data_bits: float, rle_bits: float) -> float:
    if code == 0 or density >= 1.0:
        return 1.0
    if code == 1:
        return density + 1.0 / data_bits
    if code == 2:
        return density * (1.0 + rle_bits / data_bits)
    bits = np.ceil(np.log2(max(tile, 2.0)))
    return density * (1.0 + bits / data_bits)


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _level_tiles(
    lvl: int,
    E: np.ndarray,
    ec: np.ndarray,
    sh: float,
    sw: float,
    dh: float,
    dw: float,
    keeps: np.ndarray,
    fmt: np.ndarray,
    fmt_const: np.ndarray,
    density: np.ndarray,
    word_scale: np.ndarray,
    data_bits: float,
    rle_bits: float,
    fps: np.ndarray,
    fmt_f: np.ndarray,
    words: np.ndarray,
) -> None:
    """Tiles of the tensors kept at level lvl (extents E[lvl]): footprints into fps[lvl], stored words per
    element into fmt_f[lvl], stored words into words (0 for tensors the level does not keep)."""
    for d in range(E.shape[1]):
        ec[d] = E[lvl, d]
    for v in range(3):
        words[v] = 0.0
        if keeps[lvl, v]:
            tile = _footprint(v, ec, sh, sw, dh, dw)
            f = fmt_const[lvl, v]
            if np.isnan(f):
                f = _fmt_factor(fmt[lvl, v], density[v], tile, data_bits, rle_bits)
            fps[lvl, v] = tile
            fmt_f[lvl, v] = f
            words[v] = tile * word_scale[lvl] * f


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _placed_tiles(
    lvl: int,
    Ev: np.ndarray,
    sh: float,
    sw: float,
    dh: float,
    dw: float,
    kp: np.ndarray,
    fmt: np.ndarray,
    fmt_const: np.ndarray,
    density: np.ndarray,
    word_scale: np.ndarray,
    data_bits: float,
    rle_bits: float,
    fps: np.ndarray,
    fmt_f: np.ndarray,
    words: np.ndarray,
) -> None:
    """`_level_tiles` with a tile of its own per tensor (extents Ev[lvl, v]) and the mapping's keeps kp."""
    for v in range(3):
        words[v] = 0.0
        if kp[lvl, v]:
            tile = _footprint(v, Ev[lvl, v], sh, sw, dh, dw)
            f = fmt_const[lvl, v]
            if np.isnan(f):
                f = _fmt_factor(fmt[lvl, v], density[v], tile, data_bits, rle_bits)
            fps[lvl, v] = tile
            fmt_f[lvl, v] = f
            words[v] = tile * word_scale[lvl] * f


@numba.njit(cache=CACHE, inline="always", error_model="numpy")
def _fits_capacity(lvl: int, words: np.ndarray, keeps: np.ndarray, cap_kind: np.ndarray, cap_val: np.ndarray) -> bool:
    """Whether level lvl's tiles fit its capacity (shared, or per tensor), with the model's 1e-9 tolerance."""
    if cap_kind[lvl] == 1:
        return words[0] + words[1] + words[2] <= cap_val[lvl, 0] + 1e-9
    if cap_kind[lvl] == 2:
        for v in range(3):
            if keeps[lvl, v] and words[v] > cap_val[lvl, v] + 1e-9:
                return False
    return True


@numba.njit(cache=CACHE, error_model="numpy")
def evaluate_kernel(
    temporal,
    spatial_x,
    spatial_y,
    order,
    bypass,
    place,  # noqa: C901, ANN001, ANN201
    dims,
    geom,
    keeps,
    may_bypass,
    word_scale,
    read_e,
    write_e,
    bandwidth,
    fmt,
    fmt_const,
    density,
    cap_kind,
    cap_val,
    fan_x,
    fan_y,
    allow_x,
    allow_y,
    fans_between,
    scalars,
    rules,
    max_span,
    rel,
    relax,
    detail,
    energy,
    cycles,
    util,
    comp_cycles,
    level_cycles,
    reason,
    reads,
    writes,
    tiles,
):
    """Score B mappings; results go into the output arrays (reason 0 = valid, 1 factors, 2 fanout,
    3 capacity, 4 order, 5 bypass/placement).  With `detail` the per-level breakdown (reads, writes, tiles)
    is written too.  `rules` are the semantics' flags (rlmap.model.semantics).  `bypass` and `place`
    (B, L, 3) are the mappings' per-tensor bypass flags and tile positions (rlmap.spec.mapping).

    With `relax` the capacity is checked with the given placements but the traffic is counted with every
    tile at the top of its level (placement 0) and every fetch count at its minimum over all loop orders,
    except that a tile given a placement > 0 whose whole tile alone overflows its level is fetched once
    per iteration of every loop above the level (it must sit below one of its level's loops that index it)."""
    B, L, D = temporal.shape
    sh, sw, dh, dw = geom[0], geom[1], geom[2], geom[3]
    phi, skip, mac_energy, macs, num_pes, data_bits, rle_bits = (
        scalars[0],
        scalars[1],
        scalars[2],
        scalars[3],
        scalars[4],
        scalars[5],
        scalars[6],
    )
    halo_reuse = rules[HALO_REUSE]
    window_multicast = rules[WINDOW_MULTICAST]
    reduced_psum_fill = rules[REDUCED_PSUM_FILL]
    t_counts = np.empty(2 * L)  # window_union terms of one axis
    t_steps = np.empty(2 * L)
    mark = np.zeros(max_span + 1, dtype=np.bool_)
    T = np.empty((L, D))
    SP = np.empty((L, D))
    E = np.ones((L + 1, D))
    used = np.ones(L + 1)
    fps = np.ones((L + 1, 3))
    fmt_f = np.ones((L, 3))
    Ev = np.ones((L + 1, 3, D))  # per tensor tile extents (placement applied); Ev[L] = one MAC
    kp = np.zeros((L, 3), dtype=np.bool_)  # the mapping's keeps
    must = np.zeros((L, 3), dtype=np.bool_)  # relax: a placeable tile whose whole tile alone overflows the level
    cumall = np.ones(L + 1)  # relax: product of every temporal factor above each level
    kept = np.zeros(L + 1, dtype=np.int64)  # one tensor's keeping levels, then L
    ec = np.empty(D)
    lvl_words = np.zeros(3)
    spc = np.empty(D)
    seen = np.zeros(D, dtype=np.bool_)
    SPsuf = np.ones((L + 1, D))  # SPsuf[j, d] = product of SP[i, d] for i >= j
    rd = np.zeros((L, 3))  # accesses of the mapping being scored
    wr = np.zeros((L, 3))
    # per tensor, per boundary c: nfetch, last loop level / dim / factor, distinct
    # indexed by nest position i = lvl * D + k: above the k-th loop of level lvl's order
    NP = L * D + 1
    st_nf = np.ones((3, NP))
    st_lvl = np.full((3, NP), -1)
    st_dim = np.zeros((3, NP), dtype=np.int64)
    st_f = np.ones((3, NP))
    st_dist = np.ones((3, NP))
    for b in range(B):
        bad_order = False
        bad_fan = False
        bad_fac = False
        for lvl in range(L):
            ux = 1.0
            uy = 1.0
            for d in range(D):
                x = spatial_x[b, lvl, d]
                y = spatial_y[b, lvl, d]
                t = temporal[b, lvl, d]
                if x < 1 or y < 1 or t < 1:
                    bad_fac = True
                if (x > 1 and not allow_x[lvl, d]) or (y > 1 and not allow_y[lvl, d]):
                    bad_fan = True
                ux *= x
                uy *= y
                T[lvl, d] = t
                SP[lvl, d] = x * y
            if ux > fan_x[lvl] or uy > fan_y[lvl]:
                bad_fan = True
            used[lvl + 1] = used[lvl] * ux * uy
            for d in range(D):
                seen[d] = False
            for k in range(D):
                o = order[b, lvl, k]
                if o < 0 or o >= D or seen[o]:
                    bad_order = True
                else:
                    seen[o] = True
        bad_place = False
        for lvl in range(L):
            for v in range(3):
                by = bypass[b, lvl, v]
                k = place[b, lvl, v]
                if by < 0 or by > 1 or (by == 1 and not may_bypass[lvl, v]):
                    bad_place = True
                if k < 0 or k > D or (k > 0 and (lvl == 0 or by == 1 or not keeps[lvl, v])):
                    bad_place = True
                kp[lvl, v] = keeps[lvl, v] and by == 0
        code = 4 if bad_order else (2 if bad_fan else (1 if bad_fac else (5 if bad_place else 0)))
        if code == 0:
            for lvl in range(L - 1, -1, -1):
                for d in range(D):
                    E[lvl, d] = E[lvl + 1, d] * T[lvl, d] * SP[lvl, d]
            for d in range(D):
                if E[0, d] != dims[d]:
                    code = 1
        if code == 0:
            for lvl in range(L):
                for v in range(3):
                    for d in range(D):
                        Ev[lvl, v, d] = E[lvl, d]
                    for k in range(place[b, lvl, v]):
                        d = order[b, lvl, k]
                        Ev[lvl, v, d] /= T[lvl, d]
                _placed_tiles(
                    lvl,
                    Ev,
                    sh,
                    sw,
                    dh,
                    dw,
                    kp,
                    fmt,
                    fmt_const,
                    density,
                    word_scale,
                    data_bits,
                    rle_bits,
                    fps,
                    fmt_f,
                    lvl_words,
                )
                if detail:
                    for v in range(3):
                        if kp[lvl, v]:
                            tiles[b, lvl, v] = lvl_words[v]
                if not _fits_capacity(lvl, lvl_words, kp, cap_kind, cap_val):
                    code = 3
            if code == 0 and relax:  # traffic with every tile at the top of its level
                for lvl in range(L):
                    for v in range(3):
                        for d in range(D):
                            Ev[lvl, v, d] = E[lvl, d]
                    _placed_tiles(
                        lvl,
                        Ev,
                        sh,
                        sw,
                        dh,
                        dw,
                        kp,
                        fmt,
                        fmt_const,
                        density,
                        word_scale,
                        data_bits,
                        rle_bits,
                        fps,
                        fmt_f,
                        lvl_words,
                    )
                    for v in range(3):  # its tile must sit below a loop of the level that indexes it
                        lim = cap_val[lvl, 0] if cap_kind[lvl] == 1 else cap_val[lvl, v]
                        must[lvl, v] = place[b, lvl, v] > 0 and cap_kind[lvl] > 0 and lvl_words[v] > lim + 1e-9
        reason[b] = code
        if code != 0:
            energy[b] = np.inf
            cycles[b] = np.inf
            util[b] = 0.0
            continue
        for lvl in range(L - 1, -1, -1):
            for d in range(D):
                SPsuf[lvl, d] = SPsuf[lvl + 1, d] * SP[lvl, d]
        # the temporal nest outermost first (factor-1 loops do nothing)
        total_iters = 1.0
        for lvl in range(L):
            for d in range(D):
                total_iters *= T[lvl, d]
        if relax:
            for v in range(3):
                cum = 1.0
                nf = 1.0
                llvl = -1
                dist = 1.0
                st_nf[v, 0] = 1.0
                st_lvl[v, 0] = -1
                st_dist[v, 0] = 1.0
                for lvl in range(L):
                    i = (lvl + 1) * D
                    rp = 1.0
                    for d in range(D):
                        if rel[v, d]:
                            rp *= T[lvl, d]
                    if rp > 1.0:  # every irrelevant loop of the deciding level innermost
                        nf = cum * rp
                        llvl = lvl
                        dist *= rp
                    for d in range(D):
                        cum *= T[lvl, d]
                    cumall[lvl + 1] = cum
                    st_nf[v, i] = nf
                    st_lvl[v, i] = llvl
                    st_dist[v, i] = dist
        else:
            # one branch-free pass for the three tensors (orders and factors are random: branches mispredict)
            cum = 1.0
            nf0 = nf1 = nf2 = 1.0
            ll0 = ll1 = ll2 = -1
            ld0 = 0  # window dim and factor of the innermost relevant loop: needed for inputs only
            lf0 = 1.0
            di0 = di1 = di2 = 1.0
            st_nf[0, 0] = st_nf[1, 0] = st_nf[2, 0] = 1.0
            st_lvl[0, 0] = st_lvl[1, 0] = st_lvl[2, 0] = -1
            st_dist[0, 0] = st_dist[1, 0] = st_dist[2, 0] = 1.0
            for lvl in range(L):
                for k in range(D):
                    d = order[b, lvl, k]
                    f = T[lvl, d]
                    cum *= f
                    big = f > 1.0
                    h0 = rel[0, d] & big
                    h1 = rel[1, d] & big
                    h2 = rel[2, d] & big
                    ll0 = lvl if h0 else ll0
                    ld0 = d if h0 else ld0
                    lf0 = f if h0 else lf0
                    di0 *= f if h0 else 1.0
                    nf0 = cum if h0 else nf0
                    ll1 = lvl if h1 else ll1
                    di1 *= f if h1 else 1.0
                    nf1 = cum if h1 else nf1
                    ll2 = lvl if h2 else ll2
                    di2 *= f if h2 else 1.0
                    nf2 = cum if h2 else nf2
                    i = lvl * D + k + 1
                    st_nf[0, i], st_nf[1, i], st_nf[2, i] = nf0, nf1, nf2
                    st_lvl[0, i], st_lvl[1, i], st_lvl[2, i] = ll0, ll1, ll2
                    st_dim[0, i] = ld0
                    st_f[0, i] = lf0
                    st_dist[0, i], st_dist[1, i], st_dist[2, i] = di0, di1, di2
        for lvl in range(L):
            for v in range(3):
                rd[lvl, v] = 0.0
                wr[lvl, v] = 0.0
        for v in range(3):
            n_kept = 0
            for lvl in range(L):
                if kp[lvl, v]:
                    kept[n_kept] = lvl
                    n_kept += 1
            kept[n_kept] = L
            for ip in range(n_kept):
                p = kept[ip]
                c = kept[ip + 1]
                if c == L:
                    nfetch = total_iters
                    has = False
                    distinct = st_dist[v, L * D]
                    for d in range(D):
                        ec[d] = 1.0
                else:
                    i = c * D + (0 if relax else place[b, c, v])
                    nfetch = st_nf[v, i]
                    has = st_lvl[v, i] >= 0
                    distinct = st_dist[v, i]
                    if relax and must[c, v]:
                        # a loop of level c that indexes v sits above v's tile: every loop above level c refetches
                        # it, and the smaller tiles add up to at least the whole one (`OptimalMapper.placeable`)
                        nfetch = cumall[c]
                        has = False
                    for d in range(D):
                        ec[d] = Ev[c, v, d]
                F = fps[c, v]
                U = F
                split_h = False
                split_w = False
                if fans_between[p, c]:
                    if v != INPUTS:
                        for d in range(D):
                            spc[d] = ec[d] * (SPsuf[p, d] / SPsuf[c, d])
                        U = _footprint(v, spc, sh, sw, dh, dw)
                    elif window_multicast:  # the union of the children's windows, axis by axis
                        nh = _axis_terms(p, c, P, R, sh, dh, SP, E, t_counts, t_steps)
                        uh = window_union((ec[P] - 1.0) * sh + (ec[R] - 1.0) * dh + 1.0, t_counts, t_steps, nh, mark)
                        nw = _axis_terms(p, c, Q, S, sw, dw, SP, E, t_counts, t_steps)
                        uw = window_union((ec[Q] - 1.0) * sw + (ec[S] - 1.0) * dw + 1.0, t_counts, t_steps, nw, mark)
                        split_h = nh > 0
                        split_w = nw > 0
                        U = (
                            ec[N]
                            * (SPsuf[p, N] / SPsuf[c, N])
                            * ec[G]
                            * (SPsuf[p, G] / SPsuf[c, G])
                            * ec[C]
                            * (SPsuf[p, C] / SPsuf[c, C])
                            * uh
                            * uw
                        )
                    else:  # one window per child position: multicast over irrelevant dims only
                        for d in range(D):
                            if rel[v, d]:
                                U *= SPsuf[p, d] / SPsuf[c, d]
                if c == L:
                    scale_p = phi * word_scale[p]
                else:
                    scale_p = fmt_f[p, v] * word_scale[p]
                if v == OUTPUTS:
                    refetch = used[p] * (nfetch - distinct) * U
                    rd[p, v] += refetch * scale_p
                    wr[p, v] += used[p] * nfetch * U * scale_p
                    if c < L:
                        if reduced_psum_fill:
                            wr[c, v] += refetch * word_scale[c]
                        else:
                            wr[c, v] += used[c] * (nfetch - distinct) * F * word_scale[c]
                        rd[c, v] += used[c] * nfetch * F * word_scale[c]
                    continue
                hu = 1.0
                hc = 1.0
                if v == INPUTS and has and halo_reuse:
                    j = st_lvl[v, i]
                    for cand in (P, Q, R, S):
                        if relax:
                            d = cand
                            f = T[j, d]
                        else:
                            d = st_dim[v, i]
                            f = st_f[v, i]
                            if d != cand:
                                continue
                        if f <= 1.0:
                            continue
                        coef = sh if d == P else (sw if d == Q else (dh if d == R else dw))
                        step = ec[d] * coef * (SPsuf[j, d] / SPsuf[c, d])
                        if d == P or d == R:
                            ext_c = (ec[P] - 1.0) * sh + (ec[R] - 1.0) * dh + 1.0
                            split = split_h
                        else:
                            ext_c = (ec[Q] - 1.0) * sw + (ec[S] - 1.0) * dw + 1.0
                            split = split_w
                        h = (1.0 + (f - 1.0) * min(ext_c, step) / ext_c) / f
                        hc = min(hc, h)
                        if not split:  # the union's window along this axis is the children's own
                            hu = min(hu, h)
                rd[p, v] += used[p] * nfetch * U * hu * scale_p
                if c < L:
                    wr[c, v] += used[c] * nfetch * F * hc * fmt_f[c, v] * word_scale[c]
        e_tot = 0.0
        cc = total_iters * (phi if skip > 0.0 else 1.0)
        cyc = cc
        for lvl in range(L):
            r = rd[lvl, 0] + rd[lvl, 1] + rd[lvl, 2]
            w = wr[lvl, 0] + wr[lvl, 1] + wr[lvl, 2]
            if detail:
                for v in range(3):
                    reads[b, lvl, v] = rd[lvl, v]
                    writes[b, lvl, v] = wr[lvl, v]
            e_tot += r * read_e[lvl] + w * write_e[lvl]
            lc = 0.0
            if bandwidth[lvl] > 0.0:
                lc = (r + w) / (used[lvl] * bandwidth[lvl])
            level_cycles[b, lvl] = lc
            if lc > cyc:
                cyc = lc
        energy[b] = e_tot + macs * phi * mac_energy
        cycles[b] = cyc
        comp_cycles[b] = cc
        util[b] = used[L] / num_pes
