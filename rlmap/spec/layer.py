"""Layer and Network specs: what a DNN asks the accelerator to compute."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlmap.spec.bounds import MAX_COUNT, MAX_EXTENT, Count, Real
from rlmap.spec.problem import N_DIMS

LayerKind = Literal["conv", "depthwise", "pointwise", "gemm", "matmul"]
Pair = tuple[Count, Count]


def _pair(value: object) -> object:
    """Accept `2` as shorthand for `[2, 2]`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, bool):
        raise ValueError(f"must be a number or a pair of numbers, got {str(value).lower()}")
    return value


def _bounded_pair(v: Pair) -> Pair:
    if max(v) > MAX_EXTENT:
        raise ValueError(f"must be at most {MAX_EXTENT:,} (2^40), got {list(v)}")
    return v


class Densities(BaseModel):
    """Fraction of non-zero values per tensor (1.0 = dense), used by the sparse cost model."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    inputs: Real = Field(1.0, gt=0.0, le=1.0)
    weights: Real = Field(1.0, gt=0.0, le=1.0)
    outputs: Real = Field(1.0, gt=0.0, le=1.0)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.inputs, self.weights, self.outputs)

    @property
    def is_dense(self) -> bool:
        return self.inputs == self.weights == self.outputs == 1.0


class Layer(BaseModel):
    """One layer in PyTorch's terms: K and C are *total* channel counts, `groups` splits them.

    GEMM `O[M,N] = A[M,K] B[K,N]` is written with P = M, C = K, K = N; attention's batched matmul
    additionally puts batch*heads on `groups`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    kind: LayerKind = "conv"
    N: Count = Field(1, gt=0, le=MAX_EXTENT, description="batch")
    K: Count = Field(gt=0, le=MAX_EXTENT, description="output channels (total)")
    C: Count = Field(gt=0, le=MAX_EXTENT, description="input channels (total)")
    P: Count = Field(1, gt=0, le=MAX_EXTENT, description="output rows")
    Q: Count = Field(1, gt=0, le=MAX_EXTENT, description="output columns")
    R: Count = Field(1, gt=0, le=MAX_EXTENT, description="filter rows")
    S: Count = Field(1, gt=0, le=MAX_EXTENT, description="filter columns")
    groups: Count = Field(1, gt=0, le=MAX_EXTENT)
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    padding: Pair = (0, 0)
    density: Densities = Densities()
    repeat: Count = Field(1, gt=0, le=MAX_EXTENT, description="identical copies of this layer in its network")

    _pairs = field_validator("stride", "dilation", "padding", mode="before")(_pair)

    @field_validator("stride", "dilation")
    @classmethod
    def _positive_pair(cls, v: Pair) -> Pair:
        if min(v) <= 0:
            raise ValueError(f"must be positive, got {list(v)}")
        return _bounded_pair(v)

    @field_validator("padding")
    @classmethod
    def _non_negative_pair(cls, v: Pair) -> Pair:
        if min(v) < 0:
            raise ValueError(f"must be >= 0, got {list(v)}")
        return _bounded_pair(v)

    @model_validator(mode="after")
    def _consistent(self) -> Layer:
        g = self.groups
        if self.K % g or self.C % g:
            raise ValueError(f"groups={g} must divide both K={self.K} and C={self.C}")
        if self.kind == "depthwise" and not (g == self.C and self.K % self.C == 0):
            raise ValueError(f"depthwise needs groups == C and K a multiple of C (K={self.K}, C={self.C}, groups={g})")
        if self.kind in ("pointwise", "gemm", "matmul") and (self.R, self.S) != (1, 1):
            raise ValueError(f"{self.kind} layers have R = S = 1 (got R={self.R}, S={self.S})")
        if self.kind in ("pointwise", "gemm") and g != 1:
            raise ValueError(f"{self.kind} layers have groups = 1 (got {g})")
        for axis, (p, r, s, d, pad) in enumerate(
            [
                (self.P, self.R, *self.stride[:1], *self.dilation[:1], self.padding[0]),
                (self.Q, self.S, self.stride[1], self.dilation[1], self.padding[1]),
            ]
        ):
            if self.input_extent(p, r, s, d) - 2 * pad <= 0:
                raise ValueError(f"padding {pad} on axis {'HW'[axis]} leaves no real input")
        sizes = {"MACs": self.macs, **{f"{t} words": n for t, n in self.tensor_sizes.items()}}
        for what, n in sizes.items():
            if n > MAX_COUNT:
                raise ValueError(f"too large to model: {n:.3g} {what} (at most 2^62, the cost model's int64 range)")
        return self

    @staticmethod
    def input_extent(p: int, r: int, stride: int, dilation: int) -> int:
        """Rows an output tile of p rows with filter r reads: the sliding-window footprint (padded)."""
        return (p - 1) * stride + (r - 1) * dilation + 1

    @property
    def problem_dims(self) -> tuple[int, ...]:
        """Loop bounds in rlmap.problem.DIMS order (K and C per group)."""
        g = self.groups
        dims = (self.N, g, self.K // g, self.C // g, self.P, self.Q, self.R, self.S)
        assert len(dims) == N_DIMS
        return dims

    @property
    def input_hw(self) -> Pair:
        """Real (unpadded) input height and width."""
        h = self.input_extent(self.P, self.R, self.stride[0], self.dilation[0]) - 2 * self.padding[0]
        w = self.input_extent(self.Q, self.S, self.stride[1], self.dilation[1]) - 2 * self.padding[1]
        return (h, w)

    @property
    def macs(self) -> int:
        return self.N * self.K * (self.C // self.groups) * self.P * self.Q * self.R * self.S

    @property
    def tensor_sizes(self) -> dict[str, int]:
        """Words per tensor (real input size, without padding)."""
        h, w = self.input_hw
        return {
            "inputs": self.N * self.C * h * w,
            "weights": self.K * (self.C // self.groups) * self.R * self.S,
            "outputs": self.N * self.K * self.P * self.Q,
        }

    def shape_str(self) -> str:
        return "x".join(f"{d}{v}" for d, v in zip("NKCPQRS", (self.N, self.K, self.C, self.P, self.Q, self.R, self.S)))


def layer_key(layer: Layer, with_density: bool = True) -> tuple[Any, ...]:
    """What the cost model reads of a layer: two layers with equal keys cost the same for every mapping.

    Names, kind, padding and repeat change no cost.  `with_density=False` drops the densities, for
    architectures whose cost does not depend on them (no compressed format, no sparse compute).
    """
    key: tuple[Any, ...] = (layer.problem_dims, tuple(layer.stride), tuple(layer.dilation))
    if with_density:
        key += (layer.density.as_tuple(),)
    return key


def distinct_layers(layers: Iterable[Layer]) -> list[Layer]:
    """The layers whose `layer_key` was not seen earlier in `layers` (first occurrence kept, order kept)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for layer in layers:
        key = layer_key(layer)
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out


class Network(BaseModel):
    """An ordered list of layers; identical layers appear once with `repeat` > 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    source: str = ""
    layers: list[Layer] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Network:
        seen: set[str] = set()
        for layer in self.layers:
            if layer.name in seen:
                raise ValueError(f"duplicate layer name {layer.name!r}")
            seen.add(layer.name)
        return self

    @property
    def macs(self) -> int:
        """Total MACs, counting repeats."""
        return sum(layer.macs * layer.repeat for layer in self.layers)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network {self.name!r} has no layer {name!r}")
