"""`rlmap train` and `rlmap map`: train a mapping policy, and map a network zero-shot with one.

Registered by rlmap.cli.app; torch and Stable-Baselines3 are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from rlmap.cli.execution import ray_option
from rlmap.rl.config import GENERATED_TRAIN_SEED
from rlmap.spec.errors import EXIT_INTERRUPTED, Interrupted, SpecError

DEFAULT_TRAIN = "resnet18,vgg16,gpt2_small"
DEFAULT_EVAL = "mobilenetv2,mnasnet,bert_base"


def _names(value: str, option: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise SpecError("needs at least one network name", option)
    return names


def _agent_names() -> list[str]:
    """The shipped agent configs (agents/*.yaml), for --agent's help."""
    from rlmap.spec.io import agents_dir

    return sorted(p.stem for p in agents_dir().glob("*.yaml"))


def train_cmd(
    agent: str = typer.Option(
        "maskable_ppo", "--agent", help=f"agents/NAME.yaml ({', '.join(_agent_names())}) or a YAML file"
    ),
    arch: str = typer.Option(
        "eyeriss", "--arch", "-a", help="architecture preset or YAML file; several comma-separated (one general policy)"
    ),
    generated: int = typer.Option(
        0,
        "--generated",
        help="add N generated architectures to training "
        "(rlmap.hardware.generator, seeds --generated-seed ..; `rlmap generate` shows them)",
    ),
    generated_seed: int = typer.Option(
        GENERATED_TRAIN_SEED, "--generated-seed", help="first generator seed of --generated"
    ),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="start from this policy's weights (fine-tuning): "
        "a checkpoints/policy_X folder, a run folder or a model .zip",
    ),
    networks: str = typer.Option(DEFAULT_TRAIN, "--networks", help="training networks, comma-separated"),
    eval_networks: str = typer.Option(
        DEFAULT_EVAL, "--eval-networks", help="held-out networks mapped greedily every --eval-every steps ('' = none)"
    ),
    synthetic: Optional[float] = typer.Option(
        None, "--synthetic", help="share of synthetic layers (default: the agent config's)"
    ),
    random_density: Optional[float] = typer.Option(
        None, "--random-density", help="share of episodes with random densities (sparse training)"
    ),
    timesteps: Optional[int] = typer.Option(
        None, "--timesteps", help="environment steps in all (default: 1,000,000; on --resume: the run's)"
    ),
    n_envs: Optional[int] = typer.Option(None, "--n-envs", help="parallel environments (default: the agent config's)"),
    seed: int = typer.Option(0, "--seed"),
    objective: str = typer.Option("edp", "--objective", help="energy, latency or edp"),
    eval_every: int = typer.Option(100_000, "--eval-every", help="steps between held-out evaluations (0 = never)"),
    checkpoint_every: int = typer.Option(100_000, "--checkpoint-every", help="steps between checkpoints"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="stop this invocation after so many minutes"),
    subproc: bool = typer.Option(False, "--subproc", help="run the environments in subprocesses (SubprocVecEnv)"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="run folder (runs/NAME); required unless --resume"
    ),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="continue the run in this folder from its last checkpoint"
    ),
    tune: Optional[Path] = typer.Option(
        None,
        "--tune",
        metavar="SWEEP.yaml",
        help="Ray Tune sweep over the agent's hyperparameters and seeds (-o: the "
        "sweep folder; see agents/sweeps/example.yaml and docs/distributed.md)",
    ),
    ray: Optional[str] = ray_option(),
) -> None:
    """Train a mapping policy; TensorBoard logs, checkpoints and config.yaml go to the run folder.

    Watch it with `tensorboard --logdir RUN/tensorboard`. Interrupted? `rlmap train --resume RUN` continues
    from the last checkpoint (saved every --checkpoint-every steps and on exit) with the saved config;
    --timesteps and --time-limit may be changed when resuming.
    """
    from rlmap.cli.common import (
        check_output_dir,
        check_positive,
        check_seed,
        console,
        load_architecture_option,
        load_network_option,
    )
    from rlmap.model.costmodel import OBJECTIVES
    from rlmap.rl.config import CONFIG_FILE, TrainConfig, load_agent_config, load_run_config
    from rlmap.rl.resume import resume_point
    from rlmap.rl.training import train

    if ray is not None and tune is None:
        raise SpecError("applies to --tune sweeps (one training run runs on this machine)", "--ray")
    if tune is not None:
        from rlmap.cli.tune import tune_cmd

        return tune_cmd(tune, output, ray)
    out = console()
    check_positive(time_limit, "--time-limit", "a positive number of minutes")
    check_seed(seed)
    if resume is not None:
        if output is not None and Path(output) != resume:
            raise SpecError("give either -o (a new run) or --resume (an existing one)", "-o")
        cfg = load_run_config(resume)
        updates: dict[str, Any] = {}
        if timesteps is not None:
            if timesteps <= 0:
                raise SpecError(f"must be positive, got {timesteps}", "--timesteps")
            updates["timesteps"] = timesteps
        updates["time_limit"] = time_limit * 60 if time_limit is not None else None
        cfg = cfg.model_copy(update=updates)
        run_dir = resume
        point = resume_point(run_dir)
        where = f"from {point.describe(run_dir)}" if point is not None else "from step 0: it holds no intact checkpoint"
        out.print(f"resuming {run_dir} ({cfg.agent_name} on {cfg.arch}) {where}, up to {cfg.timesteps:,} steps")
    else:
        if output is None:
            raise SpecError("missing: give -o runs/NAME for a new run (or --resume RUN)", "-o")
        if objective not in OBJECTIVES:
            raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})", "--objective")
        timesteps = 1_000_000 if timesteps is None else timesteps
        for name, value in (("--timesteps", timesteps), ("--checkpoint-every", checkpoint_every)):
            if value <= 0:
                raise SpecError(f"must be positive, got {value}", name)
        if n_envs is not None and n_envs <= 0:
            raise SpecError(f"must be >= 1, got {n_envs}", "--n-envs")
        if eval_every < 0:
            raise SpecError(f"must be >= 0, got {eval_every}", "--eval-every")
        for name, frac in (("--synthetic", synthetic), ("--random-density", random_density)):
            if frac is not None and not 0.0 <= frac <= 1.0:
                raise SpecError(f"must be in [0, 1], got {frac}", name)
        check_output_dir(output)
        arch_list = _names(arch, "--arch")
        for a in arch_list:
            load_architecture_option(a)  # fail early on a bad --arch
        if generated < 0 or generated_seed < 0:
            raise SpecError("must be >= 0", "--generated" if generated < 0 else "--generated-seed")
        if init is not None:
            from rlmap.rl.checkpoint import load_policy

            try:
                init_pol = load_policy(init)  # fail early on a bad --init
            except SpecError as exc:
                raise SpecError(str(exc), "--init") from None
            from rlmap.rl.env import MAX_LEVELS

            if init_pol.max_levels != MAX_LEVELS:  # the observation layout training uses
                raise SpecError("was trained with another observation layout", "--init")
        agent_cfg = load_agent_config(agent)
        env_updates = {k: v for k, v in (("synthetic", synthetic), ("random_density", random_density)) if v is not None}
        if env_updates:
            agent_cfg = agent_cfg.model_copy(update={"env": agent_cfg.env.model_copy(update=env_updates)})
        train_nets = _names(networks, "--networks")
        held = [n.strip() for n in eval_networks.split(",") if n.strip()]
        for option, names in (("--networks", train_nets), ("--eval-networks", held)):
            for n in names:
                load_network_option(n, option)
        overlap = sorted(set(train_nets) & set(held))
        if overlap:
            raise SpecError(f"{', '.join(overlap)} cannot be both a training and a held-out network", "--eval-networks")
        cfg = TrainConfig(
            agent_name=Path(agent).stem,
            agent=agent_cfg,
            arch=",".join(arch_list),
            objective=objective,
            generated=generated,
            generated_seed=generated_seed,
            init=str(init) if init is not None else None,
            networks=train_nets,
            eval_networks=held,
            timesteps=timesteps,
            n_envs=n_envs or agent_cfg.n_envs,
            seed=seed,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            time_limit=time_limit * 60 if time_limit else None,
            vec_env="subproc" if subproc else "dummy",
        )
        run_dir = output
        if (run_dir / CONFIG_FILE).exists() and resume_point(run_dir) is None:
            out.print(f"{run_dir} holds a run that never reached a checkpoint: starting it over")
        on = (
            cfg.arch
            + (
                f" + {generated} generated (seeds {generated_seed}..{generated_seed + generated - 1})"
                if generated
                else ""
            )
            + (f", starting from {init}" if init else "")
        )
        out.print(
            f"training {cfg.agent_name} ({cfg.agent.algo}) on {on}: {', '.join(train_nets)} + "
            f"{cfg.agent.env.synthetic:.0%} synthetic layers; held out: {', '.join(held) or 'none'}"
        )
    res = train(cfg, run_dir, resume=resume is not None, progress=True)
    state = (
        "finished"
        if res.finished
        else f"{'interrupted' if res.interrupted else 'stopped by --time-limit'}; continue with "
        f"`rlmap train --resume {run_dir}`"
    )
    out.print(f"{res.num_timesteps:,} steps, {res.seconds:.0f} s this invocation: {state}")
    if res.metrics:
        h = res.metrics[-1]
        out.print(
            f"last rollout: episode reward {h['rlmap/episode_reward']:+.3f}, "
            f"EDP / best-of-16-random {h.get('rlmap/edp_ratio', float('nan')):.3f}, valid {h['rlmap/valid']:.2f}"
        )
    if res.held_out:
        h = res.held_out[-1]
        out.print(
            "held-out greedy EDP / best-of-16-random: "
            + ", ".join(
                f"{k.split('/')[1]} {v:.3f}" for k, v in h.items() if k.startswith("eval/") and k.count("/") == 2
            )
        )
    out.print(
        f"policy: {run_dir / 'model.zip'}  (rlmap map --policy {run_dir}); "
        f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
    )
    if res.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)  # the checkpoint is saved, but the run did not finish


def map_cmd(
    network: str = typer.Option(
        "resnet50", "--network", "-n", help="network preset or YAML file (e.g. from rlmap import)"
    ),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help="architecture preset or YAML file"),
    policy: Optional[Path] = typer.Option(
        None,
        "--policy",
        "-p",
        help="checkpoint folder or .zip (default: checkpoints/policy_ARCH or "
        "policy_general, whichever measured better on --arch)",
    ),
    samples: int = typer.Option(1, "--samples", "-k", help="1 = greedy; K = best of K policy samples (greedy first)"),
    objective: Optional[str] = typer.Option(None, "--objective", help="energy, latency or edp (default: the policy's)"),
    seed: int = typer.Option(0, "--seed", help="seed for the samples"),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="softmax temperature of the samples (default: the value tuned in docs/agents.md)"
    ),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="map only this layer"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="directory for mappings (YAML) and summary.json"
    ),
) -> None:
    """Map a network zero-shot with a trained policy: per-layer table and network totals.

    Each mapping is scored by the analytical cost model; write them with -o and check any of them with
    `rlmap eval` or `rlmap export --format timeloop`.
    """
    from rlmap.cli.common import (
        check_at_most,
        check_output_dir,
        check_positive,
        check_seed,
        console,
        load_problem,
        report_network_result,
    )
    from rlmap.model.costmodel import OBJECTIVES
    from rlmap.rl.checkpoint import load_policy
    from rlmap.rl.mapper import MAX_SAMPLES, SAMPLE_TEMPERATURE, SAMPLES_WHY, map_network_with_policy
    from rlmap.spec.layer import Network

    if samples <= 0:
        raise SpecError(f"must be >= 1, got {samples}", "--samples")
    check_at_most(samples, MAX_SAMPLES, "--samples", SAMPLES_WHY)
    check_seed(seed)
    check_positive(temperature, "--temperature", "a finite number > 0")
    temperature = temperature or SAMPLE_TEMPERATURE
    check_output_dir(output)
    net, a, one = load_problem(network, arch, layer)
    if one is not None:
        net = Network(name=net.name, description=net.description, source=net.source, layers=[one])
    pol = load_policy(policy, arch if policy is None else None)
    objective = objective or pol.config.get("objective", "edp")
    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})", "--objective")
    out = console()
    if policy is None:
        from rlmap.rl.checkpoint import default_policy

        out.print(f"policy: {pol.path.name if pol.path else '?'}, {default_policy(Path(arch).stem)[1]}")
    notes = []
    from rlmap.rl.checkpoint import coverage_note

    cover = coverage_note(pol, a.name)
    if cover:
        notes.append(cover)
    if objective != pol.config.get("objective", objective):
        notes.append(f"policy trained for {pol.config.get('objective')}, asked for {objective}")
    seen = sorted({net.name} & set(pol.trained_on))
    if seen:
        notes.append(f"{net.name} was a training network of this policy (not zero-shot)")
    for n in notes:
        out.print(f"[yellow]note: {n}[/yellow]")
    from rlmap.search.progress import progress_bar

    try:  # outside the bar, so that an interrupted bar does not print "done"
        with progress_bar("[bold]policy") as bar:
            task = bar.add_task(f"policy on {net.name}", total=None, info="")
            res = map_network_with_policy(
                pol,
                net,
                a,
                objective,
                samples,
                seed,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
                temperature=temperature,
            )
        interrupted = False
    except Interrupted as exc:  # Ctrl-C: report and write the layers finished, marked partial
        res, interrupted = exc.partial, True
    how = "greedy" if samples == 1 else f"best of {samples} samples"
    report_network_result(
        res,
        a,
        f"policy ({how}) on {net.name} / {a.name}, objective {objective}",
        output,
        {
            "mapper": "policy",
            "samples": samples,
            "seed": seed,
            "temperature": temperature,
            "policy": str(pol.path),
            "policy_trained_on": pol.trained_on,
        },
    )
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
