"""RL agents: configs from agents/*.yaml, training runs with logs and checkpoints, resuming, loading policies.

* `load_agent_config(name_or_path)` -> AgentConfig (validated; agents/maskable_ppo.yaml etc.)
* `TrainConfig` -- everything a run needs; saved as runs/NAME/config.yaml and read back by `--resume`
* `train(config, out_dir, resume=False)` -> TrainResult: SB3/sb3-contrib learning with rlmap's callbacks
  (metrics, held-out evaluation, checkpoints, progress bar, time limit)
* `load_policy(path_or_None, arch)` -> Policy: a trained model ready for rlmap.policy_mapper

Invalid actions: MaskablePPO removes them from the distribution (`invalid_actions: mask`).  PPO, A2C and
DQN cannot take masks during training, so the environment replaces a masked-out action by its
always-valid fallback and subtracts `invalid_action_penalty` (`invalid_actions: penalty`); every episode
still ends in a valid mapping.  When mapping, rlmap applies the mask to every algorithm's logits
(Q-values for DQN), so a trained policy of any kind only ever picks allowed actions.  See docs/agents.md.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlmap.errors import SpecError, pydantic_message

ALGOS: dict[str, tuple[str, str]] = {
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "dqn": ("stable_baselines3", "DQN"),
}
POLICY_FILE = "model.zip"
CONFIG_FILE = "config.yaml"


def repo_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def run_checkpoints(run: Path) -> Path:
    """Where a training run keeps its checkpoints (step_N.zip, last.zip, state.json, DQN replay buffer)."""
    return run / "checkpoints"


def agents_dir() -> Path:
    return repo_dir() / "agents"


def checkpoints_dir() -> Path:
    return repo_dir() / "checkpoints"


# ============================================================================ configs
class EnvOptions(BaseModel):
    """Environment options an agent config may set (see rlmap.env.MappingEnv)."""

    model_config = ConfigDict(extra="forbid")
    synthetic: float = Field(0.3, ge=0.0, le=1.0)
    synthetic_pool: int = Field(256, ge=0)
    random_density: float = Field(0.0, ge=0.0, le=1.0)
    density_low: float = Field(0.1, gt=0.0, le=1.0)
    density_grid: int = Field(20, ge=1)
    reference: Literal["random", "median", "bound", "none"] = "random"
    invalid_action_penalty: float = Field(0.0, ge=0.0)


class AgentConfig(BaseModel):
    """One agents/*.yaml file: the algorithm, its hyperparameters, its policy network and env options."""

    model_config = ConfigDict(extra="forbid")
    algo: Literal["maskable_ppo", "ppo", "a2c", "dqn"]
    description: str = ""
    invalid_actions: Literal["mask", "penalty"]
    n_envs: int = Field(8, ge=1)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    env: EnvOptions = Field(default_factory=EnvOptions)


def load_agent_config(name: str | Path) -> AgentConfig:
    """An agent config by name (agents/NAME.yaml) or path; SpecError naming the file and field otherwise."""
    from rlmap.io import read_yaml

    p = Path(name)
    if not p.suffix:
        p = agents_dir() / f"{name}.yaml"
        if not p.exists():
            known = ", ".join(sorted(q.stem for q in agents_dir().glob("*.yaml")))
            raise SpecError(f"unknown agent {str(name)!r} (expected one of {known}, or a YAML file)", "--agent")
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise SpecError("expected a mapping with keys algo, invalid_actions, hyperparams, ...", str(p))
    try:
        cfg = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(pydantic_message(exc), str(p)) from None
    if cfg.algo == "maskable_ppo" and cfg.invalid_actions != "mask":
        raise SpecError("maskable_ppo uses masks: set invalid_actions: mask", f"{p}: invalid_actions")
    if cfg.algo != "maskable_ppo" and cfg.invalid_actions == "mask":
        raise SpecError(f"{cfg.algo} cannot take action masks while training: set invalid_actions: penalty",
                        f"{p}: invalid_actions")
    extractor = cfg.policy_kwargs.get("features_extractor", "flatten")
    from rlmap.policy import EXTRACTORS

    if extractor != "flatten" and extractor not in EXTRACTORS:
        raise SpecError(f"unknown features_extractor {extractor!r} (expected flatten or {', '.join(EXTRACTORS)})",
                        f"{p}: policy_kwargs.features_extractor")
    return cfg


class TrainConfig(BaseModel):
    """A training run, exactly as it was asked for; stored as runs/NAME/config.yaml."""

    model_config = ConfigDict(extra="forbid")
    agent_name: str
    agent: AgentConfig
    arch: str = "eyeriss"
    objective: Literal["energy", "latency", "edp"] = "edp"
    networks: list[str] = Field(default_factory=lambda: ["resnet18", "vgg16", "gpt2_small"])
    eval_networks: list[str] = Field(default_factory=list)
    timesteps: int = Field(1_000_000, ge=1)
    n_envs: int = Field(8, ge=1)
    seed: int = 0
    eval_every: int = Field(100_000, ge=0)
    checkpoint_every: int = Field(100_000, ge=1)
    time_limit: Optional[float] = Field(None, gt=0, description="seconds of training per invocation")
    vec_env: Literal["dummy", "subproc"] = "dummy"


def check_networks(names: list[str], option: str) -> None:
    """Fail early, with the option named, on a network that cannot be loaded."""
    from rlmap.io import load_network

    for n in names:
        try:
            load_network(n)
        except SpecError as exc:
            raise SpecError(f"{exc}", option) from None


# ============================================================================ model construction
def _algo_class(algo: str) -> type:
    import importlib

    module, cls = ALGOS[algo]
    return getattr(importlib.import_module(module), cls)


def _policy_kwargs(cfg: AgentConfig) -> dict[str, Any]:
    from rlmap.policy import EXTRACTORS

    kw = dict(cfg.policy_kwargs)
    extractor = kw.pop("features_extractor", "flatten")
    if extractor != "flatten":
        kw["features_extractor_class"] = EXTRACTORS[extractor]
        kw["features_extractor_kwargs"] = kw.pop("features_extractor_kwargs", {})
    return kw


def env_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    e = cfg.agent.env
    return dict(arch=cfg.arch, objective=cfg.objective, networks=list(cfg.networks), synthetic=e.synthetic,
                synthetic_pool=e.synthetic_pool, random_density=e.random_density, density_low=e.density_low,
                density_grid=e.density_grid, reference=e.reference,
                invalid_action_penalty=e.invalid_action_penalty, sampler_seed=cfg.seed)


def _make_vec_env(cfg: TrainConfig, seed_offset: int = 0) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from rlmap.env import make_env

    thunks = [make_env(i, cfg.seed * 1000 + seed_offset, **env_kwargs(cfg)) for i in range(cfg.n_envs)]
    return SubprocVecEnv(thunks) if cfg.vec_env == "subproc" else DummyVecEnv(thunks)


# ============================================================================ callbacks
def _callbacks(cfg: TrainConfig, out: Path, progress: bool, start_steps: int) -> list[Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    from rlmap.env import MappingMetricsCallback

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
            self.model.save(path)
            tmp = ck / "last.tmp.zip"
            shutil.copyfile(path, tmp)
            tmp.replace(ck / "last.zip")  # atomic: an interrupt never leaves a half-written last.zip
            if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
                self.model.save_replay_buffer(ck / "replay_buffer.pkl")
            (ck / "state.json").write_text(json.dumps({"num_timesteps": self.num_timesteps, "time": time.time()}))
            for old in sorted(ck.glob("step_*.zip"), key=lambda q: int(q.stem.split("_")[1]))[:-3]:
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
            from rlmap.io import load_architecture
            from rlmap.policy_mapper import distinct_layers

            self.arch = load_architecture(cfg.arch)
            self.layers = {n: distinct_layers(n) for n in cfg.eval_networks}

        def evaluate(self) -> dict[str, float]:
            from rlmap.env import reference_costs
            from rlmap.policy_mapper import map_layers

            policy = Policy(self.model, cfg.agent.algo, cfg.arch, cfg.networks, cfg.model_dump())
            stats: dict[str, float] = {}
            for name, layers in self.layers.items():
                res = map_layers(policy, layers, self.arch, cfg.objective, samples=1)
                logs = [math.log(r.cost.edp / reference_costs(l, self.arch, 16, 0)["best_edp"])
                        for l, r in zip(layers, res)]
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn
            from rich.progress import TimeElapsedColumn, TimeRemainingColumn

            self.t0 = time.perf_counter()
            if progress:
                self.bar = RichProgress(TextColumn("[bold]train"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                        transient=False)
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

        def stop_bar(self) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    metrics = MappingMetricsCallback()
    held_out = HeldOutEval(cfg.eval_every if cfg.eval_networks else 0)
    return [metrics, held_out, Checkpoints(cfg.checkpoint_every), Progress(metrics, held_out)]


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


def save_config(cfg: TrainConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def load_run_config(out: Path) -> TrainConfig:
    p = out / CONFIG_FILE
    if not p.exists():
        raise SpecError(f"no {CONFIG_FILE} here: not an rlmap training run", str(out))
    from rlmap.io import read_yaml

    try:
        return TrainConfig.model_validate(read_yaml(p))
    except ValidationError as exc:
        raise SpecError(pydantic_message(exc), str(p)) from None


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          verbose: int = 0) -> TrainResult:
    """Train (or, with resume=True, continue) the run in `out`; checkpoints land in out/checkpoints/.

    A fresh run refuses to overwrite a folder that already holds a run.  On resume the model, its optimiser
    state and its step counter come from out/checkpoints/last.zip, TensorBoard continues the same event
    folder, and training goes on until cfg.timesteps in all.
    """
    import torch

    out = Path(out)
    last = run_checkpoints(out) / "last.zip"
    if resume:
        if not last.exists():
            raise SpecError("no checkpoints/last.zip to resume from", str(out))
    elif (out / CONFIG_FILE).exists():
        raise SpecError("already holds a training run: pass --resume to continue it, or choose another -o", str(out))
    check_networks(cfg.networks, "--networks")
    check_networks(cfg.eval_networks, "--eval-networks")
    torch.set_num_threads(1)  # a small policy: one thread beats OpenMP spinning on a busy machine
    save_config(cfg, out)
    cls = _algo_class(cfg.agent.algo)
    venv = _make_vec_env(cfg, seed_offset=0)
    tb = str(out / "tensorboard")
    if resume:
        model = cls.load(last, env=venv, device="cpu", tensorboard_log=tb)
        rb = run_checkpoints(out) / "replay_buffer.pkl"
        if rb.exists() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(rb)
        # a different seed offset, so the resumed run does not replay the layers it has already seen
        venv.close()
        venv = _make_vec_env(cfg, seed_offset=model.num_timesteps)
        model.set_env(venv)
    else:
        model = cls("MlpPolicy", venv, seed=cfg.seed, verbose=verbose, tensorboard_log=tb, device="cpu",
                    policy_kwargs=_policy_kwargs(cfg.agent), **cfg.agent.hyperparams)
    start = int(model.num_timesteps)
    callbacks = _callbacks(cfg, out, progress, start)
    from stable_baselines3.common.callbacks import CallbackList

    t0 = time.perf_counter()
    interrupted = False
    if cfg.timesteps > start:
        try:
            model.learn(total_timesteps=cfg.timesteps - start, callback=CallbackList(callbacks), tb_log_name="run",
                        reset_num_timesteps=not resume)
        except KeyboardInterrupt:  # Ctrl-C: keep what was learnt, so --resume can go on from here
            interrupted = True
            callbacks[2].save()
            callbacks[3].stop_bar()
    venv.close()
    seconds = time.perf_counter() - t0
    model.save(out / POLICY_FILE)
    return TrainResult(out_dir=out, model=model, num_timesteps=int(model.num_timesteps), seconds=seconds,
                       finished=model.num_timesteps >= cfg.timesteps, metrics=callbacks[0].history,
                       held_out=callbacks[1].history, interrupted=interrupted)


# ============================================================================ trained policies
class Policy:
    """A trained model plus what it was trained for; gives masked action logits for batches of observations."""

    def __init__(self, model: Any, algo: str, arch_name: str, trained_on: list[str],
                 config: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.model = model
        self.algo = algo
        self.arch_name = arch_name
        self.trained_on = list(trained_on)
        self.config = config or {}
        self.path = path

    @property
    def max_levels(self) -> int:
        from rlmap.env import observation_layout

        n = int(self.model.observation_space.shape[0])
        for levels in range(1, 9):  # the observation grows by a fixed amount per padded level
            if observation_layout(levels)["mask"][1] == n:
                return levels
        raise SpecError(f"observation size {n} does not match any environment layout", str(self.path))

    def describe(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return (f"{self.algo} for {self.arch_name}, trained on {', '.join(self.trained_on) or '?'}, "
                f"{int(self.model.num_timesteps):,} steps{where}")

    def logits(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Action scores with masked-out actions at -inf (logits; Q-values for DQN)."""
        import torch

        with torch.no_grad():
            t = torch.as_tensor(obs, dtype=torch.float32)
            if self.algo == "dqn":
                scores = self.model.q_net(t)
            else:
                dist = self.model.policy.get_distribution(t)
                scores = dist.distribution.logits
            scores = scores.numpy().astype(np.float64)
        return np.where(masks, scores, -np.inf)


def _find_model(path: Path) -> tuple[Path, Path]:
    """(model zip, config.yaml) for a checkpoint folder, a run folder or a .zip inside one."""
    if path.is_file():
        for folder in (path.parent, path.parent.parent):
            if (folder / CONFIG_FILE).exists():
                return path, folder / CONFIG_FILE
        raise SpecError(f"no {CONFIG_FILE} beside this policy", str(path))
    for cand in (path / POLICY_FILE, run_checkpoints(path) / "last.zip"):
        if cand.exists():
            return cand, path / CONFIG_FILE
    raise SpecError(f"no {POLICY_FILE} or checkpoints/last.zip here", str(path))


def trained_steps(zip_path: Path) -> int:
    """Environment steps a saved SB3 model was trained for, read from its zip without loading torch."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as z:
            return int(json.loads(z.read("data"))["num_timesteps"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(f"not a Stable-Baselines3 model ({type(exc).__name__})", str(zip_path)) from None


def shipped_policy(arch: str) -> Path | None:
    p = checkpoints_dir() / f"policy_{arch}"
    return p if (p / POLICY_FILE).exists() else None


def load_policy(path: str | Path | None, arch: str | None = None) -> Policy:
    """Load a trained policy: a folder (checkpoints/policy_X, runs/NAME) or .zip; None = shipped one for arch."""
    if path is None:
        if arch is None:
            raise SpecError("give --policy or --arch", "--policy")
        found = shipped_policy(Path(arch).stem)
        if found is None:
            have = ", ".join(sorted(p.name.removeprefix("policy_") for p in checkpoints_dir().glob("policy_*")))
            raise SpecError(f"no shipped policy for architecture {arch!r} (shipped: {have or 'none'}); "
                            "train one with `rlmap train` and pass --policy", "--policy")
        path = found
    p = Path(path)
    if not p.exists():
        raise SpecError("not found", str(p))
    zip_path, cfg_path = _find_model(p)
    cfg = load_run_config(cfg_path.parent)
    cls = _algo_class(cfg.agent.algo)
    try:
        model = cls.load(zip_path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign zip is a user mistake
        raise SpecError(f"cannot load the policy: {exc}", str(zip_path)) from None
    return Policy(model, cfg.agent.algo, cfg.arch, cfg.networks, cfg.model_dump(), path=p)

