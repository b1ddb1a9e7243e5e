"""What rlmap can model: numbers that are really numbers (not true/false), and sizes its arithmetic holds.

YAML reads `K: true` as a boolean, which pydantic would quietly take as K = 1; every count and real field of
the specs is therefore typed `Count` / `Real`, which refuse booleans.  The bounds keep the work finite and
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


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


Count = Annotated[int, BeforeValidator(_no_bool)]
"""An int field that refuses YAML's true/false."""

Real = Annotated[float, BeforeValidator(_no_bool)]
"""A float field that refuses YAML's true/false (models also set allow_inf_nan=False)."""
