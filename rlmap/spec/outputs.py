"""Writing results so that an interrupt or a crash never leaves a half-written file, and a folder reused
for a new run never keeps files of the old one: write to a temporary name, then `os.replace`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then move it onto `path` in one step."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes[-1:]), dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a result file gets the usual mode
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`Path.write_text`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


@contextlib.contextmanager
def staged_dir(output: str | Path) -> Iterator[Path]:
    """A temporary folder beside `output` to write a run's results into; on success each of its entries
    replaces the same-named entry of `output` (a folder as a whole, so no stale file of an earlier run stays
    in it), and other files in `output` are left alone.  On an exception `output` is untouched."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        with deferred_interrupt():  # a second Ctrl-C must not leave new mappings beside an old summary
            for entry in sorted(stage.iterdir()):
                dest = out / entry.name
                if entry.is_dir() and dest.exists():
                    trash = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old", dir=out))
                    os.replace(dest, trash / entry.name)
                    os.replace(entry, dest)
                    shutil.rmtree(trash, ignore_errors=True)
                else:
                    os.replace(entry, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back for the few renames that commit a result, then raise it: the output is the
    old one or the new one, never a mix.  Only the main thread can hold signals; elsewhere this does nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield  # not the main thread, or a process that ignores Ctrl-C (a worker): nothing to hold back
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
