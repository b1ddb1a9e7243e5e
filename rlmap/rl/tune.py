"""`rlmap train --tune SWEEP.yaml`: Ray Tune over an agent's hyperparameters and seeds.

Every trial is an ordinary rlmap training run (rlmap.rl.training.train) in OUT/trials/NAME/ -- config.yaml,
TensorBoard folder, checkpoints, model.zip -- so `rlmap train --resume`, `rlmap map --policy` and TensorBoard
work on any trial.  Tune's own bookkeeping goes to OUT/tune/; the trials table and the best trial to
OUT/sweep.json.  A sweep file (see agents/sweeps/example.yaml):

    agent: maskable_ppo            # the base agent (agents/NAME.yaml or a file)
    metric: rlmap/edp_ratio        # a key of the trial's last rollout (rlmap/...) or held-out evaluation (eval/...)
    mode: min                      # min or max
    seeds: [0, 1]                  # every configuration is trained with each seed
    samples: 2                     # configurations drawn from the random distributions (grids multiply)
    search:                        # dotted keys into the agent config: hyperparams.X, n_envs, env.X
      hyperparams.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
      hyperparams.n_steps: {grid: [64, 128]}
    train: {arch: eyeriss, networks: [resnet18], eval_networks: [], timesteps: 20000}   # TrainConfig fields
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlmap.rl.config import AgentConfig, TrainConfig, load_agent_config
from rlmap.spec.errors import SpecError
from rlmap.spec.io import parse_model

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")
"""How a `search` entry is drawn: {choice: [values]}, {grid: [values]} (every value), {uniform: [lo, hi]},
{loguniform: [lo, hi]}, {randint: [lo, hi)}; a plain value is fixed."""


class SweepConfig(BaseModel):
    """One sweep file, validated."""

    model_config = ConfigDict(extra="forbid")
    agent: str = "maskable_ppo"
    metric: str = "rlmap/edp_ratio"
    mode: Literal["min", "max"] = "min"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    samples: int = Field(1, ge=1)
    search: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    max_concurrent: int = Field(0, ge=0, description="trials at once (0: as many as the cluster's CPUs allow)")
    cpus_per_trial: float = Field(1.0, gt=0)


def load_sweep(path: str | Path) -> SweepConfig:
    """The sweep file at `path`; SpecError naming the file and field otherwise."""
    from rlmap.spec.io import read_yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError("no such sweep file", str(p))
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise SpecError("expected a mapping with keys agent, metric, mode, seeds, samples, search, train", str(p))
    sweep = parse_model(SweepConfig, raw, str(p))
    if not (sweep.metric.startswith("rlmap/") or sweep.metric.startswith("eval/")):
        raise SpecError(
            f"expected a rollout (rlmap/...) or held-out (eval/...) metric, got {sweep.metric!r}", f"{p}: metric"
        )
    for key, spec in sweep.search.items():
        if isinstance(spec, dict) and (len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS):
            raise SpecError(
                f"expected one of {', '.join(DISTRIBUTIONS)} (e.g. {{choice: [1, 2]}}), got {spec}",
                f"{p}: search.{key}",
            )
    base = load_agent_config(sweep.agent)
    for key in sweep.search:  # every searched key must exist, and a sample of it must give a valid config
        _apply(base, {key: _example(sweep.search[key])}, f"{p}: search.{key}")
    parse_model(TrainConfig, {"agent_name": Path(sweep.agent).stem, "agent": base, **sweep.train}, f"{p}: train")
    return sweep


def _example(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    ((_kind, values),) = spec.items()
    return values[0]


def _apply(agent: AgentConfig, overrides: dict[str, Any], where: str = "search") -> AgentConfig:
    """The agent config with dotted-key overrides (hyperparams.learning_rate, n_envs, env.synthetic)."""
    data = agent.model_dump()
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SpecError(f"the agent config has no section {part!r}", where)
            node = node[part]
        if parts[0] != "hyperparams" and parts[-1] not in node:
            raise SpecError(f"the agent config has no field {key!r}", where)
        node[parts[-1]] = value
    return parse_model(AgentConfig, data, where)


def configurations(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every configuration the sweep trains, each with every seed: `samples` draws of the random entries for
    each point of the grids.  The draws are made here, seeded by the first seed, so that all seeds of one
    configuration train the same values (Tune would draw the random entries anew for every seed of its grid)."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(sweep.seeds[0])
    grids = {k: v["grid"] for k, v in sweep.search.items() if isinstance(v, dict) and "grid" in v}
    out: list[dict[str, Any]] = []
    for _ in range(sweep.samples):
        for point in itertools.product(*grids.values()):
            fixed = dict(zip(grids, point))
            cfg: dict[str, Any] = {}
            for key, spec in sweep.search.items():
                if key in fixed or not isinstance(spec, dict):
                    cfg[key] = fixed.get(key, spec)
                    continue
                ((kind, v),) = spec.items()
                if kind == "choice":
                    cfg[key] = v[int(rng.integers(len(v)))]
                elif kind == "uniform":
                    cfg[key] = float(rng.uniform(v[0], v[1]))
                elif kind == "loguniform":
                    cfg[key] = float(np.exp(rng.uniform(np.log(v[0]), np.log(v[1]))))
                else:  # randint: [lo, hi)
                    cfg[key] = int(rng.integers(v[0], v[1]))
            out.append(cfg)
    return out


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune's search space: a grid over the configurations (see `configurations`) and over `seeds`."""
    from ray import tune

    return {
        "configuration": tune.grid_search(list(range(len(configurations(sweep))))),
        "seed": tune.grid_search(list(sweep.seeds)),
    }


