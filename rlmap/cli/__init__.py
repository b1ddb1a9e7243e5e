"""The `rlmap` command line (console script `rlmap = "rlmap.cli:main"`); see rlmap.cli.app."""

from rlmap.cli.app import app, main, run

__all__ = ["app", "main", "run"]
