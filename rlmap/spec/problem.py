"""The loop-nest vocabulary shared by every module: dimensions, tensors and which dims index which tensor.

A layer is the 8-deep loop nest

    for n, g, k, c, p, q, r, s:
        O[n, g, k, p, q] += I[n, g, c, p*sh + r*dh, q*sw + s*dw] * W[g, k, c, r, s]

where K and C are *per group* channel counts.  Plain convolutions have G = 1, depthwise convolutions
K = C = 1 and G = channels, and attention's batched matmul puts the batch*heads axis on G (both of its
operands depend on it, exactly like a grouped convolution).
"""

from __future__ import annotations

from typing import Final

DIMS: Final[tuple[str, ...]] = ("N", "G", "K", "C", "P", "Q", "R", "S")
"""Problem dimensions, in the canonical order used by every array in rlmap."""

N_DIMS: Final[int] = len(DIMS)
DIM_INDEX: Final[dict[str, int]] = {d: i for i, d in enumerate(DIMS)}
N, G, K, C, P, Q, R, S = range(N_DIMS)

TENSORS: Final[tuple[str, ...]] = ("inputs", "weights", "outputs")
"""Data spaces, in the canonical order used by every array in rlmap."""

N_TENSORS: Final[int] = len(TENSORS)
TENSOR_INDEX: Final[dict[str, int]] = {t: i for i, t in enumerate(TENSORS)}
INPUTS, WEIGHTS, OUTPUTS = range(N_TENSORS)

RELEVANT: Final[tuple[frozenset[int], ...]] = (
    frozenset({N, G, C, P, Q, R, S}),  # inputs: P and R (Q and S) both move the sliding window
    frozenset({G, K, C, R, S}),  # weights
    frozenset({N, G, K, P, Q}),  # outputs
)
"""RELEVANT[t] holds the dimensions that index tensor t; a loop over any other dim reuses t's tile."""

RELEVANCE_MATRIX: Final[tuple[tuple[bool, ...], ...]] = tuple(
    tuple(d in RELEVANT[t] for d in range(N_DIMS)) for t in range(N_TENSORS)
)
REDUCTION_DIMS: Final[frozenset[int]] = frozenset({C, R, S})


def parse_dim(name: str) -> int:
    """Index of a dimension name (case-insensitive); ValueError names the valid choices."""
    key = name.strip().upper()
    if key not in DIM_INDEX:
        raise ValueError(f"unknown dimension {name!r} (expected one of {', '.join(DIMS)})")
    return DIM_INDEX[key]


def parse_tensor(name: str) -> int:
    """Index of a tensor name; accepts the short forms I/W/O too."""
    key = name.strip().lower()
    aliases = {
        "i": "inputs",
        "input": "inputs",
        "ifmap": "inputs",
        "w": "weights",
        "weight": "weights",
        "filter": "weights",
        "o": "outputs",
        "output": "outputs",
        "ofmap": "outputs",
        "psum": "outputs",
    }
    key = aliases.get(key, key)
    if key not in TENSOR_INDEX:
        raise ValueError(f"unknown tensor {name!r} (expected one of {', '.join(TENSORS)})")
    return TENSOR_INDEX[key]
