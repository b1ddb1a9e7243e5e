"""Modelling semantics: the three counting rules on which Timeloop-style and AccelForge-style nest analysis differ.

An architecture names its semantics (`Architecture.semantics`, YAML `semantics: timeloop | accelforge`);
the readable reference (`CostModel.evaluate_reference`) and the compiled kernel read the same rule flags
from here, the kernel as a boolean array (`Rules.as_array`, indexed by the constants below), so both
paths follow one table.  docs/costmodel.md, "Modelling semantics", states each rule with its formulas
and a worked example.

* `halo_reuse` (rule 1): along a temporal loop that slides the input window, a child fetches only the
  rows it does not hold yet (Timeloop's delta between consecutive tiles).  Off: every fetch moves the
  whole tile (AccelForge's LoopTree: a storage node's fill is its tile, times every loop above it).
* `window_multicast` (rule 2): children under a spatial fanout whose input windows overlap receive the
  union of their windows once (one parent read per distinct word).  Off: only children that differ in
  dimensions irrelevant to inputs share a read; children on different window positions are each served
  their own window (AccelForge multicasts over irrelevant spatial loops only).
* `reduced_psum_fill` (rule 3): when partial sums return from the parent into children that reduce
  spatially (differ only in C, R, S), the refill is written once per parent word (one child needs the old
  partial sum, the others start from zero).  Off: every child instance is written (AccelForge).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

from rlmap.spec.arch import SEMANTICS

HALO_REUSE, WINDOW_MULTICAST, REDUCED_PSUM_FILL = range(3)
"""Indices of the rule flags in `Rules.as_array()` (what the compiled kernel receives)."""


@dataclass(frozen=True)
class Rules:
    """Which of the three disputed counting rules a semantics applies (see the module docstring)."""

    halo_reuse: bool
    window_multicast: bool
    reduced_psum_fill: bool

    def as_array(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.bool_)


RULES: dict[str, Rules] = {
    "timeloop": Rules(halo_reuse=True, window_multicast=True, reduced_psum_fill=True),
    "accelforge": Rules(halo_reuse=False, window_multicast=False, reduced_psum_fill=False),
}
assert tuple(RULES) == SEMANTICS, "every semantics the architecture accepts has its rules here"
