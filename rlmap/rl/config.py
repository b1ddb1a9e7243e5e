"""RL agents: configs from agents/*.yaml, training runs with logs and checkpoints, resuming, loading policies.

* `load_agent_config(name_or_path)` -> AgentConfig (validated; agents/maskable_ppo.yaml etc.)
* `TrainConfig` -- everything a run needs; saved as runs/NAME/config.yaml and read back by `--resume`
* `train(config, out_dir, resume=False)` -> TrainResult: SB3/sb3-contrib learning with rlmap's callbacks
  (metrics, held-out evaluation, checkpoints, progress bar, time limit)
* `load_policy(path_or_None, arch)` -> Policy: a trained model ready for rlmap.rl.mapper

Invalid actions: MaskablePPO removes them from the distribution (`invalid_actions: mask`).  PPO, A2C and
DQN cannot take masks during training, so the environment replaces a masked-out action by its
always-valid fallback and subtracts `invalid_action_penalty` (`invalid_actions: penalty`); every episode
still ends in a valid mapping.  When mapping, rlmap applies the mask to every algorithm's logits
(Q-values for DQN), so a trained policy of any kind only ever picks allowed actions.  See docs/agents.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlmap.spec.errors import SpecError, pydantic_message
from rlmap.spec.io import agents_dir
from rlmap.spec.outputs import atomic_write_text

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

ALGOS: dict[str, tuple[str, str]] = {
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "dqn": ("stable_baselines3", "DQN"),
}
POLICY_FILE = "model.zip"
GENERATED_TRAIN_SEED = 1000
"""First generator seed of the generated training architectures; envs/generated (held out) uses seeds below it."""
CONFIG_FILE = "config.yaml"


def run_checkpoints(run: Path) -> Path:
    """Where a training run keeps its checkpoints (step_N.zip, last.zip, state.json, DQN replay buffer)."""
    return run / "checkpoints"


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
    from rlmap.spec.io import read_yaml

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
        raise SpecError(
            f"{cfg.algo} cannot take action masks while training: set invalid_actions: penalty", f"{p}: invalid_actions"
        )
    extractor = cfg.policy_kwargs.get("features_extractor", "flatten")
    from rlmap.rl.policy import EXTRACTORS

    if extractor != "flatten" and extractor not in EXTRACTORS:
        raise SpecError(
            f"unknown features_extractor {extractor!r} (expected flatten or {', '.join(EXTRACTORS)})",
            f"{p}: policy_kwargs.features_extractor",
        )
    return cfg


class TrainConfig(BaseModel):
    """A training run, exactly as it was asked for; stored as runs/NAME/config.yaml."""

    model_config = ConfigDict(extra="forbid")
    agent_name: str
    agent: AgentConfig
    arch: str = Field("eyeriss", description="architecture preset or YAML file; several comma-separated")
    generated: int = Field(
        0,
        ge=0,
        description="generated architectures added to the training set "
        "(rlmap.hardware.generator seeds generated_seed .. generated_seed + generated - 1)",
    )
    generated_seed: int = Field(GENERATED_TRAIN_SEED, ge=0)
    init: str | None = Field(None, description="checkpoint the weights start from (fine-tuning), not resumed")
    objective: Literal["energy", "latency", "edp"] = "edp"
    networks: list[str] = Field(default_factory=lambda: ["resnet18", "vgg16", "gpt2_small"])
    eval_networks: list[str] = Field(default_factory=list)
    timesteps: int = Field(1_000_000, ge=1)
    n_envs: int = Field(8, ge=1)
    seed: int = 0
    eval_every: int = Field(100_000, ge=0)
    checkpoint_every: int = Field(100_000, ge=1)
    time_limit: float | None = Field(None, gt=0, description="seconds of training per invocation")
    vec_env: Literal["dummy", "subproc"] = "dummy"


def check_networks(names: list[str], option: str) -> None:
    """Fail early, with the option named, on a network that cannot be loaded."""
    from rlmap.spec.io import load_network

    for n in names:
        try:
            load_network(n)
        except SpecError as exc:
            raise SpecError(f"{exc}", option) from None


# ============================================================================ model construction
def algo_class(algo: str) -> type[BaseAlgorithm]:
    import importlib

    module, cls = ALGOS[algo]
    return getattr(importlib.import_module(module), cls)


def policy_kwargs(cfg: AgentConfig) -> dict[str, Any]:
    from rlmap.rl.policy import EXTRACTORS

    kw = dict(cfg.policy_kwargs)
    extractor = kw.pop("features_extractor", "flatten")
    if extractor != "flatten":
        kw["features_extractor_class"] = EXTRACTORS[extractor]
        kw["features_extractor_kwargs"] = kw.pop("features_extractor_kwargs", {})
    return kw


def arch_names(cfg: TrainConfig) -> list[str]:
    """The named architectures (presets or files) of a run, in the order given."""
    return [a.strip() for a in cfg.arch.split(",") if a.strip()]


def training_architectures(cfg: TrainConfig) -> list[Any]:
    """Every Architecture a run trains on: the named ones, then `generated` generated ones."""
    from rlmap.hardware.generator import generate_architectures
    from rlmap.spec.io import load_architecture

    named = [load_architecture(a) for a in arch_names(cfg)]
    return named + generate_architectures(cfg.generated, cfg.generated_seed)


def env_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    e = cfg.agent.env
    archs = training_architectures(cfg)
    return dict(
        arch=archs[0] if len(archs) == 1 else archs,
        objective=cfg.objective,
        networks=list(cfg.networks),
        synthetic=e.synthetic,
        synthetic_pool=e.synthetic_pool,
        random_density=e.random_density,
        density_low=e.density_low,
        density_grid=e.density_grid,
        reference=e.reference,
        invalid_action_penalty=e.invalid_action_penalty,
        sampler_seed=cfg.seed,
    )


# ============================================================================ run folders
def save_config(cfg: TrainConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def load_run_config(out: Path) -> TrainConfig:
    p = out / CONFIG_FILE
    if not p.exists():
        raise SpecError(f"no {CONFIG_FILE} here: not an rlmap training run", str(out))
    from rlmap.spec.io import read_yaml

    try:
        return TrainConfig.model_validate(read_yaml(p))
    except ValidationError as exc:
        raise SpecError(pydantic_message(exc), str(p)) from None
