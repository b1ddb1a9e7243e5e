"""Map every layer of a network with one mapper; sum energy and cycles over layers (with repeats)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

from rlmap.search.base import NetworkResult, SearchResult
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer, Network, layer_key


def _random() -> Any:
    from rlmap.search.random_search import RandomMapper

    return RandomMapper()


def _ga() -> Any:
    from rlmap.search.genetic import GeneticMapper

    return GeneticMapper()


def _sa() -> Any:
    from rlmap.search.annealing import AnnealingMapper

    return AnnealingMapper()


def _optimal() -> Any:
    from rlmap.search.optimal import OptimalMapper

    return OptimalMapper()


MAPPERS: dict[str, Callable[[], Any]] = {"random": _random, "ga": _ga, "sa": _sa, "optimal": _optimal}
"""Mappers by name.  Packages above search add theirs with `register_mapper` when imported (rlmap.surrogate:
"surrogate", rlmap.rl: "policy"); `import rlmap` imports both, so every name is there."""


def register_mapper(name: str, factory: Callable[[], Any]) -> None:
    """Make `factory` (zero arguments, returns a mapper) available as `--mapper name`."""
    MAPPERS[name.strip().lower()] = factory


def get_mapper(name: str) -> Any:
    """A fresh mapper by name; SpecError listing the valid names otherwise."""
    key = name.strip().lower()
    if key not in MAPPERS:
        raise SpecError(f"unknown mapper {name!r} (expected one of {', '.join(MAPPERS)})", "--mapper")
    return MAPPERS[key]()


def layer_seed(seed: int, index: int) -> int:
    """Deterministic per-layer seed, so results do not depend on process scheduling."""
    return (seed * 1_000_003 + index * 7919) % (2**31 - 1)


MapperSpec = Any
"""A mapper name from MAPPERS, a zero-argument factory returning a mapper, or a mapper instance.  With
processes > 1 factories and instances are pickled into spawned workers, so they must be importable
module-level objects (no lambdas or closures)."""


def _resolve(mapper: MapperSpec) -> Any:
    if isinstance(mapper, str):
        return get_mapper(mapper)
    if hasattr(mapper, "search") and not isinstance(mapper, type):
        return mapper
    if callable(mapper):
        return mapper()
    raise SpecError(f"expected a mapper name, factory or instance, got {type(mapper).__name__}", "mapper")


def _map_one(args: tuple[MapperSpec, Layer, Architecture, str, int, int, float | None]) -> SearchResult:
    mapper, layer, arch, objective, budget, seed, time_limit = args
    limit = {} if time_limit is None else {"time_limit": time_limit}  # mappers without the option still work
    return _resolve(mapper).search(layer, arch, objective, budget=budget, seed=seed, **limit)


def map_network(network: Network, arch: Architecture, mapper: MapperSpec, objective: str = "edp",
                budget: int = 1000, seed: int = 0, processes: int = 1, progress: bool = True,
                time_limit: float | None = None) -> NetworkResult:
    """Map each distinct layer once (in parallel processes if asked) and report it for every layer of its
    shape; same seed, same result, whatever `processes`.

    Layers are the same when `rlmap.spec.layer.layer_key` says so (the cost model cannot tell them apart);
    the first of them (index i) is searched with seed `layer_seed(seed, i)`.  `time_limit` is wall-clock
    seconds per distinct layer.  Workers are spawned (not forked), so the parent's threads (torch, BLAS)
    cannot deadlock them.
    """
    import multiprocessing
    import time
    from concurrent.futures import as_completed

    from rlmap.search.progress import progress_bar

    label = getattr(_resolve(mapper), "name", str(mapper))  # fails early on a bad name
    keys = [layer_key(layer) for layer in network.layers]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}  # key -> index of its first layer
    jobs = [(mapper, layer, arch, objective, budget, layer_seed(seed, i), time_limit)
            for i, layer in enumerate(network.layers) if first[keys[i]] == i]
    results: list[SearchResult | None] = [None] * len(jobs)
    t0 = time.perf_counter()
    evaluations = 0

    def done(bar: Any, task: Any, job: tuple, r: SearchResult) -> None:
        """Advance the bar and say what the finished layer cost: evaluations so far, its best objective."""
        nonlocal evaluations
        evaluations += r.evaluations
        bar.update(task, advance=1,
                   info=f"{evaluations:,} evaluations; finished {job[1].name}: best {objective} {r.best:.4g}")

    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(f"{label} on {network.name}", total=len(jobs), info="")
        if processes <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                bar.update(task, description=f"{label} on {network.name}: {job[1].name}")
                results[i] = _map_one(job)
                done(bar, task, job, results[i])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=ctx) as pool:
                futures = {pool.submit(_map_one, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    done(bar, task, jobs[futures[fut]], results[futures[fut]])
    by_key = {layer_key(job[1]): r for job, r in zip(jobs, results) if r is not None}
    return NetworkResult(network=network.name, arch=arch.name, mapper=label, objective=objective,
                         layers=list(network.layers), results=[by_key[key] for key in keys if key in by_key],
                         seconds=time.perf_counter() - t0, extra={"distinct_layers": len(jobs)})
