"""Ray Core backend: each task is a Ray task (1 CPU), retried by Ray when its worker process or node dies.

`--ray auto` joins the cluster this machine belongs to (`ray start` was run here) or, when there is none, starts a
local one for this command and stops it at the end; `--ray local` always starts that private local instance;
`--ray HOST:PORT` (or `ray://HOST:10001` for Ray Client) joins
that cluster.  Task arguments are shipped by Ray's object store: the Layer and Architecture objects themselves,
so workers need no YAML files -- only rlmap installed (same version) on their Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from rlmap.execution.base import Backend, TaskFn
from rlmap.spec.errors import SpecError

TASK_RETRIES = 3
"""Ray re-runs a task this many times when its worker dies (system failures only: a Python exception in the task
is a bug or a user error and is raised at once, not retried)."""


def _call(fn: TaskFn, arg: Any) -> Any:
    return fn(arg)


def _private_token() -> None:
    """Token authentication for a Ray instance rlmap starts, with the token in this process's environment (its
    workers inherit it), so Ray does not write one to ~/.ray; an explicit RAY_AUTH_* setting is respected."""
    import secrets

    if not any(os.environ.get(v) for v in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        try:  # Ray caches the mode it read when `address="auto"` was tried: make it read the environment again
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
        except (ImportError, AttributeError):  # another Ray version: it reads the environment when it starts
            pass


CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a cluster's address to accept a connection before saying it cannot be joined (Ray itself
retries for minutes)."""


def _reachable(address: str) -> None:
    """SpecError at once when nothing listens at HOST:PORT (or ray://HOST:PORT)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SpecError(f"expected auto, local, HOST:PORT or ray://HOST:PORT, got {address!r}", "--ray")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise SpecError(
            f"cannot join the Ray cluster at {address}: nothing answers there ({exc.strerror or exc})", "--ray"
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError("Ray is not installed: pip install 'rlmap[ray]' (or run without --ray)", "--ray") from None
    return ray


class RayBackend(Backend):
    """Tasks on a Ray cluster.  `max_in_flight` caps the tasks submitted at once (default: the cluster's CPUs,
    at least 1); results are gathered by the driver (this process) as they finish."""

    name = "ray"

    def __init__(
        self,
        address: str = "auto",
        max_in_flight: int | None = None,
        num_cpus: int | None = None,
        retries: int = TASK_RETRIES,
    ) -> None:
        self.address = address
        self.max_in_flight = max_in_flight
        self.num_cpus = num_cpus  # only for a cluster this backend starts itself
        self.retries = retries
        self._ray: Any = None
        self._started = False  # this backend started a local Ray instance
        self._joined = False  # this backend connected this process to a cluster
        self._remote: Any = None

    # ------------------------------------------------------------------ connection
    def _start_private(self, ray: Any, env: dict[str, Any], **address: str) -> None:
        """Start a Ray instance for this command only (its auth token kept in this process's environment)."""
        _private_token()
        ray.init(
            **address,
            num_cpus=self.num_cpus,
            runtime_env=env,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        self._started = True

    def connect(self) -> Any:
        """Join (or start) the cluster once; the ray module."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}}
        was_connected = ray.is_initialized()
        if was_connected:
            pass  # the caller already connected this process (ray.init): use that
        elif self.address == "local":  # a private instance for this command, even when a cluster is running here
            self._start_private(ray, env, address="local")
        elif self.address == "auto":
            try:
                ray.init(address="auto", runtime_env=env, log_to_driver=False, configure_logging=False)
            except ConnectionError:  # no cluster here: start one for this command
                self._start_private(ray, env)
        else:
            _reachable(self.address)
            try:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SpecError(f"cannot join the Ray cluster at {self.address}: {first}", "--ray") from None
        self._joined = not was_connected
        self._ray = ray
        self._remote = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(_call)
        return ray

    @property
    def workers(self) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        ray = self.connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def describe(self) -> str:
        ray = self.connect()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        where = "a local Ray instance started for this run" if self._started else f"Ray cluster {self.address}"
        cap = f", at most {self.max_in_flight} tasks at once" if self.max_in_flight else ""
        return f"{where} ({nodes} node{'s' if nodes != 1 else ''}, {cpus} CPUs{cap})"

    # ------------------------------------------------------------------ tasks
    def imap_unordered(self, fn: TaskFn, args: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not args:
            return
        ray = self.connect()
        window = self.workers
        fn_ref = ray.put(fn)
        pending: dict[Any, int] = {}
        nxt = 0
        try:
            while nxt < len(args) or pending:
                while nxt < len(args) and len(pending) < window:
                    pending[self._remote.remote(fn_ref, args[nxt])] = nxt
                    nxt += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    yield i, ray.get(ref)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        """Disconnect what `connect` connected (a local instance it started stops; a joined cluster keeps running)."""
        if self._ray is not None and self._joined:
            self._ray.shutdown()
        self._ray = None
        self._started = self._joined = False
