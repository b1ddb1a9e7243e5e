"""The architecture presets in envs/arch: they load, match their documented numbers, round-trip, and bad copies fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.io import dump_model, envs_dir, list_architectures, load_architecture, parse_model, save_architecture
from rlmap.spec.problem import TENSORS

# name -> documented MAC count (envs/arch/README.md)
EXPECTED_PES = {
    "eyeriss": 168,  # 14 x 12
    "sparse_eyeriss": 168,
    "simba": 16 * 64,  # 4 x 4 PEs x 8 vector MACs x 8 lanes, one chiplet
    "edge": 16 * 16,
    "cloud": 64 * 64,
    "tpu_like": 64 * 64,  # scaled down from TPU v1's 256 x 256
}

PRESETS = list_architectures()


def test_required_presets_exist() -> None:
    missing = set(EXPECTED_PES) - set(PRESETS)
    assert not missing, f"missing presets: {sorted(missing)}"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_is_documented(name: str) -> None:
    arch = load_architecture(name)
    assert isinstance(arch, Architecture)
    assert arch.name == name, "the preset's `name` must equal its file name"
    assert arch.description.strip() and arch.source.strip()
    for lvl in arch.levels:
        assert lvl.source.strip(), f"{name}: level {lvl.name} has no source"


@pytest.mark.parametrize("name", PRESETS)
def test_dram_first_keeps_everything(name: str) -> None:
    arch = load_architecture(name)
    top = arch.levels[0]
    assert top.name == "DRAM"
    assert set(top.keeps) == set(TENSORS)
    assert top.capacity is None
    assert top.fanout.size == 1


@pytest.mark.parametrize("name,pes", sorted(EXPECTED_PES.items()))
def test_num_pes(name: str, pes: int) -> None:
    assert load_architecture(name).num_pes == pes


@pytest.mark.parametrize("name", PRESETS)
def test_energies_increase_outward(name: str) -> None:
    arch = load_architecture(name)
    for outer, inner in zip(arch.levels, arch.levels[1:]):
        assert outer.read_energy >= inner.read_energy, f"{name}: {outer.name} reads cheaper than {inner.name}"
        assert outer.write_energy >= inner.write_energy, f"{name}: {outer.name} writes cheaper than {inner.name}"
    assert arch.compute.mac_energy > 0


@pytest.mark.parametrize("name", PRESETS)
def test_capacities_grow_outward(name: str) -> None:
    """An instance of an outer level holds at least as much as one instance of any level inside it."""
    arch = load_architecture(name)
    total = [
        None
        if lvl.capacity is None
        else (lvl.capacity if isinstance(lvl.capacity, int) else sum(lvl.capacity.values()))
        for lvl in arch.levels
    ]
    for i in range(1, len(total) - 1):
        assert total[i] >= total[i + 1], f"{name}: {arch.levels[i].name} smaller than {arch.levels[i + 1].name}"


@pytest.mark.parametrize("name", PRESETS)
def test_yaml_round_trip(name: str, tmp_path: Path) -> None:
    arch = load_architecture(name)
    assert parse_model(Architecture, dump_model(arch), "round-trip") == arch
    # through real YAML text as well (catches e.g. the `on` key becoming a boolean)
    path = save_architecture(arch, tmp_path / f"{name}.yaml")
    assert load_architecture(str(path)) == arch


# ----------------------------------------------------------------------------- preset-specific facts
def test_eyeriss_structure() -> None:
    arch = load_architecture("eyeriss")
    dram, glb, spad = arch.levels
    assert glb.keeps == ("inputs", "outputs")  # weights bypass the GLB, as on Eyeriss v1
    assert glb.capacity == 108 * 1024 // 2  # 108 KB of 16-bit words
    assert (glb.fanout.x, glb.fanout.y) == (14, 12)
    assert spad.capacity == {"inputs": 12, "weights": 224, "outputs": 24}
    # ISCA 2016 normalized costs: DRAM 200x, GLB 6x, RF 1x a MAC
    assert (dram.read_energy, glb.read_energy, spad.read_energy, arch.compute.mac_energy) == (200, 6, 1, 1)
    assert arch.compute.sparse == "none"


def test_sparse_eyeriss_matches_eyeriss_but_sparse() -> None:
    dense, sparse = load_architecture("eyeriss"), load_architecture("sparse_eyeriss")
    assert [(l.name, l.capacity, l.keeps, l.read_energy, l.fanout) for l in dense.levels] == [
        (l.name, l.capacity, l.keeps, l.read_energy, l.fanout) for l in sparse.levels
    ]
    assert sparse.compute.sparse == "skip"
    assert set(sparse.compute.on) == {"inputs", "weights"}
    assert any(lvl.formats for lvl in sparse.levels)
    for lvl in sparse.levels:
        assert lvl.formats.get("outputs", "uncompressed") == "uncompressed"
        for fmt in lvl.formats.values():
            assert fmt in ("uncompressed", "bitmask", "rle", "coordinate")


def test_simba_structure() -> None:
    arch = load_architecture("simba")
    names = [lvl.name for lvl in arch.levels]
    gb, pe = arch.levels[names.index("global_buffer")], arch.levels[names.index("pe_buffer")]
    assert gb.capacity == 64 * 1024 and "weights" not in gb.keeps
    assert (gb.fanout.x, gb.fanout.y) == (4, 4)
    assert pe.capacity == {"inputs": 8 * 1024, "weights": 32 * 1024, "outputs": 3 * 1024 * 8 // 24}
    assert (pe.fanout.x, pe.fanout.y) == (8, 8)
    assert pe.fanout.x_dims == ("K",) and pe.fanout.y_dims == ("C",)
    assert arch.data_bits == 8 and all(lvl.word_bits == 8 for lvl in arch.levels)


def test_tpu_like_structure() -> None:
    arch = load_architecture("tpu_like")
    spatial = [lvl for lvl in arch.levels if lvl.fanout.size > 1]
    assert len(spatial) == 1
    fan = spatial[0].fanout
    assert (fan.x, fan.y) == (64, 64)
    assert fan.x_dims == ("K",) and "C" in fan.y_dims and "K" not in fan.y_dims
    inner = arch.levels[-1]
    assert inner.keeps == ("weights",) and inner.capacity == 1  # weight-stationary register
    assert arch.data_bits == 8 and all(lvl.word_bits == 8 for lvl in arch.levels)


@pytest.mark.parametrize("name", ["edge", "cloud"])
def test_edge_cloud_structure(name: str) -> None:
    arch = load_architecture(name)
    assert [lvl.name for lvl in arch.levels] == ["DRAM", "SL2", "SL1"]
    assert all(set(lvl.keeps) == set(TENSORS) for lvl in arch.levels)
    assert arch.data_bits == 8 and all(lvl.word_bits == 8 for lvl in arch.levels)


def test_readme_lists_every_preset() -> None:
    readme = (envs_dir() / "arch" / "README.md").read_text()
    for name in PRESETS:
        assert f"`{name}`" in readme, f"envs/arch/README.md does not mention {name}"


# ----------------------------------------------------------------------------- malformed copies
def _eyeriss_copy() -> dict:
    return yaml.safe_load((envs_dir() / "arch" / "eyeriss.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_negative_capacity_is_a_spec_error(tmp_path: Path) -> None:
    data = _eyeriss_copy()
    data["levels"][1]["capacity"] = -5
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as exc:
        load_architecture(path)
    msg = str(exc.value)
    assert "levels.1.capacity" in msg and "positive" in msg and "bad.yaml" in msg


def test_negative_partition_is_a_spec_error(tmp_path: Path) -> None:
    data = _eyeriss_copy()
    data["levels"][2]["capacity"]["weights"] = 0
    with pytest.raises(SpecError, match=r"levels\.2\.capacity.*weights"):
        load_architecture(_write(tmp_path, data))


def test_unknown_tensor_in_keeps_is_a_spec_error(tmp_path: Path) -> None:
    data = _eyeriss_copy()
    data["levels"][2]["keeps"] = ["inputs", "weights", "activations"]
    with pytest.raises(SpecError) as exc:
        load_architecture(_write(tmp_path, data))
    msg = str(exc.value)
    assert "levels.2.keeps" in msg and "activations" in msg


def test_dram_not_keeping_everything_is_a_spec_error(tmp_path: Path) -> None:
    data = _eyeriss_copy()
    data["levels"][0]["keeps"] = ["inputs", "outputs"]
    with pytest.raises(SpecError, match="must keep every tensor"):
        load_architecture(_write(tmp_path, data))
