"""Ctrl-C: `search` (one process and -j 2), `map`, `surrogate dataset` and `train` stop at once, keep and write
what they finished (marked partial), say so and exit 130; a reused output folder keeps no stale mapping.

Each command runs in its own process group and gets SIGINT the way a terminal's Ctrl-C delivers it (to the
whole group, workers included) right after a marker says its first piece of work finished.  The markers come
from small wrappers installed in the child around the progress bar and the training callbacks (they print to
stderr and change nothing else).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlmap.cli.app import run

STOP_S = 10.0
"""Seconds from SIGINT to exit the tests allow (it is about 1 s; the margin is for a loaded CI machine)."""

AFTER_PROGRESS = """
import sys, rich.progress as rp, rlmap.search.progress as pp
def _marking(update):
    def marked(self, *a, **k):
        update(self, *a, **k)
        if k.get("completed") or k.get("advance"):
            print("@@done", file=sys.stderr, flush=True)
    return marked
rp.Progress.update = _marking(rp.Progress.update)
pp.PlainProgress.update = _marking(pp.PlainProgress.update)
"""
"""Marks each piece of work done, after the command has stored it: the progress bars are told then
(search: one distinct layer; map: one batch of episodes; surrogate dataset: one (layer, arch) pair)."""

AFTER_ROLLOUT = """
import sys, rlmap.rl.training as t
_orig = t._callbacks
def _marked(*a, **k):
    from stable_baselines3.common.callbacks import BaseCallback
    class Marker(BaseCallback):
        def _on_step(self):
            return True
        def _on_rollout_end(self):
            print("@@done", file=sys.stderr, flush=True)
    return _orig(*a, **k) + [Marker()]
t._callbacks = _marked
"""


DUMP_STACKS = "import faulthandler, signal\nfaulthandler.register(signal.SIGUSR1, all_threads=True)\n"
"""Installed first in the child: SIGUSR1 makes it print every thread's stack (what a hang is waiting on)."""


def _diagnose(proc: subprocess.Popen) -> str:
    """The processes left in the command's group and the main process's thread stacks, for a hang's report."""
    ps = subprocess.run(
        ["ps", "-o", "pid,ppid,stat,etime,args", "-g", str(proc.pid)], capture_output=True, text=True
    ).stdout
    try:
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(1.0)
    except ProcessLookupError:
        pass
    os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    return f"processes:\n{ps}\nstdout (end):\n{out[-2000:]}\nstderr (end):\n{err[-8000:]}"


def interrupt(args: list[str], marker: str, cwd: Path, timeout: float = 240) -> tuple[int, str, str, float]:
    """Run `rlmap ARGS` with `marker` installed, Ctrl-C its process group after the first "@@done";
    (exit code, stdout, stderr, seconds from SIGINT to exit).  Fails if any process of the group survives."""
    code = DUMP_STACKS + marker + f"\nfrom rlmap.cli.app import main\nsys.argv = ['rlmap', *{args!r}]\nmain()\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            err.append(line)
            if "@@done" in line or time.monotonic() > deadline:
                break
        if proc.poll() is not None:
            raise AssertionError(
                f"ended (exit {proc.returncode}) before its first piece of work:\n"
                + "".join(err)[-3000:]
                + proc.stderr.read()[-3000:]
            )  # type: ignore[union-attr]
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, rest = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 60 s after Ctrl-C; " + _diagnose(proc)) from None
        seconds = time.monotonic() - t0
        for _ in range(50):  # worker processes (same process group) must be gone too
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("processes of the interrupted command are still running")
        return proc.returncode, out, "".join(err) + rest, seconds
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _check_partial_results(out_dir: Path, total_layers: int) -> dict:
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["partial"] is True and summary["layers_total"] == total_layers
    rows = summary["layers"]
    assert 1 <= len(rows) < total_layers
    # exactly the finished layers' mappings, nothing stale beside them
    assert sorted(p.stem for p in (out_dir / "mappings").iterdir()) == sorted(
        r["layer"] for r in rows if r.get("found", True)
    )
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    return summary


