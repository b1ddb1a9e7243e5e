"""Where work runs: one execution backend interface with two implementations.

* `LocalBackend(processes)` -- today's `-j N`: in this process (N = 1) or N spawned local processes.
* `RayBackend(address)` -- Ray Core tasks on a cluster (`--ray auto|ADDRESS`, env RLMAP_RAY_ADDRESS); Ray retries
  a task whose worker dies.  Needs the optional extra: `pip install 'rlmap[ray]'`.

`run_tasks(backend, fn, args, store=...)` runs `fn(arg)` for every arg and returns the results in the order of
`args`, whatever the backend and worker count, so a seeded job gives the same answer everywhere.  With a
`ResultStore` each result lands atomically in its own file as soon as it arrives (temp file + os.replace), and a
rerun of an interrupted job reads those back instead of recomputing them: nothing is lost or done twice.

Callers (rlmap.search.driver for `rlmap search`, rlmap.surrogate for dataset shards, `rlmap codesign` for candidate
evaluations) build a list of picklable task arguments and a module-level task function; see docs/distributed.md.
Depends on rlmap.spec only (for SpecError).
"""

from rlmap.execution.backend import Backend, LocalBackend, backend_from_options, run_tasks
from rlmap.execution.store import ResultStore

__all__ = ["Backend", "LocalBackend", "ResultStore", "backend_from_options", "run_tasks"]
