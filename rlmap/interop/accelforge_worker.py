"""Evaluate fixed LoopTree mappings in AccelForge.  A script for AccelForge's own interpreter (Python 3.12);
rlmap never imports this module or AccelForge: `rlmap.interop.accelforge_bridge.run_accelforge` runs it as

    <accelforge python> accelforge_worker.py < jobs.json > results.json

Input: {"jobs": [{"arch": TEXT, "workload": TEXT, "mapping": TEXT, "repeat": N}, ...]}, each TEXT one YAML
file (as `rlmap export --format accelforge` writes it).  Output: {"accelforge": VERSION, "results": [...]},
one result per job: {"ok": true, "energy": pJ, "latency": s, "actions": [[component, tensor, action, count],
...], "latency_per_component": {component: s}, "load_s": s, "eval_s": s, "eval_cpu_s": s} or {"ok": false, "error":
"Type: message"}.  `eval_s` / `eval_cpu_s` are the median wall / CPU time of `evaluate_mapping` on a fresh copy
of the loaded spec over `repeat` runs (default 1); `load_s` the wall time of `Spec.from_yaml`.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
import warnings


def _evaluate(job: dict, tmp: str) -> dict:
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    paths = []
    for stem in ("arch", "workload", "mapping"):
        path = os.path.join(tmp, f"{stem}.yaml")
        with open(path, "w") as fh:
            fh.write(job[stem])
        paths.append(path)
    t0 = time.perf_counter()
    spec = af.Spec.from_yaml(*paths)
    load_s = time.perf_counter() - t0
    times, cpu = [], []
    result = None
    for _ in range(max(1, int(job.get("repeat", 1)))):
        fresh = copy.deepcopy(spec)
        t0, c0 = time.perf_counter(), time.process_time()
        result = evaluate_mapping(fresh)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert result is not None  # the loop runs at least once
    actions = [
        [str(c), str(t), str(a), float(v)]
        for (c, t, a), v in result.actions(per_component=True, per_tensor=True).items()
    ]
    latency = {str(c): float(v) for c, v in result.latency(per_component=True).items()}
    return {
        "ok": True,
        "energy": float(result.energy()),
        "latency": float(result.latency()),
        "actions": actions,
        "latency_per_component": latency,
        "load_s": load_s,
        "eval_s": statistics.median(times),
        "eval_cpu_s": statistics.median(cpu),
    }


def main() -> None:
    # run as a script, this folder is sys.path[0]: keep rlmap's modules out of AccelForge's imports
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    warnings.simplefilter("ignore")
    import accelforge

    accelforge.set_n_parallel_jobs(1)  # one process, like rlmap: comparable timings, polite on a shared machine
    request = json.load(sys.stdin)
    from importlib.metadata import version

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for job in request["jobs"]:
            try:
                results.append(_evaluate(job, tmp))
            except Exception as exc:  # noqa: BLE001 - reported per job, the batch goes on
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                results.append({"ok": False, "error": f"{type(exc).__name__}: {first}"})
    json.dump({"accelforge": version("accelforge"), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
