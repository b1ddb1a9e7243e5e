"""The options every command that fans out work shares: `-j/--processes` and `--ray`, and the backend they select."""

from __future__ import annotations

import typer

RAY_HELP = ("run the tasks on Ray: 'auto' joins the cluster this machine belongs to or starts a local one; "
            "HOST:PORT (or ray://HOST:10001) joins that cluster; default: $RLMAP_RAY_ADDRESS, else local processes "
            "(-j then caps the tasks in flight; needs pip install 'rlmap[ray]'; see docs/distributed.md)")


def ray_option() -> str | None:
    """`--ray` as a typer option default (one definition for every command)."""
    return typer.Option(None, "--ray", metavar="auto|ADDRESS", help=RAY_HELP)


def open_backend(processes: int, ray: str | None, quiet: bool = False):
    """The backend for -j/--ray; says on stderr where the tasks run when it is not this machine's processes."""
    from rlmap.cli.common import console
    from rlmap.execution import backend_from_options

    backend = backend_from_options(processes, ray)
    if backend.name != "local" and not quiet:
        console(stderr=True).print(f"tasks run on {backend.describe()}")
    return backend
