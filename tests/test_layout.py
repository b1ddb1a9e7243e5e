"""The package layout: subpackages import only the stages below them, and no modules import each other in a cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    """`lint-imports` with the contracts of pyproject.toml (layers spec -> ... -> cli, acyclic siblings)."""
    pytest.importorskip("importlinter")
    proc = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout


def test_an_upward_import_would_break_the_contract(tmp_path: Path) -> None:
    """The contract is live: a copy of the package where spec imports model fails it."""
    pytest.importorskip("importlinter")
    import shutil

    shutil.copytree(REPO / "rlmap", tmp_path / "rlmap", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "rlmap" / "spec" / "layer.py"
    bad.write_text(bad.read_text() + "\nfrom rlmap.model import costmodel  # noqa: E402,F401\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, '.'); "
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "rlmap.spec.layer -> rlmap.model.costmodel" in proc.stdout, proc.stdout


def test_public_api_is_one_import_away_and_every_mapper_is_registered() -> None:
    import rlmap
    from rlmap.search.driver import MAPPERS

    for name in rlmap.__all__:
        assert getattr(rlmap, name) is not None
    assert {"random", "ga", "sa", "optimal", "surrogate", "policy"} <= set(MAPPERS)


def test_policies_pickled_under_the_old_flat_layout_still_load() -> None:
    """The shipped zips were saved when the extractor lived in `rlmap.policy` (now `rlmap.rl.policy`);
    loading rebuilds policy_kwargs from the run config instead of unpickling that path."""
    pytest.importorskip("sb3_contrib")
    import base64
    import json
    import zipfile

    from rlmap.rl.checkpoint import load_policy
    from rlmap.rl.policy import LevelwiseExtractor
    from rlmap.spec.io import checkpoints_dir

    folder = checkpoints_dir() / "policy_eyeriss"
    with zipfile.ZipFile(folder / "model.zip") as z:
        blob = base64.b64decode(json.loads(z.read("data"))["policy_kwargs"][":serialized:"])
    assert b"rlmap.policy" in blob and b"rlmap.rl.policy" not in blob  # pickled under the old module path
    policy = load_policy(folder)
    assert isinstance(policy.model.policy.features_extractor, LevelwiseExtractor)
