"""A wheel installs and runs outside the checkout: presets, agent configs and shipped checkpoints come with it
(rlmap/_data, found through importlib.resources), and a read-only install with no writable HOME still runs.

The wheel is built once (`pip wheel --no-deps`) from a copy of the working tree and installed with
`pip install --no-deps` into a fresh venv whose site-packages reuses this venv's dependencies through a .pth
file (so nothing is downloaded and torch is not copied).  Every command runs from a temporary folder
outside the checkout, as the console script `rlmap` of the fresh venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_COPY = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "runs",
    "data",
    "results",
    "_data",
    ".pytest_cache",
    ".hypothesis",
)


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, user: str | None = None
) -> subprocess.CompletedProcess:
    if user is not None:
        import pwd

        who = pwd.getpwnam(user)
        args = ["setpriv", f"--reuid={who.pw_uid}", f"--regid={who.pw_gid}", "--clear-groups", *args]
    return subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed():
    """(venv, scratch folder): the wheel built from this tree, installed into a fresh venv."""
    pytest.importorskip("setuptools")
    root = Path(tempfile.mkdtemp(prefix="rlmap-install-"))
    os.chmod(root, 0o755)  # a non-root user runs from here too
    try:
        src = root / "src"
        shutil.copytree(REPO, src, ignore=SKIP_COPY)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        r = _run(
            [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "wheels"), str(src)], cwd=root
        )
        assert r.returncode == 0, r.stdout + r.stderr
        wheel = next((root / "wheels").glob("rlmap-*.whl"))
        venv = root / "venv"
        r = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
        assert r.returncode == 0, r.stderr
        py = venv / "bin" / "python"
        site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
        (Path(site.stdout.strip()) / "_rlmap_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        r = _run([*pip, "--python", str(py), "install", "--no-deps", "-q", str(wheel)], cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
        work = root / "work"
        work.mkdir(mode=0o777)
        os.chmod(work, 0o777)
        yield venv, work
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLMAP_", "NUMBA_CACHE", "PYTHONPATH"))}
    env.update(extra)
    return env


def test_wheel_ships_the_data_and_runs_list_map_eval_outside_the_checkout(installed):
    venv, work = installed
    rlmap = str(venv / "bin" / "rlmap")
    r = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            (
                "import rlmap, rlmap.spec.io as io; print(rlmap.__file__); "
                "print(io.envs_dir()); print(io.agents_dir()); print(io.checkpoints_dir())"
            ),
        ],
        cwd=work,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr
    where = [Path(line) for line in r.stdout.split()]
    assert all(venv in p.parents for p in where), where  # the installed package and its data, not the checkout
    assert [p.name for p in where[1:]] == ["envs", "agents", "checkpoints"] and where[1].parent.name == "_data"

    r = _run([rlmap, "list"], cwd=work, env=_env())
    assert r.returncode == 0, r.stderr
    for name in ("eyeriss", "simba", "resnet50", "bert_base", "maskable_ppo_sparse"):
        assert name in r.stdout, r.stdout

    r = _run([rlmap, "map", "-n", "resnet18", "-a", "eyeriss", "-l", "conv1", "-o", "out"], cwd=work, env=_env())
    assert r.returncode == 0, r.stderr
    assert (work / "out" / "mappings" / "conv1.yaml").is_file() and "conv1" in r.stdout

    r = _run([rlmap, "eval", "-n", "resnet18", "-a", "eyeriss", "-m", "out/mappings/conv1.yaml"], cwd=work, env=_env())
    assert r.returncode == 0, r.stderr
    assert "118,013,952" in r.stdout  # conv1's MACs: 64 x 3 x 112 x 112 x 7 x 7

    r = _run([rlmap, "--version"], cwd=work, env=_env())
    from rlmap import __version__

    assert r.returncode == 0 and r.stdout.strip() == f"rlmap {__version__}", r.stdout + r.stderr


def test_version_is_single_sourced():
    """pyproject.toml reads the version from rlmap.__version__; the installed metadata agrees."""
    import tomllib
    from importlib.metadata import version

    import rlmap

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rlmap.__version__"}
    assert version("rlmap") == rlmap.__version__


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="runs the read-only install as user nobody, which needs root and setpriv",
)
def test_read_only_install_without_a_writable_home_runs_as_a_non_root_user(installed):
    """numba's cache=True fails with 'no locator available' when neither the package folder nor ~/.cache
    is writable; rlmap then points numba at a private temporary folder, so every command still runs."""
    venv, work = installed
    ro = work.parent / "readonly-venv"
    shutil.copytree(venv, ro, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    script = ro / "bin" / "rlmap"
    script.write_text(script.read_text().replace(str(venv), str(ro)))
    subprocess.run(["chmod", "-R", "a-w,a+rX", str(ro)], check=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    probe = _run(
        [
            str(ro / "bin" / "python"),
            "-c",
            (
                "import os, rlmap, rlmap.model.jit as j; "
                "print(os.access(os.path.dirname(rlmap.__file__), os.W_OK), j.CACHE, "
                "os.environ['NUMBA_CACHE_DIR'])"
            ),
        ],
        cwd=work,
        env=env,
        user="nobody",
    )
    assert probe.returncode == 0, probe.stderr
    writable, cache, folder = probe.stdout.split()
    assert (writable, cache) == ("False", "True") and folder.startswith(tempfile.gettempdir()), probe.stdout
    r = _run([str(script), "--help"], cwd=work, env=env, user="nobody")
    assert r.returncode == 0 and "Usage" in r.stdout, r.stderr
    mapping = work / "ro_conv.yaml"
    mapping.write_text(
        "layer: conv\nlevels:\n  - {name: DRAM, temporal: {K: 16, C: 8, P: 8, Q: 8}}\n"
        "  - {name: GLB}\n  - {name: spad, temporal: {R: 3, S: 3}}\n"
    )
    net = work / "ro_net.yaml"
    net.write_text("name: tiny\nlayers:\n  - {name: conv, K: 16, C: 8, P: 8, Q: 8, R: 3, S: 3, padding: 1}\n")
    r = _run(
        [str(script), "eval", "-n", str(net), "-a", "eyeriss", "-m", str(mapping)], cwd=work, env=env, user="nobody"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "73,728" in r.stdout  # 16 x 8 x 8 x 8 x 3 x 3 MACs


def test_numba_cache_falls_back_to_a_temporary_folder_then_to_no_cache(monkeypatch, capsys):
    """The choice rlmap.model.jit makes before any kernel compiles, with the writable places faked."""
    import rlmap.model.jit as jit

    monkeypatch.setattr(jit.numba.config, "CACHE_DIR", "")
    saved = os.environ.pop("NUMBA_CACHE_DIR", None)
    try:
        monkeypatch.setattr(jit, "_writable", lambda folder: True)  # beside the source: numba's own choice
        assert jit._choose_cache() is True and "NUMBA_CACHE_DIR" not in os.environ
        tmp = tempfile.gettempdir()
        # read-only install: only rlmap's private temporary folder is writable (the checkout itself may live
        # under the temporary directory, as a CI clone in /tmp does, so the test names the folder, not its root)
        monkeypatch.setattr(jit, "_writable", lambda folder: Path(folder).name.startswith("rlmap-numba-cache"))
        assert jit._choose_cache() is True
        assert os.environ["NUMBA_CACHE_DIR"].startswith(tmp) and jit.numba.config.CACHE_DIR.startswith(tmp)
        os.environ.pop("NUMBA_CACHE_DIR")
        monkeypatch.setattr(jit.numba.config, "CACHE_DIR", "")
        monkeypatch.setattr(jit, "_writable", lambda folder: False)  # nowhere: compile uncached, say so once
        assert jit._choose_cache() is False
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "NUMBA_CACHE_DIR" in err
    finally:
        os.environ.pop("NUMBA_CACHE_DIR", None)
        if saved is not None:
            os.environ["NUMBA_CACHE_DIR"] = saved
