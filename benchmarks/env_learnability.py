"""Learnability of rlmap/Mapping-v0: a short MaskablePPO run must beat random search on an unseen network.

Trains sb3-contrib's MaskablePPO on the layers of a few zoo networks (plus, by default, synthetic layers
with irregular shapes) on one architecture, then maps every layer of a network it never saw with the
greedy (deterministic, masked) policy and compares each layer's EDP with the best of 16 uniformly random
valid mappings of that layer (rlmap.mapspace.MapSpace.sample, which is also the environment's reward
reference).  Passes when the geometric mean of the per-layer EDP ratios is below 1.  As a check that the
verdict does not hinge on one lucky or unlucky random draw, the same ratio is also reported against
best-of-16 baselines drawn with other seeds.

    python benchmarks/env_learnability.py                       # ~5 minutes on 2 CPU cores
    python benchmarks/env_learnability.py --timesteps 20000     # smoke run
    tensorboard --logdir runs/env_learnability                  # reward, EDP ratio, validity

Exit status 0 on a pass, 1 on a fail.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rlmap.rl.env import MappingEnv, greedy_episode, reference_costs, train_maskable_ppo  # noqa: E402
from rlmap.spec.io import load_network  # noqa: E402


def geomean(xs: list[float]) -> float:
    return math.exp(float(np.mean(np.log(xs)))) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="eyeriss")
    ap.add_argument("--train", nargs="+", default=["resnet18", "vgg16", "resnet50"], help="training networks")
    ap.add_argument("--eval", default="mobilenetv2", help="held-out network")
    ap.add_argument("--objective", default="edp", choices=["energy", "latency", "edp"])
    ap.add_argument("--synthetic", type=float, default=0.3, help="probability of a synthetic training layer")
    ap.add_argument("--timesteps", type=int, default=600_000)
    ap.add_argument("--time-limit", type=float, default=300.0, help="stop training after this many seconds")
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-seeds", type=int, default=5, help="best-of-16 baselines with seeds 0..n-1")
    ap.add_argument("--logdir", default=str(REPO / "runs" / "env_learnability"), help="TensorBoard log folder")
    ap.add_argument("--save", default=None, help="save the trained model here (.zip)")
    args = ap.parse_args(argv)
    if args.eval in args.train:
        ap.error(f"the evaluation network {args.eval!r} must not be a training network")

    cmd = "python benchmarks/env_learnability.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    print(f"command: {cmd.strip()}")
    env_kwargs = dict(arch=args.arch, networks=args.train, synthetic=args.synthetic, objective=args.objective)
    env = MappingEnv(**env_kwargs)
    print(
        f"arch {args.arch}, objective {args.objective}; training layers: {env.sampler.describe()} "
        f"({len(env.sampler)} layers); held out: {args.eval}"
    )

    # references of the training layers, computed once here instead of in every worker
    t0 = time.perf_counter()
    for layer in env.sampler.all_layers():
        env.reset(options={"layer": layer})
        env.reference_costs()
    print(
        f"reference (best of 16 random valid mappings) for {len(env.sampler)} layers: {time.perf_counter() - t0:.1f} s"
    )

    from stable_baselines3.common.callbacks import BaseCallback

    class TimeLimit(BaseCallback):
        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.seconds = seconds
            self.start = 0.0

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            return time.perf_counter() - self.start < self.seconds

    t0 = time.perf_counter()
    model, metrics = train_maskable_ppo(
        env_kwargs,
        args.timesteps,
        log_dir=args.logdir,
        n_envs=args.n_envs,
        seed=args.seed,
        callbacks=[TimeLimit(args.time_limit)],
    )
    train_s = time.perf_counter() - t0
    steps = model.num_timesteps
    print(f"trained {steps} steps in {train_s:.0f} s ({steps / train_s:.0f} steps/s); TensorBoard: {args.logdir}")
    if metrics.history:
        h = metrics.history
        for row in (h[0], h[len(h) // 2], h[-1]):
            print(
                f"  at {int(row['timesteps']):>7} steps: episode reward {row['rlmap/episode_reward']:+.3f}, "
                f"EDP/reference {row.get('rlmap/edp_ratio', float('nan')):.3f}, valid {row['rlmap/valid']:.2f}"
            )
    if args.save:
        model.save(args.save)

    # evaluation on the held-out network
    net = load_network(args.eval)
    eval_env = MappingEnv(**{**env_kwargs, "networks": [args.eval], "synthetic": 0.0})
    arch = eval_env.archs[0].arch
    rows = []
    per_seed: list[list[float]] = [[] for _ in range(args.baseline_seeds)]
    print(f"\n{'layer':<24} {'shape':<34} {'policy EDP':>11} {'best16 EDP':>11} {'ratio':>7} {'valid':>5}")
    for layer in net.layers:
        info = greedy_episode(eval_env, model, layer)
        ref = reference_costs(layer, arch, 16, 0)["best_edp"]
        ratio = info["edp"] / ref
        rows.append(ratio)
        for s in range(args.baseline_seeds):
            per_seed[s].append(info["edp"] / reference_costs(layer, arch, 16, s)["best_edp"])
        print(
            f"{layer.name:<24} {layer.shape_str():<34} {info['edp']:>11.4g} {ref:>11.4g} {ratio:>7.3f} "
            f"{str(info['valid']):>5}"
        )
    g = geomean(rows)
    wins = sum(r < 1 for r in rows)
    print(
        f"\nheld-out {args.eval} ({len(rows)} layers): geometric mean of EDP / best-of-16-random = {g:.3f} "
        f"(policy better on {wins}/{len(rows)} layers; worst {max(rows):.3f}, best {min(rows):.3f})"
    )
    print(
        "  against best-of-16 baselines drawn with seeds "
        + ", ".join(f"{s}: {geomean(per_seed[s]):.3f}" for s in range(args.baseline_seeds))
    )

    seen = []
    for name in args.train:
        for layer in load_network(name).layers:
            seen.append(greedy_episode(eval_env, model, layer)["edp_ratio"])
    print(
        f"training networks ({', '.join(args.train)}, {len(seen)} layers): geometric mean EDP ratio {geomean(seen):.3f}"
    )
    ok = g < 1.0
    print(
        f"\nRESULT: {'PASS' if ok else 'FAIL'} (geometric-mean EDP ratio {g:.3f} {'<' if ok else '>='} 1 "
        f"on unseen {args.eval}; {steps} training steps, {train_s:.0f} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
