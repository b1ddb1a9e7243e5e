"""rlmap.hardware: the energy laws reproduce the published points and the presets, and the generator draws
valid, plausible, reproducible accelerators that the environment can map onto."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rlmap.hardware import energy, tech
from rlmap.hardware.generator import (
    ARRAY_SIDES,
    DATAFLOWS,
    generate_architecture,
    generate_architectures,
    generate_spec,
)
from rlmap.spec.io import load_architecture


def test_sram_law_passes_through_horowitz_points():
    for cap_bytes, pj in tech.SRAM_POINTS_PJ:
        assert energy.sram_pj_per_64bit(cap_bytes) == pytest.approx(pj)
        # 64-bit words: the per-word energy is the published per-access energy
        assert energy.sram_access_energy(cap_bytes / 8, 64) == pytest.approx(pj)
    assert energy.SMALL_EXPONENT == pytest.approx(0.5)
    assert energy.LARGE_EXPONENT == pytest.approx(math.log(5) / math.log(32))


def test_larger_buffers_cost_more_and_width_scales_linearly():
    caps = np.geomspace(2, 2**20, 40)
    e = [energy.sram_access_energy(c, 8) for c in caps]
    assert all(b > a for a, b in itertools.pairwise(e))
    assert energy.sram_access_energy(4096, 16) == pytest.approx(2 * energy.sram_access_energy(8192, 8))  # same bytes
    assert energy.sram_access_energy(2**23, 8) == energy.sram_access_energy(2**20, 8)  # banked at 1 MB
    assert energy.storage_access_energy(1, 8) == pytest.approx(0.009)
    assert energy.storage_access_energy(None, 16) == pytest.approx(128.0)
    with pytest.raises(ValueError):
        energy.sram_access_energy(0, 8)


@pytest.mark.parametrize(
    "preset,level",
    [
        ("simba", "global_buffer"),
        ("simba", "pe_buffer"),
        ("edge", "SL2"),
        ("edge", "SL1"),
        ("cloud", "SL2"),
        ("cloud", "SL1"),
        ("tpu_like", "unified_buffer"),
        ("simba", "weight_reg"),
        ("cloud", "DRAM"),
    ],
)
def test_reproduces_absolute_presets(preset, level):
    arch = load_architecture(preset)
    lvl = arch.levels[arch.level_index(level)]
    cap = lvl.capacity
    words = None if cap is None else (max(cap.values()) if isinstance(cap, dict) else cap)
    assert energy.storage_access_energy(words, lvl.word_bits) == pytest.approx(lvl.read_energy, rel=0.01)
    assert energy.mac_energy(8) == pytest.approx(arch.compute.mac_energy)


def test_mac_energy_and_area_follow_horowitz():
    # 32-bit: multiplier 3.1 + adder 0.1 pJ, scaled by 0.315 / (0.2 + 0.03)
    assert energy.mac_energy(32) == pytest.approx(0.315 * 3.2 / 0.23)
    assert energy.mac_area(8) == pytest.approx(282 + 36)
    assert energy.mac_area(32) == pytest.approx(3495 + 137)
    assert energy.mac_energy(16) > energy.mac_energy(8)
    assert energy.sram_area(1024, 8) == pytest.approx(8192 * 0.346 / 0.7)


def test_generator_is_seeded_and_varied():
    assert generate_spec(5) == generate_spec(5)
    archs = generate_architectures(40)
    assert len({a.model_dump_json() for a in archs}) == 40
    assert generate_architecture(3, name="x").name == "x"
    seen = {"square": 0, "rect": 0, "partitioned": 0, "shared": 0, "sparse": 0, "3": 0, "4": 0, "restricted": 0}
    for a in archs:
        assert a.n_levels in (3, 4)
        assert a.levels[0].capacity is None
        seen[str(a.n_levels)] += 1
        main = max((lvl.fanout for lvl in a.levels), key=lambda f: f.size)
        seen["square" if main.x == main.y else "rect"] += 1
        seen["restricted"] += bool(main.x_dims)
        assert 16 <= a.num_pes <= 64 * 64
        caps = [lvl.capacity for lvl in a.levels[1:]]
        seen["partitioned"] += any(isinstance(c, dict) for c in caps)
        seen["shared"] += any(isinstance(c, int) for c in caps)
        seen["sparse"] += a.compute.sparse != "none"
        for lvl in a.levels:  # energies are the law's, for the level's largest partition
            c = lvl.capacity
            words = None if c is None else (max(c.values()) if isinstance(c, dict) else c)
            assert lvl.read_energy == pytest.approx(energy.storage_access_energy(words, lvl.word_bits), rel=1e-5)
        sizes = [max(c.values()) if isinstance(c, dict) else c for c in caps]
        assert sizes[0] >= sizes[-1]  # buffers shrink inward
    assert all(v > 0 for v in seen.values()), seen
    assert set(ARRAY_SIDES) >= {4, 64} and "any" in DATAFLOWS


def test_environment_maps_generated_architectures():
    from rlmap.rl.env import MappingEnv

    env = MappingEnv(arch=generate_architectures(6, seed=100), networks=["resnet18"], synthetic=0.5)
    rng = np.random.default_rng(0)
    for ep in range(12):
        env.reset(seed=ep)
        done = False
        while not done:
            _obs, _r, done, _t, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        assert info["valid"] and info["edp"] > 0
