"""The one exception type a user's mistake turns into; the CLI prints it as one line, exit code 2."""

from __future__ import annotations

from typing import Any


class SpecError(ValueError):
    """Bad user input: a malformed file, an impossible layer, a mapping that does not fit.

    `where` names the file and/or field so the message can point at the culprit.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InvalidMappingError(SpecError):
    """A mapping that violates its layer's dimensions or its architecture's fanout/capacity."""


def pydantic_message(exc: Exception) -> str:
    """Condense a pydantic ValidationError into 'field.path: reason; ...' (one line)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = err.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work, carrying what was finished before it (`partial`, None if nothing).

    A KeyboardInterrupt, so callers that do not know it still stop; the CLI reports and writes `partial`,
    marked partial, and exits with code 130 (the shell's code for SIGINT).
    """

    def __init__(self, partial: Any = None, done: int = 0, total: int = 0) -> None:
        super().__init__(f"interrupted after {done} of {total}")
        self.partial = partial
        self.done = done
        self.total = total


EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), whatever was kept."""
