"""Trained policies: find a checkpoint (a run folder, a shipped `checkpoints/policy_ARCH`, a .zip), load it
whatever module path it was pickled under, and score batches of observations with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.rl.config import CONFIG_FILE, POLICY_FILE, algo_class, load_run_config, policy_kwargs, run_checkpoints
from rlmap.spec.errors import SpecError
from rlmap.spec.io import checkpoints_dir


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
        from rlmap.rl.env import observation_layout

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
    cls = algo_class(cfg.agent.algo)
    try:
        # the config rebuilds policy_kwargs, so zips pickled under older module paths (rlmap.policy) load too
        model = cls.load(zip_path, device="cpu", custom_objects={"policy_kwargs": policy_kwargs(cfg.agent)})
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign zip is a user mistake
        raise SpecError(f"cannot load the policy: {exc}", str(zip_path)) from None
    return Policy(model, cfg.agent.algo, cfg.arch, cfg.networks, cfg.model_dump(), path=p)
