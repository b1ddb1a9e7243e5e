"""Picking up a training run after an interrupt or a kill: which checkpoint to resume from (the newest one
that is intact), what to clear when a folder holds a run that never reached a checkpoint, and trimming the
TensorBoard log back to the resumed step so the step axis carries on without two values at one step."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from rlmap.rl.config import run_checkpoints

LAYOUT_TAG = "custom_scalars__config__"
"""The TensorBoard custom-scalars layout, written again by every invocation (rlmap.rl.env's metrics callback)."""


@dataclass
class ResumePoint:
    """The checkpoint a run resumes from, and the newer ones passed over because they were damaged."""

    path: Path
    step: int
    skipped: list[str] = field(default_factory=list)

    def describe(self, run: Path) -> str:
        return f"step {self.step:,} ({'; '.join([str(self.path.relative_to(run)), *self.skipped])})"


def checkpoint_step(path: Path) -> int | None:
    """Steps a saved SB3 model was trained for, or None when the zip is missing, truncated or not a model."""
    try:
        with zipfile.ZipFile(path) as z:
            if z.testzip() is not None or "policy.pth" not in z.namelist():
                return None
            return int(json.loads(z.read("data"))["num_timesteps"])
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError):
        return None


def step_files(ck: Path) -> list[tuple[int, Path]]:
    """checkpoints/step_N.zip, newest first (names that do not parse are ignored)."""
    found = []
    for p in ck.glob("step_*.zip"):
        n = p.stem.removeprefix("step_")
        if n.isdigit():
            found.append((int(n), p))
    return sorted(found, reverse=True)


def resume_point(run: Path) -> ResumePoint | None:
    """The newest intact checkpoint: last.zip, unless it is missing, damaged or older than an intact step_N.zip
    (a kill between writing step_N.zip and copying it to last.zip); None when the run has none."""
    ck = run_checkpoints(run)
    skipped: list[str] = []
    last = ck / "last.zip"
    last_step = checkpoint_step(last) if last.exists() else None
    if last_step is None:
        skipped.append("last.zip is damaged" if last.exists() else "no last.zip")
    for n, p in step_files(ck):
        if last_step is not None and n <= last_step:
            break
        step = checkpoint_step(p)
        if step is not None:
            if last_step is not None:
                skipped.append(f"last.zip is older (step {last_step:,})")
            return ResumePoint(p, step, skipped)
        skipped.append(f"{p.name} is damaged")
    if last_step is not None:
        return ResumePoint(last, last_step, [s for s in skipped if s.endswith("damaged")])
    return None


def clear_unfinished(run: Path) -> None:
    """Remove what a run that never reached a checkpoint left (its logs and partial checkpoints), so the folder
    can start over without a second, unrelated step axis in TensorBoard."""
    for sub in (run / "tensorboard", run_checkpoints(run)):
        if sub.exists():
            shutil.rmtree(sub)


def trim_tensorboard(log_dir: Path, step: int) -> int:
    """Drop the events logged after `step` (by the invocation that went on past its last checkpoint) and the
    layout the resumed invocation writes again; returns the number of events dropped.  Files are rewritten
    atomically, a truncated last record (a killed writer) is dropped too."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(log_dir.glob("**/events.out.tfevents.*")):
        keep: list[bytes] = []
        n = 0
        for raw in RawEventFileLoader(str(path)).Load():
            n += 1
            ev = Event.FromString(raw)
            layout_only = ev.HasField("summary") and all(v.tag == LAYOUT_TAG for v in ev.summary.value)
            if ev.step <= step and not (layout_only and ev.summary.value):
                keep.append(raw)
        if len(keep) == n and path.stat().st_size == _size(keep):
            continue
        dropped += n - len(keep)
        tmp = path.with_name(path.name + ".trim")
        with tmp.open("wb") as fh:
            writer = RecordWriter(fh)
            for raw in keep:
                writer.write(raw)
            writer.flush()
        tmp.replace(path)
    return dropped


def _size(records: list[bytes]) -> int:
    """Bytes the TFRecord framing of `records` takes (8 length + 4 crc + data + 4 crc each)."""
    return sum(16 + len(r) for r in records)
