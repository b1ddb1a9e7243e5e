"""The one exception type a user's mistake turns into; the CLI prints it as one line, exit code 2."""

from __future__ import annotations


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
