"""A few hundred bad inputs across every command: each ends with ONE stderr line naming the culprit, exit code 2,
nothing on stdout and nothing written (issue 18, "Done when").

The command lines are tests/data/bad_inputs.txt; the generated spec files below add one case per bad value of
every layer, architecture and mapping field.  All run in-process through `rlmap.cli.app.run` (the console
script's own entry point), so the sweep takes seconds, not one interpreter start per case.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlmap.cli.app import run

CASES_FILE = Path(__file__).resolve().parent / "data" / "bad_inputs.txt"

NET = {
    "name": "tiny",
    "layers": [
        {"name": "conv", "K": 16, "C": 8, "P": 8, "Q": 8, "R": 3, "S": 3, "padding": 1},
        {"name": "fc", "kind": "gemm", "K": 32, "C": 16, "P": 4},
    ],
}
GOOD_MAPPING = {
    "arch": "eyeriss",
    "layer": "conv",
    "levels": [
        {"name": "DRAM", "temporal": {"K": 16, "C": 8, "P": 8, "Q": 8}},
        {"name": "GLB"},
        {"name": "spad", "temporal": {"R": 3, "S": 3}},
    ],
}

# ---------------------------------------------------------------------------- generated spec files
BAD_COUNTS: dict[str, Any] = {
    "true": True,
    "false": False,
    "zero": 0,
    "neg": -3,
    "2pow70": 2**70,
    "frac": 1.5,
    "text": "x",
    "null": None,
    "list": [2, 2],
    "dict": {"a": 1},
    "quoted": "16",
}
BAD_PAIRS: dict[str, Any] = {
    "true": True,
    "half_true": [1, True],
    "2pow70": 2**70,
    "neg": -1,
    "triple": [1, 2, 3],
    "text": "x",
}
BAD_REALS: dict[str, Any] = {
    "inf": float("inf"),
    "nan": float("nan"),
    "neg": -1.0,
    "true": True,
    "text": "x",
    "quoted": "0.5",
}
BIG_ENERGIES: dict[str, Any] = {"1e308": 1e308, "1e13": 1e13}  # past MAX_ENERGY (1e12): totals could overflow


def _layer_files() -> dict[str, tuple[dict, str]]:
    """file name -> (network YAML data, the field the error must name)."""
    out: dict[str, tuple[dict, str]] = {}

    def add(tag: str, field: str, **change: Any) -> None:
        layer = {**NET["layers"][0], **change}
        out[f"layer_{tag}.yaml"] = ({"name": "bad", "layers": [layer]}, field)

    for f in ("N", "K", "C", "P", "Q", "R", "S", "groups", "repeat"):
        for tag, v in BAD_COUNTS.items():
            add(f"{f}_{tag}", f, **{f: v})
    for f in ("stride", "dilation", "padding"):
        for tag, v in {**BAD_PAIRS, "quoted": "2", "quoted_pair": ["1", 1]}.items():
            add(f"{f}_{tag}", f, **{f: v})
    for tag, v in {
        "inf": float("inf"),
        "nan": float("nan"),
        "zero": 0,
        "above_one": 1.5,
        "true": True,
        "quoted": "0.5",
    }.items():
        add(f"density_{tag}", "density", density={"inputs": v})
    add("macs_past_int64", "too large to model", K=2**40, C=2**40, P=2**20)
    add("kind_bogus", "kind", kind="lstm")
    add("name_empty", "name", name="")
    add("extra_field", "bias", bias=True)
    return out


def _arch_files(eyeriss: dict) -> dict[str, tuple[dict, str]]:
    """file name -> (architecture YAML data: eyeriss with one bad field, the field the error must name)."""
    import copy

    out: dict[str, tuple[dict, str]] = {}

    def add(tag: str, field: str, where: str, value: Any) -> None:
        data = copy.deepcopy(eyeriss)
        target = data["levels"][1] if where == "level" else data["compute"] if where == "compute" else data
        target[field] = value
        out[f"arch_{tag}.yaml"] = (data, field)

    for f in ("read_energy", "write_energy"):
        for tag, v in {**BAD_REALS, **BIG_ENERGIES, "null": None}.items():
            add(f"{f}_{tag}", f, "level", v)
    for tag, v in {**BAD_REALS, "zero": 0, "1e-300": 1e-300}.items():
        add(f"bandwidth_{tag}", "bandwidth", "level", v)
    for tag, v in {
        "true": True,
        "zero": 0,
        "neg": -5,
        "2pow70": 2**70,
        "frac": 1.5,
        "text": "x",
        "quoted": "1024",
    }.items():
        add(f"capacity_{tag}", "capacity", "level", v)
    add("capacity_part_quoted", "capacity", "level", {"inputs": "12", "weights": 12, "outputs": 12})
    for tag, v in {"true": True, "zero": 0, "2pow70": 2**70, "frac": 1.5, "quoted": "16"}.items():
        add(f"word_bits_{tag}", "word_bits", "level", v)
    for tag, v in {"true": True, "zero": 0, "2pow70": 2**70, "quoted": "2"}.items():
        add(f"fanout_{tag}", "fanout", "level", {"x": v})
    for tag, v in {**BAD_REALS, **BIG_ENERGIES}.items():
        add(f"mac_energy_{tag}", "mac_energy", "compute", v)
    for tag, v in {"inf": float("inf"), "nan": float("nan"), "zero": 0, "true": True, "quoted": "1.0"}.items():
        add(f"clock_ghz_{tag}", "clock_ghz", "top", v)
    for tag, v in {"true": True, "zero": 0, "quoted": "16"}.items():
        add(f"data_bits_{tag}", "data_bits", "top", v)
    add("semantics_bogus", "semantics", "top", "maestro")
    return out


def _mapping_files() -> dict[str, tuple[dict, str]]:
    """file name -> (mapping YAML data: GOOD_MAPPING with one defect, a word the error must contain)."""
    import copy

    out: dict[str, tuple[dict, str]] = {}

    def add(tag: str, needle: str, edit: Any) -> None:
        data = copy.deepcopy(GOOD_MAPPING)
        edit(data)
        out[f"map_{tag}.yaml"] = (data, needle)

    def dram(**kv: Any) -> Any:
        return lambda d: d["levels"][0]["temporal"].update(kv)

    def set_(lvl: int, key: str, value: Any) -> Any:
        return lambda d: d["levels"][lvl].__setitem__(key, value)

    add("temporal_list", "temporal", set_(0, "temporal", [2, 16]))
    add("temporal_text", "temporal", set_(0, "temporal", "K16"))
    add("spatial_list", "spatial_x", set_(1, "spatial_x", [4]))
    for tag, v in {"true": True, "zero": 0, "neg": -2, "frac": 1.5, "text": "x", "2pow70": 2**70}.items():
        add(f"factor_{tag}", "temporal", dram(K=v))
    add("dim_unknown", "Z", dram(Z=2))
    add("dim_twice", "dimension K is given twice ('K' and 'k') at level DRAM", dram(k=16))
    add("place_twice", "tensor weights is given twice", set_(1, "place", {"weights": 1, "W": 1}))
    add("order_repeat", "order", set_(0, "order", "KKC"))
    add("order_int", "order", set_(0, "order", 5))
    add("order_unknown", "order", set_(0, "order", "ZK"))
    add("level_name", "L2", set_(1, "name", "L2"))
    add("arch_other", "arch: mapping is for simba, --arch is eyeriss", lambda d: d.__setitem__("arch", "simba"))
    add("extra_field", "tiles", set_(0, "tiles", 3))
    add("levels_not_list", "levels", lambda d: d.__setitem__("levels", {"a": 1}))
    add("levels_missing", "levels", lambda d: d.pop("levels"))
    add("two_levels", "levels", lambda d: d.__setitem__("levels", d["levels"][:2]))
    add("product_mismatch", "invalid mapping", dram(K=3))
    add(
        "fanout_exceeded",
        "invalid mapping",
        lambda d: (d["levels"][0]["temporal"].pop("K"), d["levels"][0].__setitem__("spatial_x", {"K": 16})),
    )
    add(
        "capacity_exceeded",
        "invalid mapping",
        lambda d: (
            d["levels"][0].__setitem__("temporal", {}),
            d["levels"][2].__setitem__("temporal", {"K": 16, "C": 8, "P": 8, "Q": 8, "R": 3, "S": 3}),
        ),
    )
    return out


def _eyeriss() -> dict:
    from rlmap.spec.io import envs_dir

    return yaml.safe_load((envs_dir() / "arch" / "eyeriss.yaml").read_text())


LAYER_FILES = _layer_files()
ARCH_FILES = _arch_files(_eyeriss())
MAPPING_FILES = _mapping_files()


def _cases() -> list[tuple[list[str], list[str]]]:
    """(needles, argv) for every line of bad_inputs.txt and every generated file."""
    cases = []
    for line in CASES_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        needles, _, args = line.partition(" :: ")
        cases.append(([n.strip() for n in needles.split("&&")], shlex.split(args)))
    for name, (_, field) in LAYER_FILES.items():
        cases.append(([name, field], ["search", "-n", name, "--mapper", "random", "--budget", "10"]))
    for name, (_, field) in ARCH_FILES.items():
        cases.append(([name, field], ["eval", "-n", "net.yaml", "-a", name, "-m", "good.yaml"]))
    for name, (_, needle) in MAPPING_FILES.items():
        cases.append(([name, needle], ["eval", "-n", "net.yaml", "-a", "eyeriss", "-m", name]))
        cases.append(
            (
                [name, needle],
                ["export", "-n", "net.yaml", "-a", "eyeriss", "-m", name, "-f", "timeloop", "-o", "exported"],
            )
        )
        cases.append(([name, needle], ["import-mapping", name, "-n", "net.yaml", "-a", "eyeriss", "-o", "m.yaml"]))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "net.yaml").write_text(yaml.safe_dump(NET))
    (root / "good.yaml").write_text(yaml.safe_dump(GOOD_MAPPING))
    (root / "existing_file").write_text("a regular file\n")
    (root / "a_dir").mkdir()
    (root / "model.py").write_text(
        "import torch.nn as nn\n\n\ndef build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(512, 10))\n"
    )
    (root / "raises.py").write_text("def build():\n    raise RuntimeError('boom')\n")
    (root / "notmodule.py").write_text("def build():\n    return 42\n")
    (root / "empty.npz").write_bytes(b"")
    (root / "garbage.npz").write_text("not a zip\n")
    (root / "empty.yaml").write_text("")
    (root / "malformed.yaml").write_text("a: [1, 2\nb: }\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    for files in (LAYER_FILES, ARCH_FILES, MAPPING_FILES):
        for name, (data, _) in files.items():
            (root / name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return root


def test_the_sweep_has_a_few_hundred_cases() -> None:
    assert len(CASES) >= 300, len(CASES)


@pytest.mark.parametrize("needles,argv", CASES, ids=[" ".join(a)[:90] for _, a in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(needles, argv, scratch, capsys, monkeypatch) -> None:
    monkeypatch.chdir(scratch)
    before = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
    code = run(list(argv))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert out == "", out[-2000:]
    after = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
    assert after == before, sorted(set(after) ^ set(before))
