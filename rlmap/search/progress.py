"""Progress of long work: a rich bar on a terminal, plain periodic lines when output is piped or in CI.

`progress_bar(...)` returns an object with the subset of `rich.progress.Progress` the commands use
(`add_task`, `update`, `advance`, context manager).  On a terminal it *is* a rich Progress; otherwise a
`PlainProgress` prints one line per task every `RLMAP_PROGRESS_SECONDS` seconds (default 5) from a timer
thread, plus a last line when the work ends, so a 3-minute GA run in CI is never silent.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

DEFAULT_INTERVAL_S = 5.0
INTERVAL_ENV = "RLMAP_PROGRESS_SECONDS"


def progress_interval() -> float:
    """Seconds between plain progress lines (environment RLMAP_PROGRESS_SECONDS, default 5)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value >= 0 else DEFAULT_INTERVAL_S


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)


class PlainProgress:
    """Plain-text progress for pipes and CI logs: 'description: 3/12 (25%), 14 s, <info>' every few seconds."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None, enabled: bool = True) -> None:
        self.stream = stream
        self.interval = progress_interval() if interval is None else interval
        self.enabled = enabled
        self.tasks: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    # -- rich.progress.Progress subset
    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        with self._lock:
            tid = len(self.tasks)
            self.tasks[tid] = _Task(description, total, completed, fields=dict(fields))
        return tid

    def start(self) -> None:
        self.__enter__()

    def stop(self) -> None:
        self.__exit__(None, None, None)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        with self._lock:
            t = self.tasks[task_id]
            if completed is not None:
                t.completed = completed
            if advance is not None:
                t.completed += advance
            if total is not None:
                t.total = total
            if description is not None:
                t.description = description
            t.fields.update(fields)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def __enter__(self) -> PlainProgress:
        self._t0 = time.monotonic()
        if self.enabled and self.interval > 0:
            self._thread = threading.Thread(target=self._beat, name="rlmap-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.enabled and exc[0] is None:
            self.emit(final=True)

    # -- output
    def line(self, t: _Task, final: bool = False) -> str:
        """One progress line for a task."""
        done = f"{t.completed:,.0f}"
        if t.total:
            done += f"/{t.total:,.0f} ({100 * t.completed / t.total:.0f}%)"
        info = t.fields.get("info") or ""
        tail = f", {info}" if info else ""
        state = "done in" if final else "running"
        return f"{t.description}: {done}, {state} {time.monotonic() - self._t0:.0f} s{tail}"

    def emit(self, final: bool = False) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            lines = [self.line(t, final) for t in self.tasks.values()]
        for text in lines:
            print(text, file=stream, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()


def progress_bar(
    description_column: str = "[bold]{task.description}",
    enabled: bool = True,
    stream: TextIO | None = None,
    transient: bool = True,
    console: Any = None,
    remaining: bool = False,
    bar_width: int | None = 40,
) -> Any:
    """A rich Progress on a terminal (stderr or `console`), a PlainProgress otherwise; `enabled=False`: silent.
    `remaining` adds rich's time-remaining column.  Tasks carry an `info` field (pass info="" to add_task)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    out = stream if stream is not None else (console.file if console is not None else sys.stderr)
    if enabled and getattr(out, "isatty", lambda: False)():
        columns = [
            TextColumn(description_column),
            BarColumn(bar_width=bar_width),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            *([TimeRemainingColumn()] if remaining else []),
            TextColumn("{task.fields[info]}"),
        ]
        return Progress(*columns, transient=transient, console=console)
    return PlainProgress(stream=out, enabled=enabled)
