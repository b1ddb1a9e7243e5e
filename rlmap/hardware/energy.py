"""Per-access energies (pJ) and areas (um^2) of storage and MACs for any capacity and word width.

The laws, fitted to the table points of rlmap.hardware.tech (docs/hardware.md has the derivation):

* SRAM, per 64-bit access, capacity B bytes: a power law through the published points,
  E(B) = 10 pJ * (B / 8 KB)^0.5 below 32 KB (the slope of Horowitz' 8 KB -> 32 KB points; it passes through
  both), E(B) = 20 pJ * (B / 32 KB)^a above, a = ln(100/20) / ln(1 MB / 32 KB) = 0.464 (through 32 KB and
  1 MB), and E(1 MB) for anything larger (banked).  A larger buffer therefore always costs more per access.
* A word of w bits costs E(B) * w / 64 (energy proportional to the bits moved, the CACTI/Accelergy
  convention for a fixed array); a depth-1 register costs 0.009 pJ per byte; the SRAM law never goes below
  that register cost.
* DRAM: 64 pJ per byte.  MAC: 0.315 pJ at 8 bits, scaled with bit width as Horowitz' integer multiplier and
  adder (multiplier ~ bits^1.98, adder ~ bits^0.87, from the 8- and 32-bit points).

These reproduce the presets: 64 KB 8-bit -> 3.45 pJ (simba global buffer), 32 KB -> 2.5 pJ, 512 B -> 0.3125 pJ
(edge SL1), 1 KB -> 0.442 (cloud SL1), 108,000 B -> 4.35 (edge SL2), >= 1 MB -> 12.5 (cloud SL2, tpu_like).
"""

from __future__ import annotations

import math

from rlmap.hardware import tech

_P8K, _P32K, _P1M = tech.SRAM_POINTS_PJ
SMALL_EXPONENT = math.log(_P32K[1] / _P8K[1]) / math.log(_P32K[0] / _P8K[0])
"""Capacity exponent below 32 KB (0.5)."""
LARGE_EXPONENT = math.log(_P1M[1] / _P32K[1]) / math.log(_P1M[0] / _P32K[0])
"""Capacity exponent from 32 KB to 1 MB (0.464)."""


def _check(capacity_words: float, word_bits: int) -> None:
    if not capacity_words > 0:
        raise ValueError(f"capacity must be positive, got {capacity_words}")
    if word_bits <= 0:
        raise ValueError(f"word_bits must be positive, got {word_bits}")


def sram_pj_per_64bit(capacity_bytes: float) -> float:
    """Energy of one 64-bit access to an SRAM of `capacity_bytes` (Horowitz points, power-law fit)."""
    if not capacity_bytes > 0:
        raise ValueError(f"capacity must be positive, got {capacity_bytes}")
    b = min(float(capacity_bytes), float(tech.SRAM_BANK_BYTES))
    if b < _P32K[0]:
        return _P8K[1] * (b / _P8K[0]) ** SMALL_EXPONENT
    return _P32K[1] * (b / _P32K[0]) ** LARGE_EXPONENT


def sram_access_energy(capacity_words: float, word_bits: int) -> float:
    """pJ per access of one `word_bits`-bit word to a buffer of `capacity_words` such words."""
    _check(capacity_words, word_bits)
    per_bit = sram_pj_per_64bit(capacity_words * word_bits / 8) / tech.SRAM_ACCESS_BITS
    return max(per_bit, tech.REGISTER_PJ_PER_BYTE / 8) * word_bits


def register_access_energy(word_bits: int) -> float:
    """pJ per access of a depth-1 register holding one `word_bits`-bit word."""
    _check(1, word_bits)
    return tech.REGISTER_PJ_PER_BYTE * word_bits / 8


def dram_access_energy(word_bits: int) -> float:
    """pJ per `word_bits`-bit word read from or written to DRAM."""
    _check(1, word_bits)
    return tech.DRAM_PJ_PER_BYTE * word_bits / 8


def storage_access_energy(capacity_words: float | None, word_bits: int) -> float:
    """The energy a storage level of this size costs per word: DRAM when unbounded (None), a register at
    one word, SRAM otherwise."""
    if capacity_words is None:
        return dram_access_energy(word_bits)
    if capacity_words <= 1:
        return register_access_energy(word_bits)
    return sram_access_energy(capacity_words, word_bits)


def _fit(points: dict[int, float], bits: int) -> float:
    (b0, v0), (b1, v1) = sorted(points.items())
    return v0 * (bits / b0) ** (math.log(v1 / v0) / math.log(b1 / b0))


def mac_energy(bits: int) -> float:
    """pJ per MAC of `bits`-bit operands: Accelergy's 8-bit MAC, scaled as Horowitz' multiplier + adder."""
    _check(1, bits)
    scale = (_fit(tech.INT_MULT_PJ, bits) + _fit(tech.INT_ADD_PJ, bits)) / (tech.INT_MULT_PJ[8] + tech.INT_ADD_PJ[8])
    return tech.MAC_PJ_8BIT * scale


def mac_area(bits: int) -> float:
    """um^2 of one `bits`-bit integer MAC (multiplier + adder, Horowitz' 45 nm areas, power-law in bits)."""
    _check(1, bits)
    return _fit(tech.INT_MULT_AREA_UM2, bits) + _fit(tech.INT_ADD_AREA_UM2, bits)


def sram_area(capacity_words: float, word_bits: int) -> float:
    """um^2 of an SRAM macro: 6T cells (0.346 um^2 at 45 nm) over a 0.7 array efficiency."""
    _check(capacity_words, word_bits)
    return capacity_words * word_bits * tech.SRAM_CELL_UM2 / tech.SRAM_ARRAY_EFFICIENCY
