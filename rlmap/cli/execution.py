"""The options every command that fans out work shares: `-j/--processes` and `--ray`, and the backend they select."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rlmap.execution import Backend

RAY_HELP = (
    "run the tasks on Ray: ADDRESS 'auto' joins the cluster this machine belongs to or starts a local one; "
    "'local' always starts a private local one; "
    "HOST:PORT (or ray://HOST:10001) joins that cluster; default: $RLMAP_RAY_ADDRESS, else local processes "
    "({cap} then caps the tasks in flight; needs pip install 'rlmap\\[ray]'; see docs/distributed.md)"
)


def ray_option(cap: str = "-j") -> Any:
    """`--ray` as a typer option default (one definition for every command); `cap` names the command's option
    that sets how many tasks run at once.  (`\\[` keeps rich from reading "[ray]" as markup.)"""
    return typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP.format(cap=cap))


def open_backend(processes: int, ray: str | None, resume_dir: Path | None = None, quiet: bool = False) -> Backend:
    """The backend for -j/--ray.  Says on stderr where the tasks run when it is not this machine's processes, and
    how many finished tasks an interrupted earlier run left in `resume_dir` (they are read back, not redone)."""
    from rlmap.cli.common import console
    from rlmap.execution import ResultStore, backend_from_options

    backend = backend_from_options(processes, ray)
    err = console(stderr=True)
    if resume_dir is not None and not quiet:
        done = len(ResultStore(resume_dir).keys())
        if done:
            err.print(f"resuming: {done} finished task(s) of an interrupted run found in {resume_dir}")
    if backend.name != "local" and not quiet:
        err.print(f"tasks run on {backend.describe()}")
    return backend
