"""Warm-start (Kao et al., IISWC 2022): seed a layer's search with the best mappings of earlier, similar layers.

A `ReplayBuffer` keeps (layer, architecture, objective, best mappings) for every layer searched in a run
and, optionally, in a JSON file across runs.  For a new layer, `ReplayBuffer.seeds` returns the mappings of
the nearest stored layers, adapted to the new layer:

**Similarity.**  Only entries of the same architecture (name and level count) and the same objective are
candidates.  Distance between two layers = sum over the 8 problem dims (N G K C P Q R S) of
|log2 a_d - log2 b_d|, plus 1 if the layer kinds differ, plus |log2| of the stride ratio per axis.  So a
layer with the same shape is at 0, a layer with twice the channels at 1, and a depthwise layer is far
from a dense one of the same size (its G is large, its K and C are 1).  The `neighbours` nearest
entries (ties: the most recent first) give their mappings.

**Adaptation.**  A stored mapping's factors are re-split to the new dims, dimension by dimension (a dim
of the same size keeps its split exactly): each slot (temporal / spatial X / spatial Y of each level) keeps
the *share* of the dim's log-size it had
(f_slot = n_src^share); the new dim's prime factors are dealt out largest first, each to the allowed slot
furthest below its target log-size.  Loop orders pass through unchanged.  The result is then repaired to
validity: fanout repair (over-full spatial slots give primes back to their level's temporal slot) and
capacity repair (primes go out to DRAM until every tile fits), both structural, no cost-model call.
The seeds are ordinary candidates for the mappers: each one they score is a counted evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.search.mapspace import Genome, MapSpace
from rlmap.search.repair import capacity_repair, fanout_repair
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import InvalidMappingError, SpecError
from rlmap.spec.factors import prime_factors
from rlmap.spec.layer import Layer, layer_key
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import N_DIMS

FILE_VERSION = 1


def layer_distance(a: Layer, b: Layer) -> float:
    """Similarity measure of the module docstring (0 = same shape)."""
    da = np.log2(np.asarray(a.problem_dims, dtype=np.float64))
    db = np.log2(np.asarray(b.problem_dims, dtype=np.float64))
    d = float(np.abs(da - db).sum())
    d += float(a.kind != b.kind)
    d += sum(abs(math.log2(x / y)) for x, y in zip(a.stride, b.stride))
    return d


def mapping_factors(m: Mapping) -> np.ndarray:
    """(D, 3L) factor per dim and slot (slot = 3*level + temporal/X/Y), the genome's slot numbering."""
    t, x, y = (np.asarray(v, dtype=np.int64) for v in (m.temporal, m.spatial_x, m.spatial_y))
    return np.stack([t, x, y], axis=-1).transpose(1, 0, 2).reshape(N_DIMS, -1)  # (L, D, 3) -> (D, 3L)


def adapt_factors(src: np.ndarray, src_dims: Sequence[int], dims: Sequence[int], allowed: np.ndarray) -> np.ndarray:
    """Re-split every dim's factors to new sizes keeping each slot's share of the log-size (see module doc)."""
    out = np.ones_like(src)
    for d, n in enumerate(dims):
        if n == 1:
            continue
        if src_dims[d] == n:  # same size: the same split
            out[d] = src[d]
            continue
        slots = np.flatnonzero(allowed[d])
        if src_dims[d] > 1:
            share = np.log(src[d, slots].astype(np.float64)) / math.log(src_dims[d])
        else:  # the source had nothing on this dim: put it all at the outermost temporal slot (DRAM)
            share = (slots == slots[0]).astype(np.float64)
        target = share * math.log(n)
        got = np.zeros(len(slots))
        primes = sorted((p for p, a in prime_factors(n) for _ in range(a)), reverse=True)
        for p in primes:
            j = int(np.argmax(target - got))  # furthest below its target (first such on ties: outermost)
            got[j] += math.log(p)
            out[d, slots[j]] *= p
    return out


def adapt(mappings: Sequence[tuple[Mapping, Layer]], space: MapSpace, rng: np.random.Generator) -> Genome:
    """Genomes for `space` from mappings of other layers (same architecture), repaired to validity."""
    if not mappings:
        return Genome(np.zeros((0, space.n_genes), dtype=np.int64), np.zeros((0, space.L, N_DIMS), dtype=np.int64))
    L = space.L
    fac = []
    for m, src in mappings:
        f = adapt_factors(mapping_factors(m), src.problem_dims, space.dims, space.allowed)
        fac.append(f.reshape(N_DIMS, L, 3).transpose(1, 0, 2))  # (L, D, 3)
    arr = np.stack(fac)
    batch = MappingBatch(
        temporal=arr[..., 0].copy(),
        spatial_x=arr[..., 1].copy(),
        spatial_y=arr[..., 2].copy(),
        order=np.array([m.order for m, _ in mappings], dtype=np.int64),
    )
    g = space.encode(batch)
    fanout_repair(space, g, rng)
    capacity_repair(space, g, rng)
    return g


