"""Task results on disk, one file each, written atomically: what makes an interrupted run resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

from rlmap.spec.outputs import atomic_write

_SUFFIX = ".pkl"


def _canonical(obj: Any) -> Any:
    """JSON-able form for hashing: pydantic models by their fields, other objects by their pickled bytes."""
    if hasattr(obj, "model_dump"):
        return {"__model__": type(obj).__qualname__, **obj.model_dump(mode="json")}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            "__dataclass__": type(obj).__qualname__,
            **{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)},
        }
    if isinstance(obj, (set, frozenset)):
        return sorted(map(repr, obj))
    if isinstance(obj, type) or callable(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    try:
        return hashlib.sha256(pickle.dumps(obj, protocol=5)).hexdigest()
    except (AttributeError, TypeError, pickle.PicklingError):
        # an object pickle cannot reach (e.g. a class defined in a function): its type and its state
        if not hasattr(obj, "__dict__"):
            raise
        return {"__object__": f"{type(obj).__module__}.{type(obj).__qualname__}", **vars(obj)}


def task_key(*parts: Any) -> str:
    """A stable file-name key for a task: the SHA-256 of its inputs in canonical JSON (same inputs, same key, in
    any process), so a stored result is only ever read back for the very same task."""
    text = json.dumps(parts, sort_keys=True, default=_canonical, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ResultStore:
    """A folder of `KEY.pkl` files.  `put` writes a temp file in the same folder and renames it over the target
    (rlmap.spec.outputs.atomic_write), so a reader sees the whole result or none; leftovers of a killed writer
    (hidden `.KEY.*.tmp*` files) are never read and are removed by `clear`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{_SUFFIX}"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> Any:
        with open(self._path(key), "rb") as f:
            return pickle.load(f)

    def put(self, key: str, value: Any) -> None:
        def dump(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                pickle.dump(value, f, protocol=5)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename: a crash leaves the old state or the whole result

        atomic_write(self._path(key), dump)

    def keys(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {p.name[: -len(_SUFFIX)] for p in self.folder.glob(f"*{_SUFFIX}") if not p.name.startswith(".")}

    def clear(self) -> None:
        """Remove the folder's result and temp files (and the folder when it is then empty)."""
        if not self.folder.is_dir():
            return
        for p in list(self.folder.glob(f"*{_SUFFIX}")) + list(self.folder.glob(".*.tmp")):
            p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass
