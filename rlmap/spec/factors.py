"""Integer factorisations of loop bounds: the arithmetic every tiling is built from."""

from __future__ import annotations

import math


def prime_factors(n: int) -> list[tuple[int, int]]:
    """[(prime, multiplicity), ...] in increasing prime order."""
    out = []
    p = 2
    while p * p <= n:
        if n % p == 0:
            a = 0
            while n % p == 0:
                n //= p
                a += 1
            out.append((p, a))
        p += 1
    if n > 1:
        out.append((n, 1))
    return out


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def ordered_factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    """All k-tuples of positive ints whose product is n (order matters)."""
    if k == 1:
        return [(n,)]
    out = []
    for d in divisors(n):
        for rest in ordered_factorizations(n // d, k - 1):
            out.append((d,) + rest)
    return out
