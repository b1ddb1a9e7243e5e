"""The execution backend interface: what every backend (local processes, Ray) provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self

RAY_ADDRESS_ENV = "RLMAP_RAY_ADDRESS"
"""Environment variable naming the Ray cluster when --ray is not given ('auto' or HOST:PORT / ray://HOST:PORT)."""

TaskFn = Callable[[Any], Any]
"""A task function: one argument, one result, both picklable; a module-level function (workers import it)."""


class Backend(ABC):
    """Runs independent tasks somewhere and yields (index, result) as they finish, in any order.

    Implementations never change a result: order and placement are the only things a backend decides, and
    `run_tasks` puts the results back in task order.
    """

    name: str = "backend"

    @abstractmethod
    def imap_unordered(self, fn: TaskFn, args: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield (i, fn(args[i])) for every i, as each finishes."""

    @property
    def workers(self) -> int:
        """How many tasks may run at once (for messages and for splitting work)."""
        return 1

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def close(self) -> None:  # noqa: B027 -- an optional hook: backends without resources keep this no-op
        """Release what the backend started (a local Ray instance); joined clusters are left running."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
