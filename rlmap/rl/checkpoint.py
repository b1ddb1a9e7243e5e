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

    def __init__(
        self,
        model: Any,
        algo: str,
        arch_name: str,
        trained_on: list[str],
        config: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
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
        return (
            f"{self.algo} for {self.arch_name}, trained on {', '.join(self.trained_on) or '?'}, "
            f"{int(self.model.num_timesteps):,} steps{where}"
        )

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
    """Load a trained policy: a folder (checkpoints/policy_X, runs/NAME) or .zip; None = the best shipped one
    for arch (`default_policy`: the specialised checkpoint or the general policy, whichever measured better)."""
    if path is None:
        if arch is None:
            raise SpecError("give --policy or --arch", "--policy")
        found = default_policy(Path(arch).stem)[0]
        if found is None:
            have = ", ".join(sorted(p.name.removeprefix("policy_") for p in checkpoints_dir().glob("policy_*")))
            raise SpecError(
                f"no shipped policy for architecture {arch!r} (shipped: {have or 'none'}); "
                "train one with `rlmap train` and pass --policy",
                "--policy",
            )
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


# ============================================================================ general policy, measured quality
GENERAL_POLICY = "policy_general"
"""The shipped policy trained over many architectures (issue 14); used where no better specialised one exists."""
QUALITY_FILE = "quality.json"
"""Measured quality beside a shipped model.zip, written by benchmarks/zero_shot.py --write-quality:
{"archs": {ARCH: {"greedy", "best", "samples", "layers", "held_out", "command"}}, "generated_held_out": {...}}."""


def general_policy() -> Path | None:
    p = checkpoints_dir() / GENERAL_POLICY
    return p if (p / POLICY_FILE).exists() else None


def measured_quality(folder: Path | None) -> dict[str, Any]:
    """The checkpoint's quality.json ({} when it has none)."""
    if folder is None or not (Path(folder) / QUALITY_FILE).exists():
        return {}
    return json.loads((Path(folder) / QUALITY_FILE).read_text())


def _greedy_on(folder: Path | None, arch: str) -> float | None:
    entry = measured_quality(folder).get("archs", {}).get(arch)
    return float(entry["greedy"]) if entry else None


def default_policy(arch: str) -> tuple[Path | None, str]:
    """(checkpoint, why) for mapping onto `arch` with no --policy: the specialised checkpoint policy_ARCH unless
    the general policy measured better there (lower greedy EDP / optimal), else the general policy."""
    special, general = shipped_policy(arch), general_policy()
    if special is None or general is None:
        found = special or general
        return found, ("specialised policy" if found is special else "general policy") if found else "none shipped"
    qs, qg = _greedy_on(special, arch), _greedy_on(general, arch)
    if qg is not None and (qs is None or qg < qs):
        return general, (
            f"general policy (measured greedy {qg:.3f} x optimal on {arch}, "
            f"specialised {'unmeasured' if qs is None else f'{qs:.3f}'})"
        )
    vs = f", general {qg:.3f}" if qg is not None else ""
    return special, "specialised policy" + (f" (measured greedy {qs:.3f} x optimal on {arch}{vs})" if qs else "")


def trained_architectures(config: dict[str, Any]) -> list[str]:
    """Names of the architectures a run trained on (presets by name, generated ones as genSEED)."""
    names = [Path(a.strip()).stem for a in str(config.get("arch", "")).split(",") if a.strip()]
    seed0, n = int(config.get("generated_seed", 0)), int(config.get("generated", 0))
    from rlmap.hardware.generator import generated_name

    return names + [generated_name(s) for s in range(seed0, seed0 + n)]


def coverage_note(policy: Policy, arch: str) -> str | None:
    """None when `arch` is one of the policy's training architectures; otherwise a line saying so, with the
    policy's measured quality there (or on held-out generated hardware, or that none was measured)."""
    if arch in trained_architectures(policy.config):
        return None
    folder = policy.path if policy.path is None or policy.path.is_dir() else policy.path.parent
    q = measured_quality(folder)
    entry = q.get("archs", {}).get(arch)
    head = f"this policy was not trained on {arch}"
    if entry:
        return (
            f"{head}; measured zero-shot there: greedy {entry['greedy']:.3f}x, best-of-{entry['samples']} "
            f"{entry['best']:.3f}x the optimal EDP ({entry['layers']} held-out layers, model card)"
        )
    gen = q.get("generated_held_out")
    if gen:
        return (
            f"{head} (not measured there); on {gen['archs']} held-out generated architectures it measured greedy "
            f"{gen['greedy']:.3f}x, best-of-{gen['samples']} {gen['best']:.3f}x the optimal EDP (model card)"
        )
    return f"{head}, and its quality there was never measured: expect it to be far from optimal"
