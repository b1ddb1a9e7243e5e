"""Map every layer of a network with one mapper; sum energy and cycles over layers (with repeats)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmap.search.base import NetworkResult, SearchResult
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import Interrupted, SpecError
from rlmap.spec.layer import Layer, Network, layer_key

if TYPE_CHECKING:
    from rlmap.execution import Backend


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


def _marvel() -> Any:
    from rlmap.search.marvel import MarvelMapper

    return MarvelMapper()


MAPPERS: dict[str, Callable[[], Any]] = {
    "random": _random,
    "ga": _ga,
    "sa": _sa,
    "optimal": _optimal,
    "marvel": _marvel,
}
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


def accepts_initial(mapper: Any) -> bool:
    """Whether a mapper's search takes warm-start mappings (`initial=`)."""
    import inspect

    try:
        return "initial" in inspect.signature(mapper.search).parameters
    except (TypeError, ValueError):
        return False


def _map_one(args: tuple) -> SearchResult:
    """One search task: a distinct layer on one architecture with one seed (what a backend runs); an optional
    8th element holds warm-start mappings for the mapper's `initial`."""
    mapper, layer, arch, objective, budget, seed, time_limit = args[:7]
    kw: dict[str, Any] = {} if time_limit is None else {"time_limit": time_limit}  # mappers without it still work
    if len(args) > 7 and args[7]:
        kw["initial"] = args[7]
    return _resolve(mapper).search(layer, arch, objective, budget=budget, seed=seed, **kw)


def map_network(
    network: Network,
    arch: Architecture,
    mapper: MapperSpec,
    objective: str = "edp",
    budget: int = 1000,
    seed: int = 0,
    processes: int = 1,
    progress: bool = True,
    time_limit: float | None = None,
    backend: Backend | None = None,
    resume_dir: str | Path | None = None,
    warm_start: Any = None,
    warm_wave: int = 1,
) -> NetworkResult:
    """Map each distinct layer once (as parallel tasks if asked) and report it for every layer of its shape;
    same seed, same result, whatever `processes` or `backend`.

    Layers are the same when `rlmap.spec.layer.layer_key` says so (the cost model cannot tell them apart);
    the first of them (index i) is searched with seed `layer_seed(seed, i)`.  `time_limit` is wall-clock
    seconds per distinct layer.  `backend` (default: `LocalBackend(processes)`) runs the tasks; with
    `resume_dir` each finished layer is kept there (atomically) and a rerun reads it back -- see map_networks.

    `warm_start` (True or a `rlmap.search.warmstart.ReplayBuffer`, e.g. one backed by a file): see
    `map_network_warm` (`warm_wave` layers searched at once).  Mappers whose search takes no `initial` (the
    policy) run cold; extra["warm_start"] says which happened.

    Ctrl-C stops at once and raises rlmap.spec.errors.Interrupted whose `partial` is the NetworkResult of the
    layers finished by then (extra["partial"] = True).
    """
    if warm_start is not None and warm_start is not False and accepts_initial(_resolve(mapper)):
        return map_network_warm(
            network,
            arch,
            mapper,
            objective,
            budget,
            seed,
            processes,
            progress,
            time_limit,
            backend,
            warm_start,
            resume_dir,
            warm_wave,
        )
    try:
        return map_networks(
            [(network, arch, seed)],
            mapper,
            objective,
            budget,
            processes=processes,
            progress=progress,
            time_limit=time_limit,
            backend=backend,
            resume_dir=resume_dir,
        )[0]
    except Interrupted as exc:
        raise Interrupted(exc.partial[0], exc.done, exc.total) from None


def map_network_warm(
    network: Network,
    arch: Architecture,
    mapper: MapperSpec,
    objective: str,
    budget: int,
    seed: int,
    processes: int = 1,
    progress: bool = True,
    time_limit: float | None = None,
    backend: Backend | None = None,
    warm_start: Any = True,
    resume_dir: str | Path | None = None,
    warm_wave: int = 1,
) -> NetworkResult:
    """Warm-started mapping (rlmap.search.warmstart): the distinct layers are searched in network order, in
    waves of `warm_wave` layers run at once (as parallel tasks where the backend has workers), each seeded with
    the adapted best mappings of the nearest layers already in the replay buffer; each one's best mapping then
    joins the buffer (saved to its file, if any).
    A layer can only use layers of earlier waves, so results depend on `warm_wave` -- never on the number of
    workers or the backend (the same seed gives the same result locally and on Ray).  With `resume_dir`
    finished layers are kept and read back like map_networks's; a layer's task key includes its seeds, which
    the layers before it determine, so a resumed run repeats the same searches."""
    import time

    from rlmap.execution import LocalBackend, ResultStore, run_tasks
    from rlmap.execution.store import task_key
    from rlmap.search.progress import progress_bar
    from rlmap.search.warmstart import ReplayBuffer

    store = ResultStore(resume_dir) if resume_dir is not None else None

    buffer = warm_start if isinstance(warm_start, ReplayBuffer) else ReplayBuffer()
    label = getattr(_resolve(mapper), "name", str(mapper))
    keys = [layer_key(layer) for layer in network.layers]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}
    jobs: list[tuple] = [
        (mapper, layer, arch, objective, budget, layer_seed(seed, i), time_limit, None)
        for i, layer in enumerate(network.layers)
        if first[keys[i]] == i
    ]
    results: list[SearchResult | None] = [None] * len(jobs)
    run_on = backend if backend is not None else LocalBackend(processes)
    if warm_wave < 1:
        raise SpecError(f"must be >= 1, got {warm_wave}", "--warm-wave")
    wave = warm_wave
    t0 = time.perf_counter()
    evaluations = 0
    interrupted = False
    try:  # outside the bar, so that an interrupted bar does not print "done"
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task(f"{label} on {network.name}", total=len(jobs), info="")
            for w0 in range(0, len(jobs), wave):
                idx = list(range(w0, min(w0 + wave, len(jobs))))
                for i in idx:
                    j = jobs[i]
                    jobs[i] = j[:7] + (buffer.seeds(j[1], arch, objective, seed=j[5]),)
                bar.update(task, description=f"{label} on {network.name}: {jobs[idx[0]][1].name}")
                keys_w = [task_key("map_layer", *jobs[i]) for i in idx] if store is not None else None
                for i, r in zip(idx, run_tasks(run_on, _map_one, [jobs[i] for i in idx], store=store, keys=keys_w)):
                    r.notes["warm_start_seeds"] = len(jobs[i][7] or [])
                    results[i] = r
                    buffer.add(jobs[i][1], arch, objective, [r.mapping])
                    evaluations += r.evaluations
                    bar.update(
                        task,
                        advance=1,
                        info=f"{evaluations:,} evaluations; finished {jobs[i][1].name}: best {objective} {r.best:.4g}",
                    )
    except KeyboardInterrupt:
        interrupted = True
    if buffer.path is not None:
        buffer.save()
    by_key = {layer_key(job[1]): r for job, r in zip(jobs, results) if r is not None}
    res = NetworkResult.of_distinct(
        network,
        arch.name,
        label,
        objective,
        by_key,
        time.perf_counter() - t0,
        {"distinct_layers": len(jobs), "warm_start": True},
        partial=interrupted,
    )
    if interrupted:
        raise Interrupted(res, len(by_key), len(jobs))
    return res