def test_search_ctrl_c_keeps_finished_layers(tmp_path: Path) -> None:
    # a finished run first: the interrupted one must replace its files, not add to them
    assert run(["search", "-n", "resnet18", "--mapper", "random", "--budget", "500", "-o", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out" / "mappings").iterdir())) == 15
    rc, out, err, stop = interrupt(
        ["search", "-n", "resnet18", "--mapper", "random", "--budget", "200000", "-o", "out"], AFTER_PROGRESS, tmp_path
    )
    assert rc == 130, err[-3000:]
    assert stop < STOP_S
    assert "interrupted:" in out and "marked partial" in out and "Traceback" not in err
    summary = _check_partial_results(tmp_path / "out", 15)
    assert summary["layers"][0]["layer"] == "conv1" and summary["layers"][0]["evaluations"] == 200000


def test_search_with_worker_processes_stops_at_once(tmp_path: Path) -> None:
    rc, out, err, stop = interrupt(
        ["search", "-n", "resnet18", "--mapper", "random", "--budget", "200000", "-j", "2", "-o", "out"],
        AFTER_PROGRESS,
        tmp_path,
    )
    assert rc == 130, err[-3000:]
    assert stop < STOP_S  # it used to wait for every queued layer (46-50 s)
    assert "Traceback" not in err and "interrupted:" in out
    _check_partial_results(tmp_path / "out", 15)


def test_map_ctrl_c_keeps_finished_layers(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    rc, out, err, stop = interrupt(["map", "-n", "resnet18", "--samples", "100", "-o", "out"], AFTER_PROGRESS, tmp_path)
    assert rc == 130, err[-3000:]
    assert stop < STOP_S and "interrupted:" in out and "Traceback" not in err
    summary = _check_partial_results(tmp_path / "out", 15)
    assert summary["layers"][0]["layer"] == "conv1" and summary["layers"][0]["evaluations"] == 100


def test_surrogate_dataset_ctrl_c_saves_finished_pairs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rlmap.surrogate.data import SampleSet

    rc, out, err, stop = interrupt(
        ["surrogate", "dataset", "--arch", "eyeriss", "--networks", "resnet18", "--samples", "60000", "-o", "ds"],
        AFTER_PROGRESS,
        tmp_path,
    )
    assert rc == 130, err[-3000:]
    assert stop < STOP_S and "interrupted:" in out and "Traceback" not in err
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["partial"] is True and 1 <= meta["pairs_done"] < meta["pairs_total"] == 12
    data = SampleSet.load(tmp_path / "ds" / "dataset.npz")
    assert data.meta["partial"] is True
    assert len(data.layers) == meta["pairs_done"] and len(data) == meta["samples"]
    assert 0.9 * meta["pairs_done"] * meta["per_layer"] <= len(data) <= meta["pairs_done"] * meta["per_layer"]
    assert data.layers[0].name == "conv1"


def test_train_ctrl_c_saves_a_checkpoint_and_exits_nonzero(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    agent = tmp_path / "tiny.yaml"
    agent.write_text(
        "algo: maskable_ppo\ninvalid_actions: mask\nn_envs: 2\n"
        "hyperparams: {n_steps: 64, batch_size: 64, n_epochs: 1}\n"
        "policy_kwargs: {features_extractor: flatten, net_arch: {pi: [32], vf: [32]}}\n"
        "env: {synthetic: 0.0, reference: none}\n"
    )
    rc, out, err, stop = interrupt(
        [
            "train",
            "--agent",
            str(agent),
            "--networks",
            "resnet18",
            "--eval-networks",
            "",
            "--timesteps",
            "1000000",
            "--checkpoint-every",
            "1000000",
            "-o",
            "run",
        ],
        AFTER_ROLLOUT,
        tmp_path,
    )
    assert rc == 130, err[-3000:]
    assert stop < STOP_S and "interrupted; continue with" in out and "Traceback" not in err
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert 128 <= state["num_timesteps"] < 1_000_000
    assert (tmp_path / "run" / "checkpoints" / f"step_{state['num_timesteps']}.zip").exists()


def test_reused_output_folder_keeps_no_stale_mappings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "out").mkdir()
    (out / "notes.txt").write_text("mine")  # a file of the user's own stays
    assert run(["search", "-n", "resnet18", "--mapper", "random", "--budget", "500", "-o", str(out)]) == 0
    assert len(list((out / "mappings").iterdir())) == 15
    assert run(["search", "-n", "resnet18", "-l", "fc", "--mapper", "random", "--budget", "50", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["layer"] for r in summary["layers"]] == ["fc"] and "partial" not in summary
    assert [p.name for p in (out / "mappings").iterdir()] == ["fc.yaml"]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left behind


def test_clean_up_after_ctrl_c_is_bounded() -> None:
    """A clean-up step that would wait forever (a writer's lock left taken by the interrupt) is abandoned after
    its time; one that finishes reports so; an exception in clean-up does not replace the interrupt."""
    import threading

    from rlmap.rl.training import _bounded

    t0 = time.monotonic()
    assert _bounded(threading.Event().wait, seconds=0.3) is False
    assert 0.25 < time.monotonic() - t0 < 2.0
    assert _bounded(lambda: None, seconds=5) is True
    assert _bounded(lambda: 1 / 0, seconds=5) is True


def _stuck_env() -> Any:
    import gymnasium as gym

    class Stuck(gym.Env):
        """Answers reset, never returns from step (a worker caught mid-step by the interrupt)."""

        observation_space = gym.spaces.Discrete(2)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed: Any = None, options: Any = None) -> tuple[int, dict]:
            return 0, {}

        def step(self, action: Any) -> Any:
            time.sleep(3600)

    return Stuck()


def test_subprocess_environments_end_without_the_close_handshake() -> None:
    """After Ctrl-C the workers are ended even while one is stuck in a step: SB3's close() would wait for
    its reply forever."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from rlmap.rl.training import _end_workers

    venv = SubprocVecEnv([_stuck_env, _stuck_env])
    venv.reset()
    venv.step_async(np.zeros(2, dtype=np.int64))
    time.sleep(0.5)
    t0 = time.monotonic()
    _end_workers(venv)
    assert time.monotonic() - t0 < 5.0
    assert venv.closed and not any(p.is_alive() for p in venv.processes)


@pytest.fixture
def python_ctrl_c() -> Any:
    """Python's own Ctrl-C handler for the test (an earlier test in this process, e.g. a Ray Tune sweep, may have
    left another one installed), restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_second_ctrl_c_while_results_are_committed_leaves_no_mix(
    tmp_path: Path, monkeypatch: Any, python_ctrl_c: Any
) -> None:
    """Ctrl-C arriving between the renames that commit a result is held back until all are done, then raised:
    the folder holds the new summary and the new mappings together, never new mappings beside an old summary."""
    import rlmap.spec.outputs as outputs

    out = tmp_path / "res"
    (out / "mappings").mkdir(parents=True)
    (out / "mappings" / "old.yaml").write_text("old")
    (out / "summary.json").write_text("old")
    real_replace = os.replace
    calls = []

    def replace_then_ctrl_c(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:  # Ctrl-C right after the first rename
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(outputs.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with outputs.staged_dir(out) as stage:
            (stage / "mappings").mkdir()
            (stage / "mappings" / "new.yaml").write_text("new")
            (stage / "summary.json").write_text("new")
    assert len(calls) >= 3  # mappings/ moved aside, the new one in, summary.json: all done before the interrupt
    assert sorted(p.name for p in (out / "mappings").iterdir()) == ["new.yaml"]
    assert (out / "summary.json").read_text() == "new"
    assert sorted(p.name for p in out.iterdir()) == ["mappings", "summary.json"]  # no trash or staging left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # and the handler is back: a Ctrl-C now interrupts at once
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_holding_ctrl_c_back_does_nothing_where_it_is_ignored() -> None:
    """A worker process ignores SIGINT (its parent handles Ctrl-C): committing a result there must not turn a
    Ctrl-C into an exception."""
    from rlmap.spec.outputs import deferred_interrupt

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
