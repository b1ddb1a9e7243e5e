"""What rlmap can model: numbers that are really numbers (not true/false, not text), and sizes its arithmetic holds.

YAML reads `K: true` as a boolean and `K: "16"` as a string, which pydantic's lax mode would quietly take as
K = 1 and K = 16; every count and real field of the specs is therefore typed `Count` / `Real`, which refuse
booleans and strings (as mapping factors are refused when quoted).  The bounds keep the work finite and
exact: a loop bound is factored by trial division up to its square root (2^20 steps for MAX_EXTENT), and
tile products, MAC counts and tensor sizes are int64 in the vectorised cost model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_EXTENT = 2**40
"""Largest loop bound (N K C P Q R S, groups), stride, dilation, padding, fanout or mapping factor."""

MAX_COUNT = 2**62
"""Largest MAC count, tensor size (words) or capacity: products of these stay inside int64."""

MAX_ENERGY = 1e12
"""Largest energy per action (a word read or written, a MAC), in the architecture's energy unit.  Access counts
stay below ~2^102 (2^62 words times a word-size scale of at most 2^40), so a total stays below ~1e43 and an EDP
(times cycles, likewise bounded) far below float64's 1.8e308: no total can overflow to inf (and 1e12 pJ, a joule
per access, is far past any real memory)."""

MIN_BANDWIDTH = 1e-6
"""Smallest bandwidth, words per cycle per instance: cycles = accesses / bandwidth stays finite (~1e37 at most)."""


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    if isinstance(value, (str, bytes)):
        raise ValueError(f"must be a number, got the string {value!r} (write it without quotes)")
    return value


Count = Annotated[int, BeforeValidator(_number)]
"""An int field that refuses YAML's true/false and quoted numbers ("16")."""

Real = Annotated[float, BeforeValidator(_number)]
"""A float field that refuses YAML's true/false and quoted numbers (models also set allow_inf_nan=False)."""
