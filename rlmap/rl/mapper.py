"""Zero-shot mapping with a trained policy: greedy or best-of-K samples, many layers in lockstep.

All episodes of a call (layers x samples) run side by side in a pool of environments, and one batched
forward pass of the policy serves every live episode at each step, so mapping a whole network costs
about as many policy calls as one episode has steps.  Sample 0 of every layer is the greedy episode,
so best-of-K is never worse than greedy.  Every mapping is scored by the real cost model (the env's
terminal evaluation); one episode = one cost-model evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.rl.env import MappingEnv
from rlmap.search.base import NetworkResult, SearchResult, best_so_far
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import Interrupted, SpecError
from rlmap.spec.layer import Layer, Network, layer_key
from rlmap.spec.layer import distinct_layers as spec_distinct_layers

POOL = 256
"""Episodes run side by side at most (each holds one environment)."""

MAX_SAMPLES = 100_000
"""Most policy samples per layer: each is a whole episode (POOL run side by side), and the list of episodes to
run is held in memory; a best-of-K far past the tuned K of docs/agents.md gains nothing a search mapper would not."""
SAMPLES_WHY = f"each sample is a whole policy episode ({POOL} run side by side), so more would run for hours"

SAMPLE_TEMPERATURE = 1.5
"""Default softmax temperature of the sampled episodes (see docs/agents.md for how it was chosen)."""


def distinct_layers(network: str | Network) -> list[Layer]:
    """A network's (preset name or Network) layers with a cost-relevant shape not seen earlier in it."""
    from rlmap.spec.io import load_network

    net = load_network(network) if isinstance(network, str) else network
    return spec_distinct_layers(net.layers)


