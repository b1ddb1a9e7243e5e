"""Silicon area of an architecture at 45 nm: MACs, register files and SRAMs, from rlmap.hardware.tech.

    area(design) = num_pes * MAC(data_bits)
                 + sum over on-chip levels l of instances(l) * storage(l)

* MAC: `energy.mac_area(bits)`, Horowitz' 45 nm multiplier + adder areas (282 + 36 um^2 at 8 bits).
* storage(l): each buffer (a shared level, or each partition of a partitioned one) of w words of b bits is a
  register file of flip-flops (w * b * 4.522 um^2, NanGate45 DFF_X1) when w <= 64 words, as Accelergy models
  Eyeriss' small scratchpads, else an SRAM macro (`energy.sram_area`: 6T cells of 0.346 um^2 over a CACTI
  array efficiency of 0.7).
* Off-chip levels (unbounded capacity: DRAM) cost no die area.  Not modelled: the on-chip network, control
  and I/O (the same for every design of one template, so budgets compare designs fairly but under-state a
  real die).

Budgets (`AREA_BUDGETS`): `edge` and `cloud` are the areas of the envs/arch `edge` and `cloud` presets under
this model (the MAESTRO/GAMMA edge point: 256 PEs, 512 B per-PE buffers, a 108,000 B shared buffer; the
cloud point: 4096 PEs, 1 KB, 4 MiB), rounded to 0.01 mm^2 -- co-design then asks how fast a chip of the same
silicon as those presets can be.  tests/test_codesign.py holds the numbers to the presets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rlmap.hardware import tech
from rlmap.hardware.energy import mac_area, sram_area

AREA_BUDGETS: dict[str, float] = {"edge": 1.03, "cloud": 34.47}
"""mm^2: the areas of envs/arch/edge.yaml and cloud.yaml under this model (module docstring)."""


def buffer_area_um2(words: float, word_bits: int) -> float:
    """One buffer of `words` words: a flip-flop register file up to REGFILE_MAX_WORDS, else an SRAM macro."""
    if words <= tech.REGFILE_MAX_WORDS:
        return words * word_bits * tech.FLIPFLOP_UM2
    return sram_area(words, word_bits)


def level_area_um2(level: Any) -> float:
    """Area of one instance of a storage level (0 for an unbounded, off-chip one)."""
    cap = level.capacity
    if cap is None:
        return 0.0
    parts = cap.values() if isinstance(cap, dict) else [cap]
    return sum(buffer_area_um2(w, level.word_bits) for w in parts)


@dataclass
class Area:
    total_mm2: float
    parts_mm2: dict[str, float] = field(default_factory=dict)


def design_area(arch: Any) -> Area:
    """The area of an `rlmap.spec.arch.Architecture`, with the share of the MACs and of every level."""
    parts = {"MACs": arch.num_pes * mac_area(arch.data_bits) / 1e6}
    for i, level in enumerate(arch.levels):
        a = level_area_um2(level)
        if a > 0:
            parts[level.name] = arch.instances(i) * a / 1e6
    return Area(total_mm2=math.fsum(parts.values()), parts_mm2=parts)


def resolve_budget(value: str | float | None) -> float:
    """An area budget in mm^2 from a number, 'edge', 'cloud' or None (no budget: inf)."""
    if value is None:
        return math.inf
    if isinstance(value, str):
        key = value.strip().lower()
        if key in AREA_BUDGETS:
            return AREA_BUDGETS[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(f"expected a number of mm^2 or one of {', '.join(AREA_BUDGETS)}, got {value!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"area budget must be a positive number of mm^2, got {value!r}")
    return float(value)
