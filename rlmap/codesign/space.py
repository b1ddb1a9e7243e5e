"""The hardware design space over a template architecture, and the hardware genes that pick one design.

A design space names, over a template (any preset or architecture YAML): the PE array (X and Y sizes of one
level's fanout), the dataflow (which dims each array axis may unroll), the capacity of each bounded on-chip
level (shared, per-tensor partitioned, or either) and its bandwidth.  Every knob is a finite list of values
and a design is one index per knob (the *hardware genes*), so every optimiser -- genetic, black-box or
two-loop -- searches the same encoding.  `DesignSpace.decode` turns genes into an `Architecture` whose access
energies come from rlmap.hardware.energy (45 nm, cited there) for its capacities and word widths, so a
bigger buffer costs more per access; its area comes from rlmap.hardware.area.

The YAML form (docs/codesign.md has the full reference):

    template: eyeriss            # optional; `rlmap codesign --template` overrides it
    array:
      level: GLB                 # the level whose fanout is the PE array (default: the largest fanout)
      x: [2, 64]                 # [lo, hi]: the powers of two from lo to hi; or {values: [...]}
      y: [2, 64]
      dataflows:                 # (x dims, y dims) choices; [] = any dim (default: the template's own)
        - {x: [], y: []}
        - {x: [K], y: [C]}
    capacities:                  # words per instance
      GLB: [4096, 262144]
      spad: {range: [8, 512], form: partitioned}   # form: shared | partitioned | either (default: template's)
    bandwidths:                  # words per cycle per instance
      GLB: [8, 128]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlmap.hardware.energy import mac_energy, storage_access_energy
from rlmap.spec.arch import Architecture, Fanout, MemoryLevel
from rlmap.spec.errors import SpecError
from rlmap.spec.io import load_architecture, parse_model, read_yaml
from rlmap.spec.problem import DIMS, TENSORS, parse_dim

Values = list[int] | dict[str, Any]
ENERGY_SOURCE = (
    "access energies and MAC energy from rlmap.hardware.energy (45 nm: Horowitz ISSCC 2014 SRAM points, "
    "Accelergy 8-bit intmac and LPDDR4), scaled to this level's capacity and word width"
)


def value_list(spec: Any, where: str) -> list[int]:
    """[lo, hi] -> the powers of two lo, 2 lo, ... <= hi; {values: [...]} -> those values (sorted, distinct)."""
    if isinstance(spec, dict) and set(spec) == {"values"}:
        vals = spec["values"]
        if (
            not isinstance(vals, list)
            or not vals
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vals)
        ):
            raise SpecError("values must be a non-empty list of positive integers", where)
        return sorted(set(vals))
    if isinstance(spec, list) and len(spec) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
        lo, hi = spec
        if lo <= 0 or hi < lo:
            raise SpecError(f"range must be [lo, hi] with 0 < lo <= hi, got {spec}", where)
        return [lo * 2**k for k in range(int(math.log2(hi / lo) + 1e-9) + 1)]
    raise SpecError(f"expected [lo, hi] (powers of two in between) or {{values: [...]}}, got {spec!r}", where)


class ArraySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: str | None = None
    x: Values | None = None
    y: Values | None = None
    dataflows: list[dict[str, list[str]]] | None = None

    @field_validator("dataflows")
    @classmethod
    def _dataflows(cls, v: list[dict[str, list[str]]] | None) -> list[dict[str, list[str]]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("dataflows must list at least one choice")
        out = []
        for df in v:
            extra = set(df) - {"x", "y"}
            if extra:
                raise ValueError(f"a dataflow has keys x and y only, got {sorted(extra)}")
            out.append({ax: [DIMS[parse_dim(d)] for d in df.get(ax, [])] for ax in ("x", "y")})
        return out


class CapacitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    range: list[int] | None = None
    values: list[int] | None = None
    form: Literal["shared", "partitioned", "either"] | None = None


class SpaceSpec(BaseModel):
    """The YAML form of a design space (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    template: str | None = None
    description: str = ""
    array: ArraySpec = Field(default_factory=ArraySpec)
    capacities: dict[str, Values] | None = None
    bandwidths: dict[str, Values] = Field(default_factory=dict)


@dataclass(frozen=True)
class Knob:
    """One hardware gene: its name (for reports) and the values its index picks from."""

    name: str
    values: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.values)