def rlmap_trial(config: dict[str, Any], sweep: dict[str, Any], out: str) -> None:
    """One Tune trial: an ordinary rlmap training run in OUT/trials/TRIAL; reports its last metrics."""
    from ray import tune

    from rlmap.rl.training import train

    sw = SweepConfig.model_validate(sweep)
    overrides = configurations(sw)[int(config["configuration"])]
    agent = _apply(load_agent_config(sw.agent), overrides)
    cfg = TrainConfig(agent_name=Path(sw.agent).stem, agent=agent, **{**sw.train, "seed": int(config["seed"])})
    run_dir = Path(out) / "trials" / tune.get_context().get_trial_name()
    res = train(cfg, run_dir, resume=(run_dir / "checkpoints" / "last.zip").exists(), progress=False)
    metrics: dict[str, Any] = {"timesteps": res.num_timesteps, "run_dir": str(run_dir)}
    if res.metrics:
        metrics.update({k: float(v) for k, v in res.metrics[-1].items() if k.startswith("rlmap/")})
    if res.held_out:
        metrics.update({k: float(v) for k, v in res.held_out[-1].items() if k.startswith("eval/")})
    tune.report(metrics)


def run_sweep(sweep_path: str | Path, out: str | Path, backend: Any) -> dict[str, Any]:
    """Run the sweep on `backend` (an rlmap.execution RayBackend, connected here); write and return OUT/sweep.json:
    every trial's configuration, seed, run folder and metric, and the best trial by `metric`/`mode`."""
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # rlmap prints its own table; no Tune banner
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    sweep = load_sweep(sweep_path)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    backend.connect()
    trainable = tune.with_resources(
        tune.with_parameters(rlmap_trial, sweep=sweep.model_dump(), out=str(out)), {"cpu": sweep.cpus_per_trial}
    )
    seed0 = sweep.seeds[0]
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(
            num_samples=1,  # the samples are drawn in `configurations`
            max_concurrent_trials=sweep.max_concurrent or None,
            search_alg=BasicVariantGenerator(random_state=seed0),
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(out), verbose=0, failure_config=tune.FailureConfig(max_failures=2)
        ),
    )
    grid = tuner.fit()
    configs = configurations(sweep)
    trials: list[dict[str, Any]] = []
    for r in (grid[i] for i in range(len(grid))):
        m, conf = r.metrics or {}, r.config or {}
        trials.append(
            {
                "trial": Path(m.get("run_dir", r.path)).name,
                "run_dir": m.get("run_dir"),
                "seed": conf.get("seed"),
                "config": configs[int(conf["configuration"])] if "configuration" in conf else {},
                "metric": m.get(sweep.metric),
                "timesteps": m.get("timesteps"),
                "error": None if r.error is None else str(r.error).strip().splitlines()[-1],
            }
        )
    trials.sort(key=lambda t: str(t["trial"]))
    scored = [t for t in trials if isinstance(t["metric"], (int, float))]
    if not scored:
        raise SpecError(
            f"no trial reported {sweep.metric!r} (see {out / 'tune'}); errors: "
            + "; ".join(str(t["error"]) for t in trials if t["error"]),
            str(sweep_path),
        )
    best = (min if sweep.mode == "min" else max)(scored, key=lambda t: float(t["metric"]))
    summary = {"sweep": str(sweep_path), "metric": sweep.metric, "mode": sweep.mode, "trials": trials, "best": best}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
