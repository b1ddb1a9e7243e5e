"""rlmap.cli.app: presets, one-line errors with exit code 2, eval against the cost model, import, export."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlmap.cli.app import app, run
from rlmap.model.costmodel import CostModel
from rlmap.spec.io import envs_dir, load_architecture, load_network, save_mapping
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import N_DIMS, C, K, P, Q, R, S

runner = CliRunner()

TINY_NET = """\
name: tiny
description: two small layers for CLI tests
layers:
  - {name: conv, K: 16, C: 8, P: 8, Q: 8, R: 3, S: 3, padding: 1}
  - {name: fc, kind: gemm, K: 32, C: 16, P: 4}
"""


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(text: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0]


def run_capture(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def tiny_net(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_NET)
    return p


def conv_mapping(spad_k: int = 1, spad_c: int = 1) -> Mapping:
    """conv (K16 C8 P8 Q8 R3 S3) on eyeriss: all on DRAM except the filter window (and K, C factors) in the spads."""
    L = 3
    t = [[1] * N_DIMS for _ in range(L)]
    t[0][K], t[0][C], t[0][P], t[0][Q] = 16 // spad_k, 8 // spad_c, 8, 8
    t[2][R], t[2][S], t[2][K], t[2][C] = 3, 3, spad_k, spad_c
    ones = tuple(tuple([1] * N_DIMS) for _ in range(L))
    return Mapping(tuple(map(tuple, t)), ones, ones, tuple(tuple(range(N_DIMS)) for _ in range(L)))


# ----------------------------------------------------------------------------- presets
def test_list():
    r = invoke("list")
    assert r.exit_code == 0, r.output
    for name in ("eyeriss", "simba", "resnet18", "vgg16"):
        assert name in r.stdout
    assert "168" in r.stdout  # eyeriss PEs


def test_show_network_and_arch_presets():
    r = invoke("show", "network", "resnet18")
    assert r.exit_code == 0, r.output
    assert "layer2.0.downsample" in r.stdout and "pointwise" in r.stdout
    assert f"{load_network('resnet18').macs:,}" in r.stdout
    r = invoke("show", "arch", "eyeriss")
    assert r.exit_code == 0, r.output
    for s in ("GLB", "spad", "55,296 shared", "I 12 / W 224 / O 24", "14x12", "PEs: 168"):
        assert s in r.stdout, s
    r = invoke("show", "arch", str(envs_dir() / "arch" / "simba.yaml"))  # a file path works too
    assert r.exit_code == 0 and "X:K,C" in r.stdout


# ----------------------------------------------------------------------------- user errors: one line, exit 2
def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    r = invoke("show", "network", str(missing))
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert str(missing) in line and "file not found" in line
    r = invoke("show", "arch", "no_such_preset")
    assert r.exit_code == 2 and "presets:" in one_line_error(r.stderr)


def test_malformed_yaml(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nlayers: [\n  - {name: a\n")
    r = invoke("show", "network", str(p))
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert "broken.yaml" in line and "malformed YAML at line" in line


def test_negative_dimension(tmp_path):
    p = tmp_path / "neg.yaml"
    p.write_text("name: n\nlayers:\n  - {name: a, K: -3, C: 4}\n")
    r = invoke("show", "network", str(p))
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert "neg.yaml" in line and "layers.0.K" in line and "greater than 0" in line


def test_unknown_tensor_in_arch(tmp_path):
    text = (envs_dir() / "arch" / "eyeriss.yaml").read_text()
    assert "keeps: [inputs, outputs]" in text
    p = tmp_path / "arch.yaml"
    p.write_text(text.replace("keeps: [inputs, outputs]", "keeps: [inputs, activations]"))
    r = invoke("show", "arch", str(p))
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert "arch.yaml" in line and "levels.1.keeps" in line and "activations" in line


def test_density_out_of_range(tmp_path):
    p = tmp_path / "dens.yaml"
    p.write_text("name: n\nlayers:\n  - {name: a, K: 3, C: 4, density: {inputs: 1.5}}\n")
    r = invoke("show", "network", str(p))
    assert r.exit_code == 2
    assert "layers.0.density.inputs" in one_line_error(r.stderr)


def test_usage_errors_through_main(capsys, tiny_net, tmp_path):
    m = tmp_path / "m.yaml"
    save_mapping(conv_mapping(), load_architecture("eyeriss"), m, load_network(str(tiny_net)).layer("conv"))
    code, _, err = run_capture(
        capsys,
        "export",
        "-n",
        str(tiny_net),
        "-a",
        "eyeriss",
        "-m",
        str(m),
        "--format",
        "maestro",
        "-o",
        str(tmp_path / "out"),
    )
    assert code == 2 and one_line_error(err).startswith("error: --format: unknown format 'maestro'")
    code, _, err = run_capture(capsys, "eval", "-n", str(tiny_net), "-a", "eyeriss")
    assert code == 2 and "Missing option '--mapping'" in one_line_error(err)
    code, _, err = run_capture(capsys, "list", "--bogus")
    assert code == 2 and "--bogus" in one_line_error(err)
    code, _, err = run_capture(capsys, "frobnicate")
    assert code == 2 and "frobnicate" in one_line_error(err)
    code, _, err = run_capture(capsys, "show", "network", str(tmp_path / "missing.yaml"))
    assert code == 2 and "file not found" in one_line_error(err)
    code, out, _ = run_capture(capsys)  # no arguments: help
    assert code == 0 and "eval" in out


def test_entry_point_prints_no_traceback(tmp_path):
    p = tmp_path / "neg.yaml"
    p.write_text("name: n\nlayers:\n  - {name: a, K: -3, C: 4}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "rlmap", "show", "network", str(p)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert one_line_error(proc.stderr).startswith(f"error: {p}: layers.0.K")


# ----------------------------------------------------------------------------- eval
def test_eval_matches_cost_model(tiny_net, tmp_path):
    arch = load_architecture("eyeriss")
    layer = load_network(str(tiny_net)).layer("conv")
    m = conv_mapping(spad_k=4)
    cost = CostModel(layer, arch).evaluate(m)
    assert cost.valid, cost.reason
    path = tmp_path / "m.yaml"
    save_mapping(m, arch, path, layer)
    r = invoke("eval", "--network", str(tiny_net), "--arch", "eyeriss", "--mapping", str(path))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert f"energy       {cost.energy:.6g} MAC-eq\n" in out  # eyeriss: normalized to one MAC, not pJ
    assert f"cycles       {cost.cycles:.6g}" in out
    assert f"EDP          {cost.edp:.6g}" in out
    assert f"utilization  {cost.utilization * 100:.2f} %" in out
    assert f"MACs         {layer.macs:,}" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for i, lvl in enumerate(arch.levels):
        assert f"{cost.level_energy[i]:.6g}" in rows[lvl.name], lvl.name
    assert f"{cost.mac_energy:.6g}" in rows["MAC"]
    # spad (keeps everything): its six access counts, in words, in I/W/O reads-writes order
    spad = [float(x.replace(",", "")) for x in rows["spad"][1:7]]
    assert spad == [v for t in range(3) for v in (cost.reads[2][t], cost.writes[2][t])]
    assert rows["GLB"][3:5] == ["-", "-"]  # weights bypass the GLB
    # --layer overrides / supplies the layer
    r2 = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path), "--layer", "conv")
    assert r2.exit_code == 0 and r2.stdout == out


def test_eval_invalid_mapping_and_unknown_layer(tiny_net, tmp_path):
    arch = load_architecture("eyeriss")
    layer = load_network(str(tiny_net)).layer("conv")
    m = conv_mapping(spad_c=4)  # inputs tile 4 x 3 x 3 = 36 words > the 12-word ifmap spad
    reason = CostModel(layer, arch).evaluate(m).reason
    assert reason
    path = tmp_path / "bad.yaml"
    save_mapping(m, arch, path, layer)
    r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path))
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert str(path) in line and reason in line
    # a layer the network lacks, and a mapping file naming none
    r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path), "--layer", "conv9")
    assert r.exit_code == 2 and "--layer" in one_line_error(r.stderr) and "conv9" in r.stderr
    data = yaml.safe_load(path.read_text())
    del data["layer"]
    path.write_text(yaml.safe_dump(data))
    r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path))
    assert r.exit_code == 2 and "--layer" in one_line_error(r.stderr)
    # a mapping for the wrong architecture: its `arch:` field says so
    r = invoke("eval", "-n", str(tiny_net), "-a", "simba", "-m", str(path), "--layer", "conv")
    assert r.exit_code == 2 and f"{path}: arch: mapping is for eyeriss, --arch is simba" in one_line_error(r.stderr)
    # ... and without that field, its 3 levels do not fit simba's 4
    del data["arch"]
    path.write_text(yaml.safe_dump(data))
    r = invoke("eval", "-n", str(tiny_net), "-a", "simba", "-m", str(path), "--layer", "conv")
    assert r.exit_code == 2 and "levels" in one_line_error(r.stderr)


def test_eval_energies_at_the_bound_stay_finite_and_a_non_finite_total_is_refused(tiny_net, tmp_path):
    """Per-access energies are capped at 1e12 (spec/bounds.py MAX_ENERGY), so a total cannot overflow; a cost
    whose totals are not finite anyway (an arch built around the checks) is refused in one line, not printed."""
    from rlmap.cli.common import check_finite_cost
    from rlmap.spec.bounds import MAX_ENERGY
    from rlmap.spec.errors import SpecError

    data = yaml.safe_load((envs_dir() / "arch" / "eyeriss.yaml").read_text())
    data["levels"][0]["read_energy"] = MAX_ENERGY
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(data))
    arch = load_architecture(str(big))
    layer = load_network(str(tiny_net)).layer("conv")
    m = conv_mapping()
    cost = CostModel(layer, arch).evaluate(m)
    dram_reads = sum(cost.reads[0])
    assert dram_reads > 0 and cost.level_energy[0] >= dram_reads * 1e12  # huge, finite
    path = tmp_path / "m.yaml"
    save_mapping(m, arch, path, layer)
    r = invoke("eval", "-n", str(tiny_net), "-a", str(big), "-m", str(path))
    assert r.exit_code == 0, r.output
    assert f"energy       {cost.energy:.6g} MAC-eq\n" in r.stdout and "inf" not in r.stdout and "nan" not in r.stdout
    # past the bound: refused when the file is read (tests/data/bad_inputs.txt has 1e13 and 1e308)
    data["levels"][0]["read_energy"] = 1e308
    big.write_text(yaml.safe_dump(data))
    r = invoke("eval", "-n", str(tiny_net), "-a", str(big), "-m", str(path))
    assert r.exit_code == 2 and "read_energy" in one_line_error(r.stderr) and r.stdout == ""
    # the last guard: an architecture made without validation overflows, and the cost is refused
    lv = arch.levels[0].model_construct(**{**arch.levels[0].__dict__, "read_energy": 1e308})
    unchecked = arch.model_construct(**{**arch.__dict__, "levels": [lv, *arch.levels[1:]]})
    cost = CostModel(layer, unchecked).evaluate(m)
    assert cost.energy == float("inf")
    with pytest.raises(
        SpecError, match=r"--arch big.yaml: the cost model's totals are not finite \(energy inf, EDP inf\)"
    ):
        check_finite_cost(cost, "big.yaml")


# ----------------------------------------------------------------------------- export
def test_export_command(tiny_net, tmp_path):
    arch = load_architecture("eyeriss")
    layer = load_network(str(tiny_net)).layer("conv")
    path = tmp_path / "m.yaml"
    save_mapping(conv_mapping(), arch, path, layer)
    for fmt, files in (
        ("timeloop", {"problem.yaml", "mapping.yaml", "arch.yaml", "ERT.yaml"}),
        ("accelforge", {"mapping.yaml", "arch.yaml", "workload.yaml"}),
    ):
        out = tmp_path / fmt
        r = invoke("export", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path), "--format", fmt, "-o", str(out))
        assert r.exit_code == 0, r.output
        assert {p.name for p in out.iterdir()} == files
    tl = yaml.safe_load((tmp_path / "timeloop" / "mapping.yaml").read_text())
    assert tl["mapping"][0] == {
        "target": "DRAM",
        "type": "temporal",
        "factors": "C=8 M=16 R=1 S=1 N=1 P=8 Q=8",
        "permutation": "SRQPCMN",
    }


# ----------------------------------------------------------------------------- Timeloop / AccelForge mappings in
def test_eval_and_import_mapping_read_timeloop_and_accelforge_files(tiny_net, tmp_path):
    from rlmap.interop.export import export

    arch = load_architecture("eyeriss")
    layer = load_network(str(tiny_net)).layer("conv")
    m = conv_mapping(spad_k=4)
    cost = CostModel(layer, arch).evaluate(m)
    af_cost = CostModel(layer, arch.model_copy(update={"semantics": "accelforge"})).evaluate(m)
    assert af_cost.energy > cost.energy  # the halo along the DRAM loops: AccelForge refetches whole tiles
    export("timeloop", layer, arch, m, tmp_path / "tl")
    export("accelforge", layer, arch, m, tmp_path / "af")
    for fmt, path in (("timeloop", tmp_path / "tl" / "mapping.yaml"), ("accelforge", tmp_path / "af" / "mapping.yaml")):
        r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path), "--layer", "conv")
        assert r.exit_code == 0, r.output
        assert (
            f"({fmt} format), semantics timeloop" in r.stdout and f"energy       {cost.energy:.6g} MAC-eq" in r.stdout
        )
        r = invoke(
            "eval",
            "-n",
            str(tiny_net),
            "-a",
            "eyeriss",
            "-m",
            str(path),
            "--layer",
            "conv",
            "--semantics",
            "accelforge",
        )
        assert r.exit_code == 0 and f"energy       {af_cost.energy:.6g} MAC-eq" in r.stdout
        # a two-layer network: Timeloop and AccelForge files name no layer
        r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(path))
        assert r.exit_code == 2 and f"is a {fmt} mapping, which names no layer; pass --layer" in one_line_error(
            r.stderr
        )
        out = tmp_path / f"{fmt}.rlmap.yaml"
        r = invoke("import-mapping", str(path), "-n", str(tiny_net), "-a", "eyeriss", "-l", "conv", "-o", str(out))
        assert r.exit_code == 0, r.output
        assert f"({fmt} format)" in r.stderr + r.stdout and f"wrote {out}" in r.stdout
        r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(out))  # names its layer
        assert r.exit_code == 0 and f"energy       {cost.energy:.6g} MAC-eq" in r.stdout
    r = invoke("eval", "-n", str(tiny_net), "-a", "eyeriss", "-m", str(out), "--semantics", "maestro")
    assert r.exit_code == 2 and "--semantics" in one_line_error(r.stderr)
    r = invoke(
        "import-mapping",
        str(tmp_path / "tl" / "mapping.yaml"),
        "-n",
        str(tiny_net),
        "-a",
        "eyeriss",
        "-l",
        "conv",
        "--workload",
        str(tmp_path / "af" / "workload.yaml"),
    )
    assert r.exit_code == 2 and "--workload: applies to AccelForge mappings" in one_line_error(r.stderr)
    # without -o the rlmap YAML goes to stdout
    r = invoke(
        "import-mapping", str(tmp_path / "af" / "mapping.yaml"), "-n", str(tiny_net), "-a", "eyeriss", "-l", "conv"
    )
    assert r.exit_code == 0 and yaml.safe_load(r.stdout)["levels"][0]["name"] == "DRAM"


def test_import_mapping_says_what_is_not_expressible(tiny_net, tmp_path):
    """An AccelForge LoopTree whose spad storage of weights sits below a loop that does not index them
    (AccelForge refetches there, rlmap keeps the tile): one line naming the file, the storage and the loop.
    (Different tiles per tensor at the GLB, refused before per-tensor placement, are expressible now.)"""
    path = tmp_path / "af.yaml"
    path.write_text(
        textwrap.dedent("""\
        mapping:
          nodes:
          - !Storage {tensors: [I, W, O], component: DRAM}
          - !Temporal {rank_variable: k, tile_shape: 1}
          - !Storage {tensors: [O], component: GLB}
          - !Temporal {rank_variable: p, tile_shape: 1}
          - !Storage {tensors: [I], component: GLB}
          - !Temporal {rank_variable: c, tile_shape: 1}
          - !Temporal {rank_variable: q, tile_shape: 1}
          - !Storage {tensors: [I, W, O], component: spad}
          - !Temporal {rank_variable: r, tile_shape: 1}
          - !Temporal {rank_variable: s, tile_shape: 1}
          - !Compute {einsum: conv, component: MAC}
        """)
    )
    r = invoke("import-mapping", str(path), "-n", str(tiny_net), "-a", "eyeriss", "-l", "conv")
    assert r.exit_code == 2
    line = one_line_error(r.stderr)
    assert line.startswith(f"error: {path}: the storage of weights at spad sits below loop temporal q"), line


# ----------------------------------------------------------------------------- import
MODEL_PY = textwrap.dedent("""\
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            return self.fc(x.mean(dim=(2, 3)))

    def build():
        return Tiny()

    def not_a_model():
        return 42
