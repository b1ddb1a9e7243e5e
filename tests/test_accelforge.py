"""The real tools load rlmap's exports: AccelForge (run in its own interpreter, one batched subprocess) and
Timeloop (where `timeloop-model` is installed).

AccelForge is found through $RLMAP_ACCELFORGE_PYTHON or the checkout's `.venv-accelforge/bin/python`
(`.ci/run` creates it); without it these tests skip and say how to install it.  Every mapping the project's
mappers (random, ga, sa, optimal, surrogate) and shipped policies produce for a few layers is exported, loaded and
evaluated by AccelForge, and must give rlmap's numbers under `accelforge` semantics: every access count,
energy and cycles.  The exported files are also read back by the importer (round trip).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from rlmap.interop import export as ex
from rlmap.interop.accelforge_bridge import ACCELFORGE_VERSION, evaluate_in_accelforge, unavailable_reason
from rlmap.interop.mapping_import import from_accelforge
from rlmap.interop.yaml_tags import load_tagged_yaml
from rlmap.model.costmodel import CostModel
from rlmap.search.driver import get_mapper
from rlmap.spec.io import checkpoints_dir, load_architecture
from rlmap.spec.layer import Layer

WHY = unavailable_reason()

LAYERS = [
    Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=1),
    Layer(name="dw_s2", kind="depthwise", K=16, C=16, groups=16, P=4, Q=4, R=3, S=3, stride=2, padding=1),
    Layer(name="fc", kind="gemm", K=32, C=32, P=16),
]
MAPPERS = {"random": 300, "ga": 1500, "sa": 1500, "optimal": 0}


def _search(name: str, layer: Layer, arch) -> object:
    mapper = get_mapper(name)
    if name == "optimal":
        mapper.time_limit = 2.0
        return mapper.search(layer, arch, objective="edp", budget=1, seed=0).mapping
    return mapper.search(layer, arch, objective="edp", budget=MAPPERS[name], seed=0).mapping


@lru_cache(maxsize=1)
def produced() -> list[tuple[str, Layer, object, object]]:
    """(source, layer, architecture, mapping) for every mapper x layer on two presets (the surrogate-guided
    mapper on one layer), and the shipped policies on their architectures."""
    cases = []
    for arch_name in ("eyeriss", "simba"):
        arch = load_architecture(arch_name)
        for layer in LAYERS:
            for name in MAPPERS:
                cases.append((name, layer, arch, _search(name, layer, arch)))
    import rlmap.surrogate  # noqa: F401 - registers the `surrogate` mapper

    for arch_name in ("eyeriss", "simba"):  # the surrogate-guided mapper is slower: one layer each
        arch = load_architecture(arch_name)
        cases.append(
            (
                "surrogate",
                LAYERS[0],
                arch,
                get_mapper("surrogate").search(LAYERS[0], arch, objective="edp", budget=50, seed=0).mapping,
            )
        )
    from rlmap.rl.mapper import PolicyMapper

    for arch_name in ("eyeriss", "sparse_eyeriss"):
        if not (checkpoints_dir() / f"policy_{arch_name}").exists():
            continue
        arch = load_architecture(arch_name)
        for layer in LAYERS:
            cases.append(
                (
                    f"policy_{arch_name}",
                    layer,
                    arch,
                    PolicyMapper().search(layer, arch, "edp", budget=1, seed=0).mapping,
                )
            )
    return [c for c in cases if c[3] is not None]


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_mapper_and_policy_mappings_load_in_accelforge_and_match():
    cases = produced()
    assert len(cases) >= 30 and len({src for src, *_ in cases}) >= 7
    version, results = evaluate_in_accelforge([(layer, arch, m) for _, layer, arch, m in cases])
    assert version == ACCELFORGE_VERSION, f"tests are pinned to AccelForge {ACCELFORGE_VERSION}, found {version}"
    for (src, layer, arch, m), r in zip(cases, results):
        where = f"{src} mapping of {layer.name} on {arch.name}"
        assert r.ok, f"{where}: AccelForge rejected the export: {r.error}"
        mine = CostModel(layer, arch.model_copy(update={"semantics": "accelforge"})).evaluate(m)
        np.testing.assert_allclose(mine.reads, r.reads, rtol=1e-9, atol=1e-9, err_msg=where)
        np.testing.assert_allclose(mine.writes, r.writes, rtol=1e-9, atol=1e-9, err_msg=where)
        assert mine.energy == pytest.approx(r.energy, rel=1e-6), where
        assert mine.cycles == pytest.approx(r.cycles, rel=1e-6), where


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_cli_export_files_evaluate_in_accelforge(tmp_path):
    """`rlmap export --format accelforge` writes files AccelForge evaluates to the numbers the command prints."""
    from typer.testing import CliRunner

    from rlmap.cli.app import app
    from rlmap.interop.accelforge_bridge import read_result, run_accelforge
    from rlmap.spec.io import save_mapping

    layer, arch = LAYERS[0], load_architecture("eyeriss")
    m = _search("ga", layer, arch)
    net = tmp_path / "net.yaml"
    net.write_text("name: one\nlayers:\n  - {name: conv, K: 16, C: 8, P: 8, Q: 8, R: 3, S: 3, padding: 1}\n")
    save_mapping(m, arch, tmp_path / "m.yaml", layer)
    r = CliRunner().invoke(
        app,
        [
            "export",
            "-n",
            str(net),
            "-a",
            "eyeriss",
            "-m",
            str(tmp_path / "m.yaml"),
            "-f",
            "accelforge",
            "-o",
            str(tmp_path / "af"),
        ],
    )
    assert r.exit_code == 0, r.output
    job = {stem: (tmp_path / "af" / f"{stem}.yaml").read_text() for stem in ("arch", "workload", "mapping")}
    _, raw = run_accelforge([job])
    got = read_result(raw[0], arch)
    assert got.ok, got.error
    mine = CostModel(layer, arch.model_copy(update={"semantics": "accelforge"})).evaluate(m)
    assert f"energy {mine.energy:.6g} {arch.energy_unit}, cycles {mine.cycles:.6g}" in r.stdout
    assert got.energy == pytest.approx(mine.energy, rel=1e-6) and got.cycles == pytest.approx(mine.cycles, rel=1e-6)
    # and the LoopTree reads back into the same mapping's numbers
    back = from_accelforge(load_tagged_yaml(job["mapping"]), layer, arch)
    again = CostModel(layer, arch.model_copy(update={"semantics": "accelforge"})).evaluate(back)
    assert (again.reads, again.writes, again.energy) == (mine.reads, mine.writes, mine.energy)


def test_every_mapper_and_policy_mapping_exports_to_timeloop_and_reads_back():
    """No refusals left: dimensions unrolled on both X and Y of one level (which the mappers produce often)
    go through the dummy Y level; every mapping reads back to itself (AccelForge not needed)."""
    from rlmap.interop.mapping_import import from_timeloop

    both_axes = 0
    for src, layer, arch, m in produced():
        docs = ex.to_timeloop(layer, arch, m)
        back = from_timeloop(load_tagged_yaml(ex.dump_yaml(docs["mapping"])), layer, arch)
        assert back.nest_key() == m.nest_key(), f"{src} mapping of {layer.name} on {arch.name}"
        both_axes += any(x > 1 and y > 1 for lx, ly in zip(m.spatial_x, m.spatial_y) for x, y in zip(lx, ly))
    assert both_axes > 0  # the case the old exporter refused is among them


TIMELOOP = shutil.which("timeloop-model")
TIMELOOP_WHY = (
    "timeloop-model is not installed: Timeloop has no PyPI or Debian package (PyPI's `timeloop` is an "
    "unrelated task scheduler; `pytimeloop` and `timeloopfe` are not on PyPI) and building it from "
    "source needs its C++ dependencies and network access; AccelForge 1.0.467 cannot parse Timeloop "
    "v0.4 files either"
)


@pytest.mark.skipif(TIMELOOP is None, reason=TIMELOOP_WHY)
def test_timeloop_loads_every_export(tmp_path):  # pragma: no cover - needs timeloop-model
    for i, (src, layer, arch, m) in enumerate(produced()):
        out = tmp_path / str(i)
        ex.export("timeloop", layer, arch, m, out)
        proc = subprocess.run(
            [TIMELOOP, *(str(out / f"{s}.yaml") for s in ("arch", "problem", "mapping", "ERT"))],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"{src} mapping of {layer.name} on {arch.name}: {proc.stderr[-500:]}"
        assert Path(out / "timeloop-model.stats.txt").exists()