def initial_genomes(space: MapSpace, initial: Sequence[Mapping] | None, rng: np.random.Generator) -> Genome:
    """Genomes of warm-start mappings already expressed for this layer (fanout- and capacity-repaired).

    Mappings for another layer shape or architecture are skipped: `ReplayBuffer.seeds` adapts those."""
    ok = [(m, space.layer) for m in initial or () if _fits(m, space)]
    return adapt(ok, space, rng)


def _fits(m: Mapping, space: MapSpace) -> bool:
    try:
        m.check_structure(space.layer, space.arch)
    except InvalidMappingError:
        return False
    return True


@dataclass
class Entry:
    layer: Layer
    arch: str
    n_levels: int
    objective: str
    mappings: list[Mapping] = field(default_factory=list)


class ReplayBuffer:
    """(layer, best mappings) per searched layer; `seeds` gives the nearest layers' mappings, adapted."""

    def __init__(self, neighbours: int = 3, per_layer: int = 2, path: str | Path | None = None) -> None:
        self.neighbours = neighbours
        self.per_layer = per_layer
        self.entries: list[Entry] = []
        self.path = Path(path) if path is not None else None
        if self.path is not None and self.path.exists():
            self.load(self.path)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, layer: Layer, arch: Architecture, objective: str, mappings: Sequence[Mapping | None]) -> None:
        """Store a layer's best mappings (best first); a layer already stored is replaced."""
        ms = [m for m in mappings if m is not None][: self.per_layer]
        if not ms:
            return
        key = layer_key(layer)
        self.entries = [
            e
            for e in self.entries
            if not (e.arch == arch.name and e.objective == objective and layer_key(e.layer) == key)
        ]
        self.entries.append(Entry(layer, arch.name, arch.n_levels, objective, list(ms)))

    def nearest(self, layer: Layer, arch: Architecture, objective: str) -> list[tuple[float, Entry]]:
        cands = [
            (layer_distance(layer, e.layer), -i, e)
            for i, e in enumerate(self.entries)
            if e.arch == arch.name and e.n_levels == arch.n_levels and e.objective == objective
        ]
        cands.sort(key=lambda t: (t[0], t[1]))
        return [(d, e) for d, _, e in cands[: self.neighbours]]

    def seeds(self, layer: Layer, arch: Architecture, objective: str, seed: int = 0) -> list[Mapping]:
        """Adapted, repaired mappings of the nearest stored layers for `layer` (empty when none is stored)."""
        near = self.nearest(layer, arch, objective)
        if not near:
            return []
        from rlmap.model.costmodel import CostModel

        space = MapSpace(layer, arch, CostModel(layer, arch))
        g = adapt([(m, e.layer) for _, e in near for m in e.mappings], space, np.random.default_rng(seed))
        out: list[Mapping] = []
        seen = set()
        batch = space.decode(g)
        for m in (batch[i] for i in range(len(batch))):
            k = m.nest_key()
            if k not in seen:
                seen.add(k)
                out.append(m)
        return out

    # ------------------------------------------------------------------ file
    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "entries": [
                {
                    "layer": e.layer.model_dump(mode="json"),
                    "arch": e.arch,
                    "n_levels": e.n_levels,
                    "objective": e.objective,
                    "mappings": [
                        {"temporal": m.temporal, "spatial_x": m.spatial_x, "spatial_y": m.spatial_y, "order": m.order}
                        for m in e.mappings
                    ],
                }
                for e in self.entries
            ],
        }

    def save(self, path: str | Path | None = None) -> None:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the replay buffer to")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_json()))

    def load(self, path: str | Path) -> None:
        """Add the entries of a file written by `save` (one-line SpecError if it is not one)."""
        try:
            data = json.loads(Path(path).read_text())
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FILE_VERSION}")
            for e in data["entries"]:
                ms = [
                    Mapping(
                        **{
                            k: tuple(tuple(int(v) for v in row) for row in m[k])
                            for k in ("temporal", "spatial_x", "spatial_y", "order")
                        }
                    )
                    for m in e["mappings"]
                ]
                self.entries.append(
                    Entry(Layer(**e["layer"]), str(e["arch"]), int(e["n_levels"]), str(e["objective"]), ms)
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SpecError(f"not a warm-start replay buffer ({exc})", str(path)) from None