""")


def test_import_command(tmp_path):
    model = tmp_path / "tiny_model.py"
    model.write_text(MODEL_PY)
    out = tmp_path / "net" / "tiny.yaml"
    r = invoke("import", f"{model}:build", "--input-shape", "1,3,16,16", "-o", str(out), "--name", "tinynet")
    assert r.exit_code == 0, r.output
    net = load_network(str(out))
    assert net.name == "tinynet"
    assert [(l.name, l.kind, l.K, l.C, l.P) for l in net.layers] == [
        ("conv", "conv", 8, 3, 8),
        ("fc", "gemm", 10, 8, 1),
    ]
    assert "conv" in r.stdout and "skipped" in r.stdout and "relu" in r.stdout
    # user mistakes: bad shape, missing function, builder returning a non-module
    r = invoke("import", f"{model}:build", "--input-shape", "1,3,x", "-o", str(out))
    assert r.exit_code == 2 and "bad input shape" in one_line_error(r.stderr)
    r = invoke("import", f"{model}:nope", "--input-shape", "1,3,16,16", "-o", str(out))
    assert r.exit_code == 2 and "no function 'nope'" in one_line_error(r.stderr)
    r = invoke("import", f"{model}:not_a_model", "--input-shape", "1,3,16,16", "-o", str(out))
    assert r.exit_code == 2 and "not a torch.nn.Module" in one_line_error(r.stderr)
