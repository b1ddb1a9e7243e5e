"""The local-process backend, the backend the command-line options select, and `run_tasks`, which every caller
uses.  (The interface itself is in rlmap.execution.base.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self

from rlmap.execution.base import RAY_ADDRESS_ENV, Backend, TaskFn
from rlmap.execution.store import ResultStore, task_key
from rlmap.spec.errors import Interrupted, SpecError


class LocalBackend(Backend):
    """Today's `-j N`: N = 1 runs the tasks here, in order; N > 1 in N spawned (not forked: the parent's torch/BLAS
    threads cannot deadlock them) local processes.

    Inside `with LocalBackend(n) as b:` the process pool is started once and kept for every call until the block
    ends (a caller with many small batches, such as co-design's generations, pays the spawn and import once);
    outside a `with` block each call starts and ends its own pool.
    """

    name = "local"

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise SpecError(f"must be >= 1, got {processes}", "--processes")
        self.processes = processes
        self._keep = False
        self._pool: Any = None

    @property
    def workers(self) -> int:
        return self.processes

    def __enter__(self) -> Self:
        self._keep = True
        return self

    def _get_pool(self, n: int) -> Any:
        if self._pool is not None:
            return self._pool
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self.processes if self._keep else min(self.processes, n),
            mp_context=ctx,
            initializer=ignore_sigint,
        )
        if self._keep:
            self._pool = pool
        return pool

    def imap_unordered(self, fn: TaskFn, args: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if self.processes <= 1 or len(args) <= 1:
            for i, a in enumerate(args):
                yield i, fn(a)
            return
        from concurrent.futures import as_completed

        pool = self._get_pool(len(args))
        futures = {pool.submit(fn, a): i for i, a in enumerate(args)}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:  # Ctrl-C or a failed task: stop now, not after the running tasks finish
            self._pool = None
            _terminate(pool)
            raise
        if pool is not self._pool:
            pool.shutdown(wait=True)

    def close(self) -> None:
        pool, self._pool, self._keep = self._pool, None, False
        if pool is not None:
            pool.shutdown(wait=True)


def _terminate(pool: Any) -> None:
    """End a process pool's workers now (not after their running tasks)."""
    workers = list(getattr(pool, "_processes", {}).values())  # the processes this pool started
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        proc.terminate()
    for proc in workers:
        proc.join(timeout=2)


def ignore_sigint() -> None:
    """Worker initialiser: Ctrl-C reaches the whole process group; only the parent acts on it (it ends the
    workers), so no worker prints a traceback or goes on with the queued tasks."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def backend_from_options(processes: int = 1, ray: str | None = None, env: bool = True) -> Backend:
    """The backend a command's options ask for: `--ray auto|ADDRESS` (or RLMAP_RAY_ADDRESS when `env`) gives a
    RayBackend, whose in-flight tasks `-j` caps when > 1; otherwise the local backend with `processes`."""
    address = ray if ray is not None else (os.environ.get(RAY_ADDRESS_ENV) or None if env else None)
    if address is None or not address.strip():
        return LocalBackend(processes)
    if processes < 1:
        raise SpecError(f"must be >= 1, got {processes}", "--processes")
    from rlmap.execution.ray_backend import RayBackend

    return RayBackend(address.strip(), max_in_flight=processes if processes > 1 else None)


def run_tasks(
    backend: Backend,
    fn: TaskFn,
    args: Sequence[Any],
    store: ResultStore | None = None,
    keys: Sequence[str] | None = None,
    on_result: Callable[[int, Any, bool], None] | None = None,
) -> list[Any]:
    """`[fn(a) for a in args]`, run on `backend`; with `store`, resumable.

    keys      -- one stable key per task (default with a store: `task_key(fn, arg)`); results are stored under
                 it, and tasks with equal keys run once
    on_result -- called as (index, result, from_store) for every task as it completes (progress bars)
    Results already in `store` are read back, not recomputed; every new one is written atomically as it
    arrives, before the next is awaited, so an interruption loses at most the tasks still running.
    Ctrl-C raises rlmap.spec.errors.Interrupted whose `partial` is the result list so far (None for a task
    that did not finish), so callers keep what finished without bookkeeping of their own.
    """
    n = len(args)
    if store is not None and keys is None:
        keys = [task_key(fn, a) for a in args]
    if keys is not None and len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} tasks")
    results: list[Any] = [None] * n
    first: dict[str, int] = {}  # tasks with the same key are the same task: run once, share the result
    same: dict[int, list[int]] = {}
    todo: list[int] = []
    have = store.keys() if store is not None else set()
    try:  # Ctrl-C while reading back or running: pass on what finished
        for i in range(n):
            k = keys[i] if keys is not None else None
            if k is not None and k in first:
                same.setdefault(first[k], []).append(i)
                continue
            if k is not None:
                first[k] = i
            if store is not None and k in have:
                results[i] = store.get(k)
                if on_result is not None:
                    on_result(i, results[i], True)
            else:
                todo.append(i)
        for j, res in backend.imap_unordered(fn, [args[i] for i in todo]):
            i = todo[j]
            results[i] = res
            if store is not None and keys is not None:
                store.put(keys[i], res)
            if on_result is not None:
                on_result(i, res, False)
    except KeyboardInterrupt:  # also an Interrupted a task raised in-process: its partial is not ours
        for i, dups in same.items():  # a finished task also finished its equal ones
            for d in dups:
                results[d] = results[i]
        raise Interrupted(results, sum(r is not None for r in results), n) from None
    for i, dups in same.items():
        for d in dups:
            results[d] = results[i]
            if on_result is not None:
                on_result(d, results[i], True)
    return results