def map_networks(
    problems: Sequence[tuple[Network, Architecture, int]],
    mapper: MapperSpec,
    objective: str = "edp",
    budget: int = 1000,
    processes: int = 1,
    progress: bool = True,
    time_limit: float | None = None,
    backend: Backend | None = None,
    resume_dir: str | Path | None = None,
) -> list[NetworkResult]:
    """Map several (network, architecture, seed) problems; all their distinct layers form ONE task list
    (layers x architectures x seeds), so a cluster is kept busy across problems.  One NetworkResult per problem.

    `resume_dir`: every finished task lands there as its own file (temp file + os.replace), keyed by all of its
    inputs; tasks already there are read back instead of searched again, so an interrupted run resumes where
    it stopped, and nothing is lost or counted twice.  The caller removes the folder when it is done with it.
    Ctrl-C stops at once and raises rlmap.spec.errors.Interrupted whose `partial` lists the NetworkResults of the
    layers finished by then (extra["partial"] = True).
    """
    import time

    from rlmap.execution import LocalBackend, ResultStore, run_tasks
    from rlmap.execution.store import task_key
    from rlmap.search.progress import progress_bar

    label = getattr(_resolve(mapper), "name", str(mapper))  # fails early on a bad name
    jobs: list[tuple[MapperSpec, Layer, Architecture, str, int, int, float | None]] = []
    owners: list[tuple[int, Any]] = []  # (problem, layer key) of each job
    for p, (network, arch, seed) in enumerate(problems):
        keys = [layer_key(layer) for layer in network.layers]
        first = {key: i for i, key in reversed(list(enumerate(keys)))}  # key -> index of its first layer
        for i, layer in enumerate(network.layers):
            if first[keys[i]] == i:
                jobs.append((mapper, layer, arch, objective, budget, layer_seed(seed, i), time_limit))
                owners.append((p, keys[i]))
    store = ResultStore(resume_dir) if resume_dir is not None else None
    tkeys = [task_key("map_layer", *job) for job in jobs]  # equal tasks (a problem given twice) run once
    run_on = backend if backend is not None else LocalBackend(processes)
    name = problems[0][0].name if len(problems) == 1 else f"{len(problems)} problems"
    t0 = time.perf_counter()
    evaluations = 0
    serial = run_on.workers <= 1  # one task at a time, in order: the bar can name the layer being searched
    interrupted = False
    try:  # outside the bar, so that an interrupted bar does not print "done"
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task(
                f"{label} on {name}" + (f": {jobs[0][1].name}" if serial and jobs else ""), total=len(jobs), info=""
            )

            def done(i: int, r: SearchResult, cached: bool) -> None:
                """Advance the bar and say what the finished layer cost: evaluations so far, its best objective."""
                nonlocal evaluations
                evaluations += r.evaluations
                how = "read back" if cached else "finished"
                extra = (
                    {"description": f"{label} on {name}: {jobs[min(i + 1, len(jobs) - 1)][1].name}"} if serial else {}
                )
                bar.update(
                    task,
                    advance=1,
                    info=f"{evaluations:,} evaluations; {how} {jobs[i][1].name}: best {objective} {r.best:.4g}",
                    **extra,
                )

            results = run_tasks(run_on, _map_one, jobs, store=store, keys=tkeys, on_result=done)
    except KeyboardInterrupt as exc:  # run_tasks passes on what finished (a Ctrl-C elsewhere: nothing did)
        interrupted = True
        results = exc.partial if isinstance(exc, Interrupted) else [None] * len(jobs)
    seconds = time.perf_counter() - t0
    out = []
    for p, (network, arch, _seed) in enumerate(problems):
        by_key: dict[Any, SearchResult] = {key: r for (q, key), r in zip(owners, results) if q == p and r is not None}
        distinct = sum(1 for q, _ in owners if q == p)
        out.append(
            NetworkResult.of_distinct(
                network,
                arch.name,
                label,
                objective,
                by_key,
                seconds,
                {"distinct_layers": distinct},
                partial=interrupted,
            )
        )
    if interrupted:
        raise Interrupted(out, sum(r is not None for r in results), len(jobs))
    return out
