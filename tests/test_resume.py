"""Resuming training after a kill: a run with no checkpoint can be restarted or resumed, a damaged or missing
last.zip falls back to the newest intact step_N.zip (and says so), and the TensorBoard step axis carries on
with one value per (tag, step)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("sb3_contrib")

from rlmap.cli.app import run  # noqa: E402
from rlmap.rl.config import TrainConfig, load_agent_config, load_run_config  # noqa: E402
from rlmap.rl.resume import checkpoint_step, resume_point  # noqa: E402
from rlmap.rl.training import train  # noqa: E402


def _config(timesteps: int = 1024, checkpoint_every: int = 256) -> TrainConfig:
    agent = load_agent_config("maskable_ppo")
    agent = agent.model_copy(
        update={"hyperparams": {**agent.hyperparams, "n_steps": 64, "batch_size": 64, "n_epochs": 1}}
    )
    return TrainConfig(
        agent_name="maskable_ppo",
        agent=agent,
        networks=["resnet18"],
        eval_networks=[],
        timesteps=timesteps,
        n_envs=2,
        checkpoint_every=checkpoint_every,
        seed=0,
    )


def _values_per_step(run_dir: Path) -> Counter:
    """(tag, step) -> how many values all the run's event files hold."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    seen: Counter = Counter()
    for f in sorted(run_dir.glob("tensorboard/**/events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            for v in ev.summary.value:
                seen[(v.tag, ev.step)] += 1
    return seen


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1024 steps, checkpoints every 256 (step_512, step_768, step_1024 kept, and last.zip)."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    train(_config(), run_dir, progress=False)
    return run_dir


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_killed_before_the_first_checkpoint_can_restart_or_resume(trained: Path, tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path / "run")
    shutil.rmtree(run_dir / "checkpoints")  # as if killed before the first checkpoint: config and logs only
    (run_dir / "model.zip").unlink()
    assert resume_point(run_dir) is None
    # `-o` the same folder starts over (it used to say "already holds a training run")
    res = train(_config(timesteps=256), run_dir, progress=False)
    assert res.num_timesteps >= 256 and res.resumed_from is None
    assert max(n for n in _values_per_step(run_dir).values()) == 1  # the old run's logs went with it
    # --resume on such a folder starts from step 0 with the saved config (it used to say "no last.zip")
    shutil.rmtree(run_dir / "checkpoints")
    assert run(["train", "--resume", str(run_dir), "--timesteps", "256"]) == 0
    assert checkpoint_step(run_dir / "checkpoints" / "last.zip") >= 256


def test_damaged_or_missing_last_zip_falls_back_to_the_newest_intact_step(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _copy(trained, tmp_path / "run")
    ck = run_dir / "checkpoints"
    assert sorted(p.name for p in ck.glob("step_*.zip")) == ["step_1024.zip", "step_512.zip", "step_768.zip"]
    with (ck / "last.zip").open("r+b") as fh:  # truncated, as by a kill during a copy
        fh.truncate(2000)
    with (ck / "step_1024.zip").open("r+b") as fh:
        fh.truncate(5000)
    point = resume_point(run_dir)
    assert point is not None and point.step == 768 and point.path.name == "step_768.zip"
    assert run(["train", "--resume", str(run_dir), "--timesteps", "1280"]) == 0
    out = capsys.readouterr().out
    assert "from step 768 (checkpoints/step_768.zip; last.zip is damaged; step_1024.zip is damaged)" in out
    assert checkpoint_step(ck / "last.zip") >= 1280
    (ck / "last.zip").unlink()
    newest = max(int(p.stem.split("_")[1]) for p in ck.glob("step_*.zip"))
    assert run(["train", "--resume", str(run_dir), "--timesteps", "1536"]) == 0
    assert f"from step {newest:,} (checkpoints/step_{newest}.zip; no last.zip)" in capsys.readouterr().out


def test_a_last_zip_older_than_an_intact_step_file_is_passed_over(trained: Path, tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path / "run")
    ck = run_dir / "checkpoints"
    shutil.copyfile(ck / "step_512.zip", ck / "last.zip")  # killed between step_N.zip and its copy to last.zip
    point = resume_point(run_dir)
    assert point is not None and point.step == 1024 and point.path.name == "step_1024.zip"
    assert point.describe(run_dir) == "step 1,024 (checkpoints/step_1024.zip; last.zip is older (step 512))"


def test_resume_after_a_kill_logs_one_value_per_step(trained: Path, tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path / "run")
    ck = run_dir / "checkpoints"
    # killed after logging up to step 1024 while its last checkpoint was step 512
    shutil.copyfile(ck / "step_512.zip", ck / "last.zip")
    for newer in ("step_768.zip", "step_1024.zip"):
        (ck / newer).unlink()
    logged = _values_per_step(run_dir)
    assert max(s for _t, s in logged) >= 1024
    cfg = load_run_config(run_dir).model_copy(update={"timesteps": 1536})
    res = train(cfg, run_dir, resume=True, progress=False)
    assert res.resumed_from == 512 and res.num_timesteps >= 1536
    seen = _values_per_step(run_dir)
    dup = sorted(k for k, n in seen.items() if n > 1)
    assert not dup, dup[:5]
    steps = sorted(s for (t, s) in seen if t == "rlmap/edp_ratio")
    assert steps[0] <= 512 < 1024 < steps[-1]  # before the resume point, and carried on past the old end
