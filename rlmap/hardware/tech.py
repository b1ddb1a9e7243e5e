"""One technology node's published energy (and area) points, 45 nm, with where each number comes from.

This module holds *data only*: the table points as published.  `rlmap.hardware.energy` turns them into
per-access energies for any capacity and word width (the scaling laws are documented there and in
docs/hardware.md).  The same numbers underlie the absolute-energy presets in envs/arch (simba, edge,
cloud, tpu_like), so a generated architecture's energies are comparable with theirs.

Sources
-------
* [H14] M. Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V:
  integer add 8b 0.03 pJ / 32b 0.1 pJ, integer multiply 8b 0.2 pJ / 32b 3.1 pJ; SRAM read of a 64-bit word
  from 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; DRAM 1.3-2.6 nJ per 64-bit word.  Area of the arithmetic
  units (um^2): add 8b 36 / 32b 137, multiply 8b 282 / 32b 3495 (the same table).
* [ACC] Accelergy / Timeloop-Accelergy exercises, 45 nm tables (simba_like reference ERT): 8-bit intmac
  0.315 pJ; register (depth 1) 0.009 pJ per 8-bit access; LPDDR4 512 pJ per 64-bit access.
* [M07] K. Mistry et al., "A 45nm Logic Technology ...", IEDM 2007: 6T SRAM cell 0.346 um^2.
* [NG45] NanGate FreePDK45 Open Cell Library (45 nm), DFF_X1 flip-flop: 4.522 um^2 per bit; small register
  files are built from such cells (Accelergy's `regfile` class), not SRAM macros.
* [TLE] Timeloop-Accelergy exercises, eyeriss_like: the 12- and 16-entry ifmap/psum scratchpads are `regfile`s,
  the 192-entry weight scratchpad an SRAM -- rlmap draws the register-file/SRAM line at 64 words.
* [CACTI] Array efficiency (cell area / macro area) of ~0.7 for mid-size SRAM macros, the usual CACTI 6.5
  figure at 45 nm; smaller macros are less efficient (peripheral overhead), modelled in energy.py.
"""

from __future__ import annotations

from typing import Final

NODE_NM: Final[int] = 45
"""The technology node every number here belongs to."""

# ---------------------------------------------------------------- SRAM, [H14]
SRAM_ACCESS_BITS: Final[int] = 64
"""Width of the access the SRAM points below are quoted for."""
SRAM_POINTS_PJ: Final[tuple[tuple[int, float], ...]] = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
"""(capacity in bytes, pJ per 64-bit read) [H14]."""
SRAM_BANK_BYTES: Final[int] = 1024 * 1024
"""Buffers larger than this are banked: one access touches one bank of this size (envs/arch/README.md)."""

# ---------------------------------------------------------------- registers and DRAM, [ACC]
REGISTER_PJ_PER_BYTE: Final[float] = 0.009
"""A depth-1 register (Timeloop simba_like PEWeightRegs ERT), pJ per 8-bit access."""
DRAM_PJ_PER_BYTE: Final[float] = 512.0 / 8
"""Accelergy LPDDR4: 512 pJ per 64-bit access = 64 pJ per byte."""

# ---------------------------------------------------------------- arithmetic, [ACC] and [H14]
MAC_PJ_8BIT: Final[float] = 0.315
"""Accelergy 45 nm 8-bit intmac, pJ per MAC."""
INT_MULT_PJ: Final[dict[int, float]] = {8: 0.2, 32: 3.1}
INT_ADD_PJ: Final[dict[int, float]] = {8: 0.03, 32: 0.1}
INT_MULT_AREA_UM2: Final[dict[int, float]] = {8: 282.0, 32: 3495.0}
INT_ADD_AREA_UM2: Final[dict[int, float]] = {8: 36.0, 32: 137.0}

# ---------------------------------------------------------------- SRAM area, [M07] and [CACTI]
SRAM_CELL_UM2: Final[float] = 0.346
SRAM_ARRAY_EFFICIENCY: Final[float] = 0.7

# ---------------------------------------------------------------- register files, [NG45] and [TLE]
FLIPFLOP_UM2: Final[float] = 4.522
"""Area of one stored bit in a flip-flop register file (NanGate FreePDK45 DFF_X1)."""
REGFILE_MAX_WORDS: Final[int] = 64
"""Buffers (or partitions) of at most this many words are register files, larger ones SRAM macros [TLE]."""
