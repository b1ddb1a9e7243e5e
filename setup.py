"""Build hook: ship the preset library (envs/), agent configs (agents/) and shipped checkpoints (checkpoints/)
inside the package as `rlmap/_data/`, where `rlmap.spec.io` finds them through importlib.resources.

They stay at the repository root (where people edit them); an editable install reads them from there.
Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_DIRS = ("envs", "agents", "checkpoints")  # rlmap.spec.io.DATA_DIRS reads the same names


class BuildPyWithData(build_py):
    """build_py, then copy the data folders into the built package (not in editable mode)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "rlmap" / "_data"
        for name in DATA_DIRS:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(
                    src, dest / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )


setup(cmdclass={"build_py": BuildPyWithData})
