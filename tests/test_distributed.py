"""Execution backends: local processes and Ray give the same files; a killed Ray worker is retried; an interrupted
run resumes from its atomically written task results; nothing Ray writes lands in the home folder.

The Ray tests start their own two-node cluster (`ray start --head` + a second node, both on 127.0.0.1, token auth
off, every port chosen free, temp files in a short folder under the system temp dir, HOME pointed inside it) and
stop it at the end by terminating the two `ray start --block` processes they started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlmap.cli.app import run
from rlmap.execution import LocalBackend, ResultStore, backend_from_options, run_tasks
from rlmap.execution.backend import RAY_ADDRESS_ENV, Backend
from rlmap.spec.errors import Interrupted, SpecError

ray = pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")

JOB = ["search", "-n", "resnet18", "-a", "eyeriss", "--mapper", "ga", "--budget", "1500", "--seed", "7"]


def files_of(out: Path) -> tuple[bytes, dict[str, bytes]]:
    """summary.json's bytes (deterministic: wall-clock times are in run.json) and every mapping file's bytes: what
    must not depend on where the tasks ran."""
    return (out / "summary.json").read_bytes(), {
        p.name: p.read_bytes() for p in sorted((out / "mappings").glob("*.yaml"))
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, bytes]]:
    out = tmp_path_factory.mktemp("local_j1")
    assert run([*JOB, "-j", "1", "-o", str(out)]) == 0
    summary, maps = files_of(out)
    layers = json.loads(summary)["layers"]
    assert len(layers) > 10 and len(maps) == len({layer["layer"] for layer in layers})
    return summary, maps


# ----------------------------------------------------------------------------- no Ray needed
def test_store_is_atomic_and_ignores_half_written_files(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "tasks")
    assert store.keys() == set()
    store.put("a", {"x": [1, 2]})
    (tmp_path / "tasks" / ".b.123.tmp").write_bytes(b"\x80half")  # what a writer killed mid-write leaves
    (tmp_path / "tasks" / ".c.pkl.456.tmp.pkl").write_bytes(b"\x80half")  # ... in atomic_write's naming
    assert store.keys() == {"a"} and store.get("a") == {"x": [1, 2]} and not store.has("b") and not store.has("c")
    assert [p.name for p in (tmp_path / "tasks").iterdir() if not p.name.startswith(".")] == ["a.pkl"]
    store.clear()
    assert not (tmp_path / "tasks").exists()


class _Interrupting(Backend):
    """Local backend that records what it ran and raises KeyboardInterrupt after `stop_after` results."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after, self.ran = stop_after, []

    def imap_unordered(self, fn, args):
        for i, a in enumerate(args):
            if self.stop_after is not None and len(self.ran) == self.stop_after:
                raise KeyboardInterrupt
            self.ran.append(a)
            yield i, fn(a)


def _square(x: int) -> int:
    return x * x


