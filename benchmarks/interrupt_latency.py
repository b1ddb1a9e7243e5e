"""How fast Ctrl-C stops each long command, and what it keeps.

Each command runs in its own process group; when its progress bar reports the first finished piece of work
(a layer, a batch of policy episodes, a (layer, arch) pair, a training rollout) the whole group gets SIGINT,
as a terminal's Ctrl-C delivers it (worker processes included).  Printed per command: exit code, seconds from
SIGINT to the process exiting, and what the output folder holds afterwards.

    python benchmarks/interrupt_latency.py            # all commands, in a temporary folder
    python benchmarks/interrupt_latency.py search-j2  # one of them

Timings include interpreter shutdown (about 1 s with torch loaded) and depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = """
import sys, rich.progress as rp
def _marking(update):
    def marked(self, *a, **k):
        update(self, *a, **k)
        if k.get("completed") or k.get("advance"):
            print("@@done", file=sys.stderr, flush=True)
    return marked
rp.Progress.update = _marking(rp.Progress.update)
rp.Progress.advance = _marking(lambda self, task, advance=1: rp.Progress.update(self, task, advance=advance))
try:
    import rlmap.search.progress as pp  # plain progress lines when piped (newer rlmap)
    pp.PlainProgress.update = _marking(pp.PlainProgress.update)
except ImportError:
    pass
import rlmap.rl.training as t
_callbacks = t._callbacks
def _with_marker(*a, **k):
    from stable_baselines3.common.callbacks import BaseCallback
    class Marker(BaseCallback):
        def _on_step(self):
            return True
        def _on_rollout_end(self):
            print("@@done", file=sys.stderr, flush=True)
    return _callbacks(*a, **k) + [Marker()]
t._callbacks = _with_marker
"""

TINY_AGENT = (
    "algo: maskable_ppo\ninvalid_actions: mask\nn_envs: 2\n"
    "hyperparams: {n_steps: 64, batch_size: 64, n_epochs: 1}\n"
    "policy_kwargs: {features_extractor: flatten, net_arch: {pi: [32], vf: [32]}}\n"
    "env: {synthetic: 0.0, reference: none}\n"
)

COMMANDS = {
    "search": ["search", "-n", "resnet18", "--mapper", "random", "--budget", "200000", "-o", "out_search"],
    "search-j2": ["search", "-n", "resnet18", "--mapper", "random", "--budget", "200000", "-j", "2", "-o", "out_j2"],
    "map": ["map", "-n", "resnet50", "--samples", "200", "-o", "out_map"],
    "dataset": [
        "surrogate",
        "dataset",
        "--arch",
        "eyeriss",
        "--networks",
        "resnet50",
        "--samples",
        "500000",
        "-o",
        "out_dataset",
    ],
    "train": [
        "train",
        "--agent",
        "tiny.yaml",
        "--networks",
        "resnet18",
        "--eval-networks",
        "",
        "--timesteps",
        "10000000",
        "--checkpoint-every",
        "10000000",
        "-o",
        "out_train",
    ],
}


def interrupt(args: list[str], cwd: Path) -> tuple[int, float, str]:
    code = MARKER + f"\nfrom rlmap.cli.app import main\nsys.argv = ['rlmap', *{args!r}]\nmain()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in proc.stderr:  # type: ignore[union-attr]
        if "@@done" in line:
            break
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, _err = proc.communicate(timeout=600)
    said = next((ln.strip() for ln in out.splitlines() if "interrupted" in ln), "(said nothing)")
    return proc.returncode, time.monotonic() - t0, said


def kept(folder: Path) -> str:
    if (folder / "summary.json").exists():
        s = json.loads((folder / "summary.json").read_text())
        return f"summary.json partial={s.get('partial')} with {len(s['layers'])} layers"
    if (folder / "dataset.json").exists():
        s = json.loads((folder / "dataset.json").read_text())
        return f"dataset.json partial={s.get('partial')}, {s['samples']:,} samples of {s['layers']} layers"
    if (folder / "checkpoints" / "state.json").exists():
        s = json.loads((folder / "checkpoints" / "state.json").read_text())
        return f"checkpoint at step {s['num_timesteps']:,}"
    return "nothing written"


def main() -> None:
    names = sys.argv[1:] or list(COMMANDS)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "tiny.yaml").write_text(TINY_AGENT)
        print(f"{'command':10} {'exit':>4} {'stop s':>7}  kept")
        for name in names:
            args = COMMANDS[name]
            rc, seconds, said = interrupt(args, cwd)
            print(f"{name:10} {rc:>4} {seconds:7.2f}  {kept(cwd / args[args.index('-o') + 1])}; {said[:90]}")


if __name__ == "__main__":
    main()
