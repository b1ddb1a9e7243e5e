"""Seeded random but plausible accelerators in the family the cost model covers (docs/hardware.md).

    from rlmap.hardware.generator import generate_architecture
    arch = generate_architecture(seed=7)          # always the same Architecture for seed 7

Every draw is a DRAM -> global buffer -> ... -> MAC hierarchy of 3 or 4 storage levels with:
a PE array of 4..64 by 4..64 (square or not; a 4-level design may split it into a cluster array and
vector lanes), a dataflow restriction per axis drawn from known designs (any dim, TPU-like K x C/R/S,
NVDLA-like K x C, Simba-like K/C, row-stationary-like, output-stationary-like), shared or per-tensor
partitioned buffers, bypassed tensors, capacities shrinking inward, bandwidths, 8- or 16-bit words, and
with some probability sparse features (compressed inputs/weights, MAC gating or skipping).  Access
energies come from rlmap.hardware.energy for each level's capacity and word width, so a larger buffer
costs more per access.  The sampling ranges are the module constants below.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlmap.hardware.energy import mac_energy, storage_access_energy
from rlmap.spec.arch import Architecture
from rlmap.spec.problem import TENSORS

ARRAY_SIDES: tuple[int, ...] = (4, 6, 8, 12, 14, 16, 24, 32, 48, 64)
"""PE-array side lengths (per axis); the issue asks for 4x4 .. 64x64, square and not."""
CLUSTER_SIDES: tuple[int, ...] = (1, 2, 4, 8)
"""Cluster-array sides of a 4-level design whose inner fanout is a vector of lanes (Simba-like)."""
LANE_SIDES: tuple[int, ...] = (4, 8, 16)
DATAFLOWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "any": ((), ()),
    "weight_stationary": (("K",), ("C", "R", "S")),  # TPU-like systolic array
    "kc": (("K",), ("C",)),  # NVDLA-like
    "kc_both": (("K", "C"), ("K", "C")),  # Simba inter-PE
    "row_stationary": (("S", "Q", "K"), ("R", "P", "C")),
    "output_stationary": (("Q", "K"), ("P", "N")),  # ShiDianNao-like output tiles
}
"""Allowed dims on (X, Y) of the main PE array; the keys are the names in an architecture's description."""
GLB_BYTES = (16 * 1024, 4 * 1024 * 1024)
"""Global-buffer capacity range (log-uniform)."""
PE_BUFFER_BYTES = (1024, 64 * 1024)
RF_WORDS = (8, 512)
DRAM_BANDWIDTH = (1.0, 256.0)
"""DRAM words per cycle (eyeriss 1.8 .. cloud 256)."""
GLB_BANDWIDTH = (16.0, 1024.0)
SPARSE_PROBABILITY = 0.25


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _choice(rng: np.random.Generator, options: Any, p: Any = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _capacity(rng: np.random.Generator, words: int, keeps: tuple[str, ...], partitioned: bool) -> int | dict[str, int]:
    """One shared capacity, or the same total split among the kept tensors (Dirichlet shares)."""
    if not partitioned or len(keeps) == 1:
        return max(1, words)
    shares = rng.dirichlet([2.0] * len(keeps))
    return {t: max(1, int(words * s)) for t, s in zip(keeps, shares)}


def _largest(capacity: int | dict[str, int]) -> int:
    return max(capacity.values()) if isinstance(capacity, dict) else capacity


def _level(
    name: str,
    capacity: int | dict[str, int] | None,
    bits: int,
    keeps: tuple[str, ...],
    bandwidth: float | None = None,
    fanout: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A level whose energy is the cost of its largest partition (the presets' convention)."""
    e = storage_access_energy(None if capacity is None else _largest(capacity), bits)
    lvl: dict[str, Any] = {
        "name": name,
        "capacity": capacity,
        "word_bits": bits,
        "keeps": list(keeps),
        "read_energy": float(f"{e:.6g}"),
        "write_energy": float(f"{e:.6g}"),
    }
    if bandwidth is not None:
        lvl["bandwidth"] = round(bandwidth, 3)
    if fanout is not None:
        lvl["fanout"] = fanout
    return lvl


def generate_spec(seed: int, name: str | None = None) -> dict[str, Any]:
    """The architecture for `seed` as a plain dict (what `rlmap generate` writes as YAML)."""
    rng = np.random.default_rng([0x524C4D, seed])
    bits = int(_choice(rng, (8, 16), p=(0.7, 0.3)))
    n_levels = int(_choice(rng, (3, 4)))
    flow = str(_choice(rng, list(DATAFLOWS)))
    x_dims, y_dims = DATAFLOWS[flow]
    ax, ay = int(_choice(rng, ARRAY_SIDES)), int(_choice(rng, ARRAY_SIDES))
    if rng.random() < 0.3:
        ay = ax  # square arrays are common
    glb_words = int(_log_uniform(rng, *GLB_BYTES) * 8 / bits)
    glb_keeps = _choice(rng, [TENSORS, ("inputs", "outputs"), ("inputs", "weights")], p=(0.6, 0.3, 0.1))
    glb_cap = _capacity(rng, glb_words, glb_keeps, rng.random() < 0.3)
    dram_bw = None if rng.random() < 0.15 else _log_uniform(rng, *DRAM_BANDWIDTH)
    glb_bw = None if rng.random() < 0.2 else _log_uniform(rng, *GLB_BANDWIDTH)
    array = {"x": ax, "y": ay, "x_dims": list(x_dims), "y_dims": list(y_dims)}
    levels = [_level("DRAM", None, bits, TENSORS, dram_bw)]
    rf_words = int(_log_uniform(rng, *RF_WORDS))
    rf_partitioned = rng.random() < 0.5
    layout = "flat"
    if n_levels == 3:
        levels.append(_level("global_buffer", glb_cap, bits, glb_keeps, glb_bw, array))
        levels.append(
            _level(
                "pe_spad",
                _capacity(rng, rf_words, TENSORS, rf_partitioned),
                bits,
                TENSORS,
                None if rng.random() < 0.6 else _log_uniform(rng, 2.0, 16.0),
            )
        )
    else:
        layout = str(_choice(rng, ("clustered", "register")))
        pe_words = int(min(_log_uniform(rng, *PE_BUFFER_BYTES), _largest(glb_cap) * bits / 8 / 4) * 8 / bits)
        pe_cap = _capacity(rng, max(pe_words, 16), TENSORS, rng.random() < 0.5)
        if layout == "clustered":  # Simba-like: cluster array, then vector lanes of MACs
            cx, cy = int(_choice(rng, CLUSTER_SIDES)), int(_choice(rng, CLUSTER_SIDES))
            lx, ly = int(_choice(rng, LANE_SIDES)), int(_choice(rng, LANE_SIDES))
            outer: dict[str, Any] = {"x": max(cx, 1), "y": max(cy, 1)}
            if flow != "any":
                outer |= {"x_dims": ["K", "C"], "y_dims": ["K", "C"]}
            levels.append(_level("global_buffer", glb_cap, bits, glb_keeps, glb_bw, outer))
            levels.append(
                _level(
                    "pe_buffer",
                    pe_cap,
                    bits,
                    TENSORS,
                    None,
                    {"x": lx, "y": ly, "x_dims": list(x_dims), "y_dims": list(y_dims)},
                )
            )
        else:  # an array of PEs, each with a buffer and a register file (or a weight register)
            levels.append(_level("global_buffer", glb_cap, bits, glb_keeps, glb_bw, array))
            levels.append(_level("pe_buffer", pe_cap, bits, TENSORS))
        if rng.random() < 0.4:
            levels.append(_level("weight_reg", 1, bits, ("weights",)))
        else:
            rf_keeps = _choice(rng, [TENSORS, ("weights", "outputs"), ("outputs",)], p=(0.6, 0.25, 0.15))
            levels.append(_level("rf", _capacity(rng, min(rf_words, 64), rf_keeps, rf_partitioned), bits, rf_keeps))
    sparse = "none"
    on: list[str] = []
    if rng.random() < SPARSE_PROBABILITY:
        sparse = str(_choice(rng, ("gate", "skip")))
        on = [t for t in ("inputs", "weights") if rng.random() < 0.7] or ["weights"]
        fmt = str(_choice(rng, ("rle", "bitmask")))
        for lvl in levels:
            cap = lvl["capacity"]
            if cap is not None and _largest(cap) < 64:
                continue  # a tiny register file holds raw words
            fmts = {t: fmt for t in on if t in lvl["keeps"]}
            if fmts:
                lvl["formats"] = fmts
    pes = math.prod(lvl.get("fanout", {}).get("x", 1) * lvl.get("fanout", {}).get("y", 1) for lvl in levels)
    name = name or generated_name(seed)
    desc = (
        f"generated (seed {seed}): {n_levels} levels ({layout}), {pes} MACs, {bits}-bit, dataflow {flow}, "
        f"global buffer {_largest(glb_cap) * bits // 8:,} B keeping {', '.join(glb_keeps)}"
        + (f", sparse {sparse} on {', '.join(on)}" if sparse != "none" else "")
    )
    return {
        "name": name,
        "description": desc,
        "source": f"rlmap.hardware.generator seed {seed}; energies rlmap.hardware.energy (45 nm, docs/hardware.md)",
        "data_bits": bits,
        "clock_ghz": 1.0,
        "levels": levels,
        "compute": {"mac_energy": float(f"{mac_energy(bits):.6g}"), "sparse": sparse, **({"on": on} if on else {})},
    }


def generated_name(seed: int) -> str:
    """The name (and file stem, envs/generated/NAME.yaml) of the architecture generated from `seed`."""
    return f"gen{seed}"


def generate_architecture(seed: int, name: str | None = None) -> Architecture:
    """The plausible accelerator for `seed` (deterministic), named `gen{seed}` unless `name` is given."""
    return Architecture.model_validate(generate_spec(seed, name))


def generate_architectures(n: int, seed: int = 0) -> list[Architecture]:
    """`n` architectures, seeds seed .. seed + n - 1."""
    return [generate_architecture(s) for s in range(seed, seed + n)]