def test_interrupted_tasks_resume_without_redoing_or_losing_any(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    first = _Interrupting(stop_after=3)
    with pytest.raises(Interrupted) as stopped:
        run_tasks(first, _square, list(range(8)), store=store)
    assert first.ran == [0, 1, 2] and len(store.keys()) == 3
    assert stopped.value.partial == [0, 1, 4, None, None, None, None, None] and stopped.value.done == 3
    second = _Interrupting()
    seen: list[tuple[int, bool]] = []
    res = run_tasks(
        second, _square, list(range(8)), store=store, on_result=lambda i, r, cached: seen.append((i, cached))
    )
    assert res == [i * i for i in range(8)]
    assert second.ran == [3, 4, 5, 6, 7]  # the three finished tasks are read back, not redone
    assert sorted(seen) == [(i, i < 3) for i in range(8)]


def test_equal_tasks_run_once_and_results_keep_task_order() -> None:
    b = _Interrupting()
    assert run_tasks(b, _square, [3, 1, 3, 2], keys=["k3", "k1", "k3", "k2"]) == [9, 1, 9, 4]
    assert b.ran == [3, 1, 2]
    assert run_tasks(LocalBackend(2), _square, list(range(6))) == [0, 1, 4, 9, 16, 25]


def test_backend_from_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert isinstance(backend_from_options(3), LocalBackend) and backend_from_options(3).workers == 3
    with pytest.raises(SpecError, match="--processes"):
        backend_from_options(0)
    monkeypatch.setenv(RAY_ADDRESS_ENV, "10.1.2.3:6379")
    b = backend_from_options(4)
    assert b.name == "ray" and b.address == "10.1.2.3:6379" and b.max_in_flight == 4  # type: ignore[attr-defined]
    assert backend_from_options(1, env=False).name == "local"


def test_many_problems_form_one_pool_with_the_answers_of_separate_runs() -> None:
    from rlmap.search.driver import map_network, map_networks
    from rlmap.spec.io import load_architecture, load_network
    from rlmap.spec.layer import Network

    net = load_network("resnet18")
    net = Network(name="head", layers=net.layers[:4])
    problems = [(net, load_architecture(a), s) for a in ("eyeriss", "simba") for s in (0, 1)]
    counted = _Interrupting()
    pooled = map_networks(problems + problems[:1], "ga", budget=100, backend=counted, progress=False)
    assert len(counted.ran) == 4 * len({layer.name for layer in net.layers})  # duplicate problem run once
    for (n, a, s), res in zip(problems + problems[:1], pooled):
        alone = map_network(n, a, "ga", budget=100, seed=s, progress=False)
        assert res.arch == a.name and [r.best for r in res.results] == [r.best for r in alone.results]
    assert [r.best for r in pooled[0].results] != [r.best for r in pooled[1].results]  # seeds are not ignored


@pytest.mark.parametrize(
    ("address", "needle"),
    [("127.0.0.1:1", "cannot join the Ray cluster at 127.0.0.1:1"), ("nonsense", "expected auto, local, HOST:PORT")],
)
def test_a_bad_ray_address_is_one_line_at_once(address: str, needle: str, capfd) -> None:
    t0 = time.monotonic()
    assert run([*JOB, "--ray", address]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: --ray: ") and needle in err and err.count("\n") == 1
    assert time.monotonic() - t0 < 30  # Ray alone would retry for minutes


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ray", "auto"], "error: --ray: applies to --tune sweeps"),
        (["--tune", "no_such_sweep.yaml", "-o", "unused"], "error: no_such_sweep.yaml: no such sweep file"),
        (["--tune", "agents/sweeps/example.yaml"], "error: -o: missing"),
    ],
)
def test_train_tune_user_errors_are_one_line(args: list[str], needle: str, capfd, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert run(["train", *args]) == 2
    err = capfd.readouterr().err
    assert err.startswith(needle) and err.count("\n") == 1, err


def test_tune_sweep_trains_every_configuration_with_every_seed() -> None:
    """`seeds` is a grid over the configurations: the seeds of one configuration share its random draws
    (Tune alone draws them anew for each seed), and the draws are reproducible."""
    from ray.tune.search.variant_generator import generate_variants

    from rlmap.rl.tune import configurations, load_sweep, param_space

    root = Path(__file__).resolve().parents[1]
    sweep = load_sweep(root / "agents" / "sweeps" / "example.yaml")  # 2 samples x n_steps grid [128, 256]
    configs = configurations(sweep)
    assert configs == configurations(sweep) and len(configs) == sweep.samples * 2
    assert sorted({c["hyperparams.n_steps"] for c in configs}) == [128, 256]
    assert len({c["hyperparams.learning_rate"] for c in configs}) == len(configs)
    assert all(1e-4 <= c["hyperparams.learning_rate"] <= 1e-3 for c in configs)
    trials = [cfg for _, cfg in generate_variants(param_space(sweep))]  # Tune's own expansion of the grids
    assert sorted((t["configuration"], t["seed"]) for t in trials) == [
        (i, s) for i in range(len(configs)) for s in sweep.seeds
    ]


def test_a_search_killed_as_a_whole_resumes_to_the_same_files(tmp_path: Path, baseline, capfd) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlmap", *JOB, "-j", "1", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while len(ResultStore(out / ".tasks").keys()) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = len(ResultStore(out / ".tasks").keys())
    assert 3 <= done < len(json.loads(baseline[0])["layers"]) and not (out / "summary.json").exists()
    capfd.readouterr()
    assert run([*JOB, "-j", "1", "-o", str(out)]) == 0
    assert f"resuming: {done} finished task(s)" in capfd.readouterr().err
    assert files_of(out) == baseline
    assert not (out / ".tasks").exists()


# ----------------------------------------------------------------------------- a two-node Ray cluster
def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_ports() -> list[str]:
    names = (
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
        "node-manager-port",
        "object-manager-port",
    )
    return [f"--{name}={p}" for name, p in zip(names, _free_ports(len(names)))]


def _own_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line names `marker` (this test's Ray folder): only ones it started."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="rlr"))  # short: Ray's socket paths must stay under 108 characters
    home = root / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(root),
    }
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR")}
    ray_bin = str(Path(sys.executable).parent / "ray")
    gcs, dash, client = _free_ports(3)
    address = f"127.0.0.1:{gcs}"
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    logs = [open(root / "head.log", "wb"), open(root / "node.log", "wb")]  # noqa: SIM115
    try:
        procs.append(
            subprocess.Popen(
                [
                    ray_bin,
                    "start",
                    "--head",
                    f"--port={gcs}",
                    f"--temp-dir={root / 'ray'}",
                    "--include-dashboard=false",
                    f"--dashboard-port={dash}",
                    f"--ray-client-server-port={client}",
                    *common,
                    *_node_ports(),
                ],
                env=env,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
        )
        os.environ.update({k: env[k] for k in saved})
        _wait_for(address, nodes=1)
        procs.append(
            subprocess.Popen(
                [ray_bin, "start", f"--address={address}", *common, *_node_ports()],
                env=env,
                stdout=logs[1],
                stderr=subprocess.STDOUT,
            )
        )
        _wait_for(address, nodes=2)
        yield {"address": address, "root": root, "home": home, "env": env}
    finally:
        for p in reversed(procs):
            p.terminate()  # `ray start --block` stops its node's processes on SIGTERM
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        for pid in _own_processes(str(root)):  # stragglers of this cluster only
            os.kill(pid, signal.SIGKILL)
        for f in logs:
            f.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not _own_processes(str(root)), "the test cluster did not stop"
    shutil.rmtree(root, ignore_errors=True)


def _wait_for(address: str, nodes: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            alive = sum(1 for n in ray.nodes() if n.get("Alive"))
            ray.shutdown()
            if alive >= nodes:
                return
        except (ConnectionError, RuntimeError):
            ray.shutdown()
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray cluster at {address} did not come up with {nodes} nodes")
        time.sleep(1)


def test_local_and_ray_with_any_worker_count_write_the_same_files(cluster, baseline, tmp_path: Path) -> None:
    runs = {
        "local -j 2": (["-j", "2"], "local (2 workers)"),
        "ray, -j 1": (["--ray", cluster["address"], "-j", "1"], f"Ray cluster {cluster['address']} (2 nodes, 2 CPUs)"),
        "ray, 2 workers": (["--ray", cluster["address"]], f"Ray cluster {cluster['address']} (2 nodes, 2 CPUs)"),
    }
    for name, (opts, where) in runs.items():
        out = tmp_path / name.replace(" ", "_").replace(",", "")
        assert run([*JOB, *opts, "-o", str(out)]) == 0, name
        assert files_of(out) == baseline, name
        assert json.loads((out / "run.json").read_text())["backend"] == where  # where it ran: run.json only
    assert not ray.is_initialized()  # the command disconnected again
    assert list(cluster["home"].iterdir()) == []  # nothing written to the home folder


def test_auto_joins_the_cluster_named_by_ray_address(cluster, baseline, tmp_path: Path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("RAY_ADDRESS", cluster["address"])
    monkeypatch.setenv(RAY_ADDRESS_ENV, "auto")
    assert run([*JOB, "-o", str(tmp_path)]) == 0
    assert "tasks run on Ray cluster auto (2 nodes, 2 CPUs)" in capfd.readouterr().err
    assert files_of(tmp_path) == baseline


def _task_workers(raylets: set[int]) -> list[int]:
    """Pids of Ray worker processes of this cluster that are running a task right now ('ray::_call')."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if ppid in raylets and (d / "cmdline").read_bytes().startswith(b"ray::_call"):
                    pids.append(int(d.name))
            except (OSError, ValueError):
                pass
    return pids


def test_a_killed_worker_is_retried_and_the_summary_is_unchanged(cluster, baseline, tmp_path: Path) -> None:
    raylets = {
        pid
        for pid in _own_processes(str(cluster["root"]))
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"raylet")
    }
    assert len(raylets) == 2
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlmap", *JOB, "--ray", cluster["address"], "-o", str(out)],
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        busy = _task_workers(raylets)
        if busy and len(ResultStore(out / ".tasks").keys()) >= 1:  # mid-run: some results in, a task running
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    log = proc.communicate(timeout=120)[0].decode(errors="replace")
    assert killed is not None, "no task was running to kill:\n" + log
    assert proc.returncode == 0, log
    assert files_of(out) == baseline
    assert list(cluster["home"].iterdir()) == []


def test_dataset_shards_on_ray_equal_the_local_ones(cluster, tmp_path: Path) -> None:
    from rlmap.execution.ray_backend import RayBackend
    from rlmap.spec.io import load_architecture, load_network
    from rlmap.surrogate.data import generate_samples

    arch = load_architecture("eyeriss")
    items = [(layer, ["resnet18"], arch) for layer in load_network("resnet18").layers[:3]]
    local = generate_samples(items, 64, seed=5)
    with RayBackend(cluster["address"]) as b:
        remote = generate_samples(items, 64, seed=5, executor=b, resume_dir=tmp_path / "shards")
    assert len(ResultStore(tmp_path / "shards").keys()) == 3  # one atomically written file per shard
    for field in ("layer_idx", "temporal", "spatial_x", "spatial_y", "order", "energy", "cycles", "source"):
        assert (getattr(local, field) == getattr(remote, field)).all(), field


def test_tune_sweep_runs_ordinary_training_runs_and_reports_the_best(cluster, tmp_path: Path, capfd) -> None:
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "agent": "maskable_ppo",
                "metric": "rlmap/edp_ratio",
                "mode": "min",
                "seeds": [0, 1],
                "search": {
                    "hyperparams.learning_rate": 3e-4,
                    "hyperparams.n_steps": 32,
                    "hyperparams.batch_size": 64,
                    "hyperparams.n_epochs": 1,
                    "n_envs": 2,
                },
                "train": {"networks": ["resnet18"], "eval_networks": [], "timesteps": 128, "checkpoint_every": 64},
            }
        )
    )
    out = tmp_path / "sweep"
    assert run(["train", "--tune", str(sweep), "--ray", cluster["address"], "-o", str(out)]) == 0
    res = json.loads((out / "sweep.json").read_text())
    assert sorted(t["seed"] for t in res["trials"]) == [0, 1]
    for t in res["trials"]:
        run_dir = Path(t["run_dir"])
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert cfg["seed"] == t["seed"] and cfg["agent"]["hyperparams"]["learning_rate"] == 3e-4
        assert (run_dir / "model.zip").is_file() and (run_dir / "checkpoints" / "last.zip").is_file()
        acc = EventAccumulator(str(next((run_dir / "tensorboard").rglob("events.out.tfevents.*")).parent))
        acc.Reload()
        assert acc.Scalars("rlmap/edp_ratio")[-1].value == pytest.approx(t["metric"], rel=1e-6)  # its own log
        assert t["timesteps"] >= 128
    assert res["best"]["metric"] == min(t["metric"] for t in res["trials"])
    assert f"best: {res['best']['trial']}" in capfd.readouterr().out
    assert list(cluster["home"].iterdir()) == []


# ----------------------------------------------------------------------------- co-design on the backends
CODESIGN_OPTIMIZERS = "digamma,ga,two-loop" + (",cma" if __import__("importlib").util.find_spec("nevergrad") else "")


def _codesign(out: Path, *opts: str) -> dict[str, Any]:
    """`rlmap codesign` on a two-layer network; every written file that must not depend on where the evaluations
    ran (design.json without its wall-clock seconds), plus each optimiser's evaluation count."""
    from rlmap.spec.io import save_network
    from rlmap.spec.layer import Layer, Network

    net = out.parent / "tiny.yaml"
    save_network(
        Network(
            name="tiny",
            layers=[
                Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=(1, 1)),
                Layer(name="fc", kind="gemm", K=32, C=16, P=4),
            ],
        ),
        net,
    )
    assert (
        run(
            [
                "codesign",
                "--space",
                "envs/space/edge.yaml",
                "--network",
                str(net),
                "--area",
                "edge",
                "-O",
                CODESIGN_OPTIMIZERS,
                "-e",
                "60",
                "--population",
                "4",
                "--inner-budget",
                "10",
                "--seed",
                "3",
                "-o",
                str(out),
                "--no-tensorboard",
                *opts,
            ]
        )
        == 0
    )
    files: dict[str, Any] = {"pareto.csv": (out / "pareto.csv").read_bytes()}
    for f in sorted((out / "designs").rglob("*")):
        if f.is_file():
            rel = str(f.relative_to(out))
            files[rel] = (
                f.read_bytes()
                if f.suffix != ".json"
                else {k: v for k, v in json.loads(f.read_text()).items() if k != "seconds"}
            )
    return files


def test_codesign_writes_the_same_designs_on_one_or_two_processes_and_on_ray(cluster, tmp_path: Path) -> None:
    one = _codesign(tmp_path / "j1")
    counts = {k.split("/")[1]: v["evaluations"] for k, v in one.items() if k.endswith("design.json")}
    assert 58 <= counts["digamma"] <= 60  # a child repeating a layer's cached mapping is free: may end 1 short
    assert counts["two-loop"] == 60  # 3 designs x 2 layers x 10 inner-GA evaluations
    assert len(one) > 2 * len(counts)
    assert _codesign(tmp_path / "j2", "-j", "2") == one
    assert _codesign(tmp_path / "ray", "--ray", cluster["address"]) == one
    assert not ray.is_initialized()