def map_layers(
    policy: Any,
    layers: Sequence[Layer],
    arch: Architecture,
    objective: str = "edp",
    samples: int = 1,
    seed: int = 0,
    progress: Any = None,
    temperature: float = SAMPLE_TEMPERATURE,
    time_limit: float | None = None,
) -> list[SearchResult]:
    """Map each layer with `policy` (rlmap.agents.Policy): greedy, or the best of `samples` episodes.

    Samples after the first are drawn from softmax(logits / temperature) over the allowed actions.
    progress: optional callable(done_episodes, total_episodes) for a progress bar.
    time_limit: seconds for the whole call; past it the sampled (non-greedy) episodes still running are
    dropped and no new ones start, so every layer keeps its greedy episode and the best sample finished.
    Ctrl-C raises rlmap.spec.errors.Interrupted whose `partial` lists, per layer, the best of the episodes
    finished by then (None for a layer with none).
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be between 1 and {MAX_SAMPLES:,}, got {samples}")
    jobs = [(i, k) for i, _ in enumerate(layers) for k in range(samples)]
    values: list[list[float | None]] = [[None] * samples for _ in layers]  # None: not run (time limit)
    best: list[dict[str, Any] | None] = [None] * len(layers)
    t0 = time.perf_counter()
    deadline = t0 + (math.inf if time_limit is None else time_limit)
    rng = np.random.default_rng(seed)
    envs = [
        MappingEnv(
            arch=arch, objective=objective, layers=list(layers[:1]), reference="none", max_levels=policy.max_levels
        )
        for _ in range(min(POOL, len(jobs)))
    ]
    done = 0
    interrupted = False
    try:
        for start in range(0, len(jobs), len(envs)):
            batch = jobs[start : start + len(envs)]
            if time.perf_counter() > deadline:
                batch = [job for job in batch if job[1] == 0]  # greedy episodes only
                if not batch:
                    continue
            live = list(range(len(batch)))
            obs = np.zeros((len(batch), envs[0].obs_size), dtype=np.float32)
            masks = np.zeros((len(batch), envs[0].n_actions), dtype=bool)
            for b, (i, _k) in enumerate(batch):
                obs[b], info = envs[b].reset(options={"layer": layers[i]})
                masks[b] = info["action_mask"]
            while live:
                if time.perf_counter() > deadline and any(batch[b][1] > 0 for b in live):
                    live = [b for b in live if batch[b][1] == 0]
                    if not live:
                        break
                logits = policy.logits(obs[live], masks[live])
                still = []
                for row, b in enumerate(live):
                    i, k = batch[b]
                    if k == 0:
                        action = int(np.argmax(logits[row]))
                    else:
                        z = (logits[row] - logits[row].max()) / temperature
                        p = np.exp(z)
                        action = int(rng.choice(len(p), p=p / p.sum()))
                    o, _r, term, trunc, info = envs[b].step(action)
                    if term or trunc:
                        values[i][k] = float(info["objective"]) if info["valid"] else math.inf
                        cur = best[i]
                        if info["valid"] and (cur is None or values[i][k] < cur["objective"]):
                            best[i] = info
                        done += 1
                    else:
                        obs[b] = o
                        masks[b] = info["action_mask"]
                        still.append(b)
                live = still
            if progress is not None:
                progress(done, len(jobs))
    except KeyboardInterrupt:  # Ctrl-C: keep every episode finished so far
        interrupted = True
    seconds = time.perf_counter() - t0
    results: list[SearchResult | None] = []
    for i, _layer in enumerate(layers):
        win = best[i]
        if interrupted and all(v is None for v in values[i]):
            results.append(None)  # no episode of this layer finished
            continue
        # the full Cost breakdown of the winner (one more evaluation, not counted: the env scored it already)
        cost = CostModel(layers[i], arch).evaluate(win["mapping"]) if win is not None else None
        ran = [v for v in values[i] if v is not None]
        notes: dict[str, Any] = {"greedy": values[i][0], "samples": samples}
        if len(ran) < samples:
            why = "interrupted" if interrupted else f"time limit {time_limit:g} s reached"
            notes["stopped"] = f"{why}: best of {len(ran)} of {samples} samples"
        results.append(
            SearchResult(
                mapper="policy",
                objective=objective,
                mapping=win["mapping"] if win else None,
                cost=cost,
                evaluations=len(ran),
                curve=best_so_far(np.array(ran, dtype=float)),
                seconds=seconds / max(len(layers), 1),
                notes=notes,
            )
        )
    if interrupted:
        raise Interrupted(results, sum(r is not None for r in results), len(layers))
    return results  # type: ignore[return-value]


def map_network_with_policy(
    policy: Any,
    network: Network,
    arch: Architecture,
    objective: str = "edp",
    samples: int = 1,
    seed: int = 0,
    progress: Any = None,
    temperature: float = SAMPLE_TEMPERATURE,
) -> NetworkResult:
    """Map every layer of `network` (identical shapes once); totals with repeats, as rlmap search does."""
    t0 = time.perf_counter()
    uniq = distinct_layers(network)
    try:
        res: list[SearchResult | None] = list(
            map_layers(policy, uniq, arch, objective, samples, seed, progress, temperature)
        )
        interrupted = None
    except Interrupted as exc:  # pass on the layers finished, as a partial NetworkResult
        res, interrupted = exc.partial, exc
    by_key = {layer_key(l): r for l, r in zip(uniq, res) if r is not None}
    label = "policy (greedy)" if samples == 1 else f"policy (best of {samples})"
    out = NetworkResult.of_distinct(
        network,
        arch.name,
        label,
        objective,
        by_key,
        time.perf_counter() - t0,
        {"distinct_layers": len(uniq)},
        partial=interrupted is not None,
    )
    if interrupted is not None:
        raise Interrupted(out, len(by_key), len(uniq))
    return out


class PolicyMapper:
    """The policy behind the mapper interface: `budget` = number of policy samples (1 = greedy)."""

    name = "policy"

    def __init__(self, policy: Any = None) -> None:
        self.policy = policy

    def search(
        self,
        layer: Layer,
        arch: Architecture,
        objective: str = "edp",
        budget: int = 1,
        seed: int = 0,
        model: Any = None,
        time_limit: float | None = None,
    ) -> SearchResult:
        """The best of `budget` policy samples (1 = greedy); with `time_limit` (seconds), of those finished then
        (the greedy episode always finishes)."""
        policy = self.policy
        if policy is None:  # the shipped policy, loaded once per process and architecture
            if arch.name not in _SHIPPED:
                from rlmap.rl.checkpoint import load_policy

                try:  # the policy `rlmap map` would pick: specialised, else general (checkpoint.default_policy)
                    _SHIPPED[arch.name] = load_policy(None, arch.name)
                except SpecError as exc:
                    if exc.where != "--policy":
                        raise
                    # `search` has no --policy: say what does work
                    raise SpecError(
                        exc.message.replace("and pass --policy", "and use `rlmap map --policy RUN`"), "--mapper policy"
                    ) from None
            policy = _SHIPPED[arch.name]
        return map_layers(policy, [layer], arch, objective, samples=max(1, budget), seed=seed, time_limit=time_limit)[0]


_SHIPPED: dict[str, Any] = {}
