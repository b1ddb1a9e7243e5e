"""Training runs: SB3 / sb3-contrib learning with rlmap's callbacks (metrics, held-out evaluation,
checkpoints, progress bar, time limit), TensorBoard logs, and resuming from the last checkpoint."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.rl.config import (
    CONFIG_FILE,
    POLICY_FILE,
    TrainConfig,
    algo_class,
    arch_names,
    check_networks,
    env_kwargs,
    policy_kwargs,
    run_checkpoints,
    save_config,
)
from rlmap.rl.resume import clear_unfinished, resume_point, step_files, trim_tensorboard
from rlmap.spec.errors import SpecError
from rlmap.spec.outputs import atomic_write, atomic_write_text


def _make_vec_env(cfg: TrainConfig, seed_offset: int = 0) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from rlmap.rl.env import make_env

    thunks = [make_env(i, cfg.seed * 1000 + seed_offset, **env_kwargs(cfg)) for i in range(cfg.n_envs)]
    return SubprocVecEnv(thunks) if cfg.vec_env == "subproc" else DummyVecEnv(thunks)


# ============================================================================ callbacks
def _callbacks(cfg: TrainConfig, out: Path, progress: bool, start_steps: int) -> list[Any]:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from rlmap.rl.env import MappingMetricsCallback

    class Checkpoints(BaseCallback):
        """Every `every` steps: checkpoints/step_N.zip (the 3 newest kept) and last.zip, plus state.json."""

        def __init__(self, every: int) -> None:
            super().__init__()
            self.every = every
            self.next = (start_steps // every + 1) * every

        def save(self) -> None:
            ck = run_checkpoints(out)
            ck.mkdir(parents=True, exist_ok=True)
            path = ck / f"step_{self.num_timesteps}.zip"
            atomic_write(path, self.model.save)  # an interrupt or a kill never leaves a half-written zip
            atomic_write(ck / "last.zip", lambda tmp: shutil.copyfile(path, tmp))
            if isinstance(self.model, OffPolicyAlgorithm) and self.model.replay_buffer is not None:
                atomic_write(ck / "replay_buffer.pkl", self.model.save_replay_buffer)
            atomic_write_text(ck / "state.json", json.dumps({"num_timesteps": self.num_timesteps, "time": time.time()}))
            for _n, old in step_files(ck)[3:]:
                old.unlink()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.save()
                self.next += self.every
            return True

        def _on_training_end(self) -> None:
            self.save()

    class HeldOutEval(BaseCallback):
        """Greedy mapping of every distinct layer of each held-out network; logs eval/NET/edp_ratio.

        The ratio is to each layer's best-of-16-random reference (the environment's reward reference), as
        a geometric mean over the distinct layers; eval/edp_ratio is the mean over networks.
        """

        def __init__(self, every: int) -> None:
            super().__init__()
            self.every = every
            self.next = (start_steps // every + 1) * every if every else math.inf
            self.layers: dict[str, list[Any]] = {}
            self.history: list[dict[str, float]] = []

        def _on_training_start(self) -> None:
            from rlmap.rl.mapper import distinct_layers
            from rlmap.spec.io import load_architecture

            self.arch = load_architecture(arch_names(cfg)[0])  # held-out networks on the first named arch
            self.layers = {n: distinct_layers(n) for n in cfg.eval_networks}

        def evaluate(self) -> dict[str, float]:
            from rlmap.rl.checkpoint import Policy
            from rlmap.rl.env import reference_costs
            from rlmap.rl.mapper import map_layers

            policy = Policy(self.model, cfg.agent.algo, cfg.arch, cfg.networks, cfg.model_dump())
            stats: dict[str, float] = {}
            for name, layers in self.layers.items():
                res = map_layers(policy, layers, self.arch, cfg.objective, samples=1)
                # a layer the policy left without a valid mapping counts as infinitely worse (as in the env)
                logs = [
                    math.log(r.cost.edp / reference_costs(l, self.arch, 16, 0)["best_edp"])
                    if r.cost is not None
                    else math.inf
                    for l, r in zip(layers, res)
                ]
                stats[f"eval/{name}/edp_ratio"] = math.exp(float(np.mean(logs)))
            if stats:
                stats["eval/edp_ratio"] = float(np.mean(list(stats.values())))
            return stats

        def _on_step(self) -> bool:
            if self.layers and self.num_timesteps >= self.next:
                stats = self.evaluate()
                for k, v in stats.items():
                    self.logger.record(k, v)
                self.history.append({"timesteps": float(self.num_timesteps), **stats})
                self.next += self.every
            return True

    class Progress(BaseCallback):
        """A rich progress bar (steps, episode reward, EDP ratio) and the per-invocation time limit."""

        def __init__(self, metrics: Any, held_out: Any) -> None:
            super().__init__()
            self.metrics = metrics
            self.held_out = held_out
            self.bar: Any = None
            self.t0 = 0.0
            self.calls = 0

        def _on_training_start(self) -> None:
            from rlmap.search.progress import progress_bar

            self.t0 = time.perf_counter()
            if progress:  # a bar on a terminal; piped or CI: a plain line every few seconds
                self.bar = progress_bar("[bold]train", transient=False, remaining=True, bar_width=24)
                self.bar.start()
                self.task = self.bar.add_task("train", total=cfg.timesteps, completed=start_steps, info="")

        def _on_step(self) -> bool:
            self.calls += 1
            if self.calls % 32:
                return True
            if self.bar is not None:
                info = ""
                if self.metrics.history:
                    h = self.metrics.history[-1]
                    info = f"reward {h['rlmap/episode_reward']:+.2f}  EDP/ref {h.get('rlmap/edp_ratio', math.nan):.3f}"
                if self.held_out.history:
                    info += f"  held-out {self.held_out.history[-1].get('eval/edp_ratio', math.nan):.3f}"
                self.bar.update(self.task, completed=min(self.num_timesteps, cfg.timesteps), info=info)
            if cfg.time_limit is not None and time.perf_counter() - self.t0 > cfg.time_limit:
                return False
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=min(self.num_timesteps, cfg.timesteps))
            self.stop_bar()

        def stop_bar(self, interrupted: bool = False) -> None:
            if self.bar is not None:
                if interrupted:  # a plain progress bar then prints no "done" line
                    self.bar.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
                else:
                    self.bar.stop()
                self.bar = None

    metrics = MappingMetricsCallback()
    held_out = HeldOutEval(cfg.eval_every if cfg.eval_networks else 0)
    return [metrics, held_out, Checkpoints(cfg.checkpoint_every), Progress(metrics, held_out)]


# ============================================================================ interruption
INTERRUPT_CLEANUP_S = 5.0
"""Seconds each clean-up step after Ctrl-C may take before it is abandoned (the checkpoint is already saved)."""


def _bounded(fn: Any, seconds: float = INTERRUPT_CLEANUP_S) -> bool:
    """Run `fn` in a daemon thread for at most `seconds`; True if it finished.  After a KeyboardInterrupt a
    progress bar's refresh thread or TensorBoard's writer queue can be left mid-operation, and waiting on them
    must not turn Ctrl-C into a hang (the CLI exits with os._exit, so an abandoned thread ends with it)."""
    import threading

    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - clean-up after an interrupt: the checkpoint is what matters
            pass
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name="rlmap-interrupt-cleanup").start()
    return done.wait(seconds)


def _end_workers(venv: Any) -> None:
    """After Ctrl-C: end subprocess environments without the close() handshake (a worker may be gone, or stuck
    mid-message, and close() would wait on it forever); in-process environments are closed as usual."""
    processes = getattr(venv, "processes", None)
    if processes is None:
        _bounded(venv.close)
        return
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=2)
        if proc.is_alive():
            proc.kill()
    for remote in getattr(venv, "remotes", ()):
        try:
            remote.close()
        except OSError:
            pass
    venv.closed = True


# ============================================================================ training
@dataclass
class TrainResult:
    out_dir: Path
    model: Any
    num_timesteps: int
    seconds: float
    finished: bool
    metrics: list[dict[str, float]] = field(default_factory=list)
    held_out: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    resumed_from: int | None = None


def train(
    cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True, verbose: int = 0
) -> TrainResult:
    """Train (or, with resume=True, continue) the run in `out`; checkpoints land in out/checkpoints/.

    A fresh run refuses to overwrite a folder that holds a run with a checkpoint; one that never reached its
    first checkpoint is started over.  On resume the model, its optimiser state and its step counter come from
    the newest intact checkpoint (rlmap.rl.resume.resume_point: last.zip, else the newest step_N.zip), the
    TensorBoard log is cut back to that step and continued in the same event folder, and training goes on
    until cfg.timesteps in all; with no checkpoint at all it starts from step 0.
    """
    import torch

    out = Path(out)
    point = resume_point(out) if (resume or (out / CONFIG_FILE).exists()) else None
    if resume and point is None:
        resume = False  # killed before its first checkpoint: nothing to resume, so start over (same config)
        clear_unfinished(out)
    elif not resume and (out / CONFIG_FILE).exists():
        if point is not None:
            raise SpecError(
                "already holds a training run: pass --resume to continue it, or choose another -o", str(out)
            )
        clear_unfinished(out)  # a run that never reached a checkpoint: reuse the folder
    check_networks(cfg.networks, "--networks")
    check_networks(cfg.eval_networks, "--eval-networks")
    torch.set_num_threads(1)  # a small policy: one thread beats OpenMP spinning on a busy machine
    save_config(cfg, out)
    cls = algo_class(cfg.agent.algo)
    venv = _make_vec_env(cfg, seed_offset=0)
    tb = str(out / "tensorboard")
    if resume and point is not None:
        model = cls.load(
            point.path,
            env=venv,
            device="cpu",
            tensorboard_log=tb,
            custom_objects={"policy_kwargs": policy_kwargs(cfg.agent)},
        )
        trim_tensorboard(Path(tb), point.step)
        rb = run_checkpoints(out) / "replay_buffer.pkl"
        if rb.exists() and hasattr(model, "load_replay_buffer"):
            try:
                model.load_replay_buffer(rb)
            except Exception:  # noqa: BLE001 - a damaged buffer only costs the replayed experience
                rb.unlink()
        # a different seed offset, so the resumed run does not replay the layers it has already seen
        venv.close()
        venv = _make_vec_env(cfg, seed_offset=model.num_timesteps)
        model.set_env(venv)
    elif cfg.init is not None:  # fine-tuning: the weights (and optimiser state) of another run, a fresh counter
        from rlmap.rl.checkpoint import _find_model

        init_zip, _ = _find_model(Path(cfg.init))
        model = cls.load(
            init_zip,
            env=venv,
            device="cpu",
            tensorboard_log=tb,
            seed=cfg.seed,
            custom_objects={"policy_kwargs": policy_kwargs(cfg.agent)},
            **cfg.agent.hyperparams,
        )
        model.num_timesteps = 0
    else:
        model = cls(
            "MlpPolicy",
            venv,
            seed=cfg.seed,
            verbose=verbose,
            tensorboard_log=tb,
            device="cpu",
            policy_kwargs=policy_kwargs(cfg.agent),
            **cfg.agent.hyperparams,
        )
    start = int(model.num_timesteps)
    callbacks = _callbacks(cfg, out, progress, start)
    from stable_baselines3.common.callbacks import CallbackList

    t0 = time.perf_counter()
    interrupted = False
    if cfg.timesteps > start:
        try:
            model.learn(
                total_timesteps=cfg.timesteps - start,
                callback=CallbackList(callbacks),
                tb_log_name="run",
                reset_num_timesteps=not resume,
            )
        except KeyboardInterrupt:  # Ctrl-C: keep what was learnt, so --resume can go on from here
            interrupted = True
            _bounded(lambda: callbacks[3].stop_bar(interrupted=True))
            callbacks[2].save()
            # flush TensorBoard now (the CLI then exits without the interpreter's teardown); bounded, since the
            # interrupt may have left the writer's queue or lock mid-operation
            _bounded(model.logger.close)
    if interrupted:
        _end_workers(venv)
    else:
        venv.close()
    seconds = time.perf_counter() - t0
    atomic_write(out / POLICY_FILE, model.save)
    return TrainResult(
        out_dir=out,
        model=model,
        num_timesteps=int(model.num_timesteps),
        seconds=seconds,
        finished=model.num_timesteps >= cfg.timesteps,
        metrics=callbacks[0].history,
        held_out=callbacks[1].history,
        interrupted=interrupted,
        resumed_from=point.step if resume and point is not None else None,
    )
