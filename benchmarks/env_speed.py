"""Steps per second of rlmap/Mapping-v0 in one process, with random masked actions.

Every timed step includes choosing a random allowed action from `info["action_mask"]`, the environment's
mask and observation updates, and (on the last step of each episode) the cost-model evaluation and the
reward.  Per-layer references (best of 16 random valid mappings) are computed once per layer and cached,
so they are warmed before timing and reported separately.

    python benchmarks/env_speed.py            # exit status 1 if any configuration is below --min-steps
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import gymnasium as gym  # noqa: E402

from rlmap.rl.env import ENV_ID, MappingEnv  # noqa: E402
from rlmap.spec.io import list_architectures, list_networks  # noqa: E402


def run(env: gym.Env, seconds: float, seed: int = 0) -> tuple[int, int, float]:
    """(steps, episodes, elapsed) of random masked play for about `seconds`."""
    rng = np.random.default_rng(seed)
    _obs, info = env.reset(seed=seed)
    steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        allowed = np.flatnonzero(info["action_mask"])
        action = int(allowed[int(rng.random() * len(allowed))])
        _obs, _r, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated:
            if not info["valid"]:
                raise AssertionError(f"invalid mapping at the end of a masked episode: {info.get('reason')}")
            episodes += 1
            if time.perf_counter() > deadline:
                break
            _obs, info = env.reset()
    return steps, episodes, time.perf_counter() - start


def warm(env: MappingEnv) -> float:
    t0 = time.perf_counter()
    for ai in range(len(env.archs)):
        for layer in env.sampler.all_layers():
            env.reset(options={"layer": layer, "arch": ai})
            env.reference_costs()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per configuration")
    ap.add_argument("--min-steps", type=float, default=5000.0, help="required steps/s")
    args = ap.parse_args(argv)
    zoo = list_networks()
    configs = [
        ("eyeriss, resnet18+vgg16+resnet50", dict(arch="eyeriss", networks=["resnet18", "vgg16", "resnet50"]), False),
        ("eyeriss via gymnasium.make", dict(arch="eyeriss", networks=["resnet18", "vgg16", "resnet50"]), True),
        ("simba, whole zoo", dict(arch="simba", networks=zoo), False),
        ("all presets, zoo + 30% synthetic", dict(arch=list_architectures(), networks=zoo, synthetic=0.3), False),
        (
            "sparse_eyeriss, random densities, bound ref",
            dict(
                arch="sparse_eyeriss",
                networks=["resnet50_sparse", "mobilenetv2"],
                random_density=0.5,
                reference="bound",
            ),
            False,
        ),
    ]
    print(f"command: python benchmarks/env_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"{'configuration':<42} {'steps/s':>9} {'episodes/s':>11} {'steps/ep':>9} {'ref warm-up':>12}")
    ok = True
    for name, kwargs, via_make in configs:
        raw = MappingEnv(**kwargs)
        warm_s = warm(raw) if kwargs.get("random_density", 0) == 0 else 0.0
        env: gym.Env = gym.make(ENV_ID, **kwargs) if via_make else raw
        run(env, 0.3)  # warm caches (layer data, cost models; references for random densities)
        steps, episodes, dt = run(env, args.seconds, seed=1)
        rate = steps / dt
        ok &= rate >= args.min_steps
        warm_txt = f"{warm_s:.1f} s" if warm_s else "lazy"
        print(f"{name:<42} {rate:>9.0f} {episodes / dt:>11.0f} {steps / episodes:>9.1f} {warm_txt:>12}")
    print(
        f"\n{'PASS' if ok else 'FAIL'}: every configuration {'>=' if ok else 'not all >='} {args.min_steps:.0f} steps/s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