class DesignSpace:
    """Knobs over a template; `decode(genes)` is the design.  Pure: the same genes give the same Architecture."""

    def __init__(self, template: Architecture, spec: SpaceSpec | None = None, where: str = "space") -> None:
        spec = spec or SpaceSpec()
        self.template = template
        self.spec = spec
        names = [lvl.name for lvl in template.levels]
        fans = [lvl.fanout.size for lvl in template.levels]
        if spec.array.level is not None:
            if spec.array.level not in names:
                raise SpecError(
                    f"template {template.name!r} has no level {spec.array.level!r} (levels: {names})",
                    f"{where}.array.level",
                )
            self.array_level = names.index(spec.array.level)
        else:
            self.array_level = int(np.argmax(fans))
        fan = template.levels[self.array_level].fanout
        knobs: list[Knob] = []
        knobs.append(
            Knob(
                "array_x",
                tuple(
                    value_list(spec.array.x, f"{where}.array.x")
                    if spec.array.x is not None
                    else _around(fan.x, 4, lo=2)
                ),
            )
        )
        knobs.append(
            Knob(
                "array_y",
                tuple(
                    value_list(spec.array.y, f"{where}.array.y")
                    if spec.array.y is not None
                    else _around(fan.y, 4, lo=2)
                ),
            )
        )
        dfs = spec.array.dataflows or [{"x": list(fan.x_dims), "y": list(fan.y_dims)}]
        knobs.append(Knob("dataflow", tuple((tuple(df["x"]), tuple(df["y"])) for df in dfs)))
        # capacities: every bounded on-chip level by default, between 1/16 and 16x the template's
        self.capacity_levels: list[tuple[int, str]] = []  # (level, form) in knob order
        caps: dict[str, Any] | None = spec.capacities
        if caps is None:
            caps = {lvl.name: None for lvl in template.levels[1:] if lvl.capacity is not None and _words(lvl) > 1}
        for name, raw in caps.items():
            here = f"{where}.capacities.{name}"
            if name not in names:
                raise SpecError(f"template {template.name!r} has no level {name!r} (levels: {names})", here)
            lvl_i = names.index(name)
            level = template.levels[lvl_i]
            if lvl_i == 0 or level.capacity is None:
                raise SpecError(
                    f"level {name} is unbounded (off-chip) in the template; it has no capacity to search", here
                )
            form_spec: str | None = None
            if raw is None:
                vals = _around(
                    max(_partition_words(level).values()) if isinstance(level.capacity, dict) else int(level.capacity),
                    16,
                    lo=1,
                )
            elif isinstance(raw, dict) and set(raw) - {"values"}:
                cs = parse_model(CapacitySpec, raw, here)
                if (cs.range is None) == (cs.values is None):
                    raise SpecError("give exactly one of range: [lo, hi] or values: [...]", here)
                vals = value_list(cs.range if cs.range is not None else {"values": cs.values}, here)
                form_spec = cs.form
            else:
                vals = value_list(raw, here)
            form = form_spec or ("partitioned" if isinstance(level.capacity, dict) else "shared")
            self.capacity_levels.append((lvl_i, form))
            if form in ("shared", "either"):
                knobs.append(Knob(f"{name}.capacity", tuple(vals)))
            if form in ("partitioned", "either"):
                for t in level.keeps:
                    knobs.append(Knob(f"{name}.capacity.{t}", tuple(vals)))
            if form == "either":
                knobs.append(Knob(f"{name}.form", ("shared", "partitioned")))
        self.bandwidth_levels: list[int] = []
        for name, raw in spec.bandwidths.items():
            here = f"{where}.bandwidths.{name}"
            if name not in names:
                raise SpecError(f"template {template.name!r} has no level {name!r} (levels: {names})", here)
            self.bandwidth_levels.append(names.index(name))
            knobs.append(Knob(f"{name}.bandwidth", tuple(value_list(raw, here))))
        self.knobs = knobs
        self.index = {k.name: i for i, k in enumerate(knobs)}

    # ------------------------------------------------------------------ genes
    @property
    def n_genes(self) -> int:
        return len(self.knobs)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([k.size for k in self.knobs], dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of distinct designs."""
        return math.prod(k.size for k in self.knobs)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, genes) uniform hardware genes."""
        return (rng.random((n, self.n_genes)) * self.sizes).astype(np.int64)

    def template_genes(self) -> np.ndarray | None:
        """The genes of the template itself, when every one of its values is in the space (else None)."""
        arch = self.template
        fan = arch.levels[self.array_level].fanout
        want: dict[str, Any] = {"array_x": fan.x, "array_y": fan.y, "dataflow": (fan.x_dims, fan.y_dims)}
        for lvl_i, _form in self.capacity_levels:
            level = arch.levels[lvl_i]
            if isinstance(level.capacity, dict):
                for t, w in level.capacity.items():
                    want[f"{level.name}.capacity.{t}"] = w
                want[f"{level.name}.form"] = "partitioned"
            else:
                want[f"{level.name}.capacity"] = level.capacity
                want[f"{level.name}.form"] = "shared"
        for lvl_i in self.bandwidth_levels:
            want[f"{arch.levels[lvl_i].name}.bandwidth"] = arch.levels[lvl_i].bandwidth
        genes = []
        for k in self.knobs:
            v = want.get(k.name)
            if v not in k.values:
                return None
            genes.append(k.values.index(v))
        return np.array(genes, dtype=np.int64)

    def values(self, genes: np.ndarray) -> dict[str, Any]:
        """Knob name -> chosen value."""
        return {k.name: k.values[int(g)] for k, g in zip(self.knobs, genes)}

    def key(self, genes: np.ndarray) -> tuple[int, ...]:
        return tuple(int(g) for g in genes)

    # ------------------------------------------------------------------ decode
    def decode(self, genes: np.ndarray, name: str | None = None) -> Architecture:
        """The Architecture these genes pick; every level's energies re-derived from the 45 nm tables."""
        v = self.values(genes)
        arch = self.template
        levels = []
        cap_form = {lvl_i: form for lvl_i, form in self.capacity_levels}
        for i, level in enumerate(arch.levels):
            upd: dict[str, Any] = {}
            if i == self.array_level:
                xd, yd = v["dataflow"]
                upd["fanout"] = Fanout(x=v["array_x"], y=v["array_y"], x_dims=xd, y_dims=yd)
            if i in cap_form:
                form = cap_form[i]
                if form == "either":
                    form = v[f"{level.name}.form"]
                upd["capacity"] = (
                    v[f"{level.name}.capacity"]
                    if form == "shared"
                    else {t: v[f"{level.name}.capacity.{t}"] for t in level.keeps}
                )
            if i in self.bandwidth_levels:
                upd["bandwidth"] = float(v[f"{level.name}.bandwidth"])
            new = level.model_copy(update=upd)
            e = storage_access_energy(None if i == 0 else _energy_words(new), new.word_bits)
            levels.append(
                new.model_copy(
                    update={
                        "read_energy": e,
                        "write_energy": e,
                        "source": (level.source + " | " if level.source else "") + "co-designed: " + ENERGY_SOURCE,
                    }
                )
            )
        summary = ", ".join(f"{k}={_fmt(val)}" for k, val in v.items())
        return Architecture(
            name=name or f"{arch.name}_codesign",
            data_bits=arch.data_bits,
            clock_ghz=arch.clock_ghz,
            semantics=arch.semantics,
            levels=levels,
            compute=arch.compute.model_copy(update={"mac_energy": mac_energy(arch.data_bits)}),
            description=f"Design found by rlmap codesign over template {arch.name!r}: {summary}.",
            source=f"template {arch.name} ({arch.source.strip()[:200]}); {ENERGY_SOURCE}; area: rlmap.hardware.area",
        )

    def describe(self) -> list[tuple[str, str]]:
        return [(k.name, ", ".join(_fmt(x) for x in k.values)) for k in self.knobs]


def _fmt(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(a, tuple) for a in v):
        return f"x:{''.join(v[0]) or 'any'}/y:{''.join(v[1]) or 'any'}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _around(value: int, factor: int, lo: int = 1) -> list[int]:
    """Powers-of-two multiples of `value` from value/factor to value*factor (at least `lo`)."""
    out = sorted({max(lo, int(value * 2.0**k)) for k in range(-int(math.log2(factor)), int(math.log2(factor)) + 1)})
    return out


def _partition_words(level: MemoryLevel) -> dict[str, int]:
    cap = level.capacity
    if isinstance(cap, dict):
        return dict(cap)
    return {t: int(cap) for t in level.keeps} if cap is not None else {}


def _words(level: MemoryLevel) -> int:
    cap = level.capacity
    return sum(cap.values()) if isinstance(cap, dict) else int(cap or 0)


def _energy_words(level: MemoryLevel) -> int | None:
    """The array size an access is charged for: the capacity, or the largest partition (envs/arch/README.md)."""
    cap = level.capacity
    if cap is None:
        return None
    return max(cap.values()) if isinstance(cap, dict) else int(cap)


def load_space(template: str | None, space: str | None) -> DesignSpace:
    """A DesignSpace from a template name/file and an optional space YAML (whose `template` the argument overrides)."""
    spec = SpaceSpec()
    where = "space"
    if space is not None:
        where = str(space)
        spec = parse_model(SpaceSpec, read_yaml(space), where)
    name = template or spec.template
    if name is None:
        raise SpecError("no template architecture: pass --template or set `template:` in the space file", "--template")
    return DesignSpace(load_architecture(name), spec, where)


__all__ = ["TENSORS", "DesignSpace", "Knob", "SpaceSpec", "load_space", "value_list"]
