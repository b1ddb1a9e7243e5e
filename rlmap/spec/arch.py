"""Architecture spec: a memory hierarchy from DRAM inward, spatial fanouts between levels, MACs."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlmap.spec.bounds import MAX_COUNT, MAX_ENERGY, MAX_EXTENT, MIN_BANDWIDTH, Count, Real
from rlmap.spec.problem import DIMS, TENSORS, parse_dim, parse_tensor

Format = Literal["uncompressed", "bitmask", "rle", "coordinate"]
Semantics = Literal["timeloop", "accelforge"]
SEMANTICS: tuple[str, ...] = ("timeloop", "accelforge")
"""Modelling semantics the cost model can follow (rlmap/model/semantics.py holds their rules)."""


class Fanout(BaseModel):
    """Spatial fanout from one level to the instances of the next one, as an X by Y mesh.

    `x_dims` / `y_dims` restrict which problem dimensions may be unrolled on each axis
    (empty = any), e.g. a TPU-like array puts K on X and C on Y.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: Count = Field(1, gt=0, le=MAX_EXTENT)
    y: Count = Field(1, gt=0, le=MAX_EXTENT)
    x_dims: tuple[str, ...] = ()
    y_dims: tuple[str, ...] = ()

    @field_validator("x_dims", "y_dims")
    @classmethod
    def _dims(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(DIMS[parse_dim(d)] for d in v)

    @property
    def size(self) -> int:
        return self.x * self.y


class MemoryLevel(BaseModel):
    """One storage level; capacities are per instance, energies per word accessed (pJ)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(min_length=1)
    capacity: Count | dict[str, Count] | None = Field(
        None, description="words per instance: one shared number, a per-tensor partition, or null = unbounded"
    )
    word_bits: Count = Field(16, gt=0, le=MAX_EXTENT)
    keeps: tuple[str, ...] = TENSORS
    may_bypass: tuple[str, ...] = Field(
        (), description="tensors of `keeps` a mapping may choose not to keep here (bypass); the others it must keep"
    )
    read_energy: Real = Field(ge=0.0, le=MAX_ENERGY, description="per word read; at most 1e12 (spec/bounds.py)")
    write_energy: Real = Field(ge=0.0, le=MAX_ENERGY, description="per word written; at most 1e12")
    bandwidth: Real | None = Field(
        None, ge=MIN_BANDWIDTH, description="words per cycle per instance, at least 1e-6; null = unbounded"
    )
    fanout: Fanout = Fanout()
    formats: dict[str, Format] = Field(default_factory=dict, description="storage format per tensor (sparse)")
    source: str = ""

    @field_validator("keeps", "may_bypass")
    @classmethod
    def _keeps(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        idx = sorted({parse_tensor(t) for t in v})
        return tuple(TENSORS[i] for i in idx)

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, v: int | dict[str, int] | None) -> int | dict[str, int] | None:
        if isinstance(v, int) and not 0 < v <= MAX_COUNT:
            raise ValueError(f"capacity must be positive and at most 2^62, got {v}")
        if isinstance(v, dict):
            out = {}
            for t, words in v.items():
                if not 0 < words <= MAX_COUNT:
                    raise ValueError(f"capacity of {t} must be positive and at most 2^62, got {words}")
                out[TENSORS[parse_tensor(t)]] = words
            return out
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: dict[str, Format]) -> dict[str, Format]:
        return {TENSORS[parse_tensor(t)]: f for t, f in v.items()}

    @model_validator(mode="after")
    def _partition_matches_keeps(self) -> MemoryLevel:
        if isinstance(self.capacity, dict):
            extra = set(self.capacity) - set(self.keeps)
            if extra:
                raise ValueError(f"capacity given for {sorted(extra)} which this level does not keep")
            missing = set(self.keeps) - set(self.capacity)
            if missing:
                raise ValueError(f"partitioned capacity lacks {sorted(missing)}")
        extra_bypass = set(self.may_bypass) - set(self.keeps)
        if extra_bypass:
            raise ValueError(f"may_bypass names {sorted(extra_bypass)} which this level does not keep")
        extra_fmt = set(self.formats) - set(self.keeps)
        if extra_fmt:
            raise ValueError(f"format given for {sorted(extra_fmt)} which this level does not keep")
        if self.formats.get("outputs", "uncompressed") != "uncompressed":
            raise ValueError(
                "outputs hold partial sums, which rlmap keeps uncompressed; formats apply to inputs and weights"
            )
        return self


class Compute(BaseModel):
    """The MAC units and their sparse acceleration feature (Sparseloop's SAF).

    `gate` keeps the cycle but spends no energy on ineffectual MACs (and their operand reads);
    `skip` saves both the energy and the cycle.  `on` names the operands whose zeros are detected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    mac_energy: Real = Field(ge=0.0, le=MAX_ENERGY, description="energy per MAC (pJ), at most 1e12")
    sparse: Literal["none", "gate", "skip"] = "none"
    on: tuple[str, ...] = ("inputs", "weights")

    @field_validator("on")
    @classmethod
    def _on(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        idx = sorted({parse_tensor(t) for t in v})
        if 2 in idx:
            raise ValueError("compute skipping/gating is conditioned on operands (inputs, weights), not outputs")
        return tuple(TENSORS[i] for i in idx)


class Architecture(BaseModel):
    """Levels are listed outermost (DRAM) first; `levels[i].fanout` leads to `levels[i+1]` (or the MACs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(min_length=1)
    description: str = ""
    source: str = ""
    data_bits: Count = Field(16, gt=0, le=MAX_EXTENT, description="bits per data element")
    clock_ghz: Real = Field(1.0, gt=0.0)
    energy_unit: str = Field(
        "pJ",
        min_length=1,
        max_length=12,
        description="unit of every energy in the file and in results: 'pJ', or e.g. 'MAC-eq' "
        "for energies normalized to one MAC",
    )
    semantics: Semantics = Field(
        "timeloop",
        description="modelling rules of the cost model: 'timeloop' (sliding-window halo reuse, "
        "window multicast as the union of the children's windows, reduced partial-sum refills) or 'accelforge' "
        "(AccelForge's LoopTree model); docs/costmodel.md, 'Modelling semantics'",
    )
    levels: list[MemoryLevel] = Field(min_length=1)
    compute: Compute

    @model_validator(mode="after")
    def _structure(self) -> Architecture:
        names = [lvl.name for lvl in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be unique, got {names}")
        if set(self.levels[0].keeps) != set(TENSORS):
            raise ValueError(f"the outermost level ({names[0]}) must keep every tensor")
        if self.levels[0].may_bypass:
            raise ValueError(f"the outermost level ({names[0]}) holds every tensor: it may not bypass any")
        for t in TENSORS:
            if not any(t in lvl.keeps for lvl in self.levels):
                raise ValueError(f"no level keeps {t}")
        return self

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def num_pes(self) -> int:
        """MAC units: the product of every fanout."""
        return math.prod(lvl.fanout.size for lvl in self.levels)

    def instances(self, level: int) -> int:
        """How many copies of `levels[level]` exist (product of the fanouts above it)."""
        return math.prod(lvl.fanout.size for lvl in self.levels[:level])

    def level_index(self, name: str) -> int:
        for i, lvl in enumerate(self.levels):
            if lvl.name == name:
                return i
        raise KeyError(f"architecture {self.name!r} has no level {name!r} (levels: {[l.name for l in self.levels]})")
