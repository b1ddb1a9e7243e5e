"""The `rlmap` command line: the root app only wires the command groups together.

One module per command group: common (shared helpers, errors, reports), inspect (list, show),
interop (import, export, import-mapping), evaluate (eval), search (search), analyze (analyze), rl (train, map),
codesign (codesign),
surrogate (surrogate ...), report (report: HTML page of results folders), generate (generate).
A new command goes in its own module here and is registered below with `app.command(NAME)(user_errors(fn))`.
`run()` catches whatever escapes the commands, so no traceback reaches the user for a mistake of theirs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import typer

from rlmap.cli import results
from rlmap.cli.analyze import analyze_cmd
from rlmap.cli.codesign import codesign_cmd
from rlmap.cli.common import error_line, user_errors
from rlmap.cli.evaluate import eval_cmd
from rlmap.cli.generate import generate_cmd
from rlmap.cli.inspect import list_cmd, show_app
from rlmap.cli.interop import export_cmd, import_cmd, import_mapping_cmd
from rlmap.cli.report import report_cmd
from rlmap.cli.rl import map_cmd, train_cmd
from rlmap.cli.search import search_cmd
from rlmap.spec.errors import EXIT_INTERRUPTED, SpecError

app = typer.Typer(
    name="rlmap",
    help="Map DNN layers onto spatial accelerators: inspect presets, import models, evaluate and export mappings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from rlmap import __version__

        typer.echo(f"rlmap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print rlmap's version and exit"
    ),
) -> None:
    """Map DNN layers onto spatial accelerators: inspect presets, import models, evaluate and export mappings."""


app.command("list")(user_errors(list_cmd))
app.add_typer(show_app, name="show")
app.command("import")(user_errors(import_cmd))
app.command("eval")(user_errors(eval_cmd))
app.command("export")(user_errors(export_cmd))
app.command("import-mapping")(user_errors(import_mapping_cmd))
app.command("search")(user_errors(search_cmd))
app.command("analyze")(user_errors(analyze_cmd))
app.command("generate")(user_errors(generate_cmd))
app.command("train")(user_errors(train_cmd))
app.command("map")(user_errors(map_cmd))
app.command("codesign")(user_errors(codesign_cmd))
app.command("report")(user_errors(report_cmd))

_SURROGATE_HELP = "Train and evaluate a neural surrogate of the cost model (dataset, train, eval)."


def _mount_surrogate(real: bool) -> None:
    """The surrogate commands import torch (~1.5 s), so they are loaded only when asked for."""
    if real:
        from rlmap.cli.surrogate import surrogate_app
    else:
        surrogate_app = typer.Typer(no_args_is_help=True)
        surrogate_app._rlmap_stub = True  # type: ignore[attr-defined]

        @surrogate_app.command("dataset")
        def _stub() -> None:  # pragma: no cover - replaced before it can run
            """Sample (layer, mapping) -> cost data; see `rlmap surrogate --help`."""

    app.add_typer(surrogate_app, name="surrogate", help=_SURROGATE_HELP)


# ----------------------------------------------------------------------------- entry point
def run(argv: Optional[list[str]] = None) -> int:
    """Run the CLI on `argv` (default sys.argv[1:]) and return the exit code; never raises for user errors."""
    from typer._click import exceptions as cx  # typer vendors click

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    results.COMMAND[:] = args  # recorded in run.json
    mounted = next((g for g in app.registered_groups if g.name == "surrogate"), None)
    if mounted is None or (args[0] == "surrogate" and getattr(mounted.typer_instance, "_rlmap_stub", False)):
        if mounted is not None:  # called in-process again (tests): swap the stub for the real commands
            app.registered_groups.remove(mounted)
        _mount_surrogate(real=args[0] == "surrogate")
    try:
        rv = app(args=args, prog_name="rlmap", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SpecError as exc:
        typer.echo(error_line(exc), err=True)
        return 2
    except cx.MissingParameter as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return 2
    except cx.BadParameter as exc:
        typer.echo(error_line(f"{_param_name(exc)}: {exc.message}"), err=True)
        return 2
    except cx.UsageError as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return 2
    except cx.ClickException as exc:
        typer.echo(error_line(exc.format_message()), err=True)
        return exc.exit_code or 1
    except (typer.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            typer.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        typer.echo("error: aborted", err=True)
        return 1
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(error_line(f"{where}{exc.strerror or exc}"), err=True)
        return 2
    except Exception as exc:  # a bug, not the user's mistake: one line, the traceback on request
        if os.environ.get("RLMAP_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        typer.echo(
            error_line(
                f"internal error ({type(exc).__name__}{': ' + first if first else ''}); "
                "please report it, with the traceback RLMAP_DEBUG=1 prints"
            ),
            err=True,
        )
        return 1


def _param_name(exc: Any) -> str:
    """'--format' for a bad option value (the long name), else click's hint."""
    param = getattr(exc, "param", None)
    opts = list(getattr(param, "opts", None) or [])
    if opts:
        return next((o for o in opts if o.startswith("--")), opts[0])
    hint = exc.param_hint
    return " / ".join(hint) if isinstance(hint, (list, tuple)) else str(hint or "option")


def main() -> None:
    """Console-script entry point (`rlmap = "rlmap.cli:main"`)."""
    code = run()
    if code == EXIT_INTERRUPTED:
        # Ctrl-C: what was finished is written (atomically) and reported; skip the interpreter's teardown of
        # torch, numba and friends (1-3 s), so the command stops when the user asked it to
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
